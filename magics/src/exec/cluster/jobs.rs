//! Partitioned assets on Slurm: one job array per partitioned asset per
//! run. This module prepares what the submission carries for them — the
//! task tables (`<asset>.tasks.json` in the run directory: entry `i` is
//! task `i`'s partition, its value's path and its inputs; the batch
//! script only runs `BINARY ASSET --task-table PATH`, the binary reads
//! `SLURM_ARRAY_TASK_ID` itself) and the input maps of non-partitioned
//! downstreams (`--input-map UP=FILE`, every partition's value path) —
//! and, once the array ended, the whole asset's value: the map of every
//! partition's value, assembled on the cluster for `%load NAME`.
//!
//! A partition's value lives at `<values>/<asset>-<partition version>.json`;
//! partitions not run in this run must have such a value from an earlier
//! Slurm run (else the error names the partition and the way out).

use std::collections::BTreeMap;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{ClusterError, Layout, RemoteRun};
use crate::bundle;
use crate::events::{keys_text, AssetState, RunSummary};
use crate::exec::slurm;
use crate::exec::slurm::task_bundle::bundled_scripts;
use crate::exec::slurm::JobSpec;
use crate::exec::slurm::{JobOutcome, WatchJob};
use crate::model::{MaterializationStatus, RunId, Target};
use crate::partitions;
use crate::plan::{Plan, Step, StepPartitions};
use crate::project::Project;
use crate::state::{Materialization, ResultRecord, StartRecord, StateDb};
use crate::transport::{quote, Transport};

/// What preparing a run's arrays needs.
pub(super) struct ArrayContext<'a> {
    pub project: &'a Project,
    pub db: &'a StateDb,
    pub plan: &'a Plan,
    /// Remote directory of the values.
    pub values: &'a str,
}

/// One entry of a task table (the job binary's `--task-table FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteTask {
    pub key: String,
    /// The partition's index among all of the asset's keys.
    pub index: usize,
    pub output: String,
    pub inputs: BTreeMap<String, String>,
    pub input_maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// The remote value of partition `key` of `asset`.
pub(super) fn partition_path(values: &str, project: &Project, asset: &str, key: &str) -> String {
    let v = partitions::version_of(project, asset, key);
    format!("{values}/{asset}-{v}.json")
}

fn keys_error(asset: &str, e: partitions::PartitionsError) -> ClusterError {
    ClusterError::Partitions {
        asset: asset.to_string(),
        error: e.to_string(),
    }
}

