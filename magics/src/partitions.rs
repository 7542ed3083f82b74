//! Partitioned assets (sweeps) against the state: each asset's keys (its
//! declaration's, or another asset's stored value for `--partitions-from`),
//! each partition's version and state, the `%assets` summary
//! (`97/100 fresh, 3 failed (7, 41, 88)`), and the partitions a plan's
//! step runs ([`plan_partitions`]: missing, failed or stale ones, or the
//! selected ones).
//!
//! `--partitions-from NAME` reads NAME's stored value when planning: NAME
//! must have been materialized (in the kernel) before; when NAME runs in the
//! same run, the partitioned asset is not run (recorded as such, saying
//! why) and the rest of the run goes on — its keys are known once NAME is
//! done, and one Slurm submission cannot wait for them.

use std::collections::HashMap;

use crate::model::partition::{abbreviate, keys_from_value, partition_version, select_keys};
use crate::model::{MaterializationStatus, PartitionError, PartitionSpec, Target};
use crate::plan::{Action, Plan, StepPartitions};
use crate::project::Project;
use crate::state::{Materialization, StateDb, StateError};
use crate::version::{Freshness, Reason};

/// Why a partitioned asset cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PartitionsError {
    #[error("asset `{asset}`: {source}")]
    Keys {
        asset: String,
        source: PartitionError,
    },
    #[error("`{asset}` takes its partitions from `{from}`, which has no value yet: materialize `{from}` first (`%materialize {from}`), then `{asset}`")]
    SourceMissing { asset: String, from: String },
    #[error("`{asset}` takes its partitions from `{from}`, whose value is not here ({why}); materialize `{from}` in the kernel first")]
    SourceUnreadable {
        asset: String,
        from: String,
        why: String,
    },
    #[error("`{asset}` is partitioned like `{like}`, which is not partitioned")]
    LikeNotPartitioned { asset: String, like: String },
    #[error(
        "the selection picks partitions of `{asset}` (`{asset}[...]`), which is not partitioned"
    )]
    NotPartitioned { asset: String },
    #[error("`{asset}` is a {lang} asset: partitions are for Rust assets")]
    Foreign { asset: String, lang: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// One partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartState {
    Fresh,
    /// Succeeded at another version.
    Stale,
    Missing,
    Failed,
    Running,
}

/// A partitioned asset's partitions now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    pub keys: Vec<String>,
    /// Each key's partition version.
    pub versions: Vec<String>,
    pub states: Vec<PartState>,
}

impl Partitions {
    pub fn all_fresh(&self) -> bool {
        self.states.iter().all(|s| *s == PartState::Fresh)
    }

    /// The partitions that are not fresh, as (index, key).
    pub fn not_fresh(&self) -> Vec<(usize, String)> {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != PartState::Fresh)
            .map(|(i, _)| (i, self.keys[i].clone()))
            .collect()
    }

    fn with(&self, state: PartState) -> Vec<String> {
        self.states
            .iter()
            .zip(&self.keys)
            .filter(|(s, _)| **s == state)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// `97/100 fresh, 3 failed (7, 41, 88)`, with the stale, missing and
    /// running ones counted too.
    pub fn summary(&self) -> String {
        let fresh = self.with(PartState::Fresh).len();
        let mut text = format!("{fresh}/{} fresh", self.keys.len());
        for (state, label) in [
            (PartState::Failed, "failed"),
            (PartState::Running, "running"),
            (PartState::Stale, "stale"),
            (PartState::Missing, "missing"),
        ] {
            let keys = self.with(state);
            if !keys.is_empty() {
                text.push_str(&format!(
                    ", {} {label} ({})",
                    keys.len(),
                    abbreviate(&keys, 10)
                ));
            }
        }
        text
    }
}

