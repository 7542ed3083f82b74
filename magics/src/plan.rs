//! Plans: what runs, where and in which order, before anything runs.

use crate::exec::slurm::group::{plan_allocations, AllocationView, ClusterLimits, StepRequest};
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
    /// The Slurm jobs the run's Slurm steps would make, from the assets'
    /// own options (the executor plans again with the profile's defaults
    /// and the partitions' time limits).
    #[serde(default)]
    pub allocations: Vec<AllocationView>,
}

impl Plan {
    pub fn runs(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Run)
    }

    pub fn step(&self, asset: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.asset == asset)
    }

    /// A plain-text rendering ("plan: 3 to run, 1 fresh" and one line a step).
    pub fn text(&self) -> String {
        let runs = self.runs().count();
        let mut s = format!(
            "plan for {}: {} to run, {} fresh\n",
            self.selection,
            runs,
            self.steps.len() - runs
        );
        for step in &self.steps {
            let after = if step.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", step.after.join(", "))
            };
            let verb = match step.action {
                Action::Run => format!("run on {} ({})", step.target.as_str(), step.why),
                Action::Skip => "skip (fresh)".to_string(),
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
                    line.push_str(&format!(", after {}", a.after.join(", ")));
                }
                if !a.resources.is_empty() {
                    line.push_str(&format!(" [{}]", a.resources));
                }
                if let Some(note) = &a.note {
                    line.push_str(&format!(" ({note})"));
                }
                s.push_str(&line);
                s.push('\n');
            }
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
/// gave one).
pub fn plan(
    project: &Project,
    args: &MaterializeArgs,
    freshness: &HashMap<String, Freshness>,
    default_target: Target,
) -> Result<Plan, PlanError> {
    let selection_text = args
        .selection
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "*".into());
    let names = match &args.selection {
        Some(sel) => project.select(sel, freshness)?,
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
            }
        })
        .collect::<Vec<Step>>();
    let allocations = slurm_allocations(project, &steps, args.jobs, &AssetOptions::default());
    Ok(Plan {
        selection: selection_text,
        force: args.force,
        steps,
        jobs: args.jobs,
        allocations,
    })
}

impl Plan {
    /// Plan the Slurm jobs again with the profile's sbatch defaults and
    /// grouping (`jobs`), as the executor will (it also caps times by the
    /// partitions' limits, which only the cluster knows).
    pub fn with_profile(mut self, project: &Project, settings: &crate::config::Settings) -> Plan {
        let mode = self.jobs.or_else(|| settings.jobs());
        self.allocations =
            slurm_allocations(project, &self.steps, mode, &settings.sbatch_defaults());
        self
    }
}

/// The Slurm jobs of the plan's Slurm steps (see [`Plan::allocations`]).
fn slurm_allocations(
    project: &Project,
    steps: &[Step],
    jobs: Option<JobGrouping>,
    defaults: &AssetOptions,
) -> Vec<AllocationView> {
    let slurm: std::collections::HashSet<&str> = steps
        .iter()
        .filter(|s| s.action == Action::Run && s.target == Target::Slurm)
        .map(|s| s.asset.as_str())
        .collect();
    let requests: Vec<StepRequest> = steps
        .iter()
        .filter(|s| slurm.contains(s.asset.as_str()))
        .map(|s| {
            let options = project
                .asset(&s.asset)
                .map(|a| a.options.clone())
                .unwrap_or_default();
            StepRequest {
                asset: s.asset.clone(),
                after: s
                    .after
                    .iter()
                    .filter(|u| slurm.contains(u.as_str()))
                    .cloned()
                    .collect(),
                sbatch: crate::exec::cluster::merged_sbatch(&options, defaults),
                own_job: options.own_job,
                env: options.env.clone(),
            }
        })
        .collect();
    plan_allocations(
        &requests,
        jobs.unwrap_or(JobGrouping::Grouped),
        &ClusterLimits::default(),
    )
    .iter()
    .map(AllocationView::from)
    .collect()
}
