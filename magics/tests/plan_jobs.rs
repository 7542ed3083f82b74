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

#[test]
fn dry_run_lists_allocations_and_their_assets() {
    let dir = tempfile::tempdir().unwrap();
    let path = notebook(
        dir.path(),
        &[
            "%%asset a --time=00:10:00\n1u64",
            "%%asset b --time=00:10:00\na + 1",
            "%%asset c --partition=long\nb + 1",
            "%%asset d --own-job\nc + 1",
            "%%asset e\nd + 1",
        ],
    );
    let project = load_project(&path, &SessionOverrides::new()).unwrap();
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
