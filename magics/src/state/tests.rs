//! Tests of the state database.

use super::*;
use crate::model::{CellRef, MaterializationStatus, RunId, RunStatus, Target};
use std::collections::BTreeMap;

fn ups(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn start<'a>(
    run: RunId,
    asset: &'a str,
    version: &'a str,
    ups: &'a BTreeMap<String, String>,
) -> StartRecord<'a> {
    StartRecord {
        run_id: Some(run),
        asset,
        version,
        own_hash: "own",
        upstream_versions: ups,
        target: Target::Slurm,
        job_id: Some("4242"),
        node: None,
    }
}

#[test]
fn round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let u = ups(&[("temperatures", "v0")]);
    let (run, id) = {
        let db = StateDb::open(dir.path()).unwrap();
        assert!(dir.path().join(".slurmbook/state.db").exists());
        let run = db
            .begin_run("+summary", Target::Slurm, Some("cluster"))
            .unwrap();
        let id = db.record_start(&start(run, "summary", "v1", &u)).unwrap();
        assert_eq!(
            db.latest("summary").unwrap().unwrap().status,
            MaterializationStatus::Running
        );
        assert!(db.last_success("summary").unwrap().is_none());
        db.record_result(
            id,
            &ResultRecord {
                metadata: serde_json::json!({"rows": 3}),
                value_path: Some("/scratch/v".into()),
                node: Some("node7".into()),
                ..Default::default()
            },
        )
        .unwrap();
        db.upsert_job(run, "summary", Some("4242"), "RUNNING")
            .unwrap();
        db.set_offsets(run, "summary", 120, 7).unwrap();
        db.finish_run(run, RunStatus::Ok).unwrap();
        (run, id)
    };
    // Restart: a new connection sees everything.
    let db = StateDb::open(dir.path()).unwrap();
    let m = db.last_success("summary").unwrap().unwrap();
    assert_eq!(m.id, id);
    assert_eq!(m.version, "v1");
    assert_eq!(m.upstream_versions, u);
    assert_eq!(m.run_id, Some(run));
    assert_eq!(m.target, Target::Slurm);
    assert_eq!(m.status, MaterializationStatus::Ok);
    assert_eq!(m.job_id.as_deref(), Some("4242"));
    assert_eq!(m.node.as_deref(), Some("node7"));
    assert_eq!(m.metadata["rows"], 3);
    assert_eq!(m.value_path.as_deref(), Some("/scratch/v"));
    assert!(m.finished_at.unwrap() >= m.started_at);
    assert!(m.duration_ms.unwrap() >= 0);
    let runs = db.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Ok);
    assert_eq!(runs[0].profile.as_deref(), Some("cluster"));
    assert_eq!(runs[0].selection, "+summary");
    assert!(runs[0].finished_at.is_some());
    assert_eq!(db.latest_run().unwrap().unwrap().id, run);
    assert_eq!(db.run_assets(run).unwrap().len(), 1);
    assert_eq!(db.offsets(run, "summary").unwrap(), Some((120, 7)));
    assert_eq!(db.offsets(run, "other").unwrap(), None);
    assert_eq!(db.run_jobs(run).unwrap()[0].job_id.as_deref(), Some("4242"));
    assert_eq!(db.last_successes().unwrap().len(), 1);
}

#[test]
fn failure_latest_and_last_success_differ() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let u = ups(&[]);
    let run = db.begin_run("*", Target::Local, None).unwrap();
    let ok = db.record_start(&start(run, "a", "v1", &u)).unwrap();
    db.record_result(ok, &ResultRecord::default()).unwrap();
    let bad = db.record_start(&start(run, "a", "v2", &u)).unwrap();
    db.record_result(
        bad,
        &ResultRecord {
            status: Some(MaterializationStatus::Failed),
            error: Some("boom".into()),
            ..Default::default()
        },
    )
    .unwrap();
    db.record_skipped(&[start(run, "b", "v9", &u), start(run, "c", "v9", &u)])
        .unwrap();
    assert_eq!(db.last_success("a").unwrap().unwrap().version, "v1");
    let latest = db.latest("a").unwrap().unwrap();
    assert_eq!(
        (latest.version.as_str(), latest.error.as_deref()),
        ("v2", Some("boom"))
    );
    assert!(
        db.latest("b").unwrap().is_none(),
        "skipped is not an attempt"
    );
    assert_eq!(db.run_assets(run).unwrap().len(), 4);
    assert_eq!(
        db.latest_all().unwrap()["a"].status,
        MaterializationStatus::Failed
    );
    assert!(matches!(
        db.record_result(999, &ResultRecord::default()),
        Err(StateError::NotFound { .. })
    ));
    assert!(matches!(
        db.finish_run(999, RunStatus::Ok),
        Err(StateError::NotFound { .. })
    ));
}

