//! What `slurmbook status` reports: every asset's freshness policy state
//! at one moment, as a table or as JSON.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{FreshnessPolicy, PolicyState, PolicyStatus, CRON_TIMEZONE};
use crate::draw::table::Table;
use crate::project::Project;

/// One asset with a freshness policy.
#[derive(Debug, Clone, Serialize)]
pub struct AssetFreshness {
    pub asset: String,
    pub state: PolicyState,
    /// The policy in words (`FAIL after 6h, WARN after 3h`).
    pub policy: String,
    pub fail_window_s: u64,
    pub warn_window_s: Option<u64>,
    pub cron: Option<String>,
    /// When its last successful materialization finished.
    pub last_materialized: Option<DateTime<Utc>>,
    pub age_s: Option<i64>,
    pub warns_at: Option<DateTime<Utc>>,
    pub fails_at: Option<DateTime<Utc>>,
    /// `fresh for 2 h 10 m`, `overdue by 40 m`, ...
    pub detail: String,
    /// Since when it is in this state (as far as evaluations saw).
    pub since: Option<DateTime<Utc>>,
}

/// Every asset's freshness policy state at `evaluated_at`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub notebook: Option<String>,
    pub evaluated_at: DateTime<Utc>,
    /// The timezone of `--freshness-cron` deadlines.
    pub cron_timezone: &'static str,
    /// Nothing is FAIL (`slurmbook status` exits 0, else 3).
    pub ok: bool,
    /// How many assets are in each state (every state listed).
    pub counts: BTreeMap<PolicyState, usize>,
    pub assets: Vec<AssetFreshness>,
    /// Assets without a freshness policy.
    pub without_policy: Vec<String>,
    /// Assets that newly entered FAIL in this evaluation (`notify` ran for them).
    pub newly_failed: Vec<String>,
}

impl StatusReport {
    /// The report of `statuses` (evaluated at `now`), in notebook order.
    pub fn build(
        project: &Project,
        statuses: &HashMap<String, PolicyStatus>,
        since: &HashMap<String, DateTime<Utc>>,
        newly_failed: Vec<String>,
        now: DateTime<Utc>,
    ) -> StatusReport {
        let mut assets = Vec::new();
        let mut without_policy = Vec::new();
        for spec in &project.assets {
            let (Some(policy), Some(status)) =
                (FreshnessPolicy::of(&spec.options), statuses.get(&spec.name))
            else {
                without_policy.push(spec.name.clone());
                continue;
            };
            assets.push(AssetFreshness {
                asset: spec.name.clone(),
                state: status.state,
                policy: policy.describe(),
                fail_window_s: policy.fail.seconds,
                warn_window_s: policy.warn.map(|w| w.seconds),
                cron: policy.cron.as_ref().map(|c| c.as_str().to_string()),
                last_materialized: status.last,
                age_s: status.age().map(|a| a.num_seconds()),
                warns_at: status.warns_at,
                fails_at: status.fails_at,
                detail: status.text(),
                since: since.get(&spec.name).copied(),
            });
        }
        let mut counts: BTreeMap<PolicyState, usize> = [
            PolicyState::Pass,
            PolicyState::Warn,
            PolicyState::Fail,
            PolicyState::Unknown,
        ]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
        for a in &assets {
            *counts.entry(a.state).or_default() += 1;
        }
        StatusReport {
            notebook: project
                .notebook_path
                .as_ref()
                .map(|p| p.display().to_string()),
            evaluated_at: now,
            cron_timezone: CRON_TIMEZONE,
            ok: counts[&PolicyState::Fail] == 0,
            counts,
            assets,
            without_policy,
            newly_failed,
        }
    }

    /// The table `slurmbook status` prints.
    pub fn table(&self) -> Table {
        let mut table = Table {
            columns: [
                "asset",
                "freshness",
                "detail",
                "last materialized",
                "policy",
            ]
            .map(String::from)
            .to_vec(),
            caption: self.notebook.clone(),
            ..Table::default()
        };
        for a in &self.assets {
            table.rows.push(vec![
                a.asset.clone(),
                a.state.as_str().to_string(),
                a.detail.clone(),
                a.last_materialized
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_else(|| "never".into()),
                a.policy.clone(),
            ]);
            table.row_states.push(None);
        }
        table
    }

    /// One line: `2 PASS, 0 WARN, 1 FAIL, 0 UNKNOWN (3 assets without a policy)`.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        let mut s = counts.join(", ");
        if !self.without_policy.is_empty() {
            s.push_str(&format!(
                " ({} asset{} without a freshness policy)",
                self.without_policy.len(),
                if self.without_policy.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        s
    }
}
