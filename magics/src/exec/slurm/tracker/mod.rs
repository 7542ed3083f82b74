//! The watcher's pure state: what is known about each followed job, and
//! when to poll and cancel. No I/O and no clock of its own: it is driven by
//! parsed poll results ([`super::cli`]'s records), protocol events
//! ([`super::protocol`]) and the `now` its caller passes in, so it can be
//! tested with recorded Slurm output.
//!
//! * **Jobs.** [`Tracker::apply_queue`] takes one `squeue` listing: jobs
//!   listed as terminal, and jobs no longer listed, need their details;
//!   [`Tracker::apply_details`] takes those (`scontrol`/`sacct`, `.err`
//!   tail, file sizes): a job with a terminal record ends; one Slurm does
//!   not know for 3 detail polls has *vanished*.
//! * **Grouped steps** (`steps`): an asset running as an `srun` step
//!   follows its allocation's `.steps` lines.
//! * **Asset states.** [`Tracker::resolve`] maps Slurm states to
//!   [`AssetState`]s (`PENDING`, `REQUEUED`, ... queued, with Slurm's
//!   reason and expected start; `COMPLETED` done;
//!   `CANCELLED` cancelled, naming the root failure when an upstream
//!   failed; anything else failed, with a reason) and returns the changes.
//! * **Polling.** Every [`POLL_MIN`], ×1.5 per quiet poll up to
//!   [`POLL_MAX`], back to [`POLL_MIN`] on any change
//!   ([`Tracker::next_interval`]); a poll failing for [`POLL_GIVE_UP`] ends the watch.
//! * **Cancelling.** The cancel flag must stay set for [`CANCEL_GRACE`]
//!   ([`Tracker::cancel_due`]); jobs not ended [`CANCEL_WAIT`] after the
//!   `scancel` count as cancelled.

mod failure;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::accounting::AcctRow;
use super::cli::{is_pending_state, is_terminal_state, Detail, QueueRow};
use super::jobs::WatchJob;
use super::protocol::{BundleEvent, JobUsage, StepLine};
use super::reasons::{pending_reason, start_estimate};
use crate::events::AssetState;
pub use failure::failure_text;
use steps::Steps;

/// Poll interval bounds.
pub const POLL_MIN: Duration = Duration::from_millis(500);
pub const POLL_MAX: Duration = Duration::from_secs(5);
/// How long the cancel flag must stay set before the run's jobs are
/// cancelled: Jupyter clients interrupt a kernel right before shutting it
/// down to restart it, and a restart must leave the jobs running.
pub const CANCEL_GRACE: Duration = Duration::from_millis(1000);
/// How long after `scancel` jobs still listed count as cancelled anyway.
pub const CANCEL_WAIT: Duration = Duration::from_secs(15);
/// How long job states may be unreadable before the watch gives up.
pub const POLL_GIVE_UP: Duration = Duration::from_secs(300);
/// Detail polls without a record after which a job has vanished.
const VANISHED_AFTER: u32 = 3;

/// A job as the poll loop sees it.
#[derive(Debug, Clone)]
pub struct Track {
    pub slurm_state: String,
    pub reason: String,
    pub node: Option<String>,
    pub terminal: bool,
    /// Last state reported.
    pub emitted: Option<AssetState>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub elapsed_ms: Option<u64>,
    pub stderr_tail: String,
    /// Sizes of `.out` and `.err` when the job ended.
    pub final_sizes: Option<(u64, u64)>,
    /// Upstream job ids Slurm marked `(failed)` in `Dependency=`.
    pub failed_deps: Vec<String>,
    pub missing_polls: u32,
    /// How often Slurm requeued the job (`Restarts=`).
    pub restarts: u32,
    /// Requeues this watch saw (running, then pending again).
    pub requeues_seen: u32,
    /// What Slurm says of the node the job lost (`node vm is down (...)`).
    pub node_note: Option<String>,
    /// The job's time limit as Slurm prints it (`TimeLimit=`).
    pub time_limit: Option<String>,
    /// The memory the job asked for (`MinMemoryNode=`).
    pub mem_asked: Option<String>,
    /// `squeue %S` while pending: when Slurm expects it to start.
    pub start_estimate: Option<String>,
    /// Time in the queue (`StartTime` − `SubmitTime`).
    pub queue_ms: Option<u64>,
    /// The job's `sacct` usage lines, where the cluster has accounting.
    pub accounting: Vec<AcctRow>,
}

