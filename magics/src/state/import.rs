//! Runs of another state database imported into this one (`imported_runs`
//! maps them): how the notebook sees what its schedule did on the cluster.
//! Only finished runs are imported, each once, with their
//! materializations (versions, value paths, errors as recorded there) and
//! their usage, so `%runs`, `%runs RUN`, `%history`, `%assets`, staleness
//! and `%load` treat them like local runs.

use rusqlite::params;

use crate::model::RunStatus;

use super::*;

impl StateDb {
    /// Imports the finished runs of `remote` not imported yet from
    /// `source`, recorded under `profile` with `trigger_prefix` before their
    /// trigger; returns how many were imported.
    pub fn import_runs(
        &self,
        remote: &StateDb,
        source: &str,
        profile: &str,
        trigger_prefix: &str,
    ) -> Result<usize, StateError> {
        let runs: Vec<_> = remote
            .runs()?
            .into_iter()
            .filter(|r| r.status != RunStatus::Running)
            .collect();
        let triggers = remote.run_triggers()?;
        let tx = self.write()?;
        let mut imported = 0;
        for run in runs.iter().rev() {
            let known: i64 = tx.query_row(
                "SELECT COUNT(*) FROM imported_runs WHERE source = ?1 AND remote_id = ?2",
                params![source, run.id],
                |r| r.get(0),
            )?;
            if known > 0 {
                continue;
            }
            tx.execute(
                "INSERT INTO runs (started_at, finished_at, selection, target, profile, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    ts(run.started_at),
                    run.finished_at.map(ts),
                    run.selection,
                    run.target.as_str(),
                    profile,
                    run.status.as_str()
                ],
            )?;
            let local = tx.last_insert_rowid();
            let trigger = match triggers.get(&run.id) {
                Some(t) => format!("{trigger_prefix}{t}"),
                None => trigger_prefix.trim_end_matches([' ', ':']).to_string(),
            };
            tx.execute(
                "INSERT INTO run_triggers (run_id, trigger) VALUES (?1, ?2)",
                params![local, trigger],
            )?;
            tx.execute(
                "INSERT INTO imported_runs (source, remote_id, local_id) VALUES (?1, ?2, ?3)",
                params![source, run.id, local],
            )?;
            let usage = remote.run_usage(run.id)?;
            for m in remote.run_assets(run.id)? {
                tx.execute(
                    "INSERT INTO materializations (asset, version, own_hash, upstream_versions, run_id, target, status,
                       started_at, finished_at, duration_ms, job_id, node, metadata, value_path, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                    params![
                        m.asset,
                        m.version,
                        m.own_hash,
                        serde_json::to_string(&m.upstream_versions).expect("a map serializes"),
                        local,
                        m.target.as_str(),
                        m.status.as_str(),
                        ts(m.started_at),
                        m.finished_at.map(ts),
                        m.duration_ms,
                        m.job_id,
                        m.node,
                        serde_json::to_string(&m.metadata).expect("JSON serializes"),
                        m.value_path,
                        m.error
                    ],
                )?;
                // The usage too (same connection: inside this transaction).
                if let Some(u) = usage.get(&m.id) {
                    self.record_usage(tx.last_insert_rowid(), u)?;
                }
            }
            imported += 1;
        }
        tx.commit()?;
        Ok(imported)
    }
}
