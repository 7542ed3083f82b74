//! Plans: what runs, where and in which order, before anything runs — and
//! for Slurm, which jobs: the allocations are planned here once
//! ([`Plan::allocate`]), shown by the dry run and submitted as they are.
//!
//! * [`sbatch`]: [`SbatchRequest`], a job's typed Slurm request, rendered
//!   to `#SBATCH` lines only at submission;
//! * [`alloc`]: the allocation planner (which assets share one job);
//! * [`array_tasks`]: how many partitions each array task runs;
//! * [`limits`]: what the cluster allows, from `sinfo`;
//! * [`order`]: topological order of jobs and steps.

pub mod alloc;
pub mod array_tasks;
pub mod limits;
pub mod order;
pub mod sbatch;

pub use alloc::{plan_allocations, Allocation, StepRequest, StepResources};
pub use limits::ClusterLimits;
pub use sbatch::{ArraySpec, SbatchRequest};

use crate::graph::StateAtom;
use crate::model::JobGrouping;
use crate::model::{AssetOptions, Target};
use crate::project::Project;
use crate::syntax::magic::MaterializeArgs;
use crate::version::Freshness;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Compute the asset.
    Run,
    /// Fresh: keep the last materialization.
    Skip,
    /// Not run, for the reason in the step's `why`: an upstream is older
    /// than the asset's `--max-upstream-age` and not part of the run (or
    /// such an asset is upstream). Recorded as skipped with that reason.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub asset: String,
    pub action: Action,
    pub target: Target,
    /// Why it runs: "never materialized", "code changed", "forced", ...
    pub why: String,
    /// Selected upstreams this step waits for (data and order-only).
    pub after: Vec<String>,
    pub version: String,
    pub checks: Vec<String>,
    /// Fresh because another run materialized it while this one waited
    /// (see [`Plan::reuse`]): in the kernel its value is loaded into the
    /// session, as if this run had computed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// A partitioned asset's partitions: how many, and which of them run.
    #[serde(default)]
    pub partitions: Option<StepPartitions>,
}

/// The partitions of a partitioned asset's step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPartitions {
    /// How many partitions the asset has.
    pub total: usize,
    /// The partitions to run, as (index in the full key list, key): the
    /// missing, failed or stale ones (or the selected ones; all of them
    /// when forced), in key order.
    pub run: Vec<(usize, String)>,
    /// At most this many at once (`--max-parallel`).
    pub max_parallel: Option<u32>,
    /// `--partitions-like NAME`: partition KEY gets NAME's partition KEY.
    pub like: Option<String>,
    /// `--per-task` (`None`: auto; see [`array_tasks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_task: Option<crate::model::PerTask>,
    /// Median run time (ms) of the asset's latest successful partitions on
    /// Slurm, when measured (what `auto` bundles by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical_ms: Option<u64>,
}

impl StepPartitions {
    /// The keys of the partitions to run, in order.
    pub fn run_keys(&self) -> Vec<String> {
        self.run.iter().map(|(_, k)| k.clone()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The selection's text as given (`*` when none).
    pub selection: String,
    pub force: bool,
    /// In topological order.
    pub steps: Vec<Step>,
    /// `%materialize --jobs` (`None`: the profile's `jobs`, else grouped).
    #[serde(default)]
    pub jobs: Option<JobGrouping>,
    /// The Slurm jobs of the run's Slurm steps, as they are submitted (see
    /// [`Plan::allocate`]).
    #[serde(default, deserialize_with = "allocations_or_none")]
    pub allocations: Vec<Allocation>,
    /// What the plan could not take into account (e.g. the partitions' time
    /// limits of an unreachable cluster, in a dry run).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Plans saved by an older slurmbook (for `%attach`) described their jobs
/// differently; following such a run needs only its steps.
fn allocations_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Allocation>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// What planning the Slurm jobs of a run needs beyond the plan's steps.
pub struct AllocationContext<'a> {
    /// The profile's sbatch defaults (what an asset does not say).
    pub defaults: AssetOptions,
    pub grouping: JobGrouping,
    /// The cluster's limits (`sinfo`); the default when unknown.
    pub limits: ClusterLimits,
    /// The pixi environment an asset's job runs in.
    pub env_of: &'a dyn Fn(&crate::model::AssetSpec) -> Option<String>,
}

impl Default for AllocationContext<'_> {
    fn default() -> Self {
        AllocationContext {
            defaults: AssetOptions::default(),
            grouping: JobGrouping::Grouped,
            limits: ClusterLimits::default(),
            env_of: &|a| a.options.env.clone(),
        }
    }
}

impl Plan {
    pub fn runs(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Run)
    }

