//! Materializing a plan as Slurm jobs: types, bundle, build, one
//! content-addressed upload, one submission round trip for the whole
//! selected subgraph, then one watcher streaming every job's output, with
//! every state recorded in the state database.

use crate::bundle::{self, BundleError};
use crate::config::Settings;
use crate::events::{AssetState, Emit, Event, RunSummary};
use crate::exec::slurm::{
    self, ClusterLimits, JobSpec, Remote, SshError, SshTarget, StepRequest, WatchRun,
};
use crate::plan::{Action, Plan};
use crate::project::Project;
use crate::state::{MaterializationStatus, ResultRecord, StartRecord, StateDb, StateError};
use crate::syntax::magic::{JobGrouping, RunId};
use crate::syntax::options::{AssetOptions, Target};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster configured: set `host` (slurmbook.toml profile, SLURMBOOK_HOST or %config host=...)")]
    NoHost,
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Submit(#[from] slurm::SubmitError),
    #[error(transparent)]
    Watch(#[from] slurm::WatchError),
    #[error("state database: {0}")]
    State(#[from] StateError),
    #[error("the cluster runs {remote}, this machine {local}: building on the cluster arrives with environment packing")]
    Platform { remote: String, local: String },
    #[error("upstream `{upstream}` of `{asset}` has no value on the cluster (it was materialized in the kernel, or never); select it too (`+{asset}`) or run it with --target slurm")]
    UpstreamNotRemote { asset: String, upstream: String },
}

/// The SSH target of the effective configuration.
pub fn ssh_target(settings: &Settings) -> Result<SshTarget, ClusterError> {
    let host = settings.get("host").ok_or(ClusterError::NoHost)?;
    let mut target = SshTarget::new(host);
    target.user = settings.get("user").map(str::to_owned);
    target.port = settings.get("port").and_then(|p| p.parse().ok());
    target.identity = settings.get("identity").map(Into::into);
    target.config_file = settings.get("ssh_config").map(Into::into);
    Ok(target.with_env())
}

/// `linux-64`-style name of this machine's platform.
pub fn local_platform() -> String {
    platform_name(std::env::consts::OS, std::env::consts::ARCH)
}

fn platform_name(os: &str, arch: &str) -> String {
    let os = match os.to_ascii_lowercase().as_str() {
        "linux" => "linux",
        "macos" | "darwin" => "osx",
        other => return format!("{other}-{arch}"),
    };
    let arch = match arch {
        "x86_64" | "amd64" => "64",
        "aarch64" | "arm64" => {
            if os == "osx" {
                "arm64"
            } else {
                "aarch64"
            }
        }
        other => other,
    };
    format!("{os}-{arch}")
}

/// Everything a cluster run needs.
pub struct ClusterRun<'a> {
    pub project: &'a Project,
    pub plan: &'a Plan,
    pub db: &'a StateDb,
    pub run_id: RunId,
    pub settings: &'a Settings,
    pub remote: &'a Remote,
    /// Types known from the kernel session (name -> type).
    pub session_types: &'a HashMap<String, String>,
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
}

/// Remote locations of a run.
struct Layout {
    cache: String,
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
    // Everything that can fail before submission is checked first.
    bundle::check_free_variables(project, &to_run)?;
    let root = bundle::build_root();
    let types = bundle::probe_types(project, &to_run, session_types, &root)?;
    let sources = bundle::generate(project, &to_run, &types)?;
    let binary = bundle::build(&sources, &root, &types)?;

    let uname = remote.run(&["uname", "-sm"]).await?;
    let mut parts = uname
        .stdout_text()
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter();
    let remote_platform = platform_name(
        &parts.next().unwrap_or_default(),
        &parts.next().unwrap_or_default(),
    );
    if remote_platform != local_platform() {
        return Err(ClusterError::Platform {
            remote: remote_platform,
            local: local_platform(),
        });
    }
    let base = remote
        .expand_dir(settings.get("remote_dir").unwrap_or("$HOME/slurmbook"))
        .await?;
    let run_tag = format!("{run_id}-{}", &uuid_like()[..6]);
    let layout = Layout {
        cache: format!("{base}/cache"),
        values: format!("{base}/values"),
        run_dir: format!("{base}/runs/{run_tag}"),
        run_tag,
    };
    let bytes = std::fs::read(&binary).map_err(|e| BundleError::Io {
        context: format!("reading {}", binary.display()),
        source: e,
    })?;
    let (remote_binary, sent) = remote.upload_cas(&layout.cache, &bytes, true).await?;
    tracing::info!(bytes_sent = sent, binary = %remote_binary, "job binary uploaded");

    let defaults = settings.sbatch_defaults();
    let running: HashSet<&str> = to_run.iter().map(String::as_str).collect();
    let mut jobs = Vec::new();
    for asset in &to_run {
        let spec = project.asset(asset).expect("planned assets exist");
        let version = &project.versions.get(asset).expect("versions").version;
        let mut command = vec![
            remote_binary.clone(),
            asset.clone(),
            "--output".into(),
            format!("{}/{asset}-{version}.json", layout.values),
        ];
        let mut after = Vec::new();
        for (up, kind) in project.graph.dependencies(asset) {
            if running.contains(up) {
                after.push(up.to_owned());
            }
            if !kind.carries_data() {
                continue;
            }
            let path = if running.contains(up) {
                let v = &project.versions.get(up).expect("versions").version;
                format!("{}/{up}-{v}.json", layout.values)
            } else {
                remote_value(db, up).ok_or_else(|| ClusterError::UpstreamNotRemote {
                    asset: asset.clone(),
                    upstream: up.to_owned(),
                })?
            };
            command.push("--input".into());
            command.push(format!("{up}={path}"));
        }
        jobs.push(JobSpec {
            asset: asset.clone(),
            sbatch: merged_sbatch(&spec.options, &defaults),
            command,
            after,
        });
    }
    let watch_jobs = submit_grouped(remote, &layout, plan, settings, project, &jobs).await?;
    let submitted: Vec<(String, String)> = watch_jobs
        .iter()
        .map(|w| (w.asset.clone(), w.job_id.clone()))
        .collect();
    let mut ids = HashMap::new();
    for (asset, job) in &submitted {
        let version = project.versions.get(asset).expect("versions");
        let id = db.record_start(&StartRecord {
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
        ids.insert(asset.clone(), id);
        emit.emit(Event::State {
            asset: asset.clone(),
            state: AssetState::Queued {
                job_id: Some(job.clone()),
            },
        });
    }
    let result = slurm::watch_run(WatchRun {
        remote,
        run_dir: &layout.run_dir,
        jobs: &watch_jobs,
        emit,
        cancel,
        db: Some((db, run_id)),
    })
    .await?;
    for outcome in &result.jobs {
        let version = &project
            .versions
            .get(&outcome.asset)
            .expect("versions")
            .version;
        let (status, error) = match &outcome.state {
            AssetState::Done { .. } => (MaterializationStatus::Ok, None),
            AssetState::Cancelled { because } => {
                (MaterializationStatus::Cancelled, because.clone())
            }
            AssetState::Failed { error } => (MaterializationStatus::Failed, Some(error.clone())),
            other => (MaterializationStatus::Cancelled, Some(other.describe())),
        };
        let mut metadata = outcome.metadata.clone();
        if !metadata.is_object() {
            metadata = serde_json::json!({});
        }
        metadata["type"] =
            serde_json::Value::String(types.get(&outcome.asset).cloned().unwrap_or_default());
        if let Some(ms) = outcome.elapsed_ms {
            metadata["elapsed_ms"] = ms.into();
        }
        db.record_result(
            ids[&outcome.asset],
            &ResultRecord {
                status: Some(status),
                metadata,
                value_path: (status == MaterializationStatus::Ok)
                    .then(|| format!("{}/{}-{version}.json", layout.values, outcome.asset)),
                error,
                job_id: Some(outcome.job_id.clone()),
                node: outcome.node.clone(),
            },
        )?;
        match status {
            MaterializationStatus::Ok => summary.done.push(outcome.asset.clone()),
            MaterializationStatus::Failed => summary.failed.push(outcome.asset.clone()),
            _ => summary.cancelled.push(outcome.asset.clone()),
        }
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    emit.emit(Event::Finished {
        summary: summary.clone(),
    });
    Ok(summary)
}

/// Plan the run's allocations (grouped unless `--jobs per-asset` or the
/// profile's `jobs = "per-asset"`) and submit them in one round trip.
async fn submit_grouped(
    remote: &Remote,
    layout: &Layout,
    plan: &Plan,
    settings: &Settings,
    project: &Project,
    jobs: &[JobSpec],
) -> Result<Vec<slurm::WatchJob>, ClusterError> {
    let mode = plan
        .jobs
        .or_else(|| settings.get("jobs").and_then(|j| j.parse().ok()))
        .unwrap_or(JobGrouping::Grouped);
    let limits = match mode {
        JobGrouping::PerAsset => ClusterLimits::default(),
        JobGrouping::Grouped => {
            let out = remote
                .run(&["sinfo", "--noheader", "--format=%P|%l|%c|%m"])
                .await?;
            ClusterLimits::from_sinfo(&out.stdout_text())
        }
    };
    let requests: Vec<StepRequest> = jobs
        .iter()
        .map(|j| StepRequest {
            asset: j.asset.clone(),
            after: j.after.clone(),
            sbatch: j.sbatch.clone(),
            own_job: project.asset(&j.asset).is_some_and(|a| a.options.own_job),
        })
        .collect();
    let allocations = slurm::plan_allocations(&requests, mode, &limits);
    for a in allocations.iter().filter(|a| a.is_group()) {
        tracing::info!(job = %a.name, steps = a.assets.len(), "grouped allocation");
    }
    Ok(
        slurm::submit_allocations(remote, &layout.run_dir, &layout.run_tag, jobs, &allocations)
            .await?,
    )
}

/// sbatch flags: the asset's own options first (they win), then the profile's.
fn merged_sbatch(own: &AssetOptions, defaults: &AssetOptions) -> Vec<(&'static str, String)> {
    let mut flags = own.sbatch_args();
    for (name, value) in defaults.sbatch_args() {
        if !flags.iter().any(|(n, _)| *n == name) {
            flags.push((name, value));
        }
    }
    flags
}

/// Where the last successful Slurm materialization of `asset` left its value.
fn remote_value(db: &StateDb, asset: &str) -> Option<String> {
    let m = db.last_success(asset).ok().flatten()?;
    (m.target == Target::Slurm)
        .then_some(m.value_path)
        .flatten()
}

fn uuid_like() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{:?}{}", Instant::now(), std::process::id()).as_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes(),
    );
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_follow_conda() {
        assert_eq!(platform_name("Linux", "x86_64"), "linux-64");
        assert_eq!(platform_name("Linux", "aarch64"), "linux-aarch64");
        assert_eq!(platform_name("macos", "aarch64"), "osx-arm64");
        assert_eq!(
            local_platform(),
            platform_name(std::env::consts::OS, std::env::consts::ARCH)
        );
    }
}
