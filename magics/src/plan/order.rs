//! Topological order of a run's jobs or steps, given as "index i waits for
//! these earlier-or-later indices": kept as given when it already is one
//! (plans list steps in topological order, so results stay stable), else
//! petgraph's.

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::DiGraph;

/// The order, or the members of a cycle (sorted).
pub fn topo_order(ups: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    if ups
        .iter()
        .enumerate()
        .all(|(i, us)| us.iter().all(|&u| u < i))
    {
        return Ok((0..ups.len()).collect());
    }
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(ups.len(), 0);
    let nodes: Vec<_> = (0..ups.len()).map(|i| g.add_node(i)).collect();
    for (i, us) in ups.iter().enumerate() {
        for &u in us {
            g.add_edge(nodes[u], nodes[i], ());
        }
    }
    toposort(&g, None)
        .map(|order| order.into_iter().map(|n| g[n]).collect())
        .map_err(|_| {
            let mut cycle: Vec<usize> = tarjan_scc(&g)
                .into_iter()
                .find(|scc| scc.len() > 1 || g.contains_edge(scc[0], scc[0]))
                .unwrap_or_default()
                .into_iter()
                .map(|n| g[n])
                .collect();
            cycle.sort();
            cycle
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_topological_order_and_sorts_others() {
        assert_eq!(
            topo_order(&[vec![], vec![0], vec![0, 1]]),
            Ok(vec![0, 1, 2])
        );
        let order = topo_order(&[vec![1], vec![], vec![0]]).unwrap();
        let pos = |i| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(1) < pos(0) && pos(0) < pos(2), "{order:?}");
        assert_eq!(topo_order(&[vec![1], vec![0], vec![]]), Err(vec![0, 1]));
        assert_eq!(topo_order(&[vec![0]]), Err(vec![0]));
    }
}
