//! The asset graph: nodes are assets (with their checks), edges go from an
//! upstream asset to the asset that uses it (inferred) or orders after it
//! (`--deps`); its topological order and cycle errors. Selections are
//! evaluated in `select`.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{AssetSpec, CellRef, CheckSpec};

mod select;

pub use select::{SelectionError, StateAtom};

/// Why an edge exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The body uses the upstream asset's value.
    Data,
    /// `--deps`: run after it, without using its value.
    Order,
    /// Both.
    DataAndOrder,
}

impl EdgeKind {
    pub fn carries_data(self) -> bool {
        matches!(self, EdgeKind::Data | EdgeKind::DataAndOrder)
    }
}

/// One asset in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetNode {
    pub name: String,
    pub cell: CellRef,
    pub group: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Names of the checks attached to the asset.
    pub checks: Vec<String>,
}

/// An invalid graph. Each error names the assets and cells involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphError {
    #[error("dependency cycle between assets: {} (`a -> b`: b depends on a); cells: {}",
        .path.join(" -> "),
        .cells.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))]
    Cycle {
        /// The cycle, first asset repeated at the end: `[a, b, c, a]`.
        path: Vec<String>,
        cells: Vec<CellRef>,
    },
    #[error("asset `{name}` is declared twice: in {first} and in {second}")]
    Duplicate {
        name: String,
        first: CellRef,
        second: CellRef,
    },
    #[error("asset `{asset}` ({cell}) has `--{option} {dep}`, but there is no asset `{dep}`")]
    UnknownDep {
        asset: String,
        /// The option naming it: `deps`, `partitions-from` or `partitions-like`.
        option: &'static str,
        dep: String,
        cell: CellRef,
    },
    #[error("check `{check}` ({cell}) is on asset `{asset}`, but there is no asset `{asset}`")]
    UnknownCheckAsset {
        check: String,
        asset: String,
        cell: CellRef,
    },
}

/// The dependency graph of a notebook's assets. Cloning is cheap (the
/// parts are shared), so a re-plan can keep an unchanged graph.
#[derive(Debug, Clone)]
pub struct AssetGraph {
    graph: Arc<DiGraph<AssetNode, EdgeKind>>,
    index: Arc<FxHashMap<String, NodeIndex>>,
    /// Nodes in topological order (ties broken by notebook order).
    topo: Arc<[NodeIndex]>,
    /// Position of each node (by index) in `topo`.
    position: Arc<[usize]>,
}

impl AssetGraph {
    /// Build the graph. `free[i]` are the free identifiers of `assets[i]`'s
    /// body; those that name another asset are its data dependencies.
    pub fn build<F: Borrow<BTreeSet<String>>>(
        assets: &[AssetSpec],
        free: &[F],
        checks: &[CheckSpec],
    ) -> Result<AssetGraph, GraphError> {
        assert_eq!(
            assets.len(),
            free.len(),
            "one set of free identifiers per asset"
        );
        let mut graph = DiGraph::with_capacity(assets.len(), assets.len() * 2);
        let mut index: FxHashMap<String, NodeIndex> =
            FxHashMap::with_capacity_and_hasher(assets.len(), Default::default());
        for a in assets {
            if let Some(&first) = index.get(&a.name) {
                let first: &AssetNode = &graph[first];
                return Err(GraphError::Duplicate {
                    name: a.name.clone(),
                    first: first.cell.clone(),
                    second: a.cell.clone(),
                });
            }
            let node = graph.add_node(AssetNode {
                name: a.name.clone(),
                cell: a.cell.clone(),
                group: a.options.group.clone(),
                tags: a.options.tags.clone(),
                checks: Vec::new(),
            });
            index.insert(a.name.clone(), node);
        }
        let mut ups: Vec<(NodeIndex, EdgeKind)> = Vec::new();
        for (i, a) in assets.iter().enumerate() {
            ups.clear();
            for f in free[i].borrow() {
                if *f != a.name {
                    if let Some(&u) = index.get(f) {
                        ups.push((u, EdgeKind::Data));
                    }
                }
            }
            // `--partitions-from` and `--partitions-like` name an asset that
            // must be materialized first, as `--deps` does.
            let partition_source = a.options.partitioning();
            let partition_source = partition_source.as_ref().and_then(|p| p.source());
            for d in a
                .options
                .deps
                .iter()
                .map(String::as_str)
                .chain(partition_source)
            {
                let Some(&u) = index.get(d) else {
                    return Err(GraphError::UnknownDep {
                        asset: a.name.clone(),
                        option: if a.options.deps.iter().any(|x| x == d) {
                            "deps"
                        } else if a.options.partitions_from.is_some() {
                            "partitions-from"
                        } else {
                            "partitions-like"
                        },
                        dep: d.to_string(),
                        cell: a.cell.clone(),
                    });
                };
                match ups.iter_mut().find(|(x, _)| *x == u) {
                    Some(e) => e.1 = EdgeKind::DataAndOrder,
                    None => ups.push((u, EdgeKind::Order)),
                }
            }
            let me = NodeIndex::new(i);
            for &(u, kind) in &ups {
                graph.add_edge(u, me, kind);
            }
        }
        for c in checks {
            let Some(&node) = index.get(&c.asset) else {
                return Err(GraphError::UnknownCheckAsset {
                    check: c.name.clone(),
                    asset: c.asset.clone(),
                    cell: c.cell.clone(),
                });
            };
            graph[node].checks.push(c.name.clone());
        }
        let topo = notebook_topo_order(&graph)?;
        let mut position = vec![0; graph.node_count()];
        for (p, n) in topo.iter().enumerate() {
            position[n.index()] = p;
        }
        Ok(AssetGraph {
            graph: Arc::new(graph),
            index: Arc::new(index),
            topo: topo.into(),
            position: position.into(),
        })
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn node(&self, name: &str) -> Option<&AssetNode> {
        self.index.get(name).map(|&n| &self.graph[n])
    }

    /// Asset indices (positions in the `assets` given to `build`) in
    /// topological order.
    pub fn topo_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.topo.iter().map(|n| n.index())
    }

