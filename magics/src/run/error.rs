//! [`RunError`]: why a run (or planning it, attaching to it, cancelling it)
//! failed, and what kind of failure that is for whoever shows it.

use crate::config::ConfigError;
use crate::exec::cluster::ClusterError;
use crate::exec::local::LocalError;
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
    #[error("the value of `{asset}` was not stored (its type must implement serde's Serialize, and the notebook needs `:dep serde_json`)")]
    NotStored { asset: String },
    #[error("reading {path} on the cluster failed: {detail}")]
    Fetch { path: String, detail: String },
    #[error("storing the value of `{asset}`: {detail}")]
    Store { asset: String, detail: String },
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
            | RunError::NotStored { .. } => RunErrorKind::Usage,
            RunError::Project(_) => RunErrorKind::Asset,
            RunError::State(_) | RunError::Store { .. } => RunErrorKind::State,
            RunError::Local(_) => RunErrorKind::Local,
            RunError::Cluster(_) | RunError::Fetch { .. } => RunErrorKind::Slurm,
        }
    }
}