#[test]
fn job_states_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let run = db.begin_run("*", Target::Slurm, None).unwrap();
    db.upsert_job(run, "a", Some("1"), "PENDING").unwrap();
    db.upsert_job(run, "b", Some("2"), "PENDING").unwrap();
    db.upsert_job(run, "b", None, "RUNNING").unwrap();
    db.set_job_states(run, &[("a", "COMPLETED"), ("b", "FAILED")])
        .unwrap();
    let jobs = db.run_jobs(run).unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.state.as_str()).collect::<Vec<_>>(),
        ["COMPLETED", "FAILED"]
    );
    assert_eq!(
        jobs[1].job_id.as_deref(),
        Some("2"),
        "upsert without job id keeps it"
    );
}

#[test]
fn sync_assets_replaces_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let row = |n: &str, v: &str, cell: CellRef| AssetRow {
        name: n.into(),
        version: v.into(),
        own_hash: "o".into(),
        cell,
    };
    db.sync_assets(&[
        row("a", "1", CellRef::saved(0, Some("x".into()))),
        row("b", "1", CellRef::session(None)),
    ])
    .unwrap();
    db.sync_assets(&[
        row("b", "2", CellRef::session(None)),
        row("c", "1", CellRef::saved(4, None)),
    ])
    .unwrap();
    let rows = db.assets().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.name.as_str(), r.version.as_str()))
            .collect::<Vec<_>>(),
        [("b", "2"), ("c", "1")]
    );
    assert!(rows[0].cell.is_session());
    assert_eq!(rows[1].cell.index, 4);
}

#[test]
fn wal_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let mode: String = db
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(db.user_version().unwrap(), SCHEMA_VERSION);
    db.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let e = StateDb::open(dir.path())
        .err()
        .expect("newer schema is refused");
    assert!(
        matches!(e, StateError::NewerSchema { found: 99, .. }),
        "{e}"
    );
}

#[test]
fn version_1_databases_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute("INSERT INTO runs (started_at, selection, target, status) VALUES ('2024-01-01T00:00:00.000Z', 'x', 'slurm', 'running')", [])
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let db = StateDb::open_file(&path).unwrap();
    assert_eq!(db.user_version().unwrap(), SCHEMA_VERSION);
    let run = db.latest_run().unwrap().unwrap();
    assert_eq!(db.run_remote(run.id).unwrap(), None);
    db.set_run_remote(run.id, "{\"run_dir\":\"/x\"}").unwrap();
    assert_eq!(
        db.run_remote(run.id).unwrap().as_deref(),
        Some("{\"run_dir\":\"/x\"}")
    );
    assert!(db.set_run_remote(run.id + 1, "{}").is_err());
}

#[test]
fn concurrent_reader_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = StateDb::open(dir.path()).unwrap();
    let reader = StateDb::open(dir.path()).unwrap();
    let run = writer.begin_run("*", Target::Local, None).unwrap();
    // An open write transaction does not block the reader, which sees the
    // last committed state.
    writer.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .conn
        .execute("INSERT INTO runs (started_at, selection, target, status) VALUES ('2024-01-01T00:00:00.000Z', 'x', 'local', 'running')", [])
        .unwrap();
    assert_eq!(reader.runs().unwrap().len(), 1);
    writer.conn.execute_batch("COMMIT").unwrap();
    assert_eq!(reader.runs().unwrap().len(), 2);

    // Threads: one writes results while another reads, without errors.
    let path = dir.path().to_path_buf();
    let w = std::thread::spawn(move || {
        let db = StateDb::open(&path).unwrap();
        let u = BTreeMap::new();
        for i in 0..200 {
            let name = format!("a{}", i % 10);
            let id = db.record_start(&start(run, &name, "v", &u)).unwrap();
            db.record_result(id, &ResultRecord::default()).unwrap();
        }
    });
    let mut reads = 0;
    while !w.is_finished() {
        let all = reader.last_successes().unwrap();
        assert!(all.len() <= 10);
        reads += 1;
    }
    w.join().unwrap();
    assert!(reads > 0);
    assert_eq!(reader.last_successes().unwrap().len(), 10);
    assert_eq!(reader.run_assets(run).unwrap().len(), 200);
}

