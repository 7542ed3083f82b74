//! [`WatchJob`]: a submitted job (or a step of a grouped job) as the
//! watcher follows it, saved with a run so that `%attach` can follow it
//! again. A leaf: it imports nothing else of the crate.

use serde::{Deserialize, Serialize};

/// A submitted job to follow (or a step of one, for grouped runs).
/// Serializable, so a watch can be rebuilt later (`%attach`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchJob {
    pub asset: String,
    pub job_id: String,
    /// Upstream assets (of this run) it waits for.
    pub after: Vec<String>,
    /// The allocation (grouped job) the asset runs in as an `srun` step;
    /// its progress is read from `<run_dir>/<allocation>.steps` (written
    /// by the grouped job's driver script). `None`: a job of its own.
    #[serde(default)]
    pub step_of: Option<String>,
}
