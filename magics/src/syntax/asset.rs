//! `%%asset NAME[: TYPE] [options]` and `%%check ASSET [NAME]` headers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::args::{split_words, ArgsError};
use super::options::{options_help, parse_asset_options, OptionError, ASSET_OPTIONS};
use crate::model::{is_identifier, AssetOptions};

/// The parsed first line of an asset cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetHeader {
    pub name: String,
    /// The type as written after `:` (validated as a Rust type).
    pub type_annotation: Option<String>,
    pub options: AssetOptions,
}

/// The parsed first line of a check cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckHeader {
    /// The asset the check is attached to.
    pub asset: String,
    /// The check's name; defaults to `check` when not given.
    pub name: Option<String>,
}

pub const ASSET_USAGE: &str = "%%asset NAME[: TYPE] [options]";
pub const CHECK_USAGE: &str = "%%check ASSET [NAME]";

/// A bad `%%asset` or `%%check` header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("`%%{magic}` needs {what} at column {column}; usage: {usage}")]
    Missing {
        magic: &'static str,
        what: &'static str,
        column: usize,
        usage: &'static str,
    },
    #[error("`{name}` at column {column} is not a valid asset or check name (a Rust identifier that is not a keyword); usage: {usage}")]
    BadName {
        name: String,
        column: usize,
        usage: &'static str,
    },
    #[error("`{ty}` at column {column} is not a Rust type: {message}")]
    BadType {
        ty: String,
        column: usize,
        message: String,
    },
    #[error("`%%{magic}`: {source}")]
    Args {
        magic: &'static str,
        source: ArgsError,
    },
    #[error("`%%asset`: {0}")]
    Options(#[from] OptionError),
    #[error("`%%check` takes no options; got `{text}` at column {column}; usage: {usage}")]
    CheckExtra {
        text: String,
        column: usize,
        usage: &'static str,
    },
}

/// Read an identifier at the start of `s`; returns (ident, rest).
fn take_word(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

fn leading_ws(s: &str) -> usize {
    s.chars().take_while(|c| c.is_whitespace()).count()
}

/// Parse the text after `%%asset`; `column` is the 1-based column of its first character.
pub fn parse_asset_header(args: &str, column: usize) -> Result<AssetHeader, HeaderError> {
    let ws = leading_ws(args);
    let rest = &args[args.char_indices().nth(ws).map_or(args.len(), |(i, _)| i)..];
    let name_col = column + ws;
    let (name, after) = take_word(rest);
    if name.is_empty() {
        let token = rest.split_whitespace().next().unwrap_or("");
        if token.is_empty() || token.starts_with("--") {
            return Err(HeaderError::Missing {
                magic: "asset",
                what: "an asset name",
                column: name_col,
                usage: ASSET_USAGE,
            });
        }
        return Err(HeaderError::BadName {
            name: token.to_string(),
            column: name_col,
            usage: ASSET_USAGE,
        });
    }
    // The name must end at whitespace, `:` or the end of the line.
    if !(after.is_empty() || after.starts_with(char::is_whitespace) || after.starts_with(':'))
        || !is_identifier(name)
    {
        let token = rest
            .split(|c: char| c.is_whitespace() || c == ':')
            .next()
            .unwrap_or(name);
        return Err(HeaderError::BadName {
            name: token.to_string(),
            column: name_col,
            usage: ASSET_USAGE,
        });
    }
    let mut col = name_col + name.chars().count();
    let ws = leading_ws(after);
    let mut after_ws = &after[after.char_indices().nth(ws).map_or(after.len(), |(i, _)| i)..];
    let mut type_annotation = None;
    if let Some(ty_text) = after_ws.strip_prefix(':') {
        col += ws + 1;
        // The type runs up to the first option (` --`) or the end of the line.
        let end = find_option_start(ty_text).unwrap_or(ty_text.len());
        let raw = &ty_text[..end];
        let ty_ws = leading_ws(raw);
        let ty = raw.trim();
        let ty_col = col + ty_ws;
        if ty.is_empty() {
            return Err(HeaderError::Missing {
                magic: "asset",
                what: "a type after `:`",
                column: ty_col,
                usage: ASSET_USAGE,
            });
        }
        if let Err(e) = syn::parse_str::<syn::Type>(ty) {
            return Err(HeaderError::BadType {
                ty: ty.to_string(),
                column: ty_col,
                message: e.to_string(),
            });
        }
        type_annotation = Some(ty.to_string());
        col += raw.chars().count();
        after_ws = &ty_text[end..];
    } else {
        col += ws;
    }
    let words = split_words(after_ws, col).map_err(|source| HeaderError::Args {
        magic: "asset",
        source,
    })?;
    let options = parse_asset_options(&words)?;
    Ok(AssetHeader {
        name: name.to_string(),
        type_annotation,
        options,
    })
}

/// Byte offset of the first `--` that starts a word, outside brackets.
fn find_option_start(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth -= 1,
            b'-' if depth <= 0
                && bytes.get(i + 1) == Some(&b'-')
                && (i == 0 || bytes[i - 1].is_ascii_whitespace()) =>
            {
                return Some(i)
            }
            _ => {}
        }
    }
    None
}

