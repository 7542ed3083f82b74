//! Code versions and staleness.
//!
//! `own_hash` = sha256 of the asset's normalized body, its type annotation,
//! the options that change its result (only `--env`: target, Slurm
//! resources, group and tags do not), the normalized source of the notebook
//! items the body refers to (transitively) and the `:dep` lines.
//! `version` = sha256 of `own_hash` and the sorted (upstream, version) pairs,
//! so a change upstream changes every version downstream. The pixi
//! environment an asset runs in is one of those pairs: `env:<name>` with
//! the digest of what the lock file pins for it ([`ENV_PREFIX`]), so a
//! changed `pixi.lock` makes the assets of that environment stale with
//! the reason "environment changed" (and, through their versions, what is
//! downstream of them). Python and bash bodies hash their language too, and
//! neither notebook items nor `:dep` lines (they cannot see them).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::graph::AssetGraph;
use crate::items::{DepLine, Item};
use crate::model::{digest_of, AssetSpec};

/// The normalized form of Rust source: its token stream re-printed, so
/// whitespace and comments do not count. Source that does not lex falls
/// back to stripping comments and collapsing whitespace.
pub fn normalize_source(src: &str) -> String {
    match src.parse::<proc_macro2::TokenStream>() {
        Ok(tokens) => tokens.to_string(),
        Err(_) => normalize_text(src),
    }
}

/// Strip `//` and (nested) `/* */` comments outside string literals and
/// collapse whitespace.
pub fn normalize_text(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, c: char, pending: &mut bool| {
        if *pending && !out.is_empty() {
            out.push(' ');
        }
        *pending = false;
        out.push(c);
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            pending_space = true;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            pending_space = true;
        } else if c == '"' {
            push(&mut out, c, &mut pending_space);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
                if chars[i - 1] == '"' {
                    break;
                }
            }
        } else if c.is_whitespace() {
            pending_space = true;
            i += 1;
        } else {
            push(&mut out, c, &mut pending_space);
            i += 1;
        }
    }
    out
}

