//! `%%asset` options, mirroring `sbatch` long options, plus slurmbook's own.
//!
//! Every value is validated against a strict character set here, because
//! these values end up in remote shell commands later. Nothing that could
//! break out of a word (`;`, whitespace, quotes, `$`, backticks, newlines,
//! redirections, parentheses) is ever accepted.

use thiserror::Error;

use super::args::Word;
use crate::model::ident::{is_identifier, positive_int, slurm_name_char, valid_chars};
use crate::model::AssetOptions;

/// One accepted option: its name, value placeholder (None for flags) and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionInfo {
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

/// Every option `%%asset` accepts.
pub const ASSET_OPTIONS: &[OptionInfo] = &[
    OptionInfo {
        name: "partition",
        value: Some("NAME"),
        help: "Slurm partition (sbatch --partition)",
    },
    OptionInfo {
        name: "time",
        value: Some("TIME"),
        help: "time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS",
    },
    OptionInfo {
        name: "cpus",
        value: Some("N"),
        help: "CPUs per task (sbatch --cpus-per-task)",
    },
    OptionInfo {
        name: "mem",
        value: Some("SIZE"),
        help: "memory, e.g. 4G, 500M, 1024 (megabytes)",
    },
    OptionInfo {
        name: "gpus",
        value: Some("N|TYPE:N"),
        help: "GPUs (sbatch --gpus)",
    },
    OptionInfo {
        name: "nodes",
        value: Some("N"),
        help: "number of nodes",
    },
    OptionInfo {
        name: "ntasks",
        value: Some("N"),
        help: "number of tasks",
    },
    OptionInfo {
        name: "account",
        value: Some("NAME"),
        help: "Slurm account to charge",
    },
    OptionInfo {
        name: "qos",
        value: Some("NAME"),
        help: "Slurm quality of service",
    },
    OptionInfo {
        name: "constraint",
        value: Some("FEATURES"),
        help: "node features (sbatch --constraint)",
    },
    OptionInfo {
        name: "target",
        value: Some("local|slurm"),
        help: "where this asset runs",
    },
    OptionInfo {
        name: "env",
        value: Some("ENV"),
        help: "pixi environment to run in",
    },
    OptionInfo {
        name: "group",
        value: Some("GROUP"),
        help: "asset group (select with group:GROUP)",
    },
    OptionInfo {
        name: "tags",
        value: Some("K=V[,K=V]"),
        help: "tags (select with tag:K=V)",
    },
    OptionInfo {
        name: "deps",
        value: Some("A[,B]"),
        help: "order-only dependencies on other assets",
    },
    OptionInfo {
        name: "own-job",
        value: None,
        help: "always run in a Slurm job of its own",
    },
];

