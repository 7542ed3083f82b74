//! Automation conditions evaluated: which assets a tick requests, given
//! what the state database knows ([`AutoFacts`]) and a clock (`now`, passed
//! in, so tests control it). Dagster's `AutomationCondition` semantics:
//!
//! * `eager`: newly missing (never materialized and never requested), or
//!   any upstream updated since the asset last ran (an upstream success
//!   newer than its latest attempt, or an upstream requested in this same
//!   tick); and no upstream missing or in progress, and not in progress.
//! * `on-cron CRON`: the latest cron tick passed and the asset was not
//!   requested (nor materialized) since, and every upstream updated since
//!   that tick (or is requested in this same tick); not while it or an
//!   upstream is in progress.
//! * `on-missing`: never materialized and never requested; upstreams
//!   present and not in progress; not in progress.
//!
//! Assets are evaluated in topological order, so a chain of eager assets
//! whose root is requested is requested whole, in one run.

pub mod notify;
pub mod schedule;

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::model::AutoCondition;
use crate::project::Project;
use crate::state::{AssetFacts, AutoFacts, AutoRequest};

/// The assets the conditions of `project` request at `now`, in
/// topological order, each with its reason.
pub fn evaluate(project: &Project, facts: &AutoFacts, now: DateTime<Utc>) -> Vec<AutoRequest> {
    let none = AssetFacts::default();
    let fact = |name: &str| facts.get(name).unwrap_or(&none);
    let order = project
        .graph
        .topo_order(project.assets.iter().map(|a| a.name.as_str()));
    let mut requested: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for name in order {
        let Some(condition) = project.asset(&name).and_then(|a| a.options.auto.clone()) else {
            continue;
        };
        let me = fact(&name);
        if me.in_progress {
            continue;
        }
        let upstreams: Vec<&str> = project
            .graph
            .dependencies(&name)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let will = |u: &str| requested.contains(u);
        let missing = |u: &str| fact(u).last_success.is_none() && !will(u);
        if upstreams.iter().any(|u| missing(u) || fact(u).in_progress) {
            continue;
        }
        let never_requested = me.latest_attempt.is_none() && me.last_request.is_none();
        let reason = match &condition {
            AutoCondition::Eager => {
                let last_ran = me.latest_attempt.map(|(id, _)| id);
                let updated: Vec<&str> = upstreams
                    .iter()
                    .copied()
                    .filter(|u| {
                        will(u)
                            || fact(u)
                                .last_success
                                .is_some_and(|(id, _)| last_ran.is_none_or(|r| id > r))
                    })
                    .collect();
                if me.last_success.is_none() && never_requested {
                    Some("eager: newly missing".to_string())
                } else if !updated.is_empty() && me.latest_attempt.is_some() {
                    Some(format!("eager: upstream {} updated", updated.join(", ")))
                } else {
                    None
                }
            }
            AutoCondition::OnMissing => (me.last_success.is_none() && never_requested)
                .then(|| "on-missing: never materialized".to_string()),
            AutoCondition::OnCron(cron) => cron.last_at_or_before(now).and_then(|tick| {
                let handled = me.last_request.is_some_and(|at| at >= tick)
                    || me.latest_attempt.is_some_and(|(_, at)| at >= tick);
                let all_updated = upstreams
                    .iter()
                    .all(|u| will(u) || fact(u).last_success.is_some_and(|(_, at)| at >= tick));
                (!handled && all_updated).then(|| {
                    format!(
                        "{condition} tick {}",
                        tick.to_rfc3339_opts(SecondsFormat::Secs, true)
                    )
                })
            }),
        };
        if let Some(reason) = reason {
            requested.insert(name.clone());
            out.push(AutoRequest {
                asset: name,
                reason,
            });
        }
    }
    out
}

/// `(asset, condition)` of every asset that has one, in notebook order.
pub fn conditions(project: &Project) -> Vec<(&str, &AutoCondition)> {
    project
        .assets
        .iter()
        .filter_map(|a| Some((a.name.as_str(), a.options.auto.as_ref()?)))
        .collect()
}

#[cfg(test)]
mod tests;