    /// Indices of the direct upstreams of the asset at `index`.
    pub fn upstream_indices(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(index), Direction::Incoming)
            .map(|n| n.index())
    }

    /// The name of the asset at `index`.
    pub fn name_at(&self, index: usize) -> &str {
        &self.graph[NodeIndex::new(index)].name
    }

    /// The index of an asset.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).map(|n| n.index())
    }

    /// Every asset in topological order (upstreams first, ties in notebook order).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.topo.iter().map(|&n| self.graph[n].name.as_str())
    }

    /// Direct upstreams of `name` with the kind of edge, in topological order.
    pub fn dependencies(&self, name: &str) -> Vec<(&str, EdgeKind)> {
        self.neighbors(name, Direction::Incoming)
    }

    /// Direct downstreams of `name`, in topological order.
    pub fn dependents(&self, name: &str) -> Vec<(&str, EdgeKind)> {
        self.neighbors(name, Direction::Outgoing)
    }

    fn neighbors(&self, name: &str, dir: Direction) -> Vec<(&str, EdgeKind)> {
        let Some(&n) = self.index.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<(NodeIndex, EdgeKind)> = self
            .graph
            .edges_directed(n, dir)
            .map(|e| {
                use petgraph::visit::EdgeRef;
                (
                    if dir == Direction::Incoming {
                        e.source()
                    } else {
                        e.target()
                    },
                    *e.weight(),
                )
            })
            .collect();
        out.sort_by_key(|(n, _)| self.position[n.index()]);
        out.into_iter()
            .map(|(n, k)| (self.graph[n].name.as_str(), k))
            .collect()
    }

    /// All edges as (upstream, downstream, kind), in topological order of the downstream.
    pub fn edges(&self) -> Vec<(&str, &str, EdgeKind)> {
        let mut out = Vec::with_capacity(self.graph.edge_count());
        for &n in self.topo.iter() {
            for (u, k) in self.dependencies(&self.graph[n].name) {
                out.push((u, self.graph[n].name.as_str(), k));
            }
        }
        out
    }

    /// `names` (unknown ones dropped) in topological order.
    pub fn topo_order<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut nodes: Vec<NodeIndex> = names
            .into_iter()
            .filter_map(|n| self.index.get(n).copied())
            .collect();
        nodes.sort_by_key(|n| self.position[n.index()]);
        nodes.dedup();
        nodes
            .into_iter()
            .map(|n| self.graph[n].name.clone())
            .collect()
    }
}

/// Topological order, smallest notebook index first among the ready
/// assets; on a cycle, the cycle's path. Kahn's algorithm with a min-heap
/// is kept by hand: petgraph's `toposort` and `Topo` do not promise an order
/// among independent nodes, and users see notebook order.
fn notebook_topo_order(graph: &DiGraph<AssetNode, EdgeKind>) -> Result<Vec<NodeIndex>, GraphError> {
    let n = graph.node_count();
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|i| graph.neighbors_directed(i, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(NodeIndex::new(i));
        for m in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.push(Reverse(m.index()));
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err(cycle_error(graph))
    }
}