/// One finished run of `asset` in `db` (status ok), returning the run.
fn one_run(db: &StateDb, asset: &str, status: RunStatus) -> RunId {
    let u = ups(&[]);
    let run = db.begin_run(asset, Target::Slurm, Some("cluster")).unwrap();
    let id = db.record_start(&start(run, asset, "v1", &u)).unwrap();
    db.record_result(
        id,
        &ResultRecord {
            value_path: Some(format!("/scratch/{asset}.json")),
            ..Default::default()
        },
    )
    .unwrap();
    db.finish_run(run, status).unwrap();
    run
}

#[test]
fn scheduled_runs_import_once_and_the_newest_success_by_time_is_the_latest() {
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = StateDb::open(here.path()).unwrap();
    let remote = StateDb::open(there.path()).unwrap();
    let old = one_run(&remote, "a", RunStatus::Ok);
    std::thread::sleep(std::time::Duration::from_millis(5));
    one_run(&local, "a", RunStatus::Ok);
    let mine = local.last_success("a").unwrap().unwrap();
    // Still running on the cluster: not imported yet.
    let running = remote.begin_run("b", Target::Slurm, None).unwrap();
    assert_eq!(
        local
            .import_runs(&remote, "cluster/x", "cluster", "scheduled on cluster: ")
            .unwrap(),
        1
    );
    // The imported run is older than the local success: it does not shadow it.
    assert_eq!(local.last_success("a").unwrap().unwrap().id, mine.id);
    assert_eq!(local.last_successes().unwrap()["a"].id, mine.id);
    assert_eq!(local.latest_all().unwrap()["a"].id, mine.id);
    let imported = local
        .runs()
        .unwrap()
        .into_iter()
        .find(|r| r.id != mine.run_id.unwrap())
        .unwrap();
    assert_eq!(imported.profile.as_deref(), Some("cluster"));
    assert_eq!(
        local.run_trigger(imported.id).unwrap().as_deref(),
        Some("scheduled on cluster")
    );
    assert_eq!(
        local
            .import_runs(&remote, "cluster/x", "cluster", "p: ")
            .unwrap(),
        0,
        "once"
    );
    let _ = old;
    // A newer scheduled success is the latest; its running sibling came in once finished.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let newer = one_run(&remote, "a", RunStatus::Ok);
    let used = crate::model::Usage {
        wall_ms: Some(1234),
        max_rss_bytes: Some(5 << 20),
        ..Default::default()
    };
    let remote_mat = remote.run_assets(newer).unwrap()[0].id;
    remote.record_usage(remote_mat, &used).unwrap();
    remote.finish_run(running, RunStatus::Failed).unwrap();
    assert_eq!(
        local
            .import_runs(&remote, "cluster/x", "cluster", "p: ")
            .unwrap(),
        2
    );
    let newest = local.last_success("a").unwrap().unwrap();
    assert!(newest.id != mine.id && newest.value_path.as_deref() == Some("/scratch/a.json"));
    assert_eq!(local.runs().unwrap().len(), 4);
    // Its usage came with it (for %runs RUN and %history).
    let usage = local.usage(newest.id).unwrap().unwrap();
    assert_eq!(
        (usage.wall_ms, usage.max_rss_bytes),
        (Some(1234), Some(5 << 20))
    );
}

