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
    pub(super) async fn run_magics(&mut self, code: &str, out: &CellOutput<'_>) -> Result<CellResult, ErrorInfo> {
        let cell = syntax::parse_cell(code).map_err(|e| ErrorInfo::new("MagicError", e.to_string()))?;
        let segments = match cell {
            Cell::Code(segments) => segments,
            Cell::Asset(_) | Cell::Check(_) => {
                return Err(ErrorInfo::new(
                    "MagicError",
                    "%%asset and %%check cells are not supported by this build yet",
                ))
            }
        };
        let mut result = CellResult {
            value: None,
            payload: Vec::new(),
        };
        for segment in segments {
            match segment {
                Segment::Rust { code, .. } => {
                    let r = self.run_rust(&code, out, false).await?;
                    result.value = r.value;
                }
                Segment::Magic { magic, .. } => {
                    let r = self.run_line_magic(magic, out).await?;
                    result.payload.extend(r.payload);
                    result.value = r.value;
                }
            }
        }
        Ok(result)
    }

    async fn run_line_magic(&mut self, magic: LineMagic, _out: &CellOutput<'_>) -> Result<CellResult, ErrorInfo> {
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
            other => Err(ErrorInfo::new(
                "MagicError",
                format!("{other:?} is not supported by this build yet"),
            )),
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
