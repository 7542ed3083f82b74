//! Where the SVG's boxes and edges go: a plain layered drawing, left to
//! right. Every layer of [`prepare`] is a column; an edge spanning several
//! columns passes through a slot of its own in each column between, so it
//! never crosses a box; one barycenter pass each way orders the columns;
//! each column is packed and centred vertically.

use super::model::{prepare, GraphEdge, GraphNode};
use super::{one_line, text_px, truncate};

pub(super) const FONT_PX: f64 = 13.0;
pub(super) const DETAIL_PX: f64 = 11.0;
pub(super) const LEGEND_PX: f64 = 12.0;
pub(super) const PAD_X: f64 = 14.0;
pub(super) const MARGIN: f64 = 20.0;
pub(super) const NAME_MAX: usize = 28;
const DETAIL_MAX: usize = 36;
const MIN_BOX_W: f64 = 84.0;
const BOX_H: f64 = 34.0;
const BOX_H_DETAIL: f64 = 48.0;
/// Height of the slot a long edge takes in a column it passes.
const SLOT_H: f64 = 2.0;
/// Past this many slots in all (only huge graphs), long edges are drawn
/// straight across the columns between, without slots.
const MAX_SLOTS: usize = 60_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rect {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
}

#[derive(Debug, Clone)]
pub(super) struct NodeGeo {
    pub(super) rect: Rect,
    pub(super) name: String,
    pub(super) detail: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct EdgeGeo {
    /// `[start, (slot left, slot right)*, end]`, in drawing direction:
    /// cubic curves between columns, straight runs through columns.
    pub(super) pts: Vec<(f64, f64)>,
    pub(super) order_only: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) nodes: Vec<NodeGeo>,
    pub(super) edges: Vec<EdgeGeo>,
    pub(super) width: f64,
    pub(super) height: f64,
}

/// A box, or the slot of a long edge in a column it passes.
struct Vert {
    layer: usize,
    preds: Vec<usize>,
    succs: Vec<usize>,
    h: f64,
    real: bool,
}

/// Orders every column by the mean position of each vertex's neighbours in
/// the column before (`down`) or after; a vertex without any keeps its
/// place. Positions are relative to the column's length, so that columns of
/// different sizes compare.
fn sweep(order: &mut [Vec<usize>], pos: &mut [usize], verts: &[Vert], down: bool) {
    let nl = order.len();
    for step in 1..nl {
        let l = if down { step } else { nl - 1 - step };
        let other_len = order[if down { l - 1 } else { l + 1 }].len() as f64;
        let own_len = order[l].len() as f64;
        let mut keyed: Vec<(f64, usize)> = order[l]
            .iter()
            .map(|&v| {
                let nb = if down {
                    &verts[v].preds
                } else {
                    &verts[v].succs
                };
                let key = if nb.is_empty() {
                    (pos[v] as f64 + 0.5) / own_len
                } else {
                    let sum: f64 = nb.iter().map(|&u| (pos[u] as f64 + 0.5) / other_len).sum();
                    sum / nb.len() as f64
                };
                (key, v)
            })
            .collect();
        // Stable: ties keep their order.
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        order[l] = keyed.into_iter().map(|(_, v)| v).collect();
        for (i, &v) in order[l].iter().enumerate() {
            pos[v] = i;
        }
    }
}

