//! Grouped Slurm runs (several assets as `srun` steps of one allocation)
//! against the REAL loopback cluster of `tests/cluster`. Nothing is mocked.
//!
//! Needs `python3 tests/cluster/cluster.py up` first; every test FAILS
//! (never skips) when `/tmp/slurmbook-cluster/cluster.json` (or
//! `$SLURMBOOK_CLUSTER_DIR/cluster.json`) is missing. Tests run one at a
//! time (the cluster has 2 CPUs).
//!
//! Every test runs twice (`over_both_transports!`: `grouped_...::ssh` and
//! `::local`): over SSH and with local processes (a kernel on the submit host).

#[macro_use]
mod common;
use common::{sh_job as job, transport, unique, Via};
use std::collections::HashMap;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slurmbook_magics::events::{AssetState, Event, Stream};
use slurmbook_magics::exec::slurm::{
    steps_file, submit_allocations, watch_run, JobSpec, OutputGate, SlurmJobsResult, StepLine,
    WatchJob, WatchRun,
};
use slurmbook_magics::plan::{plan_allocations, Allocation, ClusterLimits, StepRequest};
use slurmbook_magics::run::DbRunLog;
use slurmbook_magics::transport::Transport;
use slurmbook_magics::{JobGrouping, StateDb, Target};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type Log = Arc<Mutex<Vec<Event>>>;

struct Run {
    dir: String,
    allocations: Vec<Allocation>,
    jobs: Vec<WatchJob>,
    result: SlurmJobsResult,
    log: Log,
    db_jobs: HashMap<String, (Option<String>, String)>,
}

impl Run {
    fn state(&self, asset: &str) -> &AssetState {
        &self.result.job(asset).expect(asset).state
    }

    fn output(&self, asset: &str) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Output {
                    asset: a,
                    stream: Stream::Stdout,
                    text,
                } if a == asset => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn labels(&self, asset: &str) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::State { asset: a, state } if a == asset => Some(state.label()),
                _ => None,
            })
            .collect();
        v.dedup();
        v
    }

    fn job_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs.iter().map(|j| j.job_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn job_of(&self, asset: &str) -> &str {
        &self.jobs.iter().find(|j| j.asset == asset).unwrap().job_id
    }
}