impl Track {
    pub fn new() -> Track {
        Track {
            slurm_state: "UNKNOWN".into(),
            reason: String::new(),
            node: None,
            terminal: false,
            emitted: None,
            exit_code: None,
            signal: None,
            elapsed_ms: None,
            stderr_tail: String::new(),
            final_sizes: None,
            failed_deps: Vec::new(),
            missing_polls: 0,
            restarts: 0,
            requeues_seen: 0,
            node_note: None,
            time_limit: None,
            mem_asked: None,
            start_estimate: None,
            queue_ms: None,
            accounting: Vec::new(),
        }
    }

    /// Take a terminal (or last known) record of the job.
    fn take_record(&mut self, d: &Detail) {
        self.slurm_state = d.state.clone().unwrap_or_default();
        if let Some(r) = &d.reason {
            self.reason = r.clone();
        }
        if d.node.is_some() {
            self.node = d.node.clone();
        }
        self.exit_code = d.exit_code;
        self.signal = d.signal;
        self.elapsed_ms = d.elapsed_ms;
        self.failed_deps = d.failed_deps.clone();
        self.restarts = d.restarts.unwrap_or(self.restarts);
        self.take_limits(d);
        self.stderr_tail = d.stderr_tail.clone();
        self.final_sizes = d.sizes;
        self.take_usage(d);
    }

    /// Take what the job asked for (time limit, memory) from a detail record.
    fn take_limits(&mut self, d: &Detail) {
        if d.time_limit.is_some() {
            self.time_limit = d.time_limit.clone();
        }
        if d.mem_asked.is_some() {
            self.mem_asked = d.mem_asked.clone();
        }
    }

    /// Take the usage figures of a detail record.
    fn take_usage(&mut self, d: &Detail) {
        self.queue_ms = d.queue_ms.or(self.queue_ms);
        if !d.accounting.is_empty() {
            self.accounting = d.accounting.clone();
        }
    }

    /// No record for [`VANISHED_AFTER`] detail polls: the job vanished.
    /// Returns whether it did now.
    fn missing(&mut self, d: Option<&Detail>) -> bool {
        self.missing_polls += 1;
        if self.missing_polls < VANISHED_AFTER {
            return false;
        }
        self.terminal = true;
        self.slurm_state = "UNKNOWN".into();
        self.reason = "vanished".into();
        if let Some(d) = d {
            self.stderr_tail = d.stderr_tail.clone();
            self.final_sizes = d.sizes;
        }
        true
    }
}

impl Default for Track {
    fn default() -> Track {
        Track::new()
    }
}

/// What the job binary reported through the protocol.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Proto {
    /// Metadata (objects merged).
    pub metadata: serde_json::Value,
    /// Size of the value written.
    pub materialized: Option<u64>,
    /// The asset's own error.
    pub bundle_error: Option<String>,
    /// What the job measured of itself.
    pub usage: Option<JobUsage>,
    /// The attempt's restart count (`attempt` event of a requeued job).
    pub restart: u32,
}

/// What one `squeue` listing asks for next.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueOutcome {
    pub changed: bool,
    /// Jobs whose details to fetch (ended, or no longer listed).
    pub need_detail: Vec<usize>,
    /// Jobs that were running and are pending again: Slurm requeued them.
    pub requeued: Vec<usize>,
}

/// The state of one watch (see the module docs).
#[derive(Debug)]
pub struct Tracker {
    jobs: Vec<WatchJob>,
    tracks: Vec<Track>,
    proto: Vec<Proto>,
    steps: Steps,
    interval: Duration,
    cancel_seen: Option<Instant>,
    cancelled: bool,
    cancel_deadline: Option<Instant>,
    failing_since: Option<Instant>,
}

impl Tracker {
    pub fn new(jobs: &[WatchJob]) -> Tracker {
        Tracker {
            jobs: jobs.to_vec(),
            tracks: vec![Track::new(); jobs.len()],
            proto: vec![Proto::default(); jobs.len()],
            steps: Steps::new(jobs),
            interval: POLL_MIN,
            cancel_seen: None,
            cancelled: false,
            cancel_deadline: None,
            failing_since: None,
        }
    }

