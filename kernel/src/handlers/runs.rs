//! Run magics: `%runs` lists runs; `%attach [RUN]` follows a Slurm run
//! again after a kernel restart (from the saved output offsets);
//! `%cancel [RUN]` cancels a Slurm run's jobs.

use super::assets::{magic_error, run_result, state_error};
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::assets::views;
use crate::engine::ErrorInfo;
use crate::render::{table_bundle, JupyterEvents};
use slurmbook_magics::exec::cluster;
use slurmbook_magics::{Run, RunId, RunStatus};
use std::sync::atomic::Ordering;

fn no_value() -> CellResult {
    CellResult {
        value: None,
        payload: Vec::new(),
    }
}

/// Says so when `run` has ended (and `%attach`/`%cancel` have nothing to do).
fn ended(run: &Run, out: &CellOutput<'_>, what_now: &str) -> bool {
    if run.status == RunStatus::Running {
        return false;
    }
    out.stream(
        "stdout",
        &format!(
            "run {} already ended ({}); {what_now}\n",
            run.id,
            run.status.as_str()
        ),
    );
    true
}

impl RustKernel {
    pub(super) fn runs_magic(&mut self, out: &CellOutput<'_>) -> Result<CellResult, ErrorInfo> {
        let db = self.workspace.db().map_err(state_error)?;
        let runs = db.runs().map_err(state_error)?;
        let table = views::runs_table(&runs, |id| db.run_assets(id).unwrap_or_default());
        out.display(table_bundle(&table), None);
        Ok(no_value())
    }

    /// The run `%attach`/`%cancel` act on (see [`cluster::slurm_run`]).
    fn slurm_run(&mut self, magic: &str, run: Option<RunId>) -> Result<Option<Run>, ErrorInfo> {
        let db = self.workspace.db().map_err(state_error)?;
        cluster::slurm_run(db, run).map_err(|e| magic_error(format!("{magic}: {e}")))
    }

    /// The cluster connection of the run's profile.
    fn remote_of(
        &mut self,
        magic: &str,
        run: &Run,
    ) -> Result<std::sync::Arc<slurmbook_magics::exec::slurm::Remote>, ErrorInfo> {
        let settings = self
            .workspace
            .settings(run.profile.as_deref())
            .map_err(|e| magic_error(format!("{magic}: {e}")))?;
        self.remote_for(&settings)
    }

    /// `%attach [RUN]`.
    pub(super) async fn attach_magic(
        &mut self,
        run: Option<RunId>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let Some(run) = self.slurm_run("%attach", run)? else {
            return Err(magic_error(
                "%attach: no Slurm run is in progress; %runs lists the runs",
            ));
        };
        if ended(
            &run,
            out,
            "its output was shown by the cell that ran it and its results are in %runs and %assets",
        ) {
            return Ok(no_value());
        }
        let remote = self.remote_of("%attach", &run)?;
        self.cancel.store(false, Ordering::SeqCst);
        let events = JupyterEvents::new(out);
        let db = self.workspace.db().map_err(state_error)?;
        let summary = cluster::attach(cluster::AttachRun {
            db,
            run_id: run.id,
            remote: remote.as_ref(),
            emit: &events,
            cancel: &self.cancel,
            gate: &self.output_gate,
        })
        .await
        .map_err(|e| ErrorInfo::new("SlurmError", format!("%attach {}: {e}", run.id)))?;
        db.finish_run(run.id, summary.status())
            .map_err(state_error)?;
        run_result(&summary, &events, true)
    }

    /// `%cancel [RUN]`.
    pub(super) async fn cancel_magic(
        &mut self,
        run: Option<RunId>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let Some(run) = self.slurm_run("%cancel", run)? else {
            out.stream(
                "stdout",
                "no Slurm run is in progress (interrupt a cell to stop the run it is doing)\n",
            );
            return Ok(no_value());
        };
        if ended(&run, out, "nothing to cancel") {
            return Ok(no_value());
        }
        let remote = self.remote_of("%cancel", &run)?;
        let db = self.workspace.db().map_err(state_error)?;
        let jobs = cluster::cancel_run(db, run.id, remote.as_ref())
            .await
            .map_err(|e| ErrorInfo::new("SlurmError", format!("%cancel {}: {e}", run.id)))?;
        db.finish_run(run.id, RunStatus::Cancelled)
            .map_err(state_error)?;
        out.stream(
            "stdout",
            &format!(
                "run {} cancelled (scancel {})\n",
                run.id,
                if jobs.is_empty() {
                    "found no job still running".to_string()
                } else {
                    jobs.join(" ")
                }
            ),
        );
        Ok(no_value())
    }
}
