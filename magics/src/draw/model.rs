//! The asset graph's inputs ([`GraphNode`], [`GraphEdge`]) and the
//! preparation every renderer shares: edges resolved to node indices and
//! deduplicated, cycles broken, and every node given a layer (petgraph does
//! the graph work).

use std::collections::HashMap;

use petgraph::algo::{greedy_feedback_arc_set, is_cyclic_directed, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction::Incoming;

/// One asset to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    pub name: String,
    /// One of: fresh, stale, missing, running, queued, done, failed, skipped,
    /// cancelled (anything else: neutral).
    pub state: String,
    /// Optional second line, e.g. "code changed" or "done in 1.2 s".
    pub detail: Option<String>,
    pub group: Option<String>,
    /// Number of `%%check` cells attached (drawn as a small "✓2" badge when > 0).
    pub checks: usize,
    /// The asset's freshness policy state, drawn as a badge.
    pub freshness: Option<Badge>,
}

/// A freshness policy badge: `state` is PASS, WARN, FAIL or UNKNOWN (its
/// colour), `text` says more (`overdue by 40 m`).
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    pub state: String,
    pub text: String,
}

/// The badges' colours: PASS green, WARN orange, FAIL red, UNKNOWN grey.
pub(super) fn badge_color(state: &str) -> &'static str {
    match state {
        "PASS" => "#2e7d32",
        "WARN" => "#ef6c00",
        "FAIL" => "#c62828",
        _ => "#757575",
    }
}

/// A dependency: `to` uses (or runs after) `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    /// Order-only (`--deps`) edges are dashed.
    pub order_only: bool,
}

/// Edges resolved to node indices, deduplicated (a data edge wins over an
/// order-only one), without self-loops or unknown endpoints; plus the layer
/// of every node.
pub(super) struct Prepared {
    /// `(from, to, order_only)`.
    pub(super) edges: Vec<(usize, usize, bool)>,
    /// Laid out backwards to break a cycle.
    pub(super) reversed: Vec<bool>,
    pub(super) layer: Vec<usize>,
}

pub(super) fn prepare(nodes: &[GraphNode], edges: &[GraphEdge]) -> Prepared {
    let n = nodes.len();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        index.entry(node.name.as_str()).or_insert(i);
    }
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    let mut es: Vec<(usize, usize, bool)> = Vec::new();
    for e in edges {
        let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else {
            continue;
        };
        if a == b {
            continue;
        }
        match seen.get(&(a, b)) {
            Some(&k) => es[k].2 &= e.order_only,
            None => {
                seen.insert((a, b), es.len());
                es.push((a, b, e.order_only));
            }
        }
    }

    // Cycles are an error upstream, but drawing never fails: the edges of a
    // feedback arc set are laid out backwards.
    let mut graph: DiGraph<(), usize> = DiGraph::with_capacity(n, es.len());
    for _ in 0..n {
        graph.add_node(());
    }
    for (k, &(a, b, _)) in es.iter().enumerate() {
        graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), k);
    }
    let mut reversed = vec![false; es.len()];
    if is_cyclic_directed(&graph) {
        for e in greedy_feedback_arc_set(&graph) {
            reversed[*e.weight()] = true;
        }
        graph.clear_edges();
        for (k, &(a, b, _)) in es.iter().enumerate() {
            let (s, t) = if reversed[k] { (b, a) } else { (a, b) };
            graph.add_edge(NodeIndex::new(s), NodeIndex::new(t), k);
        }
    }
    let layer = layers(&graph);
    Prepared {
        edges: es,
        reversed,
        layer,
    }
}

/// Longest-path layering (every edge goes to a strictly higher layer), then
/// sources moved right next to their first consumer so that a source used
/// only late does not drag a long edge across the picture.
fn layers(graph: &DiGraph<(), usize>) -> Vec<usize> {
    // Acyclic: `prepare` reversed a feedback arc set.
    let topo = toposort(graph, None).unwrap_or_else(|_| graph.node_indices().collect());
    let mut layer = vec![0usize; graph.node_count()];
    for &v in &topo {
        for w in graph.neighbors(v) {
            layer[w.index()] = layer[w.index()].max(layer[v.index()] + 1);
        }
    }
    for &v in topo.iter().rev() {
        if graph.neighbors_directed(v, Incoming).next().is_none() {
            if let Some(m) = graph.neighbors(v).map(|w| layer[w.index()]).min() {
                layer[v.index()] = m - 1;
            }
        }
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{edge, node};
    use super::*;

    #[test]
    fn sources_sit_next_to_their_first_consumer() {
        let nodes = vec![
            node("a", "fresh"),
            node("b", "fresh"),
            node("c", "fresh"),
            node("config", "fresh"),
        ];
        let edges = vec![edge("a", "b"), edge("b", "c"), edge("config", "c")];
        let p = prepare(&nodes, &edges);
        assert_eq!(p.layer, vec![0, 1, 2, 1]);
    }
}
