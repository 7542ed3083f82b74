//! Partitions of an asset (sweeps): how they are declared
//! (`--partitions 0..100`, `--partitions a,b,c`, `--partitions-from NAME`,
//! `--partitions-like NAME`), the keys they give, which of them a selection
//! such as `sim[3,7,10..20]` picks, and each partition's version.
//!
//! A key is safe in a file name and in a shell word: it matches
//! `[A-Za-z0-9][A-Za-z0-9._-]*`. Key sets are never empty and never hold a
//! key twice; every error names the key at fault.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The most partitions one asset may have.
pub const MAX_PARTITIONS: usize = 100_000;

/// How an asset is partitioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionSpec {
    /// `0..100` (end exclusive, as in Rust) or `0..=99`: the keys `0` to `99`.
    Range { start: u64, end: u64 },
    /// `a,b,c`: these keys, in this order.
    List(Vec<String>),
    /// `--partitions-from NAME`: the keys are NAME's value (a `Vec<String>`
    /// or a Vec of integers), known once NAME is materialized.
    From(String),
    /// `--partitions-like NAME`: NAME's keys; partition `k` gets NAME's
    /// partition `k`.
    Like(String),
}

impl PartitionSpec {
    /// The keys of a range or a list (`None` for `From` and `Like`, whose
    /// keys are another asset's).
    pub fn static_keys(&self) -> Option<Vec<String>> {
        match self {
            PartitionSpec::Range { start, end } => {
                Some((*start..*end).map(|i| i.to_string()).collect())
            }
            PartitionSpec::List(keys) => Some(keys.clone()),
            PartitionSpec::From(_) | PartitionSpec::Like(_) => None,
        }
    }

    /// The asset whose value or partitions give the keys.
    pub fn source(&self) -> Option<&str> {
        match self {
            PartitionSpec::From(n) | PartitionSpec::Like(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for PartitionSpec {
    /// As declared: `0..100`, `a,b,c`, `from NAME`, `like NAME`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionSpec::Range { start, end } => write!(f, "{start}..{end}"),
            PartitionSpec::List(keys) => write!(f, "{}", keys.join(",")),
            PartitionSpec::From(n) => write!(f, "from {n}"),
            PartitionSpec::Like(n) => write!(f, "like {n}"),
        }
    }
}

/// How many partitions one Slurm array task runs, one after another
/// (`--per-task N|auto`). Short partitions bundled into fewer tasks spare
/// Slurm a job start each; see `plan::array_tasks` for `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerTask {
    /// One partition per task, or several when the last run's partitions
    /// were short (see `plan::array_tasks`).
    #[default]
    Auto,
    /// Exactly this many (the last task may run fewer).
    Fixed(u32),
}

impl fmt::Display for PerTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PerTask::Auto => f.write_str("auto"),
            PerTask::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for PerTask {
    type Err = String;

    /// `auto` or an integer >= 1.
    fn from_str(s: &str) -> Result<PerTask, String> {
        if s == "auto" {
            return Ok(PerTask::Auto);
        }
        match crate::model::ident::positive_int(s) {
            Some(n) => Ok(PerTask::Fixed(n)),
            None => Err("`auto` or an integer >= 1".to_string()),
        }
    }
}

/// Why a partition key or key set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("an empty partition set{0}")]
    Empty(String),
    #[error("partition key `{0}` is given twice")]
    Duplicate(String),
    #[error("partition key `{0}` is not safe in file names and shells: a key is letters, digits, `.`, `_` and `-`, starting with a letter or a digit")]
    Unsafe(String),
    #[error("{count} partitions: at most {MAX_PARTITIONS} are allowed")]
    TooMany { count: u128 },
    #[error("the value of `{asset}` does not give partition keys: {why} (a Vec<String> or a Vec of integers)")]
    NotKeys { asset: String, why: String },
    #[error("`{asset}` has no partition `{key}` (its keys: {keys})")]
    UnknownKey {
        asset: String,
        key: String,
        keys: String,
    },
    #[error("`{0}` is not a partition selection: KEY, A..B or A..=B (integers), separated by `,`")]
    BadSelection(String),
}

