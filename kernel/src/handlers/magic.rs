//! Cells with magics: split by `slurmbook-magics`, run segment by segment in
//! order. A cell that does not parse is rejected whole, before anything runs.

use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;
use crate::protocol;
use serde_json::{json, Value};
use slurmbook_magics::syntax::{self, magic, Cell, LineMagic, Segment};

impl RustKernel {
    pub(super) async fn run_cell(
        &mut self,
        code: &str,
        cell_id: Option<&str>,
        out: &CellOutput<'_>,
        allow_stdin: bool,
    ) -> Result<CellResult, ErrorInfo> {
        let cell =
            syntax::parse_cell(code).map_err(|e| ErrorInfo::new("MagicError", e.to_string()))?;
        match cell {
            Cell::Asset(asset) => self.run_asset_cell(code, cell_id, asset, out).await,
            Cell::Check(check) => self.run_check_cell(code, cell_id, check, out).await,
            Cell::Code(segments) => {
                let has_rust = segments.iter().any(|s| matches!(s, Segment::Rust { .. }));
                let mut result = CellResult {
                    value: None,
                    payload: Vec::new(),
                };
                for segment in segments {
                    let r = match segment {
                        Segment::Rust { code, .. } => {
                            self.run_rust(&code, out, allow_stdin).await?
                        }
                        Segment::Magic { magic, .. } => self.run_line_magic(magic, out).await?,
                    };
                    result.payload.extend(r.payload);
                    result.value = r.value;
                }
                if has_rust {
                    // The session now has this cell's items: they override the saved notebook's.
                    if let Err(error) = self.workspace.overrides.record(cell_id, None, code) {
                        tracing::debug!(%error, "cell not recorded");
                    }
                }
                Ok(result)
            }
        }
    }

    async fn run_line_magic(
        &mut self,
        magic: LineMagic,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        match magic {
            LineMagic::LsMagic => Ok(page(&magic::lsmagic_text())),
            LineMagic::Help { topic: None } => Ok(page(&format!(
                "{}\nUse %help TOPIC for one magic, or %help selection.\n",
                magic::lsmagic_text()
            ))),
            LineMagic::Help { topic: Some(topic) } => match magic::help_text(&topic) {
                Some(text) => Ok(page(&text)),
                None => Err(ErrorInfo::new(
                    "MagicError",
                    format!(
                        "%help: no help on `{topic}`; topics: {}",
                        magic::help_topics().join(", ")
                    ),
                )),
            },
            LineMagic::Assets => {
                self.sync_schedules(out).await;
                self.assets_magic(out)
            }
            LineMagic::Graph { selection } => self.graph_magic(selection, out),
            LineMagic::Materialize(args) => self.materialize(args, out).await,
            LineMagic::Load { name, partition } => {
                self.sync_schedules(out).await;
                self.load_magic(&name, partition.as_deref(), out).await
            }
            LineMagic::Runs { run } => {
                self.sync_schedules(out).await;
                match run {
                    None => self.runs_magic(out),
                    Some(run) => self.run_report_magic(run, out),
                }
            }
            LineMagic::History { name } => {
                self.sync_schedules(out).await;
                self.history_magic(&name, out)
            }
            LineMagic::Log(args) => self.log_magic(args, out).await,
            LineMagic::Config { settings } => self.config_magic(settings, out),
            LineMagic::Attach { run } => self.attach_magic(run, out).await,
            LineMagic::Cancel { run } => self.cancel_magic(run, out).await,
            LineMagic::Lint => self.lint_magic(out).await,
            LineMagic::Export { dir } => self.export_magic(&dir, out).await,
        }
    }
}

/// Pager content (JupyterLab opens it in the pager / help panel).
fn page(text: &str) -> CellResult {
    let payload: Value = json!({
        "source": "page",
        "data": protocol::text_bundle(text),
        "start": 0,
    });
    CellResult {
        value: None,
        payload: vec![payload],
    }
}
