//! The upstream age guard (`--max-upstream-age 12h`): before an asset runs,
//! every upstream's value must be younger than that. Applied to a plan
//! before it is shown or run:
//!
//! * an upstream the run computes anyway is fine;
//! * an upstream the run selects but would skip (fresh code) is refreshed
//!   first: it runs, before the asset, as any selected upstream;
//! * an upstream outside the run whose value is too old (or missing) keeps
//!   the asset from running: its step becomes [`Action::Refused`], with the
//!   upstream and its age in `why`; so do the assets that run after it.
//!
//! Only data dependencies count (an order-only `--deps` upstream has no
//! value). The executors record refused steps as skipped, with the reason.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{human_duration, value_time};
use crate::plan::{Action, Plan};
use crate::project::Project;
use crate::state::Materialization;

/// Applies every `--max-upstream-age` of the plan's assets (see the module).
pub fn guard_upstream_age(
    plan: &mut Plan,
    project: &Project,
    successes: &HashMap<String, Materialization>,
    now: DateTime<Utc>,
) {
    let position: HashMap<String, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.asset.clone(), i))
        .collect();
    // Downstream first, so that an upstream refreshed for its dependent is
    // then guarded itself.
    for i in (0..plan.steps.len()).rev() {
        if plan.steps[i].action != Action::Run {
            continue;
        }
        let name = plan.steps[i].asset.clone();
        let Some(max) = project
            .asset(&name)
            .and_then(|a| a.options.max_upstream_age)
        else {
            continue;
        };
        let mut refresh = Vec::new();
        let mut refusal = None;
        for (up, kind) in project.graph.dependencies(&name) {
            if !kind.carries_data() {
                continue;
            }
            let age = successes.get(up).map(|m| now - value_time(m));
            let too_old = age.is_none_or(|a| a >= max.duration());
            match position.get(up) {
                Some(&u) if plan.steps[u].action == Action::Skip && too_old => {
                    refresh.push((u, age));
                }
                Some(_) => {}
                None if too_old && refusal.is_none() => {
                    refusal = Some(match age {
                        Some(age) => format!(
                            "upstream {up} is {} old, over --max-upstream-age {max}",
                            human_duration(age)
                        ),
                        None => {
                            format!(
                                "upstream {up} was never materialized (--max-upstream-age {max})"
                            )
                        }
                    });
                }
                None => {}
            }
        }
        if let Some(why) = refusal {
            let step = &mut plan.steps[i];
            step.action = Action::Refused;
            step.why = why;
            continue;
        }
        for (u, age) in refresh {
            let step = &mut plan.steps[u];
            step.action = Action::Run;
            step.why = match age {
                Some(age) => format!(
                    "{} old, over --max-upstream-age {max} of {name}",
                    human_duration(age)
                ),
                None => format!("never materialized, needed by {name}"),
            };
        }
    }
    // What runs after a refused asset cannot run either.
    let mut refused: HashSet<String> = HashSet::new();
    for step in &mut plan.steps {
        if step.action == Action::Refused {
            refused.insert(step.asset.clone());
        } else if step.action == Action::Run {
            if let Some(up) = step.after.iter().find(|u| refused.contains(*u)) {
                step.why = format!("upstream {up} is not run");
                step.action = Action::Refused;
                refused.insert(step.asset.clone());
            }
        }
    }
}