    pub fn step(&self, asset: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.asset == asset)
    }

    /// The steps that are not run because of an upstream's age (see [`Action::Refused`]).
    pub fn refused(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Refused)
    }

    /// A plain-text rendering ("plan: 3 to run, 1 fresh" and one line a step).
    pub fn text(&self) -> String {
        let runs = self.runs().count();
        let refused = self.refused().count();
        let mut s = format!(
            "plan for {}: {} to run, {} fresh{}\n",
            self.selection,
            runs,
            self.steps.len() - runs - refused,
            if refused > 0 {
                format!(", {refused} not run")
            } else {
                String::new()
            }
        );
        for step in &self.steps {
            let after = if step.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", step.after.join(", "))
            };
            let parts = match (&step.action, &step.partitions) {
                (Action::Run, Some(p)) => {
                    let keys = p.run_keys();
                    format!(
                        " [{} of {} partitions: {}]",
                        keys.len(),
                        p.total,
                        crate::model::partition::abbreviate(&keys, 10)
                    )
                }
                _ => String::new(),
            };
            let verb = match step.action {
                Action::Run => format!("run on {} ({}){parts}", step.target.as_str(), step.why),
                Action::Skip => "skip (fresh)".to_string(),
                Action::Refused => format!("not run: {}", step.why),
            };
            s.push_str(&format!("  {:<24} {verb}{after}\n", step.asset));
        }
        if !self.allocations.is_empty() {
            let assets: usize = self.allocations.iter().map(|a| a.assets.len()).sum();
            let jobs = self.allocations.len();
            s.push_str(&format!(
                "Slurm jobs ({}): {jobs} job{} for {assets} asset{}\n",
                self.jobs.unwrap_or(JobGrouping::Grouped).as_str(),
                if jobs == 1 { "" } else { "s" },
                if assets == 1 { "" } else { "s" },
            ));
            for a in &self.allocations {
                let mut line = if a.assets.len() > 1 {
                    format!(
                        "  job {}: {} steps: {}",
                        a.name,
                        a.assets.len(),
                        a.assets.join(", ")
                    )
                } else {
                    format!("  job {}", a.name)
                };
                if !a.after.is_empty() {
                    let after: Vec<String> = a
                        .after
                        .iter()
                        .map(|x| match a.after_corr.contains(x) {
                            true => format!("{x} (task by task)"),
                            false => x.clone(),
                        })
                        .collect();
                    line.push_str(&format!(", after {}", after.join(", ")));
                }
                let resources = a.sbatch.describe();
                if !resources.is_empty() {
                    line.push_str(&format!(" [{resources}]"));
                }
                if let Some(note) = &a.note {
                    line.push_str(&format!(" ({note})"));
                }
                s.push_str(&line);
                s.push('\n');
            }
        }
        for w in &self.warnings {
            s.push_str(&format!("note: {w}\n"));
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Selection(#[from] crate::graph::SelectionError),
    #[error("no asset matches `{0}`")]
    Empty(String),
}

/// Plans `%materialize` of `args` on `default_target` (from the profile or
/// the command line; an asset's own `--target` wins unless the command line
/// gave one), with the Slurm jobs of the assets' own options (see
/// [`Plan::allocate`] for the profile's defaults and the cluster's limits).
pub fn plan(
    project: &Project,
    args: &MaterializeArgs,
    freshness: &HashMap<String, Freshness>,
    default_target: Target,
) -> Result<Plan, PlanError> {
    let mut plan = plan_steps(project, args, freshness, default_target)?;
    plan.allocate(
        project,
        &AllocationContext {
            grouping: args.jobs.unwrap_or(JobGrouping::Grouped),
            ..AllocationContext::default()
        },
    );
    Ok(plan)
}

/// Running an `%%asset` cell: that asset alone, in the kernel, whatever its
/// freshness, with its upstreams' values as the session has them.
pub fn cell_plan(project: &Project, name: &str) -> Plan {
    Plan {
        selection: name.to_string(),
        force: true,
        steps: vec![Step {
            asset: name.to_string(),
            action: Action::Run,
            target: Target::Local,
            why: "cell run".into(),
            after: Vec::new(),
            version: project
                .versions
                .get(name)
                .map(|v| v.version.clone())
                .unwrap_or_default(),
            checks: project.checks_of(name).map(|c| c.name.clone()).collect(),
            reused: false,
            partitions: None,
        }],
        jobs: None,
        allocations: Vec::new(),
        warnings: Vec::new(),
    }
}

/// The steps of [`plan`], without Slurm jobs.
pub fn plan_steps(
    project: &Project,
    args: &MaterializeArgs,
    freshness: &HashMap<String, Freshness>,
    default_target: Target,
) -> Result<Plan, PlanError> {
    let stale = |atom, name: &str| {
        atom == StateAtom::Stale && freshness.get(name).is_none_or(|f| !f.is_fresh())
    };
    plan_steps_with(project, args, freshness, &stale, default_target)
}

/// [`plan_steps`] with the selection's state atoms (`stale`, `overdue`,
/// `warn`) answered by `is`.
pub fn plan_steps_with(
    project: &Project,
    args: &MaterializeArgs,
    freshness: &HashMap<String, Freshness>,
    is: &dyn Fn(StateAtom, &str) -> bool,
    default_target: Target,
) -> Result<Plan, PlanError> {
    let selection_text = args
        .selection
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "*".into());
    let names = match &args.selection {
        Some(sel) => project.select_states(sel, is)?,
        None => project
            .graph
            .topo_order(project.assets.iter().map(|a| a.name.as_str())),
    };
    if names.is_empty() {
        return Err(PlanError::Empty(selection_text));
    }
    let selected: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let steps = names
        .iter()
        .map(|name| {
            let spec = project.asset(name).expect("selected assets exist");
            let f = freshness.get(name).cloned().unwrap_or(Freshness::Missing);
            let (action, why) = if args.force {
                (Action::Run, "forced".to_string())
            } else if f.is_fresh() {
                (Action::Skip, "fresh".to_string())
            } else {
                let reasons: Vec<String> = f.reasons().iter().map(|r| r.to_string()).collect();
                (Action::Run, reasons.join(", "))
            };
            let target = args
                .target
                .or(spec.options.target)
                .unwrap_or(default_target);
            Step {
                asset: name.clone(),
                action,
                target,
                why,
                after: project
                    .graph
                    .dependencies(name)
                    .into_iter()
                    .map(|(d, _)| d)
                    .filter(|d| selected.contains(d))
                    .map(str::to_owned)
                    .collect(),
                version: project
                    .versions
                    .get(name)
                    .map(|v| v.version.clone())
                    .unwrap_or_default(),
                checks: project.checks_of(name).map(|c| c.name.clone()).collect(),
                reused: false,
                partitions: None,
            }
        })
        .collect::<Vec<Step>>();
    Ok(Plan {
        selection: selection_text,
        force: args.force,
        steps,
        jobs: args.jobs,
        allocations: Vec::new(),
        warnings: Vec::new(),
    })
}

