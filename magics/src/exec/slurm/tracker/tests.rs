//! The tracker driven by `squeue` and `scontrol show job -o` output
//! recorded on the loopback cluster (Slurm 22.05; `NODE_FAIL` and
//! `OUT_OF_MEMORY`, which it cannot produce, in the same format), with
//! the clock passed in.

use super::*;
use crate::exec::slurm::cli::{parse_details, parse_squeue};

fn job(asset: &str, id: &str, after: &[&str]) -> WatchJob {
    WatchJob {
        asset: asset.into(),
        job_id: id.into(),
        after: after.iter().map(|s| s.to_string()).collect(),
        step_of: None,
        task: None,
    }
}

fn step(asset: &str, id: &str, after: &[&str], allocation: &str) -> WatchJob {
    WatchJob {
        step_of: Some(allocation.into()),
        ..job(asset, id, after)
    }
}

/// `scontrol show job -o ID` with the fields after `Dependency` of a
/// 1-CPU job in `debug` (recorded; identical for all jobs below).
fn scontrol(id: &str, state: &str, reason: &str, dependency: &str, rest: &str) -> String {
    format!(
        "JobId={id} JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901751 Nice=0 Account=(null) QOS=(null) JobState={state} Reason={reason} Dependency={dependency} {rest} Partition=debug AllocNode:Sid=localhost:31892 ReqNodeList=(null) ExcNodeList=(null) NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=100M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=100M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp/slurmbook-cluster/scratch/cap StdErr=/tmp/slurmbook-cluster/scratch/cap/slurm-{id}.out StdIn=/dev/null StdOut=/tmp/slurmbook-cluster/scratch/cap/slurm-{id}.out Power= "
    )
}

fn failed_9() -> String {
    scontrol("9", "FAILED", "NonZeroExitCode", "(null)", "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=2:0 RunTime=00:00:00 TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-11-26T15:05:08 EligibleTime=2026-11-26T15:05:08 AccrueTime=2026-11-26T15:05:08 StartTime=2026-11-26T15:05:09 EndTime=2026-11-26T15:05:09 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T15:05:09 Scheduler=Main NodeList=vm BatchHost=vm")
}

fn never_satisfied(id: &str, upstream: &str) -> String {
    scontrol(id, "CANCELLED", "DependencyNeverSatisfied", &format!("afterok:{upstream}(failed)"), "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-11-26T15:05:08 EligibleTime=Unknown AccrueTime=Unknown StartTime=2026-11-26T15:05:09 EndTime=2026-11-26T15:05:09 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T15:05:08 Scheduler=Main NodeList=")
}

/// One poll as the watcher does it: the listing, then (for the jobs that
/// ended or are not listed) a detail round trip answered from `records`
/// and `stderr`, then the states. Returns the changes by asset.
fn poll(
    t: &mut Tracker,
    squeue: &str,
    records: &[String],
    stderr: &str,
) -> Vec<(String, AssetState)> {
    t.live_job_ids();
    let q = t.apply_queue(&parse_squeue(squeue));
    if !q.need_detail.is_empty() {
        let mut text = String::new();
        for &i in &q.need_detail {
            let j = &t.jobs()[i];
            text.push_str(&format!("M JOB {} {}\n", j.job_id, j.stem()));
            let prefix = format!("JobId={} ", j.job_id);
            if let Some(r) = records.iter().find(|r| r.starts_with(&prefix)) {
                text.push_str(r);
                text.push('\n');
            }
            text.push_str(&format!("M ERR\n{stderr}\nM SIZE 0 0\n"));
        }
        t.apply_details(&q.need_detail, &parse_details(&text, "M"));
    }
    t.resolve()
        .into_iter()
        .map(|(i, s)| (t.jobs()[i].label(), s))
        .collect()
}

fn queued(id: &str) -> AssetState {
    AssetState::queued(Some(id.into()))
}

/// Queued with Slurm's reason (as the status table shows it) and start estimate.
fn waiting(id: &str, reason: &str, start: Option<&str>) -> AssetState {
    AssetState::Queued {
        job_id: Some(id.into()),
        reason: Some(reason.into()),
        start: start.map(str::to_owned),
    }
}

