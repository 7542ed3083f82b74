//! Planning benchmark: read + parse + infer + graph + versions + staleness
//! (against an empty state database) for notebooks of 1,000, 10,000 and
//! 50,000 assets, each asset using 1-3 earlier ones, with an item cell
//! (fn, struct, impl) every 50 assets.
//!
//! `cold`: a fresh `PlanCache`, so every cell is parsed and every body
//! analysed (the first plan after a kernel start). `warm`: re-planning after the
//! user edited one asset cell, with the session's `PlanCache` (every later
//! `%assets` / `%materialize`).
//!
//! Run: `cargo run --release -p slurmbook-magics --example plan_bench`
//! (`PLAN_BENCH_RUNS=N` runs per row, best kept; `PLAN_BENCH_SIZES=100,1000`;
//! `PLAN_BENCH_ONLY=warm` skips the cold rows, e.g. under a profiler).

use std::path::Path;
use std::time::{Duration, Instant};

use slurmbook_magics::{Notebook, PlanCache, Project, SessionOverrides, StateDb};

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

/// A notebook with `n` assets, each using 1-3 earlier ones, and an item
/// cell (a few helper fns and a struct) every 50 assets.
fn notebook(n: usize) -> String {
    let mut rng = Lcg(n as u64);
    let mut cells = Vec::new();
    let code = |src: String| serde_json::json!({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null, "source": src});
    cells.push(code(":dep serde = { version = \"1\", features = [\"derive\"] }\nuse std::collections::BTreeMap;".to_string()));
    for i in 0..n {
        if i % 50 == 0 {
            let k = i / 50;
            cells.push(code(format!(
                "/// Helper {k}.\nfn helper_{k}(x: usize) -> usize {{\n    x.wrapping_mul({k} + 1) % 7\n}}\n\n\
                 #[derive(Debug, Clone)]\nstruct Stats{k} {{ n: usize, total: usize }}\n\n\
                 impl Stats{k} {{\n    fn mean(&self) -> f64 {{ self.total as f64 / self.n.max(1) as f64 }}\n}}"
            )));
        }
        let helper = i / 50;
        let body = if i == 0 {
            "(0..100usize).collect::<Vec<usize>>()".to_string()
        } else {
            let k = 1 + rng.next(3);
            let ups: Vec<usize> = (0..k).map(|_| rng.next(i)).collect();
            let sum = ups
                .iter()
                .map(|u| format!("a{u}.iter().sum::<usize>()"))
                .collect::<Vec<_>>()
                .join(" + ");
            format!(
                "// combine upstreams\nlet base = {sum};\n\
                 let scaled: Vec<usize> = (0..base % 100).map(|x| x * 2 + helper_{helper}(x)).collect();\n\
                 let stats = Stats{helper} {{ n: scaled.len(), total: scaled.iter().sum() }};\n\
                 println!(\"{{}} values, mean {{:.2}}, base {{base}}\", stats.n, stats.mean());\n\
                 scaled"
            )
        };
        cells.push(code(format!(
            "%%asset a{i} --cpus=2 --time=00:10:00 --group=g{}\n{body}",
            i % 10
        )));
    }
    serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})
        .to_string()
}

#[derive(Default, Clone, Copy)]
struct Phases {
    read: Duration,
    contents: Duration,
    analyse: Duration,
    staleness: Duration,
}

impl Phases {
    fn total(&self) -> Duration {
        self.read + self.contents + self.analyse + self.staleness
    }
}

fn plan(path: &Path, db_dir: &Path, cache: &PlanCache) -> (Phases, usize) {
    let t = Instant::now();
    let nb = Notebook::from_path(path).unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let mut contents = nb.contents_with(cache).unwrap();
    contents.apply_overrides(&SessionOverrides::new());
    let contents_t = t.elapsed();
    let t = Instant::now();
    let project = Project::from_contents_cached(contents, cache).unwrap();
    let analyse = t.elapsed();
    let t = Instant::now();
    let db = StateDb::open(db_dir).unwrap();
    let fresh = project.staleness(&db).unwrap();
    let staleness = t.elapsed();
    assert_eq!(fresh.len(), project.assets.len());
    (
        Phases {
            read,
            contents: contents_t,
            analyse,
            staleness,
        },
        project.assets.len(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(label: &str, n: usize, b: Phases, kib: usize) {
    println!(
        "{:>7} {:>6} {:>10.2} {:>14.4} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9}",
        n,
        label,
        ms(b.total()),
        ms(b.total()) / n as f64,
        ms(b.read),
        ms(b.contents),
        ms(b.analyse),
        ms(b.staleness),
        kib
    );
}

fn best(runs: usize, mut f: impl FnMut() -> Phases) -> Phases {
    (0..runs)
        .map(|_| f())
        .min_by_key(|p| p.total())
        .unwrap_or_default()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runs: usize = std::env::var("PLAN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!(
        "plan_bench: read + parse + infer + graph + versions + staleness (empty state db); best of {runs} runs; {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("  cold = fresh PlanCache (every cell parsed, every body analysed)");
    println!("  warm = re-plan after editing one asset cell, with the session's PlanCache");
    println!(
        "{:>7} {:>6} {:>10} {:>14} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "assets",
        "cache",
        "total ms",
        "ms per asset",
        "read",
        "cells",
        "infer+",
        "stale",
        "file KiB"
    );
    let sizes: Vec<usize> = std::env::var("PLAN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000]);
    for n in sizes {
        let path = dir.path().join(format!("bench-{n}.ipynb"));
        let text = notebook(n);
        std::fs::write(&path, &text).unwrap();
        let db_dir = dir.path().join(format!("db-{n}"));
        std::fs::create_dir_all(&db_dir).unwrap();
        let kib = text.len() / 1024;
        let only_warm = std::env::var("PLAN_BENCH_ONLY").is_ok_and(|v| v == "warm");
        let cold = best(if only_warm { 0 } else { runs }, || {
            let (p, count) = plan(&path, &db_dir, &PlanCache::new());
            assert_eq!(count, n);
            p
        });
        row("cold", n, cold, kib);
        let cache = PlanCache::new();
        plan(&path, &db_dir, &cache);
        let mut edit = 0;
        let warm = best(runs, || {
            // The user edits one asset cell, then re-plans.
            edit += 1;
            let needle = format!("%%asset a{} ", n / 2);
            let edited = text.replacen(&needle, &format!("%%asset a{} --mem={edit}G ", n / 2), 1);
            std::fs::write(
                &path,
                edited.replacen("scaled\"}", &format!("scaled // edit {edit}\"}}"), 1),
            )
            .unwrap();
            plan(&path, &db_dir, &cache).0
        });
        row("warm", n, warm, kib);
    }
    println!("(cells = split cells, parse headers, items; infer+ = body analysis, graph, item references, versions)");
}
