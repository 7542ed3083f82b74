//! The watcher's side of grouped runs: assets that run as `srun` steps of
//! one allocation (see [`super::super::driver`]).
//!
//! The allocation's `.steps` file is followed by the same `tail -F` as the
//! assets' output (as extra files after the jobs' own, so its pieces are
//! told apart by index and never shown as output); its lines update
//! [`Steps`]. Each poll then derives the step's state: pending until its
//! `start` line (the job may be running other steps), running until its
//! `end`/`skip` line, and when it ended, one detail round trip (the job's
//! record, the step's stderr tail and file sizes, and the whole `.steps`
//! file again, which is authoritative) makes it terminal: `end 0` is
//! COMPLETED, `end N` FAILED with exit code N, `skip` CANCELLED because of
//! the upstream step. A step without an end whose job ended takes the job's
//! state (TIMEOUT, CANCELLED by an interrupt or a failed upstream job, ...).

use std::collections::HashMap;
use std::sync::Mutex;

use super::super::driver::{steps_file, StepLine, StepStatus};
use super::{is_pending_slurm, is_terminal_slurm, Detail, Shared, Track, WatchJob, WatchRun};
use crate::events::Stream;
use crate::exec::slurm::stream::Piece;

/// What the allocations' `.steps` files said so far.
#[derive(Debug, Default)]
pub(super) struct Steps {
    /// Allocations followed, in order; the tail's file index of
    /// allocation `k` is `jobs.len() + k`.
    groups: Vec<String>,
    status: HashMap<String, StepStatus>,
    /// Partial last line per file index.
    bufs: HashMap<usize, String>,
    /// A line arrived since the last poll (wakes the poll loop early).
    pub dirty: bool,
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

    /// Add the `.steps` files to the tail's files.
    pub fn add_files(
        &self,
        run_dir: &str,
        n_jobs: usize,
        files: &mut Vec<(usize, Stream, String, u64)>,
    ) {
        for (k, g) in self.groups.iter().enumerate() {
            files.push((n_jobs + k, Stream::Stdout, steps_file(run_dir, g), 0));
        }
    }

    fn feed_line(&mut self, line: &str) {
        if let Some(l) = StepLine::parse(line) {
            StepStatus::apply(&mut self.status, &l);
            self.dirty = true;
        }
    }

    fn get(&self, asset: &str) -> StepStatus {
        self.status.get(asset).cloned().unwrap_or_default()
    }
}

/// Take the `.steps` files' pieces out of `pieces` (updating the step
/// statuses); the rest is the assets' output.
pub(super) fn take_status(
    w: &WatchRun<'_>,
    shared: &Mutex<Shared>,
    pieces: Vec<Piece>,
) -> Vec<Piece> {
    let n = w.jobs.len();
    let mut rest = Vec::with_capacity(pieces.len());
    let mut sh = None;
    for p in pieces {
        let job = match &p {
            Piece::Output { job, .. } | Piece::Protocol { job, .. } => *job,
        };
        if job < n {
            rest.push(p);
            continue;
        }
        let sh = sh.get_or_insert_with(|| shared.lock().expect("poisoned"));
        if let Piece::Output { text, .. } = p {
            let buf = sh.steps.bufs.entry(job).or_default();
            buf.push_str(&text);
            let complete = match buf.rfind('\n') {
                Some(k) => {
                    let lines = buf[..=k].to_string();
                    buf.drain(..=k);
                    lines
                }
                None => continue,
            };
            for line in complete.lines() {
                sh.steps.feed_line(line);
            }
        }
    }
    rest
}

/// A poll of a step whose job is `job` in squeue (`(state, node, reason)`).
/// Pushes it to `need_detail` when it (or its job) ended. Returns whether
/// its state changed.
pub(super) fn poll_step(
    w: &WatchRun<'_>,
    shared: &Mutex<Shared>,
    i: usize,
    t: &mut Track,
    job: Option<&(String, String, String)>,
    need_detail: &mut Vec<usize>,
) -> bool {
    let status = shared.lock().expect("poisoned").steps.get(&w.jobs[i].asset);
    if status.ended.is_some() || status.skipped_because.is_some() {
        need_detail.push(i);
        return false;
    }
    let Some((st, _node, reason)) = job else {
        need_detail.push(i);
        return false;
    };
    let st = st.trim_end_matches('+');
    t.missing_polls = 0;
    if is_terminal_slurm(st) {
        need_detail.push(i);
        return false;
    }
    let new = if status.started.is_some() && !is_pending_slurm(st) {
        "RUNNING"
    } else {
        "PENDING"
    };
    if let Some(node) = status.node {
        t.node = Some(node);
    }
    t.reason = reason.clone();
    let changed = t.slurm_state != new;
    t.slurm_state = new.into();
    changed
}

/// After the detail round trip: make the step terminal if it (or its job)
/// ended. Returns whether it became terminal.
pub(super) fn step_detail(
    w: &WatchRun<'_>,
    shared: &Mutex<Shared>,
    i: usize,
    t: &mut Track,
    d: Option<&Detail>,
) -> bool {
    let asset = &w.jobs[i].asset;
    let status = {
        let mut sh = shared.lock().expect("poisoned");
        if let Some(text) = d.and_then(|d| d.steps_text.as_deref()) {
            for line in text.lines() {
                sh.steps.feed_line(line);
            }
        }
        sh.steps.get(asset)
    };
    if let Some(d) = d {
        t.stderr_tail = d.stderr_tail.clone();
        t.final_sizes = d.sizes;
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
    if let Some(up) = status.skipped_because {
        t.slurm_state = "CANCELLED".into();
        t.reason = format!("Dependency (upstream step {up} did not succeed)");
        t.terminal = true;
        return true;
    }
    let job_state = d.and_then(|d| d.state.clone());
    match job_state {
        Some(st) if is_terminal_slurm(&st) => {
            let d = d.expect("a state comes with a detail");
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
