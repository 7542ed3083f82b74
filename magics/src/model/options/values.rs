//! Value parsers of declared options: each returns the value, or the form it
//! expected. They accept only strict character sets, because these values
//! end up in job scripts and remote commands: nothing that could break out
//! of a shell word (`;`, whitespace, quotes, `$`, backticks, newlines,
//! redirections, parentheses) is ever accepted.

use crate::model::ident::{is_identifier, positive_int, slurm_name_char, valid_chars};
use crate::model::lang::Lang;
use crate::model::partition::{self, PartitionSpec, PerTask};
use crate::model::target::{JobGrouping, Target};

/// `value` if it is a word of characters passing `ok`, else `Err(expected)`.
pub fn word(value: &str, ok: impl Fn(char) -> bool, expected: &str) -> Result<String, String> {
    if valid_chars(value, ok) {
        Ok(value.to_string())
    } else {
        Err(expected.to_string())
    }
}

pub fn partition(v: &str) -> Result<String, String> {
    word(
        v,
        |c| slurm_name_char(c) || c == ',',
        "a partition name (letters, digits, `_`, `.`, `-`; several separated by `,`)",
    )
}

pub fn account(v: &str) -> Result<String, String> {
    word(
        v,
        slurm_name_char,
        "an account name (letters, digits, `_`, `.`, `-`)",
    )
}

pub fn qos(v: &str) -> Result<String, String> {
    word(
        v,
        |c| slurm_name_char(c) || c == ',',
        "a QOS name (letters, digits, `_`, `.`, `-`; several separated by `,`)",
    )
}

pub fn constraint(v: &str) -> Result<String, String> {
    word(
        v,
        |c| slurm_name_char(c) || ":|&[]*!,".contains(c),
        "node features: letters, digits and `_ . - : | & [ ] * ! ,`",
    )
}

pub fn env(v: &str) -> Result<String, String> {
    word(
        v,
        slurm_name_char,
        "a pixi environment name (letters, digits, `_`, `-`)",
    )
}

pub fn group(v: &str) -> Result<String, String> {
    word(
        v,
        slurm_name_char,
        "a group name (letters, digits, `_`, `.`, `-`)",
    )
}

/// A profile of `slurmbook.toml` (`[profiles.NAME]`).
pub fn profile(v: &str) -> Result<String, String> {
    word(
        v,
        |c| c.is_ascii_alphanumeric() || "_-".contains(c),
        "a profile name (letters, digits, `_`, `-`)",
    )
}

/// A count such as `--cpus`.
pub fn positive(v: &str) -> Result<u32, String> {
    positive_int(v).ok_or_else(|| "an integer >= 1".to_string())
}

/// A run id (`--run` of `%log`).
pub fn run_id(v: &str) -> Result<i64, String> {
    positive(v)
        .map(i64::from)
        .map_err(|_| "a run id (an integer >= 1)".to_string())
}

pub fn target(v: &str) -> Result<Target, String> {
    v.parse()
}

pub fn lang(v: &str) -> Result<Lang, String> {
    v.parse()
}

pub fn jobs(v: &str) -> Result<JobGrouping, String> {
    v.parse()
        .map_err(|_| "`per-asset` or `grouped`".to_string())
}

fn tag_part_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-:/@+".contains(c)
}

/// `K=V[,K=V]`; a key alone has the empty value.
pub fn tags(v: &str) -> Result<Vec<(String, String)>, String> {
    v.split(',')
        .map(|pair| {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            if valid_chars(k, slurm_name_char)
                && (val.is_empty() || valid_chars(val, tag_part_char))
            {
                Ok((k.to_string(), val.to_string()))
            } else {
                Err("K=V[,K=V] with letters, digits and `_ . - : / @ +`".to_string())
            }
        })
        .collect()
}

/// Asset names separated by `,`.
pub fn deps(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(|dep| {
            if is_identifier(dep) {
                Ok(dep.to_string())
            } else {
                Err("asset names (Rust identifiers) separated by `,`".to_string())
            }
        })
        .collect()
}

/// `--partitions`: a range (`0..100`, `0..=99`) or a list of keys (`a,b,c`).
pub fn partitions(v: &str) -> Result<PartitionSpec, String> {
    partition::parse_spec(v)
        .map_err(|e| format!("a range (0..100, 0..=99) or a list of keys (a,b,c), but {e}"))
}

/// `--per-task`: `auto` or an integer >= 1.
pub fn per_task(v: &str) -> Result<PerTask, String> {
    v.parse()
}

/// One asset's name (a Rust identifier).
pub fn asset_name(v: &str) -> Result<String, String> {
    if is_identifier(v) {
        Ok(v.to_string())
    } else {
        Err("an asset name (a Rust identifier)".to_string())
    }
}