impl ArrayContext<'_> {
    fn step(&self, asset: &str) -> Option<&Step> {
        self.plan.runs().find(|s| s.asset == asset)
    }

    /// Where partition `key` of the upstream `up` of `asset` is on the
    /// cluster: computed in this run, or a Slurm value of its current
    /// version from an earlier one.
    fn upstream_partition(&self, asset: &str, up: &str, key: &str) -> Result<String, ClusterError> {
        let path = partition_path(self.values, self.project, up, key);
        let runs_here = self
            .step(up)
            .and_then(|s| s.partitions.as_ref())
            .is_some_and(|p| p.run.iter().any(|(_, k)| k == key));
        if runs_here {
            return Ok(path);
        }
        let version = partitions::version_of(self.project, up, key);
        let last = self.db.latest_partitions(up)?.remove(key);
        match last {
            Some(m)
                if m.status == MaterializationStatus::Ok
                    && m.target == Target::Slurm
                    && m.version == version =>
            {
                Ok(m.value_path.unwrap_or(path))
            }
            _ => Err(ClusterError::UpstreamNotRemote {
                asset: asset.to_string(),
                upstream: format!("{up}[{key}]"),
            }),
        }
    }

    /// Every partition of the partitioned upstream `up`, as key -> path.
    fn upstream_map(
        &self,
        asset: &str,
        up: &str,
    ) -> Result<BTreeMap<String, String>, ClusterError> {
        let keys = partitions::keys_of(self.project, self.db, up)
            .map_err(|e| keys_error(up, e))?
            .unwrap_or_default();
        keys.iter()
            .map(|k| Ok((k.clone(), self.upstream_partition(asset, up, k)?)))
            .collect()
    }

    /// The task table of the partitioned `step` and its file name in the
    /// run directory.
    pub fn task_table(
        &self,
        step: &Step,
        non_partitioned_input: &dyn Fn(&str) -> Result<String, ClusterError>,
    ) -> Result<(String, Vec<RemoteTask>), ClusterError> {
        let asset = step.asset.as_str();
        let parts = step
            .partitions
            .as_ref()
            .ok_or_else(|| ClusterError::Partitions {
                asset: asset.to_string(),
                error: "the plan has no partitions for it".into(),
            })?;
        let mut inputs = BTreeMap::new();
        let mut input_maps = BTreeMap::new();
        let mut like = None;
        for (up, kind) in self.project.graph.dependencies(asset) {
            if !kind.carries_data() {
                continue;
            }
            if bundle::receives_map(self.project, asset, up) {
                input_maps.insert(up.to_string(), self.upstream_map(asset, up)?);
            } else if parts.like.as_deref() == Some(up) {
                like = Some(up);
            } else {
                inputs.insert(up.to_string(), non_partitioned_input(up)?);
            }
        }
        let tasks = parts
            .run
            .iter()
            .map(|(index, key)| {
                let mut inputs = inputs.clone();
                if let Some(up) = like {
                    inputs.insert(up.to_string(), self.upstream_partition(asset, up, key)?);
                }
                Ok(RemoteTask {
                    key: key.clone(),
                    index: *index,
                    output: partition_path(self.values, self.project, asset, key),
                    inputs,
                    input_maps: input_maps.clone(),
                })
            })
            .collect::<Result<Vec<_>, ClusterError>>()?;
        Ok((format!("{asset}.tasks.json"), tasks))
    }

    /// The input map file of the partitioned upstream `up` of the
    /// non-partitioned `asset`: (file name, JSON).
    pub fn input_map(&self, asset: &str, up: &str) -> Result<(String, String), ClusterError> {
        let map = self.upstream_map(asset, up)?;
        Ok((
            format!("{asset}.{up}.map.json"),
            serde_json::to_string(&map).expect("a string map serializes"),
        ))
    }
}

/// The shell script writing the map of every partition's value
/// (`{"KEY": VALUE, ...}`, keys in order) to `out` atomically. Keys are
/// validated partition keys (JSON- and shell-safe); paths are quoted.
pub(super) fn map_script(out: &str, parts: &[(String, String)]) -> String {
    let mut s = format!(
        "set -e\nout={}\ntmp=\"$out.tmp.$$\"\n{{\nprintf '{{'\n",
        quote(out)
    );
    for (i, (key, path)) in parts.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        debug_assert!(crate::model::partition::is_safe_key(key));
        s.push_str(&format!(
            "printf '{sep}\"%s\":' {}\ncat {}\n",
            quote(key),
            quote(path)
        ));
    }
    s.push_str("printf '}'\n} > \"$tmp\"\nmv -f \"$tmp\" \"$out\"\n");
    s
}

/// Assemble the whole asset's value on the cluster (see [`map_script`]).
pub(super) async fn write_map(
    remote: &dyn Transport,
    out: &str,
    parts: &[(String, String)],
) -> Result<(), ClusterError> {
    let o = remote.run_script(&map_script(out, parts)).await?;
    if o.code != Some(0) {
        return Err(ClusterError::Partitions {
            asset: out.to_string(),
            error: format!(
                "assembling the map of its partitions' values failed: {}",
                o.stderr_text().trim()
            ),
        });
    }
    Ok(())
}

/// What finishing a partitioned asset needs after its array ended, saved
/// with the run (`%attach`): every partition's value path (all of the
/// asset's keys, in order), and where the map of them goes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ArrayValues {
    pub parts: Vec<(String, String)>,
    /// `<values>/<asset>-<version>.json`: the whole asset's value.
    pub map: String,
}

