//! The tracker's side of grouped runs: assets that run as `srun` steps of
//! one allocation (see [`crate::exec::slurm::driver`]).
//!
//! The allocation's `.steps` lines (followed by the same `tail -F` as the
//! output) update [`Steps`]. Each poll then derives the step's state:
//! pending until its `start` line (the job may be running other steps),
//! running until its `end`/`skip` line, and when it ended, one detail round
//! trip (the job's record, the step's stderr tail and file sizes, and the
//! whole `.steps` file again, which is authoritative) makes it terminal:
//! `end 0` is COMPLETED, `end N` FAILED with exit code N, `skip` CANCELLED
//! because of the upstream step. A step without an end whose job ended
//! takes the job's state (TIMEOUT, CANCELLED by an interrupt or a failed
//! upstream job, ...).

use std::collections::HashMap;

use super::super::cli::{is_pending_state, is_terminal_state, Detail, QueueRow};
use super::super::jobs::WatchJob;
use super::super::protocol::{StepLine, StepStatus};
use super::Track;

/// What the allocations' `.steps` files said so far.
#[derive(Debug, Default)]
pub(super) struct Steps {
    /// Allocations followed, in order.
    groups: Vec<String>,
    status: HashMap<String, StepStatus>,
    /// A line arrived since the last poll (wakes the poll loop early).
    pub dirty: bool,
    /// The last `squeue` state and node of each allocation (by job id).
    alloc_state: HashMap<String, (String, Option<String>)>,
}

impl Steps {
    pub fn new(jobs: &[WatchJob]) -> Steps {
        let mut groups: Vec<String> = Vec::new();
        for j in jobs {
            if let Some(g) = &j.step_of {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        Steps {
            groups,
            ..Steps::default()
        }
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub fn feed(&mut self, line: &StepLine) {
        StepStatus::apply(&mut self.status, line);
        self.dirty = true;
    }

    /// A whole `.steps` file (or part of one).
    pub fn feed_text(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(l) = StepLine::parse(line) {
                self.feed(&l);
            }
        }
    }

    pub fn get(&self, asset: &str) -> StepStatus {
        self.status.get(asset).cloned().unwrap_or_default()
    }

    /// Allocations `listed` pending that were running at the last listing:
    /// Slurm requeued them (their driver starts every step again). Counts
    /// the requeue on each live step of such an allocation and returns, per
    /// allocation, the step to name in the notice (one that ran: its track
    /// knows the node).
    pub fn requeued(
        &mut self,
        jobs: &[WatchJob],
        tracks: &mut [Track],
        listed: &HashMap<String, QueueRow>,
    ) -> Vec<usize> {
        let mut ids: Vec<&str> = Vec::new();
        for j in jobs.iter().filter(|j| j.step_of.is_some()) {
            let Some(row) = listed.get(&j.job_id) else {
                continue;
            };
            let last = self.alloc_state.get(&j.job_id);
            let node = row.node.clone().or_else(|| last.and_then(|l| l.1.clone()));
            let was = last.map(|l| l.0.clone());
            self.alloc_state
                .insert(j.job_id.clone(), (row.state.clone(), node));
            if was.as_deref() == Some("RUNNING") && is_pending_state(&row.state) {
                ids.push(&j.job_id);
            }
        }
        let mut named = Vec::new();
        for id in ids {
            tracing::info!(job = %id, "allocation requeued");
            let live: Vec<usize> = (0..jobs.len())
                .filter(|&k| jobs[k].job_id == id && !tracks[k].terminal)
                .collect();
            // The node it lost: from the `.steps` lines, else the last listing
            // (a poll may not have seen the step running yet).
            let alloc_node = self.alloc_state.get(id).and_then(|l| l.1.clone());
            for &k in &live {
                let t = &mut tracks[k];
                t.requeues_seen += 1;
                if let Some(n) = self.get(&jobs[k].label()).node {
                    t.node = Some(n);
                }
                if t.node.is_none() {
                    t.node = alloc_node.clone();
                }
            }
            // Name the step that was running (it lost its work), else one that ran.
            let running = live.iter().find(|&&k| {
                let st = self.get(&jobs[k].label());
                st.started.is_some() && st.ended.is_none()
            });
            let ran = live.iter().find(|&&k| tracks[k].node.is_some());
            if let Some(&k) = running.or(ran).or(live.first()) {
                named.push(k);
            }
        }
        named
    }
}

/// A poll of step `i` whose job is `job` in squeue. Pushes it to
/// `need_detail` when it (or its job) ended. Returns whether its state
/// changed.
pub(super) fn poll_step(
    status: &StepStatus,
    t: &mut Track,
    job: Option<&QueueRow>,
    i: usize,
    need_detail: &mut Vec<usize>,
) -> bool {
    if status.ended.is_some() || status.skipped_because.is_some() {
        need_detail.push(i);
        return false;
    }
    let Some(row) = job else {
        need_detail.push(i);
        return false;
    };
    let st = row.state.as_str();
    t.missing_polls = 0;
    if is_terminal_state(st) {
        need_detail.push(i);
        return false;
    }
    let new = if status.started.is_some() && !is_pending_state(st) {
        "RUNNING"
    } else {
        "PENDING"
    };
    if let Some(node) = &status.node {
        t.node = Some(node.clone());
    }
    t.reason = row.reason.clone();
    t.start_estimate = row.start.clone();
    let changed = t.slurm_state != new;
    t.slurm_state = new.into();
    changed
}

/// After the detail round trip: make the step terminal if it (or its job)
/// ended. Returns whether it became terminal.
pub(super) fn step_detail(status: &StepStatus, t: &mut Track, d: Option<&Detail>) -> bool {
    if let Some(d) = d {
        t.stderr_tail = d.stderr_tail.clone();
        t.final_sizes = d.sizes;
        t.take_usage(d);
        if t.node.is_none() {
            t.node = d.node.clone();
        }
    }
    if status.node.is_some() {
        t.node = status.node.clone();
    }
    if let Some((code, _)) = status.ended {
        t.slurm_state = if code == 0 { "COMPLETED" } else { "FAILED" }.into();
        t.reason = "step".into();
        t.exit_code = Some(code);
        t.elapsed_ms = status.elapsed_ms();
        t.terminal = true;
        return true;
    }
    if let Some(up) = &status.skipped_because {
        t.slurm_state = "CANCELLED".into();
        t.reason = format!("Dependency (upstream step {up} did not succeed)");
        t.terminal = true;
        return true;
    }
    match d.and_then(|d| d.state.as_ref().map(|st| (d, st.clone()))) {
        Some((d, st)) if is_terminal_state(&st) => {
            t.take_limits(d);
            t.reason = d.reason.clone().unwrap_or_default();
            t.failed_deps = d.failed_deps.clone();
            t.slurm_state = match (status.started.is_some(), st.as_str()) {
                // The driver ended without the step's end line.
                (true, "COMPLETED") => {
                    t.reason = "the step did not report its end".into();
                    "FAILED".into()
                }
                (true, _) => st,
                (false, "TIMEOUT") => "TIMEOUT".into(),
                (false, _) => {
                    if !t.reason.contains("Dependency") && st != "CANCELLED" {
                        t.reason = format!("the allocation ended ({st}) before the step started");
                    }
                    "CANCELLED".into()
                }
            };
            t.terminal = true;
            true
        }
        Some(_) => false,
        None => {
            t.missing_polls += 1;
            if t.missing_polls >= 3 {
                t.terminal = true;
                t.slurm_state = "UNKNOWN".into();
                t.reason = "vanished".into();
                return true;
            }
            false
        }
    }
}
