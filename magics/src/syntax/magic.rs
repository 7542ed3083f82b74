//! Line magics (`%name args`): the table that declares each magic (name,
//! arguments, summary, options, parser), parsing a line with it, and the
//! `%help` and `%lsmagic` texts that come from the same table.
//!
//! Parsing is all-or-nothing: an unknown magic or a bad argument gives one
//! [`MagicError`] that lists what is valid, and no partial command.

use super::args::split_words;
use super::asset::{asset_help, ASSET_USAGE, CHECK_USAGE};
use super::line::{self, Args};
pub use super::line::{LineMagic, LogArgs, MagicError, MaterializeArgs};
use super::options::{options_help, OptionInfo, Options};
use crate::config;

/// One line magic: name, arguments as the usage shows them, one-line
/// summary, options, and the parser of its arguments.
#[derive(Debug, Clone, Copy)]
pub struct MagicInfo {
    pub name: &'static str,
    /// The arguments before the options in the usage line (`[SELECTION]`).
    pub args: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptionInfo],
    parse: fn(&Args<'_>) -> Result<LineMagic, MagicError>,
}

impl MagicInfo {
    /// `%name ARGS [--option VALUE] ...`
    pub fn usage(&self) -> String {
        let mut usage = format!("%{}", self.name);
        for part in std::iter::once(self.args.to_string())
            .chain(self.options.iter().map(|o| format!("[{}]", o.usage())))
            .filter(|p| !p.is_empty())
        {
            usage.push(' ');
            usage.push_str(&part);
        }
        usage
    }
}

/// Every line magic, in `%lsmagic` order.
pub const LINE_MAGICS: &[MagicInfo] = &[
    MagicInfo {
        name: "assets",
        args: "",
        summary: "table of the notebook's assets: dependencies, state (fresh/stale/missing/running/failed), last materialization, where",
        options: &[],
        parse: line::assets,
    },
    MagicInfo {
        name: "graph",
        args: "[SELECTION]",
        summary: "draw the asset graph (or a selection of it)",
        options: &[],
        parse: line::graph,
    },
    MagicInfo {
        name: "materialize",
        args: "[SELECTION]",
        summary: "materialize the selected assets (all by default), skipping fresh ones unless --force",
        options: MaterializeArgs::OPTIONS,
        parse: line::materialize,
    },
    MagicInfo {
        name: "load",
        args: "NAME|\"NAME[KEY]\"",
        summary: "bring a materialized asset's value into the session (a partitioned asset's: the map of all partitions; \"NAME[KEY]\": one partition's, as NAME_KEY)",
        options: &[],
        parse: line::load,
    },
    MagicInfo {
        name: "runs",
        args: "[RUN]",
        summary: "list recent runs; with a run id, what each asset used (wall, queue, CPU, peak memory, hints) and the run's timeline",
        options: &[],
        parse: line::runs,
    },
    MagicInfo {
        name: "history",
        args: "NAME",
        summary: "an asset's last materializations (version, code change, job, duration, peak memory, metadata) with plots",
        options: &[],
        parse: line::history,
    },
    MagicInfo {
        name: "log",
        args: "NAME",
        summary: "the whole output of an asset's Slurm job (a cell shows at most 1 MiB of it): copied to .slurmbook/logs/, its last lines shown",
        options: LogArgs::OPTIONS,
        parse: line::log,
    },
    MagicInfo {
        name: "attach",
        args: "[RUN]",
        summary: "follow a Slurm run again after a kernel restart, from where its output stopped (the newest run in progress by default)",
        options: &[],
        parse: line::attach,
    },
    MagicInfo {
        name: "cancel",
        args: "[RUN]",
        summary: "cancel a Slurm run's jobs (the newest run in progress by default)",
        options: &[],
        parse: line::cancel,
    },
    MagicInfo {
        name: "config",
        args: "[KEY=VALUE ...]",
        summary: "show or change the configuration",
        options: &[],
        parse: line::config,
    },
    MagicInfo {
        name: "lint",
        args: "",
        summary: "run clippy on the notebook's code: a table of its warnings by cell and line",
        options: &[],
        parse: line::lint,
    },
    MagicInfo {
        name: "export",
        args: "DIR",
        summary: "write the notebook as a standalone Cargo project in DIR (relative to the notebook; files you added there are kept)",
        options: &[],
        parse: line::export,
    },
    MagicInfo {
        name: "lsmagic",
        args: "",
        summary: "list the magics",
        options: &[],
        parse: line::lsmagic,
    },
    MagicInfo {
        name: "help",
        args: "[TOPIC]",
        summary: "help on a magic, `asset`, `check` or `selection`",
        options: &[],
        parse: help,
    },
];

/// Cell magics (first line of a cell): name, usage, summary.
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
overdue     assets failing their freshness policy (--freshness: FAIL)\n  \
warn        assets in their freshness policy's WARN window\n  \
combine with `,` (union), and, or, not and parentheses; e.g. `+summary and not group:slow`, `stale or overdue`\n";

