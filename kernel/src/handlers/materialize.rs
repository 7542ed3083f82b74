//! `%materialize`: the run service plans and executes; this renders its
//! events (the plan, a live status table, prefixed output) and turns how the
//! run ended into the cell's result.

use super::errors::run_error;
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;
use crate::render::JupyterEvents;
use crate::session::EngineSession;
use slurmbook_magics::events::{Emit, Event, RunSummary};
use slurmbook_magics::plan::Plan;
use slurmbook_magics::run::RunIo;
use slurmbook_magics::MaterializeArgs;
use std::sync::atomic::Ordering;

impl RustKernel {
    pub(super) async fn materialize(
        &mut self,
        args: MaterializeArgs,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let run = self
            .workspace
            .plan_materialize(&args)
            .await
            .map_err(|e| run_error("%materialize", e))?;
        let events = JupyterEvents::new(out);
        events.emit(Event::Planned {
            plan: run.plan.clone(),
        });
        if args.dry_run {
            return Ok(CellResult::none());
        }
        self.cancel.store(false, Ordering::SeqCst);
        let mut session = EngineSession {
            engine: self.engine.clone(),
        };
        let io = RunIo {
            emit: &events,
            cancel: &self.cancel,
            gate: &self.output_gate,
        };
        // Whether an interrupt restarted evcxr (not when the run was
        // interrupted while it waited for another run, say).
        let epoch = self.engine.epoch();
        let summary = self
            .workspace
            .execute(&run, &mut session, io)
            .await
            .map_err(|e| run_error("%materialize", e))?;
        if events.failures().is_empty() && summary.cancelled.is_empty() {
            if let Some(error) = refused_error(&run.plan, &summary) {
                return Err(error);
            }
        }
        let restarted = self.engine.epoch() != epoch;
        run_result(&summary, &events, run.on_slurm(), restarted)
    }
}

/// The cell's error when assets were not run because an upstream was too
/// old for their `--max-upstream-age` (and nothing failed): which, and why.
fn refused_error(plan: &Plan, summary: &RunSummary) -> Option<ErrorInfo> {
    let refused: Vec<&str> = plan.refused().map(|s| s.asset.as_str()).collect();
    if refused.is_empty() {
        return None;
    }
    Some(ErrorInfo {
        ename: "UpstreamTooOld".into(),
        evalue: format!("not run: {}; {}", refused.join(", "), summary.line()),
        traceback: plan
            .refused()
            .map(|s| format!("{}: {}", s.asset, s.why))
            .collect(),
    })
}

/// The cell's result for a run that ended: an error naming what failed,
/// was skipped or was cancelled (an interrupt is a `KeyboardInterrupt`).
pub(super) fn run_result(
    summary: &RunSummary,
    events: &JupyterEvents<'_>,
    slurm: bool,
    restarted: bool,
) -> Result<CellResult, ErrorInfo> {
    if slurm && !summary.cancelled.is_empty() && events.failures().is_empty() {
        return Err(ErrorInfo::new(
            "KeyboardInterrupt",
            format!(
                "the run was interrupted: its Slurm jobs were cancelled ({})",
                summary.cancelled.join(", ")
            ),
        ));
    }
    if !slurm && !summary.cancelled.is_empty() {
        let session = if restarted {
            "evcxr was restarted and the session's variables were lost"
        } else {
            "the session's variables are kept"
        };
        return Err(ErrorInfo::new(
            "KeyboardInterrupt",
            format!(
                "the run was interrupted: {} cancelled; {session}",
                summary.cancelled.join(", ")
            ),
        ));
    }
    let failures = events.failures();
    if !failures.is_empty() || !summary.skipped.is_empty() {
        let mut traceback: Vec<String> =
            failures.iter().map(|(a, m)| format!("{a}: {m}")).collect();
        if !summary.skipped.is_empty() {
            traceback.push(format!(
                "skipped because of them: {}",
                summary.skipped.join(", ")
            ));
        }
        if !summary.cancelled.is_empty() {
            traceback.push(format!(
                "cancelled because of them: {}",
                summary.cancelled.join(", ")
            ));
        }
        let names: Vec<&str> = failures.iter().map(|(a, _)| a.as_str()).collect();
        return Err(ErrorInfo {
            ename: "MaterializeError".into(),
            evalue: format!("{} failed; {}", names.join(", "), summary.line()),
            traceback,
        });
    }
    Ok(CellResult::none())
}
