//! More tracker tests: grouped steps, protocol events, wall times, memory
//! kills, and the tasks of job arrays.

use super::*;

#[test]
fn grouped_steps_follow_their_steps_file() {
    let mut t = Tracker::new(&[
        step("a", "7", &[], "alloc_a"),
        step("b", "7", &["a"], "alloc_a"),
        step("c", "7", &["b"], "alloc_a"),
        job("d", "8", &["c"]),
    ]);
    assert_eq!(t.groups(), ["alloc_a"]);
    let changes = poll(
        &mut t,
        "7|RUNNING|vm|None\n8|PENDING||Dependency\n",
        &[],
        "",
    );
    assert_eq!(changes.len(), 4, "all queued: {changes:?}");
    t.record_step_line(&StepLine::parse("start a vm 1.0").unwrap());
    assert!(t.steps_changed());
    let changes = poll(
        &mut t,
        "7|RUNNING|vm|None\n8|PENDING||Dependency\n",
        &[],
        "",
    );
    assert!(!t.steps_changed());
    assert_eq!(changes, [("a".into(), running("vm"))]);
    for l in ["end a 0 3.5", "start b vm 3.6", "end b 1 4.0", "skip c b"] {
        t.record_step_line(&StepLine::parse(l).unwrap());
    }
    let driver_failed = scontrol(
        "7",
        "FAILED",
        "NonZeroExitCode",
        "(null)",
        "ExitCode=1:0 StartTime=2026-11-26T15:05:09 EndTime=2026-11-26T15:05:13 NodeList=vm",
    );
    let d_cancelled = never_satisfied("8", "7");
    let changes: HashMap<String, AssetState> = poll(
        &mut t,
        "7|FAILED|vm|NonZeroExitCode\n8|CANCELLED||DependencyNeverSatisfied\n",
        &[driver_failed, d_cancelled],
        "",
    )
    .into_iter()
    .collect();
    assert_eq!(
        changes["a"],
        AssetState::Done {
            duration_ms: 2500,
            location: "vm".into()
        }
    );
    assert_eq!(error_of(&changes["b"]), "exit code 1");
    assert_eq!(changes["c"], cancelled("upstream b failed"));
    assert_eq!(changes["d"], cancelled("upstream b failed"));
    assert!(t.all_terminal());
}

#[test]
fn bundle_events_are_kept_for_the_result() {
    let mut t = Tracker::new(&[job("a", "4", &[])]);
    let meta = |v| BundleEvent::Metadata { metadata: v };
    t.record_bundle_event(0, &meta(serde_json::json!({"rows": 3})));
    t.record_bundle_event(0, &meta(serde_json::json!({"cols": 2})));
    t.record_bundle_event(0, &BundleEvent::Materialized { bytes: 12 });
    t.record_bundle_event(
        0,
        &BundleEvent::Failed {
            error: "value too big\nat line 3".into(),
        },
    );
    let p = t.proto(0);
    assert_eq!(p.metadata, serde_json::json!({"rows": 3, "cols": 2}));
    assert_eq!(p.materialized, Some(12));
    let record = scontrol(
        "4",
        "FAILED",
        "NonZeroExitCode",
        "(null)",
        "ExitCode=3:0 StartTime=2026-11-26T14:57:36 EndTime=2026-11-26T14:57:36 NodeList=vm",
    );
    let changes = poll(&mut t, "4|FAILED|vm|NonZeroExitCode\n", &[record], "");
    assert_eq!(
        error_of(&changes[0].1),
        "exit code 3: value too big\nat line 3"
    );
}

#[test]
fn failure_text_starts_with_exit_code() {
    let mut t = Track::new();
    t.slurm_state = "FAILED".into();
    t.exit_code = Some(2);
    t.stderr_tail = "panicked at x".into();
    let s = failure_text("a", &t, Some("value too big"));
    assert!(s.starts_with("exit code 2: value too big\n"), "{s}");
    assert!(s.contains("panicked at x"), "{s}");
}

#[test]
fn a_completed_job_takes_its_own_wall_time_over_slurms_whole_seconds() {
    let mut t = Tracker::new(&[job("a", "4", &[])]);
    t.record_bundle_event(
        0,
        &BundleEvent::Usage(JobUsage {
            wall_ms: 350,
            max_rss_kb: Some(2048),
            ..JobUsage::default()
        }),
    );
    assert_eq!(t.proto(0).usage.as_ref().unwrap().max_rss_kb, Some(2048));
    // Started and ended within one second: scontrol says 0.
    let record = scontrol(
        "4",
        "COMPLETED",
        "None",
        "(null)",
        "ExitCode=0:0 SubmitTime=2026-11-26T14:57:35 StartTime=2026-11-26T14:57:36 EndTime=2026-11-26T14:57:36 NodeList=vm",
    );
    let changes = poll(&mut t, "4|COMPLETED|vm|None\n", &[record], "");
    assert_eq!(
        changes,
        [(
            "a".into(),
            AssetState::Done {
                duration_ms: 350,
                location: "vm".into()
            }
        )]
    );
    // The queue wait is kept for the usage.
    assert_eq!(t.track(0).queue_ms, Some(1000));
}

