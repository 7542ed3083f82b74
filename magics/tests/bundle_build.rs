//! Builds real job bundles with cargo and runs them as a Slurm job would.

use slurmbook_magics::bundle::{self, BundleError, EVENT_PREFIX};
use slurmbook_magics::notebook::Notebook;
use slurmbook_magics::{Project, SessionOverrides};
use std::collections::HashMap;
use std::process::Command;

fn project(cells: &[&str]) -> Project {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    Project::from_notebook(
        &Notebook::from_str(&nb.to_string()).unwrap(),
        &SessionOverrides::new(),
    )
    .unwrap()
}

fn types(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn build_root() -> std::path::PathBuf {
    // Shared across test runs so dependencies build once.
    std::env::temp_dir().join("slurmbook-test-bundles")
}

#[test]
fn a_bundle_computes_assets_from_stored_upstreams() {
    let p = project(&[
        "fn scale(x: f64) -> f64 { x / 10.0 }",
        "%%asset readings\n(0..5).map(|i| i * 100).collect::<Vec<i64>>()",
        "%%asset celsius\nprintln!(\"converting {} readings\", readings.len());\nreport_metadata(serde_json::json!({\"n\": readings.len()}));\nreadings.iter().map(|&r| scale(r as f64)).collect::<Vec<f64>>()",
        "%%asset broken\nlet v: Vec<i64> = readings.clone();\nv[99]",
    ]);
    let t = types(&[
        ("readings", "Vec<i64>"),
        ("celsius", "Vec<f64>"),
        ("broken", "i64"),
    ]);
    let names: Vec<String> = ["readings", "celsius", "broken"].map(String::from).to_vec();
    let sources = bundle::generate(&p, &names, &t).unwrap();
    let exe = bundle::build(&sources, &build_root(), &t).expect("the bundle builds");
    // A second build of the same sources is the cached binary.
    let again = bundle::build(
        &bundle::generate(&p, &names, &t).unwrap(),
        &build_root(),
        &t,
    )
    .unwrap();
    assert_eq!(exe, again);

    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.json");
    let out = Command::new(&exe)
        .args(["readings", "--output"])
        .arg(&readings)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&readings).unwrap(),
        "[0,100,200,300,400]"
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(EVENT_PREFIX))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.last().unwrap()["event"], "materialized");

    let celsius = dir.path().join("celsius.json");
    let out = Command::new(&exe)
        .args(["celsius", "--output"])
        .arg(&celsius)
        .arg("--input")
        .arg(format!("readings={}", readings.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("converting 5 readings\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{EVENT_PREFIX}{{\"event\":\"metadata\",\"metadata\":{{\"n\":5}}}}"
        )),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&celsius).unwrap(),
        "[0.0,10.0,20.0,30.0,40.0]"
    );

    // A panic: non-zero exit, a `failed` event with the message, no value written.
    let broken = dir.path().join("broken.json");
    let out = Command::new(&exe)
        .args(["broken", "--output"])
        .arg(&broken)
        .arg("--input")
        .arg(format!("readings={}", readings.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"event\":\"failed\""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("index out of bounds"));
    assert!(!broken.exists());
}

#[test]
fn a_value_that_is_not_serializable_is_reported_before_submitting() {
    let p = project(&["struct Opaque { n: u32 }", "%%asset thing\nOpaque { n: 1 }"]);
    let t = types(&[("thing", "Opaque")]);
    let sources = bundle::generate(&p, &["thing".to_string()], &t).unwrap();
    match bundle::build(&sources, &build_root(), &t) {
        Err(BundleError::NotSerializable {
            asset, type_name, ..
        }) => {
            assert_eq!(asset, "thing");
            assert_eq!(type_name, "Opaque");
        }
        other => panic!("expected NotSerializable, got {other:?}"),
    }
}