/// Whether `key` is a safe partition key.
pub fn is_safe_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Checks a key set: not empty, no duplicates, every key safe.
pub fn validate_keys(keys: &[String]) -> Result<(), PartitionError> {
    if keys.is_empty() {
        return Err(PartitionError::Empty(String::new()));
    }
    if keys.len() > MAX_PARTITIONS {
        return Err(PartitionError::TooMany {
            count: keys.len() as u128,
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    for k in keys {
        if !is_safe_key(k) {
            return Err(PartitionError::Unsafe(k.clone()));
        }
        if !seen.insert(k.as_str()) {
            return Err(PartitionError::Duplicate(k.clone()));
        }
    }
    Ok(())
}

/// `A..B` or `A..=B` with integer bounds, as a half-open range; `None` when
/// `text` is not one.
fn parse_range(text: &str) -> Option<Result<(u64, u64), PartitionError>> {
    let (a, b, inclusive) = match text.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => {
            let (a, b) = text.split_once("..")?;
            (a, b, false)
        }
    };
    let num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !num(a) || !num(b) {
        return None;
    }
    let (Ok(start), Ok(end)) = (a.parse::<u64>(), b.parse::<u64>()) else {
        return Some(Err(PartitionError::TooMany { count: u128::MAX }));
    };
    let end = if inclusive {
        end.checked_add(1)
    } else {
        Some(end)
    };
    let Some(end) = end else {
        return Some(Err(PartitionError::TooMany { count: u128::MAX }));
    };
    if end <= start {
        return Some(Err(PartitionError::Empty(format!(" (`{text}`)"))));
    }
    if (end - start) as u128 > MAX_PARTITIONS as u128 {
        return Some(Err(PartitionError::TooMany {
            count: (end - start) as u128,
        }));
    }
    Some(Ok((start, end)))
}

/// Parses `--partitions SPEC`: a range (`0..100`, `0..=99`) or a list of
/// keys (`a,b,c`), validated.
pub fn parse_spec(text: &str) -> Result<PartitionSpec, PartitionError> {
    if let Some(range) = parse_range(text) {
        let (start, end) = range?;
        return Ok(PartitionSpec::Range { start, end });
    }
    let keys: Vec<String> = if text.trim().is_empty() {
        Vec::new()
    } else {
        text.split(',').map(str::to_string).collect()
    };
    validate_keys(&keys)?;
    Ok(PartitionSpec::List(keys))
}

/// The keys an asset's stored value gives (`--partitions-from`): a JSON
/// array of strings or of integers, validated as a key set.
pub fn keys_from_value(
    asset: &str,
    value: &serde_json::Value,
) -> Result<Vec<String>, PartitionError> {
    let not_keys = |why: String| PartitionError::NotKeys {
        asset: asset.to_string(),
        why,
    };
    let items = value
        .as_array()
        .ok_or_else(|| not_keys("it is not a list".into()))?;
    let keys = items
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            other => Err(not_keys(format!(
                "`{other}` is neither a string nor an integer"
            ))),
        })
        .collect::<Result<Vec<String>, _>>()?;
    if keys.is_empty() {
        return Err(PartitionError::Empty(format!(" (the value of `{asset}`)")));
    }
    validate_keys(&keys)?;
    Ok(keys)
}

/// The keys a selection (the text between `sim[` and `]`: `3,7,10..20`)
/// picks among `keys`, as (index in `keys`, key), in `keys`' order. A
/// range `A..B` names the integer keys `A` to `B - 1`; a key `asset` does
/// not have is an error naming it.
pub fn select_keys(
    asset: &str,
    selection: &str,
    keys: &[String],
) -> Result<Vec<(usize, String)>, PartitionError> {
    let mut wanted: Vec<String> = Vec::new();
    for item in selection.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(PartitionError::BadSelection(selection.to_string()));
        }
        match parse_range(item) {
            Some(Ok((start, end))) => wanted.extend((start..end).map(|i| i.to_string())),
            Some(Err(_)) => return Err(PartitionError::BadSelection(item.to_string())),
            None if is_safe_key(item) => wanted.push(item.to_string()),
            None => return Err(PartitionError::Unsafe(item.to_string())),
        }
    }
    let index: std::collections::HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut picked = Vec::with_capacity(wanted.len());
    for key in wanted {
        let Some(&i) = index.get(key.as_str()) else {
            return Err(PartitionError::UnknownKey {
                asset: asset.to_string(),
                key,
                keys: abbreviate(keys, 8),
            });
        };
        picked.push(i);
    }
    picked.sort_unstable();
    picked.dedup();
    Ok(picked.into_iter().map(|i| (i, keys[i].clone())).collect())
}

/// `a, b, c` or `0, 1, 2, ... (100 in all)`.
pub fn abbreviate(keys: &[String], at_most: usize) -> String {
    if keys.len() <= at_most {
        keys.join(", ")
    } else {
        format!(
            "{}, ... ({} in all)",
            keys[..at_most].join(", "),
            keys.len()
        )
    }
}

