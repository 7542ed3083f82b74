//! The job protocol: what a running job tells the watcher besides its
//! output, as typed events.
//!
//! * [`BundleEvent`]: a stdout line `\u{1e}SLURMBOOK {json}` written by the
//!   job binary (`crate::bundle`): `metadata`, `materialized`, `failed`,
//!   `display`, `usage` (its own measurement of itself, [`JobUsage`]).
//!   [`parse_bundle_line`] turns the JSON into one.
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
    /// What the job used, measured by itself (sent before `materialized`
    /// or `failed`).
    Usage(JobUsage),
    /// A requeued job starts again from scratch: written by its batch
    /// script (`sb_attempt`, see the submit module) before anything else
    /// of attempt `restart + 1`, after the output of the attempts before it.
    Attempt {
        #[serde(default)]
        restart: u32,
    },
    /// An event this version does not know (ignored).
    #[serde(other)]
    Unknown,
}

/// The job binary's measurement of itself: `getrusage` of itself
/// (`RUSAGE_SELF`) and of its waited-for children (`RUSAGE_CHILDREN`),
/// and its wall time. What a cluster without accounting knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobUsage {
    /// Wall time of the computation.
    #[serde(default)]
    pub wall_ms: u64,
    /// User CPU time of itself and its children.
    #[serde(default)]
    pub user_ms: u64,
    /// System CPU time of itself and its children.
    #[serde(default)]
    pub sys_ms: u64,
    /// Peak resident memory of itself or its largest child, KiB (Linux
    /// `ru_maxrss`); `None` where the OS does not say.
    #[serde(default)]
    pub max_rss_kb: Option<u64>,
    /// Unix times (seconds) the computation started and ended.
    #[serde(default)]
    pub started_at: Option<f64>,
    #[serde(default)]
    pub ended_at: Option<f64>,
    /// CPUs it was given (`SLURM_CPUS_PER_TASK`, `SLURM_CPUS_ON_NODE`).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// GPUs it was given (`SLURM_GPUS_ON_NODE`).
    #[serde(default)]
    pub gpus: Option<u32>,
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
                // Started again (its allocation was requeued): what an
                // earlier attempt reported is over.
                let s = map.entry(asset.clone()).or_default();
                s.node = Some(node.clone());
                s.started = Some(*at);
                s.ended = None;
                s.skipped_because = None;
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
        assert_eq!(
            parse_bundle_line(
                r#"{"event":"usage","wall_ms":1200,"user_ms":900,"sys_ms":100,"max_rss_kb":204800,"started_at":1795566113.5,"ended_at":1795566114.7,"cpus":2}"#
            ),
            ProtocolLine::Event(BundleEvent::Usage(JobUsage {
                wall_ms: 1200,
                user_ms: 900,
                sys_ms: 100,
                max_rss_kb: Some(204800),
                started_at: Some(1795566113.5),
                ended_at: Some(1795566114.7),
                cpus: Some(2),
                gpus: None,
            }))
        );
        // Fields a later version adds are ignored; missing ones default.
        assert!(matches!(
            parse_bundle_line(r#"{"event":"usage","wall_ms":5,"energy_j":3}"#),
            ProtocolLine::Event(BundleEvent::Usage(JobUsage {
                wall_ms: 5,
                max_rss_kb: None,
                ..
            }))
        ));
    }
}
