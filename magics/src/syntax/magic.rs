//! Line magics (`%name args`): parsing into [`LineMagic`], names and help.
//!
//! Parsing is all-or-nothing: an unknown magic or a bad argument gives one
//! [`MagicError`] that lists what is valid, and no partial command.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::args::{split_words, Word};
use super::asset::{asset_help, ASSET_USAGE, CHECK_USAGE};
use super::options::{describe_options, scan_options, OptionInfo};
use super::selection::{parse_selection_at, Selection};
use crate::model::is_identifier;
use crate::model::{is_simple_name, JobGrouping, RunId, Target};

/// Arguments of `%materialize`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterializeArgs {
    /// `None`: every asset.
    pub selection: Option<Selection>,
    pub target: Option<Target>,
    pub profile: Option<String>,
    pub force: bool,
    pub dry_run: bool,
    pub jobs: Option<JobGrouping>,
    /// Pack the job environment afresh and unpack it again on the cluster.
    #[serde(default)]
    pub repack: bool,
}

/// A parsed line magic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "magic")]
pub enum LineMagic {
    Assets,
    Graph {
        selection: Option<Selection>,
    },
    Materialize(MaterializeArgs),
    Load {
        name: String,
    },
    Runs,
    Attach {
        run: Option<RunId>,
    },
    Cancel {
        run: Option<RunId>,
    },
    /// `%config` with no settings shows the configuration.
    Config {
        settings: Vec<(String, String)>,
    },
    LsMagic,
    Help {
        topic: Option<String>,
    },
}

/// Name, usage, one-line summary and options of a line magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MagicInfo {
    pub name: &'static str,
    pub usage: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptionInfo],
}

const MATERIALIZE_OPTIONS: &[OptionInfo] = &[
    OptionInfo {
        name: "target",
        value: Some("local|slurm"),
        help: "run everything locally or on Slurm",
    },
    OptionInfo {
        name: "profile",
        value: Some("PROFILE"),
        help: "profile from slurmbook.toml",
    },
    OptionInfo {
        name: "force",
        value: None,
        help: "also run assets that are fresh",
    },
    OptionInfo {
        name: "dry-run",
        value: None,
        help: "show the plan without running it",
    },
    OptionInfo {
        name: "jobs",
        value: Some("per-asset|grouped"),
        help: "Slurm jobs: grouped (compatible assets share one allocation as srun steps; the default) or per-asset (one job each, chained with afterok)",
    },
    OptionInfo {
        name: "repack",
        value: None,
        help: "pack the jobs' pixi environment afresh and unpack it again on the cluster",
    },
];

/// Every line magic, in `%lsmagic` order.
pub const LINE_MAGICS: &[MagicInfo] = &[
    MagicInfo { name: "assets", usage: "%assets", summary: "table of the notebook's assets: dependencies, state (fresh/stale/missing/running/failed), last materialization, where", options: &[] },
    MagicInfo { name: "graph", usage: "%graph [SELECTION]", summary: "draw the asset graph (or a selection of it)", options: &[] },
    MagicInfo { name: "materialize", usage: "%materialize [SELECTION] [--target local|slurm] [--profile P] [--force] [--dry-run] [--jobs per-asset|grouped] [--repack]", summary: "materialize the selected assets (all by default), skipping fresh ones unless --force", options: MATERIALIZE_OPTIONS },
    MagicInfo { name: "load", usage: "%load NAME", summary: "bring a materialized asset's value into the session", options: &[] },
    MagicInfo { name: "runs", usage: "%runs", summary: "list recent runs", options: &[] },
    MagicInfo { name: "attach", usage: "%attach [RUN]", summary: "follow a Slurm run again after a kernel restart, from where its output stopped (the newest run in progress by default)", options: &[] },
    MagicInfo { name: "cancel", usage: "%cancel [RUN]", summary: "cancel a Slurm run's jobs (the newest run in progress by default)", options: &[] },
    MagicInfo { name: "config", usage: "%config [KEY=VALUE ...]", summary: "show or change the configuration", options: &[] },
    MagicInfo { name: "lsmagic", usage: "%lsmagic", summary: "list the magics", options: &[] },
    MagicInfo { name: "help", usage: "%help [TOPIC]", summary: "help on a magic, `asset`, `check` or `selection`", options: &[] },
];