/// A type annotation without comments and without whitespace except where
/// it separates two words (`Vec< u8 >` and `Vec<u8>` are the same type).
/// Cheap, unlike lexing: it runs for every typed asset on every plan.
pub fn normalize_type(ty: &str) -> String {
    let text = normalize_text(ty);
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.get(i + 1).copied();
            if prev.is_some_and(word) && next.is_some_and(word) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// sha256 digest of one item's normalized source.
pub fn item_digest(item: &Item) -> [u8; 32] {
    Sha256::digest(item.normalized.as_bytes()).into()
}

/// sha256 digest of all `:dep` lines, in order.
pub fn deps_digest(deps: &[DepLine]) -> [u8; 32] {
    let mut h = Sha256::new();
    for d in deps {
        h.update(d.normalized.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// Lowercase hex of a finished hash (what `hex::encode` gives, without
/// going through one `char` at a time).
fn hex_of(h: Sha256) -> String {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(h.finalize(), &mut buf).expect("64 hex digits for 32 bytes");
    String::from_utf8(buf.to_vec()).expect("hex digits are ASCII")
}

fn field(h: &mut Sha256, tag: &str, value: &[u8]) {
    h.update(tag.as_bytes());
    h.update((value.len() as u64).to_le_bytes());
    h.update(value);
}

/// The hash of everything about an asset itself (not its upstreams).
/// `normalized_body` comes from [`normalize_source`] (or the body analysis);
/// `item_digests` are the digests of the items it refers to, in notebook order.
pub fn own_hash(
    spec: &AssetSpec,
    normalized_body: &str,
    item_digests: &[[u8; 32]],
    deps_digest: &[u8; 32],
) -> String {
    own_hash_of_digest(spec, &digest_of(normalized_body), item_digests, deps_digest)
}

/// [`own_hash`] with the normalized body already hashed ([`digest_of`]).
pub fn own_hash_of_digest(
    spec: &AssetSpec,
    body_digest: &[u8; 32],
    item_digests: &[[u8; 32]],
    deps_digest: &[u8; 32],
) -> String {
    let mut h = Sha256::new();
    field(&mut h, "slurmbook-own-v1", b"");
    field(&mut h, "body", body_digest);
    let lang = spec.lang();
    if lang.is_foreign() {
        // Rust assets hash as they always did.
        field(&mut h, "lang", lang.as_str().as_bytes());
    }
    let ty = spec
        .type_annotation
        .as_deref()
        .map(normalize_type)
        .unwrap_or_default();
    field(&mut h, "type", ty.as_bytes());
    field(
        &mut h,
        "env",
        spec.options.env.as_deref().unwrap_or("").as_bytes(),
    );
    for d in item_digests {
        field(&mut h, "item", d);
    }
    field(&mut h, "deps", deps_digest);
    hex_of(h)
}

/// The version from the own hash and the upstreams' versions.
pub fn version_of(own_hash: &str, upstreams: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    field(&mut h, "slurmbook-version-v1", own_hash.as_bytes());
    for (name, version) in upstreams {
        field(&mut h, "up", name.as_bytes());
        field(&mut h, "v", version.as_bytes());
    }
    hex_of(h)
}

/// The key of the environment entry among an asset's upstreams:
/// `env:<name>` (not an asset name: those are identifiers).
pub const ENV_PREFIX: &str = "env:";

/// The current code version of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetVersion {
    pub own_hash: String,
    pub version: String,
    /// Current versions of the direct upstreams (data and `--deps`), and
    /// the environment's digest under `env:<name>` when it has one.
    pub upstreams: BTreeMap<String, String>,
}

impl AssetVersion {
    /// The upstream assets' versions (without the environment's entry).
    pub fn asset_upstreams(&self) -> impl Iterator<Item = (&String, &String)> {
        self.upstreams
            .iter()
            .filter(|(k, _)| !k.starts_with(ENV_PREFIX))
    }

    /// The environment (name, lock digest) the version includes.
    pub fn environment(&self) -> Option<(&str, &str)> {
        self.upstreams
            .iter()
            .find_map(|(k, v)| Some((k.strip_prefix(ENV_PREFIX)?, v.as_str())))
    }
}

/// Versions of every asset of a graph. Shared pieces: cloning is cheap,
/// and a re-plan keeps the versions that did not change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    by_name: Arc<FxHashMap<String, usize>>,
    list: Vec<Arc<AssetVersion>>,
}

impl Versions {
    /// Compute versions in topological order from each asset's own hash.
    pub fn compute(graph: &AssetGraph, own_hashes: &HashMap<String, String>) -> Versions {
        let own = (0..graph.len())
            .map(|i| {
                own_hashes
                    .get(graph.name_at(i))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        Self::compute_indexed(graph, own)
    }

    /// Like [`Versions::compute`] with the own hashes by asset index.
    pub fn compute_indexed(graph: &AssetGraph, own_hashes: Vec<String>) -> Versions {
        assert_eq!(own_hashes.len(), graph.len(), "one own hash per asset");
        let mut list: Vec<Option<Arc<AssetVersion>>> = vec![None; graph.len()];
        let mut own_hashes = own_hashes;
        for i in graph.topo_indices() {
            let own = std::mem::take(&mut own_hashes[i]);
            let v = version_after_upstreams(graph, i, own, None, |u| {
                list[u]
                    .as_ref()
                    .expect("upstreams come first in topological order")
            });
            list[i] = Some(Arc::new(v));
        }
        let by_name = (0..graph.len())
            .map(|i| (graph.name_at(i).to_string(), i))
            .collect();
        Versions::from_parts(
            Arc::new(by_name),
            list.into_iter()
                .map(|v| v.expect("every asset visited"))
                .collect(),
        )
    }

    /// Versions from an index (asset name to position) and one version per position.
    pub(crate) fn from_parts(
        by_name: Arc<FxHashMap<String, usize>>,
        list: Vec<Arc<AssetVersion>>,
    ) -> Versions {
        Versions { by_name, list }
    }

    pub fn get(&self, name: &str) -> Option<&AssetVersion> {
        self.by_name.get(name).map(|&i| &*self.list[i])
    }

    /// The version of the asset at `index` (the project's asset order).
    pub(crate) fn at(&self, index: usize) -> &AssetVersion {
        &self.list[index]
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// (name, version) pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &AssetVersion)> {
        self.by_name.iter().map(|(n, &i)| (n, &*self.list[i]))
    }
}

/// The version of the asset at `index` from its own hash, its environment
/// (`env:<name>` and the lock's digest for it) and its upstreams' versions
/// (`version_of(u)`; they come first in topological order).
pub(crate) fn version_after_upstreams<'v>(
    graph: &AssetGraph,
    index: usize,
    own_hash: String,
    env: Option<&(String, String)>,
    version_of_upstream: impl Fn(usize) -> &'v Arc<AssetVersion>,
) -> AssetVersion {
    let mut upstreams: BTreeMap<String, String> = graph
        .upstream_indices(index)
        .map(|u| {
            (
                graph.name_at(u).to_string(),
                version_of_upstream(u).version.clone(),
            )
        })
        .collect();
    if let Some((key, digest)) = env {
        upstreams.insert(key.clone(), digest.clone());
    }
    let version = version_of(&own_hash, &upstreams);
    AssetVersion {
        own_hash,
        version,
        upstreams,
    }
}

/// Why an asset is stale. Renders as `code changed`, `upstream X changed`,
/// `never materialized`, `environment changed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    CodeChanged,
    UpstreamChanged(String),
    NeverMaterialized,
    /// The lock file pins something else for the asset's environment (or it
    /// runs in another environment now).
    EnvironmentChanged,
    /// A partitioned asset's partitions are not all fresh (the summary:
    /// `97/100 fresh, 3 failed (7, 41, 88)`).
    Partitions(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::CodeChanged => write!(f, "code changed"),
            Reason::UpstreamChanged(name) => write!(f, "upstream {name} changed"),
            Reason::NeverMaterialized => write!(f, "never materialized"),
            Reason::EnvironmentChanged => write!(f, "environment changed"),
            Reason::Partitions(summary) => write!(f, "partitions {summary}"),
        }
    }
}

/// An asset's state relative to its last successful materialization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    Fresh,
    Stale(Vec<Reason>),
    Missing,
}

