//! The state database: `<notebook dir>/.slurmbook/state.db` (SQLite, WAL).
//!
//! It records the assets' current versions, every materialization (with
//! what it was computed from: own hash and upstream versions), runs and
//! their Slurm jobs with streaming offsets. It survives kernel restarts;
//! every multi-row write is one transaction; readers never block writers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::CellRef;
use crate::model::Target;
use crate::model::{MaterializationId, MaterializationStatus, RunId, RunStatus};
use crate::version::Recorded;

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// Directory (beside the notebook) holding the state and the value store.
pub const STATE_DIR: &str = ".slurmbook";

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has schema version {found}, newer than this slurmbook supports ({supported}); upgrade slurmbook")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("state database: bad {what} `{value}` in {table}")]
    Corrupt {
        table: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("state database: no {what} with id {id}")]
    NotFound { what: &'static str, id: i64 },
}

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

/// One attempt to compute an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Materialization {
    pub id: MaterializationId,
    pub asset: String,
    pub version: String,
    pub own_hash: String,
    pub upstream_versions: BTreeMap<String, String>,
    pub run_id: Option<RunId>,
    pub target: Target,
    pub status: MaterializationStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub job_id: Option<String>,
    pub node: Option<String>,
    pub metadata: serde_json::Value,
    /// Where the value is (local path, or remote path for Slurm).
    pub value_path: Option<String>,
    pub error: Option<String>,
}

impl Materialization {
    /// What staleness compares against.
    pub fn recorded(&self) -> Recorded<'_> {
        Recorded {
            own_hash: &self.own_hash,
            upstream_versions: &self.upstream_versions,
        }
    }
}

/// What is known when an asset starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRecord<'a> {
    pub run_id: Option<RunId>,
    pub asset: &'a str,
    pub version: &'a str,
    pub own_hash: &'a str,
    pub upstream_versions: &'a BTreeMap<String, String>,
    pub target: Target,
    pub job_id: Option<&'a str>,
    pub node: Option<&'a str>,
}

/// How an asset ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultRecord {
    pub status: Option<MaterializationStatus>,
    pub metadata: serde_json::Value,
    pub value_path: Option<String>,
    pub error: Option<String>,
    /// Set if known only now (Slurm assigns the node when the job starts).
    pub job_id: Option<String>,
    pub node: Option<String>,
}

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

/// A row of the `assets` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRow {
    pub name: String,
    pub version: String,
    pub own_hash: String,
    pub cell: CellRef,
}

/// Connection to the state database. Not `Sync`: give each thread its own
/// (opening is cheap) or wrap it in a mutex.
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA_V1: &str = "
CREATE TABLE assets (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    own_hash TEXT NOT NULL,
    cell_index INTEGER,
    cell_id TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    selection TEXT NOT NULL,
    target TEXT NOT NULL,
    profile TEXT,
    status TEXT NOT NULL
);
CREATE TABLE materializations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset TEXT NOT NULL,
    version TEXT NOT NULL,
    own_hash TEXT NOT NULL,
    upstream_versions TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    job_id TEXT,
    node TEXT,
    metadata TEXT NOT NULL DEFAULT 'null',
    value_path TEXT,
    error TEXT
);
CREATE INDEX materializations_by_asset ON materializations(asset, status, id);
CREATE INDEX materializations_by_run ON materializations(run_id, id);
CREATE TABLE run_jobs (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    asset TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    stdout_offset INTEGER NOT NULL DEFAULT 0,
    stderr_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, asset)
);
";

/// Version 2: how to follow a Slurm run again (`%attach`), as JSON.
const SCHEMA_V2: &str = "ALTER TABLE runs ADD COLUMN remote TEXT;";

const MAT_COLUMNS: &str =
    "id, asset, version, own_hash, upstream_versions, run_id, target, status, \
started_at, finished_at, duration_ms, job_id, node, metadata, value_path, error";

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(table: &'static str, s: &str) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StateError::Corrupt {
            table,
            what: "timestamp",
            value: s.to_string(),
        })
}

fn parse_enum<T: FromStr>(
    table: &'static str,
    what: &'static str,
    s: &str,
) -> Result<T, StateError> {
    s.parse().map_err(|_| StateError::Corrupt {
        table,
        what,
        value: s.to_string(),
    })
}

