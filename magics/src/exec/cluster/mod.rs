//! Materializing a plan as Slurm jobs: types, bundle, build, one
//! content-addressed upload, one submission round trip for the whole
//! selected subgraph, then one watcher streaming every job's output, with
//! every state recorded in the state database.

pub use super::connect::{local_platform, platform_name, ssh_target, transport_target};
use crate::bundle::{self, BundleError};
use crate::config::Settings;
use crate::events::{AssetState, Emit, Event, RunSummary};
pub mod jobs;

use crate::exec::job_env;
use crate::exec::prebuilt::{self, JobBinary, PrebuiltError};
use crate::exec::slurm::{
    self, JobOutcome, JobSpec, OutputGate, RunLog, SlurmJobsResult, WatchJob, WatchRun,
};
use crate::model::RunId;
use crate::model::Target;
use crate::model::{MaterializationStatus, RunStatus};
use crate::plan::{Action, Plan, SbatchRequest};
use crate::project::Project;
use crate::state::{Materialization, ResultRecord, Run, StartRecord, StateDb, StateError};
use crate::transport::{Transport, TransportError};
use jobs::{remote_value, submit_planned, ArrayContext, ArrayValues};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Ssh(#[from] TransportError),
    #[error(transparent)]
    Env(#[from] job_env::EnvError),
    #[error(transparent)]
    Submit(#[from] slurm::SubmitError),
    #[error(transparent)]
    Watch(#[from] slurm::WatchError),
    #[error("state database: {0}")]
    State(#[from] StateError),
    #[error(transparent)]
    Prebuilt(#[from] PrebuiltError),
    #[error(
        "run {run} has no Slurm jobs to follow (it ran in the kernel, or failed before submitting)"
    )]
    NotSlurmRun { run: RunId },
    #[error("there is no run {run}; %runs (or the state database) lists the runs")]
    NoSuchRun { run: RunId },
    #[error(
        "run {run} ran in the kernel; only Slurm runs outlive the kernel or CLI that started them"
    )]
    KernelRun { run: RunId },
    #[error("run {run}: its saved job list is unreadable: {error}")]
    Saved { run: RunId, error: String },
    #[error("upstream `{upstream}` of `{asset}` has no value on the cluster (it was materialized in the kernel, or never); select it too (`+{asset}`) or run it with --target slurm")]
    UpstreamNotRemote { asset: String, upstream: String },
    #[error("partitioned asset `{asset}`: {error}")]
    Partitions { asset: String, error: String },
    #[error("partitioned asset `{asset}`: {error}")]
    Array {
        asset: String,
        error: crate::plan::sbatch::ArrayError,
    },
}

/// Everything a cluster run needs.
pub struct ClusterRun<'a> {
    pub project: &'a Project,
    pub plan: &'a Plan,
    pub db: &'a StateDb,
    pub run_id: RunId,
    pub settings: &'a Settings,
    pub remote: &'a dyn Transport,
    /// Types known from the kernel session (name -> type).
    pub session_types: &'a HashMap<String, String>,
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
    /// The process's output gate (see [`OutputGate`]).
    pub gate: &'a OutputGate,
    /// Where the watcher's offsets and job states are recorded.
    pub log: &'a dyn RunLog,
    /// Pack the job environments afresh and unpack them again on the
    /// cluster (`--repack`).
    pub repack: bool,
    /// A job binary built ahead of time (a schedule's), used when it can
    /// run every asset of the plan.
    pub prebuilt: Option<&'a JobBinary>,
}

/// Where a run's job binary comes from.
enum JobSource<'a> {
    /// Built ahead of time (a schedule's).
    Prebuilt(&'a JobBinary),
    /// Generated now: built here or on the cluster.
    Sources(bundle::BundleSources),
}

/// Remote locations of a run.
struct Layout {
    values: String,
    run_dir: String,
    run_tag: String,
}

