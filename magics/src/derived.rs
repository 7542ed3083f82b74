//! What a planning pass derives from the analysed specs: the name index,
//! the asset graph, the item index, each asset's item references, own hash
//! and version. A [`Derivation`] keeps the last pass's inputs and results
//! (the [`PlanCache`](crate::PlanCache) holds one), so the next pass
//! recomputes only what changed: an edit to one cell re-hashes that asset,
//! and versions downstream only if its version changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::env_lock::EnvDigests;
use crate::graph::{AssetGraph, GraphError};
use crate::infer::BodyAnalysis;
use crate::items::{DepLine, Item, ItemIndex};
use crate::model::{AssetSpec, CellRef, CheckSpec};
use crate::version::{
    deps_digest, item_digest, own_hash_of_digest, version_after_upstreams, AssetVersion, Versions,
};

/// What the graph and the own hash read of one asset, besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AssetKey {
    name: String,
    cell: CellRef,
    group: Option<String>,
    tags: BTreeMap<String, String>,
    deps: Vec<String>,
    type_annotation: Option<String>,
    env: Option<String>,
    lang: Option<crate::model::Lang>,
    /// The `env:<name>` entry of its version.
    env_entry: Option<(String, String)>,
    /// How it is partitioned (`--partitions-from`/`-like` are edges).
    partitioning: Option<crate::model::PartitionSpec>,
}

impl AssetKey {
    fn of(a: &AssetSpec, envs: &EnvDigests) -> AssetKey {
        AssetKey {
            lang: a.options.lang,
            env_entry: envs.entry(a.options.env.as_deref()),
            name: a.name.clone(),
            cell: a.cell.clone(),
            group: a.options.group.clone(),
            tags: a.options.tags.clone(),
            deps: a.options.deps.clone(),
            type_annotation: a.type_annotation.clone(),
            env: a.options.env.clone(),
            partitioning: a.options.partitioning(),
        }
    }

    fn same_node(&self, a: &AssetSpec) -> bool {
        self.cell == a.cell
            && self.group == a.options.group
            && self.tags == a.options.tags
            && self.deps == a.options.deps
            && self.partitioning == a.options.partitioning()
    }

    fn same_own(&self, a: &AssetSpec, envs: &EnvDigests) -> bool {
        self.type_annotation == a.type_annotation
            && self.env == a.options.env
            && self.lang == a.options.lang
            && self.env_entry == envs.entry(a.options.env.as_deref())
    }
}

/// One pass's results; the parts are shared with the last pass's.
pub(crate) struct Derived {
    pub graph: AssetGraph,
    pub by_name: Arc<FxHashMap<String, usize>>,
    pub item_index: Arc<ItemIndex>,
    pub item_refs: Vec<Arc<[usize]>>,
    pub versions: Versions,
}

/// The last pass's inputs and results, by asset position.
#[derive(Default)]
pub(crate) struct Derivation {
    keys: Vec<AssetKey>,
    analyses: Vec<Arc<BodyAnalysis>>,
    checks: Vec<(String, String)>,
    graph: Option<AssetGraph>,
    by_name: Arc<FxHashMap<String, usize>>,
    item_digests: Vec<[u8; 32]>,
    item_index: Arc<ItemIndex>,
    deps_digest: Option<[u8; 32]>,
    item_refs: Vec<Arc<[usize]>>,
    versions: Vec<Arc<AssetVersion>>,
}

impl Derivation {
    /// Derive a pass's results; `analyses[i]` is `assets[i]`'s body. After
    /// an error the next pass starts from scratch.
    pub(crate) fn derive(
        &mut self,
        assets: &[AssetSpec],
        checks: &[CheckSpec],
        items: &[Item],
        deps: &[DepLine],
        analyses: &[Arc<BodyAnalysis>],
        envs: &EnvDigests,
    ) -> Result<Derived, GraphError> {
        let result = self.update(assets, checks, items, deps, analyses, envs);
        if result.is_err() {
            *self = Derivation::default();
        }
        result
    }

