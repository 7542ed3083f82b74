//! When a job loses its node: what Slurm says of the node (one `sinfo`),
//! for the notice of a requeued job, the marker where its next attempt's
//! output starts, and the error of a job that ended `NODE_FAIL`.
//!
//! A requeued job is PENDING again with reason `BeginTime` (Slurm holds
//! it for a while before it may start again); the job itself does not say
//! why it was requeued, its node does (`down*`, with the reason the admin
//! or slurmctld gave).

use std::sync::Mutex;

use super::tracker::Tracker;
use crate::events::{Event, Stream};
use crate::transport::{words, Transport};

/// A node's state and reason as `sinfo` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWord {
    /// `%T`: `down*`, `idle`, `drained`, ... (`*`: not responding).
    pub state: String,
    /// `%E`: why it is down or drained (`none` when there is no reason).
    pub reason: String,
}

impl NodeWord {
    /// The node is down, failing or not responding.
    pub fn failed(&self) -> bool {
        let s = self.state.to_ascii_lowercase();
        s.ends_with('*') || s.starts_with("down") || s.starts_with("fail")
    }

    /// `node vm is down* (reason: slurmbook test: node failure)`.
    pub fn describe(&self, node: &str) -> String {
        let reason = self.reason.trim();
        if reason.is_empty() || reason == "none" {
            format!("node {node} is {}", self.state)
        } else {
            format!("node {node} is {} (reason: {reason})", self.state)
        }
    }
}

/// A node name or hostlist (`vm`, `cn[01-04]`) as Slurm prints it.
pub fn valid_node_list(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 256
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.[],".contains(&b))
}

/// `sinfo` for one node (list): its state and reason, one line per node.
pub fn sinfo_node_argv(node: &str) -> Vec<String> {
    vec![
        "sinfo".into(),
        "--noheader".into(),
        "--Node".into(),
        format!("--nodes={node}"),
        "--format=%T|%E".into(),
    ]
}

/// The first node of [`sinfo_node_argv`]'s output.
pub fn parse_sinfo_node(stdout: &str) -> Option<NodeWord> {
    let line = stdout.lines().find(|l| !l.trim().is_empty())?;
    let (state, reason) = line.trim().split_once('|')?;
    Some(NodeWord {
        state: state.trim().to_string(),
        reason: reason.trim().to_string(),
    })
}

/// What Slurm says of `node`; `None` when it cannot be asked (the caller
/// says what it knows without it).
pub async fn query_node(t: &dyn Transport, node: &str) -> Option<NodeWord> {
    if !valid_node_list(node) {
        return None;
    }
    match t.run(&words(&sinfo_node_argv(node))).await {
        Ok(out) if out.success() => parse_sinfo_node(&out.stdout_text()),
        Ok(out) => {
            tracing::info!("sinfo for node {node}: {}", out.stderr_text().trim());
            None
        }
        Err(e) => {
            tracing::info!("sinfo for node {node}: {e}");
            None
        }
    }
}

/// For the jobs Slurm requeued (`requeued`) and those that ended (`ended`,
/// only `NODE_FAIL` ones matter): ask Slurm about the node each lost, note
/// it on the job's track (for the attempt marker and the error), and
/// return the notices of the requeued ones. The tracker is never locked
/// across the queries.
pub(super) async fn explain(
    t: &dyn Transport,
    tracker: &Mutex<Tracker>,
    requeued: &[usize],
    ended: &[usize],
) -> Vec<String> {
    if requeued.is_empty() && ended.is_empty() {
        return Vec::new();
    }
    let lost: Vec<(usize, bool, Option<String>)> = {
        let tr = tracker.lock().expect("poisoned");
        let node_fail = ended
            .iter()
            .filter(|&&i| tr.track(i).slurm_state == "NODE_FAIL")
            .map(|&i| (i, false));
        requeued
            .iter()
            .map(|&i| (i, true))
            .chain(node_fail)
            .map(|(i, rq)| (i, rq, tr.track(i).node.clone()))
            .collect()
    };
    let mut notices = Vec::new();
    for (i, is_requeue, node) in lost {
        let word = match &node {
            Some(n) => query_node(t, n).await,
            None => None,
        };
        let mut tr = tracker.lock().expect("poisoned");
        if let (Some(n), Some(w)) = (&node, &word) {
            if w.failed() || !is_requeue {
                // Every asset of the job (the steps of a grouped one) lost it.
                let id = tr.jobs()[i].job_id.clone();
                let same: Vec<usize> = (0..tr.jobs().len())
                    .filter(|&k| tr.jobs()[k].job_id == id)
                    .collect();
                for k in same {
                    tr.set_node_note(k, w.describe(n));
                }
            }
        }
        if is_requeue {
            let job = &tr.jobs()[i];
            let attempt = tr.track(i).restarts.max(tr.track(i).requeues_seen) + 1;
            notices.push(requeue_notice(
                &job.asset,
                &job.job_id,
                node.as_deref(),
                word.as_ref(),
                attempt,
            ));
        }
    }
    notices
}

