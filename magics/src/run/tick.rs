//! `slurmbook tick`: every automation condition evaluated once against the
//! state database and a clock; what they request is claimed (one write
//! transaction: a racing tick sees the claim and requests nothing of it),
//! planned as ONE run of those assets (forced: the condition decided) and
//! executed by the run service like `%materialize` (same executors,
//! grouped allocations). The run records its trigger.

use chrono::{DateTime, Utc};

use crate::auto::{self, notify};
use crate::events::RunSummary;
use crate::exec::local::Sessions;
use crate::model::{RunStatus, Target};
use crate::policy::notify::spawn_env;
use crate::state::{AutoClaim, AutoRequest};
use crate::syntax::magic::MaterializeArgs;
use crate::syntax::selection::parse_selection;

use super::{PlannedRun, RunError, RunIo, Workspace};

/// What a tick is asked to do.
#[derive(Debug, Clone)]
pub struct TickArgs {
    pub profile: Option<String>,
    /// Evaluate and show what would run; claim and run nothing.
    pub dry_run: bool,
    /// The clock conditions are evaluated against.
    pub now: DateTime<Utc>,
}

/// What a tick evaluated.
pub enum Tick {
    /// No condition requested anything.
    Nothing,
    /// `--dry-run`: what the conditions request now (nothing claimed).
    DryRun(Vec<AutoRequest>),
    /// Claimed and planned: run it with [`Workspace::execute`].
    Planned(Box<PlannedRun>, AutoClaim),
}

impl Workspace {
    /// Evaluates every condition at `args.now`; unless a dry run, claims
    /// what they request and plans it as one run.
    pub async fn plan_tick(&mut self, args: &TickArgs) -> Result<Tick, RunError> {
        let project = self.project()?;
        let settings = self.settings(args.profile.as_deref())?;
        let db = self.db()?;
        db.sync_assets(&project.asset_rows())?;
        if args.dry_run {
            let requests = auto::evaluate(&project, &db.auto_facts(args.now)?, args.now);
            return Ok(if requests.is_empty() {
                Tick::Nothing
            } else {
                Tick::DryRun(requests)
            });
        }
        let claim = db.claim_auto(
            args.now,
            settings.target(),
            args.profile.as_deref(),
            |facts| auto::evaluate(&project, facts, args.now),
        )?;
        let Some(claim) = claim else {
            // Overdue assets are notified where the tick runs (on the
            // cluster for a schedule) even when nothing runs.
            let successes = self.db()?.last_successes()?;
            self.check_policies(&project, &successes, args.now);
            return Ok(Tick::Nothing);
        };
        let selection =
            parse_selection(&claim.selection()).expect("asset names joined by `,` are a selection");
        let margs = MaterializeArgs {
            selection: Some(selection),
            profile: args.profile.clone(),
            force: true,
            ..MaterializeArgs::default()
        };
        match self.plan_materialize(&margs).await {
            Ok(mut planned) => {
                planned.run_id = Some(claim.run_id);
                let target = if planned.on_slurm() {
                    Target::Slurm
                } else {
                    Target::Local
                };
                self.db()?.set_run_target(claim.run_id, target)?;
                Ok(Tick::Planned(Box::new(planned), claim))
            }
            Err(e) => {
                self.db()?.finish_run(claim.run_id, RunStatus::Failed)?;
                let command = settings.notify().map(str::to_owned);
                self.notify_failures(command, &claim, &[], Some(&e.to_string()));
                Err(e)
            }
        }
    }

    /// Executes a tick's planned run and notifies its failures.
    pub async fn execute_tick<S: Sessions>(
        &mut self,
        planned: &PlannedRun,
        claim: &AutoClaim,
        sessions: &mut S,
        io: RunIo<'_>,
    ) -> Result<RunSummary, RunError> {
        let result = self.execute(planned, sessions, io).await;
        let command = planned.settings.notify().map(str::to_owned);
        match &result {
            Ok(summary) => self.notify_failures(command, claim, &summary.failed, None),
            Err(e) => self.notify_failures(command, claim, &[], Some(&e.to_string())),
        }
        result
    }

    /// Starts the `notify` command (of the tick's profile) for each failed
    /// asset of a tick's run (or for every requested one when the run
    /// failed as a whole); [`Workspace::wait_for_notifications`] waits for
    /// them. Failures to notify are logged, never errors.
    fn notify_failures(
        &mut self,
        command: Option<String>,
        claim: &AutoClaim,
        failed: &[String],
        whole: Option<&str>,
    ) {
        let Some(command) = command else {
            return;
        };
        let assets: Vec<String> = match whole {
            Some(_) => claim.requests.iter().map(|r| r.asset.clone()).collect(),
            None => failed.to_vec(),
        };
        self.notifications.retain(|h| !h.is_finished());
        let dir = self.dir();
        let notebook = self.notebook().map(|(p, _)| p.display().to_string());
        for asset in assets {
            let detail = match whole {
                Some(e) => e.to_string(),
                None => self
                    .db()
                    .ok()
                    .and_then(|db| db.latest(&asset).ok().flatten())
                    .and_then(|m| m.error)
                    .unwrap_or_else(|| "failed".into()),
            };
            let notice = notify::Notice {
                asset: asset.clone(),
                state: "failed",
                detail,
                run: Some(claim.run_id),
                notebook: notebook.clone(),
            };
            tracing::info!(
                asset,
                run = claim.run_id,
                "scheduled materialization failed: notifying"
            );
            if let Some(handle) = spawn_env(&command, &asset, notice.env(), &dir) {
                self.notifications.push(handle);
            }
        }
    }
}
