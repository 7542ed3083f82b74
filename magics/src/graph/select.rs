//! Evaluating selections (`+a`, `2+b+`, `group:etl and not stale`...) and
//! up/downstream closures on the asset graph.

use std::collections::BTreeSet;

use petgraph::graph::NodeIndex;
use petgraph::visit::{Bfs, Reversed, Walker};
use petgraph::Direction;
use thiserror::Error;

use crate::syntax::selection::Selection;

use super::AssetGraph;

/// A selection that names something the graph lacks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectionError {
    #[error("no asset named `{name}` in the notebook{}", .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownAsset {
        name: String,
        suggestion: Option<String>,
    },
}

/// The selection atoms that ask about an asset's state: `stale` (code
/// changed since its last success), `overdue` (its freshness policy FAILs)
/// and `warn` (it WARNs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateAtom {
    Stale,
    Overdue,
    Warn,
}

impl AssetGraph {
    /// Mark what `start` reaches along `dir` within `depth` edges (`None`:
    /// any number; `start` itself may be marked too). Unbounded walks are
    /// petgraph's `Bfs`; it has no depth limit, so a limited walk goes
    /// layer by layer by hand.
    fn walk(&self, start: NodeIndex, dir: Direction, depth: Option<usize>, mark: &mut [bool]) {
        let Some(max) = depth else {
            let mut visit = |n: NodeIndex| mark[n.index()] = true;
            match dir {
                Direction::Outgoing => Bfs::new(&*self.graph, start)
                    .iter(&*self.graph)
                    .for_each(&mut visit),
                Direction::Incoming => {
                    let up = Reversed(&*self.graph);
                    Bfs::new(up, start).iter(up).for_each(&mut visit)
                }
            }
            return;
        };
        let mut layer = vec![start];
        for _ in 0..max {
            let mut next = Vec::new();
            for n in layer {
                for m in self.graph.neighbors_directed(n, dir) {
                    if !mark[m.index()] {
                        mark[m.index()] = true;
                        next.push(m);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            layer = next;
        }
    }

    fn closure(
        &self,
        name: &str,
        dir: Direction,
        depth: Option<usize>,
    ) -> Result<Vec<String>, SelectionError> {
        let &n = self.index.get(name).ok_or_else(|| self.unknown(name))?;
        let mut mark = vec![false; self.len()];
        self.walk(n, dir, depth, &mut mark);
        mark[n.index()] = false;
        Ok(self.marked(&mark))
    }

    /// Everything upstream of `name` (not itself), up to `depth` layers
    /// (`None`: all), in topological order.
    pub fn upstream(
        &self,
        name: &str,
        depth: Option<usize>,
    ) -> Result<Vec<String>, SelectionError> {
        self.closure(name, Direction::Incoming, depth)
    }

    /// Everything downstream of `name` (not itself), up to `depth` layers.
    pub fn downstream(
        &self,
        name: &str,
        depth: Option<usize>,
    ) -> Result<Vec<String>, SelectionError> {
        self.closure(name, Direction::Outgoing, depth)
    }

    fn marked(&self, mark: &[bool]) -> Vec<String> {
        self.topo
            .iter()
            .filter(|n| mark[n.index()])
            .map(|&n| self.graph[n].name.clone())
            .collect()
    }

    fn unknown(&self, name: &str) -> SelectionError {
        let suggestion = self
            .index
            .keys()
            .map(|k| (edit_distance(name, k), k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min()
            .map(|(_, k)| k.clone());
        SelectionError::UnknownAsset {
            name: name.to_string(),
            suggestion,
        }
    }

    /// Evaluate a selection; the result is in topological order.
    /// `is_stale` answers `stale` for one asset (`overdue` and `warn`
    /// select nothing: see [`AssetGraph::select_states`]).
    pub fn select(
        &self,
        selection: &Selection,
        is_stale: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, SelectionError> {
        self.select_states(selection, |atom, name| {
            atom == StateAtom::Stale && is_stale(name)
        })
    }

    /// Evaluate a selection whose state atoms (`stale`, `overdue`, `warn`)
    /// `is` answers for one asset; the result is in topological order.
    pub fn select_states(
        &self,
        selection: &Selection,
        is: impl Fn(StateAtom, &str) -> bool,
    ) -> Result<Vec<String>, SelectionError> {
        let mark = self.eval(selection, &is)?;
        Ok(self.marked(&mark))
    }

    /// Like [`AssetGraph::select`], as a set.
    pub fn select_set(
        &self,
        selection: &Selection,
        is_stale: impl Fn(&str) -> bool,
    ) -> Result<BTreeSet<String>, SelectionError> {
        Ok(self.select(selection, is_stale)?.into_iter().collect())
    }

    fn eval(
        &self,
        sel: &Selection,
        is: &dyn Fn(StateAtom, &str) -> bool,
    ) -> Result<Vec<bool>, SelectionError> {
        let n = self.len();
        let nodes = self.graph.node_indices();
        let atom = |a: StateAtom| -> Vec<bool> {
            self.graph
                .node_indices()
                .map(|i| is(a, &self.graph[i].name))
                .collect()
        };
        Ok(match sel {
            Selection::All => vec![true; n],
            Selection::Stale => atom(StateAtom::Stale),
            Selection::Overdue => atom(StateAtom::Overdue),
            Selection::Warn => atom(StateAtom::Warn),
            Selection::Group(g) => nodes
                .map(|i| self.graph[i].group.as_deref() == Some(g.as_str()))
                .collect(),
            Selection::Tag { key, value } => nodes
                .map(|i| match (self.graph[i].tags.get(key), value) {
                    (Some(v), Some(want)) => v == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                })
                .collect(),
            Selection::Partitions { name, .. } => {
                let &one = self.index.get(name).ok_or_else(|| self.unknown(name))?;
                let mut mark = vec![false; n];
                mark[one.index()] = true;
                mark
            }
            Selection::Asset {
                name,
                upstream,
                downstream,
            } => {
                let &start = self.index.get(name).ok_or_else(|| self.unknown(name))?;
                let mut mark = vec![false; n];
                mark[start.index()] = true;
                if let Some(l) = upstream {
                    self.walk(start, Direction::Incoming, l.limit(), &mut mark);
                }
                if let Some(l) = downstream {
                    self.walk(start, Direction::Outgoing, l.limit(), &mut mark);
                }
                mark[start.index()] = true;
                mark
            }
            Selection::Union(items) => {
                let mut acc = vec![false; n];
                for s in items {
                    for (a, b) in acc.iter_mut().zip(self.eval(s, is)?) {
                        *a |= b;
                    }
                }
                acc
            }
            Selection::Or(a, b) => {
                let (a, b) = (self.eval(a, is)?, self.eval(b, is)?);
                a.into_iter().zip(b).map(|(x, y)| x || y).collect()
            }
            Selection::And(a, b) => {
                let (a, b) = (self.eval(a, is)?, self.eval(b, is)?);
                a.into_iter().zip(b).map(|(x, y)| x && y).collect()
            }
            Selection::Not(a) => self.eval(a, is)?.into_iter().map(|x| !x).collect(),
        })
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