pub async fn materialize(run: ClusterRun<'_>) -> Result<RunSummary, ClusterError> {
    let ClusterRun {
        project,
        plan,
        db,
        run_id,
        settings,
        remote,
        session_types,
        emit,
        cancel,
        gate,
        log,
        repack,
        prebuilt,
    } = run;
    let started = Instant::now();
    let mut summary = RunSummary {
        run_id: Some(run_id),
        ..RunSummary::default()
    };
    let to_run: Vec<String> = plan.runs().map(|s| s.asset.clone()).collect();
    for step in plan.steps.iter().filter(|s| s.action == Action::Skip) {
        emit.emit(Event::State {
            asset: step.asset.clone(),
            state: AssetState::Fresh,
        });
        summary.fresh.push(step.asset.clone());
    }
    for step in plan.refused() {
        super::record_refused(db, run_id, project, step, emit)?;
        summary.skipped.push(step.asset.clone());
    }
    // Everything that can fail before submission is checked first. On a
    // submit host, sbatch runs inside the submission script: its absence is
    // found here, before the build, and named with the way out.
    if remote.location() == crate::transport::local::LOCATION {
        crate::transport::local::require_on_path("sbatch", &settings.profile)?;
    }
    // An array larger than the cluster allows is refused before the build.
    jobs::check_array_sizes(remote, plan).await?;
    // A job binary built ahead of time (a schedule's) spares the build.
    let prebuilt = prebuilt.filter(|p| p.covers(&to_run));
    let root = bundle::build_root();
    let (types, job) = match prebuilt {
        Some(p) => (p.types.clone(), JobSource::Prebuilt(p)),
        None => {
            bundle::check_free_variables(project, &to_run)?;
            let types = bundle::probe_types(project, &to_run, session_types, &root)?;
            let sources = bundle::generate(project, &to_run, &types)?;
            (types, JobSource::Sources(sources))
        }
    };
    let (remote_platform, build_remotely) = prebuilt::platform_and_build(remote, settings).await?;
    let base = remote.expand_dir(settings.remote_dir()).await?;
    let run_tag = format!(
        "{run_id}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let layout = Layout {
        values: format!("{base}/values"),
        run_dir: format!("{base}/runs/{run_tag}"),
        run_tag,
    };
    let envs = prepare_envs(
        project,
        &to_run,
        settings,
        &remote_platform,
        &base,
        remote,
        repack,
    )
    .await?;
    let remote_binary = match &job {
        JobSource::Prebuilt(p) => p.binary.clone(),
        JobSource::Sources(sources) => {
            // The build uses the packed environment's toolchain when it has
            // one (prepare_envs left it unpacked).
            let activate = envs.values().next().map(|e| e.job_env.activation_script());
            let (binary, _) = prebuilt::put_binary(
                remote,
                sources,
                &root,
                &types,
                &base,
                build_remotely,
                activate.as_deref(),
            )
            .await?;
            binary
        }
    };

    let defaults = settings.sbatch_defaults();
    let running: HashSet<&str> = to_run.iter().map(String::as_str).collect();
    let arrays_ctx = ArrayContext {
        project,
        db,
        plan,
        values: &layout.values,
    };
    // Task tables and input maps, written into the run directory by the submission.
    let mut files: Vec<(String, String)> = Vec::new();
    let mut jobs = Vec::new();
    for asset in &to_run {
        let spec = project.asset(asset).expect("planned assets exist");
        let step = plan.step(asset).expect("planned assets have steps");
        let upstream_value = |up: &str| -> Result<String, ClusterError> {
            if running.contains(up) {
                let v = &project.versions.get(up).expect("versions").version;
                Ok(format!("{}/{up}-{v}.json", layout.values))
            } else {
                remote_value(db, up).ok_or_else(|| ClusterError::UpstreamNotRemote {
                    asset: asset.clone(),
                    upstream: up.to_owned(),
                })
            }
        };
        let mut after: Vec<String> = project
            .graph
            .dependencies(asset)
            .into_iter()
            .map(|(up, _)| up)
            .filter(|up| running.contains(up))
            .map(str::to_owned)
            .collect();
        after.dedup();
        let command = arrays_ctx.command(
            step,
            [&remote_binary, &layout.run_dir],
            &upstream_value,
            &mut files,
        )?;
        jobs.push(JobSpec {
            asset: asset.clone(),
            sbatch: SbatchRequest::for_asset(&spec.options, &defaults),
            command,
            after,
            env: job_env::env_name(settings, spec.options.env.as_deref())
                .and_then(|name| envs.get(&name))
                .map(|e| e.job_env.clone()),
        });
    }
    let arrays: BTreeMap<String, ArrayValues> = plan
        .runs()
        .filter(|s| s.partitions.is_some())
        .map(|s| Ok((s.asset.clone(), arrays_ctx.values_of(&s.asset)?)))
        .collect::<Result<_, ClusterError>>()?;
    let watch_jobs = submit_planned(remote, &layout, plan, &jobs, files).await?;
    let submitted: Vec<(String, String)> = watch_jobs
        .iter()
        .map(|w| (w.asset.clone(), w.job_id.clone()))
        .collect();
    // An array is followed task by task.
    let watch_jobs = jobs::array_watch_jobs(plan, watch_jobs);
    for (asset, job) in &submitted {
        let version = project.versions.get(asset).expect("versions");
        if let Some(tasks) = plan.step(asset).and_then(|s| s.partitions.as_ref()) {
            let per_task = jobs::per_task(plan, asset);
            jobs::record_array_start(db, run_id, project, asset, job, tasks, per_task)?;
        }
        db.record_start(&StartRecord {
            run_id: Some(run_id),
            asset,
            version: &version.version,
            own_hash: &version.own_hash,
            upstream_versions: &version.upstreams,
            target: Target::Slurm,
            job_id: Some(job),
            node: None,
        })?;
        db.upsert_job(run_id, asset, Some(job), "PENDING")?;
        emit.emit(Event::State {
            asset: asset.clone(),
            state: AssetState::queued(Some(job.clone())),
        });
    }
    let saved = RemoteRun {
        plan: Plan {
            steps: plan
                .steps
                .iter()
                .filter(|s| s.action == Action::Run)
                .cloned()
                .collect(),
            ..plan.clone()
        },
        run_dir: layout.run_dir.clone(),
        values: layout.values.clone(),
        jobs: watch_jobs,
        types,
        arrays,
    };
    db.set_run_remote(
        run_id,
        &serde_json::to_string(&saved).expect("a run's jobs serialize"),
    )?;
    follow(
        db, run_id, &saved, remote, emit, cancel, gate, log, started, summary,
    )
    .await
}

