//! Parsing `--name[=value]` options of a magic line or an `%%asset` header
//! against their declarations ([`Options`]: `AssetOptions`, `MaterializeArgs`).
//! Errors name the option, its column in the line, the expected form, and
//! list the valid options.
//!
//! Hand-written rather than clap: clap's errors cannot carry the column of
//! the option in the cell's line, and the values are validated by the
//! declarations' own strict parsers anyway (see `model::options::values`).

use thiserror::Error;

use super::args::Word;
use crate::model::AssetOptions;
pub use crate::model::{OptionInfo, Options};

/// Every option `%%asset` accepts.
pub const ASSET_OPTIONS: &[OptionInfo] = AssetOptions::OPTIONS;

/// Render a list of options as `--a V, --b` for error messages.
pub fn describe_options(options: &[OptionInfo]) -> String {
    options
        .iter()
        .map(OptionInfo::usage)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The options as help lists them: one `--name VALUE   help` line each.
pub fn options_help(options: &[OptionInfo]) -> String {
    options
        .iter()
        .map(|o| format!("    {:<28} {}\n", o.usage(), o.help))
        .collect()
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

/// One `--name[=value]` occurrence.
struct RawOption {
    info: &'static OptionInfo,
    value: Option<String>,
    column: usize,
    value_column: usize,
}

/// Walk `words` as options from `table`; non-option words are handed to
/// `positional` (which may reject them). Values of options that take one are
/// read from `--opt=value` or from the next word (`--opt value`).
fn scan_options<'w>(
    words: &'w [Word],
    table: &'static [OptionInfo],
    mut positional: impl FnMut(&'w Word) -> Result<(), OptionError>,
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
        // `--no-NAME` of a toggle is `--NAME=false`.
        let negated = name.strip_prefix("no-").and_then(|n| {
            table
                .iter()
                .find(|o| o.negatable && o.name == n)
                .map(|o| (o, inline.clone()))
        });
        if let Some((info, given)) = negated {
            if let Some(v) = given {
                return Err(OptionError::Invalid {
                    option: format!("no-{}", info.name),
                    value: v,
                    column: word.column + 3 + name.len(),
                    expected: "no value".into(),
                });
            }
            out.push(RawOption {
                info,
                value: Some("false".into()),
                column: word.column,
                value_column: word.column,
            });
            continue;
        }
        let Some(info) = table.iter().find(|o| o.name == name) else {
            return Err(OptionError::Unknown {
                option: format!("--{name}"),
                column: word.column,
                valid: describe_options(table),
            });
        };
        let value_column = word.column + 3 + name.len();
        let (value, value_column) = match (info.value, inline) {
            (_, Some(v)) => (Some(v), value_column),
            (None, None) => (None, value_column),
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
            info,
            value,
            column: word.column,
            value_column,
        });
    }
    Ok(out)
}

/// Parse `words` as the options of `T`, each value by its declared parser;
/// non-option words go to `positional`.
pub fn parse_options<'w, T: Options>(
    words: &'w [Word],
    positional: impl FnMut(&'w Word) -> Result<(), OptionError>,
) -> Result<T, OptionError> {
    let mut out = T::default();
    let mut seen: Vec<&str> = Vec::new();
    for raw in scan_options(words, T::OPTIONS, positional)? {
        let name = raw.info.name;
        if !raw.info.repeatable && seen.contains(&name) {
            return Err(OptionError::Duplicate {
                option: name.to_string(),
                column: raw.column,
            });
        }
        seen.push(name);
        out.apply(name, raw.value.as_deref())
            .map_err(|expected| OptionError::Invalid {
                option: name.to_string(),
                value: raw.value.clone().unwrap_or_default(),
                column: raw.value_column,
                expected,
            })?;
    }
    Ok(out)
}

