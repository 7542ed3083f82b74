//! `%materialize` / `slurmbook run`: plan (once, Slurm jobs included), then
//! execute — begin the run, hand it to the local or the Slurm executor,
//! record how it ended.

use crate::config::Settings;
use crate::events::RunSummary;
use crate::exec::local::{self, LocalRun, Session, Sessions};
use crate::exec::{cluster, job_env};
use crate::model::{JobGrouping, RunId, RunStatus, Target};
use crate::plan::{self, AllocationContext, ClusterLimits, Plan};
use crate::policy::guard::guard_upstream_age;
use crate::project::Project;
use crate::syntax::magic::MaterializeArgs;
use crate::views::Snapshot;
use chrono::{DateTime, Utc};

use super::claims::Claim;
use super::{DbRunLog, RunError, RunIo, Workspace};

/// A planned `%materialize`: what it runs, where, and with which settings.
pub struct PlannedRun {
    pub project: Project,
    pub plan: Plan,
    pub settings: Settings,
    pub args: MaterializeArgs,
    /// A run already begun for it (a tick's claim, see `run::tick`);
    /// otherwise `execute` begins one.
    pub run_id: Option<RunId>,
}

impl PlannedRun {
    /// Running an `%%asset` cell (see [`plan::cell_plan`]).
    pub fn cell(project: Project, name: &str, settings: Settings) -> PlannedRun {
        let plan = plan::cell_plan(&project, name);
        PlannedRun {
            project,
            plan,
            settings,
            args: MaterializeArgs::default(),
            run_id: None,
        }
    }

    /// Whether the run's assets run as Slurm jobs (else in the kernel).
    pub fn on_slurm(&self) -> bool {
        self.plan.slurm_runs().next().is_some()
    }

    /// Whether anything runs, or is refused by an upstream's age (that is
    /// recorded); every selected asset may be fresh.
    pub fn has_work(&self) -> bool {
        self.plan.runs().next().is_some() || self.plan.refused().next().is_some()
    }
}

/// The session of a run in which nothing computes (every step fresh or
/// refused): it needs none, and none is started.
struct NoSession;

impl Session for NoSession {
    async fn run(
        &mut self,
        _code: &str,
        _asset: &str,
        _emit: &dyn crate::events::Emit,
    ) -> Result<Option<String>, local::SessionError> {
        Err(local::SessionError {
            message: "nothing runs in this run".into(),
            detail: Vec::new(),
        })
    }

    async fn variables(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn epoch(&self) -> u64 {
        0
    }
}

impl Workspace {
    /// What `%assets`, `%graph` and planning read: the project's assets
    /// recorded, their freshness, latest and last successful
    /// materializations, and their freshness policies' states now (see
    /// [`Workspace::check_policies`]).
    pub fn snapshot(&mut self, project: &Project) -> Result<Snapshot, RunError> {
        self.snapshot_at(project, Utc::now())
    }

    /// [`Workspace::snapshot`] with the policies evaluated at `now`.
    pub fn snapshot_at(
        &mut self,
        project: &Project,
        now: DateTime<Utc>,
    ) -> Result<Snapshot, RunError> {
        let db = self.db()?;
        db.sync_assets(&project.asset_rows())?;
        let successes = db.last_successes()?;
        let latest = db.latest_all()?;
        let partitions = crate::partitions::all_status(project, db);
        let mut freshness = project.freshness(&successes);
        crate::partitions::adjust_freshness(&mut freshness, &partitions, &successes);
        let policy = self.check_policies(project, &successes, now).statuses;
        Ok(Snapshot {
            freshness,
            latest,
            successes,
            policy,
            partitions,
        })
    }

    /// Running an `%%asset` cell ([`PlannedRun::cell`]), with the asset's
    /// `--max-upstream-age` guard applied.
    pub fn plan_cell(
        &mut self,
        project: Project,
        name: &str,
        settings: Settings,
    ) -> Result<PlannedRun, RunError> {
        let mut run = PlannedRun::cell(project, name, settings);
        let db = self.db()?;
        let successes = db.last_successes()?;
        guard_upstream_age(&mut run.plan, &run.project, &successes, Utc::now());
        crate::partitions::plan_partitions(&mut run.plan, &run.project, db, &[])?;
        Ok(run)
    }

