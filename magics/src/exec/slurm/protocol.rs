//! The job protocol: what a running job tells the watcher besides its
//! output, as typed events.
//!
//! * [`BundleEvent`]: a stdout line `\u{1e}SLURMBOOK {json}` written by the
//!   job binary (`crate::bundle`): `metadata`, `materialized`, `failed`,
//!   `display`. [`parse_bundle_line`] turns the JSON into one.
//! * [`StepLine`]: a line of a grouped job's `<run>/<allocation>.steps`
//!   file, written by the driver script (see [`super::driver`]):
//!   `start <asset> <node> <time>`, `end <asset> <code> <time>`,
//!   `skip <asset> <upstream>`. [`StepStatus`] is what the lines say about
//!   one asset.
//!
//! A leaf: it imports nothing else of the crate.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A stdout line starting with this, then JSON, is the bundle's event protocol.
pub const PROTOCOL_PREFIX: &[u8] = "\u{1e}SLURMBOOK ".as_bytes();

/// An event of the job binary (the JSON after [`PROTOCOL_PREFIX`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BundleEvent {
    /// User metadata (objects are merged with what came before).
    Metadata {
        #[serde(default)]
        metadata: serde_json::Value,
    },
    /// The value was written: its size.
    Materialized {
        #[serde(default)]
        bytes: u64,
    },
    /// The asset's own error.
    Failed {
        #[serde(default = "failed_text")]
        error: String,
    },
    /// A rich display (mime type -> content).
    Display {
        data: serde_json::Map<String, serde_json::Value>,
    },
    /// An event this version does not know (ignored).
    #[serde(other)]
    Unknown,
}

fn failed_text() -> String {
    "failed".into()
}

/// What a protocol line held.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolLine {
    Event(BundleEvent),
    /// JSON, but not an event of this protocol (ignored; the text says why).
    Ignored(String),
    /// Not JSON: shown as output, it was not meant for the watcher.
    NotJson,
}

/// Parse the JSON of a protocol line.
pub fn parse_bundle_line(json: &str) -> ProtocolLine {
    let value: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(_) => return ProtocolLine::NotJson,
    };
    let name = value
        .get("event")
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_string();
    match BundleEvent::deserialize(value) {
        Ok(BundleEvent::Unknown) => ProtocolLine::Ignored(format!("unknown event `{name}`")),
        Ok(e) => ProtocolLine::Event(e),
        Err(e) => ProtocolLine::Ignored(format!("event `{name}`: {e}")),
    }
}

/// A status line of a `.steps` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StepLine {
    Start {
        asset: String,
        node: String,
        at: f64,
    },
    End {
        asset: String,
        code: i32,
        at: f64,
    },
    Skip {
        asset: String,
        upstream: String,
    },
}

impl StepLine {
    /// One line as the driver script writes it; `None` for anything else.
    pub fn parse(line: &str) -> Option<StepLine> {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["start", a, node, at] => Some(StepLine::Start {
                asset: a.to_string(),
                node: node.to_string(),
                at: at.parse().ok()?,
            }),
            ["end", a, code, at] => Some(StepLine::End {
                asset: a.to_string(),
                code: code.parse().ok()?,
                at: at.parse().ok()?,
            }),
            ["skip", a, up] => Some(StepLine::Skip {
                asset: a.to_string(),
                upstream: up.to_string(),
            }),
            _ => None,
        }
    }

    /// The asset the line is about.
    pub fn asset(&self) -> &str {
        match self {
            StepLine::Start { asset, .. }
            | StepLine::End { asset, .. }
            | StepLine::Skip { asset, .. } => asset,
        }
    }
}

impl fmt::Display for StepLine {
    /// The line as the driver script writes it (without the newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepLine::Start { asset, node, at } => write!(f, "start {asset} {node} {at}"),
            StepLine::End { asset, code, at } => write!(f, "end {asset} {code} {at}"),
            StepLine::Skip { asset, upstream } => write!(f, "skip {asset} {upstream}"),
        }
    }
}

/// What the `.steps` file says about one asset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepStatus {
    pub node: Option<String>,
    pub started: Option<f64>,
    pub ended: Option<(i32, f64)>,
    pub skipped_because: Option<String>,
}

impl StepStatus {
    pub fn apply(map: &mut HashMap<String, StepStatus>, line: &StepLine) {
        match line {
            StepLine::Start { asset, node, at } => {
                let s = map.entry(asset.clone()).or_default();
                s.node = Some(node.clone());
                s.started = Some(*at);
            }
            StepLine::End { asset, code, at } => {
                map.entry(asset.clone()).or_default().ended = Some((*code, *at));
            }
            StepLine::Skip { asset, upstream } => {
                map.entry(asset.clone()).or_default().skipped_because = Some(upstream.clone());
            }
        }
    }

    pub fn elapsed_ms(&self) -> Option<u64> {
        let (s, (_, e)) = (self.started?, self.ended?);
        Some(((e - s).max(0.0) * 1000.0).round() as u64)
    }
}

/// `<run>/<allocation>.steps`.
pub fn steps_file(run_dir: &str, allocation: &str) -> String {
    format!("{}/{allocation}.steps", run_dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let mut m = HashMap::new();
        for l in [
            "start a vm 1795566113.198467870",
            "end a 3 1795566115.7",
            "skip b a",
            "garbage",
        ] {
            if let Some(x) = StepLine::parse(l) {
                StepStatus::apply(&mut m, &x);
            }
        }
        assert_eq!(m["a"].node.as_deref(), Some("vm"));
        assert_eq!(m["a"].ended.map(|e| e.0), Some(3));
        assert_eq!(m["a"].elapsed_ms(), Some(2502));
        assert_eq!(m["b"].skipped_because.as_deref(), Some("a"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn step_lines_print_as_parsed() {
        for l in [
            "start a vm 1795566113.5",
            "end a 3 1795566115.7",
            "skip b a",
        ] {
            assert_eq!(StepLine::parse(l).unwrap().to_string(), l);
        }
    }

    #[test]
    fn bundle_events_are_typed() {
        assert_eq!(
            parse_bundle_line(r#"{"event":"materialized","bytes":3,"elapsed_ms":5}"#),
            ProtocolLine::Event(BundleEvent::Materialized { bytes: 3 })
        );
        assert_eq!(
            parse_bundle_line(r#"{"event":"failed"}"#),
            ProtocolLine::Event(BundleEvent::Failed {
                error: "failed".into()
            })
        );
        assert_eq!(
            parse_bundle_line(r#"{"event":"metadata","metadata":{"rows":3}}"#),
            ProtocolLine::Event(BundleEvent::Metadata {
                metadata: serde_json::json!({"rows": 3})
            })
        );
        let ProtocolLine::Event(BundleEvent::Display { data }) =
            parse_bundle_line(r#"{"event":"display","data":{"text/plain":"x"}}"#)
        else {
            panic!("a display event")
        };
        assert_eq!(data["text/plain"], "x");
        assert!(matches!(
            parse_bundle_line(r#"{"event":"display","data":"x"}"#),
            ProtocolLine::Ignored(_)
        ));
        assert!(matches!(
            parse_bundle_line(r#"{"event":"progress","at":1}"#),
            ProtocolLine::Ignored(_)
        ));
        assert!(matches!(
            parse_bundle_line(r#"{"no":"event"}"#),
            ProtocolLine::Ignored(_)
        ));
        assert_eq!(parse_bundle_line("not json"), ProtocolLine::NotJson);
    }
}