/// The keys of `asset` (`None`: it is not partitioned). `--partitions-from
/// NAME` reads NAME's last successful value from the local store.
pub fn keys_of(
    project: &Project,
    db: &StateDb,
    asset: &str,
) -> Result<Option<Vec<String>>, PartitionsError> {
    let Some(spec) = project.asset(asset) else {
        return Ok(None);
    };
    let Some(partitioning) = spec.options.partitioning() else {
        return Ok(None);
    };
    if spec.lang().is_foreign() {
        return Err(PartitionsError::Foreign {
            asset: asset.to_string(),
            lang: spec.lang().to_string(),
        });
    }
    if let Some(keys) = partitioning.static_keys() {
        return Ok(Some(keys));
    }
    match partitioning {
        PartitionSpec::Like(like) => keys_of(project, db, &like)?.map(Some).ok_or_else(|| {
            PartitionsError::LikeNotPartitioned {
                asset: asset.to_string(),
                like: like.clone(),
            }
        }),
        PartitionSpec::From(from) => {
            let unreadable = |why: String| PartitionsError::SourceUnreadable {
                asset: asset.to_string(),
                from: from.clone(),
                why,
            };
            let last = db
                .last_success(&from)?
                .ok_or_else(|| PartitionsError::SourceMissing {
                    asset: asset.to_string(),
                    from: from.clone(),
                })?;
            let path = match (&last.value_path, last.target) {
                (Some(p), Target::Local) => p.clone(),
                // A value on the cluster is read from its copy in the local
                // store (the run service fetches it before planning).
                (Some(p), Target::Slurm) => match fetched_copy(project, &from, &last.version) {
                    Some(copy) => copy,
                    None => return Err(unreadable(format!("it is on the cluster, {p}"))),
                },
                (None, _) => return Err(unreadable("it was not stored as JSON".into())),
            };
            let bytes = std::fs::read(&path).map_err(|e| unreadable(format!("{path}: {e}")))?;
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| unreadable(format!("{path}: {e}")))?;
            keys_from_value(&from, &value)
                .map(Some)
                .map_err(|source| PartitionsError::Keys {
                    asset: asset.to_string(),
                    source,
                })
        }
        PartitionSpec::Range { .. } | PartitionSpec::List(_) => unreachable!("static keys above"),
    }
}

/// The local store's copy of a value fetched from the cluster, if any.
fn fetched_copy(project: &Project, asset: &str, version: &str) -> Option<String> {
    let dir = project.notebook_path.as_ref()?.parent()?;
    let path = crate::store::ValueStore::new(dir)
        .path_for(asset, version, "json")
        .ok()?;
    path.is_file().then(|| path.display().to_string())
}

/// The version of partition `key` of `asset` (for `--partitions-like up`,
/// from `up`'s partition `key`'s version too).
pub fn version_of(project: &Project, asset: &str, key: &str) -> String {
    let Some(v) = project.versions.get(asset) else {
        return String::new();
    };
    let like = project
        .asset(asset)
        .and_then(|a| a.options.partitions_like.clone())
        .map(|up| version_of(project, &up, key));
    partition_version(&v.version, key, like.as_deref())
}

/// The partitions of `asset` now (`None`: it is not partitioned).
pub fn status(
    project: &Project,
    db: &StateDb,
    asset: &str,
) -> Result<Option<Partitions>, PartitionsError> {
    let Some(keys) = keys_of(project, db, asset)? else {
        return Ok(None);
    };
    let latest = db.latest_partitions(asset)?;
    let versions: Vec<String> = keys.iter().map(|k| version_of(project, asset, k)).collect();
    let states = keys
        .iter()
        .zip(&versions)
        .map(|(k, v)| match latest.get(k) {
            None => PartState::Missing,
            Some(m) => match m.status {
                MaterializationStatus::Ok if &m.version == v => PartState::Fresh,
                MaterializationStatus::Ok => PartState::Stale,
                MaterializationStatus::Running => PartState::Running,
                MaterializationStatus::Skipped => PartState::Missing,
                _ if &m.version != v => PartState::Stale,
                _ => PartState::Failed,
            },
        })
        .collect();
    Ok(Some(Partitions {
        keys,
        versions,
        states,
    }))
}

/// Every partitioned asset's partitions, by asset (those whose keys cannot
/// be known yet are left out).
pub fn all_status(project: &Project, db: &StateDb) -> HashMap<String, Partitions> {
    project
        .assets
        .iter()
        .filter(|a| a.options.partitioning().is_some())
        .filter_map(|a| Some((a.name.clone(), status(project, db, &a.name).ok()??)))
        .collect()
}

/// A partitioned asset whose own record is fresh is not while any of its
/// partitions is not (its freshness says which), nor when its stored map
/// holds another number of partitions than it has now (keys removed: a
/// key added is a missing partition).
pub fn adjust_freshness(
    freshness: &mut HashMap<String, Freshness>,
    partitions: &HashMap<String, Partitions>,
    successes: &HashMap<String, Materialization>,
) {
    for (asset, parts) in partitions {
        let stored = successes
            .get(asset)
            .and_then(|m| m.metadata.get("partitions"))
            .and_then(serde_json::Value::as_u64);
        let reason = if !parts.all_fresh() {
            Reason::Partitions(parts.summary())
        } else if stored.is_some_and(|n| n != parts.keys.len() as u64) {
            Reason::Partitions(format!(
                "changed: {} stored, {} now",
                stored.unwrap_or_default(),
                parts.keys.len()
            ))
        } else {
            continue;
        };
        match freshness.get_mut(asset) {
            Some(Freshness::Stale(reasons)) => reasons.push(reason),
            Some(f @ Freshness::Fresh) => *f = Freshness::Stale(vec![reason]),
            _ => {}
        }
    }
}

