//! The asset graph as a Mermaid flowchart, which JupyterLab 4 renders from
//! `text/vnd.mermaid`.

use std::fmt::Write as _;

use super::model::{badge_color, prepare, GraphEdge, GraphNode};
use super::state::{canonical_state, state_color, NEUTRAL, PALETTE};
use super::{darker, one_line, text_on, truncate};

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
        if let Some(b) = &n.freshness {
            let _ = write!(label, " [{}]", mermaid_escape(&b.state));
        }
        if let Some(d) = n.detail.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            let _ = write!(label, "<br/>{}", mermaid_escape(&truncate(d, 80)));
        }
        if let Some(b) = n.freshness.as_ref().filter(|b| !b.text.is_empty()) {
            let _ = write!(label, "<br/>{}", mermaid_escape(&truncate(&b.text, 80)));
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
    // Freshness policy FAIL and WARN: a thick outline over the state's.
    for (class, state) in [("overdue", "FAIL"), ("warn", "WARN")] {
        let list: Vec<&str> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.freshness.as_ref().is_some_and(|b| b.state == state))
            .map(|(i, _)| ids[i].as_str())
            .collect();
        if !list.is_empty() {
            let _ = writeln!(
                s,
                "  classDef {class} stroke:{},stroke-width:4px",
                badge_color(state)
            );
            let _ = writeln!(s, "  class {} {class}", list.join(","));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{edge, node, order_edge};
    use super::*;

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
    fn mermaid_marks_freshness_badges_and_outlines_overdue_and_warn() {
        let badge = |state: &str, text: &str| {
            Some(super::super::model::Badge {
                state: state.into(),
                text: text.into(),
            })
        };
        let nodes = vec![
            GraphNode {
                freshness: badge("FAIL", "overdue by 40 m"),
                ..node("a", "fresh")
            },
            GraphNode {
                freshness: badge("WARN", "warning: fails in 1 h"),
                ..node("b", "stale")
            },
            GraphNode {
                freshness: badge("PASS", "fresh for 2 h 10 m"),
                ..node("c", "fresh")
            },
            node("d", "fresh"),
        ];
        let m = mermaid(&nodes, &[]);
        assert!(m.contains("n0_a[\"a [FAIL]<br/>overdue by 40 m\"]"), "{m}");
        assert!(
            m.contains("n2_c[\"c [PASS]<br/>fresh for 2 h 10 m\"]"),
            "{m}"
        );
        assert!(m.contains("n3_d[\"d\"]"), "{m}");
        assert!(
            m.contains("classDef overdue stroke:#c62828,stroke-width:4px\n  class n0_a overdue"),
            "{m}"
        );
        assert!(m.contains("class n1_b warn"), "{m}");
        // After the state classes, so the outline wins.
        assert!(m.find("class n0_a overdue") > m.find("class n0_a,n2_c,n3_d fresh"));
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
}