/// What following a submitted run needs, saved in the run's row so that
/// `%attach` can follow it again after a kernel restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The steps that were submitted.
    pub plan: Plan,
    pub run_dir: String,
    /// Remote directory of the values (`<asset>-<version>.json`).
    pub values: String,
    pub jobs: Vec<WatchJob>,
    /// Asset -> Rust type of its value (one partition's, for a
    /// partitioned asset).
    pub types: HashMap<String, String>,
    /// The partitioned assets' values (see [`ArrayValues`]).
    #[serde(default)]
    pub arrays: BTreeMap<String, ArrayValues>,
}

impl RemoteRun {
    /// The saved [`RemoteRun`] of `run`, or why there is none.
    pub fn load(db: &StateDb, run: RunId) -> Result<RemoteRun, ClusterError> {
        let text = db
            .run_remote(run)?
            .ok_or(ClusterError::NotSlurmRun { run })?;
        serde_json::from_str(&text).map_err(|e| ClusterError::Saved {
            run,
            error: e.to_string(),
        })
    }
}

/// The run `%attach`/`%cancel` act on: `run` when given (it must be a
/// Slurm run), else the newest Slurm run still in progress (`None` when
/// there is none).
pub fn slurm_run(db: &StateDb, run: Option<RunId>) -> Result<Option<Run>, ClusterError> {
    match run {
        Some(id) => {
            let run = db.run(id)?.ok_or(ClusterError::NoSuchRun { run: id })?;
            if run.target != Target::Slurm {
                return Err(ClusterError::KernelRun { run: id });
            }
            Ok(Some(run))
        }
        None => Ok(db
            .runs()?
            .into_iter()
            .find(|r| r.target == Target::Slurm && r.status == RunStatus::Running)),
    }
}

/// Everything `%attach` needs.
pub struct AttachRun<'a> {
    pub db: &'a StateDb,
    pub run_id: RunId,
    pub remote: &'a dyn Transport,
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
    /// The process's output gate (see [`OutputGate`]).
    pub gate: &'a OutputGate,
    /// Where the watcher's offsets and job states are recorded.
    pub log: &'a dyn RunLog,
}

/// Follow a submitted run again (after a kernel restart): stream what was
/// not streamed yet, from the saved offsets, and record how its jobs ended.
pub async fn attach(a: AttachRun<'_>) -> Result<RunSummary, ClusterError> {
    let saved = RemoteRun::load(a.db, a.run_id)?;
    a.emit.emit(Event::Planned {
        plan: saved.plan.clone(),
    });
    let summary = RunSummary {
        run_id: Some(a.run_id),
        ..RunSummary::default()
    };
    follow(
        a.db,
        a.run_id,
        &saved,
        a.remote,
        a.emit,
        a.cancel,
        a.gate,
        a.log,
        Instant::now(),
        summary,
    )
    .await
}

/// `scancel` the jobs of a run that have not ended and record them as
/// cancelled; returns the job ids that were cancelled.
pub async fn cancel_run(
    db: &StateDb,
    run_id: RunId,
    remote: &dyn Transport,
) -> Result<Vec<String>, ClusterError> {
    let saved = RemoteRun::load(db, run_id)?;
    let mut ids: Vec<String> = saved.jobs.iter().map(|j| j.base_id().to_string()).collect();
    ids.dedup();
    slurm::cancel(remote, &ids).await?;
    let mut cancelled = Vec::new();
    let mut rows = db.run_assets(run_id)?;
    for asset in saved.arrays.keys() {
        rows.extend(db.run_partitions(run_id, asset)?);
    }
    for m in rows {
        if m.status != MaterializationStatus::Running {
            continue;
        }
        db.record_result(
            m.id,
            &ResultRecord {
                status: Some(MaterializationStatus::Cancelled),
                metadata: m.metadata.clone(),
                error: Some("cancelled by %cancel".into()),
                ..ResultRecord::default()
            },
        )?;
        if let Some(job) = m.job_id {
            cancelled.push(job);
        }
    }
    Ok(cancelled)
}

