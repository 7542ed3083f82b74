//! The `run_jobs` table: the Slurm jobs of a run, their last known state
//! and how far their output was streamed.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::model::RunId;

use super::*;

/// A Slurm job of a run, with how far its output was streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: RunId,
    pub asset: String,
    pub job_id: Option<String>,
    pub state: String,
    pub stdout_offset: u64,
    pub stderr_offset: u64,
}

impl StateDb {
    /// Add or update a run's job for an asset.
    pub fn upsert_job(
        &self,
        run: RunId,
        asset: &str,
        job_id: Option<&str>,
        state: &str,
    ) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO run_jobs (run_id, asset, job_id, state) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run_id, asset) DO UPDATE SET job_id = COALESCE(excluded.job_id, job_id), state = excluded.state",
            )?
            .execute(params![run, asset, job_id, state])?;
        Ok(())
    }

    /// Update the states of several jobs of a run in one transaction.
    pub fn set_job_states(&self, run: RunId, states: &[(&str, &str)]) -> Result<(), StateError> {
        let tx = self.write()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE run_jobs SET state = ?1 WHERE run_id = ?2 AND asset = ?3",
            )?;
            for (asset, state) in states {
                stmt.execute(params![state, run, asset])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A run's jobs, by asset name.
    pub fn run_jobs(&self, run: RunId) -> Result<Vec<RunJob>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, asset, job_id, state, stdout_offset, stderr_offset FROM run_jobs WHERE run_id = ?1 ORDER BY asset",
        )?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(RunJob {
                    run_id: r.get(0)?,
                    asset: r.get(1)?,
                    job_id: r.get(2)?,
                    state: r.get(3)?,
                    stdout_offset: r.get::<_, i64>(4)?.max(0) as u64,
                    stderr_offset: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Save how far a job's stdout/stderr were streamed.
    pub fn set_offsets(
        &self,
        run: RunId,
        asset: &str,
        stdout: u64,
        stderr: u64,
    ) -> Result<(), StateError> {
        let n = self
            .conn
            .prepare_cached("UPDATE run_jobs SET stdout_offset = ?1, stderr_offset = ?2 WHERE run_id = ?3 AND asset = ?4")?
            .execute(params![stdout as i64, stderr as i64, run, asset])?;
        if n == 0 {
            return Err(StateError::NotFound {
                what: "run job",
                id: run,
            });
        }
        Ok(())
    }

    /// How far a job's stdout/stderr were streamed.
    pub fn offsets(&self, run: RunId, asset: &str) -> Result<Option<(u64, u64)>, StateError> {
        Ok(self
            .conn
            .prepare_cached("SELECT stdout_offset, stderr_offset FROM run_jobs WHERE run_id = ?1 AND asset = ?2")?
            .query_row(params![run, asset], |r| {
                Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64))
            })
            .optional()?)
    }
}
