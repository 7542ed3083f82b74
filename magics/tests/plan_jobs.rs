//! `%materialize --dry-run` shows the Slurm jobs a run would make: which
//! assets share an allocation, and why others run alone.

use std::collections::HashMap;

use slurmbook_magics::plan::plan;
use slurmbook_magics::{load_project, JobGrouping, MaterializeArgs, SessionOverrides, Target};

fn notebook(dir: &std::path::Path, sources: &[&str]) -> std::path::PathBuf {
    let cells: Vec<serde_json::Value> = sources
        .iter()
        .map(|s| {
            serde_json::json!({"cell_type": "code", "metadata": {}, "outputs": [],
                               "execution_count": null, "source": s})
        })
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let path = dir.join("jobs.ipynb");
    std::fs::write(&path, nb.to_string()).unwrap();
    path
}

/// a and b share options; c asks for another partition.
const ABC: [&str; 3] = [
    "%%asset a --time=00:10:00\n1u64",
    "%%asset b --time=00:10:00\na + 1",
    "%%asset c --partition=long\nb + 1",
];

fn project_of(cells: &[&str]) -> slurmbook_magics::Project {
    let dir = tempfile::tempdir().unwrap();
    let path = notebook(dir.path(), cells);
    load_project(&path, &SessionOverrides::new()).unwrap()
}

#[test]
fn dry_run_lists_allocations_and_their_assets() {
    let project = project_of(&[
        ABC[0],
        ABC[1],
        ABC[2],
        "%%asset d --own-job\nc + 1",
        "%%asset e\nd + 1",
    ]);
    let grouped = plan(
        &project,
        &MaterializeArgs::default(),
        &HashMap::new(),
        Target::Slurm,
    )
    .unwrap();
    let text = grouped.text();
    assert_eq!(grouped.allocations.len(), 4, "{text}");
    assert!(
        text.contains("Slurm jobs (grouped): 4 jobs for 5 assets"),
        "{text}"
    );
    assert!(
        text.contains(
            "  job alloc_a: 2 steps: a, b [time=00:20:00 nodes=1 ntasks=1 cpus-per-task=1]"
        ),
        "{text}"
    );
    assert!(
        text.contains("  job c, after alloc_a [partition=long]"),
        "{text}"
    );
    assert!(text.contains("  job d, after c (--own-job)"), "{text}");
    assert!(text.contains("  job e, after d\n"), "{text}");
    let per_asset = plan(
        &project,
        &MaterializeArgs {
            jobs: Some(JobGrouping::PerAsset),
            ..MaterializeArgs::default()
        },
        &HashMap::new(),
        Target::Slurm,
    )
    .unwrap();
    assert_eq!(per_asset.allocations.len(), 5);
    assert!(
        per_asset
            .text()
            .contains("Slurm jobs (per-asset): 5 jobs for 5 assets"),
        "{}",
        per_asset.text()
    );
    // In the kernel there are no Slurm jobs to show.
    let local = plan(
        &project,
        &MaterializeArgs::default(),
        &HashMap::new(),
        Target::Local,
    )
    .unwrap();
    assert!(local.allocations.is_empty());
    assert!(!local.text().contains("Slurm jobs"), "{}", local.text());
}

#[test]
fn dry_run_groups_with_the_profiles_defaults_and_grouping() {
    use slurmbook_magics::config::{ConfigFile, Settings};
    let project = project_of(&ABC);
    let file = ConfigFile::parse(
        "[profiles.cluster]\ntarget = \"slurm\"\npartition = \"long\"\ntime = \"00:05:00\"\n",
        None,
    )
    .unwrap();
    let no_env = |_: &str| None;
    let settings = Settings::resolve(&file, Some("cluster"), &no_env, &Default::default()).unwrap();
    let args = MaterializeArgs::default();
    let own = plan(&project, &args, &HashMap::new(), Target::Slurm).unwrap();
    // The assets' own options alone: c's partition differs from a's and b's.
    assert_eq!(own.allocations.len(), 2, "{}", own.text());
    // With the profile's partition and time, all three share one job whose
    // time is the sum of a's, b's and the profile's default for c.
    let profiled = own.with_profile(&project, &settings);
    let text = profiled.text();
    assert_eq!(profiled.allocations.len(), 1, "{text}");
    assert!(
        text.contains("job alloc_a: 3 steps: a, b, c [partition=long time=00:25:00"),
        "{text}"
    );
    assert!(text.contains("partition=long"), "{text}");
    let mut overrides = std::collections::BTreeMap::new();
    overrides.insert("jobs".to_string(), "per-asset".to_string());
    let per_asset = Settings::resolve(&file, Some("cluster"), &no_env, &overrides).unwrap();
    let split = plan(&project, &args, &HashMap::new(), Target::Slurm)
        .unwrap()
        .with_profile(&project, &per_asset);
    assert_eq!(split.allocations.len(), 3, "{}", split.text());
}

#[test]
fn a_step_another_run_materialized_leaves_the_jobs() {
    let project = project_of(&[ABC[0], ABC[1], ABC[2], "%%asset d --own-job\nc + 1"]);
    let mut p = plan(
        &project,
        &MaterializeArgs::default(),
        &HashMap::new(),
        Target::Slurm,
    )
    .unwrap();
    let jobs = |p: &slurmbook_magics::plan::Plan| -> Vec<(String, Vec<String>, Vec<String>)> {
        p.allocations
            .iter()
            .map(|a| (a.name.clone(), a.assets.clone(), a.after.clone()))
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        jobs(&p),
        [
            ("alloc_a".into(), s(&["a", "b"]), s(&[])),
            ("c".into(), s(&["c"]), s(&["alloc_a"])),
            ("d".into(), s(&["d"]), s(&["c"])),
        ]
    );
    // The group keeps b alone: b's own job, which c now waits for.
    p.reuse("a", "materialized by run 7".into());
    assert_eq!(
        jobs(&p),
        [
            ("b".into(), s(&["b"]), s(&[])),
            ("c".into(), s(&["c"]), s(&["b"])),
            ("d".into(), s(&["d"]), s(&["c"])),
        ]
    );
    let a = p.step("a").unwrap();
    assert_eq!(
        (&a.action, a.why.as_str()),
        (
            &slurmbook_magics::plan::Action::Skip,
            "materialized by run 7"
        )
    );
    // A job left without assets goes, and out of its dependents' afterok.
    p.reuse("c", "materialized by run 8".into());
    assert_eq!(
        jobs(&p),
        [
            ("b".into(), s(&["b"]), s(&[])),
            ("d".into(), s(&["d"]), s(&[])),
        ]
    );
    assert_eq!(p.runs().count(), 2);
}
