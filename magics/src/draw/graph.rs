//! The asset graph as a Mermaid flowchart (JupyterLab 4 renders
//! `text/vnd.mermaid`), as a self-contained SVG (the `image/svg+xml`
//! fallback, laid out here), and as plain text for terminals.
//!
//! The SVG layout is a small Sugiyama pipeline: cycles broken (a cycle is an
//! error upstream, but rendering never fails), longest-path layering, long
//! edges split into dummy vertices so they route around boxes, barycenter
//! sweeps plus adjacent swaps to reduce crossings, then vertical coordinates
//! by repeated neighbour-averaging under spacing constraints (isotonic
//! regression), so every edge runs left to right and no boxes overlap.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use super::{darker, display_width, one_line, text_on, text_px, truncate, xml_escape};

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

/// The known states, in legend order, with their fill colors.
const PALETTE: [(&str, &str); 9] = [
    ("fresh", "#2e7d32"),
    ("stale", "#f9a825"),
    ("missing", "#bdbdbd"),
    ("queued", "#90caf9"),
    ("running", "#1565c0"),
    ("done", "#66bb6a"),
    ("failed", "#c62828"),
    ("skipped", "#eeeeee"),
    ("cancelled", "#616161"),
];
/// Fill for states outside [`PALETTE`].
const NEUTRAL: &str = "#ffffff";

fn canonical_state(state: &str) -> Option<&'static str> {
    let s = state.trim();
    let s = if s.eq_ignore_ascii_case("canceled") {
        "cancelled"
    } else {
        s
    };
    PALETTE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(name, _)| *name)
}

/// The fill color of a state, as `#rrggbb`; the same in the SVG, the
/// Mermaid `classDef`s and the table badges. Unknown states are white.
pub fn state_color(state: &str) -> &'static str {
    let s = canonical_state(state);
    PALETTE
        .iter()
        .find(|(name, _)| Some(*name) == s)
        .map_or(NEUTRAL, |(_, color)| *color)
}

/// The name a state is shown under: the known name, or the given text.
fn state_label(state: &str) -> String {
    match canonical_state(state) {
        Some(s) => s.to_string(),
        None => {
            let s = one_line(state.trim()).to_lowercase();
            if s.is_empty() {
                "unknown".to_string()
            } else {
                truncate(&s, 20)
            }
        }
    }
}