impl ArrayContext<'_> {
    /// The argv of `step`'s job on the cluster (`[binary, run_dir]`): a
    /// partitioned asset's reads its task table; another's gets its
    /// output path, `--input NAME=PATH` per upstream and `--input-map
    /// NAME=FILE` per partitioned one. Task tables and input maps are
    /// added to `files` (for the run directory).
    pub fn command(
        &self,
        step: &Step,
        [binary, run_dir]: [&str; 2],
        upstream_value: &dyn Fn(&str) -> Result<String, ClusterError>,
        files: &mut Vec<(String, String)>,
    ) -> Result<Vec<String>, ClusterError> {
        let (project, asset) = (self.project, step.asset.as_str());
        let mut command = vec![binary.to_string(), asset.to_string()];
        if step.partitions.is_some() {
            let (name, tasks) = self.task_table(step, upstream_value)?;
            command.extend(["--task-table".into(), format!("{run_dir}/{name}")]);
            let json = serde_json::to_string(&tasks).expect("tasks serialize");
            files.push((name, json));
            return Ok(command);
        }
        let version = project
            .versions
            .get(asset)
            .map(|v| v.version.as_str())
            .unwrap_or_default();
        command.extend([
            "--output".into(),
            format!("{}/{asset}-{version}.json", self.values),
        ]);
        // Python and bash assets get every upstream's value (`--deps` too).
        let reads_all = project.asset(asset).is_some_and(|a| a.lang().is_foreign());
        for (up, kind) in project.graph.dependencies(asset) {
            if !kind.carries_data() && !reads_all {
                continue;
            }
            if bundle::receives_map(project, asset, up) {
                let (name, map) = self.input_map(asset, up)?;
                command.extend(["--input-map".into(), format!("{up}={run_dir}/{name}")]);
                files.push((name, map));
                continue;
            }
            command.extend(["--input".into(), format!("{up}={}", upstream_value(up)?)]);
        }
        Ok(command)
    }

    /// [`ArrayValues`] of the partitioned asset `asset`.
    pub fn values_of(&self, asset: &str) -> Result<ArrayValues, ClusterError> {
        let keys = partitions::keys_of(self.project, self.db, asset)
            .map_err(|e| keys_error(asset, e))?
            .unwrap_or_default();
        let version = self
            .project
            .versions
            .get(asset)
            .map(|v| v.version.clone())
            .unwrap_or_default();
        Ok(ArrayValues {
            parts: keys
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        partition_path(self.values, self.project, asset, k),
                    )
                })
                .collect(),
            map: format!("{}/{asset}-{version}.json", self.values),
        })
    }
}

/// Refuse, before anything is submitted, an array larger than the
/// cluster's `MaxArraySize` (asked only when the plan has arrays).
pub(super) async fn check_array_sizes(
    remote: &dyn Transport,
    plan: &Plan,
) -> Result<(), ClusterError> {
    let arrays: Vec<_> = plan
        .allocations
        .iter()
        .filter_map(|a| Some((a, a.sbatch.array?)))
        .collect();
    if arrays.is_empty() {
        return Ok(());
    }
    let max = crate::exec::slurm::cli::max_array_size(remote).await?;
    for (a, spec) in arrays {
        spec.check(max).map_err(|error| ClusterError::Array {
            asset: a.name.clone(),
            error,
        })?;
    }
    Ok(())
}

/// The submitted jobs, with each array's one job replaced by its tasks
/// (task `i`: the plan's `i`-th partition to run).
pub(super) fn array_watch_jobs(plan: &Plan, jobs: Vec<WatchJob>) -> Vec<WatchJob> {
    jobs.into_iter()
        .flat_map(|w| {
            match plan
                .step(&w.asset)
                .and_then(|s| s.partitions.as_ref())
                .filter(|_| w.step_of.is_none())
            {
                Some(p) => {
                    let keys = p.run_keys();
                    let per_task = per_task(plan, &w.asset);
                    WatchJob::array_tasks(&w.asset, &w.job_id, &w.after, &keys, per_task)
                }
                None => vec![w],
            }
        })
        .collect()
}

/// Partitions per task of `asset`'s array in the plan (1 when not bundled).
pub(super) fn per_task(plan: &Plan, asset: &str) -> u32 {
    plan.allocations
        .iter()
        .find(|a| a.assets.len() == 1 && a.assets[0] == asset)
        .and_then(|a| a.sbatch.array)
        .map_or(1, |a| a.per_task.max(1))
}

