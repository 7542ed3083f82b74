//! The asset graph's inputs ([`GraphNode`], [`GraphEdge`]) and the
//! preparation every renderer shares: edges resolved to node indices and
//! deduplicated, cycles broken, and every node given a layer.

use std::collections::{HashMap, VecDeque};

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

    // Break cycles: edges closing a cycle in a depth-first search are laid
    // out backwards.
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &(a, _, _)) in es.iter().enumerate() {
        out[a].push(k);
    }
    let mut reversed = vec![false; es.len()];
    let mut mark = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    for root in 0..n {
        if mark[root] != 0 {
            continue;
        }
        mark[root] = 1;
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (u, i) = *top;
            if let Some(&k) = out[u].get(i) {
                top.1 += 1;
                let v = es[k].1;
                match mark[v] {
                    0 => {
                        mark[v] = 1;
                        stack.push((v, 0));
                    }
                    1 => reversed[k] = true,
                    _ => {}
                }
            } else {
                mark[u] = 2;
                stack.pop();
            }
        }
    }
    let directed: Vec<(usize, usize)> = es
        .iter()
        .zip(&reversed)
        .map(|(&(a, b, _), &r)| if r { (b, a) } else { (a, b) })
        .collect();
    let layer = layers(n, &directed);
    Prepared {
        edges: es,
        reversed,
        layer,
    }
}

/// Longest-path layering (every edge goes to a strictly higher layer), then
/// sources moved right next to their first consumer so that a source used
/// only late does not drag a long edge across the picture.
fn layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    for &(a, b) in edges {
        succs[a].push(b);
        indeg[b] += 1;
    }
    let is_source: Vec<bool> = indeg.iter().map(|&d| d == 0).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    let mut topo = Vec::with_capacity(n);
    let mut layer = vec![0usize; n];
    while let Some(u) = queue.pop_front() {
        topo.push(u);
        for &v in &succs[u] {
            layer[v] = layer[v].max(layer[u] + 1);
            indeg[v] -= 1;
            if indeg[v] == 0 {
                queue.push_back(v);
            }
        }
    }
    for &v in topo.iter().rev() {
        if is_source[v] {
            if let Some(m) = succs[v].iter().map(|&s| layer[s]).min() {
                layer[v] = m - 1;
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