fn running(node: &str) -> AssetState {
    AssetState::Running {
        location: node.into(),
    }
}

fn cancelled(because: &str) -> AssetState {
    AssetState::Cancelled {
        because: Some(because.into()),
    }
}

fn error_of(state: &AssetState) -> &str {
    match state {
        AssetState::Failed { error } => error,
        other => panic!("not failed: {other:?}"),
    }
}

#[test]
fn pending_jobs_are_queued_with_their_reason() {
    let mut t = Tracker::new(&[
        job("a", "3", &[]),
        job("b", "5", &["a"]),
        job("c", "12", &[]),
    ]);
    let changes = poll(
        &mut t,
        "3|PENDING||Resources\n5|PENDING||Dependency\n12|PENDING||PartitionTimeLimit\n",
        &[],
        "",
    );
    assert_eq!(
        changes,
        [
            (
                "a".into(),
                waiting("3", "Resources: waiting for free nodes/CPUs/memory", None)
            ),
            (
                "b".into(),
                waiting("5", "Dependency: waiting for its upstream jobs", None)
            ),
            (
                "c".into(),
                waiting(
                    "12",
                    "PartitionTimeLimit: --time exceeds the partition's limit",
                    None
                )
            )
        ]
    );
    assert_eq!(t.track(0).reason, "Resources");
    assert_eq!(t.track(1).reason, "Dependency");
    assert_eq!(t.track(2).reason, "PartitionTimeLimit");
    // Still pending, same reasons: nothing new to report.
    assert!(poll(
        &mut t,
        "3|PENDING||Resources|N/A\n5|PENDING||Dependency|N/A\n12|PENDING||PartitionTimeLimit|N/A\n",
        &[],
        ""
    )
    .is_empty());
    // A new reason, and the scheduler's estimate (`squeue --start`'s): reported.
    let changes = poll(
        &mut t,
        "3|PENDING||Priority|2026-11-26T15:05:09\n5|PENDING||Dependency|N/A\n12|PENDING||PartitionTimeLimit|N/A\n",
        &[],
        "",
    );
    assert_eq!(
        changes,
        [(
            "a".into(),
            waiting(
                "3",
                "Priority: jobs of higher priority go first",
                Some("2026-11-26 15:05:09")
            )
        )]
    );
    assert_eq!(
        changes[0].1.describe(),
        "queued (job 3): Priority: jobs of higher priority go first; expected to start 2026-11-26 15:05:09"
    );
    assert_eq!(t.track(0).reason, "Priority");
    let changes = poll(
        &mut t,
        "3|RUNNING|vm|None\n5|PENDING||Dependency\n12|PENDING||PartitionTimeLimit\n",
        &[],
        "",
    );
    assert_eq!(changes, [("a".into(), running("vm"))]);
    assert!(!t.all_terminal());
}

#[test]
fn a_requeued_job_is_queued_again_and_counts_its_restarts() {
    let mut t = Tracker::new(&[job("a", "2", &[])]);
    assert_eq!(
        poll(&mut t, "2|RUNNING|vm|None\n", &[], ""),
        [("a".into(), running("vm"))]
    );
    // `scontrol requeue 2`: REQUEUED for a moment, then pending until it may begin.
    assert_eq!(
        poll(&mut t, "2|REQUEUED|vm|None\n", &[], ""),
        [("a".into(), queued("2"))]
    );
    assert_eq!(
        poll(&mut t, "2|PENDING||BeginTime\n", &[], ""),
        [(
            "a".into(),
            waiting("2", "BeginTime: not allowed to start yet", None)
        )]
    );
    assert_eq!(t.track(0).reason, "BeginTime");
    assert_eq!(
        poll(&mut t, "2|RUNNING|vm|None\n", &[], ""),
        [("a".into(), running("vm"))]
    );
    let done = scontrol("2", "COMPLETED", "None", "(null)", "Requeue=1 Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:20 TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-11-26T14:57:20 EligibleTime=2026-11-26T14:59:21 AccrueTime=2026-11-26T14:59:21 StartTime=2026-11-26T14:59:21 EndTime=2026-11-26T14:59:41 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T14:59:21 Scheduler=Main NodeList=vm BatchHost=vm");
    let changes = poll(&mut t, "2|COMPLETED|vm|None\n", &[done], "");
    assert_eq!(
        changes,
        [(
            "a".into(),
            AssetState::Done {
                duration_ms: 20_000,
                location: "vm".into()
            }
        )]
    );
    assert_eq!(t.track(0).restarts, 1);
    assert!(t.all_terminal());
    // A requeued job that then fails says so.
    let mut t2 = Track::new();
    t2.slurm_state = "FAILED".into();
    t2.exit_code = Some(1);
    t2.restarts = 2;
    assert_eq!(
        failure_text("a", &t2, None),
        "exit code 1 (requeued 2 times)"
    );
}

