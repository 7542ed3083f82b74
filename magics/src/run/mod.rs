//! The run service: a run's whole life — snapshot, plan, executor, recorded
//! end — for the kernel and the CLI alike, which only render its events.
//!
//! * [`workspace`]: [`Workspace`], the notebook, its state database and
//!   configuration, the session's cells, the cluster connection;
//! * [`materialize`]: `%materialize` planned ([`Workspace::plan_materialize`])
//!   and executed ([`Workspace::execute`]);
//! * [`runs`]: Slurm runs after the fact: `%attach`, `%cancel`, and values
//!   fetched for `%load`;
//! * [`tick`]: `slurmbook tick`: automation conditions evaluated, claimed
//!   and run as one run;
//! * [`schedule`], [`scheduled`]: ticks on the cluster (scrontab or a
//!   self-resubmitting job) and what they did, imported on demand;
//! * [`record`]: [`DbRunLog`], what the Slurm watcher reports, recorded;
//! * [`policy`]: freshness policies evaluated, remembered and notified,
//!   and `slurmbook status`;
//! * [`report`]: `%runs RUN` and `%history NAME` (resource usage, timeline);
//! * [`logs`]: `%log NAME`, the whole output of an asset's Slurm job;
//! * [`claims`]: runs of one notebook at once: a step another run
//!   computes is waited for and reused, never computed twice at once;
//! * [`error`]: [`RunError`], what failed and of which kind.

mod claims;
pub mod error;
pub mod logs;
pub mod materialize;
pub mod policy;
pub mod record;
pub mod report;
pub mod runs;
pub mod schedule;
pub mod scheduled;
pub mod tick;
pub mod workspace;

pub use error::{LogError, RunError, RunErrorKind};
pub use materialize::PlannedRun;
pub use record::DbRunLog;
pub use schedule::{Method, Schedule, ScheduleError};
pub use tick::{Tick, TickArgs};
pub use workspace::{AttachError, NotebookSource, Workspace};

use std::sync::atomic::AtomicBool;

use crate::events::Emit;
use crate::exec::slurm::OutputGate;

/// Where a run reports (its events), what stops it (the cancel flag: an
/// interrupt in the kernel, Ctrl-C in the CLI) and the gate its Slurm
/// output passes (frozen when the kernel shuts down, so `%attach` resumes
/// exactly after the last line shown).
#[derive(Clone, Copy)]
pub struct RunIo<'a> {
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
    pub gate: &'a OutputGate,
}