/// `scontrol show job -o ID` as key=value pairs.
async fn scontrol(remote: &dyn Transport, id: &str) -> HashMap<String, String> {
    let out = remote
        .run(&["scontrol", "show", "job", "-o", id])
        .await
        .unwrap();
    out.stdout_text()
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `.steps` lines of an allocation.
async fn step_lines(remote: &dyn Transport, dir: &str, allocation: &str) -> Vec<StepLine> {
    let out = remote
        .run(&["cat", &steps_file(dir, allocation)])
        .await
        .unwrap();
    out.stdout_text()
        .lines()
        .filter_map(StepLine::parse)
        .collect()
}

/// Plan (grouped, with the cluster's real limits), submit, and watch with a state db.
async fn run_grouped(remote: &dyn Transport, name: &str, specs: &[JobSpec]) -> Run {
    let (dir, allocations, jobs) = submit(remote, name, specs).await;
    watch(remote, name, dir, allocations, jobs).await
}

async fn submit(
    remote: &dyn Transport,
    name: &str,
    specs: &[JobSpec],
) -> (String, Vec<Allocation>, Vec<WatchJob>) {
    let dir = remote
        .expand_dir(&format!("$SCRATCH/slurmbook-tests/{}", unique(name)))
        .await
        .unwrap();
    let sinfo = remote
        .run(&["sinfo", "--noheader", "--format=%P|%l|%c|%m"])
        .await
        .unwrap();
    let limits = ClusterLimits::from_sinfo(&sinfo.stdout_text());
    assert_eq!(limits.default_partition.as_deref(), Some("debug"));
    let requests: Vec<StepRequest> = specs.iter().map(JobSpec::step_request).collect();
    let allocations = plan_allocations(&requests, JobGrouping::Grouped, &limits);
    let jobs = submit_allocations(remote, &dir, name, specs, &allocations)
        .await
        .expect("submitted");
    (dir, allocations, jobs)
}

async fn watch(
    remote: &dyn Transport,
    name: &str,
    dir: String,
    allocations: Vec<Allocation>,
    jobs: Vec<WatchJob>,
) -> Run {
    watch_until(remote, name, dir, allocations, jobs, |_| false).await
}

/// [`watch`], setting the cancel flag when `interrupt` says so for an event.
async fn watch_until(
    remote: &dyn Transport,
    name: &str,
    dir: String,
    allocations: Vec<Allocation>,
    jobs: Vec<WatchJob>,
    interrupt: impl Fn(&Event) -> bool + Send + Sync,
) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open_file(tmp.path().join("state.db")).unwrap();
    let run = db.begin_run(name, Target::Slurm, Some("cluster")).unwrap();
    let log: Log = Arc::default();
    let l = log.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let emit = move |e: Event| {
        if interrupt(&e) {
            c.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        l.lock().unwrap().push(e)
    };
    let w = WatchRun {
        transport: remote,
        run_dir: &dir,
        jobs: &jobs,
        emit: &emit,
        cancel: &cancel,
        log: &DbRunLog::new(&db, run),
        gate: &OutputGate::new(),
    };
    let result = tokio::time::timeout(Duration::from_secs(180), watch_run(w))
        .await
        .expect("watch finished within 3 minutes")
        .expect("watch succeeded");
    let db_jobs = db
        .run_jobs(run)
        .unwrap()
        .into_iter()
        .map(|r| (r.asset, (r.job_id, r.state)))
        .collect();
    Run {
        dir,
        allocations,
        jobs,
        result,
        log,
        db_jobs,
    }
}

over_both_transports!(
    grouped_chain_of_ten_runs_as_one_job_in_order,
    grouped_diamond_runs_parallel_branches_overlapping_in_one_job,
    grouped_failing_middle_step_stops_its_dependents_and_ends_the_job,
    grouped_asset_on_another_partition_is_its_own_job_chained_afterok,
    grouped_interrupt_cancels_the_allocation_and_every_step,
);

async fn grouped_chain_of_ten_runs_as_one_job_in_order(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let specs: Vec<JobSpec> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let prev = if i == 0 {
                vec![]
            } else {
                vec![names[i - 1].as_str()]
            };
            job(
                n,
                &prev,
                &format!("echo \"hello from {n}\"; echo {n} >> order.txt"),
            )
        })
        .collect();
    let run = run_grouped(remote, "chain10", &specs).await;
    // The tail ended with the run (no "did not finish" warning).
    assert!(run.result.warnings.is_empty(), "{:?}", run.result.warnings);
    assert_eq!(run.allocations.len(), 1);
    assert_eq!(run.allocations[0].assets, names);
    let ids = run.job_ids();
    assert_eq!(ids.len(), 1, "one Slurm job for the chain: {ids:?}");
    let rec = scontrol(remote, &ids[0]).await;
    assert_eq!(rec["JobState"], "COMPLETED", "{rec:?}");
    assert_eq!(
        rec["TimeLimit"], "00:50:00",
        "ten steps of 5 minutes: {rec:?}"
    );
    assert_eq!(rec["JobName"], "sb-chain10-alloc_s0");
    for n in &names {
        assert!(
            matches!(run.state(n), AssetState::Done { .. }),
            "{n}: {:?}",
            run.state(n)
        );
        assert_eq!(run.output(n), format!("hello from {n}\n"), "{n}");
        // Fast steps may be seen only once they ended; never out of order.
        let labels = run.labels(n);
        assert_eq!(labels.last(), Some(&"done"), "{n}: {labels:?}");
        let order = ["queued", "running", "done"];
        let pos: Vec<usize> = labels
            .iter()
            .map(|l| order.iter().position(|o| o == l).expect("known label"))
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{n}: {labels:?}");
        assert_eq!(
            run.db_jobs[n],
            (Some(ids[0].clone()), "done".to_string()),
            "state db for {n}"
        );
    }
    let order = remote
        .run(&["cat", &format!("{}/order.txt", run.dir)])
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(order.lines().collect::<Vec<_>>(), names);
    let lines = step_lines(remote, &run.dir, "alloc_s0").await;
    let starts = lines
        .iter()
        .filter(|l| matches!(l, StepLine::Start { .. }))
        .count();
    assert_eq!(starts, 10);
}

