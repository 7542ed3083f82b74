//! Runs of one notebook at once (two kernels, a kernel and `slurmbook
//! run`, ticks): before a run computes anything it claims the steps it
//! computes (see `state::claims`), so one asset version is never computed
//! twice at once on one target. A step another live run holds is waited
//! for, saying by whom; then it is reused when that run materialized it
//! (it is fresh, and the downstream steps read its value), or computed by
//! this run when that run did not (it failed, was cancelled, or its
//! process died: the claim of a dead process is void). Waiting holds no
//! claim, so two runs never wait for each other; an interrupt (the cancel
//! flag) ends the wait and the run as cancelled.
//!
//! A Slurm job outlives the process that submitted it: a Slurm step whose
//! claim is free but which a dead run's job still computes (its row still
//! `running`, the job still in `squeue`) is waited for too, and computed
//! here once that job has ended (its outcome is recorded by `%attach` of
//! its run, not by this one).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::config::Settings;
use crate::events::{AssetState, Event, RunSummary};
use crate::exec::cluster::ClusterError;
use crate::exec::slurm;
use crate::model::{MaterializationStatus, RunId};
use crate::plan::Plan;
use crate::state::{ClaimHolder, Claimed, HeldStep, StateDb, StateError, StepClaim, StepKey};

use super::{RunError, RunIo, Workspace};

/// How often a waiting run looks again.
const POLL: Duration = Duration::from_millis(200);

/// How claiming a run's steps ended.
pub(super) enum Claim {
    /// The run's claims (on the steps it still computes, after reusing
    /// what other runs materialized meanwhile: `plan` says which).
    Held(Vec<StepClaim>),
    /// Interrupted while waiting: the summary of the cancelled run (its
    /// events were emitted).
    Cancelled(RunSummary),
}

impl Workspace {
    /// Claims the steps `plan` computes for run `run_id`, waiting while
    /// other live runs compute some of them (see the module docs). Steps
    /// materialized meanwhile by another run become fresh in `plan`.
    pub(super) async fn claim_steps(
        &mut self,
        plan: &mut Plan,
        run_id: RunId,
        settings: &Settings,
        io: RunIo<'_>,
    ) -> Result<Claim, RunError> {
        let holder = ClaimHolder::this_process(run_id);
        // Runs this one waited for (their successes are reused, even with --force).
        let mut waited_for: Vec<RunId> = Vec::new();
        // What was said about each held step: by which run it is held.
        let mut announced: HashMap<String, Option<RunId>> = HashMap::new();
        let mut reused = HashSet::new();
        // Jobs of dead runs this run waited for, by asset: (run, job).
        let mut orphans: HashMap<String, (RunId, String)> = HashMap::new();
        loop {
            let db = self.db()?;
            reused.extend(reuse_done(db, plan, run_id, &waited_for, io)?);
            let keys: Vec<StepKey<'_>> = plan
                .runs()
                .map(|s| StepKey {
                    asset: &s.asset,
                    version: &s.version,
                    target: s.target,
                })
                .collect();
            if keys.is_empty() {
                return Ok(Claim::Held(Vec::new()));
            }
            match db.claim_steps(&holder, &keys)? {
                Claimed::All(claims) => {
                    // A run that held a step may have materialized it just
                    // before this round.
                    reused.extend(reuse_done(db, plan, run_id, &waited_for, io)?);
                    let running = self.unfollowed_running(plan, run_id, settings).await?;
                    if !running.is_empty() {
                        // Waited for holding nothing, like a claim.
                        drop(claims);
                        for (asset, run, job, state) in running {
                            if orphans.get(&asset) != Some(&(run, job.clone())) {
                                io.emit.emit(Event::Notice {
                                    text: format!(
                                        "asset `{asset}` is being materialized by job {job} of run {run}, \
                                         whose process ended (its job runs on: {state}); waiting for \
                                         the job (`%attach {run}` follows it)"
                                    ),
                                });
                                orphans.insert(asset, (run, job));
                            }
                        }
                        // (Each look asks Slurm: less often.)
                        if wait(io, POLL * 25).await {
                            return Ok(Claim::Cancelled(cancelled(plan, run_id, io)));
                        }
                        continue;
                    }
                    let db = self.db()?;
                    for (asset, by) in &announced {
                        if !reused.contains(asset) && !orphans.contains_key(asset) {
                            io.emit.emit(Event::Notice {
                                text: taking_over(db, asset, *by),
                            });
                        }
                    }
                    for (asset, (run, job)) in &orphans {
                        if !reused.contains(asset) {
                            io.emit.emit(Event::Notice {
                                text: format!(
                                    "job {job} of run {run} ended without its outcome recorded \
                                     (`%attach {run}` records it); materializing asset `{asset}` in this run"
                                ),
                            });
                        }
                    }
                    return Ok(Claim::Held(
                        claims
                            .into_iter()
                            .filter(|c| !reused.contains(c.asset()))
                            .collect(),
                    ));
                }
                Claimed::Held(held) => {
                    for h in &held {
                        let by = h.holder.as_ref().map(|x| x.run);
                        if let Some(run) = by.filter(|r| !waited_for.contains(r)) {
                            waited_for.push(run);
                        }
                        if announced.get(&h.asset) != Some(&by) {
                            announced.insert(h.asset.clone(), by);
                            announce(db, h, io);
                        }
                    }
                }
            }
            if wait(io, POLL * 5).await {
                return Ok(Claim::Cancelled(cancelled(plan, run_id, io)));
            }
        }
    }

