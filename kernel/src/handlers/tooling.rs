//! `%lint` (clippy's diagnostics as a table of cells and lines) and
//! `%export DIR` (the notebook as a standalone Cargo project), done by
//! `slurmbook_magics::tooling` like the CLI's `lint` and `export`. Both run
//! cargo, off the async runtime.

use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;
use crate::render::table_bundle;
use slurmbook_magics::tooling::{self, export, lint, ToolError};

fn tool_error(magic: &str, e: ToolError) -> ErrorInfo {
    let ename = match e {
        ToolError::NoNotebook | ToolError::Export(_) => "MagicError",
        ToolError::Project(_) | ToolError::Notebook(_) | ToolError::Bundle(_) => "AssetError",
        _ => "ToolError",
    };
    ErrorInfo::new(ename, format!("{magic}: {e}"))
}

fn joined<T>(
    r: Result<Result<T, ToolError>, tokio::task::JoinError>,
    magic: &str,
) -> Result<T, ErrorInfo> {
    r.map_err(|e| ErrorInfo::new("ToolError", format!("{magic}: {e}")))?
        .map_err(|e| tool_error(magic, e))
}

impl RustKernel {
    pub(super) async fn lint_magic(
        &mut self,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let loaded = tooling::load(&self.workspace).map_err(|e| tool_error("%lint", e))?;
        let report = joined(
            tokio::task::spawn_blocking(move || lint::lint(&loaded)).await,
            "%lint",
        )?;
        out.display(table_bundle(&report.table()), None);
        Ok(CellResult::none())
    }

    pub(super) async fn export_magic(
        &mut self,
        dir: &str,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let loaded = tooling::load(&self.workspace).map_err(|e| tool_error("%export", e))?;
        // Relative to the notebook's directory.
        let dir = self.workspace.dir().join(dir);
        let report = joined(
            tokio::task::spawn_blocking(move || {
                export::export(&loaded.project, &loaded.nb, &dir, &loaded.edition)
            })
            .await,
            "%export",
        )?;
        out.stream("stdout", &report.describe());
        Ok(CellResult::none())
    }
}
