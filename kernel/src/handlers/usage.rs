//! `%runs RUN` and `%history NAME`: what a run's assets used with the
//! run's timeline, and an asset's last materializations with plots (built
//! by the run service, `slurmbook_magics::usage`), as `display_data`.

use super::errors::{magic_error, run_error};
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;
use crate::protocol::MimeBundle;
use crate::render::table_bundle;
use serde_json::Value;
use slurmbook_magics::draw::{plot, timeline};
use slurmbook_magics::RunId;

/// An SVG picture with its text form.
fn picture(svg: String, text: String) -> MimeBundle {
    let mut data = MimeBundle::new();
    data.insert("image/svg+xml".into(), Value::String(svg));
    data.insert("text/plain".into(), Value::String(text));
    data
}

impl RustKernel {
    /// `%runs RUN`: the usage table, then the timeline (SVG, text).
    pub(super) fn run_report_magic(
        &mut self,
        run: RunId,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let report = self
            .workspace
            .run_report(run)
            .map_err(|e| run_error(&format!("%runs {run}"), e))?
            .ok_or_else(|| {
                magic_error(format!(
                    "%runs {run}: there is no run {run}; %runs lists the runs"
                ))
            })?;
        out.display(table_bundle(&report.table), None);
        out.display(
            picture(
                timeline::svg(&report.timeline),
                timeline::text(&report.timeline),
            ),
            None,
        );
        Ok(CellResult::none())
    }

    /// `%history NAME`: the table of its last materializations, then plots.
    pub(super) fn history_magic(
        &mut self,
        name: &str,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let magic = format!("%history {name}");
        let project = self.project()?;
        let report = self
            .workspace
            .history(name)
            .map_err(|e| run_error(&magic, e))?;
        if report.table.rows.is_empty() {
            if project.asset(name).is_none() {
                return Err(magic_error(format!(
                    "{magic}: there is no asset `{name}` in the notebook, and it was never materialized"
                )));
            }
            out.stream("stdout", &format!("{name} was never materialized\n"));
            return Ok(CellResult::none());
        }
        out.display(table_bundle(&report.table), None);
        out.display(
            picture(plot::svg(&report.plot), plot::text(&report.plot)),
            None,
        );
        Ok(CellResult::none())
    }
}
