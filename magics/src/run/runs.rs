//! Runs after the fact: following a Slurm run again (`%attach`), cancelling
//! it (`%cancel`), and the value of a materialization as a local file
//! (`%load`, fetched from the cluster when it is there).

use std::path::PathBuf;

use crate::events::RunSummary;
use crate::exec::cluster;
use crate::model::{RunId, RunStatus, Target};
use crate::state::{Materialization, Run};

use super::{DbRunLog, RunError, RunIo, Workspace};

impl Workspace {
    /// The run `%attach`/`%cancel` act on: `run` when given (it must be a
    /// Slurm run), else the newest Slurm run still in progress (`None` when
    /// there is none).
    pub fn slurm_run(&mut self, run: Option<RunId>) -> Result<Option<Run>, RunError> {
        let db = self.db()?;
        Ok(cluster::slurm_run(db, run)?)
    }

    /// Follows a Slurm run again (after a kernel restart) from where its
    /// output stopped, and records how it ended.
    pub async fn attach(&mut self, run: &Run, io: RunIo<'_>) -> Result<RunSummary, RunError> {
        let settings = self.settings(run.profile.as_deref())?;
        let remote = self.transport(&settings);
        let db = self.db()?;
        let summary = cluster::attach(cluster::AttachRun {
            db,
            run_id: run.id,
            remote: remote.as_ref(),
            emit: io.emit,
            cancel: io.cancel,
            gate: io.gate,
            log: &DbRunLog::new(db, run.id),
        })
        .await?;
        db.finish_run(run.id, summary.status())?;
        Ok(summary)
    }

    /// Cancels a Slurm run's jobs that have not ended (`scancel`), records
    /// them and the run as cancelled; returns the cancelled job ids.
    pub async fn cancel(&mut self, run: &Run) -> Result<Vec<String>, RunError> {
        let settings = self.settings(run.profile.as_deref())?;
        let remote = self.transport(&settings);
        let db = self.db()?;
        let jobs = cluster::cancel_run(db, run.id, remote.as_ref()).await?;
        db.finish_run(run.id, RunStatus::Cancelled)?;
        Ok(jobs)
    }

    /// The last successful materialization of `asset` with a stored value,
    /// and its Rust type.
    pub fn stored_value(&mut self, asset: &str) -> Result<(Materialization, String), RunError> {
        let last = self
            .db()?
            .last_success(asset)?
            .ok_or_else(|| RunError::NeverMaterialized {
                asset: asset.to_string(),
            })?;
        let type_name = last
            .metadata
            .get("type")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        match (&last.value_path, type_name) {
            (Some(_), Some(t)) => Ok((last, t)),
            _ => Err(RunError::NotStored {
                asset: asset.to_string(),
            }),
        }
    }

    /// Partition `key` of `asset`: its last attempt, which succeeded, and
    /// the type of its value (`%load "NAME[KEY]"`).
    pub fn stored_partition(
        &mut self,
        asset: &str,
        key: &str,
    ) -> Result<(Materialization, String), RunError> {
        let shown = format!("{asset}[{key}]");
        let last = self
            .db()?
            .latest_partitions(asset)?
            .remove(key)
            .filter(|m| m.status == crate::model::MaterializationStatus::Ok)
            .ok_or(RunError::NeverMaterialized {
                asset: shown.clone(),
            })?;
        let type_name = last
            .metadata
            .get("type")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        match (&last.value_path, type_name) {
            (Some(_), Some(t)) => Ok((last, t)),
            _ => Err(RunError::NotStored { asset: shown }),
        }
    }

    /// The bytes of `path` on the cluster of run `run` (with that run's
    /// profile; the default profile when the run is not known).
    pub async fn fetch_from_run(
        &mut self,
        run: Option<RunId>,
        path: &str,
    ) -> Result<Vec<u8>, RunError> {
        let profile = match run {
            Some(id) => self.db()?.run(id)?.and_then(|r| r.profile),
            None => None,
        };
        let settings = self.settings(profile.as_deref())?;
        self.transport(&settings)
            .fetch(path)
            .await
            .map_err(|e| RunError::Fetch {
                path: path.to_string(),
                detail: e.to_string(),
            })
    }

    /// The value of `m` as a local file: where the kernel stored it, or
    /// fetched from the cluster into the local store (once).
    pub async fn value_file(&mut self, m: &Materialization) -> Result<PathBuf, RunError> {
        let path = m.value_path.clone().ok_or_else(|| RunError::NotStored {
            asset: m.asset.clone(),
        })?;
        if m.target != Target::Slurm {
            return Ok(PathBuf::from(path));
        }
        let store = self.store();
        if let Ok(local) = store.path_for(&m.asset, &m.version, "json") {
            if local.exists() {
                return Ok(local);
            }
        }
        let bytes = self.fetch_from_run(m.run_id, &path).await?;
        store
            .write_bytes(&m.asset, &m.version, "json", &bytes)
            .map_err(|e| RunError::Store {
                asset: m.asset.clone(),
                detail: e.to_string(),
            })
    }
}