/// Cell magics (first line of a cell).
pub const CELL_MAGICS: &[(&str, &str, &str)] = &[
    (
        "asset",
        ASSET_USAGE,
        "declare the cell as an asset; its value is the final expression",
    ),
    (
        "check",
        CHECK_USAGE,
        "an asset check: the body evaluates to bool or Result",
    ),
];

/// Names of the line magics, without `%` (for completion and `%lsmagic`).
pub fn magic_names() -> Vec<&'static str> {
    LINE_MAGICS.iter().map(|m| m.name).collect()
}

/// Names of the cell magics, without `%%`.
pub fn cell_magic_names() -> Vec<&'static str> {
    CELL_MAGICS.iter().map(|m| m.0).collect()
}

/// The line magic called `name` (without `%`).
pub fn magic_info(name: &str) -> Option<&'static MagicInfo> {
    LINE_MAGICS.iter().find(|m| m.name == name)
}

/// Topics `%help` knows.
pub fn help_topics() -> Vec<&'static str> {
    let mut t = magic_names();
    t.extend(cell_magic_names());
    t.push("selection");
    t
}

const SELECTION_HELP: &str = "Selections (for %graph and %materialize):\n  \
NAME        the asset\n  +NAME       the asset and everything upstream\n  \
NAME+       the asset and everything downstream\n  N+NAME      N layers upstream (NAME+N: downstream)\n  \
*           every asset\n  group:G     assets in group G\n  tag:K=V     assets tagged K=V (tag:K: any value)\n  \
stale       assets whose code or upstreams changed since their last success\n  \
combine with `,` (union), and, or, not and parentheses; e.g. `+summary and not group:slow`\n";

/// The help text for a topic (a magic name with or without `%`/`%%`, or `selection`).
pub fn help_text(topic: &str) -> Option<String> {
    let topic = topic.trim_start_matches('%');
    if let Some(m) = magic_info(topic) {
        let mut s = format!("{}\n  {}\n", m.usage, m.summary);
        if !m.options.is_empty() {
            s.push_str("  options:\n");
            for o in m.options {
                let left = match o.value {
                    Some(v) => format!("--{} {v}", o.name),
                    None => format!("--{}", o.name),
                };
                s.push_str(&format!("    {left:<28} {}\n", o.help));
            }
        }
        if matches!(topic, "graph" | "materialize") {
            s.push('\n');
            s.push_str(SELECTION_HELP);
        }
        return Some(s);
    }
    match topic {
        "asset" => Some(asset_help()),
        "check" => Some(format!(
            "{CHECK_USAGE}\n  An asset check: the body evaluates to bool or Result; a failing check blocks the asset's dependents in that run.\n"
        )),
        "selection" => Some(SELECTION_HELP.to_string()),
        _ => None,
    }
}

/// The `%lsmagic` listing.
pub fn lsmagic_text() -> String {
    let mut s = String::from("Line magics:\n");
    for m in LINE_MAGICS {
        s.push_str(&format!("  %{:<12} {}\n", m.name, m.summary));
    }
    s.push_str("Cell magics (first line of a cell):\n");
    for (name, _, summary) in CELL_MAGICS {
        s.push_str(&format!("  %%{:<11} {summary}\n", name));
    }
    s
}

/// An unknown magic or bad arguments. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MagicError {
    #[error("unknown magic `%{name}`; valid magics: {valid}")]
    Unknown { name: String, valid: String },
    #[error("unknown cell magic `%%{name}`; valid cell magics: %%asset, %%check (`%%` is only valid on a cell's first line)")]
    UnknownCell { name: String },
    #[error("%{magic}: {message}; usage: {usage}")]
    BadArgs {
        magic: &'static str,
        message: String,
        usage: &'static str,
    },
}

