//! [`RunLog`]: what a watch reports to be recorded (by the run service,
//! over the state database) — the offsets to resume from, the offsets
//! reached after each batch of output, and the jobs' state changes. The
//! watcher itself writes nothing.

use super::jobs::WatchJob;

/// A failure of the log (reading saved offsets fails the watch; saving
/// fails with a warning).
#[derive(Debug, thiserror::Error)]
#[error("run log: {0}")]
pub struct RunLogError(pub Box<dyn std::error::Error + Send + Sync>);

impl RunLogError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> RunLogError {
        RunLogError(Box::new(e))
    }
}

/// Where a watch's progress is recorded.
pub trait RunLog {
    /// The output offsets `(stdout, stderr)` an earlier watch of `job`
    /// reached; `None` when it was never followed (the log may record the
    /// job as queued then).
    fn saved_offsets(&self, job: &WatchJob) -> Result<Option<(u64, u64)>, RunLogError>;

    /// The output of `asset` was shown up to these offsets.
    fn save_offsets(&self, asset: &str, offsets: (u64, u64)) -> Result<(), RunLogError>;

    /// Jobs changed state: `(asset, state label)` (`queued`, `running`,
    /// `done`, `failed`, `cancelled`).
    fn job_states(&self, changes: &[(&str, &str)]) -> Result<(), RunLogError>;
}

/// Records nothing (tests, one-off watches): every watch starts at offset 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRunLog;

impl RunLog for NoRunLog {
    fn saved_offsets(&self, _job: &WatchJob) -> Result<Option<(u64, u64)>, RunLogError> {
        Ok(None)
    }

    fn save_offsets(&self, _asset: &str, _offsets: (u64, u64)) -> Result<(), RunLogError> {
        Ok(())
    }

    fn job_states(&self, _changes: &[(&str, &str)]) -> Result<(), RunLogError> {
        Ok(())
    }
}
