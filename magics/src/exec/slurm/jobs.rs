//! [`WatchJob`]: a submitted job (or a step of a grouped job, or a task of
//! a job array) as the watcher follows it, saved with a run so that
//! `%attach` can follow it again. A leaf: it imports nothing else of the
//! crate.

use serde::{Deserialize, Serialize};

/// A submitted job to follow (or a step of one, for grouped runs, or one
/// task of a job array). Serializable, so a watch can be rebuilt later
/// (`%attach`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchJob {
    pub asset: String,
    /// The job's id; for an array task `ARRAYID_INDEX` (`123_17`, as
    /// `squeue -r` and `scontrol` name it).
    pub job_id: String,
    /// Upstream assets (of this run) it waits for.
    pub after: Vec<String>,
    /// The allocation (grouped job) the asset runs in as an `srun` step;
    /// its progress is read from `<run_dir>/<allocation>.steps` (written
    /// by the grouped job's driver script). `None`: a job of its own.
    #[serde(default)]
    pub step_of: Option<String>,
    /// The task of a job array this is (one partition of the asset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<ArrayTask>,
}

/// One task of a job array: its index (`SLURM_ARRAY_TASK_ID`) and the
/// partition key it computes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayTask {
    pub index: u32,
    /// A validated partition key (`[A-Za-z0-9][A-Za-z0-9._-]*`).
    pub key: String,
}

impl WatchJob {
    /// How its output and state are named: the asset, or `asset[key]` for
    /// an array task.
    pub fn label(&self) -> String {
        match &self.task {
            Some(t) => format!("{}[{}]", self.asset, t.key),
            None => self.asset.clone(),
        }
    }

    /// The name of its `.out`/`.err` files in the run directory: the
    /// asset, or `asset_ARRAYID_INDEX` for an array task (what the array's
    /// `--output=asset_%A_%a.out` makes of it).
    pub fn stem(&self) -> String {
        match &self.task {
            Some(_) => format!("{}_{}", self.asset, self.job_id),
            None => self.asset.clone(),
        }
    }

    /// The job Slurm queues: the array's id for a task, else the job id.
    pub fn base_id(&self) -> &str {
        base_job_id(&self.job_id)
    }

    /// The jobs following the array job `array_id` of `asset`, one per
    /// task, indices in order of `keys`.
    pub fn array_tasks(
        asset: &str,
        array_id: &str,
        after: &[String],
        keys: &[String],
    ) -> Vec<WatchJob> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| WatchJob {
                asset: asset.to_string(),
                job_id: format!("{array_id}_{i}"),
                after: after.to_vec(),
                step_of: None,
                task: Some(ArrayTask {
                    index: i as u32,
                    key: key.clone(),
                }),
            })
            .collect()
    }
}

/// `123` of `123_17` (and of `123`).
pub fn base_job_id(id: &str) -> &str {
    id.split_once('_').map_or(id, |(base, _)| base)
}
