//! What a line magic says ([`LineMagic`], [`MaterializeArgs`]) and the
//! parsers of each magic's arguments; the table of magics that dispatches to
//! them is in `syntax::magic`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::args::Word;
use super::options::{parse_options, OptionError};
use super::selection::{parse_selection_at, Selection};
use crate::model::options::spec::declare_options;
use crate::model::options::values;
use crate::model::{is_identifier, JobGrouping, RunId, Target};

declare_options! {
    /// Arguments of `%materialize`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MaterializeArgs {
        /// `None`: every asset.
        pub selection: Option<Selection>,
        pub target: Option<Target> = option("target", "local|slurm",
            "run everything locally or on Slurm", values::target),
        pub profile: Option<String> = option("profile", "PROFILE",
            "profile from slurmbook.toml", values::profile),
        pub force: bool = flag("force", "also run assets that are fresh"),
        pub dry_run: bool = flag("dry-run", "show the plan without running it"),
        pub jobs: Option<JobGrouping> = option("jobs", "per-asset|grouped",
            "Slurm jobs: grouped (compatible assets share one allocation as srun steps; the default) \
             or per-asset (one job each, chained with afterok)", values::jobs),
        /// Pack the job environment afresh and unpack it again on the cluster.
        #[serde(default)]
        pub repack: bool = flag("repack",
            "pack the jobs' pixi environment afresh and unpack it again on the cluster"),
    }
}

declare_options! {
    /// Arguments of `%log NAME`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LogArgs {
        /// The asset.
        pub name: String,
        pub run: Option<RunId> = option("run", "RUN",
            "the asset's job in this run (default: its latest materialization)", values::run_id),
        pub stderr: bool = flag("stderr", "the job's stderr instead of its stdout"),
        pub tail: Option<u32> = option("tail", "N",
            "how many of the last lines to show in the cell (default 20)", values::positive),
    }
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
        /// `%load "sim[7]"`: one partition of a partitioned asset.
        #[serde(default)]
        partition: Option<String>,
    },
    /// `%runs` lists the runs; `%runs RUN` shows one: what each asset
    /// used and the run's timeline.
    Runs {
        #[serde(default)]
        run: Option<RunId>,
    },
    /// `%history NAME`: an asset's last materializations.
    History {
        name: String,
    },
    /// `%log NAME`: the whole output of the asset's Slurm job, copied here.
    Log(LogArgs),
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
    /// `%lint`: clippy on the notebook's code, diagnostics by cell.
    Lint,
    /// `%export DIR`: the notebook as a standalone Cargo project.
    Export {
        dir: String,
    },
    Help {
        topic: Option<String>,
    },
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
        usage: String,
    },
}

/// The arguments of one magic line, with what its errors need.
pub struct Args<'a> {
    /// The magic's name, without `%`.
    pub magic: &'static str,
    /// Its usage line, for errors.
    pub usage: String,
    /// The text after the name, and the column of its first character.
    pub text: &'a str,
    pub column: usize,
    pub words: Vec<Word>,
}

impl Args<'_> {
    pub fn bad(&self, message: String) -> MagicError {
        MagicError::BadArgs {
            magic: self.magic,
            message,
            usage: self.usage.clone(),
        }
    }

    fn no_options(&self) -> Result<(), MagicError> {
        match self
            .words
            .iter()
            .find(|w| w.text.starts_with('-') && w.text.len() > 1)
        {
            Some(w) => Err(self.bad(format!(
                "unknown option `{}` at column {}; `%{}` takes no options",
                w.text, w.column, self.magic
            ))),
            None => Ok(()),
        }
    }

    /// No option, and at most `n` words.
    pub fn at_most(&self, n: usize, what: &str) -> Result<(), MagicError> {
        self.no_options()?;
        match self.words.get(n) {
            Some(w) => Err(self.bad(format!(
                "unexpected argument `{}` at column {}; expected {what}",
                w.text, w.column
            ))),
            None => Ok(()),
        }
    }

    fn run_id(&self) -> Result<Option<RunId>, MagicError> {
        self.at_most(1, "at most one run id")?;
        self.words
            .first()
            .map(|w| {
                w.text
                    .parse::<RunId>()
                    .ok()
                    .filter(|id| *id >= 1 && w.text.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        self.bad(format!(
                            "`{}` at column {} is not a run id (a number from %runs)",
                            w.text, w.column
                        ))
                    })
            })
            .transpose()
    }

    /// Exactly one word, an asset name.
    fn asset_name(&self) -> Result<String, MagicError> {
        self.at_most(1, "one asset name")?;
        let Some(w) = self.words.first() else {
            return Err(self.bad("missing the asset name".to_string()));
        };
        if !is_identifier(&w.text) {
            return Err(self.bad(format!(
                "`{}` at column {} is not an asset name",
                w.text, w.column
            )));
        }
        Ok(w.text.clone())
    }

    fn selection(&self, words: &[&Word]) -> Result<Option<Selection>, MagicError> {
        let (Some(first), Some(last)) = (words.first(), words.last()) else {
            return Ok(None);
        };
        // Parse the original text when the words are contiguous so columns are exact.
        let start = first.column - self.column;
        let end = last.column - self.column + last.text.chars().count();
        let original: String = self.text.chars().skip(start).take(end - start).collect();
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
            .map_err(|e| self.bad(format!("bad selection: {e}")))
    }
}

