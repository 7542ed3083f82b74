//! Job arrays (one Slurm job, one task per partition) against the REAL
//! loopback cluster of `tests/cluster`, through the project's submission
//! and watch code. Nothing is mocked.
//!
//! Needs `python3 tests/cluster/cluster.py up` first; every test FAILS
//! (never skips) when `/tmp/slurmbook-cluster/cluster.json` (or
//! `$SLURMBOOK_CLUSTER_DIR/cluster.json`) is missing. Tests run one at a
//! time (the cluster has 2 CPUs).

#[macro_use]
mod common;
use common::{sh_job as job, transport, unique, Via};
use std::collections::HashMap;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slurmbook_magics::events::{AssetState, Event, Stream};
use slurmbook_magics::exec::slurm::{
    cli, submit_all, submit_allocations_with, watch_run, JobSpec, OutputGate, SlurmJobsResult,
    WatchJob, WatchRun,
};
use slurmbook_magics::plan::{plan_allocations, ClusterLimits, SbatchRequest, StepRequest};
use slurmbook_magics::run::DbRunLog;
use slurmbook_magics::transport::Transport;
use slurmbook_magics::JobGrouping;
use slurmbook_magics::{StateDb, Target};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn array_job(asset: &str, array: &str, after: &[&str], cmd: &str) -> JobSpec {
    let mut j = job(asset, after, cmd);
    j.sbatch.set("array", array).unwrap();
    j
}

type Log = Arc<Mutex<Vec<Event>>>;

struct Run {
    result: SlurmJobsResult,
    log: Log,
    db_jobs: HashMap<String, (Option<String>, String)>,
}

impl Run {
    fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    /// Every stdout event of `label`, in order.
    fn outputs(&self, label: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Output {
                    asset,
                    stream: Stream::Stdout,
                    text,
                } if asset == label => Some(text),
                _ => None,
            })
            .collect()
    }

    fn states(&self, asset: &str) -> Vec<AssetState> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::State { asset: a, state } if a == asset => Some(state),
                _ => None,
            })
            .collect()
    }
}

async fn run_dir(remote: &dyn Transport, name: &str) -> String {
    remote
        .expand_dir(&format!("$SCRATCH/slurmbook-tests/{}", unique(name)))
        .await
        .unwrap()
}

async fn watch(remote: &dyn Transport, name: &str, dir: &str, jobs: &[WatchJob]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open_file(tmp.path().join("state.db")).unwrap();
    let run = db.begin_run(name, Target::Slurm, Some("cluster")).unwrap();
    let log: Log = Arc::default();
    let l = log.clone();
    let emit = move |e: Event| l.lock().unwrap().push(e);
    let w = WatchRun {
        transport: remote,
        run_dir: dir,
        jobs,
        emit: &emit,
        cancel: &AtomicBool::new(false),
        log: &DbRunLog::new(&db, run),
        gate: &OutputGate::new(),
    };
    let result = tokio::time::timeout(Duration::from_secs(300), watch_run(w))
        .await
        .expect("watch finished within 5 minutes")
        .expect("watch succeeded");
    let db_jobs = db
        .run_jobs(run)
        .unwrap()
        .into_iter()
        .map(|r| (r.asset, (r.job_id, r.state)))
        .collect();
    Run {
        result,
        log,
        db_jobs,
    }
}