/// The states present, known ones in palette order, then unknown ones in
/// order of appearance.
fn states_present(nodes: &[GraphNode]) -> Vec<String> {
    let mut out: Vec<String> = PALETTE
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| nodes.iter().any(|n| canonical_state(&n.state) == Some(s)))
        .map(str::to_string)
        .collect();
    for n in nodes {
        if canonical_state(&n.state).is_none() {
            let l = state_label(&n.state);
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Graph preparation shared by the renderers.

/// Edges resolved to node indices, deduplicated (a data edge wins over an
/// order-only one), without self-loops or unknown endpoints; plus the layer
/// of every node.
struct Prepared {
    /// `(from, to, order_only)`.
    edges: Vec<(usize, usize, bool)>,
    /// Laid out backwards to break a cycle.
    reversed: Vec<bool>,
    layer: Vec<usize>,
}

fn prepare(nodes: &[GraphNode], edges: &[GraphEdge]) -> Prepared {
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

// ---------------------------------------------------------------------------
// Plain text.

/// Plain-text rendering for terminals: one line per node in layer order,
/// `name [state] <- dep1, dep2`, order-only dependencies marked, then the
/// detail in parentheses and a `✓N` for attached checks.
pub fn text(nodes: &[GraphNode], edges: &[GraphEdge]) -> String {
    if nodes.is_empty() {
        return "(no assets)\n".to_string();
    }
    let p = prepare(nodes, edges);
    let mut deps: Vec<Vec<(usize, bool)>> = vec![Vec::new(); nodes.len()];
    for &(a, b, order_only) in &p.edges {
        deps[b].push((a, order_only));
    }
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|&i| (p.layer[i], i));

    let names: Vec<String> = nodes.iter().map(|n| one_line(&n.name)).collect();
    let name_w = names.iter().map(|s| display_width(s)).max().unwrap_or(0);
    let head_w = name_w
        + nodes
            .iter()
            .map(|n| display_width(&state_label(&n.state)) + 3)
            .max()
            .unwrap_or(0);

    let mut out = String::new();
    for &i in &order {
        let node = &nodes[i];
        let mut line = names[i].clone();
        line.push_str(&" ".repeat(name_w - display_width(&names[i])));
        let _ = write!(line, " [{}]", state_label(&node.state));
        let mut tail = String::new();
        let mut ds = deps[i].clone();
        ds.sort_by_key(|&(a, _)| (p.layer[a], a));
        if !ds.is_empty() {
            let list: Vec<String> = ds
                .iter()
                .map(|&(a, oo)| {
                    if oo {
                        format!("{} (order-only)", names[a])
                    } else {
                        names[a].clone()
                    }
                })
                .collect();
            let _ = write!(tail, " <- {}", list.join(", "));
        }
        if let Some(d) = node.detail.as_deref().map(one_line) {
            if !d.trim().is_empty() {
                let _ = write!(tail, "  ({})", d.trim());
            }
        }
        if node.checks > 0 {
            let _ = write!(tail, "  ✓{}", node.checks);
        }
        if !tail.is_empty() {
            let w = display_width(&line);
            line.push_str(&" ".repeat(head_w.saturating_sub(w)));
            line.push_str(&tail);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// Mermaid.

/// A Mermaid node id: `n<index>_<name with only [A-Za-z0-9_]>`. Unique, and
/// never a Mermaid keyword (`end`, `graph`, `style`, ...).
fn mermaid_id(i: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    format!("n{i}_{clean}")
}

/// Text for inside a quoted Mermaid label: entity codes for the characters
/// that would end the label or be read as markup.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '%' => out.push_str("#37;"),
            c => out.push(c),
        }
    }
    out
}

/// Mermaid flowchart (`flowchart LR`) for JupyterLab 4's `text/vnd.mermaid`
/// renderer: safe node ids, quoted and escaped labels (name, `✓N` for checks,
/// detail on a second line), one subgraph per group, `-.->` for order-only
/// edges, and a `classDef` per state with the SVG's colors.
pub fn mermaid(nodes: &[GraphNode], edges: &[GraphEdge]) -> String {
    let mut s = String::from("flowchart LR\n");
    if nodes.is_empty() {
        s.push_str("  empty[\"no assets\"]\n");
        return s;
    }
    let p = prepare(nodes, edges);
    let ids: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| mermaid_id(i, &n.name))
        .collect();
    let decl = |i: usize| {
        let n = &nodes[i];
        let mut label = mermaid_escape(&truncate(&n.name, 60));
        if n.checks > 0 {
            let _ = write!(label, " ✓{}", n.checks);
        }
        if let Some(d) = n.detail.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            let _ = write!(label, "<br/>{}", mermaid_escape(&truncate(d, 80)));
        }
        format!("{}[\"{}\"]", ids[i], label)
    };

    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        match n.group.as_deref().filter(|g| !g.trim().is_empty()) {
            None => {
                let _ = writeln!(s, "  {}", decl(i));
            }
            Some(g) => match groups.iter_mut().find(|(name, _)| *name == g) {
                Some((_, members)) => members.push(i),
                None => groups.push((g, vec![i])),
            },
        }
    }
    for (gi, (g, members)) in groups.iter().enumerate() {
        let _ = writeln!(
            s,
            "  subgraph g{gi}[\"{}\"]",
            mermaid_escape(&truncate(g, 60))
        );
        for &i in members {
            let _ = writeln!(s, "    {}", decl(i));
        }
        s.push_str("  end\n");
    }
    for &(a, b, order_only) in &p.edges {
        let arrow = if order_only { "-.->" } else { "-->" };
        let _ = writeln!(s, "  {} {arrow} {}", ids[a], ids[b]);
    }

    // One class per state used; unknown states share `neutral`.
    let mut classes: Vec<(&'static str, &'static str, Vec<usize>)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (class, fill) = match canonical_state(&n.state) {
            Some(st) => (st, state_color(st)),
            None => ("neutral", NEUTRAL),
        };
        match classes.iter_mut().find(|(c, _, _)| *c == class) {
            Some((_, _, members)) => members.push(i),
            None => classes.push((class, fill, vec![i])),
        }
    }
    classes.sort_by_key(|(c, _, _)| {
        PALETTE
            .iter()
            .position(|(name, _)| name == c)
            .unwrap_or(PALETTE.len())
    });
    for (class, fill, _) in &classes {
        let _ = write!(
            s,
            "  classDef {class} fill:{fill},stroke:{},color:{}",
            darker(fill),
            text_on(fill)
        );
        if *class == "missing" {
            s.push_str(",stroke-dasharray:4 3");
        }
        s.push('\n');
    }
    for (class, _, members) in &classes {
        let list: Vec<&str> = members.iter().map(|&i| ids[i].as_str()).collect();
        let _ = writeln!(s, "  class {} {class}", list.join(","));
    }
    s
}

// ---------------------------------------------------------------------------
// Layout.

const FONT_PX: f64 = 13.0;
const DETAIL_PX: f64 = 11.0;
const LEGEND_PX: f64 = 12.0;
const PAD_X: f64 = 14.0;
const MIN_BOX_W: f64 = 84.0;
const BOX_H: f64 = 34.0;
const BOX_H_DETAIL: f64 = 48.0;
const DUMMY_H: f64 = 2.0;
const MARGIN: f64 = 20.0;
const NAME_MAX: usize = 28;
const MAX_DUMMIES: usize = 60_000;
const DETAIL_MAX: usize = 36;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

#[derive(Debug, Clone)]
struct NodeGeo {
    rect: Rect,
    name: String,
    detail: Option<String>,
}

#[derive(Debug, Clone)]
struct EdgeGeo {
    /// `[start, (dummy left, dummy right)*, end]`, in drawing direction:
    /// cubic curves between columns, straight runs through columns.
    pts: Vec<(f64, f64)>,
    order_only: bool,
}