    /// Plans `%materialize ARGS`. A Slurm run's jobs are planned here, once,
    /// with the profile's defaults and the cluster's limits (`sinfo`): the
    /// dry run shows exactly what is submitted.
    pub async fn plan_materialize(
        &mut self,
        args: &MaterializeArgs,
    ) -> Result<PlannedRun, RunError> {
        let project = self.project()?;
        let now = Utc::now();
        let snap = self.snapshot_at(&project, now)?;
        let settings = self.settings(args.profile.as_deref())?;
        let mut plan = plan::plan_steps_with(
            &project,
            args,
            &snap.freshness,
            &|atom, name| snap.is(atom, name),
            settings.target(),
        )?;
        guard_upstream_age(&mut plan, &project, &snap.successes, now);
        let picks = args
            .selection
            .as_ref()
            .map(|s| s.partition_picks())
            .unwrap_or_default();
        self.fetch_partition_sources(&project).await?;
        crate::partitions::plan_partitions(&mut plan, &project, self.db()?, &picks)?;
        let slurm = plan.slurm_runs().count();
        if slurm > 0 && slurm < plan.runs().count() {
            let local: Vec<&str> = plan
                .runs()
                .filter(|s| s.target == Target::Local)
                .map(|s| s.asset.as_str())
                .collect();
            return Err(RunError::MixedTargets {
                local: local.join(", "),
            });
        }
        if slurm > 0 {
            let grouping = plan
                .jobs
                .or_else(|| settings.jobs())
                .unwrap_or(JobGrouping::Grouped);
            // Arrays bundle short partitions by the partitions' CPUs.
            let arrays = plan.slurm_runs().any(|s| s.partitions.is_some());
            let limits = match (grouping, arrays) {
                (JobGrouping::PerAsset, false) => ClusterLimits::default(),
                _ => match self.cluster_limits(&settings).await {
                    Ok(limits) => limits,
                    Err(e) if args.dry_run => {
                        plan.warnings.push(format!(
                            "the cluster's partition limits are unknown ({e}); the real run may split jobs at them"
                        ));
                        ClusterLimits::default()
                    }
                    Err(e) => return Err(e),
                },
            };
            let env_of = |a: &crate::model::AssetSpec| {
                job_env::env_name(&settings, a.options.env.as_deref())
            };
            plan.allocate(
                &project,
                &AllocationContext {
                    defaults: settings.sbatch_defaults(),
                    grouping,
                    limits,
                    env_of: &env_of,
                },
            );
        }
        Ok(PlannedRun {
            project,
            plan,
            settings,
            args: args.clone(),
            run_id: None,
        })
    }

    /// The values giving `--partitions-from` keys that are on the cluster,
    /// fetched into the local store (once) so that planning can read them.
    async fn fetch_partition_sources(&mut self, project: &Project) -> Result<(), RunError> {
        for source in project
            .assets
            .iter()
            .filter_map(|a| a.options.partitions_from.as_deref())
        {
            let last = self.db()?.last_success(source)?;
            if let Some(m) = last.filter(|m| m.target == Target::Slurm && m.value_path.is_some()) {
                // Not fetched: planning says the keys are unreadable, and why.
                if let Err(e) = self.value_file(&m).await {
                    tracing::warn!("fetching {source}, whose value gives partition keys: {e}");
                }
            }
        }
        Ok(())
    }

    /// The partitions' limits and the node size, from one `sinfo`.
    async fn cluster_limits(&mut self, settings: &Settings) -> Result<ClusterLimits, RunError> {
        let remote = self.transport(settings);
        let out = remote
            .run(plan::limits::SINFO_ARGV)
            .await
            .map_err(cluster::ClusterError::from)?;
        Ok(ClusterLimits::from_sinfo(&out.stdout_text()))
    }