impl Plan {
    /// Plan the Slurm jobs again with the profile's sbatch defaults and
    /// grouping (`jobs`), without the cluster's limits.
    pub fn with_profile(mut self, project: &Project, settings: &crate::config::Settings) -> Plan {
        let grouping = self
            .jobs
            .or_else(|| settings.jobs())
            .unwrap_or(JobGrouping::Grouped);
        self.allocate(
            project,
            &AllocationContext {
                defaults: settings.sbatch_defaults(),
                grouping,
                ..AllocationContext::default()
            },
        );
        self
    }

    /// Marks a step that runs as fresh because another run materialized
    /// it meanwhile (`why` says which), and takes it out of the Slurm jobs:
    /// a job left without assets goes (and out of the others' `afterok`), a
    /// group left with one asset becomes that asset's own job.
    pub fn reuse(&mut self, asset: &str, why: String) {
        let Some(step) = self
            .steps
            .iter_mut()
            .find(|s| s.asset == asset && s.action == Action::Run)
        else {
            return;
        };
        step.action = Action::Skip;
        step.why = why;
        step.reused = true;
        // Old job name -> new name (`None`: gone).
        let mut renamed: HashMap<String, Option<String>> = HashMap::new();
        for a in &mut self.allocations {
            let Some(i) = a.assets.iter().position(|x| x == asset) else {
                continue;
            };
            a.assets.remove(i);
            if i < a.steps.len() {
                a.steps.remove(i);
            }
            match a.assets.as_slice() {
                [] => {
                    renamed.insert(a.name.clone(), None);
                }
                [only] if *only != a.name => {
                    renamed.insert(a.name.clone(), Some(only.clone()));
                    a.name = only.clone();
                }
                _ => {}
            }
        }
        self.allocations.retain(|a| !a.assets.is_empty());
        for a in &mut self.allocations {
            let mut after = Vec::new();
            for u in &a.after {
                let name = match renamed.get(u) {
                    None => Some(u.clone()),
                    Some(n) => n.clone(),
                };
                if let Some(name) = name.filter(|n| !after.contains(n)) {
                    after.push(name);
                }
            }
            a.after = after;
        }
    }

