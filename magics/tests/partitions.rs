//! Partitioned assets planned through the run service, against a state
//! database the test fills: which partitions run (missing, failed, stale;
//! a `sim[...]` selection; `--force`), the partition versions, the
//! `%assets` summary and freshness, `--partitions-from` keys read from the
//! stored value, and the clear refusals (keys not known yet, unknown
//! keys, Slurm before arrays exist).

use std::path::{Path, PathBuf};

use slurmbook_magics::model::MaterializationStatus;
use slurmbook_magics::partitions::{self, PartState};
use slurmbook_magics::plan::Action;
use slurmbook_magics::run::Workspace;
use slurmbook_magics::state::{ResultRecord, StartRecord};
use slurmbook_magics::{parse_selection, MaterializeArgs, Project, Target};

fn write_notebook(dir: &Path, cells: &[&str]) -> PathBuf {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let path = dir.join("nb.ipynb");
    std::fs::write(&path, nb.to_string()).unwrap();
    path
}

/// Records an attempt at partition `key` of `asset` at `version` (the
/// current partition version unless given).
fn record(
    ws: &mut Workspace,
    p: &Project,
    asset: &str,
    key: &str,
    ok: bool,
    version: Option<&str>,
) {
    let v = p.versions.get(asset).unwrap();
    let pv = version
        .map(str::to_string)
        .unwrap_or_else(|| partitions::version_of(p, asset, key));
    let db = ws.db().unwrap();
    let id = db
        .record_partition_start(
            &StartRecord {
                run_id: None,
                asset,
                version: &pv,
                own_hash: &v.own_hash,
                upstream_versions: &v.upstreams,
                target: Target::Local,
                job_id: None,
                node: None,
            },
            key,
        )
        .unwrap();
    db.record_result(
        id,
        &ResultRecord {
            status: Some(if ok {
                MaterializationStatus::Ok
            } else {
                MaterializationStatus::Failed
            }),
            ..ResultRecord::default()
        },
    )
    .unwrap();
}

fn args(selection: &str, force: bool) -> MaterializeArgs {
    MaterializeArgs {
        selection: Some(parse_selection(selection).unwrap()),
        force,
        ..MaterializeArgs::default()
    }
}

const NOTEBOOK: &[&str] = &[
    "%%asset sim: u64 --partitions 0..10 --max-parallel 4\npartition_index as u64",
    "%%asset report\nsim.len()",
    "%%asset days\nvec![\"mon\".to_string(), \"tue\".to_string()]",
    "%%asset per_day: String --partitions-from days\npartition.to_string()",
    "%%asset like: u64 --partitions-like sim\nsim + 1",
];