/// Parse the text after `%%check`; `column` is the 1-based column of its first character.
pub fn parse_check_header(args: &str, column: usize) -> Result<CheckHeader, HeaderError> {
    let words = split_words(args, column).map_err(|source| HeaderError::Args {
        magic: "check",
        source,
    })?;
    let Some(asset) = words.first() else {
        return Err(HeaderError::Missing {
            magic: "check",
            what: "the asset to check",
            column: column + args.chars().count(),
            usage: CHECK_USAGE,
        });
    };
    for w in &words[..words.len().min(2)] {
        if w.text.starts_with('-') {
            return Err(HeaderError::CheckExtra {
                text: w.text.clone(),
                column: w.column,
                usage: CHECK_USAGE,
            });
        }
        if !is_identifier(&w.text) {
            return Err(HeaderError::BadName {
                name: w.text.clone(),
                column: w.column,
                usage: CHECK_USAGE,
            });
        }
    }
    if let Some(extra) = words.get(2) {
        return Err(HeaderError::CheckExtra {
            text: extra.text.clone(),
            column: extra.column,
            usage: CHECK_USAGE,
        });
    }
    Ok(CheckHeader {
        asset: asset.text.clone(),
        name: words.get(1).map(|w| w.text.clone()),
    })
}

/// Help text for `%%asset` including every option.
pub fn asset_help() -> String {
    format!(
        "{ASSET_USAGE}\n  Declare the cell as an asset: its value is the cell's final expression.\n  \
         Dependencies are inferred from the body; options:\n{}{FRESHNESS_HELP}",
        options_help(ASSET_OPTIONS)
    )
}