/// Watch a submitted run to its end and record every job's outcome.
#[allow(clippy::too_many_arguments)]
async fn follow(
    db: &StateDb,
    run_id: RunId,
    saved: &RemoteRun,
    remote: &dyn Transport,
    emit: &dyn Emit,
    cancel: &AtomicBool,
    gate: &OutputGate,
    log: &dyn RunLog,
    started: Instant,
    mut summary: RunSummary,
) -> Result<RunSummary, ClusterError> {
    let result = slurm::watch_run(WatchRun {
        transport: remote,
        run_dir: &saved.run_dir,
        jobs: &saved.jobs,
        emit,
        cancel,
        log,
        gate,
    })
    .await?;
    for warning in &result.warnings {
        tracing::warn!("run {run_id}: {warning}");
    }
    // The rows this run started, newest per asset (versions come from them,
    // not from the notebook, which may have changed since).
    let started_rows: HashMap<String, Materialization> = db
        .run_assets(run_id)?
        .into_iter()
        .map(|m| (m.asset.clone(), m))
        .collect();
    // An array's tasks are recorded per partition, then summed up per asset.
    let (tasks, plain): (Vec<&JobOutcome>, Vec<&JobOutcome>) =
        result.jobs.iter().partition(|o| o.task.is_some());
    jobs::finish_arrays(
        db,
        remote,
        run_id,
        saved,
        &tasks,
        &started_rows,
        &mut summary,
    )
    .await?;
    for outcome in plain {
        let Some(row) = started_rows.get(&outcome.asset) else {
            tracing::warn!("run {run_id}: no materialization row for {}", outcome.asset);
            continue;
        };
        let (status, error) = jobs::outcome_status(&outcome.state);
        let mut metadata = outcome.metadata.clone();
        if !metadata.is_object() {
            metadata = serde_json::json!({});
        }
        metadata["type"] =
            serde_json::Value::String(saved.types.get(&outcome.asset).cloned().unwrap_or_default());
        if let Some(ms) = outcome.elapsed_ms {
            metadata["elapsed_ms"] = ms.into();
        }
        if row.status == MaterializationStatus::Running {
            db.record_result(
                row.id,
                &ResultRecord {
                    status: Some(status),
                    metadata,
                    value_path: (status == MaterializationStatus::Ok).then(|| {
                        format!("{}/{}-{}.json", saved.values, outcome.asset, row.version)
                    }),
                    error,
                    job_id: Some(outcome.job_id.clone()),
                    node: outcome.node.clone(),
                },
            )?;
        }
        match status {
            MaterializationStatus::Ok => summary.done.push(outcome.asset.clone()),
            MaterializationStatus::Failed => summary.failed.push(outcome.asset.clone()),
            _ => summary.cancelled.push(outcome.asset.clone()),
        }
    }
    // Usage is an asset's: an array's tasks are not (yet) summed up.
    let result = SlurmJobsResult {
        jobs: result
            .jobs
            .iter()
            .filter(|o| o.task.is_none())
            .cloned()
            .collect(),
        ..result
    };
    super::usage::record_slurm(db, &saved.plan, &result, &started_rows, emit)?;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    emit.emit(Event::Finished {
        summary: summary.clone(),
    });
    Ok(summary)
}

/// The packed environments the selected assets run in (none without a
/// pixi project), ready on the cluster or uploaded for the jobs to unpack.
async fn prepare_envs(
    project: &Project,
    to_run: &[String],
    settings: &Settings,
    remote_platform: &str,
    base: &str,
    remote: &dyn Transport,
    repack: bool,
) -> Result<BTreeMap<String, job_env::PreparedEnv>, ClusterError> {
    let Some(pixi) = job_env::pixi_project(project) else {
        return Ok(BTreeMap::new());
    };
    let names: BTreeSet<String> = to_run
        .iter()
        .filter_map(|a| job_env::env_name(settings, project.asset(a)?.options.env.as_deref()))
        .collect();
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let platform = settings.platform().unwrap_or(remote_platform);
    let envs = job_env::prepare(
        remote,
        job_env::EnvRequest {
            pixi: &pixi,
            names: names.into_iter().collect(),
            platform,
            local_platform: &local_platform(),
            base,
            out_dir: &job_env::local_archive_dir(),
            repack,
        },
    )
    .await?;
    for env in envs.values() {
        tracing::info!(env = %env.name, key = %env.key, cached = env.cached, bytes_sent = env.bytes_sent, "job environment");
    }
    Ok(envs)
}
