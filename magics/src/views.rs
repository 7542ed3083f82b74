//! What `%assets`, `%graph`, `%runs` and the live status table show, built
//! from the project, the state database and a run's events (tables and
//! graph parts; `draw` renders them, the kernel and the CLI show them).

use crate::draw::graph::{Badge, GraphEdge, GraphNode};
use crate::draw::table::Table;
use crate::events::{format_duration, AssetState};
use crate::graph::{EdgeKind, SelectionError, StateAtom};
use crate::model::MaterializationStatus;
use crate::policy::{PolicyState, PolicyStatus};
use crate::project::Project;
use crate::state::{Materialization, Run};
use crate::syntax::selection::Selection;
use crate::version::Freshness;
use std::collections::HashMap;

/// An asset's state as `%assets` and `%graph` show it.
pub struct AssetStatus {
    pub state: &'static str,
    pub why: String,
}

pub fn asset_status(
    freshness: Option<&Freshness>,
    latest: Option<&Materialization>,
    last_success: Option<&Materialization>,
) -> AssetStatus {
    let newer_than_success = |m: &Materialization| last_success.is_none_or(|s| m.started_after(s));
    match latest {
        Some(m) if m.status == MaterializationStatus::Running && newer_than_success(m) => {
            AssetStatus {
                state: "running",
                why: match &m.job_id {
                    Some(j) => format!("job {j}"),
                    None => "in the kernel".into(),
                },
            }
        }
        Some(m) if m.status == MaterializationStatus::Failed && newer_than_success(m) => {
            AssetStatus {
                state: "failed",
                why: strip_ansi(
                    m.error
                        .as_deref()
                        .and_then(|e| e.lines().find(|l| !l.trim().is_empty()))
                        .unwrap_or("failed"),
                )
                .chars()
                .take(120)
                .collect(),
            }
        }
        _ => match freshness {
            Some(f) => AssetStatus {
                state: f.label(),
                why: f
                    .reasons()
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            None => AssetStatus {
                state: "missing",
                why: "never materialized".into(),
            },
        },
    }
}

pub fn location(m: &Materialization) -> String {
    match (&m.job_id, &m.node) {
        (Some(job), Some(node)) => format!("slurm job {job} on {node}"),
        (Some(job), None) => format!("slurm job {job}"),
        _ => "kernel".into(),
    }
}

fn when(m: &Materialization) -> String {
    let at = m
        .finished_at
        .unwrap_or(m.started_at)
        .with_timezone(&chrono::Local);
    let took = m
        .duration_ms
        .map(|d| format!(" ({})", format_duration(d.max(0) as u64)))
        .unwrap_or_default();
    format!("{}{took}", at.format("%Y-%m-%d %H:%M:%S"))
}

pub struct Snapshot {
    pub freshness: HashMap<String, Freshness>,
    pub latest: HashMap<String, Materialization>,
    pub successes: HashMap<String, Materialization>,
    /// Freshness policy states of the assets that have a policy.
    pub policy: HashMap<String, PolicyStatus>,
    /// The partitions of the partitioned assets whose keys are known.
    pub partitions: HashMap<String, crate::partitions::Partitions>,
}

impl Snapshot {
    /// Answers a selection's state atoms: `stale` (not fresh, or unknown),
    /// `overdue` (policy FAIL), `warn` (policy WARN).
    pub fn is(&self, atom: StateAtom, asset: &str) -> bool {
        let policy = |state| self.policy.get(asset).is_some_and(|s| s.state == state);
        match atom {
            StateAtom::Stale => self.freshness.get(asset).is_none_or(|f| !f.is_fresh()),
            StateAtom::Overdue => policy(PolicyState::Fail),
            StateAtom::Warn => policy(PolicyState::Warn),
        }
    }

    /// The assets `selection` selects, in topological order.
    pub fn select(
        &self,
        project: &Project,
        selection: &Selection,
    ) -> Result<Vec<String>, SelectionError> {
        project.select_states(selection, |atom, name| self.is(atom, name))
    }

    /// The `%assets` / `%graph` text of an asset's policy state: `fresh for
    /// 2 h 10 m`, `overdue by 40 m`, ...; empty without a policy.
    pub fn policy_text(&self, asset: &str) -> String {
        self.policy
            .get(asset)
            .map(PolicyStatus::text)
            .unwrap_or_default()
    }

    pub fn status(&self, asset: &str) -> AssetStatus {
        let mut status = asset_status(
            self.freshness.get(asset),
            self.latest.get(asset),
            self.successes.get(asset),
        );
        if let Some(parts) = self.partitions.get(asset) {
            // `97/100 fresh, 3 failed (7, 41, 88)`
            status.why = parts.summary();
        }
        status
    }
}

/// The `%assets` table.
pub fn assets_table(project: &Project, snap: &Snapshot) -> Table {
    let mut table = Table {
        columns: [
            "asset",
            "deps",
            "state",
            "why",
            "last materialized",
            "where",
            "freshness",
            "auto",
        ]
        .map(String::from)
        .to_vec(),
        caption: project
            .notebook_path
            .as_ref()
            .map(|p| format!("{} assets in {}", project.assets.len(), p.display())),
        ..Table::default()
    };
    for asset in &project.assets {
        let deps: Vec<String> = project
            .graph
            .dependencies(&asset.name)
            .into_iter()
            .map(|(d, kind)| match kind {
                EdgeKind::Data => d.to_owned(),
                _ => format!("{d} (order)"),
            })
            .collect();
        let status = snap.status(&asset.name);
        let success = snap.successes.get(&asset.name);
        table.rows.push(vec![
            asset.name.clone(),
            deps.join(", "),
            status.state.to_owned(),
            status.why,
            success.map(when).unwrap_or_else(|| "never".into()),
            success.map(location).unwrap_or_default(),
            snap.policy_text(&asset.name),
            asset
                .options
                .auto
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
        ]);
        table.row_states.push(Some(status.state.to_owned()));
    }
    table
}

/// Nodes and edges of the graph (of `names`, or of every asset).
pub fn graph_parts(
    project: &Project,
    names: Option<&[String]>,
    snap: &Snapshot,
) -> (Vec<GraphNode>, Vec<GraphEdge>) {
    let names: Vec<String> = match names {
        Some(n) => n.to_vec(),
        None => project.assets.iter().map(|a| a.name.clone()).collect(),
    };
    let chosen: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let nodes = names
        .iter()
        .map(|name| {
            let status = snap.status(name);
            let spec = project.asset(name);
            // The badge's text, unless the detail says it already ("never materialized").
            let badge_text = snap.policy_text(name);
            let badge_text = if badge_text == status.why {
                String::new()
            } else {
                badge_text
            };
            // A Python or bash asset says so on its node.
            let why = match spec.map(|s| s.lang()).filter(|l| l.is_foreign()) {
                Some(lang) if status.why.is_empty() => lang.to_string(),
                Some(lang) => format!("{lang} · {}", status.why),
                None => status.why,
            };
            let auto = spec
                .and_then(|s| s.options.auto.as_ref())
                .map(|c| format!("auto {c}"));
            let detail = [(!why.is_empty()).then_some(why), auto]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            GraphNode {
                name: name.clone(),
                state: status.state.to_owned(),
                detail: (!detail.is_empty()).then_some(detail),
                group: spec.and_then(|s| s.options.group.clone()),
                checks: project.checks_of(name).count(),
                freshness: snap.policy.get(name).map(|p| Badge {
                    state: p.state.as_str().to_string(),
                    text: badge_text,
                }),
            }
        })
        .collect();
    let edges = project
        .graph
        .edges()
        .into_iter()
        .filter(|(from, to, _)| chosen.contains(from) && chosen.contains(to))
        .map(|(from, to, kind)| GraphEdge {
            from: from.to_owned(),
            to: to.to_owned(),
            order_only: kind != EdgeKind::Data,
        })
        .collect();
    (nodes, edges)
}

/// The `%runs` table.
pub fn runs_table(
    runs: &[Run],
    assets_of: impl Fn(i64) -> Vec<Materialization>,
    triggers: &HashMap<i64, String>,
) -> Table {
    let mut table = Table {
        columns: [
            "run",
            "started",
            "selection",
            "target",
            "status",
            "assets",
            "trigger",
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    for run in runs {
        let mats = assets_of(run.id);
        let count = |s: MaterializationStatus| mats.iter().filter(|m| m.status == s).count();
        let assets = format!(
            "{} ok, {} failed, {} skipped, {} running",
            count(MaterializationStatus::Ok),
            count(MaterializationStatus::Failed),
            count(MaterializationStatus::Skipped),
            count(MaterializationStatus::Running),
        );
        table.rows.push(vec![
            run.id.to_string(),
            run.started_at
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            run.selection.clone(),
            run.target.as_str().to_owned(),
            run.status.as_str().to_owned(),
            assets,
            triggers.get(&run.id).cloned().unwrap_or_default(),
        ]);
        table.row_states.push(Some(
            match run.status.as_str() {
                "ok" => "done",
                "running" => "running",
                "cancelled" => "cancelled",
                _ => "failed",
            }
            .to_owned(),
        ));
    }
    table
}

/// The live status table of a run.
pub fn status_table(rows: &[(String, AssetState)]) -> Table {
    let mut table = Table {
        columns: ["asset", "state", "detail"].map(String::from).to_vec(),
        ..Table::default()
    };
    for (asset, state) in rows {
        table.rows.push(vec![
            asset.clone(),
            state.label().to_owned(),
            state.describe(),
        ]);
        table.row_states.push(Some(state.label().to_owned()));
    }
    table
}

/// What inspecting an asset's name shows (Shift-Tab in JupyterLab): its
/// type, dependencies, dependents, state and last materialization.
pub fn describe_asset(project: &Project, snap: &Snapshot, name: &str) -> Option<String> {
    let spec = project.asset(name)?;
    let status = snap.status(name);
    let list = |names: Vec<&str>| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let deps = list(
        project
            .graph
            .dependencies(name)
            .into_iter()
            .map(|(d, _)| d)
            .collect(),
    );
    let dependents = list(
        project
            .graph
            .dependents(name)
            .into_iter()
            .map(|(d, _)| d)
            .collect(),
    );
    let mut text = format!("asset {name}");
    if let Some(ty) = &spec.type_annotation {
        text.push_str(&format!(": {ty}"));
    }
    let why = if status.why.is_empty() {
        String::new()
    } else {
        format!(" ({})", status.why)
    };
    text.push_str(&format!(
        "\n  deps:       {deps}\n  dependents: {dependents}\n  state:      {}{why}\n",
        status.state
    ));
    match snap.successes.get(name) {
        Some(m) => text.push_str(&format!(
            "  last:       {} on {}{}\n",
            m.finished_at
                .unwrap_or(m.started_at)
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S"),
            location(m),
            m.metadata
                .get("type")
                .and_then(serde_json::Value::as_str)
                .map(|t| format!(", type {t}"))
                .unwrap_or_default(),
        )),
        None => text.push_str("  last:       never materialized\n"),
    }
    if let Some(spec) = spec.options.partitioning() {
        let now = snap
            .partitions
            .get(name)
            .map(|p| format!(": {}", p.summary()))
            .unwrap_or_default();
        text.push_str(&format!("  partitions: {spec}{now}\n"));
    }
    if let Some(p) = snap.policy.get(name) {
        text.push_str(&format!(
            "  freshness:  {} ({})\n",
            p.state,
            snap.policy_text(name)
        ));
    }
    Some(text)
}

/// Text without ANSI colour sequences (tables are not terminals).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_sequences() {
        assert_eq!(strip_ansi("\u{1b}[0;31merror\u{1b}[0m: x"), "error: x");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
