//! [`RunError`]: why a run (or planning it, attaching to it, cancelling it)
//! failed, and what kind of failure that is for whoever shows it.

use crate::config::ConfigError;
use crate::exec::cluster::ClusterError;
use crate::exec::local::LocalError;
use crate::model::RunId;
use crate::plan::PlanError;
use crate::project::ProjectError;
use crate::state::StateError;

/// A run that could not be planned, started or followed. Nothing was
/// half-applied: a run that started is recorded as ended with its status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Partitions(#[from] crate::partitions::PartitionsError),
    #[error("this selection mixes targets ({local} in the kernel, the rest on Slurm); give --target, or materialize them separately")]
    MixedTargets { local: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("`{asset}` was never materialized")]
    NeverMaterialized { asset: String },
    #[error("the value of `{asset}` was not stored: its type does not implement serde's Serialize (or storing it failed: see the kernel's log)")]
    NotStored { asset: String },
    #[error("reading {path} on the cluster failed: {detail}")]
    Fetch { path: String, detail: String },
    #[error("storing the value of `{asset}`: {detail}")]
    Store { asset: String, detail: String },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Why `%log` has no log to show.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("`{asset}` was never materialized on Slurm{}", in_run(*run))]
    NoSlurmRun { asset: String, run: Option<RunId> },
    #[error("`{asset}` ran in the kernel in run {run}: its output is in that cell only (logs are kept for Slurm jobs)")]
    InKernel { asset: String, run: RunId },
    #[error("writing the log's copy {path}: {detail}")]
    Write {
        path: std::path::PathBuf,
        detail: String,
    },
}

fn in_run(run: Option<RunId>) -> String {
    run.map(|r| format!(" in run {r}")).unwrap_or_default()
}

/// What kind of failure a [`RunError`] is, for the kernel's error name and
/// the CLI's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunErrorKind {
    /// Bad input: a selection, a setting, mixed targets (nothing ran).
    Usage,
    /// The notebook does not analyse (a cycle, a duplicate, a bad body).
    Asset,
    /// The state database.
    State,
    /// Running in the kernel failed outside the assets themselves.
    Local,
    /// The cluster: SSH, Slurm, packing, the remote build.
    Slurm,
}

impl RunError {
    pub fn kind(&self) -> RunErrorKind {
        match self {
            RunError::Config(_)
            | RunError::Plan(_)
            | RunError::MixedTargets { .. }
            | RunError::NeverMaterialized { .. }
            | RunError::NotStored { .. }
            | RunError::Log(LogError::NoSlurmRun { .. } | LogError::InKernel { .. }) => {
                RunErrorKind::Usage
            }
            RunError::Log(LogError::Write { .. }) => RunErrorKind::State,
            RunError::Project(_) => RunErrorKind::Asset,
            RunError::State(_)
            | RunError::Store { .. }
            | RunError::Partitions(crate::partitions::PartitionsError::State(_)) => {
                RunErrorKind::State
            }
            RunError::Partitions(_) => RunErrorKind::Usage,
            RunError::Local(_) => RunErrorKind::Local,
            RunError::Cluster(_) | RunError::Fetch { .. } => RunErrorKind::Slurm,
        }
    }
}