/// How freshness policies and the upstream age guard work (`%help asset`).
const FRESHNESS_HELP: &str = "  Freshness policies (PASS, WARN, FAIL; UNKNOWN when never materialized):\n    \
--freshness 6h [--freshness-warn 3h]: FAIL once the last successful materialization is older\n    \
than 6 h, WARN once older than 3 h. Windows: at least 1 minute, as 90m, 6h, 1d, 1h30m or 01:30:00.\n    \
--freshness-cron \"0 9 * * *\" --freshness 1h: after each tick the asset must have materialized\n    \
since tick - 1 h (FAIL from the first tick missed until it materializes); --freshness-warn 30m\n    \
WARNs 30 min before a deadline not met yet. Cron deadlines are evaluated in UTC.\n    \
--max-upstream-age 12h: an upstream the run selects is refreshed first when older; one outside\n    \
the run that is older keeps the asset (and what runs after it) from running, recorded as skipped.\n  \
%assets, %graph and `slurmbook status` show the states; select with `overdue` and `warn`; the\n  \
`notify` command (%help config) runs when an asset newly FAILs.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_only_and_with_type_and_options() {
        let h = parse_asset_header(" temperatures", 8).unwrap();
        assert_eq!(h.name, "temperatures");
        assert_eq!(h.type_annotation, None);
        assert_eq!(h.options, AssetOptions::default());

        let h = parse_asset_header(" summary: (f64, f64) --time=10 --cpus 2", 8).unwrap();
        assert_eq!(h.name, "summary");
        assert_eq!(h.type_annotation.as_deref(), Some("(f64, f64)"));
        assert_eq!(h.options.cpus, Some(2));

        let h = parse_asset_header(" m : HashMap<String, Vec<u8>>", 8).unwrap();
        assert_eq!(
            h.type_annotation.as_deref(),
            Some("HashMap<String, Vec<u8>>")
        );
        let h = parse_asset_header(" x:u64 --env=gpu", 8).unwrap();
        assert_eq!(h.type_annotation.as_deref(), Some("u64"));
        assert_eq!(h.options.env.as_deref(), Some("gpu"));
    }

    #[test]
    fn bad_headers_name_the_column() {
        let e = parse_asset_header("", 8).unwrap_err();
        assert!(matches!(e, HeaderError::Missing { column: 8, .. }), "{e}");
        let e = parse_asset_header(" --cpus=2", 8).unwrap_err();
        assert!(matches!(e, HeaderError::Missing { .. }), "{e}");
        let e = parse_asset_header(" my-asset", 8).unwrap_err();
        assert!(matches!(e, HeaderError::BadName { column: 9, .. }), "{e}");
        assert!(e.to_string().contains("my-asset"));
        let e = parse_asset_header(" fn", 8).unwrap_err();
        assert!(matches!(e, HeaderError::BadName { .. }), "{e}");
        let e = parse_asset_header(" 1x", 8).unwrap_err();
        assert!(matches!(e, HeaderError::BadName { .. }), "{e}");
        let e = parse_asset_header(" x: Vec<", 8).unwrap_err();
        assert!(matches!(e, HeaderError::BadType { column: 12, .. }), "{e}");
        let e = parse_asset_header(" x:", 8).unwrap_err();
        assert!(matches!(e, HeaderError::Missing { .. }), "{e}");
        let e = parse_asset_header(" x --nope", 8).unwrap_err();
        assert!(
            matches!(
                e,
                HeaderError::Options(OptionError::Unknown { column: 11, .. })
            ),
            "{e}"
        );
        let e = parse_asset_header(" x extra", 8).unwrap_err();
        assert!(
            matches!(e, HeaderError::Options(OptionError::Unexpected { .. })),
            "{e}"
        );
        let e = parse_asset_header(r#" x --partition="cpu; touch /tmp/pwned""#, 8).unwrap_err();
        assert!(
            matches!(e, HeaderError::Options(OptionError::Invalid { .. })),
            "{e}"
        );
    }

    #[test]
    fn check_headers() {
        assert_eq!(
            parse_check_header(" summary", 8).unwrap(),
            CheckHeader {
                asset: "summary".into(),
                name: None
            }
        );
        assert_eq!(
            parse_check_header(" summary positive", 8).unwrap(),
            CheckHeader {
                asset: "summary".into(),
                name: Some("positive".into())
            }
        );
        assert!(matches!(
            parse_check_header("  ", 8),
            Err(HeaderError::Missing { .. })
        ));
        assert!(matches!(
            parse_check_header(" a b c", 8),
            Err(HeaderError::CheckExtra { column: 13, .. })
        ));
        assert!(matches!(
            parse_check_header(" a --x", 8),
            Err(HeaderError::CheckExtra { .. })
        ));
        assert!(matches!(
            parse_check_header(" a-b", 8),
            Err(HeaderError::BadName { .. })
        ));
    }

    #[test]
    fn help_mentions_every_option() {
        let help = asset_help();
        for o in ASSET_OPTIONS {
            assert!(help.contains(&format!("--{}", o.name)));
        }
    }
}
