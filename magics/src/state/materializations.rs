//! The `materializations` table: every attempt to compute an asset, what
//! it was computed from, how it ended and where its value is.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::model::Target;
use crate::model::{MaterializationId, MaterializationStatus, RunId};
use crate::version::Recorded;

use super::*;

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
    /// The partition's key, for an attempt at one partition of a
    /// partitioned asset (its `version` is the partition's version).
    #[serde(default)]
    pub partition: Option<String>,
}

impl Materialization {
    /// Whether this attempt started after `other` (by time, then id).
    pub fn started_after(&self, other: &Materialization) -> bool {
        (self.started_at, self.id) > (other.started_at, other.id)
    }

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

pub(super) const MAT_COLUMNS: &str =
    "id, asset, version, own_hash, upstream_versions, run_id, target, status, \
started_at, finished_at, duration_ms, job_id, node, metadata, value_path, error, partition";

/// The newest success first: by when it ended, then by id. Rows imported
/// from a schedule's state on the cluster get ids after local rows that
/// may be newer, so time (not the id) says which is the latest.
const SUCCESS_ORDER: &str = "COALESCE(finished_at, started_at) DESC, id DESC";

/// The newest attempt first: by when it started, then by id.
const ATTEMPT_ORDER: &str = "started_at DESC, id DESC";

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
    partition: Option<String>,
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
            partition: row.get(16)?,
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
            partition: self.partition,
            asset: self.asset,
            version: self.version,
            own_hash: self.own_hash,
        })
    }
}

impl StateDb {
    /// Record that an asset started (status `running`); returns the id to
    /// pass to [`StateDb::record_result`].
    pub fn record_start(&self, start: &StartRecord<'_>) -> Result<MaterializationId, StateError> {
        self.record_start_of(start, None)
    }

    /// Record that partition `key` of an asset started (`start.version` is
    /// the partition's version).
    pub fn record_partition_start(
        &self,
        start: &StartRecord<'_>,
        key: &str,
    ) -> Result<MaterializationId, StateError> {
        self.record_start_of(start, Some(key))
    }

    fn record_start_of(
        &self,
        start: &StartRecord<'_>,
        partition: Option<&str>,
    ) -> Result<MaterializationId, StateError> {
        let ups = serde_json::to_string(start.upstream_versions).expect("a string map serializes");
        self.conn
            .prepare_cached(
                "INSERT INTO materializations (asset, version, own_hash, upstream_versions, run_id, target, status, started_at, job_id, node, partition)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10)",
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
                start.node,
                partition
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

    pub(super) fn query_mats(
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
            "SELECT {MAT_COLUMNS} FROM materializations WHERE asset = ?1 AND status = 'ok' AND partition IS NULL ORDER BY {SUCCESS_ORDER} LIMIT 1"
        );
        Ok(self.query_mats(&sql, [asset])?.pop())
    }

    /// The last successful materialization of every asset, in one query.
    pub fn last_successes(&self) -> Result<HashMap<String, Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER
               (PARTITION BY asset ORDER BY {SUCCESS_ORDER}) AS rn FROM materializations
               WHERE status = 'ok' AND partition IS NULL)
             WHERE rn = 1"
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
            "SELECT {MAT_COLUMNS} FROM materializations WHERE asset = ?1 AND status != 'skipped' AND partition IS NULL ORDER BY {ATTEMPT_ORDER} LIMIT 1"
        );
        Ok(self.query_mats(&sql, [asset])?.pop())
    }

    /// The latest (non-skipped) materialization of every asset.
    pub fn latest_all(&self) -> Result<HashMap<String, Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER
               (PARTITION BY asset ORDER BY {ATTEMPT_ORDER}) AS rn FROM materializations
               WHERE status != 'skipped' AND partition IS NULL)
             WHERE rn = 1"
        );
        Ok(self
            .query_mats(&sql, [])?
            .into_iter()
            .map(|m| (m.asset.clone(), m))
            .collect())
    }

    /// Materializations of a run, in the order they started (the assets'
    /// own rows: a partitioned asset's partitions are in
    /// [`StateDb::run_partitions`]).
    pub fn run_assets(&self, run: RunId) -> Result<Vec<Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE run_id = ?1 AND partition IS NULL ORDER BY id"
        );
        self.query_mats(&sql, [run])
    }

    /// The attempts at partitions of `asset` in a run, in the order they started.
    pub fn run_partitions(
        &self,
        run: RunId,
        asset: &str,
    ) -> Result<Vec<Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE run_id = ?1 AND asset = ?2 AND partition IS NOT NULL ORDER BY id"
        );
        self.query_mats(&sql, rusqlite::params![run, asset])
    }

    /// The latest attempt (not skipped) at each partition of `asset`, by key.
    pub fn latest_partitions(
        &self,
        asset: &str,
    ) -> Result<HashMap<String, Materialization>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER
               (PARTITION BY partition ORDER BY {ATTEMPT_ORDER}) AS rn FROM materializations
               WHERE asset = ?1 AND partition IS NOT NULL AND status != 'skipped')
             WHERE rn = 1"
        );
        Ok(self
            .query_mats(&sql, [asset])?
            .into_iter()
            .filter_map(|m| Some((m.partition.clone()?, m)))
            .collect())
    }
}