#[tokio::test]
async fn only_missing_failed_or_stale_partitions_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = Workspace::for_notebook(write_notebook(dir.path(), NOTEBOOK));
    let p = ws.project().unwrap();
    for k in 0..10 {
        let key = k.to_string();
        match k {
            3 | 7 => record(&mut ws, &p, "sim", &key, false, None),
            5 => record(&mut ws, &p, "sim", &key, true, Some("an-old-version")),
            9 => {}
            _ => record(&mut ws, &p, "sim", &key, true, None),
        }
    }
    let parts = partitions::status(&p, ws.db().unwrap(), "sim")
        .unwrap()
        .unwrap();
    assert_eq!(parts.states[3], PartState::Failed);
    assert_eq!(parts.states[5], PartState::Stale);
    assert_eq!(parts.states[9], PartState::Missing);
    assert_eq!(
        parts.summary(),
        "6/10 fresh, 2 failed (3, 7), 1 stale (5), 1 missing (9)"
    );
    // Partition versions: one per key, and they follow the asset's.
    assert_ne!(parts.versions[0], parts.versions[1]);
    assert_eq!(parts.versions[4], partitions::version_of(&p, "sim", "4"));
    // `like` partition KEY depends on sim's partition KEY.
    assert_ne!(
        partitions::version_of(&p, "like", "4"),
        partitions::version_of(&p, "like", "5")
    );

    let snap = ws.snapshot(&p).unwrap();
    assert_eq!(snap.partitions["sim"].summary(), parts.summary());
    let described = slurmbook_magics::views::describe_asset(&p, &snap, "sim").unwrap();
    assert!(
        described.contains("partitions: 0..10: 6/10 fresh, 2 failed (3, 7)"),
        "{described}"
    );

    let run = ws.plan_materialize(&args("sim", false)).await.unwrap();
    let step = run.plan.step("sim").unwrap();
    assert_eq!(step.action, Action::Run);
    let sp = step.partitions.as_ref().unwrap();
    assert!(
        run.plan.text().contains("[4 of 10 partitions: 3, 5, 7, 9]"),
        "{}",
        run.plan.text()
    );
    assert_eq!(sp.total, 10);
    assert_eq!(sp.max_parallel, Some(4));
    assert_eq!(
        sp.run,
        [(3, "3"), (5, "5"), (7, "7"), (9, "9")]
            .map(|(i, k)| (i, k.to_string()))
            .to_vec()
    );

    // A selection of partitions: those of them that are not fresh; all
    // of them with --force.
    let run = ws
        .plan_materialize(&args("sim[0,3,8..10]", false))
        .await
        .unwrap();
    let keys: Vec<&str> = run
        .plan
        .step("sim")
        .unwrap()
        .partitions
        .as_ref()
        .unwrap()
        .run
        .iter()
        .map(|(_, k)| k.as_str())
        .collect();
    assert_eq!(keys, ["3", "9"]);
    let run = ws
        .plan_materialize(&args("sim[0,3,8..10]", true))
        .await
        .unwrap();
    let keys: Vec<&str> = run
        .plan
        .step("sim")
        .unwrap()
        .partitions
        .as_ref()
        .unwrap()
        .run
        .iter()
        .map(|(_, k)| k.as_str())
        .collect();
    assert_eq!(keys, ["0", "3", "8", "9"]);

    // Partitions-like: all ten, like sim, none fresh.
    let run = ws.plan_materialize(&args("like", false)).await.unwrap();
    let sp = run.plan.step("like").unwrap().partitions.clone().unwrap();
    assert_eq!(sp.like.as_deref(), Some("sim"));
    assert_eq!(sp.run.len(), 10);

    // Bad selections and targets are refused, naming what is wrong.
    let e = ws
        .plan_materialize(&args("sim[3,12]", false))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("no partition `12`"), "{e}");
    let e = ws
        .plan_materialize(&args("report[1]", false))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("not partitioned"), "{e}");
    // On Slurm, the partitions to run are ONE job array (its own job),
    // run on the loopback cluster by tests/notebooks/test_partitions_slurm.py.
    let mut on_slurm = args("+like", false);
    on_slurm.target = Some(Target::Slurm);
    on_slurm.dry_run = true;
    let run = ws.plan_materialize(&on_slurm).await.unwrap();
    let a = |name: &str| {
        run.plan
            .allocations
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", run.plan.allocations))
    };
    let sim = run.plan.step("sim").unwrap().partitions.clone().unwrap();
    assert_eq!(
        a("sim").sbatch.array.map(|x| x.count as usize),
        Some(sim.run.len())
    );
    assert_eq!(a("like").sbatch.array.map(|x| x.count), Some(10));
    let corr = sim.run.len() == 10;
    assert_eq!(a("like").after_corr.is_empty(), !corr, "{:?}", a("like"));
    assert!(run.plan.text().contains("job array"), "{}", run.plan.text());
}

