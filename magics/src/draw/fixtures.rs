//! Test fixtures for the graph renderers: nodes, edges, sample graphs, and
//! the SVG checked for well-formedness.

use super::model::{GraphEdge, GraphNode};
use super::xml::{self, Element};

pub(super) fn node(name: &str, state: &str) -> GraphNode {
    GraphNode {
        name: name.to_string(),
        state: state.to_string(),
        detail: None,
        group: None,
        checks: 0,
        freshness: None,
    }
}

pub(super) fn edge(from: &str, to: &str) -> GraphEdge {
    GraphEdge {
        from: from.to_string(),
        to: to.to_string(),
        order_only: false,
    }
}

pub(super) fn order_edge(from: &str, to: &str) -> GraphEdge {
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
pub(super) fn random_dag(n: usize, seed: u64, deep: bool) -> (Vec<GraphNode>, Vec<GraphEdge>) {
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
            freshness: None,
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

pub(super) fn sample_dag(n: usize, seed: u64) -> (Vec<GraphNode>, Vec<GraphEdge>) {
    random_dag(n, seed, false)
}

/// The 8-asset sample: a diamond with a side branch, an order-only
/// dependency and a check.
pub(super) fn diamond() -> (Vec<GraphNode>, Vec<GraphEdge>) {
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

pub(super) fn parse_svg(svg: &str) -> Element {
    xml::parse(svg).unwrap_or_else(|e| panic!("SVG is not well-formed XML: {e}\n{svg}"))
}
