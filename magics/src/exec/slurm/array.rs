//! Job arrays as the watcher reports them: one row per asset, its tasks
//! counted ([`AssetState::Tasks`]) while it runs, and one final state
//! once every task ended — done when all are, failed (listing the failed
//! keys) when any failed, cancelled (with the cause) when tasks were
//! cancelled and none failed. Pure.

use std::collections::{BTreeMap, HashMap};

use super::jobs::WatchJob;
use crate::events::{keys_text, AssetState, TaskCounts};

/// The arrays among `jobs`: `(asset, array id)` -> indices of its tasks,
/// in task order.
pub fn arrays(jobs: &[WatchJob]) -> BTreeMap<(String, String), Vec<usize>> {
    let mut out: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if j.task.is_some() {
            out.entry((j.asset.clone(), j.base_id().to_string()))
                .or_default()
                .push(i);
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|&i| jobs[i].task.as_ref().map(|t| t.index));
    }
    out
}

/// `(asset, state)` of each array with a task among `touched` whose
/// state ([`array_state`] of its tasks' `state_of`) differs from the one
/// last `shown` (updated).
pub fn changed(
    jobs: &[WatchJob],
    touched: &[usize],
    state_of: impl Fn(usize) -> AssetState,
    shown: &mut HashMap<String, AssetState>,
) -> Vec<(String, AssetState)> {
    if !touched.iter().any(|&i| jobs[i].task.is_some()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for ((asset, id), tasks) in arrays(jobs) {
        if !tasks.iter().any(|i| touched.contains(i)) {
            continue;
        }
        let states: Vec<(String, AssetState)> = tasks
            .iter()
            .map(|&i| {
                let key = jobs[i].task.as_ref().map(|t| t.key.clone());
                (key.unwrap_or_default(), state_of(i))
            })
            .collect();
        let refs: Vec<(&str, &AssetState)> = states.iter().map(|(k, s)| (k.as_str(), s)).collect();
        let state = array_state(&id, &refs);
        if shown.get(&asset) != Some(&state) {
            shown.insert(asset.clone(), state.clone());
            out.push((asset, state));
        }
    }
    out
}

/// The state of an array job `array_id` whose tasks `(key, state)` stand
/// as given (see the module docs).
pub fn array_state(array_id: &str, tasks: &[(&str, &AssetState)]) -> AssetState {
    let mut c = TaskCounts {
        total: tasks.len(),
        ..TaskCounts::default()
    };
    let mut longest = 0;
    let mut first_failure: Option<(&str, &str)> = None;
    let mut cancel_cause: Option<String> = None;
    for (key, state) in tasks {
        match state {
            AssetState::Queued { .. } => c.queued += 1,
            AssetState::Running { .. } | AssetState::Tasks { .. } => c.running += 1,
            AssetState::Done { duration_ms, .. } => {
                c.done += 1;
                longest = longest.max(*duration_ms);
            }
            AssetState::Fresh => c.done += 1,
            AssetState::Failed { error } => {
                c.failed += 1;
                c.failed_keys.push(key.to_string());
                first_failure.get_or_insert((key, error));
            }
            AssetState::Skipped { because } => {
                c.cancelled += 1;
                cancel_cause.get_or_insert(because.clone());
            }
            AssetState::Cancelled { because } => {
                c.cancelled += 1;
                if let Some(b) = because {
                    cancel_cause.get_or_insert(b.clone());
                }
            }
        }
    }
    if c.queued + c.running > 0 {
        return AssetState::Tasks {
            job_id: Some(array_id.to_string()),
            counts: c,
        };
    }
    if let Some((_, error)) = first_failure {
        return AssetState::Failed {
            error: format!(
                "{} of {} partitions failed: {}\n{error}",
                c.failed,
                c.total,
                keys_text(&c.failed_keys)
            ),
        };
    }
    if c.cancelled > 0 {
        let cause = cancel_cause.unwrap_or_else(|| "cancelled".into());
        return AssetState::Cancelled {
            because: Some(if c.done > 0 {
                format!("{} of {} partitions: {cause}", c.cancelled, c.total)
            } else {
                cause
            }),
        };
    }
    AssetState::Done {
        duration_ms: longest,
        location: format!("array {array_id} ({} partitions)", c.total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> AssetState {
        AssetState::Done {
            duration_ms: 5,
            location: "vm".into(),
        }
    }

    #[test]
    fn tasks_are_counted_then_summed_up() {
        let q = AssetState::queued(Some("9_1".into()));
        let r = AssetState::Running {
            location: "vm".into(),
        };
        let f = AssetState::Failed {
            error: "sim[7] failed: exit code 1".into(),
        };
        let s = array_state("9", &[("0", &done()), ("1", &q), ("7", &f), ("8", &r)]);
        let AssetState::Tasks { counts, job_id } = &s else {
            panic!("{s:?}")
        };
        assert_eq!(job_id.as_deref(), Some("9"));
        assert_eq!(
            (counts.done, counts.queued, counts.running, counts.failed),
            (1, 1, 1, 1)
        );
        assert_eq!(s.label(), "running");
        assert_eq!(
            s.describe(),
            "array 9: 1/4 done, 1 running, 1 queued, 1 failed (7)"
        );
        assert!(!s.is_terminal());
        let all_queued = array_state("9", &[("a", &q), ("b", &q)]);
        assert_eq!(all_queued.label(), "queued");
        let end = array_state("9", &[("0", &done()), ("7", &f), ("8", &done())]);
        match &end {
            AssetState::Failed { error } => {
                assert!(
                    error.starts_with("1 of 3 partitions failed: 7\n"),
                    "{error}"
                );
                assert!(error.contains("exit code 1"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        let ok = array_state("9", &[("0", &done()), ("1", &done())]);
        assert_eq!(ok.describe(), "done in 5 ms on array 9 (2 partitions)");
        let c = AssetState::Cancelled {
            because: Some("interrupted".into()),
        };
        let cancelled = array_state("9", &[("0", &done()), ("1", &c)]);
        assert_eq!(
            cancelled.describe(),
            "cancelled: 1 of 2 partitions: interrupted"
        );
    }

    #[test]
    fn arrays_group_tasks_in_index_order() {
        let keys: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let mut jobs = WatchJob::array_tasks("sim", "12", &[], &keys, 1);
        jobs.reverse();
        jobs.push(WatchJob {
            asset: "report".into(),
            job_id: "13".into(),
            after: vec!["sim".into()],
            step_of: None,
            task: None,
        });
        let a = arrays(&jobs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[&("sim".to_string(), "12".to_string())], [2, 1, 0]);
        assert_eq!(jobs[2].label(), "sim[x]");
        assert_eq!(jobs[2].stem(), "sim_12_0");
    }
}