    /// Runs a planned `%materialize`: records the run, claims its steps
    /// (waiting for other runs computing some of them, see
    /// [`super::claims`]), executes it in the kernel's session (`sessions`)
    /// or as Slurm jobs, and records how it ended. Events go to `io.emit`
    /// (the caller emitted the plan).
    pub async fn execute<S: Sessions>(
        &mut self,
        run: &PlannedRun,
        sessions: &mut S,
        io: RunIo<'_>,
    ) -> Result<RunSummary, RunError> {
        let db = self.db()?;
        db.sync_assets(&run.project.asset_rows())?;
        // A local run's lock is held until the run is recorded as ended: a
        // process killed before that leaves it to be closed as interrupted
        // (state::RunClaim). Slurm runs outlive their process.
        let (run_id, _run_claim) = match (run.run_id, run.on_slurm()) {
            (Some(id), true) => (id, None),
            (Some(id), false) => (id, Some(db.claim_run(id)?)),
            (None, true) => (
                db.begin_run(
                    &run.plan.selection,
                    Target::Slurm,
                    run.args.profile.as_deref(),
                )?,
                None,
            ),
            (None, false) => {
                let (id, claim) =
                    db.begin_local_run(&run.plan.selection, run.args.profile.as_deref())?;
                (id, Some(claim))
            }
        };
        let mut plan = run.plan.clone();
        let claimed = self.claim_steps(&mut plan, run_id, &run.settings, io).await;
        let result = match claimed {
            Err(e) => Err(e),
            Ok(Claim::Cancelled(summary)) => Ok(summary),
            // Held until the run ends (dropped with this scope), or in the
            // kernel until the asset's outcome is recorded.
            Ok(Claim::Held(claims)) => {
                let claims = std::sync::Mutex::new(claims);
                let release = |asset: &str| {
                    claims
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .retain(|c| c.asset() != asset);
                };
                if plan.slurm_runs().next().is_some() {
                    self.execute_slurm(run, &plan, run_id, sessions, io).await
                } else if plan.runs().next().is_none()
                    && !plan
                        .steps
                        .iter()
                        .any(|s| s.reused && s.target == Target::Local)
                {
                    self.execute_local(run, &plan, run_id, &mut NoSession, &release, io)
                        .await
                } else {
                    let session = sessions.session();
                    self.execute_local(run, &plan, run_id, session, &release, io)
                        .await
                }
            }
        };
        let status = result
            .as_ref()
            .map_or(RunStatus::Failed, RunSummary::status);
        self.db()?.finish_run(run_id, status)?;
        // The policies' states after the run (remembered; notify on FAIL).
        if let Ok(db) = self.db() {
            if let Ok(successes) = db.last_successes() {
                self.check_policies(&run.project, &successes, Utc::now());
            }
        }
        result
    }

    async fn execute_local<S: Session>(
        &mut self,
        run: &PlannedRun,
        plan: &Plan,
        run_id: RunId,
        session: &mut S,
        release: &dyn Fn(&str),
        io: RunIo<'_>,
    ) -> Result<RunSummary, RunError> {
        let store = self.store();
        let mut prepared = std::mem::take(&mut self.prepared);
        let db = self.db()?;
        let result = local::materialize(LocalRun {
            project: &run.project,
            plan,
            db,
            store: &store,
            run_id,
            session,
            prepared: &mut prepared,
            emit: io.emit,
            cancel: io.cancel,
            settings: &run.settings,
            release,
        })
        .await;
        self.prepared = prepared;
        Ok(result?)
    }

    async fn execute_slurm<S: Sessions>(
        &mut self,
        run: &PlannedRun,
        plan: &Plan,
        run_id: RunId,
        sessions: &mut S,
        io: RunIo<'_>,
    ) -> Result<RunSummary, RunError> {
        let remote = self.transport(&run.settings);
        // Types the kernel's session already knows help the type probe.
        let session_types: std::collections::HashMap<String, String> = match sessions.existing() {
            Some(session) => session.variables().await.into_iter().collect(),
            None => Default::default(),
        };
        let prebuilt = self.prebuilt.clone();
        let db = self.db()?;
        let result = cluster::materialize(cluster::ClusterRun {
            project: &run.project,
            plan,
            db,
            run_id,
            settings: &run.settings,
            remote: remote.as_ref(),
            session_types: &session_types,
            emit: io.emit,
            cancel: io.cancel,
            gate: io.gate,
            log: &DbRunLog::new(db, run_id),
            repack: run.args.repack,
            prebuilt: prebuilt.as_ref(),
        })
        .await;
        Ok(result?)
    }
}
