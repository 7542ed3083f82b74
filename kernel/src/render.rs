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

/// The most output of one asset (stdout and stderr together) a cell shows
/// in one run; the rest is counted, and `%log NAME` has all of it. Keeps a
/// job printing megabytes from freezing the notebook or bloating the file.
pub const OUTPUT_LIMIT: usize = 1 << 20;

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
    /// Per asset: bytes of output shown, and bytes held back over the limit.
    shown: HashMap<String, usize>,
    trimmed: HashMap<String, usize>,
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

/// The part of `text` that fits under [`OUTPUT_LIMIT`] after `shown`
/// bytes (whole lines when there is a line end in it, else cut at a
/// character boundary), and how many bytes are held back.
fn within_limit(text: &str, shown: usize) -> (&str, usize) {
    let room = OUTPUT_LIMIT.saturating_sub(shown);
    if text.len() <= room {
        return (text, 0);
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(end) = text[..cut].rfind('\n') {
        cut = end + 1;
    }
    (&text[..cut], text.len() - cut)
}

/// Whether `asset` runs (ran) in the kernel rather than in a Slurm job.
fn in_kernel(rows: &[(String, AssetState)], asset: &str) -> bool {
    rows.iter().any(|(a, state)| {
        a == asset
            && matches!(state, AssetState::Running { location } | AssetState::Done { location, .. }
                if location == "kernel")
    })
}

/// `1.0 MiB`, `512 KiB`, `12 B`.
fn bytes_text(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / (1 << 10) as f64),
        n => format!("{n} B"),
    }
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
                // Once output is held back, all that follows is too: the
                // cell shows a prefix of the output, never a gap.
                let shown = match s.trimmed.contains_key(&asset) {
                    true => OUTPUT_LIMIT,
                    false => s.shown.get(&asset).copied().unwrap_or(0),
                };
                let (text, held) = within_limit(&text, shown);
                if held > 0 {
                    let first = !s.trimmed.contains_key(&asset);
                    *s.trimmed.entry(asset.clone()).or_default() += held;
                    if first {
                        let rest = if in_kernel(&s.rows, &asset) {
                            "the rest is not shown (output in the kernel is not kept)"
                        } else {
                            "the rest is not shown here; `%log ASSET` has all of it"
                        };
                        self.out.stream(
                            "stderr",
                            &format!(
                                "\n[{asset}] ... more than {} of output: {}\n",
                                bytes_text(OUTPUT_LIMIT),
                                rest.replace("ASSET", &asset)
                            ),
                        );
                    }
                }
                if text.is_empty() {
                    return;
                }
                *s.shown.entry(asset.clone()).or_default() += text.len();
                let start = s
                    .at_line_start
                    .entry((asset.clone(), stderr))
                    .or_insert(true);
                let text = prefix_lines(&asset, text, start);
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
                if s.trimmed
                    .keys()
                    .any(|a| s.at_line_start.get(&(a.clone(), false)) == Some(&false))
                {
                    self.out.stream("stdout", "\n");
                }
                let mut trimmed: Vec<_> = s.trimmed.iter().collect();
                trimmed.sort();
                for (asset, held) in trimmed {
                    let all = if in_kernel(&s.rows, asset) {
                        String::new()
                    } else {
                        format!("; `%log {asset}` copies all of it here")
                    };
                    self.out.stream(
                        "stdout",
                        &format!(
                            "output of {asset}: {} not shown in this cell (over {}){all}\n",
                            bytes_text(*held),
                            bytes_text(OUTPUT_LIMIT)
                        ),
                    );
                }
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
    fn output_over_the_limit_is_cut_at_a_character_boundary() {
        assert_eq!(within_limit("abc", 0), ("abc", 0));
        assert_eq!(within_limit("abc", OUTPUT_LIMIT - 2), ("ab", 1));
        assert_eq!(within_limit("a\nbc", OUTPUT_LIMIT - 3), ("a\n", 2));
        assert_eq!(within_limit("abc", OUTPUT_LIMIT), ("", 3));
        // `é` is two bytes: not split.
        assert_eq!(within_limit("aé", OUTPUT_LIMIT - 2), ("a", 2));
        assert_eq!(bytes_text(OUTPUT_LIMIT), "1.0 MiB");
        assert_eq!(bytes_text(3 << 10), "3 KiB");
    }

    #[test]
    fn prefixes_each_line_once() {
        let mut start = true;
        assert_eq!(prefix_lines("a", "x\ny", &mut start), "[a] x\n[a] y");
        assert!(!start);
        assert_eq!(prefix_lines("a", "z\n", &mut start), "z\n");
        assert!(start);
    }
}
