//! The cell errors of asset magics: how the run service's errors are named
//! in Jupyter (`ename`) and worded (`evalue`).

use crate::engine::ErrorInfo;
use slurmbook_magics::run::{RunError, RunErrorKind};

pub(super) fn magic_error(message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("MagicError", message)
}

pub(super) fn state_error(e: impl std::fmt::Display) -> ErrorInfo {
    ErrorInfo::new("StateError", e.to_string())
}

/// A run service error of `magic` (`%materialize`, `%attach 3`, ...):
/// bad input is a `MagicError` naming the magic; the others are named by
/// what failed (`AssetError`, `StateError`, `MaterializeError`, `SlurmError`).
pub(super) fn run_error(magic: &str, e: RunError) -> ErrorInfo {
    match e.kind() {
        RunErrorKind::Usage => magic_error(format!("{magic}: {e}")),
        RunErrorKind::Asset => ErrorInfo::new("AssetError", e.to_string()),
        RunErrorKind::State => state_error(e),
        RunErrorKind::Local => ErrorInfo::new("MaterializeError", e.to_string()),
        RunErrorKind::Slurm => ErrorInfo::new("SlurmError", format!("{magic}: {e}")),
    }
}