    /// The Slurm jobs of dead runs still computing a Slurm step of `plan`
    /// (see [`StateDb::unfollowed_jobs`]), with their state: (asset, run,
    /// job, state). Asks Slurm only when the database has such jobs.
    async fn unfollowed_running(
        &mut self,
        plan: &Plan,
        run_id: RunId,
        settings: &Settings,
    ) -> Result<Vec<(String, RunId, String, String)>, RunError> {
        let db = self.db()?;
        let mut candidates = Vec::new();
        for step in plan.slurm_runs() {
            for (run, job) in db.unfollowed_jobs(&step.asset, &step.version, run_id)? {
                if slurm::cli::valid_job_id(&job) {
                    candidates.push((step.asset.clone(), run, job));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let remote = self.transport(settings);
        let ids: Vec<&str> = candidates.iter().map(|(_, _, j)| j.as_str()).collect();
        let queue = slurm::cli::query_queue(remote.as_ref(), &ids)
            .await
            .map_err(ClusterError::from)?;
        Ok(candidates
            .into_iter()
            .filter_map(|(asset, run, job)| {
                let state = queue.get(&job)?.state.clone();
                (!slurm::cli::is_terminal_state(&state)).then_some((asset, run, job, state))
            })
            .collect())
    }
}

/// Waits `how_long` for other runs; true when the run was interrupted.
async fn wait(io: RunIo<'_>, how_long: Duration) -> bool {
    let waited = std::time::Instant::now();
    while waited.elapsed() < how_long {
        if io.cancel.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// Steps of `plan` that another run materialized meanwhile (at their
/// version, on their target) become fresh; returns them. Without
/// `--force` any run's success counts (the step is fresh now); with it,
/// only those of runs this one waited for.
fn reuse_done(
    db: &StateDb,
    plan: &mut Plan,
    run_id: RunId,
    waited_for: &[RunId],
    io: RunIo<'_>,
) -> Result<HashSet<String>, StateError> {
    let mut found = Vec::new();
    for step in plan.runs() {
        if let Some(m) = db.success_elsewhere(
            &step.asset,
            &step.version,
            step.target,
            run_id,
            waited_for,
            !plan.force,
        )? {
            found.push((step.asset.clone(), m.run_id));
        }
    }
    let mut reused = HashSet::new();
    for (asset, by) in found {
        let by = by.map_or_else(|| "another run".to_string(), |r| format!("run {r}"));
        io.emit.emit(Event::Notice {
            text: format!("asset `{asset}` was materialized by {by} meanwhile; using its value"),
        });
        plan.reuse(&asset, format!("materialized by {by} meanwhile"));
        reused.insert(asset);
    }
    Ok(reused)
}

/// "asset `x` is being materialized by run 12 (slurmbook run, pid 4711,
/// job 345); waiting for it", and the step shown queued behind it.
fn announce(db: &StateDb, held: &HeldStep, io: RunIo<'_>) {
    let asset = &held.asset;
    let (who, job) = match &held.holder {
        Some(h) => {
            let job = db.job_of(h.run, asset).ok().flatten();
            let job_text = job
                .as_ref()
                .map(|j| format!(", job {j}"))
                .unwrap_or_default();
            (
                format!("run {} ({}, pid {}{job_text})", h.run, h.process, h.pid),
                job,
            )
        }
        None => ("another run".to_string(), None),
    };
    io.emit.emit(Event::Notice {
        text: format!("asset `{asset}` is being materialized by {who}; waiting for it"),
    });
    let by = held
        .holder
        .as_ref()
        .map_or_else(|| "another run".to_string(), |h| format!("run {}", h.run));
    io.emit.emit(Event::State {
        asset: asset.clone(),
        state: AssetState::Queued {
            job_id: job,
            reason: Some(format!("being materialized by {by}")),
            start: None,
        },
    });
}

/// What this run says when a step it waited for was not materialized by
/// the run that held it, and it computes the step itself.
fn taking_over(db: &StateDb, asset: &str, by: Option<RunId>) -> String {
    let Some(run) = by else {
        return format!(
            "the run that held asset `{asset}` ended without materializing it; materializing it in this run"
        );
    };
    let last = db
        .run_assets(run)
        .ok()
        .and_then(|ms| ms.into_iter().rev().find(|m| m.asset == asset));
    let how = match last {
        Some(m) if m.status == MaterializationStatus::Failed => {
            let error = m.error.unwrap_or_default();
            match error.lines().next().filter(|l| !l.trim().is_empty()) {
                Some(line) => format!("it failed: {line}"),
                None => "it failed".to_string(),
            }
        }
        Some(m) if m.status == MaterializationStatus::Cancelled => "it was cancelled".to_string(),
        Some(m) if m.status == MaterializationStatus::Running => {
            "its process ended before it finished".to_string()
        }
        _ => "its process ended, or it stopped before".to_string(),
    };
    format!("run {run} did not materialize asset `{asset}` ({how}); materializing it in this run")
}

/// The summary (and events) of a run interrupted while it waited.
fn cancelled(plan: &Plan, run_id: RunId, io: RunIo<'_>) -> RunSummary {
    let mut summary = RunSummary {
        run_id: Some(run_id),
        ..RunSummary::default()
    };
    for step in &plan.steps {
        match step.action {
            crate::plan::Action::Run => {
                io.emit.emit(Event::State {
                    asset: step.asset.clone(),
                    state: AssetState::Cancelled {
                        because: Some(
                            "the run was interrupted while it waited for another run".into(),
                        ),
                    },
                });
                summary.cancelled.push(step.asset.clone());
            }
            crate::plan::Action::Skip => summary.fresh.push(step.asset.clone()),
            crate::plan::Action::Refused => summary.skipped.push(step.asset.clone()),
        }
    }
    io.emit.emit(Event::Finished {
        summary: summary.clone(),
    });
    summary
}
