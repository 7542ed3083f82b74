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
    /// asset, or `asset_ARRAYID_INDEX` for a partition of an array (what
    /// the array's `--output=asset_%A_%a.out` makes of it, or what a task
    /// running several partitions writes for each).
    pub fn stem(&self) -> String {
        match &self.task {
            Some(t) => format!("{}_{}_{}", self.asset, self.base_id(), t.index),
            None => self.asset.clone(),
        }
    }

    /// The job Slurm queues: the array's id for a task, else the job id.
    pub fn base_id(&self) -> &str {
        base_job_id(&self.job_id)
    }

    /// The jobs following the array job `array_id` of `asset`, one per
    /// partition, indices in order of `keys`. With several partitions per
    /// task (`per_task` > 1), partition `i` is a step of task
    /// `i / per_task`, its progress in that task's `.steps` file
    /// ([`task_group`]).
    pub fn array_tasks(
        asset: &str,
        array_id: &str,
        after: &[String],
        keys: &[String],
        per_task: u32,
    ) -> Vec<WatchJob> {
        let per_task = per_task.max(1) as usize;
        keys.iter()
            .enumerate()
            .map(|(i, key)| WatchJob {
                asset: asset.to_string(),
                job_id: format!("{array_id}_{}", i / per_task),
                after: after.to_vec(),
                step_of: (per_task > 1).then(|| task_group(asset, array_id, i / per_task)),
                task: Some(ArrayTask {
                    index: i as u32,
                    key: key.clone(),
                }),
            })
            .collect()
    }
}

/// The step group (its `.steps` file's stem) of task `task` of the array
/// `array_id` of `asset`, when its tasks run several partitions.
pub fn task_group(asset: &str, array_id: &str, task: usize) -> String {
    format!("{asset}_{array_id}_t{task}")
}

/// `123` of `123_17` (and of `123`).
pub fn base_job_id(id: &str) -> &str {
    id.split_once('_').map_or(id, |(base, _)| base)
}