/// Raw row, converted outside rusqlite's closure so conversion errors are ours.
struct MatRow {
    id: i64,
    asset: String,
    version: String,
    own_hash: String,
    upstream_versions: String,
    run_id: Option<i64>,
    target: String,
    status: String,
    started_at: String,
    finished_at: Option<String>,
    duration_ms: Option<i64>,
    job_id: Option<String>,
    node: Option<String>,
    metadata: String,
    value_path: Option<String>,
    error: Option<String>,
}

impl MatRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<MatRow> {
        Ok(MatRow {
            id: row.get(0)?,
            asset: row.get(1)?,
            version: row.get(2)?,
            own_hash: row.get(3)?,
            upstream_versions: row.get(4)?,
            run_id: row.get(5)?,
            target: row.get(6)?,
            status: row.get(7)?,
            started_at: row.get(8)?,
            finished_at: row.get(9)?,
            duration_ms: row.get(10)?,
            job_id: row.get(11)?,
            node: row.get(12)?,
            metadata: row.get(13)?,
            value_path: row.get(14)?,
            error: row.get(15)?,
        })
    }

    fn convert(self) -> Result<Materialization, StateError> {
        const T: &str = "materializations";
        Ok(Materialization {
            id: self.id,
            upstream_versions: serde_json::from_str(&self.upstream_versions).map_err(|_| {
                StateError::Corrupt {
                    table: T,
                    what: "upstream versions",
                    value: self.upstream_versions.clone(),
                }
            })?,
            run_id: self.run_id,
            target: parse_enum(T, "target", &self.target)?,
            status: parse_enum(T, "status", &self.status)?,
            started_at: parse_ts(T, &self.started_at)?,
            finished_at: self
                .finished_at
                .as_deref()
                .map(|s| parse_ts(T, s))
                .transpose()?,
            duration_ms: self.duration_ms,
            job_id: self.job_id,
            node: self.node,
            metadata: serde_json::from_str(&self.metadata).unwrap_or(serde_json::Value::Null),
            value_path: self.value_path,
            error: self.error,
            asset: self.asset,
            version: self.version,
            own_hash: self.own_hash,
        })
    }
}