async fn grouped_diamond_runs_parallel_branches_overlapping_in_one_job(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let specs = vec![
        job("top", &[], "sleep 1; echo top"),
        job("left", &["top"], "sleep 2; echo left"),
        job("right", &["top"], "sleep 2; echo right"),
        job("bottom", &["left", "right"], "echo bottom"),
    ];
    let run = run_grouped(remote, "diamond", &specs).await;
    assert_eq!(run.allocations.len(), 1);
    assert_eq!(run.job_ids().len(), 1);
    let rec = scontrol(remote, &run.job_ids()[0]).await;
    assert_eq!(rec["NumCPUs"], "2", "the two branches' CPUs: {rec:?}");
    assert_eq!(
        rec["TimeLimit"], "00:15:00",
        "longest path of 3 steps: {rec:?}"
    );
    assert!(run.result.all_done(), "{:?}", run.result);
    let lines = step_lines(remote, &run.dir, "alloc_top").await;
    let at = |kind: &str, asset: &str| {
        lines
            .iter()
            .find_map(|l| match (kind, l) {
                ("start", StepLine::Start { asset: a, at, .. })
                | ("end", StepLine::End { asset: a, at, .. })
                    if a == asset =>
                {
                    Some(*at)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind} of {asset} in {lines:?}"))
    };
    // The branches overlap in time, and each starts after top and ends before bottom.
    assert!(
        at("start", "left") < at("end", "right") && at("start", "right") < at("end", "left"),
        "left and right did not overlap: {lines:?}"
    );
    for b in ["left", "right"] {
        assert!(at("start", b) >= at("end", "top"), "{lines:?}");
        assert!(at("start", "bottom") >= at("end", b), "{lines:?}");
    }
    assert_eq!(run.output("left"), "left\n");
    // Two-second steps are seen running (queued -> running -> done).
    for b in ["left", "right"] {
        assert_eq!(run.labels(b), ["queued", "running", "done"], "{b}");
    }
}

async fn grouped_failing_middle_step_stops_its_dependents_and_ends_the_job(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let specs = vec![
        job("a", &[], "echo a"),
        job("b", &["a"], "echo 'b breaks' >&2; exit 3"),
        job("c", &["b"], "echo c"),
        job("d", &["c"], "echo d"),
        job("side", &["a"], "sleep 1; echo side"),
    ];
    let run = run_grouped(remote, "failmid", &specs).await;
    assert_eq!(run.job_ids().len(), 1);
    let rec = scontrol(remote, &run.job_ids()[0]).await;
    assert_eq!(
        rec["JobState"], "FAILED",
        "the allocation ends failed: {rec:?}"
    );
    assert!(matches!(run.state("a"), AssetState::Done { .. }));
    assert!(
        matches!(run.state("side"), AssetState::Done { .. }),
        "independent step finishes: {:?}",
        run.state("side")
    );
    match run.state("b") {
        AssetState::Failed { error } => {
            assert!(error.starts_with("exit code 3"), "{error}");
            assert!(error.contains("b breaks"), "stderr tail: {error}");
        }
        s => panic!("b: {s:?}"),
    }
    for x in ["c", "d"] {
        match run.state(x) {
            AssetState::Cancelled { because } => {
                assert_eq!(because.as_deref(), Some("upstream b failed"), "{x}")
            }
            s => panic!("{x}: {s:?}"),
        }
        assert_eq!(run.db_jobs[x].1, "cancelled", "{x}");
    }
    assert_eq!(run.db_jobs["b"].1, "failed");
    let lines = step_lines(remote, &run.dir, "alloc_a").await;
    assert!(
        !lines
            .iter()
            .any(|l| matches!(l, StepLine::Start { asset, .. } if asset == "c" || asset == "d")),
        "dependents must not start: {lines:?}"
    );
    assert!(lines.contains(&StepLine::Skip {
        asset: "c".into(),
        upstream: "b".into()
    }));
}

async fn grouped_asset_on_another_partition_is_its_own_job_chained_afterok(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let mut long = job("other", &["b"], "echo other");
    long.sbatch.partition = Some("long".into());
    let specs = vec![
        job("a", &[], "echo a"),
        job("b", &["a"], "sleep 3; echo b"),
        long,
        job("d", &["other"], "echo d"),
    ];
    let (dir, allocations, jobs) = submit(remote, "partition", &specs).await;
    let group = jobs.iter().find(|j| j.asset == "a").unwrap().job_id.clone();
    let other = jobs
        .iter()
        .find(|j| j.asset == "other")
        .unwrap()
        .job_id
        .clone();
    let rec = scontrol(remote, &other).await;
    let run = watch(remote, "partition", dir, allocations, jobs).await;
    let shape: Vec<Vec<String>> = run.allocations.iter().map(|a| a.assets.clone()).collect();
    assert_eq!(shape, [vec!["a", "b"], vec!["other"], vec!["d"]]);
    assert_eq!(run.job_ids().len(), 3);
    assert_eq!(run.job_of("a"), run.job_of("b"));
    assert_eq!(rec["Partition"], "long", "{rec:?}");
    assert!(
        rec["Dependency"].starts_with(&format!("afterok:{group}")),
        "the other partition's job waits for the group: {rec:?}"
    );
    assert!(run.result.all_done(), "{:?}", run.result);
    assert_eq!(run.output("other"), "other\n");
    assert_eq!(run.output("d"), "d\n");
}

async fn grouped_interrupt_cancels_the_allocation_and_every_step(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let specs = vec![
        job("slow", &[], "echo started; sleep 60; echo never"),
        job("after_slow", &["slow"], "echo never"),
    ];
    let (dir, allocations, jobs) = submit(remote, "interrupt", &specs).await;
    assert_eq!(allocations.len(), 1);
    let run = watch_until(
        remote,
        "interrupt",
        dir,
        allocations,
        jobs,
        |e| matches!(e, Event::Output { asset, .. } if asset == "slow"),
    )
    .await;
    assert!(run.result.cancelled);
    for a in ["slow", "after_slow"] {
        assert_eq!(
            run.state(a),
            &AssetState::Cancelled {
                because: Some("interrupted".into())
            },
            "{a}"
        );
    }
    assert_eq!(run.output("slow"), "started\n");
    let rec = scontrol(remote, &run.job_ids()[0]).await;
    assert_eq!(rec["JobState"], "CANCELLED", "{rec:?}");
}