    /// The assets this plan runs on Slurm.
    pub fn slurm_runs(&self) -> impl Iterator<Item = &Step> {
        self.runs().filter(|s| s.target == Target::Slurm)
    }

    /// Plans the Slurm jobs of the plan's Slurm steps (see
    /// [`alloc::plan_allocations`]), replacing any planned before.
    pub fn allocate(&mut self, project: &Project, ctx: &AllocationContext<'_>) {
        let slurm: std::collections::HashSet<&str> =
            self.slurm_runs().map(|s| s.asset.as_str()).collect();
        let bundles = array_tasks::plan_bundles(self, project, ctx);
        let requests: Vec<StepRequest> = self
            .steps
            .iter()
            .filter(|s| slurm.contains(s.asset.as_str()))
            .filter_map(|s| {
                let spec = project.asset(&s.asset)?;
                let mut sbatch = SbatchRequest::for_asset(&spec.options, &ctx.defaults);
                // A partitioned asset: one array job, each task running one
                // or several partitions (see `array_tasks`).
                if let (Some(p), Some(b)) = (&s.partitions, bundles.get(&s.asset)) {
                    sbatch.array = Some(ArraySpec {
                        count: b.tasks(p.run.len() as u32),
                        max_parallel: p.max_parallel,
                        per_task: b.per_task,
                    });
                    if let Some(t) = sbatch.time.as_mut() {
                        t.seconds *= u64::from(b.per_task);
                    }
                }
                Some(StepRequest {
                    asset: s.asset.clone(),
                    after: s
                        .after
                        .iter()
                        .filter(|u| slurm.contains(u.as_str()))
                        .cloned()
                        .collect(),
                    sbatch,
                    own_job: spec.options.own_job,
                    env: (ctx.env_of)(spec),
                })
            })
            .collect();
        self.allocations = plan_allocations(&requests, ctx.grouping, &ctx.limits);
        for a in &mut self.allocations {
            let ([asset], Some(array)) = (a.assets.as_slice(), a.sbatch.array) else {
                continue;
            };
            if let Some(why) = bundles.get(asset).and_then(|b| b.why.as_deref()) {
                a.note = Some(format!(
                    "job array: {} partitions per task, one after another ({why})",
                    array.per_task
                ));
            }
        }
        self.chain_like_arrays();
    }

    /// A `--partitions-like up` array waits for `up`'s array task by task
    /// (`aftercorr`) when both run the same partitions in the same order,
    /// as many per task (task `i` of both runs the same keys); otherwise
    /// for all of it.
    fn chain_like_arrays(&mut self) {
        let steps = &self.steps;
        let run_of = |asset: &str| {
            steps
                .iter()
                .find(|s| s.asset == asset)
                .and_then(|s| s.partitions.as_ref())
        };
        // Task by task needs the same partitions in the same tasks.
        let a_tasks: Vec<(Vec<String>, u32)> = self
            .allocations
            .iter()
            .filter_map(|a| Some((a.assets.clone(), a.sbatch.array?.per_task)))
            .collect();
        for a in &mut self.allocations {
            let [asset] = a.assets.as_slice() else {
                continue;
            };
            let Some(p) = run_of(asset) else { continue };
            let Some(up) = p.like.as_deref() else {
                continue;
            };
            let same = run_of(up).is_some_and(|u| u.run == p.run);
            let per_task = |x: &[String]| {
                a_tasks
                    .iter()
                    .find(|(assets, _)| assets.as_slice() == x)
                    .map(|(_, k)| *k)
            };
            let aligned = per_task(std::slice::from_ref(asset)) == per_task(&[up.to_string()]);
            if same && aligned && a.after.iter().any(|x| x == up) {
                a.after_corr.push(up.to_string());
            }
        }
    }
}