impl StateDb {
    /// Open (creating if needed) `<dir>/.slurmbook/state.db`, where `dir` is
    /// the notebook's directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<StateDb, StateError> {
        let state_dir = dir.as_ref().join(STATE_DIR);
        std::fs::create_dir_all(&state_dir).map_err(|source| StateError::Io {
            path: state_dir.clone(),
            source,
        })?;
        Self::open_file(state_dir.join("state.db"))
    }

    /// Open a database file directly.
    pub fn open_file(path: impl AsRef<Path>) -> Result<StateDb, StateError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let db = StateDb { conn, path };
        db.migrate()?;
        Ok(db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn user_version(&self) -> Result<i64, StateError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn write(&self) -> Result<Transaction<'_>, StateError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    fn migrate(&self) -> Result<(), StateError> {
        let found = self.user_version()?;
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        if found > SCHEMA_VERSION {
            return Err(StateError::NewerSchema {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let tx = self.write()?;
        // Another process may have migrated while we waited for the lock.
        let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found < 1 {
            tx.execute_batch(SCHEMA_V1)?;
        }
        if found < 2 {
            tx.execute_batch(SCHEMA_V2)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
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

    /// Record that an asset started (status `running`); returns the id to
    /// pass to [`StateDb::record_result`].
    pub fn record_start(&self, start: &StartRecord<'_>) -> Result<MaterializationId, StateError> {
        let ups = serde_json::to_string(start.upstream_versions).expect("a string map serializes");
        self.conn
            .prepare_cached(
                "INSERT INTO materializations (asset, version, own_hash, upstream_versions, run_id, target, status, started_at, job_id, node)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9)",
            )?
            .execute(params![
                start.asset,
                start.version,
                start.own_hash,
                ups,
                start.run_id,
                start.target.as_str(),
                ts(now()),
                start.job_id,
                start.node
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record how a materialization ended (status defaults to `ok`).
    pub fn record_result(
        &self,
        id: MaterializationId,
        result: &ResultRecord,
    ) -> Result<(), StateError> {
        let tx = self.write()?;
        let started: Option<String> = tx
            .query_row(
                "SELECT started_at FROM materializations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(started) = started else {
            return Err(StateError::NotFound {
                what: "materialization",
                id,
            });
        };
        let finished = now();
        let duration = (finished - parse_ts("materializations", &started)?)
            .num_milliseconds()
            .max(0);
        tx.execute(
            "UPDATE materializations SET status = ?1, finished_at = ?2, duration_ms = ?3, metadata = ?4,
                 value_path = ?5, error = ?6, job_id = COALESCE(?7, job_id), node = COALESCE(?8, node)
             WHERE id = ?9",
            params![
                result.status.unwrap_or(MaterializationStatus::Ok).as_str(),
                ts(finished),
                duration,
                serde_json::to_string(&result.metadata).expect("JSON value serializes"),
                result.value_path,
                result.error,
                result.job_id,
                result.node,
                id
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Record several assets as skipped (fresh) in one transaction.
    pub fn record_skipped(
        &self,
        records: &[StartRecord<'_>],
    ) -> Result<Vec<MaterializationId>, StateError> {
        let tx = self.write()?;
        let mut ids = Vec::with_capacity(records.len());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO materializations (asset, version, own_hash, upstream_versions, run_id, target, status, started_at, finished_at, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'skipped', ?7, ?7, 0)",
            )?;
            let at = ts(now());
            for r in records {
                let ups =
                    serde_json::to_string(r.upstream_versions).expect("a string map serializes");
                stmt.execute(params![
                    r.asset,
                    r.version,
                    r.own_hash,
                    ups,
                    r.run_id,
                    r.target.as_str(),
                    at
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    fn query_mats(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Materialization>, StateError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params, MatRow::read)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(MatRow::convert).collect()
    }

    /// The last successful materialization of `asset`.
    pub fn last_success(&self, asset: &str) -> Result<Option<Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE asset = ?1 AND status = 'ok' ORDER BY id DESC LIMIT 1"
        );
        Ok(self.query_mats(&sql, [asset])?.pop())
    }

    /// The last successful materialization of every asset, in one query.
    pub fn last_successes(&self) -> Result<HashMap<String, Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE id IN
               (SELECT MAX(id) FROM materializations WHERE status = 'ok' GROUP BY asset)"
        );
        Ok(self
            .query_mats(&sql, [])?
            .into_iter()
            .map(|m| (m.asset.clone(), m))
            .collect())
    }

    /// The latest materialization of `asset`, whatever its status
    /// (`running`, `failed`, ...); skipped ones are not attempts and are ignored.
    pub fn latest(&self, asset: &str) -> Result<Option<Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE asset = ?1 AND status != 'skipped' ORDER BY id DESC LIMIT 1"
        );
        Ok(self.query_mats(&sql, [asset])?.pop())
    }

    /// The latest (non-skipped) materialization of every asset.
    pub fn latest_all(&self) -> Result<HashMap<String, Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE id IN
               (SELECT MAX(id) FROM materializations WHERE status != 'skipped' GROUP BY asset)"
        );
        Ok(self
            .query_mats(&sql, [])?
            .into_iter()
            .map(|m| (m.asset.clone(), m))
            .collect())
    }

    /// Materializations of a run, in the order they started.
    pub fn run_assets(&self, run: RunId) -> Result<Vec<Materialization>, StateError> {
        let sql =
            format!("SELECT {MAT_COLUMNS} FROM materializations WHERE run_id = ?1 ORDER BY id");
        self.query_mats(&sql, [run])
    }

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

    /// Replace the `assets` table with the notebook's current assets, in one transaction.
    pub fn sync_assets(&self, rows: &[AssetRow]) -> Result<(), StateError> {
        let tx = self.write()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS keep (name TEXT PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM keep", [])?;
        {
            let at = ts(now());
            let mut keep = tx.prepare_cached("INSERT OR IGNORE INTO keep (name) VALUES (?1)")?;
            let mut up = tx.prepare_cached(
                "INSERT INTO assets (name, version, own_hash, cell_index, cell_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, own_hash = excluded.own_hash,
                   cell_index = excluded.cell_index, cell_id = excluded.cell_id,
                   updated_at = CASE WHEN assets.version = excluded.version THEN assets.updated_at ELSE excluded.updated_at END",
            )?;
            for r in rows {
                keep.execute([&r.name])?;
                let index = (!r.cell.is_session()).then_some(r.cell.index as i64);
                up.execute(params![r.name, r.version, r.own_hash, index, r.cell.id, at])?;
            }
        }
        tx.execute(
            "DELETE FROM assets WHERE name NOT IN (SELECT name FROM keep)",
            [],
        )?;
        tx.execute("DELETE FROM keep", [])?;
        tx.commit()?;
        Ok(())
    }

    /// The `assets` table, by name.
    pub fn assets(&self) -> Result<Vec<AssetRow>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, version, own_hash, cell_index, cell_id FROM assets ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let index: Option<i64> = r.get(3)?;
                Ok(AssetRow {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    own_hash: r.get(2)?,
                    cell: CellRef {
                        index: index.map_or(CellRef::SESSION, |i| i as usize),
                        id: r.get(4)?,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn start<'a>(
        run: RunId,
        asset: &'a str,
        version: &'a str,
        ups: &'a BTreeMap<String, String>,
    ) -> StartRecord<'a> {
        StartRecord {
            run_id: Some(run),
            asset,
            version,
            own_hash: "own",
            upstream_versions: ups,
            target: Target::Slurm,
            job_id: Some("4242"),
            node: None,
        }
    }

    #[test]
    fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let u = ups(&[("temperatures", "v0")]);
        let (run, id) = {
            let db = StateDb::open(dir.path()).unwrap();
            assert!(dir.path().join(".slurmbook/state.db").exists());
            let run = db
                .begin_run("+summary", Target::Slurm, Some("cluster"))
                .unwrap();
            let id = db.record_start(&start(run, "summary", "v1", &u)).unwrap();
            assert_eq!(
                db.latest("summary").unwrap().unwrap().status,
                MaterializationStatus::Running
            );
            assert!(db.last_success("summary").unwrap().is_none());
            db.record_result(
                id,
                &ResultRecord {
                    metadata: serde_json::json!({"rows": 3}),
                    value_path: Some("/scratch/v".into()),
                    node: Some("node7".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            db.upsert_job(run, "summary", Some("4242"), "RUNNING")
                .unwrap();
            db.set_offsets(run, "summary", 120, 7).unwrap();
            db.finish_run(run, RunStatus::Ok).unwrap();
            (run, id)
        };
        // Restart: a new connection sees everything.
        let db = StateDb::open(dir.path()).unwrap();
        let m = db.last_success("summary").unwrap().unwrap();
        assert_eq!(m.id, id);
        assert_eq!(m.version, "v1");
        assert_eq!(m.upstream_versions, u);
        assert_eq!(m.run_id, Some(run));
        assert_eq!(m.target, Target::Slurm);
        assert_eq!(m.status, MaterializationStatus::Ok);
        assert_eq!(m.job_id.as_deref(), Some("4242"));
        assert_eq!(m.node.as_deref(), Some("node7"));
        assert_eq!(m.metadata["rows"], 3);
        assert_eq!(m.value_path.as_deref(), Some("/scratch/v"));
        assert!(m.finished_at.unwrap() >= m.started_at);
        assert!(m.duration_ms.unwrap() >= 0);
        let runs = db.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, RunStatus::Ok);
        assert_eq!(runs[0].profile.as_deref(), Some("cluster"));
        assert_eq!(runs[0].selection, "+summary");
        assert!(runs[0].finished_at.is_some());
        assert_eq!(db.latest_run().unwrap().unwrap().id, run);
        assert_eq!(db.run_assets(run).unwrap().len(), 1);
        assert_eq!(db.offsets(run, "summary").unwrap(), Some((120, 7)));
        assert_eq!(db.offsets(run, "other").unwrap(), None);
        assert_eq!(db.run_jobs(run).unwrap()[0].job_id.as_deref(), Some("4242"));
        assert_eq!(db.last_successes().unwrap().len(), 1);
    }

    #[test]
    fn failure_latest_and_last_success_differ() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let u = ups(&[]);
        let run = db.begin_run("*", Target::Local, None).unwrap();
        let ok = db.record_start(&start(run, "a", "v1", &u)).unwrap();
        db.record_result(ok, &ResultRecord::default()).unwrap();
        let bad = db.record_start(&start(run, "a", "v2", &u)).unwrap();
        db.record_result(
            bad,
            &ResultRecord {
                status: Some(MaterializationStatus::Failed),
                error: Some("boom".into()),
                ..Default::default()
            },
        )
        .unwrap();
        db.record_skipped(&[start(run, "b", "v9", &u), start(run, "c", "v9", &u)])
            .unwrap();
        assert_eq!(db.last_success("a").unwrap().unwrap().version, "v1");
        let latest = db.latest("a").unwrap().unwrap();
        assert_eq!(
            (latest.version.as_str(), latest.error.as_deref()),
            ("v2", Some("boom"))
        );
        assert!(
            db.latest("b").unwrap().is_none(),
            "skipped is not an attempt"
        );
        assert_eq!(db.run_assets(run).unwrap().len(), 4);
        assert_eq!(
            db.latest_all().unwrap()["a"].status,
            MaterializationStatus::Failed
        );
        assert!(matches!(
            db.record_result(999, &ResultRecord::default()),
            Err(StateError::NotFound { .. })
        ));
        assert!(matches!(
            db.finish_run(999, RunStatus::Ok),
            Err(StateError::NotFound { .. })
        ));
    }

    #[test]
    fn job_states_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let run = db.begin_run("*", Target::Slurm, None).unwrap();
        db.upsert_job(run, "a", Some("1"), "PENDING").unwrap();
        db.upsert_job(run, "b", Some("2"), "PENDING").unwrap();
        db.upsert_job(run, "b", None, "RUNNING").unwrap();
        db.set_job_states(run, &[("a", "COMPLETED"), ("b", "FAILED")])
            .unwrap();
        let jobs = db.run_jobs(run).unwrap();
        assert_eq!(
            jobs.iter().map(|j| j.state.as_str()).collect::<Vec<_>>(),
            ["COMPLETED", "FAILED"]
        );
        assert_eq!(
            jobs[1].job_id.as_deref(),
            Some("2"),
            "upsert without job id keeps it"
        );
    }

    #[test]
    fn sync_assets_replaces_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let row = |n: &str, v: &str, cell: CellRef| AssetRow {
            name: n.into(),
            version: v.into(),
            own_hash: "o".into(),
            cell,
        };
        db.sync_assets(&[
            row("a", "1", CellRef::saved(0, Some("x".into()))),
            row("b", "1", CellRef::session(None)),
        ])
        .unwrap();
        db.sync_assets(&[
            row("b", "2", CellRef::session(None)),
            row("c", "1", CellRef::saved(4, None)),
        ])
        .unwrap();
        let rows = db.assets().unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.name.as_str(), r.version.as_str()))
                .collect::<Vec<_>>(),
            [("b", "2"), ("c", "1")]
        );
        assert!(rows[0].cell.is_session());
        assert_eq!(rows[1].cell.index, 4);
    }

    #[test]
    fn wal_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let mode: String = db
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(db.user_version().unwrap(), SCHEMA_VERSION);
        db.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        let e = StateDb::open(dir.path())
            .err()
            .expect("newer schema is refused");
        assert!(
            matches!(e, StateError::NewerSchema { found: 99, .. }),
            "{e}"
        );
    }

    #[test]
    fn version_1_databases_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute("INSERT INTO runs (started_at, selection, target, status) VALUES ('2024-01-01T00:00:00.000Z', 'x', 'slurm', 'running')", [])
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let db = StateDb::open_file(&path).unwrap();
        assert_eq!(db.user_version().unwrap(), SCHEMA_VERSION);
        let run = db.latest_run().unwrap().unwrap();
        assert_eq!(db.run_remote(run.id).unwrap(), None);
        db.set_run_remote(run.id, "{\"run_dir\":\"/x\"}").unwrap();
        assert_eq!(
            db.run_remote(run.id).unwrap().as_deref(),
            Some("{\"run_dir\":\"/x\"}")
        );
        assert!(db.set_run_remote(run.id + 1, "{}").is_err());
    }

    #[test]
    fn concurrent_reader_while_writing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = StateDb::open(dir.path()).unwrap();
        let reader = StateDb::open(dir.path()).unwrap();
        let run = writer.begin_run("*", Target::Local, None).unwrap();
        // An open write transaction does not block the reader, which sees the
        // last committed state.
        writer.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        writer
            .conn
            .execute("INSERT INTO runs (started_at, selection, target, status) VALUES ('2024-01-01T00:00:00.000Z', 'x', 'local', 'running')", [])
            .unwrap();
        assert_eq!(reader.runs().unwrap().len(), 1);
        writer.conn.execute_batch("COMMIT").unwrap();
        assert_eq!(reader.runs().unwrap().len(), 2);

        // Threads: one writes results while another reads, without errors.
        let path = dir.path().to_path_buf();
        let w = std::thread::spawn(move || {
            let db = StateDb::open(&path).unwrap();
            let u = BTreeMap::new();
            for i in 0..200 {
                let name = format!("a{}", i % 10);
                let id = db.record_start(&start(run, &name, "v", &u)).unwrap();
                db.record_result(id, &ResultRecord::default()).unwrap();
            }
        });
        let mut reads = 0;
        while !w.is_finished() {
            let all = reader.last_successes().unwrap();
            assert!(all.len() <= 10);
            reads += 1;
        }
        w.join().unwrap();
        assert!(reads > 0);
        assert_eq!(reader.last_successes().unwrap().len(), 10);
        assert_eq!(reader.run_assets(run).unwrap().len(), 200);
    }
}
