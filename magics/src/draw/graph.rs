//! The asset graph, drawn three ways: a Mermaid flowchart ([`mermaid`];
//! JupyterLab 4 renders `text/vnd.mermaid`), a self-contained SVG ([`svg`];
//! the `image/svg+xml` fallback) and plain text for terminals ([`text`]).
//! This module is the public face; each renderer lives in its own module.

pub use super::mermaid::mermaid;
pub use super::model::{Badge, GraphEdge, GraphNode};
pub use super::state::state_color;
pub use super::svg::svg;
pub use super::text::text;

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        diamond, edge, node, order_edge, parse_svg, random_dag, sample_dag,
    };
    use super::*;

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
    fn empty_graph_renders_everywhere() {
        assert!(mermaid(&[], &[]).starts_with("flowchart LR\n"));
        let root = parse_svg(&svg(&[], &[]));
        assert!(root.text().contains("no assets"));
        assert_eq!(text(&[], &[]), "(no assets)\n");
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
