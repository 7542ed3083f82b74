//! The allocation planner: which assets of a Slurm run share one job.
//!
//! Every Slurm job waits in the queue; a graph of twenty assets submitted as
//! twenty jobs waits twenty times. With [`JobGrouping::Grouped`] (the
//! default) the planner puts a **connected** set of assets with
//! **compatible** requests into one **allocation**: one Slurm job in which
//! each asset is an `srun` step (see `exec::slurm::driver`), started as soon as
//! its upstream steps succeeded.
//!
//! * **Compatible**: the same sbatch options apart from the resources
//!   (partition, with the cluster's default partition filled in, account,
//!   qos, constraint, ... must be equal), the same node count, `--mem` given
//!   by all or by none (Slurm gives a step without `--mem` the allocation's
//!   whole memory, which would serialize the steps) and the same GPU kind
//!   (or none). Assets with `--own-job`, more than one node or more than one
//!   task stay jobs of their own.
//! * **Connected, acyclic**: assets are taken in topological order; an
//!   asset joins the allocations of its compatible upstreams (merging them)
//!   unless that would make the allocations' graph cyclic (an allocation
//!   waiting for a job that waits for it).
//! * **Time**: the allocation's `--time` is the longest path of its steps'
//!   `--time`s (asset option, else the profile's); if any step has none,
//!   the allocation has none (the partition's default applies). An asset
//!   does not join an allocation whose time would then exceed the
//!   partition's limit ([`ClusterLimits::max_time`], from `sinfo`): the
//!   group is split instead.
//! * **Resources**: CPUs (and memory, GPUs when given) cover the largest
//!   step, and the sum of the steps at the same depth of the allocation's
//!   graph (the ones that can run in parallel), capped by what one node
//!   has ([`ClusterLimits`]). Steps that do not fit wait for each other
//!   inside the allocation (`srun --exact` queues them), never fail.
//!
//! An allocation with one asset is an ordinary job, as with
//! [`JobGrouping::PerAsset`].

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::limits::ClusterLimits;
use super::sbatch::SbatchRequest;
use crate::model::{Gpus, JobGrouping, MemSize, SlurmTime};

/// One asset of the run, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRequest {
    pub asset: String,
    /// Upstream assets of this run it waits for.
    pub after: Vec<String>,
    /// What it asks Slurm for (its options, then the profile's defaults).
    pub sbatch: SbatchRequest,
    /// `--own-job`.
    pub own_job: bool,
    /// The pixi environment it runs in (steps of one allocation share one
    /// environment).
    pub env: Option<String>,
}

/// What one step asks for, inside its allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResources {
    pub cpus: u32,
    pub mem_mb: Option<u64>,
    pub gpus: Option<Gpus>,
    pub time: Option<SlurmTime>,
}

/// One Slurm job of the run: what the dry run shows and what is submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The job's name in the run: the asset's for a single-asset job,
    /// `alloc_<first asset>` (made unique) for a group.
    pub name: String,
    /// Its assets in topological order.
    pub assets: Vec<String>,
    /// Allocations it waits for (`afterok`).
    pub after: Vec<String>,
    /// What the job asks Slurm for.
    pub sbatch: SbatchRequest,
    /// Per asset (same order as `assets`); for a group's `srun`s.
    pub steps: Vec<StepResources>,
    /// Why it is a job of its own, if it could have been grouped but was not.
    pub note: Option<String>,
}

impl Allocation {
    pub fn is_group(&self) -> bool {
        self.assets.len() > 1
    }

    /// The `--time` of the job, if any (`00:50:00`).
    pub fn time(&self) -> Option<String> {
        self.sbatch.time.map(|t| t.to_string())
    }
}

fn mem_mb(m: &MemSize) -> u64 {
    m.kibibytes().div_ceil(1024)
}

struct Info {
    /// Steps with equal keys may share an allocation; `None`: never.
    key: Option<String>,
    res: StepResources,
    sbatch: SbatchRequest,
    note: Option<String>,
}

