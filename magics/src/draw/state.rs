//! The asset states: their fill colours (shared by the SVG, the Mermaid
//! `classDef`s and the table badges), their display names, and which are
//! present in a graph.

use super::model::GraphNode;
use super::{one_line, truncate};

/// The known states, in legend order, with their fill colors.
pub(super) const PALETTE: [(&str, &str); 9] = [
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
pub(super) const NEUTRAL: &str = "#ffffff";

pub(super) fn canonical_state(state: &str) -> Option<&'static str> {
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
pub(super) fn state_label(state: &str) -> String {
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
pub(super) fn states_present(nodes: &[GraphNode]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
