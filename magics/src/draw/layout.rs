//! Where the SVG's boxes and edges go: a small Sugiyama pipeline (layers
//! from [`prepare`], long edges split into dummy vertices, barycenter sweeps
//! plus adjacent swaps to reduce crossings, vertical coordinates by isotonic
//! regression), so every edge runs left to right and no boxes overlap.

use super::model::{prepare, GraphEdge, GraphNode};
use super::{one_line, text_px, truncate};

pub(super) const FONT_PX: f64 = 13.0;
pub(super) const DETAIL_PX: f64 = 11.0;
pub(super) const LEGEND_PX: f64 = 12.0;
pub(super) const PAD_X: f64 = 14.0;
pub(super) const MIN_BOX_W: f64 = 84.0;
const BOX_H: f64 = 34.0;
const BOX_H_DETAIL: f64 = 48.0;
const DUMMY_H: f64 = 2.0;
pub(super) const MARGIN: f64 = 20.0;
pub(super) const NAME_MAX: usize = 28;
const MAX_DUMMIES: usize = 60_000;
const DETAIL_MAX: usize = 36;

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
    /// `[start, (dummy left, dummy right)*, end]`, in drawing direction:
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

/// A vertex of the proper layered graph: a node, or a dummy on a long edge.
struct Vert {
    layer: usize,
    preds: Vec<usize>,
    succs: Vec<usize>,
    h: f64,
    real: bool,
}

fn set_positions(order: &[Vec<usize>], pos: &mut [usize]) {
    for layer in order {
        for (i, &v) in layer.iter().enumerate() {
            pos[v] = i;
        }
    }
}

/// One barycenter sweep, down (by predecessors) or up (by successors).
/// Positions are normalized to the layer's length so layers of different
/// sizes compare; vertices without neighbours on that side keep their place.
fn sweep(order: &mut [Vec<usize>], pos: &mut [usize], verts: &[Vert], down: bool) {
    let nl = order.len();
    for step in 1..nl {
        let l = if down { step } else { nl - 1 - step };
        let other = if down { l - 1 } else { l + 1 };
        let other_len = order[other].len() as f64;
        let own_len = order[l].len() as f64;
        let mut keyed: Vec<(f64, usize, usize)> = order[l]
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
                    nb.iter()
                        .map(|&u| (pos[u] as f64 + 0.5) / other_len)
                        .sum::<f64>()
                        / nb.len() as f64
                };
                (key, pos[v], v)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        order[l] = keyed.into_iter().map(|(_, _, v)| v).collect();
        for (i, &v) in order[l].iter().enumerate() {
            pos[v] = i;
        }
    }
}