/// The notice of a job Slurm requeued (it was running, and is pending again).
pub fn requeue_notice(
    asset: &str,
    job_id: &str,
    node: Option<&str>,
    word: Option<&NodeWord>,
    attempt: u32,
) -> String {
    let lost = match (node, word) {
        (Some(n), Some(w)) if w.failed() => format!("its node failed: {}", w.describe(n)),
        (Some(n), _) => format!("it was running on node {n}"),
        (None, _) => "it was running".to_string(),
    };
    format!(
        "{asset}: Slurm requeued job {job_id} ({lost}); it starts again from scratch as \
         attempt {attempt} once Slurm lets it (a requeued job is held for a while: BeginTime)"
    )
}

/// The output event of job `i`'s `attempt` line: the marker, saying
/// "after node failure" when the watch saw its node fail.
pub(super) fn attempt_output(tracker: &Tracker, i: usize, restart: u32) -> Event {
    Event::Output {
        asset: tracker.jobs()[i].asset.clone(),
        stream: Stream::Stdout,
        text: attempt_marker(restart, tracker.track(i).node_note.is_some()),
    }
}

/// The line shown where attempt `restart + 1` of a requeued job starts.
pub fn attempt_marker(restart: u32, node_failed: bool) -> String {
    let why = if node_failed {
        "requeued after node failure"
    } else {
        "requeued by Slurm"
    };
    format!("── attempt {} ({why}) ──\n", restart + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::AssetState;
    use crate::exec::slurm::cli::{parse_details, parse_squeue};
    use crate::exec::slurm::jobs::WatchJob;
    use crate::exec::slurm::protocol::{parse_bundle_line, BundleEvent, ProtocolLine, StepLine};
    use crate::exec::slurm::stream::{Demux, Piece};
    use crate::exec::slurm::submit::ATTEMPT_MARK;

    #[test]
    fn a_down_node_is_described_in_slurms_words() {
        // `sinfo --noheader --Node --nodes=vm --format=%T|%E` on the test
        // cluster after `scontrol update nodename=vm state=down reason=...`
        // with its slurmd killed.
        let w = parse_sinfo_node("down*|slurmbook test: node failure\n").unwrap();
        assert!(w.failed());
        assert_eq!(
            w.describe("vm"),
            "node vm is down* (reason: slurmbook test: node failure)"
        );
        let idle = parse_sinfo_node("idle|none\n").unwrap();
        assert!(!idle.failed());
        assert_eq!(idle.describe("vm"), "node vm is idle");
        assert!(parse_sinfo_node("").is_none());
        assert!(parse_sinfo_node("garbage\n").is_none());
    }

    #[test]
    fn the_notice_says_why_and_what_happens_next() {
        let down = parse_sinfo_node("down*|slurmbook test: node failure").unwrap();
        let n = requeue_notice("sq", "12", Some("vm"), Some(&down), 2);
        assert_eq!(
            n,
            "sq: Slurm requeued job 12 (its node failed: node vm is down* (reason: slurmbook \
             test: node failure)); it starts again from scratch as attempt 2 once Slurm lets it \
             (a requeued job is held for a while: BeginTime)"
        );
        let idle = parse_sinfo_node("idle|none").unwrap();
        let n = requeue_notice("sq", "12", Some("vm"), Some(&idle), 3);
        assert!(
            n.contains("(it was running on node vm)") && n.contains("attempt 3"),
            "{n}"
        );
        assert_eq!(
            attempt_marker(1, true),
            "── attempt 2 (requeued after node failure) ──\n"
        );
        assert_eq!(
            attempt_marker(2, false),
            "── attempt 3 (requeued by Slurm) ──\n"
        );
    }

    fn job(asset: &str, id: &str) -> WatchJob {
        WatchJob {
            asset: asset.into(),
            job_id: id.into(),
            after: vec![],
            step_of: None,
            task: None,
        }
    }

    #[test]
    fn a_running_job_pending_again_was_requeued() {
        // What squeue printed on the test cluster around the node failure.
        let mut t = Tracker::new(&[job("sq", "2")]);
        let q = t.apply_queue(&parse_squeue("2|RUNNING|vm|None|2026-11-26T21:12:18\n"));
        assert!(q.requeued.is_empty());
        let q = t.apply_queue(&parse_squeue("2|PENDING||BeginTime|2026-11-26T21:14:18\n"));
        assert_eq!(q.requeued, [0]);
        assert_eq!(t.track(0).requeues_seen, 1);
        // Still pending: no second requeue.
        let q = t.apply_queue(&parse_squeue("2|PENDING||BeginTime|2026-11-26T21:14:18\n"));
        assert!(q.requeued.is_empty());
        let changes = t.resolve();
        assert!(
            matches!(&changes[0].1, AssetState::Queued { reason: Some(r), .. } if r.starts_with("BeginTime")),
            "{changes:?}"
        );
    }

    #[test]
    fn a_requeued_allocation_names_the_step_that_ran_and_starts_its_steps_again() {
        let step = |a: &str| WatchJob {
            step_of: Some("alloc_a".into()),
            ..job(a, "5")
        };
        let mut t = Tracker::new(&[step("a"), step("b")]);
        let line = |l: &str| StepLine::parse(l).unwrap();
        t.record_step_line(&line("start a vm 1.0"));
        t.record_step_line(&line("end a 0 2.0"));
        t.record_step_line(&line("start b vm 2.1"));
        // Listed running before any poll saw b's `start` line.
        let mut early = Tracker::new(&[step("a"), step("b")]);
        early.apply_queue(&parse_squeue("5|RUNNING|vm|None|N/A\n"));
        early.record_step_line(&line("start a vm 1.0"));
        let q = early.apply_queue(&parse_squeue("5|PENDING||BeginTime|N/A\n"));
        assert_eq!(early.track(q.requeued[0]).node.as_deref(), Some("vm"));
        let q = t.apply_queue(&parse_squeue("5|RUNNING|vm|None|N/A\n"));
        assert!(q.requeued.is_empty());
        // b ran on vm when the allocation was requeued; a ended before.
        let q = t.apply_queue(&parse_squeue("5|PENDING||BeginTime|N/A\n"));
        assert_eq!(q.requeued.len(), 1);
        assert_eq!(t.jobs()[q.requeued[0]].asset, "b");
        assert_eq!(t.track(q.requeued[0]).node.as_deref(), Some("vm"));
        assert_eq!(t.track(1).requeues_seen, 1);
        // Attempt 2 starts `a` again: its end of attempt 1 is over.
        t.record_step_line(&line("start a vm 200.0"));
        let (started, ended) = t.step_times(0);
        assert_eq!((started, ended), (Some(200.0), None));
    }

    #[test]
    fn a_job_ended_for_a_node_failure_names_the_node_and_the_remedy() {
        let mut t = Tracker::new(&[job("sq", "14")]);
        t.apply_queue(&parse_squeue("14|RUNNING|vm|None|N/A\n"));
        let q = t.apply_queue(&parse_squeue("14|NODE_FAIL|vm|NodeDown|N/A\n"));
        assert_eq!(q.need_detail, [0]);
        let text = "M JOB 14 sq\nJobId=14 JobName=sq JobState=NODE_FAIL Reason=NodeDown Requeue=0 Restarts=0 ExitCode=0:0 NodeList=vm\nM ERR\nsq: working\nM SIZE 3 12\n";
        let (_, ended) = t.apply_details(&q.need_detail, &parse_details(text, "M"));
        assert_eq!(ended, [0]);
        let w = parse_sinfo_node("down*|slurmbook test: node failure").unwrap();
        t.set_node_note(0, w.describe("vm"));
        let AssetState::Failed { error } = &t.resolve()[0].1 else {
            panic!("not failed");
        };
        assert!(
            error.starts_with(
                "node failure (NODE_FAIL): node vm is down* (reason: slurmbook test: node failure)\n"
            ),
            "{error}"
        );
        assert!(error.contains("sq: working"), "{error}");
        assert!(
            error.contains("hint: the node it ran on failed, not the code"),
            "{error}"
        );
        assert!(error.contains("`%%asset sq --requeue`"), "{error}");
    }

    /// `sb_attempt FILE` under `sh -e`, as a batch script runs it.
    fn mark(restart: Option<&str>, before: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.out");
        std::fs::write(&f, before).unwrap();
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-ec")
            .arg(format!(
                "{ATTEMPT_MARK}sb_attempt \"$1\"\necho next >> \"$1\""
            ))
            .arg("sh")
            .arg(&f)
            .env_remove("SLURM_RESTART_COUNT");
        if let Some(r) = restart {
            cmd.env("SLURM_RESTART_COUNT", r);
        }
        assert!(cmd.status().unwrap().success());
        std::fs::read(&f).unwrap()
    }

    #[test]
    fn the_batch_script_marks_a_restarted_attempt_on_a_line_of_its_own() {
        let line = b"\x1eSLURMBOOK {\"event\":\"attempt\",\"restart\":1}\n";
        let with = |before: &[u8], sep: &[u8]| [before, sep, line, b"next\n"].concat();
        assert_eq!(mark(Some("1"), b"a1\n"), with(b"a1\n", b""));
        assert_eq!(mark(Some("1"), b"a1\npart"), with(b"a1\npart", b"\n"));
        assert_eq!(mark(Some("1"), b""), with(b"", b""));
        // Not restarted (or nonsense in the variable): nothing but the output.
        for r in [None, Some("0"), Some(""), Some("1;id"), Some("$(id)")] {
            assert_eq!(mark(r, b"a1\n"), b"a1\nnext\n", "{r:?}");
        }
        // What the watcher makes of it.
        assert_eq!(
            parse_bundle_line("{\"event\":\"attempt\",\"restart\":1}"),
            ProtocolLine::Event(BundleEvent::Attempt { restart: 1 })
        );
    }

    #[test]
    fn attempt_two_follows_attempt_one_in_order_and_a_resume_repeats_nothing() {
        let file: &[u8] =
            b"a1 0\na1 1\npart\n\x1eSLURMBOOK {\"event\":\"attempt\",\"restart\":1}\na2 0\na2 1\n";
        let files = |o| vec![(0, Stream::Stdout, "/r/sq.out".to_string(), o)];
        let mut stream = b"==> /r/sq.out <==\n".to_vec();
        stream.extend_from_slice(file);
        for chunk in [1, 3, 7, 200] {
            let mut d = Demux::new(files(0));
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.feed(c, &mut out);
            }
            d.finish(&mut out);
            let seen: Vec<String> = out
                .iter()
                .map(|p| match p {
                    Piece::Output { text, .. } => text.clone(),
                    Piece::Protocol { json, replay, .. } => format!("<{json} {replay}>"),
                })
                .collect();
            assert_eq!(
                seen.concat(),
                "a1 0\na1 1\npart\n<{\"event\":\"attempt\",\"restart\":1} false>a2 0\na2 1\n",
                "chunk {chunk}"
            );
            assert_eq!(d.offsets(0).0, file.len() as u64);
        }
        // Resumed (`%attach`) after the marker: it is a replay, not shown again.
        let at = file.len() as u64 - 5;
        let mut d = Demux::new(files(at));
        let mut out = Vec::new();
        d.feed(&stream, &mut out);
        d.finish(&mut out);
        assert!(out
            .iter()
            .any(|p| matches!(p, Piece::Protocol { replay: true, .. })));
        let shown: String = out
            .iter()
            .filter_map(|p| match p {
                Piece::Output { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(shown, "a2 1\n");
    }

    #[test]
    fn node_names_are_checked_before_they_reach_sinfo() {
        assert!(valid_node_list("vm"));
        assert!(valid_node_list("cn[01-04],gpu-1.x"));
        for bad in ["", "vm;id", "$(id)", "a b", "vm'", "vm\n"] {
            assert!(!valid_node_list(bad), "{bad:?}");
        }
        assert_eq!(sinfo_node_argv("vm")[3], "--nodes=vm");
    }
}
