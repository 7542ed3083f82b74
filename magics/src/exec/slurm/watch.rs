//! Following a run's jobs to their end: output through one `tail -F`,
//! states through one batched `squeue` per poll. This module runs the two
//! loops; the parts each do one job:
//!
//! * [`super::follow`]: the one tail over the transport, split per file
//!   with exact offsets, restarted when the stream breaks off.
//! * [`super::tracker`]: what is known about each job and when to poll or
//!   cancel (pure; fed by the poll loop below).
//! * [`super::cli`]: the `squeue`/`scontrol`/`sacct`/`scancel` commands and
//!   their parsed output.
//! * [`super::protocol`]: the job's `\u{1e}SLURMBOOK {json}` lines (not
//!   output: `metadata` becomes [`Event::Metadata`], `display`
//!   [`Event::Display`], `materialized` and `failed` are kept for the
//!   result) and the `.steps` lines of grouped jobs.
//!
//! The watcher reports, and writes nothing itself: output and state
//! changes go to the [`Emit`] sink as events; offsets to resume from, the
//! offsets reached after each batch of output and the jobs' state changes
//! go to the [`RunLog`]. Each batch of output is emitted and its offsets
//! saved as one step through the [`OutputGate`], so a process about to
//! exit can freeze its watchers and a later watch (`%attach`) starts
//! exactly after the last line shown: none lost, none repeated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::accounting::AcctRow;
use super::array;
use super::cli::{self, valid_job_id, DetailRequest};
use super::follow::{self, Deliver, Delivery, Follower};
use super::gate::OutputGate;
use super::jobs::WatchJob;
use super::node_fail;
use super::protocol::{parse_bundle_line, BundleEvent, JobUsage, ProtocolLine};
use super::run_log::{RunLog, RunLogError};
use super::stream::Piece;
use super::submit::JobSpec;
use super::tracker::Tracker;
use crate::events::{AssetState, Emit, Event, Stream};
use crate::model::is_identifier;
use crate::transport::{check_abs_path, words, Transport, TransportError};

/// Everything [`watch_run`] needs.
pub struct WatchRun<'a> {
    pub transport: &'a dyn Transport,
    /// Absolute run directory holding `<asset>.out` / `<asset>.err`.
    pub run_dir: &'a str,
    pub jobs: &'a [WatchJob],
    pub emit: &'a dyn Emit,
    /// When set (for [`super::tracker::CANCEL_GRACE`]), all jobs of the run
    /// still queued or running are `scancel`ed and the watch returns.
    pub cancel: &'a AtomicBool,
    /// Where saved offsets are read from, and offsets and job states recorded.
    pub log: &'a dyn RunLog,
    /// The process's output gate (see [`OutputGate`]).
    pub gate: &'a OutputGate,
}

/// How one job ended (or stood, if the watch was cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    pub asset: String,
    pub job_id: String,
    pub state: AssetState,
    /// Slurm's state: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    pub slurm_state: String,
    pub node: Option<String>,
    pub elapsed_ms: Option<u64>,
    pub exit_code: Option<i32>,
    /// Signal that ended the job, if any.
    pub signal: Option<i32>,
    /// Metadata the bundle reported (objects merged).
    pub metadata: serde_json::Value,
    /// Size of the value the bundle wrote (`materialized` event).
    pub materialized_bytes: Option<u64>,
    /// The bundle's own error (`failed` event).
    pub bundle_error: Option<String>,
    /// Last lines of the job's `.err` (failed jobs).
    pub stderr_tail: String,
    pub stdout_offset: u64,
    pub stderr_offset: u64,
    /// Time in Slurm's queue (`scontrol`'s `StartTime` − `SubmitTime`).
    #[serde(default)]
    pub queue_ms: Option<u64>,
    /// A grouped step's start and end (Unix times, from `.steps`).
    #[serde(default)]
    pub step_times: (Option<f64>, Option<f64>),
    /// The job's `sacct` usage lines (clusters with accounting).
    #[serde(default)]
    pub accounting: Vec<AcctRow>,
    /// What the job measured of itself (`usage` event).
    #[serde(default)]
    pub job_usage: Option<JobUsage>,
    /// The array task (partition) this is, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<super::jobs::ArrayTask>,
}

