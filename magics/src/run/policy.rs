//! Freshness policies in the run service: every time the assets' state is
//! read ([`Workspace::snapshot`]: `%assets`, `%graph`, `%materialize`
//! before and after its run, `slurmbook run`/`graph`, and `slurmbook
//! status`), the policies are evaluated, the states remembered in the state
//! database, and `notify` started for each asset that newly entered FAIL.
//! The upstream age guard is applied to every plan.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{RunError, Workspace};
use crate::policy::notify::{self, Notice};
use crate::policy::report::StatusReport;
use crate::policy::{evaluate_all, PolicyState, PolicyStatus};
use crate::project::Project;
use crate::state::Materialization;

/// Policies evaluated at one moment.
pub struct PolicyCheck {
    pub statuses: HashMap<String, PolicyStatus>,
    /// Since when each asset is in its state (this evaluation included).
    pub since: HashMap<String, DateTime<Utc>>,
    /// Assets that newly entered FAIL (`notify` was started for them).
    pub newly_failed: Vec<String>,
}

impl Workspace {
    /// Evaluates the project's freshness policies at `now` against the last
    /// successes, remembers the states and starts `notify` for new FAILs.
    /// Remembering and notifying are best effort (logged); the statuses
    /// are always returned.
    pub fn check_policies(
        &mut self,
        project: &Project,
        successes: &HashMap<String, Materialization>,
        now: DateTime<Utc>,
    ) -> PolicyCheck {
        let statuses: HashMap<String, PolicyStatus> =
            evaluate_all(project, successes, now).into_iter().collect();
        let mut check = PolicyCheck {
            since: statuses.keys().map(|a| (a.clone(), now)).collect(),
            statuses,
            newly_failed: Vec::new(),
        };
        let rows: Vec<(String, String, Option<i64>)> = check
            .statuses
            .iter()
            .map(|(a, s)| {
                (
                    a.clone(),
                    s.state.as_str().to_string(),
                    successes.get(a).map(|m| m.id),
                )
            })
            .collect();
        let before = match self
            .db()
            .and_then(|db| db.remember_policy_states(&rows, now))
        {
            Ok(before) => before,
            Err(e) => {
                tracing::warn!("freshness policy states not remembered: {e}");
                return check;
            }
        };
        let mut newly_failed: Vec<&String> = Vec::new();
        for (asset, status) in &check.statuses {
            let prev = before.get(asset);
            if let Some(p) = prev.filter(|p| p.state == status.state.as_str()) {
                check.since.insert(asset.clone(), p.since);
            }
            let previous =
                prev.and_then(|p| Some((PolicyState::parse(&p.state)?, p.materialization)));
            if notify::is_new_failure(status, successes.get(asset).map(|m| m.id), previous) {
                newly_failed.push(asset);
            }
        }
        newly_failed.sort();
        check.newly_failed = newly_failed.into_iter().cloned().collect();
        if !check.newly_failed.is_empty() {
            self.notify(&check);
        }
        check
    }

    /// Starts the `notify` command (if configured) for each new FAIL.
    fn notify(&mut self, check: &PolicyCheck) {
        let command = match self.settings(None) {
            Ok(settings) => settings.notify().map(str::to_owned),
            Err(e) => {
                tracing::warn!("notify: configuration unreadable: {e}");
                return;
            }
        };
        let Some(command) = command else {
            return;
        };
        self.notifications.retain(|h| !h.is_finished());
        let dir = self.dir();
        let notebook = self.notebook().map(|(p, _)| p.to_path_buf());
        for asset in &check.newly_failed {
            tracing::info!(asset, "freshness policy newly FAIL: notifying");
            let notice = Notice {
                asset,
                status: &check.statuses[asset],
                notebook: notebook.as_deref(),
            };
            if let Some(handle) = notify::spawn(&command, &notice, &dir) {
                self.notifications.push(handle);
            }
        }
    }

    /// Waits for the `notify` commands started so far (the CLI, before it exits).
    pub fn wait_for_notifications(&mut self) {
        for handle in self.notifications.drain(..) {
            let _ = handle.join();
        }
    }

    /// `slurmbook status`: the policies evaluated at `now` (remembered, and
    /// `notify` started for new FAILs).
    pub fn freshness_report(
        &mut self,
        project: &Project,
        now: DateTime<Utc>,
    ) -> Result<StatusReport, RunError> {
        let db = self.db()?;
        db.sync_assets(&project.asset_rows())?;
        let successes = db.last_successes()?;
        let check = self.check_policies(project, &successes, now);
        Ok(StatusReport::build(
            project,
            &check.statuses,
            &check.since,
            check.newly_failed,
            now,
        ))
    }
}