fn info(r: &StepRequest, limits: &ClusterLimits) -> Info {
    let sbatch = r.sbatch.clone();
    let res = StepResources {
        cpus: sbatch.cpus_per_task.unwrap_or(1),
        mem_mb: sbatch.mem.as_ref().map(mem_mb),
        gpus: sbatch.gpus.clone(),
        time: sbatch.time,
    };
    let nodes = sbatch.nodes.unwrap_or(1);
    let ntasks = sbatch.ntasks.unwrap_or(1);
    let (key, note) = if r.own_job {
        (None, Some("--own-job".to_string()))
    } else if nodes > 1 || ntasks > 1 {
        (None, Some("more than one node or task".to_string()))
    } else {
        let partition = sbatch
            .partition
            .clone()
            .or_else(|| limits.default_partition.clone())
            .unwrap_or_default();
        let key = format!(
            "account={:?} qos={:?} constraint={:?} requeue={:?} partition={partition} mem-given={} gpus={:?} env={:?}",
            sbatch.account,
            sbatch.qos,
            sbatch.constraint,
            sbatch.requeue,
            res.mem_mb.is_some(),
            res.gpus.as_ref().map(|g| g.kind.clone().unwrap_or_default()),
            r.env
        );
        (Some(key), None)
    };
    Info {
        key,
        res,
        sbatch,
        note,
    }
}

/// Plans the run's allocations (see the module docs). `steps` may come in
/// any order; `after` names outside `steps` are ignored. Deterministic.
pub fn plan_allocations(
    steps: &[StepRequest],
    mode: JobGrouping,
    limits: &ClusterLimits,
) -> Vec<Allocation> {
    let n = steps.len();
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.asset.as_str(), i))
        .collect();
    let ups: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            let mut v: Vec<usize> = s
                .after
                .iter()
                .filter_map(|u| index.get(u.as_str()).copied())
                .collect();
            v.sort();
            v.dedup();
            v
        })
        .collect();
    let order = topo(&ups);
    let mut pos = vec![0; n];
    for (p, &i) in order.iter().enumerate() {
        pos[i] = p;
    }
    let infos: Vec<Info> = steps.iter().map(|s| info(s, limits)).collect();
    // group id of each step; groups as member lists.
    let mut group_of: Vec<usize> = vec![usize::MAX; n];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &v in &order {
        let candidates: Vec<usize> = match (&infos[v].key, mode) {
            (Some(key), JobGrouping::Grouped) => {
                let mut c: Vec<usize> = ups[v]
                    .iter()
                    .map(|&u| group_of[u])
                    .filter(|&g| infos[groups[g][0]].key.as_ref() == Some(key))
                    .collect();
                c.sort();
                c.dedup();
                c
            }
            _ => Vec::new(),
        };
        let cap = infos[v]
            .key
            .as_ref()
            .and_then(|_| partition_cap(&infos[v].sbatch, limits));
        let mut chosen: Vec<usize> = Vec::new();
        for g in candidates {
            let mut trial = chosen.clone();
            trial.push(g);
            if !acyclic_merge(&trial, v, &ups, &group_of, groups.len()) {
                continue;
            }
            let mut members: Vec<usize> = trial.iter().flat_map(|&g| groups[g].clone()).collect();
            members.push(v);
            if let (Some(cap), Some(t)) = (cap, group_time(&members, &ups, &infos, &pos)) {
                if t > cap {
                    continue;
                }
            }
            chosen = trial;
        }
        let target = match chosen.first() {
            Some(&g) => g,
            None => {
                groups.push(Vec::new());
                groups.len() - 1
            }
        };
        for &g in chosen.iter().skip(1) {
            let moved = std::mem::take(&mut groups[g]);
            for &m in &moved {
                group_of[m] = target;
            }
            groups[target].extend(moved);
        }
        groups[target].push(v);
        group_of[v] = target;
    }
    // Build the allocations in topological order of their first member.
    let mut live: Vec<Vec<usize>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
    for g in &mut live {
        g.sort_by_key(|&i| pos[i]);
    }
    live.sort_by_key(|g| pos[g[0]]);
    let names: HashSet<&str> = steps.iter().map(|s| s.asset.as_str()).collect();
    let mut used: HashSet<String> = HashSet::new();
    let mut alloc_name = vec![String::new(); n];
    let mut out = Vec::new();
    for members in &live {
        let name = if members.len() == 1 {
            steps[members[0]].asset.clone()
        } else {
            let mut name = format!("alloc_{}", steps[members[0]].asset);
            while names.contains(name.as_str()) || used.contains(&name) {
                name.push('_');
            }
            name
        };
        used.insert(name.clone());
        for &m in members {
            alloc_name[m] = name.clone();
        }
        out.push((name, members.clone()));
    }
    out.into_iter()
        .map(|(name, members)| {
            let mut after: Vec<String> = Vec::new();
            for &m in &members {
                for &u in &ups[m] {
                    let a = &alloc_name[u];
                    if *a != name && !after.contains(a) {
                        after.push(a.clone());
                    }
                }
            }
            let assets: Vec<String> = members.iter().map(|&m| steps[m].asset.clone()).collect();
            let step_res: Vec<StepResources> =
                members.iter().map(|&m| infos[m].res.clone()).collect();
            if members.len() == 1 {
                let i = &infos[members[0]];
                return Allocation {
                    name,
                    assets,
                    after,
                    sbatch: i.sbatch.clone(),
                    steps: step_res,
                    note: i.note.clone(),
                };
            }
            Allocation {
                name,
                assets,
                after,
                sbatch: group_sbatch(&members, &ups, &infos, limits, &pos),
                steps: step_res,
                note: None,
            }
        })
        .collect()
}