#[derive(Debug, Clone)]
struct Layout {
    nodes: Vec<NodeGeo>,
    edges: Vec<EdgeGeo>,
    width: f64,
    height: f64,
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

fn layout(nodes: &[GraphNode], edges: &[GraphEdge]) -> Layout {
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

// ---------------------------------------------------------------------------
// SVG.

fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

fn edge_path(pts: &[(f64, f64)]) -> String {
    let mut d = format!("M{},{}", num(pts[0].0), num(pts[0].1));
    let mut i = 0;
    while i + 1 < pts.len() {
        let (a, b) = (pts[i], pts[i + 1]);
        let dx = (b.0 - a.0) / 2.0;
        let _ = write!(
            d,
            " C{},{} {},{} {},{}",
            num(a.0 + dx),
            num(a.1),
            num(b.0 - dx),
            num(b.1),
            num(b.0),
            num(b.1)
        );
        if i + 2 < pts.len() {
            let c = pts[i + 2];
            let _ = write!(d, " L{},{}", num(c.0), num(c.1));
        }
        i += 2;
    }
    d
}

/// FNV-1a, for a marker id unique to the graph's content.
fn fingerprint(nodes: &[GraphNode], edges: &[GraphEdge]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for n in nodes {
        eat(&n.name);
    }
    for e in edges {
        eat(&e.from);
        eat(&e.to);
    }
    (h ^ (h >> 32)) as u32
}

const EDGE_COLOR: &str = "#8c959f";
const INK: &str = "#1f2328";
const MUTED: &str = "#57606a";
const CHECK_COLOR: &str = "#1a7f37";

/// A self-contained SVG of the graph (no scripts, no external fonts): a
/// layered left-to-right layout, rounded boxes colored by state with the
/// name and the detail, a `✓N` badge for checks, curved edges with
/// arrowheads (dashed when order-only) and a legend of the states present.
pub fn svg(nodes: &[GraphNode], edges: &[GraphEdge]) -> String {
    if nodes.is_empty() {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"160\" height=\"48\" \
             viewBox=\"0 0 160 48\" font-family=\"sans-serif\" role=\"img\">\
             <title>asset graph: no assets</title>\
             <rect class=\"background\" width=\"160\" height=\"48\" rx=\"8\" fill=\"#ffffff\"/>\
             <text x=\"80\" y=\"28\" text-anchor=\"middle\" font-size=\"13\" fill=\"{MUTED}\">no assets</text></svg>"
        );
    }
    let lay = layout(nodes, edges);
    let marker = format!("sb-arrow-{:08x}", fingerprint(nodes, edges));

    // Legend items: (swatch fill or None for a special item, label).
    enum Item {
        State(String),
        OrderOnly,
        Checks,
    }
    let mut items: Vec<Item> = states_present(nodes).into_iter().map(Item::State).collect();
    if lay.edges.iter().any(|e| e.order_only) {
        items.push(Item::OrderOnly);
    }
    if nodes.iter().any(|n| n.checks > 0) {
        items.push(Item::Checks);
    }
    let label = |it: &Item| match it {
        Item::State(s) => s.clone(),
        Item::OrderOnly => "order-only dependency".to_string(),
        Item::Checks => "checks attached".to_string(),
    };
    let swatch_w = |it: &Item| match it {
        Item::State(_) => 14.0,
        Item::OrderOnly => 26.0,
        Item::Checks => 24.0,
    };
    let avail = (lay.width - 2.0 * MARGIN).max(520.0);
    let mut placed: Vec<(f64, f64, &Item)> = Vec::new();
    let (mut lx, mut row) = (0.0, 0usize);
    let mut legend_w: f64 = 0.0;
    for it in &items {
        let w = swatch_w(it) + 6.0 + text_px(&label(it), LEGEND_PX);
        if lx > 0.0 && lx + w > avail {
            lx = 0.0;
            row += 1;
        }
        placed.push((lx, row as f64, it));
        legend_w = legend_w.max(lx + w);
        lx += w + 18.0;
    }
    let legend_top = lay.height - 4.0;
    let rows = if items.is_empty() { 0 } else { row + 1 };
    let width = lay.width.max(legend_w + 2.0 * MARGIN).ceil();
    let height = (legend_top + 22.0 * rows as f64 + MARGIN / 2.0).ceil();

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"{FONT_PX}\" role=\"img\">\n\
         <title>asset graph: {} assets, {} dependencies</title>\n\
         <defs><marker id=\"{marker}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto\">\
         <path d=\"M0,1 L10,5 L0,9 z\" fill=\"{EDGE_COLOR}\"/></marker></defs>\n\
         <rect class=\"background\" x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" rx=\"8\" fill=\"#ffffff\"/>\n",
        nodes.len(),
        lay.edges.len(),
        w = num(width),
        h = num(height),
    );

    s.push_str(&format!(
        "<g class=\"edges\" fill=\"none\" stroke=\"{EDGE_COLOR}\" stroke-width=\"1.4\">\n"
    ));
    for e in &lay.edges {
        let _ = writeln!(
            s,
            "<path class=\"{}\" d=\"{}\"{} marker-end=\"url(#{marker})\"/>",
            if e.order_only {
                "edge order-only"
            } else {
                "edge"
            },
            edge_path(&e.pts),
            if e.order_only {
                " stroke-dasharray=\"5 4\""
            } else {
                ""
            }
        );
    }
    s.push_str("</g>\n<g class=\"nodes\">\n");

