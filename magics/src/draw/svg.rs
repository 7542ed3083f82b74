//! The asset graph as a self-contained SVG, the `image/svg+xml` fallback for
//! clients without Mermaid: boxes coloured by state, curved edges, a legend.

use std::fmt::Write as _;

use super::layout::{layout, DETAIL_PX, FONT_PX, LEGEND_PX, MARGIN};
use super::model::{badge_color, GraphEdge, GraphNode};
use super::state::{canonical_state, state_color, state_label, states_present};
use super::{darker, one_line, text_on, text_px, xml_escape};

/// A coordinate with at most one decimal.
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

// Hand-written: layout-rs's SVG writer has no per-node classes or titles and emits a serif <style>.
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
        Freshness(&'static str),
    }
    let mut items: Vec<Item> = states_present(nodes).into_iter().map(Item::State).collect();
    for state in ["PASS", "WARN", "FAIL", "UNKNOWN"] {
        if nodes
            .iter()
            .any(|n| n.freshness.as_ref().is_some_and(|b| b.state == state))
        {
            items.push(Item::Freshness(state));
        }
    }
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
        Item::Freshness(st) => format!("freshness {st}"),
    };
    let swatch_w = |it: &Item| match it {
        Item::State(_) => 14.0,
        Item::OrderOnly => 26.0,
        Item::Checks => 24.0,
        Item::Freshness(st) => badge_width(st),
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
        if let Some(b) = &node.freshness {
            let _ = write!(tip, "; freshness {}", one_line(&b.state));
            if !b.text.trim().is_empty() {
                let _ = write!(tip, ": {}", one_line(&b.text));
            }
        }
        // A policy that WARNs or FAILs outlines the box in its colour.
        let outline = node
            .freshness
            .as_ref()
            .filter(|b| b.state == "FAIL" || b.state == "WARN")
            .map(|b| badge_color(&b.state));
        let _ = writeln!(
            s,
            "<g class=\"node state-{css}\"><title>{}</title>",
            xml_escape(&tip)
        );
        let _ = writeln!(
            s,
            "<rect class=\"node-box\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"8\" \
             fill=\"{fill}\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
            num(r.x),
            num(r.y),
            num(r.w),
            num(r.h),
            outline.map_or_else(|| darker(fill), str::to_string),
            if outline.is_some() { "3" } else { "1.2" },
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
        if let Some(b) = &node.freshness {
            s.push_str(&badge(&b.state, &b.text, r.x + 6.0, r.y - 7.5));
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
            Item::Freshness(st) => s.push_str(&badge(st, "", x, y - 0.5)),
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

/// The width of a freshness badge saying `state`.
fn badge_width(state: &str) -> f64 {
    (text_px(state, 9.0) + 10.0).ceil()
}

/// A freshness policy badge: a pill in the state's colour at (`x`, `y`),
/// saying the state (`FAIL`), with `text` as its tooltip.
fn badge(state: &str, text: &str, x: f64, y: f64) -> String {
    let state = one_line(state);
    let color = badge_color(&state);
    let w = badge_width(&state);
    let title = if text.is_empty() {
        String::new()
    } else {
        format!(
            "<title>freshness {}: {}</title>",
            xml_escape(&state),
            xml_escape(&one_line(text))
        )
    };
    format!(
        "<g class=\"freshness freshness-{}\">{title}<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"15\" \
         rx=\"7.5\" fill=\"{color}\" stroke=\"{}\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
         font-size=\"9\" font-weight=\"bold\" fill=\"#ffffff\">{}</text></g>\n",
        state
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase(),
        num(x),
        num(y),
        num(w),
        darker(color),
        num(x + w / 2.0),
        num(y + 11.0),
        xml_escape(&state)
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{diamond, edge, node, parse_svg, random_dag};
    use super::super::layout::{Rect, NAME_MAX, PAD_X};
    use super::super::xml::Element;
    use super::*;

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
    fn svg_draws_freshness_badges_outlines_and_their_legend() {
        use super::super::model::Badge;
        let with = |name: &str, state: &str, text: &str| GraphNode {
            freshness: Some(Badge {
                state: state.into(),
                text: text.into(),
            }),
            ..node(name, "fresh")
        };
        let nodes = vec![
            with("a", "FAIL", "overdue by 40 m"),
            with("b", "PASS", "fresh for 2 h"),
            node("c", "fresh"),
        ];
        let svg_text = svg(&nodes, &[edge("a", "b"), edge("b", "c")]);
        let root = parse_svg(&svg_text);
        let node_of = |name: &str| {
            root.descendants()
                .into_iter()
                .filter(|e| e.name == "g" && e.has_class("node"))
                .find(|g| {
                    g.find_all("text")
                        .iter()
                        .any(|t| t.has_class("name") && t.text() == name)
                })
                .unwrap()
        };
        let a = node_of("a");
        let badge = a
            .descendants()
            .into_iter()
            .find(|e| e.has_class("freshness"))
            .expect("a has a badge");
        assert!(badge.has_class("freshness-fail"));
        assert!(badge.text().contains("FAIL"), "{}", badge.text());
        assert!(badge.text().contains("overdue by 40 m"), "tooltip");
        let outline = a
            .find_all("rect")
            .into_iter()
            .find(|r| r.has_class("node-box"))
            .unwrap();
        assert_eq!(outline.attr("stroke"), Some("#c62828"));
        assert_eq!(outline.attr("stroke-width"), Some("3"));
        assert!(node_of("b")
            .descendants()
            .iter()
            .any(|e| e.has_class("freshness-pass")));
        assert!(!node_of("c")
            .descendants()
            .iter()
            .any(|e| e.has_class("freshness")));
        let legend = root
            .descendants()
            .into_iter()
            .find(|e| e.has_class("legend"))
            .unwrap();
        let legend_text: Vec<String> = legend.find_all("text").iter().map(|t| t.text()).collect();
        assert!(
            legend_text.contains(&"freshness FAIL".to_string()),
            "{legend_text:?}"
        );
        assert!(legend_text.contains(&"freshness PASS".to_string()));
        assert!(!legend_text.contains(&"freshness WARN".to_string()));
        let t = super::super::text::text(&nodes, &[edge("a", "b")]);
        assert!(t.contains("[FAIL overdue by 40 m]"), "{t}");
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
    fn svg_names_every_asset_in_full_and_fills_its_box_with_the_state_color() {
        let (nodes, edges) = random_dag(50, 7, false);
        let svg_text = svg(&nodes, &edges);
        let root = parse_svg(&svg_text);
        let node_groups: Vec<&Element> = root
            .descendants()
            .into_iter()
            .filter(|e| e.name == "g" && e.has_class("node"))
            .collect();
        assert_eq!(node_groups.len(), nodes.len());
        for (n, g) in nodes.iter().zip(node_groups) {
            // The full name, even when the box shows it truncated (the
            // python and browser tests look for it).
            assert!(
                g.find_all("title")[0].text().starts_with(&n.name),
                "{}",
                n.name
            );
            let shapes: Vec<&Element> = g
                .find_all("rect")
                .into_iter()
                .filter(|r| r.has_class("node-box"))
                .collect();
            assert_eq!(shapes.len(), 1, "{}", n.name);
            assert_eq!(shapes[0].attr("fill"), Some(state_color(&n.state)));
        }
    }
}
