//! The state database: `<notebook dir>/.slurmbook/state.db` (SQLite, WAL).
//!
//! It records the assets' current versions, every materialization (with
//! what it was computed from: own hash and upstream versions), runs and
//! their Slurm jobs with streaming offsets. It survives kernel restarts;
//! every multi-row write is one transaction; readers never block writers.
//!
//! One file per table family: [`runs`], [`materializations`], [`jobs`]
//! (a run's Slurm jobs and streaming offsets), [`assets`], [`policy_states`]
//! (freshness policy states, for `notify`), [`usage`] (resources and
//! timeline per materialization), [`auto`] (what triggered a run, and the
//! assets ticks requested), [`claims`] (the steps runs compute now, as
//! file locks: two runs never compute one asset version at once); the
//! schema and its migrations in [`schema`].

mod assets;
mod auto;
mod claims;
mod import;
mod jobs;
mod liveness;
mod materializations;
mod policy_states;
mod runs;
mod schema;
mod usage;

pub use assets::AssetRow;
pub use auto::{AssetFacts, AutoClaim, AutoFacts, AutoRequest, CLAIM_TIMEOUT_HOURS};
pub use claims::{ClaimHolder, Claimed, HeldStep, StepClaim, StepKey};
pub use jobs::RunJob;
pub use liveness::{RunClaim, INTERRUPTED};
pub use materializations::{Materialization, ResultRecord, StartRecord};
pub use policy_states::PolicyRow;
pub use runs::Run;
use schema::{SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::private_fs::create_private_dir;
use thiserror::Error;

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 6;

/// Directory (beside the notebook) holding the state and the value store.
pub const STATE_DIR: &str = ".slurmbook";

/// How long a write waits for another process's write transaction.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state database: {}", sqlite_text(.0))]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path} is locked by another process (waited {} s): another slurmbook kernel or CLI, or an sqlite3 shell, holds a write transaction on it; let it finish or close it, then try again", LOCK_WAIT.as_secs())]
    Locked { path: PathBuf },
    #[error("{path} is not a readable state database ({detail}); to recover, move it aside (`mv {} {}.broken`) and run again: a fresh one is created, the stored values are kept but their records are not, so assets run again (`sqlite3 {}.broken .recover` may save what is readable)", path.display(), path.display(), path.display())]
    Damaged { path: PathBuf, detail: String },
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

/// An SQLite error in words: a lock or a damaged file says what to do.
fn sqlite_text(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "{e}: another process (a slurmbook kernel or CLI, or an sqlite3 shell) held \
             {STATE_DIR}/state.db for more than {} s; let it finish, then try again",
            LOCK_WAIT.as_secs()
        ),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            format!("{e}: move {STATE_DIR}/state.db aside and run again to start a fresh one")
        }
        _ => e.to_string(),
    }
}

impl StateError {
    /// The error of opening `path`: locks and damaged files named as such.
    fn opening(path: &Path, e: rusqlite::Error) -> StateError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StateError::Locked {
                path: path.to_path_buf(),
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StateError::Damaged {
                path: path.to_path_buf(),
                detail: e.to_string(),
            },
            _ => StateError::Sqlite(e),
        }
    }
}

/// Who is told, besides the log, that the state database is locked: a
/// kernel shows it in the cell that is waiting ([`set_lock_listener`]).
pub type LockListener = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

static LOCK_LISTENER: std::sync::RwLock<Option<LockListener>> = std::sync::RwLock::new(None);

/// Sets (or with `None` clears) who hears that the state database is locked
/// and being waited for; returns the one it replaces.
pub fn set_lock_listener(listener: Option<LockListener>) -> Option<LockListener> {
    let mut slot = LOCK_LISTENER.write().unwrap_or_else(|e| e.into_inner());
    std::mem::replace(&mut *slot, listener)
}

/// SQLite's busy handler: waits [`LOCK_WAIT`] for another process's write,
/// saying so once.
fn wait_for_lock(attempt: i32) -> bool {
    const STEP: Duration = Duration::from_millis(50);
    if attempt == 0 {
        let text = format!(
            "the state database is locked by another process; waiting up to {} s",
            LOCK_WAIT.as_secs()
        );
        tracing::warn!("{text}");
        let listener = LOCK_LISTENER
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener(&text);
        }
    }
    if STEP * attempt.max(0) as u32 >= LOCK_WAIT {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

/// SQLite's "busy" and "locked" answers.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Runs `f` again while its error is SQLite's busy answer given without
/// calling the busy handler, for up to [`LOCK_WAIT`].
fn retry_busy<T, E>(
    mut f: impl FnMut() -> Result<T, E>,
    busy: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    loop {
        match f() {
            Err(e) if busy(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// Connection to the state database. Not `Sync`: give each thread its own
/// (opening is cheap) or wrap it in a mutex.
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
    /// The file's device and inode when opened (see [`StateDb::is_replaced`]).
    file_id: Option<(u64, u64)>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

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

/// Makes an existing file `0600` unless it is already at most that.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

impl StateDb {
    /// Open (creating if needed) `<dir>/.slurmbook/state.db`, where `dir` is
    /// the notebook's directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<StateDb, StateError> {
        let state_dir = dir.as_ref().join(STATE_DIR);
        create_private_dir(&state_dir).map_err(|source| StateError::Io {
            path: state_dir.clone(),
            source,
        })?;
        Self::open_file(state_dir.join("state.db"))
    }

    /// Open a database file directly. A file locked for longer than
    /// [`LOCK_WAIT`] or not an SQLite database is a clear error naming it.
    pub fn open_file(path: impl AsRef<Path>) -> Result<StateDb, StateError> {
        let path = path.as_ref().to_path_buf();
        let opening = |e| StateError::opening(&path, e);
        let conn = Connection::open(&path).map_err(opening)?;
        make_private(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        conn.busy_handler(Some(wait_for_lock)).map_err(opening)?;
        // Switching a new file to WAL needs the file alone, and SQLite
        // answers BUSY at once (no busy handler) while another process opens
        // it too: two `slurmbook tick`s started together. Retried.
        retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"), is_busy).map_err(opening)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(opening)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(opening)?;
        let file_id = file_id(&path);
        let db = StateDb {
            conn,
            path,
            file_id,
        };
        retry_busy(
            || db.migrate(),
            |e| matches!(e, StateError::Sqlite(e) if is_busy(e)),
        )
        .map_err(|e| match e {
            StateError::Sqlite(e) => StateError::opening(&db.path, e),
            other => other,
        })?;
        Ok(db)
    }

    /// Whether the file this connection has open is no longer at its path
    /// (deleted, or replaced by another file).
    pub fn is_replaced(&self) -> bool {
        file_id(&self.path) != self.file_id
    }

    /// When the file was deleted while open (the connection still reads
    /// it), writes a consistent copy of everything back to its path (`VACUUM
    /// INTO`) and returns true; the caller then opens it again.
    pub fn restore_if_deleted(&self) -> Result<bool, StateError> {
        if self.path.exists() {
            return Ok(false);
        }
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir).map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let target = self.path.to_string_lossy().into_owned();
        self.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(true)
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
        if found < 3 {
            tx.execute_batch(SCHEMA_V3)?;
        }
        if found < 4 {
            tx.execute_batch(SCHEMA_V4)?;
        }
        if found < 5 {
            tx.execute_batch(SCHEMA_V5)?;
        }
        if found < 6 {
            tx.execute_batch(SCHEMA_V6)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
