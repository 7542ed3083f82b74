//! Reports after the fact: `%runs RUN` (what each asset of a run used, and
//! the run's timeline), `%history NAME` (an asset's last
//! materializations), and the `last usage` column of `%assets`.

use std::collections::HashMap;

use crate::model::{RunId, Usage};
use crate::usage::{self, HistoryReport, RunReport};

use super::{RunError, Workspace};

impl Workspace {
    /// The report of run `run` (`None`: there is no such run).
    pub fn run_report(&mut self, run: RunId) -> Result<Option<RunReport>, RunError> {
        let db = self.db()?;
        let Some(run) = db.run(run)? else {
            return Ok(None);
        };
        Ok(Some(usage::run_report(db, run)?))
    }

    /// The last materializations of `asset`, as a table and plots.
    pub fn history(&mut self, asset: &str) -> Result<HistoryReport, RunError> {
        Ok(usage::history_report(self.db()?, asset)?)
    }

    /// The usage of each asset's last successful materialization.
    pub fn last_usage(&mut self) -> Result<HashMap<String, Usage>, RunError> {
        Ok(self.db()?.last_success_usage()?)
    }
}