#[test]
fn types_are_inferred_by_a_compile_probe_layer_by_layer() {
    let p = project(&[
        "fn halve(x: f64) -> f64 { x / 2.0 }",
        "%%asset readings\n(0..5).map(|i| i * 100).collect::<Vec<i64>>()",
        "%%asset celsius\nreadings.iter().map(|&r| halve(r as f64)).collect::<Vec<f64>>()",
        "%%asset count\ncelsius.len()",
        "%%asset label: String\nformat!(\"{count}\")",
        "%%asset answer\n40 + 2",
        // The value comes out of a macro: the probe's error points into it.
        "%%asset shout\nformat!(\"{}!\", answer)",
        "%%asset listed\nvec![answer; 2]",
    ]);
    let names: Vec<String> = ["count", "label", "answer", "shout", "listed"]
        .map(String::from)
        .to_vec();
    let known = HashMap::new();
    let types = bundle::probe_types(&p, &names, &known, &build_root()).unwrap();
    assert_eq!(types["readings"], "Vec<i64>");
    assert_eq!(types["celsius"], "Vec<f64>");
    assert_eq!(types["count"], "usize");
    assert_eq!(types["label"], "String");
    assert_eq!(types["answer"], "i32");
    assert_eq!(types["shout"], "String");
    assert_eq!(types["listed"], "Vec<i32>");
}

/// A partitioned asset's type is one partition's (what the session knows of
/// it, the map, does not count); its fan-in sees the map.
#[test]
fn partitioned_types_are_one_partitions() {
    let p = project(&[
        "%%asset sq --partitions 0..3\n(partition_index * partition_index, partition.to_string())",
        "%%asset total\nsim_total(&sq)",
        "fn sim_total(m: &std::collections::BTreeMap<String, (usize, String)>) -> usize { m.values().map(|v| v.0).sum() }",
    ]);
    let names: Vec<String> = ["total"].map(String::from).to_vec();
    let mut known = HashMap::new();
    known.insert(
        "sq".to_string(),
        "BTreeMap<String, (usize, String)>".to_string(),
    );
    let types = bundle::probe_types(&p, &names, &known, &build_root()).unwrap();
    assert_eq!(types["sq"], "(usize, String)");
    assert_eq!(types["total"], "usize");
}

/// The job binary's own measurement: a `usage` event before `materialized`
/// (and before `failed`), with its peak memory, CPU and wall time.
#[test]
fn a_bundle_measures_its_own_usage() {
    let p = project(&[
        "%%asset big\nlet v = vec![1u8; 64 << 20];\nv.iter().map(|&x| x as u64).sum::<u64>()",
        "%%asset boom\nif big > 0 { panic!(\"no\") }\n1u8",
    ]);
    let t = types(&[("big", "u64"), ("boom", "u8")]);
    let names: Vec<String> = ["big", "boom"].map(String::from).to_vec();
    let sources = bundle::generate(&p, &names, &t).unwrap();
    let exe = bundle::build(&sources, &build_root(), &t).expect("the bundle builds");
    let dir = tempfile::tempdir().unwrap();
    let events = |out: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix(EVENT_PREFIX))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let big = dir.path().join("big.json");
    let out = Command::new(&exe)
        .args(["big", "--output"])
        .arg(&big)
        .env("SLURM_CPUS_PER_TASK", "3")
        .output()
        .unwrap();
    assert!(out.status.success());
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["usage", "materialized"]);
    let u = &ev[0];
    let rss_mb = u["max_rss_kb"].as_u64().expect("peak memory on Linux") / 1024;
    assert!(
        (60..200).contains(&rss_mb),
        "peak {rss_mb} MiB for 64 MiB: {u}"
    );
    assert_eq!(u["cpus"], 3);
    let (s, e) = (
        u["started_at"].as_f64().unwrap(),
        u["ended_at"].as_f64().unwrap(),
    );
    assert!(s > 1.6e9 && e >= s, "{u}");
    assert!(u["user_ms"].is_u64() && u["sys_ms"].is_u64() && u["wall_ms"].is_u64());

    let out = Command::new(&exe)
        .args(["boom", "--output"])
        .arg(dir.path().join("boom.json"))
        .arg("--input")
        .arg(format!("big={}", big.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let names: Vec<String> = events(&out)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["usage", "failed"]);
}

