//! [`DbRunLog`]: the [`RunLog`] of a Slurm run over the state database
//! (its `run_jobs` rows): how the run service records what the watcher
//! reports — offsets after each batch of output shown, job state changes.

use crate::exec::slurm::{RunLog, RunLogError, WatchJob};
use crate::model::RunId;
use crate::state::StateDb;

/// The [`RunLog`] of a run over the state database: offsets and job
/// states in its `run_jobs` rows (a missing row is created).
pub struct DbRunLog<'a> {
    db: &'a StateDb,
    run: RunId,
}

impl<'a> DbRunLog<'a> {
    pub fn new(db: &'a StateDb, run: RunId) -> DbRunLog<'a> {
        DbRunLog { db, run }
    }
}

impl RunLog for DbRunLog<'_> {
    fn saved_offsets(&self, job: &WatchJob) -> Result<Option<(u64, u64)>, RunLogError> {
        // An array's tasks have a row each: `asset[key]`.
        let label = job.label();
        let saved = self
            .db
            .offsets(self.run, &label)
            .map_err(RunLogError::new)?;
        if saved.is_none() {
            self.db
                .upsert_job(self.run, &label, Some(&job.job_id), "queued")
                .map_err(RunLogError::new)?;
        }
        Ok(saved)
    }

    fn save_offsets(&self, asset: &str, (o, e): (u64, u64)) -> Result<(), RunLogError> {
        self.db
            .set_offsets(self.run, asset, o, e)
            .map_err(RunLogError::new)
    }

    fn job_states(&self, changes: &[(&str, &str)]) -> Result<(), RunLogError> {
        self.db
            .set_job_states(self.run, changes)
            .map_err(RunLogError::new)
    }
}