/// What [`watch_run`] returns once every job is terminal or the run was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlurmJobsResult {
    pub jobs: Vec<JobOutcome>,
    /// The cancel flag was set and the run's jobs were cancelled.
    pub cancelled: bool,
    /// Problems that did not stop the watch (e.g. output streaming gave up).
    pub warnings: Vec<String>,
}

impl SlurmJobsResult {
    pub fn job(&self, asset: &str) -> Option<&JobOutcome> {
        self.jobs.iter().find(|j| j.asset == asset)
    }

    pub fn all_done(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.state, AssetState::Done { .. }))
    }
}

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch: {0}")]
    Invalid(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    RunLog(#[from] RunLogError),
    #[error("lost track of the run's jobs: {0}")]
    Poll(String),
}

/// [`WatchJob`]s from what [`super::submit_all`] was given and returned.
pub fn watch_jobs(specs: &[JobSpec], submitted: &[(String, String)]) -> Vec<WatchJob> {
    submitted
        .iter()
        .map(|(asset, id)| WatchJob {
            asset: asset.clone(),
            job_id: id.clone(),
            after: specs
                .iter()
                .find(|s| s.asset == *asset)
                .map(|s| s.after.clone())
                .unwrap_or_default(),
            step_of: None,
            task: None,
        })
        .collect()
}

/// Follow a run until every job is terminal (or the cancel flag has been
/// set for [`super::tracker::CANCEL_GRACE`]), streaming output and state
/// changes as events. See the module docs.
pub async fn watch_run(w: WatchRun<'_>) -> Result<SlurmJobsResult, WatchError> {
    check_abs_path(w.run_dir)?;
    if w.jobs.is_empty() {
        return Err(WatchError::Invalid("no jobs".into()));
    }
    for j in w.jobs {
        if !is_identifier(&j.asset) {
            return Err(WatchError::Invalid(format!(
                "`{}` is not an asset name",
                j.asset
            )));
        }
        if !valid_job_id(&j.job_id) {
            return Err(WatchError::Invalid(format!(
                "`{}` is not a job id (asset {})",
                j.job_id, j.asset
            )));
        }
    }
    let run_dir = w.run_dir.trim_end_matches('/');
    let mut offsets = Vec::with_capacity(w.jobs.len());
    for j in w.jobs {
        offsets.push(w.log.saved_offsets(j)?.unwrap_or((0, 0)));
    }
    let tracker = Tracker::new(w.jobs);
    let (follower, tail_argv) = Follower::new(run_dir, w.jobs, &offsets, tracker.groups());
    let watch = Watch {
        w: &w,
        tracker: Mutex::new(tracker),
        follower: Mutex::new(follower),
        saved: Mutex::new(offsets),
        arrays: Mutex::default(),
    };
    let _final_save = SaveOnDrop(&watch);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tail = follow::tail_loop(w.transport, &tail_argv, &watch.follower, &watch, stop_rx);
    let poll = async {
        let r = watch.poll_loop(run_dir).await;
        let _ = stop_tx.send(true);
        r
    };
    let (mut warnings, polled) = tokio::join!(tail, poll);
    warnings.extend(polled?);
    let tracker = watch.tracker();
    let follower = watch.follower();
    let jobs = w
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let t = tracker.track(i);
            let p = tracker.proto(i);
            let (o, e) = follower.offsets(i);
            JobOutcome {
                asset: j.asset.clone(),
                job_id: j.job_id.clone(),
                state: tracker.outcome_state(i),
                slurm_state: t.slurm_state.clone(),
                node: t.node.clone(),
                elapsed_ms: t.elapsed_ms,
                exit_code: t.exit_code,
                signal: t.signal,
                metadata: p.metadata.clone(),
                materialized_bytes: p.materialized,
                bundle_error: p.bundle_error.clone(),
                stderr_tail: t.stderr_tail.clone(),
                stdout_offset: o,
                stderr_offset: e,
                queue_ms: t.queue_ms,
                step_times: tracker.step_times(i),
                accounting: t.accounting.clone(),
                job_usage: p.usage.clone(),
                task: j.task.clone(),
            }
        })
        .collect();
    Ok(SlurmJobsResult {
        jobs,
        cancelled: tracker.cancelled(),
        warnings,
    })
}

