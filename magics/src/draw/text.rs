//! The asset graph as plain text for terminals: one line per asset in
//! layer order, with its state, its dependencies, detail and checks.

use std::fmt::Write as _;

use super::model::{prepare, GraphEdge, GraphNode};
use super::state::state_label;
use super::{display_width, one_line};

/// Plain-text rendering for terminals: one line per node in layer order,
/// `name [state] <- dep1, dep2`, order-only dependencies marked, then the
/// detail in parentheses, a `✓N` for attached checks and the freshness
/// policy badge (`[FAIL overdue by 40 m]`).
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
        if let Some(b) = &node.freshness {
            let text = one_line(&b.text);
            let sep = if text.trim().is_empty() { "" } else { " " };
            let _ = write!(tail, "  [{}{sep}{}]", one_line(&b.state), text.trim());
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::diamond;
    use super::*;

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
}
