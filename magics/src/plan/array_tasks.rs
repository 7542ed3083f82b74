//! How many partitions each task of a job array runs (`--per-task`).
//!
//! Every array task is a Slurm job of its own: Slurm schedules it, starts a
//! batch step on a node, runs the prolog and epilog and accounts for it.
//! That costs a fraction of a second at best; for partitions that compute
//! for less, the array spends more time starting tasks than computing.
//! Slurm sites ask users to bundle such work, and so does this planner:
//!
//! * `--per-task N`: each task runs N partitions one after another (the
//!   last task what is left), each with its own output, value and state.
//! * `auto` (the default): one partition per task, unless the asset's
//!   partitions were measured short on Slurm before (the median run time of
//!   their latest successful attempts is under [`SHORT_MS`]). Then each task
//!   runs `ceil(partitions / slots)` of them, so that the array still keeps
//!   every slot busy (slots: `--max-parallel`, else the Slurm partition's
//!   CPUs over the asset's `--cpus`), and at most [`TASK_TARGET_MS`] of
//!   measured work. Without a measurement or without the cluster's CPU
//!   count it stays at one.
//!
//! A task's `--time` is the asset's `--time` times the partitions it runs,
//! so the bundle never exceeds the Slurm partition's `MaxTime`: the number
//! per task is lowered to fit (and the plan says so). `--max-parallel M`
//! keeps its meaning: at most M tasks at once, so at most M partitions.

use std::collections::HashMap;

use super::{AllocationContext, Plan, SbatchRequest};
use crate::model::PerTask;
use crate::project::Project;

/// Partitions whose median run time is under this are bundled by `auto`.
pub const SHORT_MS: u64 = 60_000;
/// `auto` bundles at most this much measured work into one task.
pub const TASK_TARGET_MS: u64 = 10 * 60_000;

/// What decides the number of partitions per task of one array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundlingInput {
    /// `--per-task` (`None`: auto).
    pub option: Option<PerTask>,
    /// For a `--partitions-like` array running the same partitions as its
    /// upstream in this run: the upstream and its partitions per task,
    /// which it takes unless `option` says otherwise (so that the two chain
    /// task by task).
    pub like: Option<(String, u32)>,
    /// Partitions to run.
    pub partitions: u32,
    /// Median run time of the asset's latest successful partitions on
    /// Slurm, in ms.
    pub typical_ms: Option<u64>,
    /// `--max-parallel`.
    pub max_parallel: Option<u32>,
    /// Partitions the cluster can run at once (the Slurm partition's CPUs
    /// over the asset's), when known.
    pub slots: Option<u32>,
    /// One partition's `--time`, in seconds.
    pub time_s: Option<u64>,
    /// The Slurm partition's `MaxTime`, in seconds (`None`: unlimited or
    /// unknown).
    pub max_time_s: Option<u64>,
}

/// Partitions per task and, when not one, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundling {
    pub per_task: u32,
    pub why: Option<String>,
}

impl Bundling {
    /// Tasks of the array.
    pub fn tasks(&self, partitions: u32) -> u32 {
        partitions.div_ceil(self.per_task.max(1))
    }
}

/// See the module docs.
pub fn bundling(i: &BundlingInput) -> Bundling {
    let n = i.partitions.max(1);
    let (wanted, mut why) = match (i.option, &i.like) {
        (Some(PerTask::Fixed(k)), _) => (k, Some(format!("--per-task {k}"))),
        (None, Some((up, k))) => (*k, Some(format!("like {up}"))),
        _ => auto(i, n),
    };
    let mut per_task = wanted.clamp(1, n);
    if let (Some(t), Some(max)) = (i.time_s.filter(|t| *t > 0), i.max_time_s) {
        let cap = u32::try_from(max / t).unwrap_or(u32::MAX).max(1);
        if per_task > cap {
            per_task = cap;
            let note =
                format!("at most {cap}: their --time times {cap} is the partition's MaxTime");
            why = Some(match why {
                Some(w) => format!("{w}; {note}"),
                None => note,
            });
        }
    }
    if per_task == 1 && !matches!(i.option, Some(PerTask::Fixed(_))) {
        why = None;
    }
    Bundling { per_task, why }
}

fn auto(i: &BundlingInput, n: u32) -> (u32, Option<String>) {
    let Some(m) = i.typical_ms.filter(|m| *m < SHORT_MS) else {
        return (1, None);
    };
    let Some(slots) = i.max_parallel.or(i.slots).filter(|s| *s > 0) else {
        return (1, None);
    };
    let spread = n.div_ceil(slots);
    let by_target = u32::try_from(TASK_TARGET_MS / m.max(1)).unwrap_or(u32::MAX);
    let k = spread.min(by_target).max(1);
    let why = format!(
        "auto: the last run's partitions took {} each, {slots} run at once",
        duration_text(m)
    );
    (k, Some(why))
}

