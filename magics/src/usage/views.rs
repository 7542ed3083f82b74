//! The tables and plots of resource usage: the run's final status table
//! with what each asset used and the right-sizing hints, a "last usage"
//! column for `%assets`, the per-asset table of `%runs RUN`, and an
//! asset's history (`%history NAME`: table and plots).

use std::collections::{BTreeSet, HashMap};

use crate::draw::plot::{Plot, Series};
use crate::draw::table::Table;
use crate::events::AssetState;
use crate::model::usage::{format_bytes, format_hours, format_ms, format_pct};
use crate::model::{Hint, MaterializationId, MaterializationStatus, Usage};
use crate::state::Materialization;
use crate::views::status_table;

use super::timeline::state_label;

/// Metadata keys slurmbook itself writes (not the asset's own).
pub const INTERNAL_KEYS: [&str; 3] = ["type", "eval", "elapsed_ms"];

fn opt(v: Option<String>) -> String {
    v.unwrap_or_default()
}

fn cpu_cell(u: &Usage) -> String {
    match (u.cpu_efficiency(), u.cpu_ms) {
        (Some(e), _) => format_pct(e),
        (None, Some(c)) => format_ms(c),
        _ => String::new(),
    }
}

/// The live status table once the run ended: each asset's wall time,
/// queue wait, CPU efficiency and peak memory, and a `hint` column when an
/// asset used far less than it asked for.
pub fn final_status_table(
    rows: &[(String, AssetState)],
    usage: &HashMap<String, (Usage, Vec<Hint>)>,
) -> Table {
    let mut table = status_table(rows);
    if usage.is_empty() {
        return table;
    }
    let any_hint = usage.values().any(|(_, h)| !h.is_empty());
    table
        .columns
        .extend(["wall", "queue", "CPU", "peak mem"].map(String::from));
    if any_hint {
        table.columns.push("hint".into());
    }
    for (row, (asset, _)) in table.rows.iter_mut().zip(rows) {
        let (u, hints) = match usage.get(asset) {
            Some((u, h)) => (u.clone(), h.as_slice()),
            None => (Usage::default(), &[][..]),
        };
        row.push(opt(u.wall_ms.map(format_ms)));
        row.push(opt(u.queue_ms.map(format_ms)));
        row.push(cpu_cell(&u));
        row.push(opt(u.max_rss_bytes.map(format_bytes)));
        if any_hint {
            let texts: Vec<String> = hints.iter().map(Hint::to_string).collect();
            row.push(texts.join("; "));
        }
    }
    table
}

/// A `last usage` column for `%assets` (rows keyed by their first cell).
pub fn add_last_usage_column(table: &mut Table, usage: &HashMap<String, Usage>) {
    table.columns.push("last usage".into());
    let width = table.columns.len();
    for row in &mut table.rows {
        row.resize(width - 1, String::new());
        let cell = row
            .first()
            .and_then(|a| usage.get(a))
            .map(Usage::summary)
            .unwrap_or_default();
        row.push(cell);
    }
}