#[test]
fn timeout_node_fail_and_out_of_memory_are_failures_that_say_why() {
    let timeout = scontrol("6", "TIMEOUT", "TimeLimit", "(null)", "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:01:29 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-26T14:57:15 EligibleTime=2026-11-26T14:57:15 AccrueTime=2026-11-26T14:57:15 StartTime=2026-11-26T14:57:36 EndTime=2026-11-26T14:59:05 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T14:57:36 Scheduler=Main NodeList=vm BatchHost=vm");
    let node_fail = scontrol("14", "NODE_FAIL", "NodeDown", "(null)", "Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:03:12 TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-11-26T15:10:00 EligibleTime=2026-11-26T15:10:00 AccrueTime=2026-11-26T15:10:00 StartTime=2026-11-26T15:10:01 EndTime=2026-11-26T15:13:13 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T15:10:01 Scheduler=Main NodeList=vm BatchHost=vm");
    let oom = scontrol("15", "OUT_OF_MEMORY", "OutOfMemory", "(null)", "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:125 RunTime=00:00:04 TimeLimit=00:05:00 MinMemoryNode=200M TimeMin=N/A SubmitTime=2026-11-26T15:10:00 EligibleTime=2026-11-26T15:10:00 AccrueTime=2026-11-26T15:10:00 StartTime=2026-11-26T15:10:01 EndTime=2026-11-26T15:10:05 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T15:10:01 Scheduler=Main NodeList=vm BatchHost=vm");
    let mut t = Tracker::new(&[
        job("slow", "6", &[]),
        job("lost", "14", &[]),
        job("big", "15", &[]),
    ]);
    poll(
        &mut t,
        "6|RUNNING|vm|None\n14|RUNNING|vm|None\n15|RUNNING|vm|None\n",
        &[],
        "",
    );
    let changes = poll(
        &mut t,
        "6|TIMEOUT|vm|TimeLimit\n14|NODE_FAIL|vm|NodeDown\n15|OUT_OF_MEMORY|vm|OutOfMemory\n",
        &[timeout, node_fail, oom],
        "slurmstepd: error: *** JOB CANCELLED AT 2026-11-26T14:59:05 DUE TO TIME LIMIT ***",
    );
    assert_eq!(changes.len(), 3);
    let slow = error_of(&changes[0].1);
    assert!(slow.starts_with("time limit (00:01:00) reached (TIMEOUT)\n--- last 40 lines of slow.err ---\nslurmstepd: error: *** JOB CANCELLED"), "{slow}");
    assert!(slow.ends_with("DUE TO TIME LIMIT ***\nhint: the job ran out of its time limit of 00:01:00; ask for more with `%%asset slow --time=HH:MM:SS` (or `time` in the profile), within the partition's MaxTime (sinfo -o '%P %l')"), "{slow}");
    let lost = error_of(&changes[1].1);
    assert!(lost.starts_with("node failure (NODE_FAIL)"), "{lost}");
    assert!(
        lost.contains("\nhint: the node it ran on failed, not the code"),
        "{lost}"
    );
    let big = error_of(&changes[2].1);
    assert!(
        big.starts_with("out of memory (asked 200M) (OUT_OF_MEMORY)"),
        "{big}"
    );
    assert!(
        big.contains("\nhint: ask for more memory with `%%asset big --mem=SIZE` (e.g. twice 200M)"),
        "{big}"
    );
    assert_eq!(t.track(0).elapsed_ms, Some(89_000));
    assert_eq!(t.track(0).signal, Some(15));
    assert!(t.all_terminal());
}