/// Record that the partitions of `asset` to run started as tasks of the
/// array job `array_id` (each at its partition version; partition `i` in
/// task `i / per_task`).
pub(super) fn record_array_start(
    db: &StateDb,
    run_id: RunId,
    project: &Project,
    asset: &str,
    array_id: &str,
    parts: &StepPartitions,
    per_task: u32,
) -> Result<(), ClusterError> {
    let version = project.versions.get(asset).expect("versions");
    for (i, (_, key)) in parts.run.iter().enumerate() {
        let pv = partitions::version_of(project, asset, key);
        let job = format!("{array_id}_{}", i / per_task.max(1) as usize);
        db.record_partition_start(
            &StartRecord {
                run_id: Some(run_id),
                asset,
                version: &pv,
                own_hash: &version.own_hash,
                upstream_versions: &version.upstreams,
                target: Target::Slurm,
                job_id: Some(&job),
                node: None,
            },
            key,
        )?;
    }
    Ok(())
}

/// How an array asset ended, from its tasks' outcomes.
pub(super) struct ArrayEnd {
    pub asset: String,
    pub status: MaterializationStatus,
    pub error: Option<String>,
}

/// Record each task's partition result (a partition's value at its
/// version; its type in the metadata, for `%load "NAME[KEY]"`) and sum up
/// each array asset (done when every task is, failed naming the failed
/// keys, else cancelled).
pub(super) fn record_tasks(
    db: &StateDb,
    run_id: RunId,
    values: &str,
    types: &HashMap<String, String>,
    outcomes: &[&JobOutcome],
) -> Result<Vec<ArrayEnd>, ClusterError> {
    let mut by_asset: BTreeMap<&str, Vec<&JobOutcome>> = BTreeMap::new();
    for o in outcomes {
        by_asset.entry(o.asset.as_str()).or_default().push(o);
    }
    let mut ends = Vec::new();
    for (asset, tasks) in by_asset {
        let rows: HashMap<String, Materialization> = db
            .run_partitions(run_id, asset)?
            .into_iter()
            .filter_map(|m| Some((m.partition.clone()?, m)))
            .collect();
        let mut failed = Vec::new();
        let mut cancelled = None;
        for o in &tasks {
            let Some(task) = &o.task else { continue };
            let (status, error) = outcome_status(&o.state);
            match status {
                MaterializationStatus::Ok => {}
                MaterializationStatus::Failed => failed.push(task.key.clone()),
                _ => {
                    cancelled.get_or_insert(error.clone().unwrap_or_default());
                }
            }
            let Some(row) = rows.get(&task.key) else {
                continue;
            };
            if row.status != MaterializationStatus::Running {
                continue;
            }
            let mut metadata = o.metadata.clone();
            if !metadata.is_object() {
                metadata = serde_json::json!({});
            }
            metadata["type"] = types.get(asset).cloned().unwrap_or_default().into();
            if let Some(ms) = o.elapsed_ms {
                metadata["elapsed_ms"] = ms.into();
            }
            db.record_result(
                row.id,
                &ResultRecord {
                    status: Some(status),
                    metadata,
                    value_path: (status == MaterializationStatus::Ok)
                        .then(|| format!("{values}/{asset}-{}.json", row.version)),
                    error,
                    job_id: Some(o.job_id.clone()),
                    node: o.node.clone(),
                },
            )?;
        }
        let (status, error) = if !failed.is_empty() {
            let text = format!(
                "{} of {} partitions failed: {}",
                failed.len(),
                tasks.len(),
                keys_text(&failed)
            );
            (MaterializationStatus::Failed, Some(text))
        } else if let Some(cause) = cancelled {
            (MaterializationStatus::Cancelled, Some(cause))
        } else {
            (MaterializationStatus::Ok, None)
        };
        ends.push(ArrayEnd {
            asset: asset.to_string(),
            status,
            error,
        });
    }
    Ok(ends)
}

/// A job's end as a materialization status and error.
pub(super) fn outcome_status(state: &AssetState) -> (MaterializationStatus, Option<String>) {
    match state {
        AssetState::Done { .. } => (MaterializationStatus::Ok, None),
        AssetState::Cancelled { because } => (MaterializationStatus::Cancelled, because.clone()),
        AssetState::Failed { error } => (MaterializationStatus::Failed, Some(error.clone())),
        other => (MaterializationStatus::Cancelled, Some(other.describe())),
    }
}