/// How many partitions each task of the plan's arrays runs (see
/// [`array_tasks`]). A `--partitions-like` array running the same
/// partitions as its upstream's in this run bundles as that one does
/// (unless it says otherwise), so that they chain task by task.
pub(super) fn plan_bundles(
    plan: &Plan,
    project: &Project,
    ctx: &AllocationContext<'_>,
) -> HashMap<String, Bundling> {
    let mut out: HashMap<String, Bundling> = HashMap::new();
    for s in plan.slurm_runs() {
        let (Some(p), Some(spec)) = (&s.partitions, project.asset(&s.asset)) else {
            continue;
        };
        let sbatch = SbatchRequest::for_asset(&spec.options, &ctx.defaults);
        let asked = sbatch.partition.as_deref();
        let cpus = sbatch.cpus_per_task.unwrap_or(1).max(1);
        let like = p.like.as_deref().and_then(|up| {
            let same = plan
                .slurm_runs()
                .any(|u| u.asset == up && u.partitions.as_ref().is_some_and(|q| q.run == p.run));
            let k = out.get(up).filter(|_| same)?.per_task;
            Some((up.to_string(), k))
        });
        let input = BundlingInput {
            option: p.per_task,
            like,
            partitions: p.run.len() as u32,
            typical_ms: p.typical_ms,
            max_parallel: p.max_parallel,
            slots: ctx
                .limits
                .partition_of(asked)
                .and_then(|x| ctx.limits.partition_cpus.get(&x).copied())
                .map(|c| (c / cpus).max(1)),
            time_s: sbatch.time.map(|t| t.seconds),
            max_time_s: ctx.limits.max_time_of(asked),
        };
        let b = bundling(&input);
        out.insert(s.asset.clone(), b);
    }
    out
}

/// `40 ms`, `2.5 s` (the durations `auto` bundles are under a minute).
fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> BundlingInput {
        BundlingInput {
            partitions: 100,
            ..BundlingInput::default()
        }
    }

    #[test]
    fn auto_is_one_per_task_without_a_short_measurement() {
        assert_eq!(bundling(&input()).per_task, 1);
        let long = BundlingInput {
            typical_ms: Some(SHORT_MS),
            slots: Some(2),
            ..input()
        };
        assert_eq!(
            bundling(&long),
            Bundling {
                per_task: 1,
                why: None
            }
        );
        let unknown_cpus = BundlingInput {
            typical_ms: Some(10),
            ..input()
        };
        assert_eq!(bundling(&unknown_cpus).per_task, 1);
    }

    #[test]
    fn auto_bundles_short_partitions_to_fill_the_slots() {
        let short = BundlingInput {
            typical_ms: Some(40),
            slots: Some(2),
            ..input()
        };
        let b = bundling(&short);
        assert_eq!((b.per_task, b.tasks(100)), (50, 2));
        let why = b.why.unwrap();
        assert!(
            why.contains("auto") && why.contains("2 run at once"),
            "{why}"
        );
        // --max-parallel wins over the cluster's CPUs.
        let throttled = BundlingInput {
            max_parallel: Some(25),
            ..short.clone()
        };
        assert_eq!(bundling(&throttled).per_task, 4);
        // At most TASK_TARGET_MS of measured work per task.
        let slower = BundlingInput {
            typical_ms: Some(30_000),
            ..short.clone()
        };
        assert_eq!(bundling(&slower).per_task, 20);
        // Never more per task than there are partitions.
        let few = BundlingInput {
            partitions: 3,
            slots: Some(1),
            ..short
        };
        assert_eq!(bundling(&few).per_task, 3);
    }

    #[test]
    fn a_like_array_bundles_as_its_upstream_unless_it_says_otherwise() {
        let like = BundlingInput {
            like: Some(("sim".into(), 4)),
            ..input()
        };
        let b = bundling(&like);
        assert_eq!((b.per_task, b.why.as_deref()), (4, Some("like sim")));
        // An unbundled upstream: one per task, nothing to say.
        let one = BundlingInput {
            like: Some(("sim".into(), 1)),
            ..input()
        };
        assert_eq!(
            bundling(&one),
            Bundling {
                per_task: 1,
                why: None
            }
        );
        let own = BundlingInput {
            option: Some(PerTask::Fixed(2)),
            ..like
        };
        assert_eq!(bundling(&own).per_task, 2);
    }

    #[test]
    fn fixed_is_kept_within_the_partitions_max_time() {
        let fixed = BundlingInput {
            option: Some(PerTask::Fixed(50)),
            ..input()
        };
        assert_eq!(bundling(&fixed).per_task, 50);
        let timed = BundlingInput {
            time_s: Some(120),
            max_time_s: Some(3600),
            ..fixed.clone()
        };
        let b = bundling(&timed);
        assert_eq!((b.per_task, b.tasks(100)), (30, 4));
        assert!(b.why.unwrap().contains("at most 30"));
        let one = BundlingInput {
            option: Some(PerTask::Fixed(1)),
            typical_ms: Some(5),
            slots: Some(2),
            ..input()
        };
        assert_eq!(bundling(&one).per_task, 1);
        let too_many = BundlingInput {
            option: Some(PerTask::Fixed(500)),
            ..input()
        };
        assert_eq!(bundling(&too_many).per_task, 100);
    }
}