/// Render a list of options as `--a V, --b` for error messages and help.
pub fn describe_options(options: &[OptionInfo]) -> String {
    options
        .iter()
        .map(|o| match o.value {
            Some(v) => format!("--{} {v}", o.name),
            None => format!("--{}", o.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bad option in a magic or `%%asset` header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionError {
    #[error("unknown option `{option}` at column {column}; valid options: {valid}")]
    Unknown {
        option: String,
        column: usize,
        valid: String,
    },
    #[error("option `--{option}` at column {column} needs a value: {expected}")]
    MissingValue {
        option: String,
        column: usize,
        expected: String,
    },
    #[error("option `--{option}` at column {column} takes no value")]
    UnexpectedValue { option: String, column: usize },
    #[error("invalid value {value:?} for `--{option}` at column {column}: expected {expected}")]
    Invalid {
        option: String,
        value: String,
        column: usize,
        expected: String,
    },
    #[error("option `--{option}` given twice (column {column})")]
    Duplicate { option: String, column: usize },
    #[error("unexpected argument `{text}` at column {column}; valid options: {valid}")]
    Unexpected {
        text: String,
        column: usize,
        valid: String,
    },
}

fn tag_part_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-:/@+".contains(c)
}

/// One parsed `--name[=value]` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawOption {
    pub name: String,
    pub value: Option<String>,
    pub column: usize,
    pub value_column: usize,
}

/// Walk `words` as options from `table`; non-option words are handed to
/// `positional` (which may reject them). Values of options that take one are
/// read from `--opt=value` or from the next word (`--opt value`).
pub(crate) fn scan_options(
    words: &[Word],
    table: &[OptionInfo],
    mut positional: impl FnMut(&Word) -> Result<(), OptionError>,
) -> Result<Vec<RawOption>, OptionError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let Some(body) = word.text.strip_prefix("--") else {
            if word.text.starts_with('-') && word.text.len() > 1 {
                return Err(OptionError::Unknown {
                    option: word.text.clone(),
                    column: word.column,
                    valid: describe_options(table),
                });
            }
            positional(word)?;
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(info) = table.iter().find(|o| o.name == name) else {
            return Err(OptionError::Unknown {
                option: format!("--{name}"),
                column: word.column,
                valid: describe_options(table),
            });
        };
        let value_column = word.column + 3 + name.len();
        let (value, value_column) = match (info.value, inline) {
            (None, None) => (None, value_column),
            (None, Some(v)) => (Some(v), value_column),
            (Some(_), Some(v)) => (Some(v), value_column),
            (Some(expected), None) => match words.get(i) {
                Some(next) if !next.text.starts_with("--") => {
                    i += 1;
                    (Some(next.text.clone()), next.column)
                }
                _ => {
                    return Err(OptionError::MissingValue {
                        option: name.to_string(),
                        column: word.column,
                        expected: expected.to_string(),
                    })
                }
            },
        };
        out.push(RawOption {
            name: name.to_string(),
            value,
            column: word.column,
            value_column,
        });
    }
    Ok(out)
}

/// Parse and validate `%%asset` options.
pub fn parse_asset_options(words: &[Word]) -> Result<AssetOptions, OptionError> {
    let raw = scan_options(words, ASSET_OPTIONS, |w| {
        Err(OptionError::Unexpected {
            text: w.text.clone(),
            column: w.column,
            valid: describe_options(ASSET_OPTIONS),
        })
    })?;
    let mut opts = AssetOptions::default();
    let mut seen: Vec<&str> = Vec::new();
    for r in &raw {
        let invalid = |expected: &str| OptionError::Invalid {
            option: r.name.clone(),
            value: r.value.clone().unwrap_or_default(),
            column: r.value_column,
            expected: expected.to_string(),
        };
        let repeatable = matches!(r.name.as_str(), "tags" | "deps");
        if !repeatable && seen.contains(&r.name.as_str()) {
            return Err(OptionError::Duplicate {
                option: r.name.clone(),
                column: r.column,
            });
        }
        seen.push(
            ASSET_OPTIONS
                .iter()
                .find(|o| o.name == r.name)
                .map_or("", |o| o.name),
        );
        let value = r.value.clone().unwrap_or_default();
        let v = value.as_str();
        let name_like = |ok: fn(char) -> bool, what: &str| -> Result<String, OptionError> {
            if valid_chars(v, ok) {
                Ok(v.to_string())
            } else {
                Err(invalid(what))
            }
        };
        match r.name.as_str() {
            "partition" => {
                opts.partition = Some(name_like(
                    |c| slurm_name_char(c) || c == ',',
                    "a partition name (letters, digits, `_`, `.`, `-`; several separated by `,`)",
                )?)
            }
            "account" => {
                opts.account = Some(name_like(
                    slurm_name_char,
                    "an account name (letters, digits, `_`, `.`, `-`)",
                )?)
            }
            "qos" => {
                opts.qos = Some(name_like(
                    |c| slurm_name_char(c) || c == ',',
                    "a QOS name (letters, digits, `_`, `.`, `-`; several separated by `,`)",
                )?)
            }
            "constraint" => {
                opts.constraint = Some(name_like(
                    |c| slurm_name_char(c) || ":|&[]*!,".contains(c),
                    "node features: letters, digits and `_ . - : | & [ ] * ! ,`",
                )?)
            }
            "time" => opts.time = Some(v.parse().map_err(|e: String| invalid(&e))?),
            "mem" => opts.mem = Some(v.parse().map_err(|e: String| invalid(&e))?),
            "gpus" => opts.gpus = Some(v.parse().map_err(|e: String| invalid(&e))?),
            "cpus" => opts.cpus = Some(positive_int(v).ok_or_else(|| invalid("an integer >= 1"))?),
            "nodes" => {
                opts.nodes = Some(positive_int(v).ok_or_else(|| invalid("an integer >= 1"))?)
            }
            "ntasks" => {
                opts.ntasks = Some(positive_int(v).ok_or_else(|| invalid("an integer >= 1"))?)
            }
            "target" => opts.target = Some(v.parse().map_err(|e: String| invalid(&e))?),
            "env" => {
                opts.env = Some(name_like(
                    slurm_name_char,
                    "a pixi environment name (letters, digits, `_`, `-`)",
                )?)
            }
            "group" => {
                opts.group = Some(name_like(
                    slurm_name_char,
                    "a group name (letters, digits, `_`, `.`, `-`)",
                )?)
            }
            "tags" => {
                let expected = "K=V[,K=V] with letters, digits and `_ . - : / @ +`";
                for pair in v.split(',') {
                    let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
                    if !valid_chars(k, slurm_name_char)
                        || !(val.is_empty() || valid_chars(val, tag_part_char))
                    {
                        return Err(invalid(expected));
                    }
                    opts.tags.insert(k.to_string(), val.to_string());
                }
            }
            "deps" => {
                for dep in v.split(',') {
                    if !is_identifier(dep) {
                        return Err(invalid("asset names (Rust identifiers) separated by `,`"));
                    }
                    if !opts.deps.iter().any(|d| d == dep) {
                        opts.deps.push(dep.to_string());
                    }
                }
            }
            "own-job" => {
                opts.own_job = match r.value.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(_) => return Err(invalid("no value (or `true`/`false`)")),
                }
            }
            other => unreachable!("option table and match disagree on {other}"),
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Gpus, MemSize, MemUnit, SlurmTime, Target};
    use crate::syntax::args::split_words;

    fn parse(s: &str) -> Result<AssetOptions, OptionError> {
        parse_asset_options(&split_words(s, 1).unwrap())
    }

    #[test]
    fn all_options_in_both_forms() {
        let o = parse(
            "--partition=cpu --time 00:10:00 --cpus=4 --mem 4G --gpus=a100:2 --nodes=2 \
             --ntasks 8 --account=proj-1 --qos=high --constraint='[rack1*2&rack2*4]' \
             --target=slurm --env gpu-env --group=etl --tags team=geo,tier=1 --deps a,b --own-job",
        )
        .unwrap();
        assert_eq!(o.partition.as_deref(), Some("cpu"));
        assert_eq!(o.time, Some(SlurmTime { seconds: 600 }));
        assert_eq!(o.cpus, Some(4));
        assert_eq!(
            o.mem,
            Some(MemSize {
                amount: 4,
                unit: MemUnit::G
            })
        );
        assert_eq!(
            o.gpus,
            Some(Gpus {
                kind: Some("a100".into()),
                count: 2
            })
        );
        assert_eq!(o.nodes, Some(2));
        assert_eq!(o.ntasks, Some(8));
        assert_eq!(o.account.as_deref(), Some("proj-1"));
        assert_eq!(o.qos.as_deref(), Some("high"));
        assert_eq!(o.constraint.as_deref(), Some("[rack1*2&rack2*4]"));
        assert_eq!(o.target, Some(Target::Slurm));
        assert_eq!(o.env.as_deref(), Some("gpu-env"));
        assert_eq!(o.group.as_deref(), Some("etl"));
        assert_eq!(o.tags.get("team").map(String::as_str), Some("geo"));
        assert_eq!(o.tags.get("tier").map(String::as_str), Some("1"));
        assert_eq!(o.deps, ["a", "b"]);
        assert!(o.own_job);
    }

    #[test]
    fn slurm_time_formats() {
        let secs = |s: &str| s.parse::<SlurmTime>().map(|t| t.seconds);
        assert_eq!(secs("30"), Ok(1800));
        assert_eq!(secs("30:15"), Ok(1815));
        assert_eq!(secs("01:02:03"), Ok(3723));
        assert_eq!(secs("2-03"), Ok(2 * 86400 + 3 * 3600));
        assert_eq!(secs("2-03:04"), Ok(2 * 86400 + 3 * 3600 + 240));
        assert_eq!(secs("2-03:04:05"), Ok(2 * 86400 + 3 * 3600 + 245));
        for bad in [
            "", "1:2:3:4", "10:61", "1-25", "a", "-1", "1-", "0", "1h", "1:-2", "1 0",
        ] {
            assert!(secs(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(SlurmTime { seconds: 3723 }.to_string(), "01:02:03");
        assert_eq!(SlurmTime { seconds: 90061 }.to_string(), "1-01:01:01");
    }

    #[test]
    fn mem_and_gpus_formats() {
        assert_eq!("500M".parse::<MemSize>().unwrap().kibibytes(), 500 * 1024);
        assert_eq!("1024".parse::<MemSize>().unwrap().to_string(), "1024M");
        assert_eq!("2g".parse::<MemSize>().unwrap().to_string(), "2G");
        for bad in ["", "G", "4GB", "-4G", "4.5G", "4 G"] {
            assert!(bad.parse::<MemSize>().is_err(), "{bad}");
        }
        assert_eq!(
            "3".parse::<Gpus>().unwrap(),
            Gpus {
                kind: None,
                count: 3
            }
        );
        for bad in ["0", "a100:", ":2", "a100:0", "a;b:1", "x"] {
            assert!(bad.parse::<Gpus>().is_err(), "{bad}");
        }
    }

    #[test]
    fn injection_values_are_rejected() {
        for bad in [
            r#"--partition="cpu; touch /tmp/pwned""#,
            "--partition=cpu;id",
            "--account=$(id)",
            "--qos=`id`",
            "--constraint=a>b",
            "--partition='a b'",
            "--env=\"x'y\"",
            "--group=a|b",
            "--tags=a=$HOME",
            "--partition=--evil",
            "--constraint=(a)",
            "--deps=a;b",
            "--partition=\"a\nb\"",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(matches!(err, OptionError::Invalid { .. }), "{bad}: {err}");
        }
        let err = parse(r#"--partition="cpu; touch /tmp/pwned""#).unwrap_err();
        assert!(err.to_string().contains("--partition"), "{err}");
    }

    #[test]
    fn unknown_option_lists_valid_ones() {
        let err = parse("--cpus=2 --colour=red").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--colour"), "{msg}");
        assert!(msg.contains("column 10"), "{msg}");
        for o in ASSET_OPTIONS {
            assert!(
                msg.contains(&format!("--{}", o.name)),
                "{msg} lacks {}",
                o.name
            );
        }
    }

    #[test]
    fn bad_values_and_shapes() {
        assert!(matches!(
            parse("--cpus=0"),
            Err(OptionError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--cpus=+3"),
            Err(OptionError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--target=cloud"),
            Err(OptionError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--cpus"),
            Err(OptionError::MissingValue { .. })
        ));
        assert!(matches!(
            parse("--cpus --mem=1G"),
            Err(OptionError::MissingValue { .. })
        ));
        assert!(matches!(
            parse("--cpus=1 --cpus=2"),
            Err(OptionError::Duplicate { .. })
        ));
        assert!(matches!(
            parse("stray"),
            Err(OptionError::Unexpected { .. })
        ));
        assert!(matches!(parse("-c 4"), Err(OptionError::Unknown { .. })));
        assert!(matches!(
            parse("--own-job=maybe"),
            Err(OptionError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--deps=a,fn"),
            Err(OptionError::Invalid { .. })
        ));
        let o = parse("--tags a=1 --tags b --deps x --deps y,x").unwrap();
        assert_eq!(o.tags.len(), 2);
        assert_eq!(o.tags["b"], "");
        assert_eq!(o.deps, ["x", "y"]);
    }

    #[test]
    fn sbatch_args_render_validated_values() {
        let o = parse("--time=90 --mem=1024 --cpus=2").unwrap();
        assert_eq!(
            o.sbatch_args(),
            vec![
                ("time", "01:30:00".to_string()),
                ("cpus-per-task", "2".to_string()),
                ("mem", "1024M".to_string())
            ]
        );
    }

    #[test]
    fn options_round_trip_through_json() {
        let o = parse("--time=1-00:00:00 --mem=2G --gpus=1 --tags=k=v").unwrap();
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains("\"1-00:00:00\""), "{json}");
        let back: AssetOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, o);
    }
}