/// The whole asset's value once every one of its partitions has a value
/// on the cluster (this run's or an earlier one's): the map is assembled
/// there; `None` (no value: `%load "NAME[KEY]"` loads partitions) when some
/// partition has none yet.
pub(super) async fn finish_map(
    db: &StateDb,
    remote: &dyn Transport,
    asset: &str,
    values: &ArrayValues,
) -> Result<Option<String>, ClusterError> {
    let latest = db.latest_partitions(asset)?;
    let complete = values.parts.iter().all(|(k, path)| {
        latest.get(k).is_some_and(|m| {
            m.status == MaterializationStatus::Ok && m.value_path.as_deref() == Some(path)
        })
    });
    if !complete || values.parts.is_empty() {
        return Ok(None);
    }
    write_map(remote, &values.map, &values.parts).await?;
    Ok(Some(values.map.clone()))
}

/// Record the arrays' tasks and each array asset's end (with the whole
/// asset's value when complete), into `summary` too.
pub(super) async fn finish_arrays(
    db: &StateDb,
    remote: &dyn Transport,
    run_id: RunId,
    saved: &RemoteRun,
    tasks: &[&JobOutcome],
    started_rows: &HashMap<String, Materialization>,
    summary: &mut RunSummary,
) -> Result<(), ClusterError> {
    let ends = record_tasks(db, run_id, &saved.values, &saved.types, tasks)?;
    for end in ends {
        let Some(row) = started_rows.get(&end.asset) else {
            continue;
        };
        let map = match (end.status, saved.arrays.get(&end.asset)) {
            (MaterializationStatus::Ok, Some(values)) => {
                finish_map(db, remote, &end.asset, values).await?
            }
            _ => None,
        };
        let ty = saved.types.get(&end.asset).cloned().unwrap_or_default();
        if row.status == MaterializationStatus::Running {
            db.record_result(
                row.id,
                &ResultRecord {
                    status: Some(end.status),
                    metadata: serde_json::json!({
                        "type": format!("std::collections::BTreeMap<String, {ty}>")
                    }),
                    value_path: map,
                    error: end.error,
                    ..ResultRecord::default()
                },
            )?;
        }
        match end.status {
            MaterializationStatus::Ok => summary.done.push(end.asset),
            MaterializationStatus::Failed => summary.failed.push(end.asset),
            _ => summary.cancelled.push(end.asset),
        }
    }
    Ok(())
}

/// Submit the allocations the plan made (see `Plan::allocate`: the dry run
/// showed exactly these) in one round trip.
pub(super) async fn submit_planned(
    remote: &dyn Transport,
    layout: &Layout,
    plan: &Plan,
    jobs: &[JobSpec],
    files: Vec<(String, String)>,
) -> Result<Vec<slurm::WatchJob>, ClusterError> {
    for a in plan.allocations.iter().filter(|a| a.is_group()) {
        tracing::info!(job = %a.name, steps = a.assets.len(), "grouped allocation");
    }
    let keys_of = |asset: &str| Some(plan.step(asset)?.partitions.as_ref()?.run_keys());
    let extras = slurm::AllocationExtras {
        files,
        scripts: bundled_scripts(&layout.run_dir, jobs, &plan.allocations, keys_of)?,
    };
    Ok(slurm::submit_allocations_with(
        remote,
        &layout.run_dir,
        &layout.run_tag,
        jobs,
        &plan.allocations,
        extras,
    )
    .await?)
}

/// Where the last successful Slurm materialization of `asset` left its value.
pub(super) fn remote_value(db: &StateDb, asset: &str) -> Option<String> {
    let m = db.last_success(asset).ok().flatten()?;
    (m.target == Target::Slurm)
        .then_some(m.value_path)
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_script_builds_json_from_the_partitions_values() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let mut parts = Vec::new();
        for (k, v) in [("a", "1"), ("b.2", "[1,2]"), ("c-3", "{\"x\":\"it's\"}")] {
            let p = format!("{d}/{k} $(x).json");
            std::fs::write(&p, v).unwrap();
            parts.push((k.to_string(), p));
        }
        let out = format!("{d}/map.json");
        let out_status = std::process::Command::new("sh")
            .args(["-c", &map_script(&out, &parts)])
            .status()
            .unwrap();
        assert!(out_status.success());
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b.2": [1, 2], "c-3": {"x": "it's"}})
        );
    }
}