#[tokio::test]
async fn a_fresh_asset_with_fresh_partitions_is_skipped_and_partitions_from_reads_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = Workspace::for_notebook(write_notebook(dir.path(), NOTEBOOK));
    let p = ws.project().unwrap();
    // per_day's keys: days has no value yet, or runs in the same run.
    let e = ws
        .plan_materialize(&args("per_day", false))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("materialize `days` first"), "{e}");
    let run = ws.plan_materialize(&args("+per_day", false)).await.unwrap();
    assert_eq!(run.plan.step("days").unwrap().action, Action::Run);
    let step = run.plan.step("per_day").unwrap();
    assert_eq!(step.action, Action::Refused);
    assert!(step.why.contains("once `days` is done"), "{}", step.why);

    // days materialized in the kernel: its stored value gives the keys.
    let store = ws.store();
    let v = p.versions.get("days").unwrap();
    let path = store
        .write_bytes("days", &v.version, "json", br#"["mon","tue"]"#)
        .unwrap();
    let db = ws.db().unwrap();
    let id = db
        .record_start(&StartRecord {
            run_id: None,
            asset: "days",
            version: &v.version,
            own_hash: &v.own_hash,
            upstream_versions: &v.upstreams,
            target: Target::Local,
            job_id: None,
            node: None,
        })
        .unwrap();
    db.record_result(
        id,
        &ResultRecord {
            value_path: Some(path.display().to_string()),
            ..ResultRecord::default()
        },
    )
    .unwrap();
    let run = ws.plan_materialize(&args("per_day", false)).await.unwrap();
    let sp = run
        .plan
        .step("per_day")
        .unwrap()
        .partitions
        .clone()
        .unwrap();
    assert_eq!(sp.run, vec![(0, "mon".to_string()), (1, "tue".to_string())]);

    // A stored value that is not a key list: refused, naming the key.
    std::fs::write(&path, br#"["mon","a b"]"#).unwrap();
    let e = ws
        .plan_materialize(&args("per_day", false))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("`a b`"), "{e}");
}

#[tokio::test]
async fn fewer_keys_than_stored_make_the_asset_and_its_selected_downstream_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = Workspace::for_notebook(write_notebook(
        dir.path(),
        &[
            "%%asset sim: u64 --partitions 0..3\npartition_index as u64",
            "%%asset report\nsim.len()",
        ],
    ));
    let p = ws.project().unwrap();
    for k in ["0", "1", "2", "3"] {
        record(&mut ws, &p, "sim", k, true, None);
    }
    // The whole asset, stored with 4 partitions (it had `0..4` then).
    for (asset, metadata) in [
        ("sim", serde_json::json!({"partitions": 4})),
        ("report", serde_json::json!({})),
    ] {
        let v = p.versions.get(asset).unwrap();
        let db = ws.db().unwrap();
        let id = db
            .record_start(&StartRecord {
                run_id: None,
                asset,
                version: &v.version,
                own_hash: &v.own_hash,
                upstream_versions: &v.upstreams,
                target: Target::Local,
                job_id: None,
                node: None,
            })
            .unwrap();
        db.record_result(
            id,
            &ResultRecord {
                metadata,
                ..ResultRecord::default()
            },
        )
        .unwrap();
    }
    let snap = ws.snapshot(&p).unwrap();
    assert_eq!(
        snap.freshness["sim"].to_string(),
        "stale (partitions changed: 4 stored, 3 now)"
    );
    assert!(snap.freshness["report"].is_fresh());
    let run = ws
        .plan_materialize(&args("sim, report", false))
        .await
        .unwrap();
    let sim = run.plan.step("sim").unwrap();
    assert_eq!(sim.action, Action::Run);
    assert!(sim.partitions.as_ref().unwrap().run.is_empty());
    let report = run.plan.step("report").unwrap();
    assert_eq!(report.action, Action::Run);
    assert_eq!(report.why, "partitions of upstream sim run");
}