pub fn assets(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    a.at_most(0, "no arguments").map(|()| LineMagic::Assets)
}

pub fn runs(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    Ok(LineMagic::Runs { run: a.run_id()? })
}

pub fn history(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    Ok(LineMagic::History {
        name: a.asset_name()?,
    })
}

pub fn log(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    let mut positional = Vec::new();
    let mut args: LogArgs = parse_options(&a.words, |w| {
        positional.push(w);
        Ok::<(), OptionError>(())
    })
    .map_err(|e| a.bad(e.to_string()))?;
    match positional.as_slice() {
        [] => return Err(a.bad("missing the asset name".into())),
        [name] if is_identifier(&name.text) => args.name = name.text.clone(),
        [name] => {
            return Err(a.bad(format!(
                "`{}` at column {} is not an asset name",
                name.text, name.column
            )))
        }
        [_, extra, ..] => {
            return Err(a.bad(format!(
                "unexpected argument `{}` at column {}",
                extra.text, extra.column
            )))
        }
    }
    Ok(LineMagic::Log(args))
}

pub fn lsmagic(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    a.at_most(0, "no arguments").map(|()| LineMagic::LsMagic)
}

pub fn graph(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    a.no_options()?;
    Ok(LineMagic::Graph {
        selection: a.selection(&a.words.iter().collect::<Vec<_>>())?,
    })
}

pub fn materialize(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    let mut positional = Vec::new();
    let mut args: MaterializeArgs = parse_options(&a.words, |w| {
        positional.push(w);
        Ok::<(), OptionError>(())
    })
    .map_err(|e| a.bad(e.to_string()))?;
    args.selection = a.selection(&positional)?;
    Ok(LineMagic::Materialize(args))
}

pub fn load(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    // `sim[7]`: one partition's value.
    if let Some(w) = a.words.first().filter(|w| w.text.contains('[')) {
        a.at_most(1, "one asset name")?;
        let parsed = w
            .text
            .strip_suffix(']')
            .and_then(|t| t.split_once('['))
            .filter(|(name, key)| is_identifier(name) && crate::model::partition::is_safe_key(key));
        let Some((name, key)) = parsed else {
            return Err(a.bad(format!(
                "`{}` at column {} is not NAME or NAME[KEY] (one partition's key: letters, digits, `.`, `_`, `-`)",
                w.text, w.column
            )));
        };
        return Ok(LineMagic::Load {
            name: name.to_string(),
            partition: Some(key.to_string()),
        });
    }
    Ok(LineMagic::Load {
        name: a.asset_name()?,
        partition: None,
    })
}

pub fn lint(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    a.at_most(0, "no arguments").map(|()| LineMagic::Lint)
}

pub fn export(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    a.at_most(1, "one directory")?;
    let Some(w) = a.words.first() else {
        return Err(a.bad("missing the directory to export to".to_string()));
    };
    if w.text.is_empty() || w.text.chars().any(char::is_control) {
        return Err(a.bad(format!(
            "`{}` at column {} is not a directory path",
            w.text.escape_default(),
            w.column
        )));
    }
    Ok(LineMagic::Export {
        dir: w.text.clone(),
    })
}

pub fn attach(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    Ok(LineMagic::Attach { run: a.run_id()? })
}

pub fn cancel(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    Ok(LineMagic::Cancel { run: a.run_id()? })
}

/// `KEY=VALUE` words; the keys and values are checked against the
/// configuration's declarations when applied (`config::validate`).
pub fn config(a: &Args<'_>) -> Result<LineMagic, MagicError> {
    let mut settings = Vec::new();
    for w in &a.words {
        let Some((key, value)) = w.text.split_once('=') else {
            return Err(a.bad(format!(
                "`{}` at column {} is not KEY=VALUE",
                w.text, w.column
            )));
        };
        let key_ok = key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !key_ok {
            return Err(a.bad(format!(
                "`{key}` at column {} is not a configuration key (letters, digits, `_`, `.`, `-`)",
                w.column
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(a.bad(format!("the value of `{key}` contains control characters")));
        }
        settings.push((key.to_string(), value.to_string()));
    }
    Ok(LineMagic::Config { settings })
}