/// The help text for a topic (a magic name with or without `%`/`%%`, or `selection`).
pub fn help_text(topic: &str) -> Option<String> {
    let topic = topic.trim_start_matches('%');
    if let Some(m) = magic_info(topic) {
        let mut s = format!("{}\n  {}\n", m.usage(), m.summary);
        if !m.options.is_empty() {
            s.push_str("  options:\n");
            s.push_str(&options_help(m.options));
        }
        if matches!(topic, "graph" | "materialize") {
            s.push('\n');
            s.push_str(SELECTION_HELP);
        }
        if topic == "config" {
            s.push_str(&config::keys_help());
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

fn all_magics_text() -> String {
    LINE_MAGICS
        .iter()
        .map(|m| format!("%{}", m.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `%help [TOPIC]`: the topic must be one of [`help_topics`].
fn help(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    a.at_most(1, "one topic")?;
    let topic = a.words.first().map(|w| w.text.clone());
    if let Some(t) = &topic {
        if help_text(t).is_none() {
            return Err(a.bad(format!(
                "no help on `{t}`; topics: {}",
                help_topics().join(", ")
            )));
        }
    }
    Ok(LineMagic::Help { topic })
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
    let Some(info) = magic_info(name) else {
        return Err(MagicError::Unknown {
            name: name.to_string(),
            valid: all_magics_text(),
        });
    };
    let mut args = Args {
        magic: info.name,
        usage: info.usage(),
        text: &body[name_len..],
        column: indent + 2 + name.chars().count(),
        words: Vec::new(),
    };
    args.words = split_words(args.text, args.column).map_err(|e| args.bad(e.to_string()))?;
    (info.parse)(&args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobGrouping, Target};
    use crate::syntax::selection::Layers;
    use crate::syntax::selection::Selection;

    fn ok(s: &str) -> LineMagic {
        parse_line_magic(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        parse_line_magic(s).expect_err(s).to_string()
    }

    #[test]
    fn simple_magics() {
        assert_eq!(ok("%assets"), LineMagic::Assets);
        assert_eq!(ok("%runs\n"), LineMagic::Runs { run: None });
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
                name: "temperatures".into(),
                partition: None,
            }
        );
        assert_eq!(
            ok("%load \"sim[2024-01.a]\""),
            LineMagic::Load {
                name: "sim".into(),
                partition: Some("2024-01.a".into()),
            }
        );
        assert!(parse_line_magic("%load \"sim[a b]\"").is_err());
        assert!(parse_line_magic("%load \"sim[]\"").is_err());
        assert!(parse_line_magic("%load \"sim[7]\" x").is_err());
        assert_eq!(ok("%attach"), LineMagic::Attach { run: None });
        assert_eq!(ok("%attach 12"), LineMagic::Attach { run: Some(12) });
        assert_eq!(ok("%cancel 3"), LineMagic::Cancel { run: Some(3) });
        assert_eq!(ok("%cancel"), LineMagic::Cancel { run: None });
        assert_eq!(ok("%lint"), LineMagic::Lint);
        assert_eq!(
            ok("%export \"my project\""),
            LineMagic::Export {
                dir: "my project".into()
            }
        );
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
        assert!(err("%runs x").contains("not a run id"));
        assert!(err("%history").contains("missing the asset name"));
        assert!(err("%history a b").contains("unexpected argument `b`"));
        assert!(err("%log").contains("missing the asset name"));
        assert!(err("%log a b").contains("unexpected argument `b`"));
        assert!(err("%log 9x").contains("not an asset name"));
        assert!(err("%log a --tail 0").contains("--tail"));
        assert!(err("%log a --run x").contains("run id"));
        assert!(err("%log a --stdout").contains("--stdout"));
        assert!(err("%load").contains("missing the asset name"));
        assert!(err("%load a b").contains("unexpected argument `b`"));
        assert!(err("%load 9x").contains("not an asset name"));
        assert!(err("%attach abc").contains("not a run id"));
        assert!(err("%attach -1").contains("takes no options"));
        assert!(err("%cancel 1 2").contains("unexpected argument `2`"));
        assert!(err("%lint now").contains("unexpected argument `now`"));
        assert!(err("%export").contains("missing the directory"));
        assert!(err("%export a b").contains("unexpected argument `b`"));
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
    fn log_takes_a_name_a_run_a_stream_and_a_tail() {
        let m = parse_line_magic("%log sim --run 3 --stderr --tail 5").unwrap();
        let LineMagic::Log(args) = m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (args.name.as_str(), args.run, args.stderr, args.tail),
            ("sim", Some(3), true, Some(5))
        );
        assert!(help_text("log").unwrap().contains("--stderr"));
    }

    #[test]
    fn names_and_help_cover_every_magic() {
        let names = magic_names();
        assert_eq!(names.len(), 14);
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