/// Records a success of partition `key` of `asset` on Slurm that ran for
/// `elapsed_ms` (what `--per-task auto` bundles by).
fn record_slurm(ws: &mut Workspace, p: &Project, asset: &str, key: &str, elapsed_ms: u64) {
    let v = p.versions.get(asset).unwrap();
    let pv = partitions::version_of(p, asset, key);
    let db = ws.db().unwrap();
    let start = StartRecord {
        run_id: None,
        asset,
        version: &pv,
        own_hash: &v.own_hash,
        upstream_versions: &v.upstreams,
        target: Target::Slurm,
        job_id: Some("9_0"),
        node: None,
    };
    let id = db.record_partition_start(&start, key).unwrap();
    let result = ResultRecord {
        status: Some(MaterializationStatus::Ok),
        metadata: serde_json::json!({ "elapsed_ms": elapsed_ms }),
        ..ResultRecord::default()
    };
    db.record_result(id, &result).unwrap();
}

#[tokio::test]
async fn short_partitions_are_bundled_into_fewer_array_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = Workspace::for_notebook(write_notebook(dir.path(), NOTEBOOK));
    let p = ws.project().unwrap();
    let mut on_slurm = args("+like", true);
    on_slurm.target = Some(Target::Slurm);
    on_slurm.dry_run = true;
    // Never measured: one partition per task.
    let run = ws.plan_materialize(&on_slurm).await.unwrap();
    let array = |run: &slurmbook_magics::run::PlannedRun, name: &str| {
        let a = run.plan.allocations.iter().find(|a| a.name == name);
        a.and_then(|a| a.sbatch.array)
            .unwrap_or_else(|| panic!("{name}: {:?}", run.plan.allocations))
    };
    assert_eq!(
        (array(&run, "sim").count, array(&run, "sim").per_task),
        (10, 1)
    );
    // Measured short (the median of the latest successes on Slurm).
    for (k, ms) in [(0, 20), (1, 25), (2, 900_000), (3, 10), (4, 30)] {
        record_slurm(&mut ws, &p, "sim", &k.to_string(), ms);
    }
    let db = ws.db().unwrap();
    assert_eq!(partitions::typical_ms(db, "sim").unwrap(), Some(25));
    assert_eq!(partitions::typical_ms(db, "report").unwrap(), None);
    let mut plan = ws.plan_materialize(&on_slurm).await.unwrap().plan;
    // The cluster is unknown here: without its CPUs, auto stays at one.
    assert_eq!(
        plan.step("sim")
            .unwrap()
            .partitions
            .as_ref()
            .unwrap()
            .typical_ms,
        Some(25)
    );
    // With them (what a real run reads from sinfo): `--max-parallel 4`
    // slots, so 3 partitions per task in 4 tasks, and `like` (same
    // partitions) bundles alike and chains task by task.
    let limits =
        slurmbook_magics::plan::ClusterLimits::from_sinfo("debug*|1:00:00|2|1000|0/8/0/8\n");
    plan.allocate(
        &p,
        &slurmbook_magics::plan::AllocationContext {
            limits,
            ..Default::default()
        },
    );
    let a = |name: &str| {
        plan.allocations
            .iter()
            .find(|a| a.name == name)
            .unwrap()
            .clone()
    };
    let sim = a("sim");
    let arr = sim.sbatch.array.unwrap();
    assert_eq!((arr.count, arr.per_task, arr.max_parallel), (4, 3, Some(4)));
    let note = sim.note.clone().unwrap();
    assert!(
        note.contains("3 partitions per task")
            && note.contains("auto: the last run's partitions took 25 ms each, 4 run at once"),
        "{note}"
    );
    let like = a("like");
    assert_eq!(
        like.sbatch.array.map(|x| (x.count, x.per_task)),
        Some((4, 3))
    );
    assert_eq!(like.after_corr, ["sim"]);
    assert!(like.note.unwrap().contains("like sim"));
    assert!(
        plan.text().contains("3 partitions per task"),
        "{}",
        plan.text()
    );
}