fn all_magics_text() -> String {
    LINE_MAGICS
        .iter()
        .map(|m| format!("%{}", m.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse a line magic. `line` starts with `%` (leading whitespace allowed, a
/// trailing newline ignored).
pub fn parse_line_magic(line: &str) -> Result<LineMagic, MagicError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let indent = line.chars().take_while(|c| c.is_whitespace()).count();
    let rest = line.trim_start();
    let Some(body) = rest.strip_prefix('%') else {
        return Err(MagicError::Unknown {
            name: rest.split_whitespace().next().unwrap_or("").to_string(),
            valid: all_magics_text(),
        });
    };
    if let Some(cell) = body.strip_prefix('%') {
        return Err(MagicError::UnknownCell {
            name: cell.split_whitespace().next().unwrap_or("").to_string(),
        });
    }
    let name_len = body.find(char::is_whitespace).unwrap_or(body.len());
    let name = &body[..name_len];
    let args = &body[name_len..];
    let args_column = indent + 2 + name.chars().count();
    let Some(info) = magic_info(name) else {
        return Err(MagicError::Unknown {
            name: name.to_string(),
            valid: all_magics_text(),
        });
    };
    let bad = |message: String| MagicError::BadArgs {
        magic: info.name,
        message,
        usage: info.usage,
    };
    let words = split_words(args, args_column).map_err(|e| bad(e.to_string()))?;
    let no_options = |words: &[Word]| -> Result<(), MagicError> {
        match words
            .iter()
            .find(|w| w.text.starts_with('-') && w.text.len() > 1)
        {
            Some(w) => Err(bad(format!(
                "unknown option `{}` at column {}; `%{}` takes no options",
                w.text, w.column, info.name
            ))),
            None => Ok(()),
        }
    };
    let at_most = |words: &[Word], n: usize, what: &str| -> Result<(), MagicError> {
        match words.get(n) {
            Some(w) => Err(bad(format!(
                "unexpected argument `{}` at column {}; expected {what}",
                w.text, w.column
            ))),
            None => Ok(()),
        }
    };
    let run_id = |words: &[Word]| -> Result<Option<RunId>, MagicError> {
        no_options(words)?;
        at_most(words, 1, "at most one run id")?;
        words
            .first()
            .map(|w| {
                w.text
                    .parse::<RunId>()
                    .ok()
                    .filter(|id| *id >= 1 && w.text.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        bad(format!(
                            "`{}` at column {} is not a run id (a number from %runs)",
                            w.text, w.column
                        ))
                    })
            })
            .transpose()
    };
    let selection = |words: &[&Word]| -> Result<Option<Selection>, MagicError> {
        let (Some(first), Some(last)) = (words.first(), words.last()) else {
            return Ok(None);
        };
        // Parse the original text when the words are contiguous so columns are exact.
        let start = first.column - args_column;
        let end = last.column - args_column + last.text.chars().count();
        let original: String = args.chars().skip(start).take(end - start).collect();
        let joined = words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let text = if original.split_whitespace().collect::<Vec<_>>().join(" ") == joined {
            original
        } else {
            joined
        };
        parse_selection_at(&text, first.column)
            .map(Some)
            .map_err(|e| bad(format!("bad selection: {e}")))
    };
    Ok(match info.name {
        "assets" | "runs" | "lsmagic" => {
            no_options(&words)?;
            at_most(&words, 0, "no arguments")?;
            match info.name {
                "assets" => LineMagic::Assets,
                "runs" => LineMagic::Runs,
                _ => LineMagic::LsMagic,
            }
        }
        "graph" => {
            no_options(&words)?;
            LineMagic::Graph {
                selection: selection(&words.iter().collect::<Vec<_>>())?,
            }
        }
        "materialize" => {
            let mut positional: Vec<&Word> = Vec::new();
            let mut positional_idx = Vec::new();
            let raw = scan_options(&words, MATERIALIZE_OPTIONS, |w| {
                positional_idx.push(w.column);
                Ok(())
            })
            .map_err(|e| bad(e.to_string()))?;
            for w in &words {
                if positional_idx.contains(&w.column) {
                    positional.push(w);
                }
            }
            let mut args = MaterializeArgs {
                selection: selection(&positional)?,
                ..MaterializeArgs::default()
            };
            let mut seen: Vec<&str> = Vec::new();
            for r in &raw {
                if seen.contains(&r.name.as_str()) {
                    return Err(bad(format!(
                        "option `--{}` given twice (column {})",
                        r.name, r.column
                    )));
                }
                seen.push(&r.name);
                let value = r.value.as_deref().unwrap_or("");
                let invalid = |expected: &str| {
                    bad(format!(
                        "invalid value {value:?} for `--{}` at column {}: expected {expected}",
                        r.name, r.value_column
                    ))
                };
                let flag = |v: Option<&str>| match v {
                    None | Some("true") => Ok(true),
                    Some("false") => Ok(false),
                    Some(_) => Err(invalid("no value (or `true`/`false`)")),
                };
                match r.name.as_str() {
                    "target" => args.target = Some(value.parse().map_err(|e: String| invalid(&e))?),
                    "profile" => {
                        if !is_simple_name(value) {
                            return Err(invalid("a profile name (letters, digits, `_`, `.`, `-`)"));
                        }
                        args.profile = Some(value.to_string());
                    }
                    "force" => args.force = flag(r.value.as_deref())?,
                    "dry-run" => args.dry_run = flag(r.value.as_deref())?,
                    "repack" => args.repack = flag(r.value.as_deref())?,
                    "jobs" => {
                        args.jobs = Some(match value {
                            "per-asset" => JobGrouping::PerAsset,
                            "grouped" => JobGrouping::Grouped,
                            _ => return Err(invalid("`per-asset` or `grouped`")),
                        })
                    }
                    other => unreachable!("materialize option table and match disagree on {other}"),
                }
            }
            LineMagic::Materialize(args)
        }
        "load" => {
            no_options(&words)?;
            at_most(&words, 1, "one asset name")?;
            let Some(w) = words.first() else {
                return Err(bad("missing the asset name".to_string()));
            };
            if !is_identifier(&w.text) {
                return Err(bad(format!(
                    "`{}` at column {} is not an asset name",
                    w.text, w.column
                )));
            }
            LineMagic::Load {
                name: w.text.clone(),
            }
        }
        "attach" => LineMagic::Attach {
            run: run_id(&words)?,
        },
        "cancel" => LineMagic::Cancel {
            run: run_id(&words)?,
        },
        "config" => {
            let mut settings = Vec::new();
            for w in &words {
                let Some((key, value)) = w.text.split_once('=') else {
                    return Err(bad(format!(
                        "`{}` at column {} is not KEY=VALUE",
                        w.text, w.column
                    )));
                };
                let key_ok = key.starts_with(|c: char| c.is_ascii_alphabetic())
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !key_ok {
                    return Err(bad(format!(
                        "`{key}` at column {} is not a configuration key (letters, digits, `_`, `.`, `-`)",
                        w.column
                    )));
                }
                if value.chars().any(char::is_control) {
                    return Err(bad(format!(
                        "the value of `{key}` contains control characters"
                    )));
                }
                settings.push((key.to_string(), value.to_string()));
            }
            LineMagic::Config { settings }
        }
        "help" => {
            no_options(&words)?;
            at_most(&words, 1, "one topic")?;
            let topic = words.first().map(|w| w.text.clone());
            if let Some(t) = &topic {
                if help_text(t).is_none() {
                    return Err(bad(format!(
                        "no help on `{t}`; topics: {}",
                        help_topics().join(", ")
                    )));
                }
            }
            LineMagic::Help { topic }
        }
        other => unreachable!("magic table and match disagree on {other}"),
    })
}

/// Options of `%materialize`, for completion.
pub fn materialize_options() -> String {
    describe_options(MATERIALIZE_OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::selection::Layers;

    fn ok(s: &str) -> LineMagic {
        parse_line_magic(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        parse_line_magic(s).expect_err(s).to_string()
    }

    #[test]
    fn simple_magics() {
        assert_eq!(ok("%assets"), LineMagic::Assets);
        assert_eq!(ok("%runs\n"), LineMagic::Runs);
        assert_eq!(ok("  %lsmagic  "), LineMagic::LsMagic);
        assert_eq!(ok("%graph"), LineMagic::Graph { selection: None });
        assert_eq!(
            ok("%graph +summary and not group:slow"),
            LineMagic::Graph {
                selection: Some("+summary and not group:slow".parse().unwrap())
            }
        );
        assert_eq!(
            ok("%load temperatures"),
            LineMagic::Load {
                name: "temperatures".into()
            }
        );
        assert_eq!(ok("%attach"), LineMagic::Attach { run: None });
        assert_eq!(ok("%attach 12"), LineMagic::Attach { run: Some(12) });
        assert_eq!(ok("%cancel 3"), LineMagic::Cancel { run: Some(3) });
        assert_eq!(ok("%cancel"), LineMagic::Cancel { run: None });
        assert_eq!(ok("%config"), LineMagic::Config { settings: vec![] });
        assert_eq!(
            ok("%config notebook=\"/tmp/my nb.ipynb\" profile=cluster"),
            LineMagic::Config {
                settings: vec![
                    ("notebook".into(), "/tmp/my nb.ipynb".into()),
                    ("profile".into(), "cluster".into())
                ]
            }
        );
        assert_eq!(ok("%help"), LineMagic::Help { topic: None });
        assert_eq!(
            ok("%help materialize"),
            LineMagic::Help {
                topic: Some("materialize".into())
            }
        );
        assert_eq!(
            ok("%help %%asset"),
            LineMagic::Help {
                topic: Some("%%asset".into())
            }
        );
        assert_eq!(
            ok("%help selection"),
            LineMagic::Help {
                topic: Some("selection".into())
            }
        );
    }

    #[test]
    fn materialize_every_option() {
        let m = ok("%materialize +summary, b --target slurm --profile=cluster --force --dry-run --jobs grouped");
        let LineMagic::Materialize(a) = m else {
            panic!()
        };
        assert_eq!(a.selection.as_ref().unwrap().to_string(), "+summary, b");
        assert_eq!(a.target, Some(Target::Slurm));
        assert_eq!(a.profile.as_deref(), Some("cluster"));
        assert!(a.force && a.dry_run);
        assert_eq!(a.jobs, Some(JobGrouping::Grouped));

        let LineMagic::Materialize(a) = ok("%materialize") else {
            panic!()
        };
        assert_eq!(a, MaterializeArgs::default());
        let LineMagic::Materialize(a) = ok("%materialize --force summary+2 --jobs=per-asset")
        else {
            panic!()
        };
        assert_eq!(
            a.selection,
            Some(Selection::Asset {
                name: "summary".into(),
                upstream: None,
                downstream: Some(Layers::N(2))
            })
        );
        assert_eq!(a.jobs, Some(JobGrouping::PerAsset));
        assert!(a.force);
    }

    #[test]
    fn unknown_magic_lists_all_magics() {
        let e = err("%materialise x");
        assert!(e.contains("unknown magic `%materialise`"), "{e}");
        for name in magic_names() {
            assert!(e.contains(&format!("%{name}")), "{e} lacks {name}");
        }
        assert!(err("%%asset x").contains("%%asset, %%check"));
    }

    #[test]
    fn bad_materialize_options_list_valid_options() {
        let e = err("%materialize a --targt slurm");
        assert!(e.contains("--targt"), "{e}");
        for o in ["--target", "--profile", "--force", "--dry-run", "--jobs"] {
            assert!(e.contains(o), "{e} lacks {o}");
        }
        assert!(err("%materialize --target cloud").contains("`local` or `slurm`"));
        assert!(err("%materialize --jobs some").contains("`per-asset` or `grouped`"));
        assert!(err("%materialize --profile").contains("needs a value"));
        assert!(err("%materialize --profile 'a;b'").contains("profile name"));
        assert!(err("%materialize --force --force").contains("twice"));
        assert!(err("%materialize --force=maybe").contains("--force"));
        let e = err("%materialize a and");
        assert!(e.contains("expected an asset name at column 19"), "{e}");
        let e = err("%graph a b");
        assert!(e.contains("column 10"), "{e}");
    }

    #[test]
    fn bad_arguments_of_other_magics() {
        assert!(err("%assets all").contains("unexpected argument `all`"));
        assert!(err("%runs --all").contains("takes no options"));
        assert!(err("%load").contains("missing the asset name"));
        assert!(err("%load a b").contains("unexpected argument `b`"));
        assert!(err("%load 9x").contains("not an asset name"));
        assert!(err("%attach abc").contains("not a run id"));
        assert!(err("%attach -1").contains("takes no options"));
        assert!(err("%cancel 1 2").contains("unexpected argument `2`"));
        assert!(err("%config novalue").contains("KEY=VALUE"));
        assert!(err("%config 1x=2").contains("configuration key"));
        assert!(err("%config a=\"x\u{7}y\"").contains("control characters"));
        let e = err("%help nothing");
        assert!(
            e.contains("no help on `nothing`") && e.contains("selection"),
            "{e}"
        );
        assert!(err("%graph --all").contains("takes no options"));
        assert!(err("%config a=\"unterminated").contains("unterminated"));
        // the usage is part of every argument error
        assert!(err("%load").contains("usage: %load NAME"));
    }

    #[test]
    fn names_and_help_cover_every_magic() {
        let names = magic_names();
        assert_eq!(names.len(), 10);
        for name in &names {
            let help = help_text(name).unwrap();
            assert!(help.contains(&format!("%{name}")), "{help}");
            assert!(lsmagic_text().contains(&format!("%{name}")));
        }
        assert!(help_text("asset").unwrap().contains("--partition"));
        assert!(help_text("%%check").unwrap().contains("%%check ASSET"));
        assert!(help_text("materialize").unwrap().contains("--dry-run"));
        assert!(help_text("bogus").is_none());
        assert_eq!(cell_magic_names(), ["asset", "check"]);
    }
}