fn partition_cap(sbatch: &SbatchRequest, limits: &ClusterLimits) -> Option<u64> {
    let p = sbatch
        .partition
        .clone()
        .or_else(|| limits.default_partition.clone())?;
    limits.max_time.get(&p).copied().flatten()
}

/// The steps' topological order (see [`super::order`]).
fn topo(ups: &[Vec<usize>]) -> Vec<usize> {
    // The asset graph rejects cycles before planning; keep the order given.
    super::order::topo_order(ups).unwrap_or_else(|_| (0..ups.len()).collect())
}

/// Members in the run's topological order.
fn ordered(members: &[usize], pos: &[usize]) -> Vec<usize> {
    let mut m = members.to_vec();
    m.sort_by_key(|&i| pos[i]);
    m
}

/// Longest path of the members' times (`None` if a member has no time).
fn group_time(members: &[usize], ups: &[Vec<usize>], infos: &[Info], pos: &[usize]) -> Option<u64> {
    let set: HashSet<usize> = members.iter().copied().collect();
    let mut finish: HashMap<usize, u64> = HashMap::new();
    let mut longest = 0;
    for m in ordered(members, pos) {
        let t = infos[m].res.time?.seconds;
        let start = ups[m]
            .iter()
            .filter(|u| set.contains(u))
            .map(|u| finish[u])
            .max()
            .unwrap_or(0);
        finish.insert(m, start + t);
        longest = longest.max(start + t);
    }
    Some(longest)
}

/// Depth of each member (longest chain of member upstreams).
fn depths(members: &[usize], ups: &[Vec<usize>], pos: &[usize]) -> HashMap<usize, usize> {
    let set: HashSet<usize> = members.iter().copied().collect();
    let mut depth = HashMap::new();
    for m in ordered(members, pos) {
        let d = ups[m]
            .iter()
            .filter(|u| set.contains(u))
            .map(|u| depth[u] + 1)
            .max()
            .unwrap_or(0);
        depth.insert(m, d);
    }
    depth
}