    for (node, g) in nodes.iter().zip(&lay.nodes) {
        let fill = state_color(&node.state);
        let ink = text_on(fill);
        let st = state_label(&node.state);
        let css = canonical_state(&node.state).unwrap_or("other");
        let r = g.rect;
        let cx = r.x + r.w / 2.0;
        let cy = r.y + r.h / 2.0;
        let mut tip = format!("{} ({st})", one_line(&node.name));
        if let Some(d) = node.detail.as_deref().map(one_line) {
            if !d.trim().is_empty() {
                let _ = write!(tip, ": {}", d.trim());
            }
        }
        if let Some(gr) = node.group.as_deref() {
            let _ = write!(tip, "; group {}", one_line(gr));
        }
        if node.checks > 0 {
            let _ = write!(tip, "; {} checks", node.checks);
        }
        let _ = writeln!(
            s,
            "<g class=\"node state-{css}\"><title>{}</title>",
            xml_escape(&tip)
        );
        let _ = writeln!(
            s,
            "<rect class=\"node-box\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"8\" \
             fill=\"{fill}\" stroke=\"{}\" stroke-width=\"1.2\"{}/>",
            num(r.x),
            num(r.y),
            num(r.w),
            num(r.h),
            darker(fill),
            if css == "missing" {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            }
        );
        match &g.detail {
            None => {
                let _ = writeln!(
                    s,
                    "<text class=\"name\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>",
                    num(cx),
                    num(cy + 4.5),
                    xml_escape(&g.name)
                );
            }
            Some(d) => {
                let _ = writeln!(
                    s,
                    "<text class=\"name\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>",
                    num(cx),
                    num(cy - 3.0),
                    xml_escape(&g.name)
                );
                let _ = writeln!(
                    s,
                    "<text class=\"detail\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{DETAIL_PX}\" \
                     fill=\"{ink}\" fill-opacity=\"0.85\">{}</text>",
                    num(cx),
                    num(cy + 12.0),
                    xml_escape(d)
                );
            }
        }
        if node.checks > 0 {
            let badge = format!("✓{}", node.checks);
            let bw = (text_px(&badge, 10.0) + 10.0).ceil();
            let bx = r.x + r.w - bw - 6.0;
            let by = r.y - 7.5;
            let _ = writeln!(
                s,
                "<g class=\"checks\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"15\" rx=\"7.5\" \
                 fill=\"#ffffff\" stroke=\"{CHECK_COLOR}\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
                 font-size=\"10\" font-weight=\"bold\" fill=\"{CHECK_COLOR}\">{badge}</text></g>",
                num(bx),
                num(by),
                num(bw),
                num(bx + bw / 2.0),
                num(by + 11.0)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</g>\n");

    let _ = writeln!(
        s,
        "<g class=\"legend\" font-size=\"{LEGEND_PX}\" fill=\"{MUTED}\">"
    );
    for (x, row, it) in placed {
        let x = MARGIN + x;
        let y = legend_top + row * 22.0;
        match it {
            Item::State(st) => {
                let fill = state_color(st);
                let _ = write!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{}\"{}/>",
                    num(x),
                    num(y),
                    darker(fill),
                    if st == "missing" {
                        " stroke-dasharray=\"3 2\""
                    } else {
                        ""
                    }
                );
            }
            Item::OrderOnly => {
                let _ = write!(
                    s,
                    "<path d=\"M{},{} H{}\" stroke=\"{EDGE_COLOR}\" stroke-width=\"1.4\" \
                     stroke-dasharray=\"5 4\" marker-end=\"url(#{marker})\"/>",
                    num(x),
                    num(y + 7.0),
                    num(x + 26.0)
                );
            }
            Item::Checks => {
                let _ = write!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"24\" height=\"14\" rx=\"7\" fill=\"#ffffff\" \
                     stroke=\"{CHECK_COLOR}\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" \
                     font-weight=\"bold\" fill=\"{CHECK_COLOR}\">✓n</text>",
                    num(x),
                    num(y),
                    num(x + 12.0),
                    num(y + 10.5)
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" fill-opacity=\"0.8\">{}</text>",
            num(x + swatch_w(it) + 6.0),
            num(y + 11.0),
            xml_escape(&label(it))
        );
    }
    s.push_str("</g>\n</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::xml::{self, Element};
    use super::*;

    fn node(name: &str, state: &str) -> GraphNode {
        GraphNode {
            name: name.to_string(),
            state: state.to_string(),
            detail: None,
            group: None,
            checks: 0,
        }
    }

    fn edge(from: &str, to: &str) -> GraphEdge {
        GraphEdge {
            from: from.to_string(),
            to: to.to_string(),
            order_only: false,
        }
    }

    fn order_edge(from: &str, to: &str) -> GraphEdge {
        GraphEdge {
            order_only: true,
            ..edge(from, to)
        }
    }

    /// A deterministic pseudo-random DAG. `deep == false`: shaped like a
    /// real pipeline, seven stages (raw, clean, ..., report), each asset
    /// using one to three assets of the previous stage, sometimes of an
    /// earlier one. `deep == true`: a long chain-like graph, each asset using
    /// one to three of the six before it, sometimes any earlier one.
    pub(crate) fn random_dag(n: usize, seed: u64, deep: bool) -> (Vec<GraphNode>, Vec<GraphEdge>) {
        let mut r = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move |m: usize| {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((r >> 33) as usize) % m.max(1)
        };
        let stems = [
            "raw", "clean", "merged", "features", "model", "eval", "report",
        ];
        let topics = [
            "temperatures",
            "pressure",
            "stations",
            "wind",
            "humidity",
            "grid",
            "rain",
            "satellite_tiles",
            "calibration",
        ];
        let states = [
            "fresh",
            "fresh",
            "fresh",
            "stale",
            "missing",
            "running",
            "queued",
            "done",
            "failed",
            "skipped",
            "cancelled",
        ];
        let details = [
            "code changed",
            "done in 1.2 s",
            "upstream changed",
            "exit 1",
            "job 48213",
        ];
        let stage_of = |i: usize| i * stems.len() / n.max(1);
        let mut nodes: Vec<GraphNode> = Vec::new();
        let mut edges = Vec::new();
        for i in 0..n {
            let stage = stage_of(i);
            let name = if i == 7 {
                "an_extraordinarily_long_asset_name_that_goes_on".to_string()
            } else {
                let stem = if deep {
                    stems[next(stems.len())]
                } else {
                    stems[stage]
                };
                format!("{stem}_{}_{i}", topics[next(topics.len())])
            };
            let detail = (next(3) == 0).then(|| details[next(details.len())].to_string());
            let group = (next(4) == 0).then(|| "ingest".to_string());
            nodes.push(GraphNode {
                name,
                state: states[next(states.len())].to_string(),
                detail,
                group,
                checks: if next(5) == 0 { 1 + next(3) } else { 0 },
            });
            let candidates: Vec<usize> = if deep {
                (i.saturating_sub(6)..i).collect()
            } else if stage == 0 {
                Vec::new()
            } else {
                (0..i).filter(|&j| stage_of(j) == stage - 1).collect()
            };
            if candidates.is_empty() {
                continue;
            }
            let k = 1 + next(3);
            let mut chosen: Vec<usize> = Vec::new();
            for _ in 0..k {
                let j = if next(5) == 0 {
                    next(candidates[0].max(1)).min(i - 1)
                } else {
                    candidates[next(candidates.len())]
                };
                if !chosen.contains(&j) {
                    chosen.push(j);
                }
            }
            for j in chosen {
                edges.push(GraphEdge {
                    from: nodes[j].name.clone(),
                    to: nodes[i].name.clone(),
                    order_only: next(9) == 0,
                });
            }
        }
        (nodes, edges)
    }

    pub(crate) fn sample_dag(n: usize, seed: u64) -> (Vec<GraphNode>, Vec<GraphEdge>) {
        random_dag(n, seed, false)
    }

    /// The 8-asset sample: a diamond with a side branch, an order-only
    /// dependency and a check.
    pub(crate) fn diamond() -> (Vec<GraphNode>, Vec<GraphEdge>) {
        let with = |name: &str, state: &str, detail: Option<&str>, checks: usize| GraphNode {
            detail: detail.map(str::to_string),
            checks,
            ..node(name, state)
        };
        let nodes = vec![
            with("raw_temperatures", "fresh", None, 0),
            with("stations", "fresh", None, 1),
            with("clean", "done", Some("done in 1.2 s"), 2),
            with("features_a", "stale", Some("code changed"), 0),
            with("features_b", "running", Some("job 48213"), 0),
            with("model", "queued", None, 0),
            with("report", "missing", None, 0),
            with("plot", "failed", Some("exit 1 after 3.4 s"), 0),
        ];
        let edges = vec![
            edge("raw_temperatures", "clean"),
            edge("stations", "clean"),
            edge("clean", "features_a"),
            edge("clean", "features_b"),
            edge("features_a", "model"),
            edge("features_b", "model"),
            order_edge("stations", "model"),
            edge("model", "report"),
            edge("features_b", "plot"),
        ];
        (nodes, edges)
    }

    fn parse_svg(svg: &str) -> Element {
        xml::parse(svg).unwrap_or_else(|e| panic!("SVG is not well-formed XML: {e}\n{svg}"))
    }

    /// The node boxes, keyed by the node's name as drawn.
    fn boxes(root: &Element) -> Vec<(String, Rect)> {
        root.descendants()
            .into_iter()
            .filter(|e| e.name == "g" && e.has_class("node"))
            .map(|g| {
                let r = g
                    .find_all("rect")
                    .into_iter()
                    .find(|r| r.has_class("node-box"))
                    .expect("node has a box");
                let name = g
                    .find_all("text")
                    .into_iter()
                    .find(|t| t.has_class("name"))
                    .expect("node has a name")
                    .text();
                (
                    name,
                    Rect {
                        x: r.num("x"),
                        y: r.num("y"),
                        w: r.num("width"),
                        h: r.num("height"),
                    },
                )
            })
            .collect()
    }

    fn overlap(a: &Rect, b: &Rect) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    /// Points along a path written by [`edge_path`] (M, C, L commands).
    fn sample_path(d: &str) -> Vec<(f64, f64)> {
        let toks: Vec<&str> = d.split_whitespace().collect();
        let pt = |t: &str| {
            let t = t.trim_start_matches(['M', 'C', 'L']);
            let (x, y) = t.split_once(',').expect("x,y");
            (x.parse::<f64>().unwrap(), y.parse::<f64>().unwrap())
        };
        let mut out = vec![pt(toks[0])];
        let mut i = 1;
        while i < toks.len() {
            let p0 = *out.last().unwrap();
            if toks[i].starts_with('C') {
                let (c1, c2, p3) = (pt(toks[i]), pt(toks[i + 1]), pt(toks[i + 2]));
                for s in 1..=40 {
                    let t = f64::from(s) / 40.0;
                    let u = 1.0 - t;
                    let b = |a: f64, b: f64, c: f64, d: f64| {
                        u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
                    };
                    out.push((b(p0.0, c1.0, c2.0, p3.0), b(p0.1, c1.1, c2.1, p3.1)));
                }
                i += 3;
            } else {
                let p1 = pt(toks[i]);
                for s in 1..=20 {
                    let t = f64::from(s) / 20.0;
                    out.push((p0.0 + (p1.0 - p0.0) * t, p0.1 + (p1.1 - p0.1) * t));
                }
                i += 1;
            }
        }
        out
    }

    #[test]
    fn state_colors_are_distinct_hex_and_unknown_is_neutral() {
        let colors: Vec<&str> = PALETTE.iter().map(|(s, _)| state_color(s)).collect();
        for (i, c) in colors.iter().enumerate() {
            assert!(c.len() == 7 && c.starts_with('#'), "{c}");
            assert!(c[1..].chars().all(|c| c.is_ascii_hexdigit()), "{c}");
            assert!(!colors[..i].contains(c), "{c} used twice");
        }
        assert_eq!(state_color("Failed"), state_color("failed"));
        assert_eq!(state_color("canceled"), state_color("cancelled"));
        assert_eq!(state_color("whatever"), NEUTRAL);
        assert!(!colors.contains(&NEUTRAL));
    }

    #[test]
    fn mermaid_ids_are_safe_and_labels_escaped() {
        let nodes = vec![
            GraphNode {
                detail: Some("said \"hi\" <b>bold</b> & #1 50%".to_string()),
                checks: 2,
                ..node("end", "stale")
            },
            node("graph", "fresh"),
        ];
        let m = mermaid(&nodes, &[edge("end", "graph")]);
        assert!(m.starts_with("flowchart LR\n"), "{m}");
        let decl = m
            .lines()
            .find(|l| l.contains("[\"end"))
            .expect("declaration of `end`");
        let (id, label) = decl.trim().split_once('[').unwrap();
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{id}"
        );
        assert_ne!(id, "end");
        assert!(label.starts_with('"') && label.ends_with("\"]"), "{label}");
        let inner = &label[1..label.len() - 2];
        assert!(!inner.contains('"'), "raw quote in {inner}");
        assert!(!inner.contains("<b>"), "raw markup in {inner}");
        assert!(inner.contains("#quot;hi#quot;"), "{inner}");
        assert!(inner.contains("#lt;b#gt;"), "{inner}");
        assert!(inner.contains("#amp;") && inner.contains("#35;1") && inner.contains("50#37;"));
        assert!(inner.starts_with("end ✓2<br/>"), "{inner}");
        // The edge uses the ids, not the names.
        assert!(m.contains(&format!("{id} --> n1_graph")), "{m}");
        assert!(!m.lines().any(|l| l.trim() == "end --> graph"));
    }

    #[test]
    fn mermaid_dashes_order_only_edges() {
        let nodes = vec![node("a", "fresh"), node("b", "fresh"), node("c", "fresh")];
        let m = mermaid(
            &nodes,
            &[edge("a", "b"), order_edge("a", "c"), edge("x", "a")],
        );
        let edge_lines: Vec<&str> = m.lines().filter(|l| l.contains("->")).collect();
        assert_eq!(
            edge_lines,
            vec!["  n0_a --> n1_b", "  n0_a -.-> n2_c"],
            "{m}"
        );
    }

    #[test]
    fn mermaid_has_a_class_def_per_state_used() {
        let nodes = vec![
            node("a", "fresh"),
            node("b", "failed"),
            node("c", "mystery"),
            node("d", "fresh"),
        ];
        let m = mermaid(&nodes, &[]);
        for (class, fill) in [
            ("fresh", "#2e7d32"),
            ("failed", "#c62828"),
            ("neutral", NEUTRAL),
        ] {
            let def = m
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("classDef {class} ")))
                .unwrap_or_else(|| panic!("no classDef {class} in\n{m}"));
            assert!(def.contains(&format!("fill:{fill}")), "{def}");
        }
        assert!(!m.contains("classDef stale"), "{m}");
        assert!(m.contains("class n0_a,n3_d fresh"), "{m}");
        assert!(m.contains("class n2_c neutral"), "{m}");
        assert_eq!(state_color("fresh"), "#2e7d32");
    }

    #[test]
    fn mermaid_groups_become_subgraphs() {
        let mut nodes = vec![node("a", "fresh"), node("b", "fresh"), node("c", "fresh")];
        nodes[0].group = Some("ingest \"raw\"".to_string());
        nodes[2].group = Some("ingest \"raw\"".to_string());
        let m = mermaid(&nodes, &[edge("a", "b")]);
        let lines: Vec<&str> = m.lines().map(str::trim).collect();
        let start = lines
            .iter()
            .position(|l| *l == "subgraph g0[\"ingest #quot;raw#quot;\"]")
            .unwrap_or_else(|| panic!("{m}"));
        assert_eq!(lines[start + 1], "n0_a[\"a\"]");
        assert_eq!(lines[start + 2], "n2_c[\"c\"]");
        assert_eq!(lines[start + 3], "end");
        assert_eq!(m.matches("subgraph").count(), 1);
    }

    #[test]
    fn svg_is_well_formed_and_escapes_text() {
        let nodes = vec![
            GraphNode {
                detail: Some("<script>alert('x')</script> & more".to_string()),
                group: Some("g<1>".to_string()),
                ..node("a", "fresh")
            },
            node("b", "<weird state>"),
        ];
        let svg_text = svg(&nodes, &[edge("a", "b")]);
        let root = parse_svg(&svg_text);
        assert_eq!(root.name, "svg");
        assert!(!svg_text.contains("<script"), "{svg_text}");
        assert!(svg_text.contains("&lt;script&gt;"), "{svg_text}");
        let detail = root
            .descendants()
            .into_iter()
            .find(|e| e.has_class("detail"))
            .unwrap()
            .text();
        assert!(detail.starts_with("<script>alert('x')"), "{detail}");
        // Self-contained: no external references or fonts.
        assert!(!svg_text.contains("href"), "{svg_text}");
        assert!(!svg_text.contains("@import") && !svg_text.contains("<style"));
        assert_eq!(root.attr("font-family"), Some("sans-serif"));
    }

    #[test]
    fn svg_has_size_viewbox_names_and_a_legend_of_present_states() {
        let (nodes, edges) = diamond();
        let svg_text = svg(&nodes, &edges);
        let root = parse_svg(&svg_text);
        let w = root.num("width");
        let h = root.num("height");
        assert!(w > 200.0 && h > 100.0, "{w}x{h}");
        assert_eq!(
            root.attr("viewBox"),
            Some(format!("0 0 {} {}", num(w), num(h)).as_str())
        );
        let drawn: Vec<String> = boxes(&root).into_iter().map(|(n, _)| n).collect();
        for n in &nodes {
            assert!(drawn.contains(&n.name), "{} missing from {drawn:?}", n.name);
        }
        let legend = root
            .descendants()
            .into_iter()
            .find(|e| e.has_class("legend"))
            .expect("legend");
        let legend_text: Vec<String> = legend.find_all("text").iter().map(|t| t.text()).collect();
        for st in [
            "fresh", "done", "stale", "running", "queued", "missing", "failed",
        ] {
            assert!(
                legend_text.contains(&st.to_string()),
                "{st} not in {legend_text:?}"
            );
        }
        assert!(!legend_text.contains(&"skipped".to_string()));
        assert!(legend_text.contains(&"order-only dependency".to_string()));
        // The check badges.
        let badges: Vec<String> = root
            .descendants()
            .into_iter()
            .filter(|e| e.has_class("checks"))
            .map(|e| e.text())
            .collect();
        assert_eq!(badges, vec!["✓1", "✓2"]);
    }

    #[test]
    fn svg_draws_one_path_per_edge_with_an_arrow_and_dashes_order_only() {
        let (nodes, edges) = diamond();
        let root = parse_svg(&svg(&nodes, &edges));
        let marker = root.find_all("marker");
        assert_eq!(marker.len(), 1);
        let url = format!("url(#{})", marker[0].attr("id").unwrap());
        let paths: Vec<&Element> = root
            .find_all("path")
            .into_iter()
            .filter(|p| p.has_class("edge"))
            .collect();
        assert_eq!(paths.len(), edges.len());
        assert!(paths
            .iter()
            .all(|p| p.attr("marker-end") == Some(url.as_str())));
        let dashed = paths
            .iter()
            .filter(|p| p.attr("stroke-dasharray").is_some())
            .count();
        assert_eq!(dashed, edges.iter().filter(|e| e.order_only).count());
        assert!(paths
            .iter()
            .all(|p| p.has_class("order-only") == p.attr("stroke-dasharray").is_some()));
    }

    #[test]
    fn svg_layers_run_left_to_right_without_overlaps_for_50_assets() {
        for (seed, deep) in [(7, false), (3, false), (7, true)] {
            check_50(seed, deep);
        }
    }

    fn check_50(seed: u64, deep: bool) {
        let (nodes, edges) = random_dag(50, seed, deep);
        let svg_text = svg(&nodes, &edges);
        let root = parse_svg(&svg_text);
        let drawn = boxes(&root);
        assert_eq!(drawn.len(), 50);
        for i in 0..drawn.len() {
            for j in 0..i {
                assert!(
                    !overlap(&drawn[i].1, &drawn[j].1),
                    "{} {:?} overlaps {} {:?}",
                    drawn[i].0,
                    drawn[i].1,
                    drawn[j].0,
                    drawn[j].1
                );
            }
        }
        // Boxes are in node order; every edge goes strictly left to right.
        let at = |name: &str| nodes.iter().position(|n| n.name == name).unwrap();
        for e in &edges {
            let (a, b) = (&drawn[at(&e.from)].1, &drawn[at(&e.to)].1);
            assert!(a.x + a.w < b.x, "{} -> {}: {a:?} {b:?}", e.from, e.to);
        }
        // Every name is present, truncated with an ellipsis when long.
        for (n, (shown, r)) in nodes.iter().zip(&drawn) {
            if n.name.chars().count() > NAME_MAX {
                assert_eq!(shown.chars().count(), NAME_MAX);
                assert!(shown.ends_with('…') && n.name.starts_with(shown.trim_end_matches('…')));
            } else {
                assert_eq!(shown, &n.name);
            }
            // The text fits its box, even in the widest common sans-serif.
            assert!(
                text_px(shown, FONT_PX) + 2.0 * PAD_X <= r.w + 0.5,
                "{shown}"
            );
        }
        // The picture contains the boxes.
        let (w, h) = (root.num("width"), root.num("height"));
        assert!(drawn
            .iter()
            .all(|(_, r)| r.x >= 0.0 && r.y >= 0.0 && r.x + r.w <= w && r.y + r.h <= h));
    }

    #[test]
    fn svg_edges_never_cross_other_boxes() {
        for (seed, deep) in [(1, false), (7, false), (42, false), (1, true), (7, true)] {
            let (nodes, edges) = random_dag(50, seed, deep);
            let root = parse_svg(&svg(&nodes, &edges));
            let drawn = boxes(&root);
            let paths: Vec<&Element> = root
                .find_all("path")
                .into_iter()
                .filter(|p| p.has_class("edge"))
                .collect();
            assert_eq!(paths.len(), edges.len());
            for (path, e) in paths.iter().zip(&edges) {
                for (x, y) in sample_path(path.attr("d").unwrap()) {
                    for (name, r) in &drawn {
                        if *name == e.from || *name == e.to {
                            continue;
                        }
                        let inside = x > r.x + 0.5
                            && x < r.x + r.w - 0.5
                            && y > r.y + 0.5
                            && y < r.y + r.h - 0.5;
                        assert!(
                            !inside,
                            "seed {seed}: edge {} -> {} crosses {name}",
                            e.from, e.to
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn svg_width_grows_with_layers_and_height_with_breadth() {
        let chain = |k: usize| {
            let nodes: Vec<GraphNode> = (0..k).map(|i| node(&format!("a{i}"), "fresh")).collect();
            let edges: Vec<GraphEdge> = (1..k)
                .map(|i| edge(&format!("a{}", i - 1), &format!("a{i}")))
                .collect();
            parse_svg(&svg(&nodes, &edges))
        };
        let (c3, c6, c12) = (chain(3), chain(6), chain(12));
        assert!(c6.num("width") > c3.num("width") + 100.0);
        assert!(c12.num("width") > c6.num("width") + 200.0);
        let fan = |k: usize| {
            let mut nodes = vec![node("root", "fresh")];
            nodes.extend((0..k).map(|i| node(&format!("leaf{i}"), "stale")));
            let edges: Vec<GraphEdge> = (0..k).map(|i| edge("root", &format!("leaf{i}"))).collect();
            parse_svg(&svg(&nodes, &edges))
        };
        assert!(fan(20).num("height") > fan(5).num("height") + 300.0);
    }

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
    fn layout_survives_cycles_unknown_endpoints_and_duplicates() {
        let nodes = vec![node("a", "fresh"), node("b", "stale"), node("c", "failed")];
        let edges = vec![
            edge("a", "b"),
            edge("b", "c"),
            edge("c", "a"),
            edge("a", "a"),
            edge("a", "ghost"),
            order_edge("a", "b"),
        ];
        let svg_text = svg(&nodes, &edges);
        let root = parse_svg(&svg_text);
        let paths = root
            .find_all("path")
            .into_iter()
            .filter(|p| p.has_class("edge"))
            .count();
        assert_eq!(paths, 3, "a->b (data wins over order-only), b->c, c->a");
        assert!(!svg_text.contains("order-only dependency"));
        let t = text(&nodes, &edges);
        assert_eq!(t.lines().count(), 3);
        assert!(!t.contains("ghost"));
    }

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

    #[test]
    fn empty_graph_renders_everywhere() {
        assert!(mermaid(&[], &[]).starts_with("flowchart LR\n"));
        let root = parse_svg(&svg(&[], &[]));
        assert!(root.text().contains("no assets"));
        assert_eq!(text(&[], &[]), "(no assets)\n");
    }

    #[test]
    fn text_lists_nodes_in_layer_order_with_deps() {
        let (nodes, edges) = diamond();
        let t = text(&nodes, &edges);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 8);
        let first_word: Vec<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            first_word,
            vec![
                "raw_temperatures",
                "stations",
                "clean",
                "features_a",
                "features_b",
                "model",
                "plot",
                "report"
            ]
        );
        let model = lines.iter().find(|l| l.starts_with("model")).unwrap();
        assert!(
            model.contains("[queued]")
                && model.contains("<- stations (order-only), features_a, features_b"),
            "{model}"
        );
        let clean = lines.iter().find(|l| l.starts_with("clean")).unwrap();
        assert!(clean.ends_with("(done in 1.2 s)  ✓2"), "{clean}");
        assert!(lines[0].ends_with("[fresh]"), "{}", lines[0]);
        // The `<-` columns line up.
        let cols: Vec<usize> = lines.iter().filter_map(|l| l.find(" <- ")).collect();
        assert_eq!(cols.len(), 6);
        assert!(cols.windows(2).all(|w| w[0] == w[1]), "{t}");
    }

    #[test]
    fn a_large_graph_lays_out() {
        let (nodes, edges) = random_dag(1500, 3, true);
        let lay = layout(&nodes, &edges);
        assert_eq!(lay.nodes.len(), 1500);
        assert!(lay.width > 1000.0 && lay.height > 100.0);
    }

    /// With `SLURMBOOK_DRAW_SAMPLES=<dir>`, writes graph50.svg and graph8.svg
    /// (and their Mermaid and text forms) there to look at.
    #[test]
    fn samples_render() {
        let (n50, e50) = sample_dag(50, 7);
        let (n8, e8) = diamond();
        let s50 = svg(&n50, &e50);
        let s8 = svg(&n8, &e8);
        assert!(parse_svg(&s50).num("width") > parse_svg(&s8).num("width"));
        if let Ok(dir) = std::env::var("SLURMBOOK_DRAW_SAMPLES") {
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join("graph50.svg"), &s50).unwrap();
            std::fs::write(dir.join("graph8.svg"), &s8).unwrap();
            std::fs::write(dir.join("graph50.mmd"), mermaid(&n50, &e50)).unwrap();
            let (deep_n, deep_e) = random_dag(50, 7, true);
            std::fs::write(dir.join("graph50_deep.svg"), svg(&deep_n, &deep_e)).unwrap();
            std::fs::write(dir.join("graph8.mmd"), mermaid(&n8, &e8)).unwrap();
            std::fs::write(dir.join("graph50.txt"), text(&n50, &e50)).unwrap();
            std::fs::write(dir.join("graph8.txt"), text(&n8, &e8)).unwrap();
            // Worst cases for text measurement.
            let wide = vec![
                GraphNode {
                    detail: Some("M".repeat(50)),
                    ..node(&"W".repeat(40), "failed")
                },
                node(&"m".repeat(27), "fresh"),
                node("iiiiiiii", "stale"),
                GraphNode {
                    detail: Some("データの読み込み、完了しました".to_string()),
                    ..node("日本語の資産名_データ", "done")
                },
                node("%_&_<x>_\"q\"", "running"),
            ];
            let edges = vec![
                edge(&"W".repeat(40), &"m".repeat(27)),
                edge("iiiiiiii", &"m".repeat(27)),
                edge(&"m".repeat(27), "日本語の資産名_データ"),
                edge(&"m".repeat(27), "%_&_<x>_\"q\""),
            ];
            std::fs::write(dir.join("graph_wide.svg"), svg(&wide, &edges)).unwrap();
        }
    }
}
