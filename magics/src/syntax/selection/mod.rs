//! The selection grammar of `%graph` and `%materialize`.
//!
//! ```text
//! selection := or (',' or)*            -- `,` is union, lowest precedence
//! or        := and ('or' and)*
//! and       := not ('and' not)*
//! not       := 'not' not | primary
//! primary   := '(' selection ')' | atom
//! atom      := '*' | 'stale' | 'overdue' | 'warn' | 'group:' G | 'tag:' K ['=' V]
//!            | [N] '+' NAME | NAME '+' [N] | [N]'+' NAME '+'[N] | NAME
//! ```
//! `+name` is the asset and everything upstream, `name+` everything
//! downstream, `2+name` / `name+2` two layers. `and`, `or`, `not`,
//! `stale`, `overdue` (freshness policy FAIL) and `warn` (WARN) are
//! keywords, not asset names. This module holds the parsed form and its
//! canonical text; `parse` the lexer and parser.

mod parse;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use parse::{parse_selection, parse_selection_at, SelectionParseError};

/// How far to follow edges from a named asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layers {
    /// Everything (`+name`, `name+`).
    All,
    /// At most this many layers (`2+name`, `name+2`).
    N(usize),
}

impl Layers {
    /// The depth limit, `None` meaning unlimited.
    pub fn limit(self) -> Option<usize> {
        match self {
            Layers::All => None,
            Layers::N(n) => Some(n),
        }
    }
}

/// A parsed selection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// `*`
    All,
    /// `stale`: assets whose code version differs from their last success.
    Stale,
    /// `overdue`: assets whose freshness policy FAILs.
    Overdue,
    /// `warn`: assets whose freshness policy WARNs.
    Warn,
    /// `name`, `+name`, `name+`, `N+name`, `name+N`, `+name+`.
    Asset {
        name: String,
        upstream: Option<Layers>,
        downstream: Option<Layers>,
    },
    /// `name[3,7,10..20]`: partitions of a partitioned asset (the text
    /// between the brackets, checked against its keys when planning).
    Partitions { name: String, keys: String },
    /// `group:G`
    Group(String),
    /// `tag:K=V` or `tag:K` (any value).
    Tag { key: String, value: Option<String> },
    /// `a, b, c`
    Union(Vec<Selection>),
    /// `a or b`
    Or(Box<Selection>, Box<Selection>),
    /// `a and b`
    And(Box<Selection>, Box<Selection>),
    /// `not a`
    Not(Box<Selection>),
}

impl Selection {
    /// A plain asset name.
    pub fn asset(name: &str) -> Selection {
        Selection::Asset {
            name: name.to_string(),
            upstream: None,
            downstream: None,
        }
    }

    /// The partitions it selects: (asset, the text between the brackets)
    /// of each `name[...]` in it.
    pub fn partition_picks(&self) -> Vec<(&str, &str)> {
        match self {
            Selection::Partitions { name, keys } => vec![(name.as_str(), keys.as_str())],
            Selection::Union(v) => v.iter().flat_map(Selection::partition_picks).collect(),
            Selection::Or(a, b) | Selection::And(a, b) => {
                let mut out = a.partition_picks();
                out.extend(b.partition_picks());
                out
            }
            Selection::Not(a) => a.partition_picks(),
            _ => Vec::new(),
        }
    }

    /// Every asset name the selection mentions, for validation.
    pub fn asset_names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Selection::Asset { name, .. } | Selection::Partitions { name, .. } => out.push(name),
            Selection::Union(v) => v.iter().for_each(|s| s.collect_names(out)),
            Selection::Or(a, b) | Selection::And(a, b) => {
                a.collect_names(out);
                b.collect_names(out);
            }
            Selection::Not(a) => a.collect_names(out),
            _ => {}
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Selection::Union(_) => 0,
            Selection::Or(..) => 1,
            Selection::And(..) => 2,
            Selection::Not(_) => 3,
            _ => 4,
        }
    }

    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.precedence() < min {
            write!(f, "(")?;
            self.fmt_at(f, 0)?;
            return write!(f, ")");
        }
        match self {
            Selection::All => write!(f, "*"),
            Selection::Stale => write!(f, "stale"),
            Selection::Overdue => write!(f, "overdue"),
            Selection::Warn => write!(f, "warn"),
            Selection::Group(g) => write!(f, "group:{g}"),
            Selection::Partitions { name, keys } => write!(f, "{name}[{keys}]"),
            Selection::Tag { key, value: None } => write!(f, "tag:{key}"),
            Selection::Tag {
                key,
                value: Some(v),
            } => write!(f, "tag:{key}={v}"),
            Selection::Asset {
                name,
                upstream,
                downstream,
            } => {
                match upstream {
                    Some(Layers::All) => write!(f, "+")?,
                    Some(Layers::N(n)) => write!(f, "{n}+")?,
                    None => {}
                }
                write!(f, "{name}")?;
                match downstream {
                    Some(Layers::All) => write!(f, "+"),
                    Some(Layers::N(n)) => write!(f, "+{n}"),
                    None => Ok(()),
                }
            }
            Selection::Union(items) => {
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    s.fmt_at(f, 1)?;
                }
                Ok(())
            }
            Selection::Or(a, b) => {
                a.fmt_at(f, 1)?;
                write!(f, " or ")?;
                b.fmt_at(f, 2)
            }
            Selection::And(a, b) => {
                a.fmt_at(f, 2)?;
                write!(f, " and ")?;
                b.fmt_at(f, 3)
            }
            Selection::Not(a) => {
                write!(f, "not ")?;
                a.fmt_at(f, 3)
            }
        }
    }
}

impl fmt::Display for Selection {
    /// The canonical text; parsing it gives the same selection back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_at(f, 0)
    }
}

impl std::str::FromStr for Selection {
    type Err = SelectionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_selection(s)
    }
}