/// Parse and validate `%%asset` options, the rules between them included
/// (an error is at the column of the option at fault).
pub fn parse_asset_options(words: &[Word]) -> Result<AssetOptions, OptionError> {
    let unexpected = |w: &Word| {
        Err(OptionError::Unexpected {
            text: w.text.clone(),
            column: w.column,
            valid: describe_options(ASSET_OPTIONS),
        })
    };
    let options: AssetOptions = parse_options(words, unexpected)?;
    if let Err((option, expected)) = options
        .check_freshness()
        .and_then(|()| options.check_partitions())
    {
        let raw = scan_options(words, ASSET_OPTIONS, unexpected)?
            .into_iter()
            .find(|r| r.info.name == option);
        return Err(OptionError::Invalid {
            option: option.to_string(),
            value: raw
                .as_ref()
                .and_then(|r| r.value.clone())
                .unwrap_or_default(),
            column: raw.map_or(1, |r| r.value_column),
            expected,
        });
    }
    Ok(options)
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
    fn requeue_is_a_toggle() {
        assert_eq!(parse("").unwrap().requeue, None);
        assert_eq!(parse("--requeue").unwrap().requeue, Some(true));
        assert_eq!(parse("--no-requeue").unwrap().requeue, Some(false));
        assert_eq!(parse("--requeue=false").unwrap().requeue, Some(false));
        let twice = parse("--requeue --no-requeue").unwrap_err();
        assert!(
            matches!(&twice, OptionError::Duplicate { option, column: 11 } if option == "requeue"),
            "{twice}"
        );
        let valued = parse("--no-requeue=yes").unwrap_err();
        assert!(
            valued.to_string().contains("`--no-requeue`")
                && valued.to_string().contains("no value"),
            "{valued}"
        );
        // Only toggles have a `--no-` form.
        assert!(matches!(
            parse("--no-own-job"),
            Err(OptionError::Unknown { .. })
        ));
        assert!(describe_options(ASSET_OPTIONS).contains("--requeue|--no-requeue"));
        assert_eq!(
            parse("--no-requeue").unwrap().sbatch_args(),
            [("requeue", "false".to_string())]
        );
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
    fn freshness_options_and_their_rules() {
        let o =
            parse(r#"--freshness 6h --freshness-warn=90m --max-upstream-age 01:00:00 --cpus 2"#)
                .unwrap();
        assert_eq!(o.freshness.unwrap().seconds, 6 * 3600);
        assert_eq!(o.freshness_warn.unwrap().seconds, 5400);
        assert_eq!(o.max_upstream_age.unwrap().seconds, 3600);
        let o = parse(r#"--freshness 1h --freshness-cron "0 9 * * *""#).unwrap();
        assert_eq!(o.freshness_cron.as_ref().unwrap().as_str(), "0 9 * * *");
        assert!(
            o.sbatch_args().iter().all(|(n, _)| !n.contains("fresh")),
            "freshness options are not sbatch options"
        );

        let invalid = |s: &str| match parse(s) {
            Err(OptionError::Invalid {
                option,
                column,
                expected,
                ..
            }) => (option, column, expected),
            other => panic!("{s}: {other:?}"),
        };
        let (opt, col, exp) = invalid("--freshness 30s");
        assert_eq!((opt.as_str(), col), ("freshness", 13));
        assert!(exp.contains("at least 1 minute"), "{exp}");
        let (opt, col, exp) = invalid("--freshness=3h --freshness-warn 3h");
        assert_eq!((opt.as_str(), col), ("freshness-warn", 33));
        assert!(exp.contains("shorter than --freshness (3h)"), "{exp}");
        let (opt, _, exp) = invalid("--freshness-warn 1h");
        assert_eq!(opt, "freshness-warn");
        assert!(exp.contains("--freshness WINDOW"), "{exp}");
        let (opt, col, exp) = invalid(r#"--cpus 1 --freshness-cron "0 9 * * *""#);
        assert_eq!((opt.as_str(), col), ("freshness-cron", 27));
        assert!(exp.contains("--freshness WINDOW"), "{exp}");
        let (opt, col, exp) = invalid(r#"--freshness-cron "0 * * * *" --freshness 2h"#);
        assert_eq!((opt.as_str(), col), ("freshness", 42));
        assert!(
            exp.contains("smallest interval") && exp.contains("(1h)"),
            "{exp}"
        );
        let (opt, col, exp) = invalid(r#"--freshness 1h --freshness-cron "0 25 * * *""#);
        assert_eq!((opt.as_str(), col), ("freshness-cron", 33));
        assert!(exp.contains("cron schedule of 5 fields"), "{exp}");
        let err = parse("--max-upstream-age soon").unwrap_err().to_string();
        assert!(
            err.contains("--max-upstream-age") && err.contains("column 20"),
            "{err}"
        );
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

    #[test]
    fn partition_options_and_their_rules() {
        use crate::model::PartitionSpec;
        let o = parse("--partitions 0..100 --max-parallel 8").unwrap();
        assert_eq!(
            o.partitioning(),
            Some(PartitionSpec::Range { start: 0, end: 100 })
        );
        assert_eq!(o.max_parallel, Some(8));
        let o = parse("--partitions=a,b,c").unwrap();
        assert_eq!(
            o.partitioning(),
            Some(PartitionSpec::List(vec![
                "a".into(),
                "b".into(),
                "c".into()
            ]))
        );
        let o = parse("--partitions-from days").unwrap();
        assert_eq!(o.partitioning(), Some(PartitionSpec::From("days".into())));
        let o = parse("--partitions-like sim").unwrap();
        assert_eq!(o.partitioning(), Some(PartitionSpec::Like("sim".into())));
        assert_eq!(parse("--cpus 2").unwrap().partitioning(), None);

        let e = parse("--cpus 2 --partitions a,b,a").unwrap_err();
        assert!(
            matches!(&e, OptionError::Invalid { option, column: 23, .. } if option == "partitions"),
            "{e:?}"
        );
        assert!(e.to_string().contains("`a` is given twice"), "{e}");
        let e = parse("--partitions 'a,b c'").unwrap_err();
        assert!(e.to_string().contains("`b c`"), "{e}");
        let e = parse("--partitions 3..3").unwrap_err();
        assert!(e.to_string().contains("empty partition set"), "{e}");
        let e = parse("--partitions 0..4 --partitions-like sim").unwrap_err();
        assert!(
            matches!(&e, OptionError::Invalid { option, .. } if option == "partitions-like"),
            "{e:?}"
        );
        let e = parse("--max-parallel 4").unwrap_err();
        assert!(
            matches!(&e, OptionError::Invalid { option, .. } if option == "max-parallel"),
            "{e:?}"
        );
        assert!(parse("--partitions 0..4 --max-parallel 0").is_err());
        use crate::model::PerTask;
        assert_eq!(
            parse("--partitions 0..4 --per-task 3").unwrap().per_task,
            Some(PerTask::Fixed(3))
        );
        assert_eq!(
            parse("--partitions 0..4 --per-task=auto").unwrap().per_task,
            Some(PerTask::Auto)
        );
        for bad in ["0", "-1", "two", "3;id", ""] {
            let e = parse(&format!("--partitions 0..4 --per-task '{bad}'")).unwrap_err();
            assert!(
                matches!(&e, OptionError::Invalid { option, .. } if option == "per-task")
                    && e.to_string().contains("`auto` or an integer >= 1"),
                "{bad}: {e:?}"
            );
        }
        let e = parse("--per-task 4").unwrap_err();
        assert!(
            matches!(&e, OptionError::Invalid { option, .. } if option == "per-task"),
            "{e:?}"
        );
        let e = parse("--lang python --partitions 0..4").unwrap_err();
        assert!(e.to_string().contains("partitions are for Rust"), "{e}");
        assert!(parse("--partitions-from 'a;b'").is_err());
    }
}