#[test]
fn dependents_of_a_failure_are_cancelled_naming_the_root_failure() {
    // a (9) fails; b (10) waits for a, c (11) for b: Slurm cancels both.
    for order in [[0, 1, 2], [2, 1, 0]] {
        let all = [
            job("a", "9", &[]),
            job("b", "10", &["a"]),
            job("c", "11", &["b"]),
        ];
        let jobs: Vec<WatchJob> = order.iter().map(|&k| all[k].clone()).collect();
        let mut t = Tracker::new(&jobs);
        poll(
            &mut t,
            "9|PENDING||None\n10|PENDING||Dependency\n11|PENDING||Dependency\n",
            &[],
            "",
        );
        let records = [
            failed_9(),
            never_satisfied("10", "9"),
            never_satisfied("11", "10"),
        ];
        let changes: HashMap<String, AssetState> = poll(
            &mut t,
            "10|CANCELLED||DependencyNeverSatisfied\n11|CANCELLED||DependencyNeverSatisfied\n9|FAILED|vm|NonZeroExitCode\n",
            &records,
            "boom",
        )
        .into_iter()
        .collect();
        assert_eq!(
            error_of(&changes["a"]),
            "exit code 2\n--- last 40 lines of a.err ---\nboom"
        );
        assert_eq!(changes["b"], cancelled("upstream a failed"));
        assert_eq!(
            changes["c"],
            cancelled("upstream a failed"),
            "order {order:?}"
        );
        assert!(t.all_terminal());
        assert!(!t.cancelled());
    }
}

#[test]
fn a_failed_upstream_outside_the_run_is_named_by_its_job_id() {
    let mut t = Tracker::new(&[job("b", "10", &[])]);
    let changes = poll(
        &mut t,
        "10|CANCELLED||DependencyNeverSatisfied\n",
        &[never_satisfied("10", "9")],
        "",
    );
    assert_eq!(changes, [("b".into(), cancelled("upstream job 9 failed"))]);
}

#[test]
fn a_job_cancelled_outside_slurmbook_says_so() {
    let scancelled = scontrol("8", "CANCELLED", "None", "(null)", "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:00:03 TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-11-26T14:58:14 EligibleTime=2026-11-26T14:58:14 AccrueTime=2026-11-26T14:58:14 StartTime=2026-11-26T14:58:15 EndTime=2026-11-26T14:58:18 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T14:58:15 Scheduler=Backfill NodeList=vm BatchHost=vm");
    let mut t = Tracker::new(&[job("a", "8", &[])]);
    assert_eq!(
        poll(&mut t, "8|RUNNING|vm|None\n", &[], ""),
        [("a".into(), running("vm"))]
    );
    let changes = poll(&mut t, "8|CANCELLED|vm|None\n", &[scancelled], "");
    assert_eq!(
        changes,
        [(
            "a".into(),
            cancelled("cancelled outside slurmbook (scancel)")
        )]
    );
    assert_eq!(t.track(0).signal, Some(15));
}

#[test]
fn a_job_slurm_forgot_vanishes_after_three_polls() {
    // Not listed by squeue; `scontrol` says "Invalid job id specified" and
    // there is no accounting: the detail has no record.
    let mut t = Tracker::new(&[job("a", "999", &[])]);
    assert_eq!(
        poll(&mut t, "", &[], "partial"),
        [("a".into(), queued("999"))]
    );
    assert!(poll(&mut t, "", &[], "partial").is_empty());
    assert!(!t.all_terminal());
    let changes = poll(&mut t, "", &[], "partial");
    assert!(error_of(&changes[0].1).starts_with("the job vanished from Slurm (reason: vanished)"));
    assert_eq!(t.track(0).stderr_tail, "partial");
    assert!(t.all_terminal());
    assert!(t.live_job_ids().is_empty());
}