/// A partitioned asset runs one partition per process from a task table
/// (`--task I`, or `SLURM_ARRAY_TASK_ID`); a panicking partition fails
/// alone; a downstream partitioned like it gets the matching partition, a
/// non-partitioned one the map of all of them.
#[test]
fn partitions_run_from_a_task_table() {
    let p = project(&[
        "%%asset sim --partitions 0..4\nif partition == \"2\" { panic!(\"boom in {partition}\") }\npartition_index as u64 * 10",
        "%%asset doubled --partitions-like sim\nformat!(\"{partition}:{}\", sim * 2)",
        "%%asset total\nsim.iter().map(|(k, v)| format!(\"{k}={v}\")).collect::<Vec<_>>().join(\",\")",
    ]);
    let t = types(&[("sim", "u64"), ("doubled", "String"), ("total", "String")]);
    let names: Vec<String> = ["sim", "doubled", "total"].map(String::from).to_vec();
    bundle::check_free_variables(&p, &names).expect("partition names are in scope");
    let sources = bundle::generate(&p, &names, &t).unwrap();
    assert!(sources
        .main_rs
        .contains("fn asset_sim(partition: &str, partition_index: usize) -> u64"));
    assert!(sources
        .main_rs
        .contains("fn asset_total(sim: std::collections::BTreeMap<String, u64>) -> String"));
    assert!(sources
        .main_rs
        .contains("fn asset_doubled(sim: u64, partition: &str, partition_index: usize) -> String"));
    let exe = bundle::build(&sources, &build_root(), &t).expect("the bundle builds");

    let dir = tempfile::tempdir().unwrap();
    let out = |k: &str| dir.path().join(format!("sim-{k}.json"));
    let table: Vec<serde_json::Value> = ["0", "1", "2", "3"]
        .iter()
        .enumerate()
        .map(|(i, k)| serde_json::json!({"key": k, "index": i, "output": out(k), "inputs": {}, "input_maps": {}}))
        .collect();
    let table_path = dir.path().join("sim.tasks.json");
    std::fs::write(&table_path, serde_json::to_vec(&table).unwrap()).unwrap();
    for task in ["0", "1", "2"] {
        let run = Command::new(&exe)
            .args(["sim", "--task-table"])
            .arg(&table_path)
            .args(["--task", task])
            .output()
            .unwrap();
        assert_eq!(run.status.success(), task != "2", "task {task}");
    }
    // Without --task, Slurm's array index says which.
    let run = Command::new(&exe)
        .args(["sim", "--task-table"])
        .arg(&table_path)
        .env("SLURM_ARRAY_TASK_ID", "3")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read_to_string(out("1")).unwrap(), "10");
    assert_eq!(std::fs::read_to_string(out("3")).unwrap(), "30");
    assert!(!out("2").exists());
    let stderr = Command::new(&exe)
        .args(["sim", "--task-table"])
        .arg(&table_path)
        .args(["--task", "2"])
        .output()
        .unwrap()
        .stderr;
    assert!(String::from_utf8_lossy(&stderr).contains("boom in 2"));
    // Out of the table: an error, no value.
    let run = Command::new(&exe)
        .args(["sim", "--task-table"])
        .arg(&table_path)
        .args(["--task", "9"])
        .output()
        .unwrap();
    assert!(!run.status.success());

    // Partitioned like sim: partition 3 gets sim's partition 3.
    let doubled = dir.path().join("doubled-3.json");
    let like = serde_json::json!([{"key": "3", "index": 3, "output": doubled, "inputs": {"sim": out("3")}}]);
    let like_path = dir.path().join("doubled.tasks.json");
    std::fs::write(&like_path, like.to_string()).unwrap();
    let run = Command::new(&exe)
        .args(["doubled", "--task-table"])
        .arg(&like_path)
        .args(["--task", "0"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read_to_string(&doubled).unwrap(), "\"3:60\"");

    // Not partitioned: the map, from --input-map (or a table's input_maps).
    let map = serde_json::json!({"0": out("0"), "1": out("1"), "3": out("3")});
    let map_path = dir.path().join("sim.map.json");
    std::fs::write(&map_path, map.to_string()).unwrap();
    let total = dir.path().join("total.json");
    let run = Command::new(&exe)
        .args(["total", "--output"])
        .arg(&total)
        .arg("--input-map")
        .arg(format!("sim={}", map_path.display()))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&total).unwrap(),
        "\"0=0,1=10,3=30\""
    );
    // A partitioned asset run without a table says how to run it.
    let run = Command::new(&exe)
        .args(["sim", "--output"])
        .arg(dir.path().join("x.json"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--task-table"));
}