/// Every `scontrol show job -o ID` record of a job (one per array task).
async fn records(remote: &dyn Transport, id: &str) -> Vec<HashMap<String, String>> {
    let out = remote
        .run(&["scontrol", "show", "job", "-o", id])
        .await
        .unwrap();
    out.stdout_text()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

over_both_transports!(array_tasks_stream_whole_prefixed_lines_and_a_failed_task_is_named,);

/// Two arrays chained task by task (`aftercorr`): task i of the second
/// starts when task i of the first succeeded; a failed first task cancels
/// only its own counterpart.
#[tokio::test]
async fn arrays_chained_aftercorr_wait_task_by_task() {
    let _g = SERIAL.lock().await;
    let remote = transport(Via::Ssh);
    let remote = &*remote;
    let dir = run_dir(remote, "corr").await;
    let specs = vec![
        array_job(
            "up",
            "0-3",
            &[],
            "[ \"$SLURM_ARRAY_TASK_ID\" != 2 ] || exit 5; echo \"up $SLURM_ARRAY_TASK_ID\" > \"up.$SLURM_ARRAY_TASK_ID\"",
        ),
        array_job(
            "down",
            "0-3",
            &["up"],
            "cat \"up.$SLURM_ARRAY_TASK_ID\"",
        ),
    ];
    let requests: Vec<StepRequest> = specs.iter().map(JobSpec::step_request).collect();
    let mut allocations =
        plan_allocations(&requests, JobGrouping::Grouped, &ClusterLimits::default());
    assert_eq!(allocations.len(), 2, "each array is its own job");
    allocations[1].after_corr = vec!["up".into()];
    let submitted = submit_allocations_with(
        remote,
        &dir,
        "corr",
        &specs,
        &allocations,
        Default::default(),
    )
    .await
    .unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("k{i}")).collect();
    let mut jobs = WatchJob::array_tasks("up", &submitted[0].job_id, &[], &keys, 1);
    jobs.extend(WatchJob::array_tasks(
        "down",
        &submitted[1].job_id,
        &["up".into()],
        &keys,
        1,
    ));
    let rec = records(remote, &submitted[1].job_id).await;
    assert!(
        rec.iter()
            .any(|r| r["Dependency"].starts_with("aftercorr:")),
        "{rec:?}"
    );
    let run = watch(remote, "corr", &dir, &jobs).await;
    for i in [0, 1, 3] {
        assert_eq!(
            run.outputs(&format!("down[k{i}]")).concat(),
            format!("up {i}\n")
        );
    }
    let down2 = run
        .result
        .jobs
        .iter()
        .find(|j| j.asset == "down" && j.task.as_ref().is_some_and(|t| t.index == 2))
        .unwrap();
    assert!(
        matches!(&down2.state, AssetState::Cancelled { .. }),
        "{:?}",
        down2.state
    );
    match run.states("down").last() {
        Some(AssetState::Cancelled { because }) => {
            assert!(
                because
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("1 of 4 partitions"),
                "{because:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

async fn array_tasks_stream_whole_prefixed_lines_and_a_failed_task_is_named(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let dir = run_dir(remote, "arr10").await;
    // A partial line, then its end a moment later: shown as one line.
    let cmd = "printf 'task %s says' \"$SLURM_ARRAY_TASK_ID\"; sleep 1; echo ' hello'; \
               [ \"$SLURM_ARRAY_TASK_ID\" != 3 ] || { echo 'bad input' >&2; exit 4; }";
    let specs = vec![
        array_job("sim", "0-9%4", &[], cmd),
        job("report", &["sim"], "echo report"),
    ];
    let ids = submit_all(remote, &dir, "arr10", &specs).await.unwrap();
    assert_eq!(ids.len(), 2, "one submission for the array: {ids:?}");
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let mut jobs = WatchJob::array_tasks("sim", &ids[0].1, &[], &keys, 1);
    jobs.push(WatchJob {
        asset: "report".into(),
        job_id: ids[1].1.clone(),
        after: vec!["sim".into()],
        step_of: None,
        task: None,
    });
    let run = watch(remote, "arr10", &dir, &jobs).await;
    // One Slurm job: ten task records of one array, throttled to 4.
    let recs = records(remote, &ids[0].1).await;
    assert_eq!(recs.len(), 10, "{recs:?}");
    assert!(recs.iter().all(|r| r["ArrayJobId"] == ids[0].1), "{recs:?}");
    assert!(
        recs.iter()
            .any(|r| r.get("ArrayTaskThrottle").map(String::as_str) == Some("4")),
        "{recs:?}"
    );
    for i in 0..10 {
        let label = format!("sim[k{i}]");
        let out = run.outputs(&label);
        assert_eq!(out.concat(), format!("task {i} says hello\n"), "{label}");
        assert!(out.iter().all(|t| t.ends_with('\n')), "{label}: {out:?}");
    }
    // No state event per task: one row for the array, counted.
    assert!(
        run.events()
            .iter()
            .all(|e| !matches!(e, Event::State { asset, .. } if asset.contains('['))),
        "task rows leaked into the status"
    );
    let states = run.states("sim");
    assert!(
        states
            .iter()
            .any(|s| matches!(s, AssetState::Tasks { counts, .. } if counts.total == 10)),
        "{states:?}"
    );
    match states.last() {
        Some(AssetState::Failed { error }) => {
            assert!(
                error.starts_with("1 of 10 partitions failed: k3\n"),
                "{error}"
            );
            assert!(error.contains("bad input"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // The other nine are done; their dependent did not run.
    let done = run
        .result
        .jobs
        .iter()
        .filter(|j| j.task.is_some() && matches!(j.state, AssetState::Done { .. }))
        .count();
    assert_eq!(done, 9);
    let report = run.result.job("report").unwrap();
    match &report.state {
        AssetState::Cancelled { because } => {
            assert_eq!(because.as_deref(), Some("upstream sim[k3] failed"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.db_jobs["sim[k3]"].1, "failed");
    assert_eq!(
        run.db_jobs["sim[k4]"],
        (Some(format!("{}_4", ids[0].1)), "done".into())
    );
}

#[tokio::test]
async fn one_hundred_tasks_are_one_array_job() {
    let _g = SERIAL.lock().await;
    let remote = transport(Via::Ssh);
    let remote = &*remote;
    let dir = run_dir(remote, "arr100").await;
    let specs = vec![array_job(
        "sweep",
        "0-99",
        &[],
        "echo \"p=$SLURM_ARRAY_TASK_ID\"",
    )];
    let ids = submit_all(remote, &dir, "arr100", &specs).await.unwrap();
    let keys: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let jobs = WatchJob::array_tasks("sweep", &ids[0].1, &[], &keys, 1);
    let run = watch(remote, "arr100", &dir, &jobs).await;
    let recs = records(remote, &ids[0].1).await;
    assert_eq!(recs.len(), 100);
    let arrays: std::collections::HashSet<&str> =
        recs.iter().map(|r| r["ArrayJobId"].as_str()).collect();
    assert_eq!(arrays.len(), 1, "{arrays:?}");
    assert!(run.result.all_done(), "{:?}", run.result.warnings);
    for i in [0, 17, 99] {
        assert_eq!(
            run.outputs(&format!("sweep[{i}]")).concat(),
            format!("p={i}\n")
        );
    }
    assert!(matches!(
        run.states("sweep").last(),
        Some(AssetState::Done { location, .. }) if location.contains("100 partitions")
    ));
}

#[tokio::test]
async fn the_clusters_max_array_size_is_read_and_enforced() {
    let _g = SERIAL.lock().await;
    let remote = transport(Via::Ssh);
    let max = cli::max_array_size(&*remote).await.unwrap();
    assert_eq!(max, Some(1001), "the loopback cluster's default");
    let mut r = SbatchRequest::default();
    r.set("array", "0-1001").unwrap();
    let e = r.array.unwrap().check(max).unwrap_err().to_string();
    assert!(e.contains("MaxArraySize=1001"), "{e}");
}