/// The version of partition `key` of an asset at `asset_version`; for
/// `--partitions-like`, the matching upstream partition's version too.
pub fn partition_version(asset_version: &str, key: &str, like: Option<&str>) -> String {
    let mut h = Sha256::new();
    for (tag, value) in [
        ("slurmbook-partition-v1", asset_version),
        ("key", key),
        ("like", like.unwrap_or("")),
    ] {
        h.update(tag.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranges_and_lists() {
        assert_eq!(
            parse_spec("0..100").unwrap(),
            PartitionSpec::Range { start: 0, end: 100 }
        );
        assert_eq!(
            parse_spec("0..=99").unwrap(),
            PartitionSpec::Range { start: 0, end: 100 }
        );
        let r = parse_spec("3..6").unwrap();
        assert_eq!(r.static_keys().unwrap(), keys(&["3", "4", "5"]));
        assert_eq!(r.to_string(), "3..6");
        let l = parse_spec("a,b.2,C-3").unwrap();
        assert_eq!(l.static_keys().unwrap(), keys(&["a", "b.2", "C-3"]));
        assert_eq!(PartitionSpec::From("days".into()).static_keys(), None);
        assert_eq!(PartitionSpec::Like("sim".into()).source(), Some("sim"));
    }

    #[test]
    fn bad_key_sets_name_the_key() {
        assert!(matches!(parse_spec("5..5"), Err(PartitionError::Empty(_))));
        assert!(matches!(parse_spec("9..=3"), Err(PartitionError::Empty(_))));
        assert!(matches!(parse_spec(""), Err(PartitionError::Empty(_))));
        assert_eq!(
            parse_spec("a,b,a").unwrap_err(),
            PartitionError::Duplicate("a".into())
        );
        let e = parse_spec("a,b;rm").unwrap_err();
        assert_eq!(e, PartitionError::Unsafe("b;rm".into()));
        assert!(e.to_string().contains("`b;rm`"), "{e}");
        assert_eq!(
            parse_spec("a,,b").unwrap_err(),
            PartitionError::Unsafe(String::new())
        );
        assert_eq!(
            parse_spec("-x").unwrap_err(),
            PartitionError::Unsafe("-x".into())
        );
        assert_eq!(
            parse_spec("../etc").unwrap_err(),
            PartitionError::Unsafe("../etc".into())
        );
        assert!(matches!(
            parse_spec("0..1000000000"),
            Err(PartitionError::TooMany { .. })
        ));
        assert!(matches!(
            parse_spec("0..99999999999999999999999"),
            Err(PartitionError::TooMany { .. })
        ));
    }

    #[test]
    fn keys_from_a_stored_value() {
        let v = serde_json::json!(["2024-01-01", "2024-01-02"]);
        assert_eq!(
            keys_from_value("days", &v).unwrap(),
            keys(&["2024-01-01", "2024-01-02"])
        );
        assert_eq!(
            keys_from_value("n", &serde_json::json!([3, 1, 2])).unwrap(),
            keys(&["3", "1", "2"])
        );
        assert!(matches!(
            keys_from_value("n", &serde_json::json!([])),
            Err(PartitionError::Empty(_))
        ));
        assert!(matches!(
            keys_from_value("n", &serde_json::json!({"a": 1})),
            Err(PartitionError::NotKeys { .. })
        ));
        assert!(matches!(
            keys_from_value("n", &serde_json::json!([1.5])),
            Err(PartitionError::NotKeys { .. })
        ));
        assert_eq!(
            keys_from_value("n", &serde_json::json!(["a", "a"])).unwrap_err(),
            PartitionError::Duplicate("a".into())
        );
        assert_eq!(
            keys_from_value("n", &serde_json::json!(["a b"])).unwrap_err(),
            PartitionError::Unsafe("a b".into())
        );
    }

    #[test]
    fn selections_pick_keys_in_order() {
        let all: Vec<String> = (0..30).map(|i| i.to_string()).collect();
        let picked = select_keys("sim", "7,3,10..13,3", &all).unwrap();
        assert_eq!(
            picked,
            vec![
                (3, "3".to_string()),
                (7, "7".to_string()),
                (10, "10".to_string()),
                (11, "11".to_string()),
                (12, "12".to_string())
            ]
        );
        assert_eq!(select_keys("sim", "28..=29", &all).unwrap().len(), 2);
        let e = select_keys("sim", "3,99", &all).unwrap_err();
        assert!(matches!(&e, PartitionError::UnknownKey { key, .. } if key == "99"));
        assert!(e.to_string().contains("`99`"), "{e}");
        assert!(matches!(
            select_keys("sim", "3,,4", &all),
            Err(PartitionError::BadSelection(_))
        ));
        assert!(matches!(
            select_keys("sim", "4..2", &all),
            Err(PartitionError::BadSelection(_))
        ));
        let named = keys(&["a", "b", "c"]);
        assert_eq!(
            select_keys("x", "c,a", &named).unwrap(),
            vec![(0, "a".to_string()), (2, "c".to_string())]
        );
    }

    #[test]
    fn partition_versions_differ_by_key_version_and_upstream() {
        let v = partition_version("v1", "3", None);
        assert_eq!(v, partition_version("v1", "3", None));
        assert_ne!(v, partition_version("v1", "4", None));
        assert_ne!(v, partition_version("v2", "3", None));
        assert_ne!(v, partition_version("v1", "3", Some("up")));
        assert_eq!(v.len(), 64);
    }
}