/// The median run time (ms) of `asset`'s partitions at their latest
/// attempts that succeeded on Slurm (their `elapsed_ms`), if any: what
/// `--per-task auto` bundles by (see `plan::array_tasks`).
pub fn typical_ms(db: &StateDb, asset: &str) -> Result<Option<u64>, StateError> {
    let mut ms: Vec<u64> = db
        .latest_partitions(asset)?
        .into_values()
        .filter(|m| m.status == MaterializationStatus::Ok && m.target == Target::Slurm)
        .filter_map(|m| m.metadata.get("elapsed_ms")?.as_u64())
        .collect();
    ms.sort_unstable();
    Ok(ms.get(ms.len() / 2).copied())
}

/// Fills in the partitions of the plan's partitioned steps: which of them
/// run (the missing, failed or stale ones; with `--force` all; the
/// selected ones of a `name[...]` selection, with the same rule), and
/// refuses what cannot run (keys not known yet, a bad selection, Slurm).
/// A partitioned step with nothing left to run is skipped as fresh.
pub fn plan_partitions(
    plan: &mut Plan,
    project: &Project,
    db: &StateDb,
    picks: &[(&str, &str)],
) -> Result<(), PartitionsError> {
    for (asset, _) in picks {
        if project
            .asset(asset)
            .is_some_and(|a| a.options.partitioning().is_none())
        {
            return Err(PartitionsError::NotPartitioned {
                asset: asset.to_string(),
            });
        }
    }
    let running: Vec<String> = plan.runs().map(|s| s.asset.clone()).collect();
    let force = plan.force;
    for step in plan.steps.iter_mut() {
        let Some(spec) = project.asset(&step.asset) else {
            continue;
        };
        let Some(partitioning) = spec.options.partitioning() else {
            continue;
        };
        if step.action == Action::Refused {
            continue;
        }
        if let PartitionSpec::From(from) = &partitioning {
            if running.contains(from) {
                // Its keys are known once `from` is done: the rest of the
                // run goes on without it (recorded as not run, saying why).
                step.action = Action::Refused;
                step.why = format!(
                    "its partitions are the value of `{from}`, which runs in this run: materialize `{}` again once `{from}` is done",
                    step.asset
                );
                continue;
            }
        }
        let parts = status(project, db, &step.asset)?.expect("a partitioned asset");
        let picked: Option<Vec<(usize, String)>> = picks
            .iter()
            .filter(|(a, _)| *a == step.asset)
            .map(|(_, keys)| {
                select_keys(&step.asset, keys, &parts.keys).map_err(|source| {
                    PartitionsError::Keys {
                        asset: step.asset.clone(),
                        source,
                    }
                })
            })
            .try_fold(None::<Vec<(usize, String)>>, |acc, r| {
                let mut all = acc.unwrap_or_default();
                all.extend(r?);
                Ok::<_, PartitionsError>(Some(all))
            })?;
        let candidates = picked.unwrap_or_else(|| {
            parts
                .keys
                .iter()
                .cloned()
                .enumerate()
                .collect::<Vec<(usize, String)>>()
        });
        let mut run: Vec<(usize, String)> = candidates
            .into_iter()
            .filter(|(i, _)| force || parts.states[*i] != PartState::Fresh)
            .collect();
        run.sort();
        run.dedup();
        if step.action == Action::Skip && !run.is_empty() {
            step.action = Action::Run;
            step.why = format!("partitions: {}", parts.summary());
        }
        step.partitions = Some(StepPartitions {
            total: parts.keys.len(),
            run,
            max_parallel: spec.options.max_parallel,
            like: spec.options.partitions_like.clone(),
            per_task: spec.options.per_task,
            typical_ms: typical_ms(db, &step.asset)?,
        });
    }
    // A downstream's version does not say which partitions its map held:
    // a selected downstream of partitions that run runs again too.
    let mut reran: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Run && s.partitions.is_some())
        .map(|s| s.asset.clone())
        .collect();
    for step in plan.steps.iter_mut() {
        if step.action != Action::Skip {
            continue;
        }
        let up = project
            .graph
            .dependencies(&step.asset)
            .into_iter()
            .find(|(d, k)| k.carries_data() && reran.iter().any(|r| r == d));
        if let Some((up, _)) = up {
            step.action = Action::Run;
            step.why = format!("partitions of upstream {up} run");
            if step.partitions.is_some() {
                reran.push(step.asset.clone());
            }
        }
    }
    Ok(())
}
