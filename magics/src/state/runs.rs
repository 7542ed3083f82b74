//! The `runs` table: one row per `%materialize` (or `slurmbook run`), with
//! how to follow a Slurm run again (`%attach`).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::model::Target;
use crate::model::{RunId, RunStatus};

use super::*;

/// One `%materialize` (or `slurmbook run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The selection's canonical text.
    pub selection: String,
    pub target: Target,
    pub profile: Option<String>,
    pub status: RunStatus,
}

impl StateDb {
    fn query_runs(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Run>, StateError> {
        type Raw = (
            i64,
            String,
            Option<String>,
            String,
            String,
            Option<String>,
            String,
        );
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows: Vec<Raw> = stmt
            .query_map(params, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(
                |(id, started, finished, selection, target, profile, status)| {
                    Ok(Run {
                        id,
                        started_at: parse_ts("runs", &started)?,
                        finished_at: finished
                            .as_deref()
                            .map(|s| parse_ts("runs", s))
                            .transpose()?,
                        selection,
                        target: parse_enum("runs", "target", &target)?,
                        profile,
                        status: parse_enum("runs", "status", &status)?,
                    })
                },
            )
            .collect()
    }

    /// Start a run; returns its id.
    pub fn begin_run(
        &self,
        selection: &str,
        target: Target,
        profile: Option<&str>,
    ) -> Result<RunId, StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO runs (started_at, selection, target, profile, status) VALUES (?1, ?2, ?3, ?4, 'running')",
            )?
            .execute(params![ts(now()), selection, target.as_str(), profile])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Finish a run.
    pub fn finish_run(&self, run: RunId, status: RunStatus) -> Result<(), StateError> {
        let n = self
            .conn
            .prepare_cached("UPDATE runs SET finished_at = ?1, status = ?2 WHERE id = ?3")?
            .execute(params![ts(now()), status.as_str(), run])?;
        if n == 0 {
            return Err(StateError::NotFound {
                what: "run",
                id: run,
            });
        }
        Ok(())
    }

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<Run>, StateError> {
        self.query_runs(
            "SELECT id, started_at, finished_at, selection, target, profile, status FROM runs ORDER BY id DESC",
            [],
        )
    }

    /// One run.
    pub fn run(&self, id: RunId) -> Result<Option<Run>, StateError> {
        Ok(self
            .query_runs(
                "SELECT id, started_at, finished_at, selection, target, profile, status FROM runs WHERE id = ?1",
                [id],
            )?
            .pop())
    }

    /// The newest run (the default of `%attach` and `%cancel`).
    pub fn latest_run(&self) -> Result<Option<Run>, StateError> {
        Ok(self
            .query_runs(
                "SELECT id, started_at, finished_at, selection, target, profile, status FROM runs ORDER BY id DESC LIMIT 1",
                [],
            )?
            .pop())
    }

    /// Save what is needed to follow a Slurm run again after a restart
    /// (opaque JSON written by the cluster executor).
    pub fn set_run_remote(&self, run: RunId, remote: &str) -> Result<(), StateError> {
        let n = self
            .conn
            .prepare_cached("UPDATE runs SET remote = ?1 WHERE id = ?2")?
            .execute(params![remote, run])?;
        if n == 0 {
            return Err(StateError::NotFound {
                what: "run",
                id: run,
            });
        }
        Ok(())
    }

    /// What [`StateDb::set_run_remote`] saved for a run.
    pub fn run_remote(&self, run: RunId) -> Result<Option<String>, StateError> {
        Ok(self
            .conn
            .prepare_cached("SELECT remote FROM runs WHERE id = ?1")?
            .query_row([run], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }
}