impl Freshness {
    pub fn is_fresh(&self) -> bool {
        matches!(self, Freshness::Fresh)
    }

    /// `fresh`, `stale` or `missing`.
    pub fn label(&self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale(_) => "stale",
            Freshness::Missing => "missing",
        }
    }

    /// The reasons (`never materialized` for a missing asset).
    pub fn reasons(&self) -> Vec<Reason> {
        match self {
            Freshness::Fresh => vec![],
            Freshness::Stale(r) => r.clone(),
            Freshness::Missing => vec![Reason::NeverMaterialized],
        }
    }
}

impl fmt::Display for Freshness {
    /// `fresh`, `missing (never materialized)`, `stale (code changed, upstream a changed)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Freshness::Fresh => write!(f, "fresh"),
            _ => {
                let reasons: Vec<String> = self.reasons().iter().map(Reason::to_string).collect();
                write!(f, "{} ({})", self.label(), reasons.join(", "))
            }
        }
    }
}

/// What was recorded at an asset's last successful materialization.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub own_hash: &'a str,
    pub upstream_versions: &'a BTreeMap<String, String>,
}

/// Compare the current version with the last success.
pub fn freshness(current: &AssetVersion, last: Option<Recorded<'_>>) -> Freshness {
    let Some(last) = last else {
        return Freshness::Missing;
    };
    let mut reasons = Vec::new();
    if last.own_hash != current.own_hash {
        reasons.push(Reason::CodeChanged);
    }
    let mut changed: Vec<&String> = current
        .upstreams
        .iter()
        .filter(|(name, v)| last.upstream_versions.get(*name) != Some(*v))
        .map(|(name, _)| name)
        .collect();
    changed.extend(
        last.upstream_versions
            .keys()
            .filter(|name| !current.upstreams.contains_key(*name)),
    );
    changed.sort();
    let (envs, assets): (Vec<&String>, Vec<&String>) =
        changed.into_iter().partition(|n| n.starts_with(ENV_PREFIX));
    if !envs.is_empty() {
        reasons.push(Reason::EnvironmentChanged);
    }
    reasons.extend(
        assets
            .into_iter()
            .map(|n| Reason::UpstreamChanged(n.clone())),
    );
    if reasons.is_empty() {
        Freshness::Fresh
    } else {
        Freshness::Stale(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(
            normalize_source("let  x =\n 1; // c\n x"),
            normalize_source("let x = 1;\n/* other */x")
        );
        assert_ne!(normalize_source("x + 1"), normalize_source("x + 2"));
        // unlexable source falls back to text normalization
        assert_eq!(
            normalize_text("a  /* c /* nested */ */ b // x\n c \"s  // kept\""),
            "a b c \"s  // kept\""
        );
        assert_eq!(normalize_source("( a  // c\n"), "( a");
    }

    #[test]
    fn a_changed_environment_is_its_own_reason() {
        let ups: BTreeMap<String, String> = [
            ("a".to_string(), "v1".to_string()),
            ("env:default".to_string(), "lock1".to_string()),
        ]
        .into();
        let cur = AssetVersion {
            own_hash: "h".into(),
            version: version_of("h", &ups),
            upstreams: ups.clone(),
        };
        assert_eq!(cur.environment(), Some(("default", "lock1")));
        assert_eq!(cur.asset_upstreams().count(), 1);
        let mut old = ups.clone();
        old.insert("env:default".into(), "lock0".into());
        let recorded = Recorded {
            own_hash: "h",
            upstream_versions: &old,
        };
        assert_eq!(
            freshness(&cur, Some(recorded)),
            Freshness::Stale(vec![Reason::EnvironmentChanged])
        );
        assert_eq!(
            Reason::EnvironmentChanged.to_string(),
            "environment changed"
        );
        // Another environment (or none recorded before) is a change too.
        let mut other: BTreeMap<String, String> = [("a".to_string(), "v0".to_string())].into();
        other.insert("env:gpu".into(), "x".into());
        assert_eq!(
            freshness(
                &cur,
                Some(Recorded {
                    own_hash: "h",
                    upstream_versions: &other
                })
            ),
            Freshness::Stale(vec![
                Reason::EnvironmentChanged,
                Reason::UpstreamChanged("a".into())
            ])
        );
    }

    #[test]
    fn hex_of_is_hex_encode() {
        let mut h = Sha256::new();
        h.update(b"slurmbook");
        let expected = hex::encode(h.clone().finalize());
        assert_eq!(hex_of(h), expected);
    }

    #[test]
    fn type_normalization() {
        assert_eq!(normalize_type("Vec< u8 >"), normalize_type("Vec<u8>"));
        assert_eq!(normalize_type("( f64 , usize )"), "(f64,usize)");
        assert_eq!(
            normalize_type("&'a  dyn Fn(u8) -> u8"),
            "&'a dyn Fn(u8)->u8"
        );
        assert_ne!(normalize_type("(f64, usize)"), normalize_type("(f64, u64)"));
    }

    #[test]
    fn reasons_render_exactly() {
        assert_eq!(Reason::CodeChanged.to_string(), "code changed");
        assert_eq!(
            Reason::UpstreamChanged("temperatures".into()).to_string(),
            "upstream temperatures changed"
        );
        assert_eq!(Reason::NeverMaterialized.to_string(), "never materialized");
        assert_eq!(
            Freshness::Missing.to_string(),
            "missing (never materialized)"
        );
        assert_eq!(
            Freshness::Stale(vec![
                Reason::CodeChanged,
                Reason::UpstreamChanged("a".into())
            ])
            .to_string(),
            "stale (code changed, upstream a changed)"
        );
    }

    #[test]
    fn freshness_compares_own_hash_and_upstreams() {
        let ups: BTreeMap<String, String> = [("a".to_string(), "v1".to_string())].into();
        let cur = AssetVersion {
            own_hash: "h".into(),
            version: version_of("h", &ups),
            upstreams: ups.clone(),
        };
        assert_eq!(freshness(&cur, None), Freshness::Missing);
        assert_eq!(
            freshness(
                &cur,
                Some(Recorded {
                    own_hash: "h",
                    upstream_versions: &ups
                })
            ),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(
                &cur,
                Some(Recorded {
                    own_hash: "old",
                    upstream_versions: &ups
                })
            ),
            Freshness::Stale(vec![Reason::CodeChanged])
        );
        let old_ups: BTreeMap<String, String> = [
            ("a".to_string(), "v0".to_string()),
            ("gone".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(
            freshness(
                &cur,
                Some(Recorded {
                    own_hash: "h",
                    upstream_versions: &old_ups
                })
            ),
            Freshness::Stale(vec![
                Reason::UpstreamChanged("a".into()),
                Reason::UpstreamChanged("gone".into())
            ])
        );
        assert_ne!(version_of("h", &ups), version_of("h", &old_ups));
        assert_ne!(version_of("h", &ups), version_of("h2", &ups));
    }
}
