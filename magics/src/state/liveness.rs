//! Which local runs are alive. The process running a local run (a kernel,
//! the CLI) holds an exclusive lock on `.slurmbook/locks/run-<id>.lock`
//! for as long as it runs; the OS drops the lock however the process ends,
//! SIGKILL included. A local run still `running` whose lock nobody holds
//! was interrupted: [`StateDb::close_interrupted_runs`] records it as
//! cancelled and its unfinished materializations as failed ("interrupted"),
//! so nothing is shown running forever, and since only a successful
//! materialization's value is ever loaded, nothing it half-wrote is used.
//!
//! Slurm runs are left alone: their jobs run on without the process, and
//! `%attach` follows them again.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use super::{now, ts, StateDb, StateError};
use crate::model::{RunId, RunStatus, Target};

/// The error recorded for a materialization whose process ended mid-way.
pub const INTERRUPTED: &str = "interrupted: the process materializing it (kernel or CLI) ended \
     before it finished (killed?); nothing it wrote is used; materialize it again";

/// A local run's lock, held while it runs (see the module docs).
#[derive(Debug)]
pub struct RunClaim {
    path: PathBuf,
    _file: File,
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock_path(db: &Path, run: RunId) -> PathBuf {
    db.parent()
        .unwrap_or(Path::new("."))
        .join("locks")
        .join(format!("run-{run}.lock"))
}

/// Whether the run of the lock at `path` was interrupted: its file is there
/// and nobody holds it. No file: not known (a run begun elsewhere and not
/// yet claimed, or by an older slurmbook), so never called interrupted.
fn abandoned(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        // Locks unsupported here: never call a live run interrupted.
        Err(TryLockError::Error(_)) => false,
    }
}

/// Creates and locks the lock file of `run`.
fn lock(db: &Path, run: RunId) -> Result<RunClaim, StateError> {
    let path = lock_path(db, run);
    let io = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("a lock file has a directory")).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(RunClaim { path, _file: file })
}

impl StateDb {
    /// Start a local run and claim it (one transaction: no other process
    /// sees the run before its lock is held).
    pub fn begin_local_run(
        &self,
        selection: &str,
        profile: Option<&str>,
    ) -> Result<(RunId, RunClaim), StateError> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO runs (started_at, selection, target, profile, status) VALUES (?1, ?2, ?3, ?4, 'running')",
            params![ts(now()), selection, Target::Local.as_str(), profile],
        )?;
        let run = tx.last_insert_rowid();
        let claim = lock(&self.path, run)?;
        tx.commit()?;
        Ok((run, claim))
    }

    /// Claims a run begun elsewhere (a tick's) for this process.
    pub fn claim_run(&self, run: RunId) -> Result<RunClaim, StateError> {
        lock(&self.path, run)
    }

    /// Records local runs whose process is gone as cancelled, and their
    /// unfinished materializations as failed with [`INTERRUPTED`]. Returns
    /// the assets so closed.
    pub fn close_interrupted_runs(&self) -> Result<Vec<String>, StateError> {
        let orphans = |conn: &Connection| -> Result<Vec<RunId>, StateError> {
            let runs: Vec<RunId> = conn
                .prepare("SELECT id FROM runs WHERE status = 'running' AND target = ?1")?
                .query_map([Target::Local.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(runs
                .into_iter()
                .filter(|&run| abandoned(&lock_path(&self.path, run)))
                .collect())
        };
        // Reading first: no write (and no wait for a writer) when all is well.
        if orphans(&self.conn)?.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.write()?;
        let mut closed = Vec::new();
        for run in orphans(&tx)? {
            let path = lock_path(&self.path, run);
            let at = ts(now());
            let assets: Vec<String> = tx
                .prepare("SELECT asset FROM materializations WHERE run_id = ?1 AND status = 'running' ORDER BY id")?
                .query_map([run], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            tx.execute(
                "UPDATE materializations SET status = 'failed', finished_at = ?1, error = ?2
                 WHERE run_id = ?3 AND status = 'running'",
                params![at, INTERRUPTED, run],
            )?;
            tx.execute(
                "UPDATE runs SET status = ?1, finished_at = ?2 WHERE id = ?3",
                params![RunStatus::Cancelled.as_str(), at, run],
            )?;
            let _ = std::fs::remove_file(&path);
            tracing::warn!(run, assets = ?assets, "local run {run} was interrupted (its process is gone)");
            closed.extend(assets);
        }
        tx.commit()?;
        // Their steps' claims went with their processes; their files go too.
        super::claims::sweep_abandoned(&self.path);
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_materialization(db: &StateDb, run: RunId, asset: &str) {
        db.conn
            .execute(
                "INSERT INTO materializations (asset, version, own_hash, upstream_versions, run_id, target, status, started_at)
                 VALUES (?1, 'v', 'h', '{}', ?2, 'local', 'running', ?3)",
                params![asset, run, ts(now())],
            )
            .unwrap();
    }

    #[test]
    fn runs_whose_lock_nobody_holds_are_closed_as_interrupted_and_live_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let (live, claim) = db.begin_local_run("*", None).unwrap();
        running_materialization(&db, live, "a");
        // A killed process: its lock released, its file left.
        let (killed, killed_claim) = db.begin_local_run("*", None).unwrap();
        running_materialization(&db, killed, "b");
        let left = killed_claim.path.clone();
        drop(killed_claim);
        std::fs::write(&left, "").unwrap();
        let (gone, gone_claim) = db.begin_local_run("*", None).unwrap();
        running_materialization(&db, gone, "c");
        drop(gone_claim);
        let slurm = db.begin_run("*", Target::Slurm, None).unwrap();
        running_materialization(&db, slurm, "d");

        let other = StateDb::open(dir.path()).unwrap();
        assert_eq!(other.close_interrupted_runs().unwrap(), ["b"]);
        let status = |id: RunId| other.run(id).unwrap().unwrap().status;
        assert_eq!(status(live), RunStatus::Running);
        assert_eq!(status(killed), RunStatus::Cancelled);
        // No lock file: not known to be dead (begun elsewhere, not yet claimed).
        assert_eq!(status(gone), RunStatus::Running);
        assert_eq!(status(slurm), RunStatus::Running);
        let b = other.latest("b").unwrap().unwrap();
        assert_eq!(b.status, crate::model::MaterializationStatus::Failed);
        assert_eq!(b.error.as_deref(), Some(INTERRUPTED));
        assert_eq!(
            other.latest("a").unwrap().unwrap().status,
            crate::model::MaterializationStatus::Running
        );
        assert!(!left.exists());
        // Nothing more to close; the live run closes itself normally.
        assert!(other.close_interrupted_runs().unwrap().is_empty());
        drop(claim);
    }
}
