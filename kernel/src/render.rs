//! Events of a run rendered as Jupyter outputs: the plan, a live status table
//! (one `display_data` with a `display_id`, then `update_display_data`),
//! asset output as `stream` lines prefixed by the asset, rich displays.

use crate::handlers::render::CellOutput;
use crate::protocol::MimeBundle;
use serde_json::Value;
use slurmbook_magics::draw::table::{self, Table};
use slurmbook_magics::events::{AssetState, Emit, Event, RunSummary, Stream};
use slurmbook_magics::model::{Hint, Usage};
use slurmbook_magics::usage::views::final_status_table;
use slurmbook_magics::views::status_table;
use std::collections::HashMap;
use std::sync::Mutex;

/// A text/plain + text/html bundle of a table.
pub fn table_bundle(table: &Table) -> MimeBundle {
    let mut data = MimeBundle::new();
    data.insert("text/plain".into(), Value::String(table::text(table)));
    data.insert("text/html".into(), Value::String(table::html(table)));
    data
}

pub struct JupyterEvents<'a> {
    out: &'a CellOutput<'a>,
    state: Mutex<RenderState>,
}

#[derive(Default)]
struct RenderState {
    display_id: String,
    rows: Vec<(String, AssetState)>,
    /// Per asset and stream: does the next text start a line?
    at_line_start: HashMap<(String, bool), bool>,
    summary: Option<RunSummary>,
    /// Failures to report as the cell's error: (asset, message).
    failures: Vec<(String, String)>,
    /// What each asset used, and its right-sizing hints (the final table).
    usage: HashMap<String, (Usage, Vec<Hint>)>,
}

impl<'a> JupyterEvents<'a> {
    pub fn new(out: &'a CellOutput<'a>) -> Self {
        JupyterEvents {
            out,
            state: Mutex::new(RenderState {
                display_id: format!("slurmbook-run-{}", uuid::Uuid::new_v4()),
                ..RenderState::default()
            }),
        }
    }

    pub fn summary(&self) -> Option<RunSummary> {
        self.state.lock().unwrap().summary.clone()
    }

    pub fn failures(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().failures.clone()
    }
}

/// Prefixes every line start in `text` with `[asset] `.
pub fn prefix_lines(asset: &str, text: &str, at_line_start: &mut bool) -> String {
    let mut out = String::with_capacity(text.len() + asset.len() + 3);
    for piece in text.split_inclusive('\n') {
        if *at_line_start {
            out.push('[');
            out.push_str(asset);
            out.push_str("] ");
        }
        out.push_str(piece);
        *at_line_start = piece.ends_with('\n');
    }
    out
}

impl Emit for JupyterEvents<'_> {
    fn emit(&self, event: Event) {
        let mut s = self.state.lock().unwrap();
        match event {
            Event::Planned { plan } => {
                s.rows = plan
                    .steps
                    .iter()
                    .map(|step| {
                        let state = match step.action {
                            slurmbook_magics::plan::Action::Skip => AssetState::Fresh,
                            slurmbook_magics::plan::Action::Refused => AssetState::Skipped {
                                because: step.why.clone(),
                            },
                            slurmbook_magics::plan::Action::Run => AssetState::queued(None),
                        };
                        (step.asset.clone(), state)
                    })
                    .collect();
                self.out.stream("stdout", &plan.text());
                self.out
                    .display(table_bundle(&status_table(&s.rows)), Some(&s.display_id));
            }
            Event::State { asset, state } => {
                if let AssetState::Failed { error } = &state {
                    s.failures.push((asset.clone(), error.clone()));
                }
                match s.rows.iter_mut().find(|(a, _)| *a == asset) {
                    Some(row) => row.1 = state,
                    None => s.rows.push((asset, state)),
                }
                self.out
                    .update_display(table_bundle(&status_table(&s.rows)), &s.display_id);
            }
            Event::Output {
                asset,
                stream,
                text,
            } => {
                let stderr = stream == Stream::Stderr;
                let start = s
                    .at_line_start
                    .entry((asset.clone(), stderr))
                    .or_insert(true);
                let text = prefix_lines(&asset, &text, start);
                self.out
                    .stream(if stderr { "stderr" } else { "stdout" }, &text);
            }
            Event::Display { data, .. } => self.out.display(data.into_iter().collect(), None),
            Event::Metadata { .. } => {}
            Event::Notice { text } => self.out.stream("stderr", &format!("{text}\n")),
            Event::Usage {
                asset,
                usage,
                hints,
            } => {
                s.usage.insert(asset, (usage, hints));
            }
            Event::Check {
                asset,
                check,
                passed,
                message,
            } => {
                let line = match (passed, message) {
                    (true, _) => format!("[{asset}] check {check} passed\n"),
                    (false, m) => format!(
                        "[{asset}] check {check} FAILED: {}\n",
                        m.unwrap_or_default()
                    ),
                };
                self.out
                    .stream(if passed { "stdout" } else { "stderr" }, &line);
                if !passed {
                    s.failures.push((asset, format!("check {check} failed")));
                }
            }
            Event::Finished { summary } => {
                let table = final_status_table(&s.rows, &s.usage);
                self.out.update_display(table_bundle(&table), &s.display_id);
                self.out.stream("stdout", &format!("{}\n", summary.line()));
                s.summary = Some(summary);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_each_line_once() {
        let mut start = true;
        assert_eq!(prefix_lines("a", "x\ny", &mut start), "[a] x\n[a] y");
        assert!(!start);
        assert_eq!(prefix_lines("a", "z\n", &mut start), "z\n");
        assert!(start);
    }
}