/// One watch: what the tail and poll loops share (never locked across an
/// await, never two locks at once).
struct Watch<'a, 'w> {
    w: &'a WatchRun<'w>,
    tracker: Mutex<Tracker>,
    follower: Mutex<Follower>,
    /// Offsets last given to the run log.
    saved: Mutex<Vec<(u64, u64)>>,
    /// The state last shown of each job array (by asset).
    arrays: Mutex<HashMap<String, AssetState>>,
}

/// Saves the offsets reached when the watch ends or is dropped.
struct SaveOnDrop<'a, 'b, 'w>(&'a Watch<'b, 'w>);

impl Drop for SaveOnDrop<'_, '_, '_> {
    fn drop(&mut self) {
        self.0.w.gate.pass(|| self.0.save_offsets());
    }
}

impl Deliver for Watch<'_, '_> {
    fn deliver(&self, d: Delivery) -> bool {
        self.w
            .gate
            .pass(|| {
                if !d.step_lines.is_empty() {
                    let mut t = self.tracker();
                    for l in &d.step_lines {
                        t.record_step_line(l);
                    }
                }
                self.handle_pieces(d.pieces);
                self.save_offsets();
            })
            .is_some()
    }
}

impl Watch<'_, '_> {
    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().expect("poisoned")
    }

    fn follower(&self) -> MutexGuard<'_, Follower> {
        self.follower.lock().expect("poisoned")
    }

    /// Give changed offsets to the run log.
    fn save_offsets(&self) {
        let changed: Vec<(usize, (u64, u64))> = {
            let f = self.follower();
            let Ok(mut saved) = self.saved.lock() else {
                return;
            };
            let mut v = Vec::new();
            for (i, s) in saved.iter_mut().enumerate() {
                let o = f.offsets(i);
                if o != *s {
                    *s = o;
                    v.push((i, o));
                }
            }
            v
        };
        for (i, o) in changed {
            let asset = &self.w.jobs[i].label();
            if let Err(err) = self.w.log.save_offsets(asset, o) {
                tracing::warn!("saving output offsets of {asset}: {err}");
            }
        }
    }

    /// Emit what the tail found; protocol lines go to the tracker.
    fn handle_pieces(&self, pieces: Vec<Piece>) {
        let emit = self.w.emit;
        for p in pieces {
            match p {
                Piece::Output { job, stream, text } => {
                    let j = &self.w.jobs[job];
                    let mut text = text;
                    // A task's lines are whole (its last one too).
                    if j.task.is_some() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    emit.emit(Event::Output {
                        asset: j.label(),
                        stream,
                        text,
                    })
                }
                Piece::Protocol { job, json, replay } => {
                    let asset = &self.w.jobs[job].asset;
                    let event = match parse_bundle_line(&json) {
                        ProtocolLine::Event(e) => e,
                        ProtocolLine::NotJson => {
                            if !replay {
                                emit.emit(Event::Output {
                                    asset: asset.clone(),
                                    stream: Stream::Stdout,
                                    text: format!("SLURMBOOK {json}\n"),
                                });
                            }
                            continue;
                        }
                        ProtocolLine::Ignored(why) => {
                            tracing::debug!("ignoring a bundle event of {asset}: {why}");
                            continue;
                        }
                    };
                    self.tracker().record_bundle_event(job, &event);
                    if replay {
                        continue;
                    }
                    match event {
                        BundleEvent::Metadata { metadata } => emit.emit(Event::Metadata {
                            asset: asset.clone(),
                            metadata,
                        }),
                        BundleEvent::Display { data } => emit.emit(Event::Display {
                            asset: asset.clone(),
                            data: data.into_iter().collect(),
                        }),
                        BundleEvent::Attempt { restart } => {
                            emit.emit(node_fail::attempt_output(&self.tracker(), job, restart))
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Emit state changes and give them to the run log, through the gate;
    /// `false` when it is frozen.
    fn report_states(&self, changes: Vec<(usize, AssetState)>) -> bool {
        if changes.is_empty() {
            return true;
        }
        let arrays = self.array_changes(&changes);
        self.w
            .gate
            .pass(|| {
                let labels: Vec<String> = changes
                    .iter()
                    .map(|(i, _)| self.w.jobs[*i].label())
                    .collect();
                let pairs: Vec<(&str, &str)> = changes
                    .iter()
                    .zip(&labels)
                    .map(|((_, s), l)| (l.as_str(), s.label()))
                    .collect();
                for (i, state) in &changes {
                    if self.w.jobs[*i].task.is_none() {
                        self.w.emit.emit(Event::State {
                            asset: self.w.jobs[*i].asset.clone(),
                            state: state.clone(),
                        });
                    }
                }
                for (asset, state) in &arrays {
                    self.w.emit.emit(Event::State {
                        asset: asset.clone(),
                        state: state.clone(),
                    });
                }
                if let Err(e) = self.w.log.job_states(&pairs) {
                    tracing::warn!("saving job states: {e}");
                }
            })
            .is_some()
    }

    /// The arrays some of whose tasks changed, whose counted state changed.
    fn array_changes(&self, changes: &[(usize, AssetState)]) -> Vec<(String, AssetState)> {
        let touched: Vec<usize> = changes.iter().map(|(i, _)| *i).collect();
        let t = self.tracker();
        let mut shown = self.arrays.lock().expect("poisoned");
        array::changed(self.w.jobs, &touched, |i| t.outcome_state(i), &mut shown)
    }

    /// Poll states until every job is terminal; returns warnings.
    async fn poll_loop(&self, run_dir: &str) -> Result<Vec<String>, WatchError> {
        let flag = || self.w.cancel.load(Ordering::Relaxed);
        let mut warnings = Vec::new();
        // Since when job states could not be read, and what to say when they can again.
        let mut outage: Option<(Instant, &str)> = None;
        loop {
            if self.w.gate.is_frozen() {
                std::future::pending::<()>().await;
            }
            if self.tracker().cancel_due(flag(), Instant::now()) {
                let ids = self.tracker().start_cancel(Instant::now());
                if let Err(e) = cli::cancel(self.w.transport, &ids).await {
                    warnings.push(format!("scancel failed: {e}"));
                }
            }
            let mut changed = false;
            match self.poll_once(run_dir).await {
                Ok(c) => {
                    changed = c;
                    self.tracker().poll_succeeded();
                    if let Some((since, what)) = outage.take() {
                        self.notice(format!(
                            "{what} again after {} s; following the run",
                            since.elapsed().as_secs()
                        ));
                    }
                }
                Err(e) => {
                    if !e.is_transient() {
                        return Err(e.into());
                    }
                    if outage.is_none() {
                        let (said, back) = outage_words(&e.to_string());
                        self.notice(format!("{said}, retrying ({})", first_line(&e.to_string())));
                        outage = Some((Instant::now(), back));
                    }
                    let give_up = self.tracker().poll_failed(Instant::now());
                    // The user was told once (the notice); the log has each.
                    tracing::info!("polling job states: {e}");
                    if give_up {
                        return Err(WatchError::Poll(format!(
                            "job states could not be read for 5 minutes: {e}"
                        )));
                    }
                }
            }
            let changes = {
                let mut t = self.tracker();
                t.expire_cancel(Instant::now());
                t.resolve()
            };
            changed |= !changes.is_empty();
            if !self.report_states(changes) {
                std::future::pending::<()>().await;
            }
            let interval = {
                let mut t = self.tracker();
                if t.all_terminal() {
                    break;
                }
                t.next_interval(changed)
            };
            let until = Instant::now() + interval;
            while Instant::now() < until {
                {
                    let mut t = self.tracker();
                    if t.cancel_due(flag(), Instant::now()) || t.steps_changed() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
            }
        }
        // Let the tail catch up with the files' final sizes before stopping it.
        let all: Vec<usize> = (0..self.w.jobs.len()).collect();
        self.wait_caught_up(&all, Duration::from_secs(5)).await;
        Ok(warnings)
    }

    /// A word on the whole run (not recorded: the run's outcome is).
    fn notice(&self, text: String) {
        tracing::info!("{text}");
        self.w.emit.emit(Event::Notice { text });
    }

    /// One poll: squeue for all live jobs, details for those that ended.
    /// Returns whether anything changed.
    async fn poll_once(&self, run_dir: &str) -> Result<bool, TransportError> {
        let ids = self.tracker().live_job_ids();
        if ids.is_empty() {
            return Ok(false);
        }
        let listed = cli::query_queue(self.w.transport, &words(&ids)).await?;
        let queue = self.tracker().apply_queue(&listed);
        // Jobs Slurm requeued: what Slurm says of the node they lost.
        for n in node_fail::explain(self.w.transport, &self.tracker, &queue.requeued, &[]).await {
            self.notice(n);
        }
        if queue.need_detail.is_empty() {
            return Ok(queue.changed);
        }
        let stems: HashMap<usize, String> = queue
            .need_detail
            .iter()
            .map(|&i| (i, self.w.jobs[i].stem()))
            .collect();
        let requests: Vec<DetailRequest<'_>> = queue
            .need_detail
            .iter()
            .map(|&i| {
                let j = &self.w.jobs[i];
                DetailRequest {
                    stem: &stems[&i],
                    job_id: &j.job_id,
                    step_of: j.step_of.as_deref(),
                }
            })
            .collect();
        let details: HashMap<String, cli::Detail> =
            cli::query_details(self.w.transport, run_dir, &requests).await?;
        let (changed, ended) = self.tracker().apply_details(&queue.need_detail, &details);
        for n in node_fail::explain(self.w.transport, &self.tracker, &[], &ended).await {
            self.notice(n);
        }
        // Show the ended jobs' last output before their final state.
        self.wait_caught_up(&ended, Duration::from_secs(2)).await;
        Ok(queue.changed | changed)
    }

    /// Wait until the tail has received every byte of the jobs' files (as
    /// measured when they ended), or `limit` passed.
    async fn wait_caught_up(&self, jobs: &[usize], limit: Duration) {
        let start = Instant::now();
        loop {
            let sizes: Vec<(usize, (u64, u64))> = {
                let t = self.tracker();
                jobs.iter()
                    .filter_map(|&i| t.track(i).final_sizes.map(|s| (i, s)))
                    .collect()
            };
            let behind = {
                let f = self.follower();
                sizes.iter().any(|&(i, s)| f.behind(i, s))
            };
            if !behind || start.elapsed() > limit {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What to say when job states cannot be read, and when they can again.
fn outage_words(error: &str) -> (&'static str, &'static str) {
    const CONTROLLER: &[&str] = &[
        "Unable to contact slurm controller",
        "Socket timed out",
        "Slurm backup controller in standby mode",
        "Zero Bytes were transmitted or received",
    ];
    if CONTROLLER.iter().any(|c| error.contains(c)) {
        ("Slurm controller unreachable", "Slurm controller reachable")
    } else {
        ("job states could not be read", "job states readable")
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_controller_is_named_as_such() {
        let squeue = "squeue failed (exit 1): slurm_load_jobs error: Unable to contact slurm controller (connect failure)";
        assert_eq!(
            outage_words(squeue),
            ("Slurm controller unreachable", "Slurm controller reachable")
        );
        assert_eq!(
            outage_words("ssh: connection closed").0,
            "job states could not be read"
        );
        assert_eq!(first_line("\n  a\nb"), "a");
    }
}