    fn update(
        &mut self,
        assets: &[AssetSpec],
        checks: &[CheckSpec],
        items: &[Item],
        deps: &[DepLine],
        analyses: &[Arc<BodyAnalysis>],
        envs: &EnvDigests,
    ) -> Result<Derived, GraphError> {
        let n = assets.len();
        // Per-asset results are kept by position while the names stay.
        let fresh =
            !(self.keys.len() == n && self.keys.iter().zip(assets).all(|(k, a)| k.name == a.name));
        if fresh {
            self.keys = assets.iter().map(|a| AssetKey::of(a, envs)).collect();
            self.by_name = Arc::new(
                assets
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.name.clone(), i))
                    .collect(),
            );
            self.graph = None;
        }
        let same_checks = self.checks.len() == checks.len()
            && self
                .checks
                .iter()
                .zip(checks)
                .all(|((asset, name), c)| *asset == c.asset && *name == c.name);
        let mut same_graph = self.graph.is_some() && same_checks;
        // Same normalized body: same free and mentioned identifiers.
        let mut same_body = vec![false; n];
        let mut same_own = vec![false; n];
        if !fresh {
            for (i, a) in assets.iter().enumerate() {
                let (prev, now) = (&self.analyses[i], &analyses[i]);
                same_body[i] = Arc::ptr_eq(prev, now) || prev.digest == now.digest;
                let key = &mut self.keys[i];
                same_graph &= key.same_node(a) && (same_body[i] || prev.free == now.free);
                let own = key.same_own(a, envs);
                same_own[i] = same_body[i] && own;
                if !(key.same_node(a) && own) {
                    *key = AssetKey::of(a, envs);
                }
            }
        }
        if !same_graph {
            let free: Vec<&BTreeSet<String>> = analyses.iter().map(|a| &a.free).collect();
            self.graph = Some(AssetGraph::build(assets, &free, checks)?);
            self.checks = checks
                .iter()
                .map(|c| (c.asset.clone(), c.name.clone()))
                .collect();
        }
        let graph = self.graph.clone().expect("built above");

        let item_digests: Vec<[u8; 32]> = items.iter().map(item_digest).collect();
        let same_items = item_digests == self.item_digests;
        if !same_items {
            self.item_index = Arc::new(ItemIndex::new(items));
            self.item_digests = item_digests;
        }
        let deps_hash = deps_digest(deps);
        let same_deps = self.deps_digest == Some(deps_hash);
        self.deps_digest = Some(deps_hash);

        if fresh {
            self.item_refs = vec![Arc::from(Vec::new()); n];
        }
        let mut own_hashes: Vec<Option<String>> = vec![None; n];
        let mut scratch: Vec<[u8; 32]> = Vec::new();
        for (i, a) in assets.iter().enumerate() {
            let same_refs = !fresh && same_items && same_body[i];
            if !same_refs {
                self.item_refs[i] = self.item_index.referenced(analyses[i].mentioned()).into();
            }
            if same_refs && same_deps && same_own[i] {
                continue;
            }
            scratch.clear();
            scratch.extend(self.item_refs[i].iter().map(|&r| self.item_digests[r]));
            // Python and bash bodies cannot see `:dep` lines.
            let deps_of = if a.lang().is_foreign() {
                &[0u8; 32]
            } else {
                &deps_hash
            };
            own_hashes[i] = Some(own_hash_of_digest(
                a,
                &analyses[i].digest,
                &scratch,
                deps_of,
            ));
        }

        let old = std::mem::take(&mut self.versions);
        let mut new: Vec<Option<Arc<AssetVersion>>> = vec![None; n];
        let mut changed = vec![true; n];
        for i in graph.topo_indices() {
            let current = |u: usize| new[u].as_ref().expect("upstreams come first");
            let reusable = !fresh
                && own_hashes[i].is_none()
                && if same_graph {
                    graph.upstream_indices(i).all(|u| !changed[u])
                } else {
                    let prev = &old[i].upstreams;
                    // The environment entry did not change (else own_hashes[i]).
                    let mut count = usize::from(self.keys[i].env_entry.is_some());
                    graph.upstream_indices(i).all(|u| {
                        count += 1;
                        prev.get(graph.name_at(u)) == Some(&current(u).version)
                    }) && count == prev.len()
                };
            if reusable {
                changed[i] = false;
                new[i] = Some(old[i].clone());
                continue;
            }
            let own = own_hashes[i]
                .take()
                .unwrap_or_else(|| old[i].own_hash.clone());
            let v =
                version_after_upstreams(&graph, i, own, self.keys[i].env_entry.as_ref(), current);
            changed[i] = fresh || v.version != old[i].version;
            new[i] = Some(Arc::new(v));
        }
        self.versions = new
            .into_iter()
            .map(|v| v.expect("every asset visited"))
            .collect();
        self.analyses = analyses.to_vec();
        Ok(Derived {
            graph,
            by_name: self.by_name.clone(),
            item_index: self.item_index.clone(),
            item_refs: self.item_refs.clone(),
            versions: Versions::from_parts(self.by_name.clone(), self.versions.clone()),
        })
    }
}