    pub fn jobs(&self) -> &[WatchJob] {
        &self.jobs
    }

    pub fn track(&self, i: usize) -> &Track {
        &self.tracks[i]
    }

    /// What Slurm says of the node job `i` lost (see [`Track::node_note`]).
    pub fn set_node_note(&mut self, i: usize, note: String) {
        self.tracks[i].node_note = Some(note);
    }

    pub fn proto(&self, i: usize) -> &Proto {
        &self.proto[i]
    }

    /// Allocations whose `.steps` files are followed, in order.
    pub fn groups(&self) -> &[String] {
        self.steps.groups()
    }

    /// A grouped step's start and end (Unix times, its `.steps` lines).
    pub fn step_times(&self, i: usize) -> (Option<f64>, Option<f64>) {
        if self.jobs[i].step_of.is_none() {
            return (None, None);
        }
        let s = self.steps.get(&self.jobs[i].label());
        (s.started, s.ended.map(|(_, at)| at))
    }

    /// Record a protocol event of job `i` (metadata merged, value size,
    /// the asset's error); displays are not state.
    pub fn record_bundle_event(&mut self, i: usize, event: &BundleEvent) {
        let p = &mut self.proto[i];
        match event {
            BundleEvent::Metadata { metadata } => match (&mut p.metadata, metadata) {
                (serde_json::Value::Object(old), serde_json::Value::Object(new)) => {
                    for (k, x) in new {
                        old.insert(k.clone(), x.clone());
                    }
                }
                _ => p.metadata = metadata.clone(),
            },
            BundleEvent::Materialized { bytes } => p.materialized = Some(*bytes),
            BundleEvent::Failed { error } => p.bundle_error = Some(error.clone()),
            BundleEvent::Usage(u) => p.usage = Some(u.clone()),
            BundleEvent::Attempt { restart } => p.restart = *restart,
            BundleEvent::Display { .. } | BundleEvent::Unknown => {}
        }
    }

    /// A line of an allocation's `.steps` file arrived.
    pub fn record_step_line(&mut self, line: &StepLine) {
        self.steps.feed(line);
    }

    /// A `.steps` line arrived since the last [`Tracker::live_job_ids`]
    /// (worth polling early).
    pub fn steps_changed(&self) -> bool {
        self.steps.dirty
    }

    /// The job ids to poll (sorted, each once); empty when all ended.
    pub fn live_job_ids(&mut self) -> Vec<String> {
        let mut ids: Vec<String> = (0..self.jobs.len())
            .filter(|&i| !self.tracks[i].terminal)
            .map(|i| self.jobs[i].job_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            self.steps.dirty = false;
        }
        ids
    }

    /// Take one `squeue` listing (by job id) of the live jobs.
    pub fn apply_queue(&mut self, listed: &HashMap<String, QueueRow>) -> QueueOutcome {
        let mut out = QueueOutcome {
            requeued: self.steps.requeued(&self.jobs, &mut self.tracks, listed),
            ..QueueOutcome::default()
        };
        for i in 0..self.jobs.len() {
            if self.tracks[i].terminal {
                continue;
            }
            let row = listed.get(&self.jobs[i].job_id);
            if self.jobs[i].step_of.is_some() {
                let status = self.steps.get(&self.jobs[i].label());
                let t = &mut self.tracks[i];
                out.changed |= steps::poll_step(&status, t, row, i, &mut out.need_detail);
                continue;
            }
            let t = &mut self.tracks[i];
            match row {
                Some(r) => {
                    if r.state != t.slurm_state {
                        out.changed = true;
                        if is_pending_state(&r.state) && t.slurm_state == "RUNNING" {
                            tracing::info!(job = %self.jobs[i].job_id, state = %r.state, reason = %r.reason, "job requeued");
                            t.requeues_seen += 1;
                            out.requeued.push(i);
                        }
                    }
                    t.slurm_state = r.state.clone();
                    t.reason = r.reason.clone();
                    t.start_estimate = r.start.clone();
                    if r.node.is_some() {
                        t.node = r.node.clone();
                    }
                    t.missing_polls = 0;
                    if is_terminal_state(&r.state) {
                        out.need_detail.push(i);
                    }
                }
                None => out.need_detail.push(i),
            }
        }
        out
    }