#[test]
fn usage_round_trip_per_run_and_history() {
    use crate::model::{Requested, Usage, UsageSource};
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let u = BTreeMap::new();
    let run = db.begin_run("+b", Target::Slurm, None).unwrap();
    let at = |s: &str| Some(parse_ts("t", s).unwrap());
    let usage = Usage {
        source: Some(UsageSource::Job),
        allocation: Some("alloc_a".into()),
        submitted_at: at("2026-01-01T10:00:00.000Z"),
        job_started_at: at("2026-01-01T10:00:02.000Z"),
        started_at: at("2026-01-01T10:00:02.500Z"),
        ended_at: at("2026-01-01T10:00:05.000Z"),
        queue_ms: Some(2000),
        wall_ms: Some(2500),
        cpu_ms: Some(2400),
        max_rss_bytes: Some(200 << 20),
        cpus: Some(1),
        nodes: Some(1),
        gpus: None,
        gpu_util_pct: Some(12.5),
        gpu_mem_bytes: None,
        requested: Requested {
            cpus: Some(1),
            mem_bytes: Some(2 << 30),
            time_s: Some(600),
            gpus: None,
            nodes: None,
        },
    };
    let mut ids = Vec::new();
    for (i, status) in [
        MaterializationStatus::Ok,
        MaterializationStatus::Failed,
        MaterializationStatus::Ok,
    ]
    .into_iter()
    .enumerate()
    {
        let id = db.record_start(&start(run, "a", "v", &u)).unwrap();
        db.record_result(
            id,
            &ResultRecord {
                status: Some(status),
                ..ResultRecord::default()
            },
        )
        .unwrap();
        if i != 1 {
            db.record_usage(id, &usage).unwrap();
        }
        ids.push(id);
    }
    assert_eq!(db.usage(ids[0]).unwrap().as_ref(), Some(&usage));
    assert_eq!(db.usage(ids[1]).unwrap(), None);
    let by_run = db.run_usage(run).unwrap();
    assert_eq!(by_run.len(), 2);
    let history = db.asset_history("a", 2).unwrap();
    assert_eq!(
        history.iter().map(|(m, _)| m.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    assert!(history[0].1.is_some() && history[1].1.is_none());
    let last = db.last_success_usage().unwrap();
    assert_eq!(last["a"].max_rss_bytes, Some(200 << 20));
    // Replacing keeps one row.
    let mut other = usage.clone();
    other.wall_ms = Some(1);
    db.record_usage(ids[2], &other).unwrap();
    assert_eq!(db.usage(ids[2]).unwrap().unwrap().wall_ms, Some(1));
    assert_eq!(db.run_usage(run).unwrap().len(), 2);
}

#[test]
fn version_2_databases_get_the_usage_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(SCHEMA_V2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
    }
    let db = StateDb::open_file(&path).unwrap();
    assert_eq!(db.user_version().unwrap(), SCHEMA_VERSION);
    assert!(db.last_success_usage().unwrap().is_empty());
}

#[test]
fn the_state_directory_and_database_are_the_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join(STATE_DIR)), 0o700);
    assert_eq!(mode(db.path()), 0o600);
    // A database made readable by others (an older version, a copy) is
    // made private again when opened.
    std::fs::set_permissions(db.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(db);
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(mode(db.path()), 0o600);
}

#[test]
fn processes_opening_a_new_database_together_all_succeed() {
    // Two `slurmbook tick`s started at once both create the database: the
    // switch to WAL and the migration must wait for each other, not fail.
    for _ in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || StateDb::open(&dir).map(|db| db.user_version().unwrap()))
            })
            .collect();
        for opener in openers {
            assert_eq!(opener.join().unwrap().unwrap(), SCHEMA_VERSION);
        }
    }
}

#[test]
fn partitions_have_their_own_rows_apart_from_the_assets() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let u = ups(&[]);
    let run = db.begin_run("sim", Target::Local, None).unwrap();
    let whole = db.record_start(&start(run, "sim", "v1", &u)).unwrap();
    for (key, ok) in [("0", true), ("1", false), ("2", true)] {
        let id = db
            .record_partition_start(&start(run, "sim", &format!("p{key}"), &u), key)
            .unwrap();
        db.record_result(
            id,
            &ResultRecord {
                status: Some(if ok {
                    MaterializationStatus::Ok
                } else {
                    MaterializationStatus::Failed
                }),
                ..Default::default()
            },
        )
        .unwrap();
    }
    // The partitions' rows are not the asset's: it is still running, with
    // no success.
    assert_eq!(
        db.latest("sim").unwrap().unwrap().status,
        MaterializationStatus::Running
    );
    assert!(db.last_success("sim").unwrap().is_none());
    assert!(!db.last_successes().unwrap().contains_key("sim"));
    assert_eq!(db.run_assets(run).unwrap().len(), 1);
    let parts = db.latest_partitions("sim").unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts["1"].status, MaterializationStatus::Failed);
    assert_eq!(parts["2"].version, "p2");
    assert_eq!(parts["2"].partition.as_deref(), Some("2"));
    // Partition 1 again: its latest attempt is the new one.
    let id = db
        .record_partition_start(&start(run, "sim", "p1", &u), "1")
        .unwrap();
    db.record_result(id, &ResultRecord::default()).unwrap();
    assert_eq!(
        db.latest_partitions("sim").unwrap()["1"].status,
        MaterializationStatus::Ok
    );
    assert_eq!(db.run_partitions(run, "sim").unwrap().len(), 4);
    db.record_result(whole, &ResultRecord::default()).unwrap();
    assert_eq!(db.last_success("sim").unwrap().unwrap().partition, None);
}

#[test]
fn version_5_databases_get_the_partition_column() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path()).unwrap();
        db.conn
            .execute_batch("DROP INDEX materializations_by_partition; ALTER TABLE materializations DROP COLUMN partition;")
            .unwrap();
        db.conn.pragma_update(None, "user_version", 5).unwrap();
    }
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(db.user_version().unwrap(), SCHEMA_VERSION);
    assert!(db.latest_partitions("sim").unwrap().is_empty());
}