/// The cycle through the earliest asset (in notebook order) that is on
/// one: its strongly connected component (petgraph's `tarjan_scc`), walked
/// upstream from that asset, always to the earliest predecessor in the
/// component, until the walk comes back.
fn cycle_error(graph: &DiGraph<AssetNode, EdgeKind>) -> GraphError {
    let on_cycle = |scc: &Vec<NodeIndex>| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
    let scc = tarjan_scc(graph)
        .into_iter()
        .filter(on_cycle)
        .min_by_key(|scc| scc.iter().min().copied())
        .expect("a graph without a topological order has a cycle");
    let in_scc = |n: &NodeIndex| scc.contains(n);
    let start = *scc.iter().min().expect("a component is not empty");
    let mut walk = vec![start];
    loop {
        let cur = *walk.last().expect("the walk starts with one node");
        let pred = graph
            .neighbors_directed(cur, Direction::Incoming)
            .filter(in_scc)
            .min()
            .expect("a node on a cycle has a predecessor on it");
        if let Some(at) = walk.iter().position(|&n| n == pred) {
            // walk[at..] is the cycle, in downstream-to-upstream order.
            let mut cycle: Vec<NodeIndex> = walk[at..].to_vec();
            cycle.reverse();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &n)| n)
                .map_or(0, |(p, _)| p);
            cycle.rotate_left(first);
            let mut path: Vec<String> = cycle.iter().map(|&n| graph[n].name.clone()).collect();
            path.push(path[0].clone());
            let cells = cycle.iter().map(|&n| graph[n].cell.clone()).collect();
            return GraphError::Cycle { path, cells };
        }
        walk.push(pred);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AssetOptions;
    use crate::syntax::selection::parse_selection;

    fn spec(index: usize, name: &str, options: AssetOptions) -> AssetSpec {
        AssetSpec {
            name: name.into(),
            type_annotation: None,
            options,
            body: String::new(),
            cell: CellRef::saved(index, None),
        }
    }

    /// Build from (name, uses) pairs.
    fn graph(defs: &[(&str, &[&str])]) -> Result<AssetGraph, GraphError> {
        let assets: Vec<AssetSpec> = defs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| spec(i, n, AssetOptions::default()))
            .collect();
        let free: Vec<BTreeSet<String>> = defs
            .iter()
            .map(|(_, u)| u.iter().map(|s| s.to_string()).collect())
            .collect();
        AssetGraph::build(&assets, &free, &[])
    }

    fn diamond() -> AssetGraph {
        // a -> b, a -> c, b -> d, c -> d, d -> e
        graph(&[
            ("e", &["d"]),
            ("d", &["b", "c", "println"]),
            ("b", &["a"]),
            ("c", &["a", "c"]),
            ("a", &[]),
        ])
        .unwrap()
    }

    fn sel(g: &AssetGraph, s: &str) -> Vec<String> {
        g.select(&parse_selection(s).unwrap(), |n| n == "b" || n == "e")
            .unwrap()
    }

    #[test]
    fn diamond_topology() {
        let g = diamond();
        assert_eq!(g.names().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
        assert_eq!(
            g.dependencies("d"),
            [("b", EdgeKind::Data), ("c", EdgeKind::Data)]
        );
        assert_eq!(
            g.dependents("a"),
            [("b", EdgeKind::Data), ("c", EdgeKind::Data)]
        );
        assert!(
            g.dependencies("c").iter().all(|(n, _)| *n != "c"),
            "no self edge"
        );
        assert_eq!(g.upstream("d", None).unwrap(), ["a", "b", "c"]);
        assert_eq!(g.upstream("e", Some(1)).unwrap(), ["d"]);
        assert_eq!(g.downstream("a", Some(2)).unwrap(), ["b", "c", "d"]);
        assert_eq!(g.downstream("a", None).unwrap(), ["b", "c", "d", "e"]);
        assert_eq!(g.topo_order(["e", "a", "c", "nope"]), ["a", "c", "e"]);
        assert_eq!(g.edges().len(), 5);
    }

    #[test]
    fn selections() {
        let g = diamond();
        assert_eq!(sel(&g, "d"), ["d"]);
        assert_eq!(sel(&g, "+d"), ["a", "b", "c", "d"]);
        assert_eq!(sel(&g, "d+"), ["d", "e"]);
        assert_eq!(sel(&g, "1+d"), ["b", "c", "d"]);
        assert_eq!(sel(&g, "2+e"), ["b", "c", "d", "e"]);
        assert_eq!(sel(&g, "a+1"), ["a", "b", "c"]);
        assert_eq!(sel(&g, "1+b+1"), ["a", "b", "d"]);
        assert_eq!(sel(&g, "+b+"), ["a", "b", "d", "e"]);
        assert_eq!(sel(&g, "*"), ["a", "b", "c", "d", "e"]);
        assert_eq!(sel(&g, "stale"), ["b", "e"]);
        assert_eq!(sel(&g, "+d and not stale"), ["a", "c", "d"]);
        assert_eq!(sel(&g, "a, e"), ["a", "e"]);
        assert_eq!(sel(&g, "b or c and d"), ["b"]);
        assert_eq!(sel(&g, "(b or c) and +d"), ["b", "c"]);
        assert_eq!(sel(&g, "not *"), Vec::<String>::new());
        let e = g
            .select(&parse_selection("+dd").unwrap(), |_| false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no asset named `dd` in the notebook (did you mean `d`?)"
        );
    }

    #[test]
    fn groups_tags_and_checks() {
        let o1 = AssetOptions {
            group: Some("etl".into()),
            tags: [("team".to_string(), "geo".to_string())].into(),
            ..Default::default()
        };
        let o2 = AssetOptions {
            tags: [("team".to_string(), "bio".to_string())].into(),
            ..Default::default()
        };
        let assets = vec![
            spec(0, "x", o1),
            spec(1, "y", o2),
            spec(2, "z", AssetOptions::default()),
        ];
        let free = vec![BTreeSet::new(); 3];
        let checks = vec![CheckSpec {
            asset: "y".into(),
            name: "positive".into(),
            body: "true".into(),
            cell: CellRef::saved(3, None),
        }];
        let g = AssetGraph::build(&assets, &free, &checks).unwrap();
        let s = |t: &str| g.select(&parse_selection(t).unwrap(), |_| false).unwrap();
        assert_eq!(s("group:etl"), ["x"]);
        assert_eq!(s("group:none"), Vec::<String>::new());
        assert_eq!(s("tag:team"), ["x", "y"]);
        assert_eq!(s("tag:team=bio"), ["y"]);
        assert_eq!(s("not tag:team"), ["z"]);
        assert_eq!(g.node("y").unwrap().checks, ["positive"]);

        let bad = vec![CheckSpec {
            asset: "w".into(),
            name: "c".into(),
            body: String::new(),
            cell: CellRef::saved(7, None),
        }];
        let e = AssetGraph::build(&assets, &free, &bad).unwrap_err();
        assert!(matches!(&e, GraphError::UnknownCheckAsset { asset, .. } if asset == "w"));
        assert!(e.to_string().contains("cell 7"), "{e}");
    }

    #[test]
    fn cycle_reports_its_path() {
        let e = graph(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["a"])]).unwrap_err();
        let GraphError::Cycle { path, cells } = &e else {
            panic!("{e}")
        };
        assert_eq!(path, &["a", "b", "c", "a"]);
        assert_eq!(cells.len(), 3);
        assert!(e.to_string().contains("a -> b -> c -> a"), "{e}");
        // a two-cycle downstream of an acyclic part
        let e = graph(&[("root", &[]), ("p", &["root", "q"]), ("q", &["p"])]).unwrap_err();
        assert!(e.to_string().contains("p -> q -> p"), "{e}");
        // self dependency through --deps
        let o = AssetOptions {
            deps: vec!["s".into()],
            ..Default::default()
        };
        let e = AssetGraph::build(&[spec(0, "s", o)], &[BTreeSet::new()], &[]).unwrap_err();
        assert!(e.to_string().contains("s -> s"), "{e}");
    }

    #[test]
    fn duplicate_names_both_cells() {
        let assets = vec![
            spec(2, "a", AssetOptions::default()),
            spec(5, "a", AssetOptions::default()),
        ];
        let e = AssetGraph::build(&assets, &[BTreeSet::new(), BTreeSet::new()], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "asset `a` is declared twice: in cell 2 and in cell 5"
        );
    }

    #[test]
    fn order_only_deps() {
        let o = AssetOptions {
            deps: vec!["a".into()],
            ..Default::default()
        };
        let o2 = AssetOptions {
            deps: vec!["a".into()],
            ..Default::default()
        };
        let assets = vec![
            spec(0, "a", AssetOptions::default()),
            spec(1, "b", o),
            spec(2, "c", o2),
        ];
        let free = vec![BTreeSet::new(), BTreeSet::new(), ["a".to_string()].into()];
        let g = AssetGraph::build(&assets, &free, &[]).unwrap();
        assert_eq!(g.dependencies("b"), [("a", EdgeKind::Order)]);
        assert_eq!(g.dependencies("c"), [("a", EdgeKind::DataAndOrder)]);

        let bad = AssetOptions {
            deps: vec!["ghost".into()],
            ..Default::default()
        };
        let e = AssetGraph::build(&[spec(4, "b", bad)], &[BTreeSet::new()], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "asset `b` (cell 4) has `--deps ghost`, but there is no asset `ghost`"
        );
    }
}