/// Edge crossings between all pairs of adjacent layers (inversion counting
/// with a Fenwick tree).
fn crossings(order: &[Vec<usize>], pos: &[usize], verts: &[Vert]) -> usize {
    let mut total = 0;
    for (l, pair) in order.windows(2).enumerate() {
        let mut ends: Vec<(usize, usize)> = Vec::new();
        for &v in &pair[0] {
            for &s in &verts[v].succs {
                // Only proper edges (long edges keep no dummies when the
                // graph is too big for them).
                if verts[s].layer == l + 1 {
                    ends.push((pos[v], pos[s]));
                }
            }
        }
        ends.sort_unstable();
        let m = pair[1].len();
        let mut tree = vec![0usize; m + 1];
        for (inserted, &(_, b)) in ends.iter().enumerate() {
            let mut at_most_b = 0;
            let mut i = b + 1;
            while i > 0 {
                at_most_b += tree[i];
                i &= i - 1;
            }
            total += inserted - at_most_b;
            let mut i = b + 1;
            while i <= m {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

/// Crossings among the edges of `a` and `b` when `a` is directly above `b`.
fn pair_crossings(a: usize, b: usize, pos: &[usize], verts: &[Vert]) -> usize {
    let count = |xs: &[usize], ys: &[usize]| {
        xs.iter()
            .map(|&x| ys.iter().filter(|&&y| pos[x] > pos[y]).count())
            .sum::<usize>()
    };
    count(&verts[a].preds, &verts[b].preds) + count(&verts[a].succs, &verts[b].succs)
}

/// Swaps adjacent vertices while that reduces crossings.
fn transpose(order: &mut [Vec<usize>], pos: &mut [usize], verts: &[Vert]) {
    for _ in 0..4 {
        let mut improved = false;
        for layer in order.iter_mut() {
            for i in 1..layer.len() {
                let (u, w) = (layer[i - 1], layer[i]);
                if pair_crossings(w, u, pos, verts) < pair_crossings(u, w, pos, verts) {
                    layer.swap(i - 1, i);
                    pos[u] = i;
                    pos[w] = i - 1;
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
}

/// Weighted isotonic regression (pool adjacent violators): the
/// non-decreasing sequence closest to `t` in weighted least squares.
fn isotonic(t: &[f64], w: &[f64]) -> Vec<f64> {
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(t.len());
    for (&ti, &wi) in t.iter().zip(w) {
        blocks.push((wi, wi * ti, 1));
        while blocks.len() >= 2 {
            let b = blocks[blocks.len() - 1];
            let a = blocks[blocks.len() - 2];
            if a.1 / a.0 > b.1 / b.0 {
                blocks.pop();
                if let Some(last) = blocks.last_mut() {
                    *last = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
                }
            } else {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(t.len());
    for (ws, wts, len) in blocks {
        out.extend(std::iter::repeat_n(wts / ws, len));
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Preds,
    Succs,
    Both,
}

/// Moves the vertices of one layer as close as possible to the mean height
/// of their neighbours on `side`, keeping their order and spacing.
fn align_layer(layer: &[usize], verts: &[Vert], y: &mut [f64], side: Side) {
    if layer.is_empty() {
        return;
    }
    let gap = |a: usize, b: usize| {
        let g = match (verts[a].real, verts[b].real) {
            (true, true) => 18.0,
            (false, false) => 8.0,
            _ => 12.0,
        };
        (verts[a].h + verts[b].h) / 2.0 + g
    };
    let mut offset = vec![0.0; layer.len()];
    for i in 1..layer.len() {
        offset[i] = offset[i - 1] + gap(layer[i - 1], layer[i]);
    }
    let mut targets = Vec::with_capacity(layer.len());
    let mut weights = Vec::with_capacity(layer.len());
    for (i, &v) in layer.iter().enumerate() {
        let vert = &verts[v];
        let nb: Vec<usize> = match side {
            Side::Preds => vert.preds.clone(),
            Side::Succs => vert.succs.clone(),
            Side::Both => vert.preds.iter().chain(&vert.succs).copied().collect(),
        };
        let (t, w) = if nb.is_empty() {
            (y[v], 0.05)
        } else {
            let mean = nb.iter().map(|&u| y[u]).sum::<f64>() / nb.len() as f64;
            (mean, if vert.real { 1.0 } else { 2.0 })
        };
        targets.push(t - offset[i]);
        weights.push(w);
    }
    let z = isotonic(&targets, &weights);
    for (i, &v) in layer.iter().enumerate() {
        y[v] = z[i] + offset[i];
    }
}

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

    // The proper layered graph: long edges become chains of dummies.
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
    // Dummies cost memory and time in proportion to the edges' total span;
    // past a budget (only huge graphs), long edges are drawn without them.
    let span: usize = (0..p.edges.len())
        .map(|k| {
            let (s, t) = ends(k);
            p.layer[t] - p.layer[s] - 1
        })
        .sum();
    let with_dummies = span <= MAX_DUMMIES;
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(p.edges.len());
    for k in 0..p.edges.len() {
        let (s, t) = ends(k);
        let mut chain = vec![s];
        let mut prev = s;
        let inner = if with_dummies {
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
                h: DUMMY_H,
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

    // Ordering within layers.
    let nl = p.layer.iter().max().map_or(0, |m| m + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); nl];
    for (v, vert) in verts.iter().enumerate() {
        order[vert.layer].push(v);
    }
    let mut pos = vec![0usize; verts.len()];
    set_positions(&order, &mut pos);
    sweep(&mut order, &mut pos, &verts, true);
    let big = verts.len() > 3000;
    let mut best = order.clone();
    let mut best_crossings = crossings(&order, &pos, &verts);
    let rounds = if big { 4 } else { 16 };
    for round in 0..rounds {
        if best_crossings == 0 {
            break;
        }
        sweep(&mut order, &mut pos, &verts, round % 2 == 1);
        if !big {
            transpose(&mut order, &mut pos, &verts);
        }
        let c = crossings(&order, &pos, &verts);
        if c < best_crossings {
            best_crossings = c;
            best.clone_from(&order);
        }
    }
    let order = best;
    set_positions(&order, &mut pos);

    // Vertical placement.
    let mut y = vec![0.0f64; verts.len()];
    for layer in &order {
        // Packed, centred on 0; `align_layer` with no pull does the packing.
        let mut acc = 0.0;
        for (i, &v) in layer.iter().enumerate() {
            if i > 0 {
                let (a, b) = (&verts[layer[i - 1]], &verts[v]);
                let g = if a.real && b.real { 18.0 } else { 10.0 };
                acc += (a.h + b.h) / 2.0 + g;
            }
            y[v] = acc;
        }
        for &v in layer {
            y[v] -= acc / 2.0;
        }
    }
    let align_rounds = if big { 2 } else { 8 };
    for _ in 0..align_rounds {
        for layer in order.iter().skip(1) {
            align_layer(layer, &verts, &mut y, Side::Preds);
        }
        for layer in order.iter().rev().skip(1) {
            align_layer(layer, &verts, &mut y, Side::Succs);
        }
    }
    for _ in 0..2 {
        for layer in &order {
            align_layer(layer, &verts, &mut y, Side::Both);
        }
    }
    let top = verts
        .iter()
        .zip(&y)
        .map(|(v, &y)| y - v.h / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = MARGIN - if top.is_finite() { top } else { 0.0 };
    for v in y.iter_mut() {
        *v += shift;
    }
    let bottom = verts
        .iter()
        .zip(&y)
        .map(|(v, &y)| y + v.h / 2.0)
        .fold(0.0f64, f64::max);

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
    let height = bottom + MARGIN;

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