// Hand-written (small) rather than layout-rs 0.1.3, which sizes text for a serif font.
pub(super) fn layout(nodes: &[GraphNode], edges: &[GraphEdge]) -> Layout {
    let n = nodes.len();
    let p = prepare(nodes, edges);
    let names: Vec<String> = nodes
        .iter()
        .map(|nd| truncate(one_line(&nd.name).trim(), NAME_MAX))
        .collect();
    let details: Vec<Option<String>> = nodes
        .iter()
        .map(|nd| {
            nd.detail
                .as_deref()
                .map(|d| truncate(one_line(d).trim(), DETAIL_MAX))
                .filter(|d| !d.is_empty())
        })
        .collect();
    let widths: Vec<f64> = (0..n)
        .map(|i| {
            let mut w = text_px(&names[i], FONT_PX);
            if let Some(d) = &details[i] {
                w = w.max(text_px(d, DETAIL_PX));
            }
            (w + 2.0 * PAD_X).max(MIN_BOX_W).ceil()
        })
        .collect();

    // The boxes, then a chain of slots for every edge.
    let mut verts: Vec<Vert> = (0..n)
        .map(|i| Vert {
            layer: p.layer[i],
            preds: Vec::new(),
            succs: Vec::new(),
            h: if details[i].is_some() {
                BOX_H_DETAIL
            } else {
                BOX_H
            },
            real: true,
        })
        .collect();
    let ends = |k: usize| {
        let (a, b, _) = p.edges[k];
        if p.reversed[k] {
            (b, a)
        } else {
            (a, b)
        }
    };
    let span: usize = (0..p.edges.len())
        .map(|k| {
            let (s, t) = ends(k);
            p.layer[t] - p.layer[s] - 1
        })
        .sum();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(p.edges.len());
    for k in 0..p.edges.len() {
        let (s, t) = ends(k);
        let mut chain = vec![s];
        let mut prev = s;
        let inner = if span <= MAX_SLOTS {
            p.layer[s] + 1..p.layer[t]
        } else {
            0..0
        };
        for l in inner {
            let d = verts.len();
            verts.push(Vert {
                layer: l,
                preds: vec![prev],
                succs: Vec::new(),
                h: SLOT_H,
                real: false,
            });
            verts[prev].succs.push(d);
            chain.push(d);
            prev = d;
        }
        verts[prev].succs.push(t);
        verts[t].preds.push(prev);
        chain.push(t);
        chains.push(chain);
    }

    // Order within columns: input order, then one pass each way.
    let nl = p.layer.iter().max().map_or(0, |m| m + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); nl];
    let mut pos = vec![0usize; verts.len()];
    for (v, vert) in verts.iter().enumerate() {
        pos[v] = order[vert.layer].len();
        order[vert.layer].push(v);
    }
    sweep(&mut order, &mut pos, &verts, true);
    sweep(&mut order, &mut pos, &verts, false);

    // Heights: every column packed, and centred on the tallest.
    let mut y = vec![0.0f64; verts.len()];
    let mut extent = vec![0.0f64; nl];
    for (l, column) in order.iter().enumerate() {
        let mut top = 0.0;
        for (i, &v) in column.iter().enumerate() {
            if i > 0 {
                let both_real = verts[column[i - 1]].real && verts[v].real;
                top += if both_real { 18.0 } else { 10.0 };
            }
            y[v] = top + verts[v].h / 2.0;
            top += verts[v].h;
        }
        extent[l] = top;
    }
    let tallest = extent.iter().copied().fold(0.0, f64::max);
    for (l, column) in order.iter().enumerate() {
        for &v in column {
            y[v] += MARGIN + (tallest - extent[l]) / 2.0;
        }
    }
    let height = tallest + 2.0 * MARGIN;

    // Columns: as wide as their widest box, with gaps that grow a little
    // with the number of edges crossing them.
    let mut colw = vec![MIN_BOX_W; nl];
    for i in 0..n {
        colw[p.layer[i]] = colw[p.layer[i]].max(widths[i]);
    }
    let mut colx = vec![0.0; nl];
    let mut x = MARGIN;
    for l in 0..nl {
        colx[l] = x;
        x += colw[l];
        if l + 1 < nl {
            let between: usize = order[l].iter().map(|&v| verts[v].succs.len()).sum();
            x += 56.0 + 2.0 * between.min(32) as f64;
        }
    }
    let width = x + MARGIN;

    // Ports: the edges leaving (entering) a box are spread along its right
    // (left) side, ordered by where they go (come from).
    let mut out_port = vec![0.0; chains.len()];
    let mut in_port = vec![0.0; chains.len()];
    let mut outs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut ins: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, chain) in chains.iter().enumerate() {
        outs[chain[0]].push(k);
        ins[chain[chain.len() - 1]].push(k);
    }
    let spread = |ks: &mut Vec<usize>, key: &dyn Fn(usize) -> f64, v: usize, ports: &mut [f64]| {
        ks.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        let m = ks.len();
        let step = if m > 1 {
            (7.0f64).min((verts[v].h - 16.0) / (m - 1) as f64)
        } else {
            0.0
        };
        for (i, &k) in ks.iter().enumerate() {
            ports[k] = y[v] + (i as f64 - (m - 1) as f64 / 2.0) * step;
        }
    };
    for v in 0..n {
        spread(&mut outs[v], &|k| y[chains[k][1]], v, &mut out_port);
        spread(
            &mut ins[v],
            &|k| y[chains[k][chains[k].len() - 2]],
            v,
            &mut in_port,
        );
    }

    let node_geo: Vec<NodeGeo> = (0..n)
        .map(|i| {
            let l = p.layer[i];
            let h = verts[i].h;
            NodeGeo {
                rect: Rect {
                    x: colx[l],
                    y: y[i] - h / 2.0,
                    w: colw[l],
                    h,
                },
                name: names[i].clone(),
                detail: details[i].clone(),
            }
        })
        .collect();
    let edge_geo: Vec<EdgeGeo> = chains
        .iter()
        .enumerate()
        .map(|(k, chain)| {
            let s = chain[0];
            let t = chain[chain.len() - 1];
            let mut pts = vec![(colx[p.layer[s]] + colw[p.layer[s]], out_port[k])];
            for &d in &chain[1..chain.len() - 1] {
                let l = verts[d].layer;
                pts.push((colx[l], y[d]));
                pts.push((colx[l] + colw[l], y[d]));
            }
            pts.push((colx[p.layer[t]], in_port[k]));
            if p.reversed[k] {
                pts.reverse();
            }
            EdgeGeo {
                pts,
                order_only: p.edges[k].2,
            }
        })
        .collect();
    Layout {
        nodes: node_geo,
        edges: edge_geo,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{edge, node, random_dag};
    use super::*;

    #[test]
    fn layout_reduces_crossings_of_a_twisted_graph() {
        // a0..a3 feed b3..b0 in reverse: drawn in input order every edge
        // crosses every other; a good ordering has none.
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for i in 0..4 {
            nodes.push(node(&format!("a{i}"), "fresh"));
        }
        for i in (0..4).rev() {
            nodes.push(node(&format!("b{i}"), "fresh"));
        }
        for i in 0..4 {
            edges.push(edge(&format!("a{i}"), &format!("b{i}")));
        }
        let lay = layout(&nodes, &edges);
        for i in 0..4 {
            let a = lay.nodes[i].rect;
            let b = lay.nodes[7 - i].rect;
            assert!(
                (a.y - b.y).abs() < 1.0,
                "a{i} at {} but b{i} at {}",
                a.y,
                b.y
            );
        }
    }

    #[test]
    fn a_large_graph_lays_out() {
        let (nodes, edges) = random_dag(1500, 3, true);
        let lay = layout(&nodes, &edges);
        assert_eq!(lay.nodes.len(), 1500);
        assert!(lay.width > 1000.0 && lay.height > 100.0);
    }
}
