//! The one event stream executors report progress with. `kernel/` renders
//! events as Jupyter messages; the headless CLI renders them in a terminal.

use crate::model::RunId;
use crate::model::RunStatus;
use crate::model::{Hint, Usage};
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where an asset is in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AssetState {
    /// Fresh: not run again (`--force` would).
    Fresh,
    /// Waiting for upstreams or a slot (a Slurm job: pending in the queue).
    Queued {
        job_id: Option<String>,
        /// Why Slurm keeps it waiting (`Priority: ...`, `Dependency: ...`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When Slurm expects it to start (`squeue --start`), cluster time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
    },
    /// Computing (`location`: "kernel", or the node of a Slurm job).
    Running {
        location: String,
    },
    Done {
        duration_ms: u64,
        location: String,
    },
    Failed {
        error: String,
    },
    /// Not run because an upstream (or a check of one) failed or was cancelled.
    Skipped {
        because: String,
    },
    Cancelled {
        because: Option<String>,
    },
    /// A job array under way: its tasks (partitions) counted, rather than
    /// one row each.
    Tasks {
        job_id: Option<String>,
        counts: TaskCounts,
    },
}

/// How many tasks of a job array are where (see [`AssetState::Tasks`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub total: usize,
    pub queued: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    /// Cancelled or not run.
    #[serde(default)]
    pub cancelled: usize,
    /// The keys of the failed tasks, in task order.
    #[serde(default)]
    pub failed_keys: Vec<String>,
}

impl TaskCounts {
    /// `80/100 done, 16 running, 3 queued, 1 failed (7)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{} done", self.done, self.total);
        for (n, what) in [
            (self.running, "running"),
            (self.queued, "queued"),
            (self.cancelled, "cancelled"),
        ] {
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        if self.failed > 0 {
            s.push_str(&format!(
                ", {} failed ({})",
                self.failed,
                keys_text(&self.failed_keys)
            ));
        }
        s
    }
}

/// `7, 41, 88` (the first 20, then `... and N more`).
pub fn keys_text(keys: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(" ... and {} more", keys.len() - SHOWN));
    }
    s
}

impl AssetState {
    /// Queued, with no reason known (yet).
    pub fn queued(job_id: Option<String>) -> AssetState {
        AssetState::Queued {
            job_id,
            reason: None,
            start: None,
        }
    }

    /// Short label for tables: queued, running, done, failed, ...
    pub fn label(&self) -> &'static str {
        match self {
            AssetState::Fresh => "fresh",
            AssetState::Queued { .. } => "queued",
            AssetState::Running { .. } => "running",
            AssetState::Done { .. } => "done",
            AssetState::Failed { .. } => "failed",
            AssetState::Skipped { .. } => "skipped",
            AssetState::Cancelled { .. } => "cancelled",
            AssetState::Tasks { counts, .. } => {
                if counts.queued == counts.total {
                    "queued"
                } else {
                    "running"
                }
            }
        }
    }

    /// Human text: "running in kernel", "done in 1.2 s", "skipped because upstream x failed".
    pub fn describe(&self) -> String {
        match self {
            AssetState::Fresh => "fresh (skipped)".into(),
            AssetState::Queued {
                job_id,
                reason,
                start,
            } => {
                let mut s = match job_id {
                    Some(j) => format!("queued (job {j})"),
                    None => "queued".to_string(),
                };
                if let Some(r) = reason {
                    s.push_str(&format!(": {r}"));
                }
                if let Some(t) = start {
                    s.push_str(&format!("; expected to start {t}"));
                }
                s
            }
            AssetState::Running { location } => format!("running on {location}"),
            AssetState::Done {
                duration_ms,
                location,
            } => {
                format!("done in {} on {location}", format_duration(*duration_ms))
            }
            AssetState::Failed { error } => {
                let first = error.lines().next().unwrap_or("");
                format!("failed: {first}")
            }
            AssetState::Skipped { because } => format!("skipped: {because}"),
            AssetState::Cancelled { because: Some(b) } => format!("cancelled: {b}"),
            AssetState::Cancelled { because: None } => "cancelled".into(),
            AssetState::Tasks { job_id, counts } => match job_id {
                Some(j) => format!("array {j}: {}", counts.describe()),
                None => counts.describe(),
            },
        }
    }

    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            AssetState::Queued { .. } | AssetState::Running { .. } | AssetState::Tasks { .. }
        )
    }
}

pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: Option<RunId>,
    pub done: Vec<String>,
    pub fresh: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
    pub cancelled: Vec<String>,
    pub duration_ms: u64,
}

impl RunSummary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.cancelled.is_empty()
    }

    /// How the run ended, for the state database: any failure makes it
    /// failed (Slurm reports the dependents of a failure as cancelled), else
    /// cancelled assets make it cancelled (an interrupt), else skipped ones
    /// (blocked by a failing check) make it failed.
    pub fn status(&self) -> RunStatus {
        if !self.failed.is_empty() {
            RunStatus::Failed
        } else if !self.cancelled.is_empty() {
            RunStatus::Cancelled
        } else if !self.skipped.is_empty() {
            RunStatus::Failed
        } else {
            RunStatus::Ok
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{} done, {} fresh, {} failed, {} skipped, {} cancelled in {}",
            self.done.len(),
            self.fresh.len(),
            self.failed.len(),
            self.skipped.len(),
            self.cancelled.len(),
            format_duration(self.duration_ms)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// What will run, before anything does.
    Planned { plan: Plan },
    /// An asset changed state.
    State { asset: String, state: AssetState },
    /// A piece of an asset's output (whole lines, or a partial line at the end).
    Output {
        asset: String,
        stream: Stream,
        text: String,
    },
    /// A rich display from an asset (mime type -> content).
    Display {
        asset: String,
        data: BTreeMap<String, serde_json::Value>,
    },
    /// User metadata an asset reported.
    Metadata {
        asset: String,
        metadata: serde_json::Value,
    },
    /// A check ran.
    Check {
        asset: String,
        check: String,
        passed: bool,
        message: Option<String>,
    },
    /// What an asset used (sent once it ended, before [`Event::Finished`]),
    /// with right-sizing hints when it used far less than it asked for.
    Usage {
        asset: String,
        usage: Usage,
        #[serde(default)]
        hints: Vec<Hint>,
    },
    /// A word on the run as a whole, shown as is: the Slurm controller
    /// unreachable and back, the state database re-created, ...
    Notice { text: String },
    /// The run ended.
    Finished { summary: RunSummary },
}

/// Where executors send events.
pub trait Emit: Send + Sync {
    fn emit(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync> Emit for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_status_from_the_summary() {
        let with = |f: fn(&mut RunSummary)| {
            let mut s = RunSummary {
                done: vec!["a".into()],
                ..RunSummary::default()
            };
            f(&mut s);
            s.status()
        };
        assert_eq!(with(|_| {}), RunStatus::Ok);
        assert_eq!(with(|s| s.fresh.push("b".into())), RunStatus::Ok);
        assert_eq!(with(|s| s.skipped.push("b".into())), RunStatus::Failed);
        assert_eq!(with(|s| s.cancelled.push("b".into())), RunStatus::Cancelled);
        assert_eq!(
            with(|s| {
                s.failed.push("b".into());
                s.cancelled.push("c".into());
            }),
            RunStatus::Failed
        );
    }
}