/// The per-asset table of `%runs RUN`.
pub fn run_table(
    rows: &[Materialization],
    usage: &HashMap<MaterializationId, Usage>,
    hints: &HashMap<String, Vec<Hint>>,
) -> Table {
    let mut table = Table {
        columns: [
            "asset", "state", "job", "node", "queue", "wall", "CPU time", "CPU eff", "peak mem",
            "node-h", "GPU", "from",
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    let any_hint = hints.values().any(|h| !h.is_empty());
    if any_hint {
        table.columns.push("hint".into());
    }
    for m in rows
        .iter()
        .filter(|m| m.status != MaterializationStatus::Skipped)
    {
        let u = usage.get(&m.id).cloned().unwrap_or_default();
        let wall = u.wall_ms.or_else(|| m.duration_ms.map(|d| d.max(0) as u64));
        let gpu = match (u.gpu_hours().map(format_hours), u.gpu_util_pct) {
            (Some(h), Some(p)) => format!("{h} GPU-h, {p:.0} %"),
            (Some(h), None) => format!("{h} GPU-h"),
            _ => String::new(),
        };
        let state = state_label(m.status);
        let mut row = vec![
            m.asset.clone(),
            state.to_string(),
            opt(m.job_id.clone()),
            opt(m.node.clone()),
            opt(u.queue_ms.map(format_ms)),
            opt(wall.map(format_ms)),
            opt(u.cpu_ms.map(format_ms)),
            opt(u.cpu_efficiency().map(format_pct)),
            opt(u.max_rss_bytes.map(format_bytes)),
            opt(u.node_hours().map(format_hours)),
            gpu,
            opt(u.source.map(|s| s.describe().to_string())),
        ];
        if any_hint {
            let texts: Vec<String> = hints
                .get(&m.asset)
                .map(|h| h.iter().map(Hint::to_string).collect())
                .unwrap_or_default();
            row.push(texts.join("; "));
        }
        table.rows.push(row);
        table.row_states.push(Some(state.to_string()));
    }
    table
}

/// The asset's own metadata (without slurmbook's keys) as `k=v, ...`.
fn user_metadata(m: &Materialization) -> String {
    let Some(obj) = m.metadata.as_object() else {
        return String::new();
    };
    obj.iter()
        .filter(|(k, _)| !INTERNAL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What changed since the materialization before (older) it.
fn change(m: &Materialization, before: Option<&Materialization>) -> &'static str {
    match before {
        None => "",
        Some(b) if b.own_hash != m.own_hash => "code changed",
        Some(b) if b.upstream_versions != m.upstream_versions => "upstream changed",
        Some(_) => "same code",
    }
}

fn when(m: &Materialization) -> String {
    m.started_at
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `%history NAME`: the last materializations, newest first.
pub fn history_table(asset: &str, history: &[(Materialization, Option<Usage>)]) -> Table {
    let mut table = Table {
        columns: [
            "when", "state", "version", "change", "target", "job", "duration", "peak mem",
            "metadata",
        ]
        .map(String::from)
        .to_vec(),
        caption: Some(format!(
            "{asset}: last {} materialization{}",
            history.len(),
            if history.len() == 1 { "" } else { "s" }
        )),
        ..Table::default()
    };
    for (i, (m, u)) in history.iter().enumerate() {
        let state = state_label(m.status);
        let duration = u
            .as_ref()
            .and_then(|u| u.wall_ms)
            .or_else(|| m.duration_ms.map(|d| d.max(0) as u64));
        table.rows.push(vec![
            when(m),
            state.to_string(),
            m.version.chars().take(12).collect(),
            change(m, history.get(i + 1).map(|h| &h.0)).to_string(),
            m.target.as_str().to_string(),
            opt(m.job_id.clone()),
            opt(duration.map(format_ms)),
            opt(u.as_ref().and_then(|u| u.max_rss_bytes).map(format_bytes)),
            user_metadata(m),
        ]);
        table.row_states.push(Some(state.to_string()));
    }
    table
}

/// `%history NAME`'s plots: duration, peak memory and each numeric
/// metadata key of the successful materializations, oldest to newest.
pub fn history_plot(asset: &str, history: &[(Materialization, Option<Usage>)]) -> Plot {
    let ok: Vec<&(Materialization, Option<Usage>)> = history
        .iter()
        .rev()
        .filter(|(m, _)| m.status == MaterializationStatus::Ok)
        .collect();
    let mut series = vec![Series {
        name: "duration (s)".into(),
        values: ok
            .iter()
            .map(|(m, u)| {
                u.as_ref()
                    .and_then(|u| u.wall_ms)
                    .or_else(|| m.duration_ms.map(|d| d.max(0) as u64))
                    .map(|ms| ms as f64 / 1000.0)
            })
            .collect(),
    }];
    let peaks: Vec<Option<f64>> = ok
        .iter()
        .map(|(_, u)| {
            u.as_ref()
                .and_then(|u| u.max_rss_bytes)
                .map(|b| b as f64 / (1024.0 * 1024.0))
        })
        .collect();
    if peaks.iter().any(Option::is_some) {
        series.push(Series {
            name: "peak memory (MiB)".into(),
            values: peaks,
        });
    }
    let keys: BTreeSet<&String> = ok
        .iter()
        .filter_map(|(m, _)| m.metadata.as_object())
        .flat_map(|o| o.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k))
        .filter(|k| !INTERNAL_KEYS.contains(&k.as_str()))
        .collect();
    for key in keys {
        series.push(Series {
            name: key.clone(),
            values: ok
                .iter()
                .map(|(m, _)| m.metadata.get(key.as_str()).and_then(|v| v.as_f64()))
                .collect(),
        });
    }
    let label = |m: &Materialization| {
        m.started_at
            .with_timezone(&chrono::Local)
            .format("%m-%d %H:%M")
            .to_string()
    };
    Plot {
        title: format!(
            "{asset}: {} successful materialization{}",
            ok.len(),
            if ok.len() == 1 { "" } else { "s" }
        ),
        first: ok.first().map(|(m, _)| label(m)).unwrap_or_default(),
        last: ok.last().map(|(m, _)| label(m)).unwrap_or_default(),
        series: if ok.is_empty() { Vec::new() } else { series },
    }
}