    /// Take the details (by asset) fetched for `need`. Returns whether
    /// anything changed and the jobs that ended.
    pub fn apply_details(
        &mut self,
        need: &[usize],
        details: &HashMap<String, Detail>,
    ) -> (bool, Vec<usize>) {
        let mut changed = false;
        let mut ended = Vec::new();
        for &i in need {
            let d = details.get(&self.jobs[i].stem());
            let t = &mut self.tracks[i];
            if self.jobs[i].step_of.is_some() {
                if let Some(text) = d.and_then(|d| d.steps_text.as_deref()) {
                    self.steps.feed_text(text);
                }
                let status = self.steps.get(&self.jobs[i].label());
                if steps::step_detail(&status, t, d) {
                    ended.push(i);
                    changed = true;
                }
                continue;
            }
            match d {
                Some(d) if d.state.is_some() => {
                    t.take_record(d);
                    if is_terminal_state(&t.slurm_state) {
                        t.terminal = true;
                        ended.push(i);
                    }
                    changed = true;
                }
                other => {
                    if t.missing(other) {
                        ended.push(i);
                        changed = true;
                    }
                }
            }
        }
        (changed, ended)
    }

    /// A poll succeeded.
    pub fn poll_succeeded(&mut self) {
        self.failing_since = None;
    }

    /// A poll failed at `now`; returns true once polls have failed for
    /// longer than [`POLL_GIVE_UP`].
    pub fn poll_failed(&mut self, now: Instant) -> bool {
        let since = *self.failing_since.get_or_insert(now);
        now.saturating_duration_since(since) > POLL_GIVE_UP
    }

    /// Whether the run's jobs are to be cancelled now: the cancel `flag`
    /// has been set for [`CANCEL_GRACE`] (and they were not yet).
    pub fn cancel_due(&mut self, flag: bool, now: Instant) -> bool {
        if self.cancelled || !flag {
            return false;
        }
        let seen = *self.cancel_seen.get_or_insert(now);
        now.saturating_duration_since(seen) >= CANCEL_GRACE
    }

