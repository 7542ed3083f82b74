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
    /// Those of `after` it waits for task by task instead (`aftercorr`):
    /// a `--partitions-like` array after the array of the asset it is
    /// partitioned like, running the same partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_corr: Vec<String>,
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
    } else if sbatch.array.is_some() {
        // One array job per partitioned asset, chained with the groups.
        (None, Some("job array".to_string()))
    } else if nodes > 1 || ntasks > 1 {
        (None, Some("more than one node or task".to_string()))
    } else {
        let partition = limits
            .partition_of(sbatch.partition.as_deref())
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
            .and_then(|_| limits.max_time_of(infos[v].sbatch.partition.as_deref()));
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
                    after_corr: Vec::new(),
                    sbatch: i.sbatch.clone(),
                    steps: step_res,
                    note: i.note.clone(),
                };
            }
            Allocation {
                name,
                assets,
                after,
                after_corr: Vec::new(),
                sbatch: group_sbatch(&members, &ups, &infos, limits, &pos),
                steps: step_res,
                note: None,
            }
        })
        .collect()
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
        array: None,
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
mod tests;