#[test]
fn a_job_listed_again_is_not_vanishing() {
    let mut t = Tracker::new(&[job("a", "3", &[])]);
    poll(&mut t, "", &[], "");
    poll(&mut t, "", &[], "");
    poll(&mut t, "3|RUNNING|vm|None\n", &[], "");
    poll(&mut t, "", &[], "");
    poll(&mut t, "", &[], "");
    assert!(!t.all_terminal(), "the count starts again");
}

#[test]
fn polls_back_off_and_reset_on_change() {
    let mut t = Tracker::new(&[job("a", "1", &[])]);
    let waits: Vec<u128> = (0..8).map(|_| t.next_interval(false).as_millis()).collect();
    assert_eq!(waits, [750, 1125, 1687, 2531, 3796, 5000, 5000, 5000]);
    assert_eq!(t.next_interval(true), POLL_MIN);
    assert_eq!(t.next_interval(false).as_millis(), 750);
    t.next_interval(false);
    t.start_cancel(Instant::now());
    assert_eq!(
        t.next_interval(false).as_millis(),
        750,
        "cancelling polls at once"
    );
}

#[test]
fn polls_failing_for_five_minutes_give_up() {
    let mut t = Tracker::new(&[job("a", "1", &[])]);
    let t0 = Instant::now();
    assert!(!t.poll_failed(t0));
    assert!(!t.poll_failed(t0 + Duration::from_secs(299)));
    assert!(t.poll_failed(t0 + Duration::from_secs(301)));
    t.poll_succeeded();
    assert!(!t.poll_failed(t0 + Duration::from_secs(400)));
}

#[test]
fn cancel_waits_for_the_grace_period_then_cancels_each_job_once() {
    let mut t = Tracker::new(&[
        step("a", "7", &[], "alloc_a"),
        step("b", "7", &["a"], "alloc_a"),
        job("c", "8", &["b"]),
        job("d", "9", &[]),
    ]);
    poll(
        &mut t,
        "7|RUNNING|vm|None\n8|PENDING||Dependency\n9|COMPLETED|vm|None\n",
        &[scontrol(
            "9",
            "COMPLETED",
            "None",
            "(null)",
            "ExitCode=0:0 StartTime=2026-11-26T15:05:09 EndTime=2026-11-26T15:05:10 NodeList=vm",
        )],
        "",
    );
    let t0 = Instant::now();
    assert!(!t.cancel_due(false, t0));
    // An interrupt right before a restart: cleared within the grace period.
    assert!(!t.cancel_due(true, t0));
    assert!(!t.cancel_due(true, t0 + Duration::from_millis(999)));
    assert!(t.cancel_due(true, t0 + CANCEL_GRACE));
    assert_eq!(t.start_cancel(t0 + CANCEL_GRACE), ["7", "8"], "d is done");
    assert!(t.cancelled());
    assert!(!t.cancel_due(true, t0 + Duration::from_secs(2)), "once");
    // The allocation ends cancelled; the pending dependent is still listed.
    let alloc = scontrol(
        "7",
        "CANCELLED",
        "None",
        "(null)",
        "ExitCode=0:15 StartTime=2026-11-26T15:05:09 EndTime=2026-11-26T15:05:12 NodeList=vm",
    );
    let changes = poll(
        &mut t,
        "7|CANCELLED|vm|None\n8|PENDING||Dependency\n",
        &[alloc],
        "",
    );
    assert_eq!(
        changes,
        [
            ("a".into(), cancelled("interrupted")),
            ("b".into(), cancelled("interrupted"))
        ]
    );
    t.expire_cancel(t0 + CANCEL_GRACE + CANCEL_WAIT);
    assert!(!t.all_terminal(), "not before the wait is over");
    t.expire_cancel(t0 + CANCEL_GRACE + CANCEL_WAIT + Duration::from_millis(1));
    assert!(t.all_terminal());
    assert_eq!(t.resolve(), [(2, cancelled("interrupted"))]);
}

mod more;