    /// The jobs are being cancelled at `now`: the ids to `scancel` (each
    /// once, in order; a job array once, by its id).
    pub fn start_cancel(&mut self, now: Instant) -> Vec<String> {
        self.cancelled = true;
        self.cancel_deadline = Some(now + CANCEL_WAIT);
        self.interval = POLL_MIN;
        let mut seen = HashSet::new();
        (0..self.jobs.len())
            .filter(|&i| !self.tracks[i].terminal)
            .map(|i| self.jobs[i].base_id().to_string())
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// The run was cancelled (by the cancel flag).
    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// [`CANCEL_WAIT`] after the `scancel`, jobs not ended count as cancelled.
    pub fn expire_cancel(&mut self, now: Instant) {
        if self.cancelled && self.cancel_deadline.is_some_and(|d| now > d) {
            for t in self.tracks.iter_mut().filter(|t| !t.terminal) {
                t.terminal = true;
                t.slurm_state = "CANCELLED".into();
                t.reason = "slurmbook".into();
            }
        }
    }

    pub fn all_terminal(&self) -> bool {
        self.tracks.iter().all(|t| t.terminal)
    }

    /// The wait before the next poll: [`POLL_MIN`] after a change, else
    /// ×1.5 up to [`POLL_MAX`].
    pub fn next_interval(&mut self, changed: bool) -> Duration {
        self.interval = if changed {
            POLL_MIN
        } else {
            self.interval.mul_f64(1.5).min(POLL_MAX)
        };
        self.interval
    }

    /// Each job's [`AssetState`]; returns those that changed since last
    /// time (by job index, in order).
    pub fn resolve(&mut self) -> Vec<(usize, AssetState)> {
        let mut changes = Vec::new();
        for i in 0..self.jobs.len() {
            let state = self.state_of(i);
            let t = &mut self.tracks[i];
            if t.emitted.as_ref() != Some(&state) {
                t.emitted = Some(state.clone());
                changes.push((i, state));
            }
        }
        changes
    }

    /// The final state of job `i` (queued if never resolved).
    pub fn outcome_state(&self, i: usize) -> AssetState {
        self.tracks[i]
            .emitted
            .clone()
            .unwrap_or(AssetState::queued(Some(self.jobs[i].job_id.clone())))
    }

    fn state_of(&self, i: usize) -> AssetState {
        let t = &self.tracks[i];
        if !t.terminal {
            return if is_pending_state(&t.slurm_state) {
                AssetState::Queued {
                    job_id: Some(self.jobs[i].job_id.clone()),
                    reason: pending_reason(&t.reason),
                    start: t.start_estimate.as_deref().and_then(start_estimate),
                }
            } else {
                AssetState::Running {
                    location: t.node.clone().unwrap_or_else(|| "slurm".into()),
                }
            };
        }
        match t.slurm_state.as_str() {
            // Slurm's whole seconds and the job's own wall time are both
            // lower bounds of the time it took.
            "COMPLETED" => AssetState::Done {
                duration_ms: t
                    .elapsed_ms
                    .unwrap_or(0)
                    .max(self.proto[i].usage.as_ref().map_or(0, |u| u.wall_ms)),
                location: t.node.clone().unwrap_or_else(|| "slurm".into()),
            },
            "CANCELLED" => AssetState::Cancelled {
                because: Some(self.cancel_cause(i, 0)),
            },
            _ => AssetState::Failed {
                error: failure_text(
                    &self.jobs[i].label(),
                    t,
                    self.proto[i].bundle_error.as_deref(),
                ),
            },
        }
    }

    /// Why the cancelled job `i` was cancelled.
    fn cancel_cause(&self, i: usize, depth: usize) -> String {
        let t = &self.tracks[i];
        let upstream = if t.reason.contains("Dependency") || !t.failed_deps.is_empty() {
            self.failed_upstream(i, depth)
        } else {
            None
        };
        match upstream {
            Some(u) => u,
            None if self.cancelled => "interrupted".to_string(),
            None if t.reason.contains("Dependency") => "an upstream job failed".into(),
            None => "cancelled outside slurmbook (scancel)".into(),
        }
    }

    /// "upstream x failed" for a job cancelled because a dependency failed,
    /// naming the root failure when the upstream was itself cancelled.
    fn failed_upstream(&self, i: usize, depth: usize) -> Option<String> {
        let tracks = &self.tracks;
        let jobs = &self.jobs;
        let from_slurm: Vec<usize> = tracks[i]
            .failed_deps
            .iter()
            .filter_map(|id| {
                // A grouped job holds several assets, a job array several
                // tasks: name the one that failed.
                let of_job = || {
                    (0..jobs.len()).filter(|&k| jobs[k].job_id == *id || jobs[k].base_id() == id)
                };
                of_job()
                    .find(|&k| tracks[k].terminal && tracks[k].slurm_state == "FAILED")
                    .or_else(|| {
                        of_job()
                            .find(|&k| tracks[k].terminal && tracks[k].slurm_state != "COMPLETED")
                    })
                    .or_else(|| of_job().next_back())
            })
            .collect();
        let candidates: Vec<usize> = if from_slurm.is_empty() {
            jobs[i]
                .after
                .iter()
                .filter_map(|u| jobs.iter().position(|j| j.asset == *u))
                .filter(|&k| tracks[k].terminal && tracks[k].slurm_state != "COMPLETED")
                .collect()
        } else {
            from_slurm
        };
        if let Some(&k) = candidates.first() {
            let up = &tracks[k];
            let asset = &jobs[k].label();
            return Some(if up.slurm_state != "CANCELLED" {
                format!("upstream {asset} failed")
            } else {
                // The upstream's own cause, when it is an upstream's failure.
                match (up.terminal && k != i && depth < jobs.len())
                    .then(|| self.cancel_cause(k, depth + 1))
                {
                    Some(cause) if cause.starts_with("upstream ") => cause,
                    _ => format!("upstream {asset} was cancelled"),
                }
            });
        }
        tracks[i]
            .failed_deps
            .first()
            .map(|id| format!("upstream job {id} failed"))
    }
}