#[test]
fn a_job_slurm_killed_for_its_memory_without_cgroups_is_out_of_memory() {
    // Recorded on the loopback cluster with JobAcctGatherParams=OverMemoryKill
    // (SLURMBOOK_CLUSTER_MEMORY=enforce): FAILED, signal 9, and the reason
    // only on the job's stderr.
    let killed = scontrol("1", "FAILED", "JobLaunchFailure", "(null)", "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:9 RunTime=00:00:03 TimeLimit=00:02:00 MinMemoryNode=200M TimeMin=N/A SubmitTime=2026-11-26T21:28:09 EligibleTime=2026-11-26T21:28:09 AccrueTime=2026-11-26T21:28:09 StartTime=2026-11-26T21:28:09 EndTime=2026-11-26T21:28:12 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T21:28:09 Scheduler=Main NodeList=vm BatchHost=vm");
    let mut t = Tracker::new(&[job("hog", "1", &[]), job("after", "2", &["hog"])]);
    poll(&mut t, "1|RUNNING|vm|None\n", &[], "");
    let changes = poll(
        &mut t,
        "1|FAILED|vm|JobLaunchFailure\n",
        &[killed, never_satisfied("2", "1")],
        "slurmstepd-vm: error: StepId=1.batch exceeded memory limit (246120448 > 209715200), being killed\nslurmstepd-vm: error: Exceeded job memory limit\nslurmstepd-vm: error: *** JOB 1 ON vm CANCELLED AT 2026-11-26T21:28:12 ***",
    );
    let hog = changes
        .iter()
        .find(|(a, _)| a == "hog")
        .map(|(_, s)| error_of(s))
        .expect("hog changed");
    assert!(
        hog.starts_with("out of memory (asked 200M) (Slurm killed it: exceeded its memory limit)"),
        "{hog}"
    );
    assert!(
        hog.contains("\nhint: ask for more memory with `%%asset hog --mem=SIZE` (e.g. twice 200M)"),
        "{hog}"
    );
    // A plain failure whose own output merely mentions memory is not one.
    let plain = failed_9();
    let mut t = Tracker::new(&[job("calc", "9", &[])]);
    poll(&mut t, "9|RUNNING|vm|None\n", &[], "");
    let changes = poll(
        &mut t,
        "9|FAILED|vm|NonZeroExitCode\n",
        &[plain],
        "error: exceeded memory limit of my own cache",
    );
    assert!(
        error_of(&changes[0].1).starts_with("exit code 2"),
        "{changes:?}"
    );
}

#[test]
fn array_tasks_are_followed_by_task_and_cancelled_by_array() {
    let keys: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let mut jobs = WatchJob::array_tasks("sim", "40", &[], &keys, 1);
    jobs.push(job("report", "41", &["sim"]));
    let mut t = Tracker::new(&jobs);
    assert_eq!(t.live_job_ids(), ["40_0", "40_1", "40_2", "41"]);
    let changes = poll(
        &mut t,
        "40_0|RUNNING|vm|None\n40_1|PENDING||None\n40_2|PENDING||None\n41|PENDING||Dependency\n",
        &[],
        "",
    );
    assert_eq!(changes[0], ("sim[a]".to_string(), running("vm")));
    assert_eq!(changes[1], ("sim[b]".to_string(), queued("40_1")));
    // Task b fails: its record is the task's; report's dependency names the array.
    let failed = scontrol(
        "45",
        "FAILED",
        "NonZeroExitCode",
        "(null)",
        "ExitCode=3:0 NodeList=vm",
    )
    .replace("JobId=45 ", "JobId=40_1 ");
    let report = never_satisfied("41", "40_*");
    let done = |id: &str| {
        scontrol(
            id,
            "COMPLETED",
            "None",
            "(null)",
            "ExitCode=0:0 NodeList=vm",
        )
    };
    let changes: HashMap<String, AssetState> = poll(
        &mut t,
        "40_0|COMPLETED|vm|None\n40_1|FAILED|vm|NonZeroExitCode\n40_2|COMPLETED|vm|None\n41|CANCELLED||DependencyNeverSatisfied\n",
        &[done("40_0"), failed, done("40_2"), report],
        "bad input",
    )
    .into_iter()
    .collect();
    assert!(
        error_of(&changes["sim[b]"]).starts_with("exit code 3"),
        "{changes:?}"
    );
    assert!(
        matches!(changes["sim[c]"], AssetState::Done { .. }),
        "{changes:?}"
    );
    assert_eq!(changes["report"], cancelled("upstream sim[b] failed"));
    // Cancelling asks for the array once, by its id.
    let keys: Vec<String> = ["x", "y"].map(String::from).to_vec();
    let mut t = Tracker::new(&WatchJob::array_tasks("sim", "50", &[], &keys, 1));
    assert_eq!(t.start_cancel(Instant::now()), ["50"]);
}
