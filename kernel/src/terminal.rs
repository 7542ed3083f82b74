//! Events of a run rendered on a terminal: the plan, asset output as lines
//! prefixed by the asset above a progress bar (no bar without a terminal),
//! each asset's end, the summary.

use indicatif::{ProgressBar, ProgressStyle};
use slurmbook_magics::draw::table;
use slurmbook_magics::events::{AssetState, Emit, Event, Stream};
use slurmbook_magics::model::{Hint, Usage};
use slurmbook_magics::usage::views::final_status_table;
use std::collections::HashMap;
use std::sync::Mutex;

/// The assets that ended, in order, and what each used (with its hints).
type Ended = (
    Vec<(String, AssetState)>,
    HashMap<String, (Usage, Vec<Hint>)>,
);

/// Renders events on a terminal: asset output as prefixed lines above a progress bar.
pub struct TerminalEvents {
    bar: ProgressBar,
    /// Without a terminal there is no bar: lines go straight to stdout.
    tty: bool,
    line_start: Mutex<HashMap<(String, bool), bool>>,
    /// Each asset's last state, and what it used (printed at the end).
    ended: Mutex<Ended>,
}

impl TerminalEvents {
    pub fn new(steps: usize) -> TerminalEvents {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let tty = console_is_tty();
        if !tty {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        TerminalEvents {
            bar,
            tty,
            line_start: Mutex::new(HashMap::new()),
            ended: Mutex::default(),
        }
    }

    pub fn say(&self, line: impl AsRef<str>) {
        if self.tty {
            self.bar.println(line.as_ref());
        } else {
            println!("{}", line.as_ref());
        }
    }
}

impl Emit for TerminalEvents {
    fn emit(&self, event: Event) {
        match event {
            Event::Planned { plan } => {
                self.say(plan.text().trim_end());
                self.bar.set_length(plan.runs().count() as u64);
            }
            Event::State { asset, state } => match &state {
                AssetState::Running { .. } => self.bar.set_message(asset),
                AssetState::Queued { .. } | AssetState::Fresh => {}
                _ => {
                    self.say(format!("{asset:>20}  {}", state.describe()));
                    self.bar.inc(1);
                    self.ended.lock().unwrap().0.push((asset, state.clone()));
                }
            },
            Event::Output {
                asset,
                stream,
                text,
            } => {
                let mut starts = self.line_start.lock().unwrap();
                let start = starts
                    .entry((asset.clone(), stream == Stream::Stderr))
                    .or_insert(true);
                let text = crate::render::prefix_lines(&asset, &text, start);
                for line in text.lines() {
                    self.say(line);
                }
            }
            Event::Display { asset, data } => {
                let text = data
                    .get("text/plain")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!(
                            "(display: {})",
                            data.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    });
                self.say(format!("[{asset}] {text}"));
            }
            Event::Metadata { .. } => {}
            Event::Notice { text } => self.say(text),
            Event::Usage {
                asset,
                usage,
                hints,
            } => {
                self.ended.lock().unwrap().1.insert(asset, (usage, hints));
            }
            Event::Check {
                asset,
                check,
                passed,
                message,
            } => self.say(match passed {
                true => format!("{asset:>20}  check {check} passed"),
                false => format!(
                    "{asset:>20}  check {check} FAILED: {}",
                    message.unwrap_or_default()
                ),
            }),
            Event::Finished { summary } => {
                self.bar.finish_and_clear();
                let ended = self.ended.lock().unwrap();
                if !ended.1.is_empty() {
                    print!("{}", table::text(&final_status_table(&ended.0, &ended.1)));
                }
                println!("{}", summary.line());
            }
        }
    }
}

fn console_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