fn group_sbatch(
    members: &[usize],
    ups: &[Vec<usize>],
    infos: &[Info],
    limits: &ClusterLimits,
    pos: &[usize],
) -> SbatchRequest {
    let lead = &infos[members[0]];
    let depth = depths(members, ups, pos);
    let max_depth = depth.values().copied().max().unwrap_or(0);
    let level_max = |f: &dyn Fn(&Info) -> u64| -> (u64, u64) {
        let largest = members.iter().map(|&m| f(&infos[m])).max().unwrap_or(0);
        let widest = (0..=max_depth)
            .map(|d| {
                members
                    .iter()
                    .filter(|m| depth[m] == d)
                    .map(|&m| f(&infos[m]))
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0);
        (largest, widest)
    };
    let (largest, widest) = level_max(&|i| i.res.cpus as u64);
    let cpus = match limits.node_cpus {
        Some(cap) => widest.min(cap as u64).max(largest),
        None => widest,
    };
    let mem = lead.res.mem_mb.map(|_| {
        let (largest, widest) = level_max(&|i| i.res.mem_mb.unwrap_or(0));
        let mb = match limits.node_mem_mb {
            Some(cap) => widest.min(cap).max(largest),
            None => widest,
        };
        format!("{mb}M")
            .parse::<MemSize>()
            .expect("a number of megabytes")
    });
    // GPUs are not summed: the node's count is unknown; steps share in turn.
    let gpus = lead.res.gpus.as_ref().map(|g| Gpus {
        kind: g.kind.clone(),
        count: members
            .iter()
            .filter_map(|&m| infos[m].res.gpus.as_ref().map(|g| g.count))
            .max()
            .unwrap_or(1),
    });
    SbatchRequest {
        partition: lead.sbatch.partition.clone(),
        account: lead.sbatch.account.clone(),
        qos: lead.sbatch.qos.clone(),
        constraint: lead.sbatch.constraint.clone(),
        time: group_time(members, ups, infos, pos).map(|seconds| SlurmTime { seconds }),
        nodes: Some(1),
        ntasks: Some(1),
        cpus_per_task: Some(cpus as u32),
        mem,
        gpus,
        requeue: lead.sbatch.requeue,
    }
}

// Kept by hand: a reachability question specific to merging groups, a few
// lines of DFS, clearer than building a petgraph graph per candidate.
/// Would merging groups `merge` with the new step `v` keep the allocations'
/// graph acyclic? Cyclic iff some other group H is reachable from a merged
/// group and reaches a merged group or feeds `v`.
fn acyclic_merge(
    merge: &[usize],
    v: usize,
    ups: &[Vec<usize>],
    group_of: &[usize],
    n_groups: usize,
) -> bool {
    // Group-level edges among the steps placed so far.
    let mut downs: Vec<HashSet<usize>> = vec![HashSet::new(); n_groups];
    for (i, us) in ups.iter().enumerate() {
        let gi = group_of[i];
        if gi == usize::MAX {
            continue;
        }
        for &u in us {
            let gu = group_of[u];
            if gu != usize::MAX && gu != gi {
                downs[gu].insert(gi);
            }
        }
    }
    let merged: HashSet<usize> = merge.iter().copied().collect();
    let feeds_v: HashSet<usize> = ups[v].iter().map(|&u| group_of[u]).collect();
    // Groups reachable from the merged set through groups outside it.
    let mut seen: HashSet<usize> = HashSet::new();
    let mut stack: Vec<usize> = merge
        .iter()
        .flat_map(|&g| downs[g].iter().copied())
        .filter(|h| !merged.contains(h))
        .collect();
    while let Some(h) = stack.pop() {
        if !seen.insert(h) {
            continue;
        }
        if feeds_v.contains(&h) {
            return false;
        }
        for &d in &downs[h] {
            if merged.contains(&d) {
                return false;
            }
            stack.push(d);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::limits::ClusterLimits;

    fn step(asset: &str, after: &[&str], flags: &[(&'static str, &str)]) -> StepRequest {
        StepRequest {
            asset: asset.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            sbatch: {
                let mut r = SbatchRequest::default();
                for (n, v) in flags {
                    r.set(n, v).unwrap();
                }
                r
            },
            own_job: false,
            env: None,
        }
    }

    fn limits() -> ClusterLimits {
        ClusterLimits::from_sinfo("debug*|1:00:00|2|22900\nlong|7-00:00:00|2|22900\n")
    }

    fn shape(a: &[Allocation]) -> Vec<(Vec<&str>, Vec<&str>)> {
        a.iter()
            .map(|a| {
                (
                    a.assets.iter().map(String::as_str).collect(),
                    a.after.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    fn flag(a: &Allocation, name: &str) -> Option<String> {
        a.sbatch
            .flags()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn sinfo_limits() {
        let l = limits();
        assert_eq!(l.default_partition.as_deref(), Some("debug"));
        assert_eq!(l.max_time["debug"], Some(3600));
        assert_eq!(l.max_time["long"], Some(7 * 86400));
        assert_eq!(l.node_cpus, Some(2));
        assert_eq!(l.node_mem_mb, Some(22900));
        let l = ClusterLimits::from_sinfo("gpu|infinite|64+|512000\n");
        assert_eq!(l.max_time["gpu"], None);
        assert_eq!(l.node_cpus, Some(64));
        assert_eq!(l.default_partition, None);
    }

    #[test]
    fn chain_is_one_job_with_summed_time() {
        let t: &[(&str, &str)] = &[("time", "00:05:00"), ("cpus-per-task", "1")];
        let mut steps = vec![step("s0", &[], t)];
        for i in 1..10 {
            steps.push(step(&format!("s{i}"), &[&format!("s{}", i - 1)], t));
        }
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].assets.len(), 10);
        assert!(a[0].is_group());
        assert_eq!(a[0].name, "alloc_s0");
        assert_eq!(a[0].time().as_deref(), Some("00:50:00"));
        assert_eq!(flag(&a[0], "cpus-per-task").as_deref(), Some("1"));
        // per-asset: ten jobs chained
        let p = plan_allocations(&steps, JobGrouping::PerAsset, &limits());
        assert_eq!(p.len(), 10);
        assert_eq!(p[3].assets, ["s3"]);
        assert_eq!(p[3].after, ["s2"]);
        assert_eq!(p[3].name, "s3");
        assert_eq!(p[3].time().as_deref(), Some("00:05:00"));
    }

    #[test]
    fn diamond_time_is_the_longest_path_and_cpus_the_widest_level() {
        let steps = vec![
            step("a", &[], &[("time", "00:10:00")]),
            step("b", &["a"], &[("time", "00:20:00")]),
            step("c", &["a"], &[("time", "00:05:00"), ("cpus-per-task", "1")]),
            step("d", &["b", "c"], &[("time", "00:10:00")]),
        ];
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(shape(&a), [(vec!["a", "b", "c", "d"], vec![])]);
        assert_eq!(a[0].time().as_deref(), Some("00:40:00"));
        assert_eq!(flag(&a[0], "cpus-per-task").as_deref(), Some("2"));
        assert_eq!(flag(&a[0], "mem").as_deref(), None);
        // the node's 2 CPUs cap the sum, the largest step wins over the cap
        let steps = vec![
            step("a", &[], &[("cpus-per-task", "2")]),
            step("b", &[], &[("cpus-per-task", "2")]),
            step("z", &["a", "b"], &[("cpus-per-task", "3")]),
        ];
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(a.len(), 1);
        assert_eq!(flag(&a[0], "cpus-per-task").as_deref(), Some("3"));
        assert_eq!(
            a[0].time().as_deref(),
            None,
            "no step has a time: none is set"
        );
    }

    #[test]
    fn memory_is_summed_over_parallel_steps_when_given() {
        let steps = vec![
            step("a", &[], &[("mem", "1G")]),
            step("b", &[], &[("mem", "500M")]),
            step("c", &["a", "b"], &[("mem", "1200M")]),
        ];
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(a.len(), 1);
        assert_eq!(flag(&a[0], "mem").as_deref(), Some("1524M"));
        assert_eq!(a[0].steps[0].mem_mb, Some(1024));
    }

    #[test]
    fn fan_in_of_roots_is_one_job() {
        let mut steps: Vec<StepRequest> =
            (0..49).map(|i| step(&format!("r{i}"), &[], &[])).collect();
        let roots: Vec<String> = (0..49).map(|i| format!("r{i}")).collect();
        let refs: Vec<&str> = roots.iter().map(String::as_str).collect();
        steps.push(step("sink", &refs, &[]));
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(a.len(), 1, "{:?}", shape(&a));
        assert_eq!(a[0].assets.len(), 50);
        assert_eq!(a[0].assets.last().map(String::as_str), Some("sink"));
        assert_eq!(
            flag(&a[0], "cpus-per-task").as_deref(),
            Some("2"),
            "capped by the node"
        );
    }

    #[test]
    fn incompatible_requests_and_own_job_are_separate_jobs() {
        let mut steps = vec![
            step("a", &[], &[("partition", "debug")]),
            step("b", &["a"], &[]), // default partition is debug: compatible
            step("c", &["b"], &[("partition", "long")]),
            step("d", &["c"], &[("partition", "debug")]),
            step("e", &["d"], &[("partition", "debug"), ("mem", "1G")]),
            step("f", &["d"], &[("partition", "debug"), ("account", "x")]),
            step("g", &["d"], &[]),
        ];
        steps.push(StepRequest {
            own_job: true,
            env: None,
            ..step("h", &["g"], &[])
        });
        steps.push(step("i", &["h"], &[("nodes", "2")]));
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(
            shape(&a),
            [
                (vec!["a", "b"], vec![]),
                (vec!["c"], vec!["alloc_a"]),
                (vec!["d", "g"], vec!["c"]),
                (vec!["e"], vec!["alloc_d"]),
                (vec!["f"], vec!["alloc_d"]),
                (vec!["h"], vec!["alloc_d"]),
                (vec!["i"], vec!["h"]),
            ]
        );
        assert_eq!(a[5].note.as_deref(), Some("--own-job"));
        assert_eq!(flag(&a[1], "partition").as_deref(), Some("long"));
        assert_eq!(flag(&a[0], "partition").as_deref(), Some("debug"));
    }

    #[test]
    fn no_cycle_through_another_job() {
        // a -> x(long) -> c, and a -> c: c cannot join a's job (a's job
        // would wait for x, which waits for a's job).
        let steps = vec![
            step("a", &[], &[]),
            step("x", &["a"], &[("partition", "long")]),
            step("c", &["a", "x"], &[]),
            step("d", &["c"], &[]),
        ];
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(
            shape(&a),
            [
                (vec!["a"], vec![]),
                (vec!["x"], vec!["a"]),
                (vec!["c", "d"], vec!["a", "x"]),
            ]
        );
        // Fan-in of two groups where one reaches the other through a third job.
        let steps = vec![
            step("p", &[], &[]),
            step("q", &["p"], &[("partition", "long")]),
            step("r", &["q"], &[]),
            step("s", &["p", "r"], &[]),
        ];
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(a.len(), 3, "{:?}", shape(&a));
        let s_job = a
            .iter()
            .find(|x| x.assets.contains(&"s".to_string()))
            .unwrap();
        assert!(s_job.assets.contains(&"r".to_string()), "{:?}", shape(&a));
        assert!(!s_job.assets.contains(&"p".to_string()), "{:?}", shape(&a));
    }

    #[test]
    fn partition_time_cap_splits_the_group() {
        let t: &[(&str, &str)] = &[("time", "00:25:00")];
        let steps: Vec<StepRequest> = (0..5)
            .map(|i| {
                let up = format!("s{}", i.max(1) - 1);
                let after: Vec<&str> = if i == 0 { vec![] } else { vec![&up] };
                step(&format!("s{i}"), &after, t)
            })
            .collect();
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(
            shape(&a),
            [
                (vec!["s0", "s1"], vec![]),
                (vec!["s2", "s3"], vec!["alloc_s0"]),
                (vec!["s4"], vec!["alloc_s2"]),
            ]
        );
        assert_eq!(a[0].time().as_deref(), Some("00:50:00"));
        assert_eq!(a[2].time().as_deref(), Some("00:25:00"));
        // the long partition (7 days) takes them all
        let steps: Vec<StepRequest> = steps
            .into_iter()
            .map(|mut s| {
                s.sbatch.partition = Some("long".into());
                s
            })
            .collect();
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].time().as_deref(), Some("02:05:00"));
    }

    #[test]
    fn group_names_do_not_clash_with_assets() {
        let steps = vec![
            step("x", &[], &[]),
            step("y", &["x"], &[]),
            step("alloc_x", &[], &[("partition", "long")]),
        ];
        let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
        let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alloc_x_", "alloc_x"]);
    }
}
