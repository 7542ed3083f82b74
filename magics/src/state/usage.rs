//! The `usage` table: resource usage and timeline of a materialization
//! (one row per materialization that has any), in typed columns.

use std::collections::HashMap;

use rusqlite::{params, Row};

use crate::model::{MaterializationId, Requested, RunId, Usage, UsageSource};

use super::materializations::MAT_COLUMNS;
use super::*;

const USAGE_COLUMNS: &str =
    "materialization_id, source, allocation, submitted_at, job_started_at, \
started_at, ended_at, queue_ms, wall_ms, cpu_ms, max_rss_bytes, cpus, nodes, gpus, gpu_util_pct, \
gpu_mem_bytes, req_cpus, req_mem_bytes, req_time_s, req_gpus, req_nodes";

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|v| v.min(i64::MAX as u64) as i64)
}

fn uint(v: Option<i64>) -> Option<u64> {
    v.map(|v| v.max(0) as u64)
}

fn small(v: Option<i64>) -> Option<u32> {
    v.map(|v| v.clamp(0, i64::from(u32::MAX)) as u32)
}

/// A raw row, converted outside rusqlite's closure.
struct UsageRow {
    id: i64,
    source: Option<String>,
    allocation: Option<String>,
    times: [Option<String>; 4],
    ints: [Option<i64>; 4],
    counts: [Option<i64>; 3],
    gpu_util_pct: Option<f64>,
    gpu_mem_bytes: Option<i64>,
    req: [Option<i64>; 5],
}

impl UsageRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<UsageRow> {
        Ok(UsageRow {
            id: r.get(0)?,
            source: r.get(1)?,
            allocation: r.get(2)?,
            times: [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
            ints: [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
            counts: [r.get(11)?, r.get(12)?, r.get(13)?],
            gpu_util_pct: r.get(14)?,
            gpu_mem_bytes: r.get(15)?,
            req: [r.get(16)?, r.get(17)?, r.get(18)?, r.get(19)?, r.get(20)?],
        })
    }

    fn convert(self) -> Result<(MaterializationId, Usage), StateError> {
        let t = |s: &Option<String>| s.as_deref().map(|s| parse_ts("usage", s)).transpose();
        let [submitted, job_started, started, ended] = &self.times;
        let [queue, wall, cpu, rss] = self.ints;
        let [cpus, nodes, gpus] = self.counts;
        let [rc, rm, rt, rg, rn] = self.req;
        Ok((
            self.id,
            Usage {
                source: self.source.as_deref().and_then(UsageSource::parse),
                allocation: self.allocation,
                submitted_at: t(submitted)?,
                job_started_at: t(job_started)?,
                started_at: t(started)?,
                ended_at: t(ended)?,
                queue_ms: uint(queue),
                wall_ms: uint(wall),
                cpu_ms: uint(cpu),
                max_rss_bytes: uint(rss),
                cpus: small(cpus),
                nodes: small(nodes),
                gpus: small(gpus),
                gpu_util_pct: self.gpu_util_pct,
                gpu_mem_bytes: uint(self.gpu_mem_bytes),
                requested: Requested {
                    cpus: small(rc),
                    mem_bytes: uint(rm),
                    time_s: uint(rt),
                    gpus: small(rg),
                    nodes: small(rn),
                },
            },
        ))
    }
}

impl StateDb {
    /// Record (or replace) the usage of a materialization.
    pub fn record_usage(&self, id: MaterializationId, u: &Usage) -> Result<(), StateError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO usage ({USAGE_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
            ))?
            .execute(params![
                id,
                u.source.map(UsageSource::as_str),
                u.allocation,
                opt_ts(u.submitted_at),
                opt_ts(u.job_started_at),
                opt_ts(u.started_at),
                opt_ts(u.ended_at),
                int(u.queue_ms),
                int(u.wall_ms),
                int(u.cpu_ms),
                int(u.max_rss_bytes),
                u.cpus,
                u.nodes,
                u.gpus,
                u.gpu_util_pct,
                int(u.gpu_mem_bytes),
                u.requested.cpus,
                int(u.requested.mem_bytes),
                int(u.requested.time_s),
                u.requested.gpus,
                u.requested.nodes,
            ])?;
        Ok(())
    }

    fn query_usage(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<HashMap<MaterializationId, Usage>, StateError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params, UsageRow::read)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(UsageRow::convert).collect()
    }

    /// The usage of one materialization.
    pub fn usage(&self, id: MaterializationId) -> Result<Option<Usage>, StateError> {
        let sql = format!("SELECT {USAGE_COLUMNS} FROM usage WHERE materialization_id = ?1");
        Ok(self.query_usage(&sql, [id])?.remove(&id))
    }

    /// The usage of a run's materializations, by materialization id.
    pub fn run_usage(&self, run: RunId) -> Result<HashMap<MaterializationId, Usage>, StateError> {
        let sql = format!(
            "SELECT {USAGE_COLUMNS} FROM usage WHERE materialization_id IN \
             (SELECT id FROM materializations WHERE run_id = ?1)"
        );
        self.query_usage(&sql, [run])
    }

    /// The usage of the last successful materialization of every asset, by asset.
    pub fn last_success_usage(&self) -> Result<HashMap<String, Usage>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT asset, MAX(id) FROM materializations WHERE status = 'ok' AND partition IS NULL GROUP BY asset",
        )?;
        let ids: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let sql = format!(
            "SELECT {USAGE_COLUMNS} FROM usage WHERE materialization_id IN \
             (SELECT MAX(id) FROM materializations WHERE status = 'ok' AND partition IS NULL GROUP BY asset)"
        );
        let mut by_id = self.query_usage(&sql, [])?;
        Ok(ids
            .into_iter()
            .filter_map(|(asset, id)| by_id.remove(&id).map(|u| (asset, u)))
            .collect())
    }

    /// The last `limit` materializations of `asset` (not skipped ones),
    /// newest first, each with its usage when it has one.
    pub fn asset_history(
        &self,
        asset: &str,
        limit: usize,
    ) -> Result<Vec<(Materialization, Option<Usage>)>, StateError> {
        let sql = format!(
            "SELECT {MAT_COLUMNS} FROM materializations WHERE asset = ?1 AND status != 'skipped' \
             AND partition IS NULL ORDER BY id DESC LIMIT ?2"
        );
        let mats = self.query_mats(&sql, params![asset, limit as i64])?;
        let sql = format!(
            "SELECT {USAGE_COLUMNS} FROM usage WHERE materialization_id IN \
             (SELECT id FROM materializations WHERE asset = ?1 AND status != 'skipped' \
              AND partition IS NULL ORDER BY id DESC LIMIT ?2)"
        );
        let mut usage = self.query_usage(&sql, params![asset, limit as i64])?;
        Ok(mats
            .into_iter()
            .map(|m| {
                let u = usage.remove(&m.id);
                (m, u)
            })
            .collect())
    }
}
