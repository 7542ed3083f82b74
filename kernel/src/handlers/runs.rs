//! Run magics: `%runs` lists runs; `%attach [RUN]` follows a Slurm run
//! again after a kernel restart (from the saved output offsets);
//! `%cancel [RUN]` cancels a Slurm run's jobs; `%load NAME` binds a stored
//! value (fetched from the cluster when it is there) in the session.

use super::errors::{magic_error, run_error, state_error};
use super::execute::CellResult;
use super::materialize::run_result;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::{ErrorInfo, ExecOutcome};
use crate::render::{table_bundle, JupyterEvents};
use slurmbook_magics::exec::local;
use slurmbook_magics::run::RunIo;
use slurmbook_magics::views;
use slurmbook_magics::{Run, RunId, RunStatus};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

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
        let triggers = db.run_triggers().map_err(state_error)?;
        let table = views::runs_table(&runs, |id| db.run_assets(id).unwrap_or_default(), &triggers);
        out.display(table_bundle(&table), None);
        Ok(CellResult::none())
    }

    /// Imports what the notebook's schedules did on the cluster (only when
    /// it has some); an unreachable cluster is a warning on stderr.
    pub(super) async fn sync_schedules(&mut self, out: &CellOutput<'_>) {
        if self.workspace.schedules().map_or(true, |s| s.is_empty()) {
            return;
        }
        let (imported, warnings) = self.workspace.sync_schedules().await;
        for w in warnings {
            out.stream("stderr", &format!("{w}\n"));
        }
        if imported > 0 {
            out.stream(
                "stdout",
                &format!("{imported} scheduled run(s) imported from the cluster\n"),
            );
        }
    }

    /// `%attach [RUN]`.
    pub(super) async fn attach_magic(
        &mut self,
        run: Option<RunId>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let Some(run) = self
            .workspace
            .slurm_run(run)
            .map_err(|e| magic_error(format!("%attach: {e}")))?
        else {
            return Err(magic_error(
                "%attach: no Slurm run is in progress; %runs lists the runs",
            ));
        };
        if ended(
            &run,
            out,
            "its output was shown by the cell that ran it and its results are in %runs and %assets",
        ) {
            return Ok(CellResult::none());
        }
        self.cancel.store(false, Ordering::SeqCst);
        let events = JupyterEvents::new(out);
        let io = RunIo {
            emit: &events,
            cancel: &self.cancel,
            gate: &self.output_gate,
        };
        let summary = self
            .workspace
            .attach(&run, io)
            .await
            .map_err(|e| run_error(&format!("%attach {}", run.id), e))?;
        run_result(&summary, &events, true)
    }

    /// `%cancel [RUN]`.
    pub(super) async fn cancel_magic(
        &mut self,
        run: Option<RunId>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let Some(run) = self
            .workspace
            .slurm_run(run)
            .map_err(|e| magic_error(format!("%cancel: {e}")))?
        else {
            out.stream(
                "stdout",
                "no Slurm run is in progress (interrupt a cell to stop the run it is doing)\n",
            );
            return Ok(CellResult::none());
        };
        if ended(&run, out, "nothing to cancel") {
            return Ok(CellResult::none());
        }
        let jobs = self
            .workspace
            .cancel(&run)
            .await
            .map_err(|e| run_error(&format!("%cancel {}", run.id), e))?;
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
        Ok(CellResult::none())
    }

    /// `%load NAME`: binds a stored value in the session with its type.
    pub(super) async fn load_magic(
        &mut self,
        name: &str,
        partition: Option<&str>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let magic = format!("%load {name}");
        let (last, type_name) = match partition {
            Some(key) => self.workspace.stored_partition(name, key),
            None => self.workspace.stored_value(name),
        }
        .map_err(|e| run_error("%load", e))?;
        // One partition is bound as NAME_KEY (`sim[2024-01]`: `sim_2024_01`).
        let (shown, name) = match partition {
            Some(key) => (
                format!("{name}[{key}]"),
                format!("{name}_{}", key.replace(['.', '-'], "_")),
            ),
            None => (name.to_string(), name.to_string()),
        };
        let name = name.as_str();
        let path = self
            .workspace
            .value_file(&last)
            .await
            .map_err(|e| run_error(&magic, e))?;
        let (tx, _rx) = mpsc::unbounded_channel();
        if let ExecOutcome::Error(e) = self
            .engine
            .execute(":dep serde_json = \"1\"", tx, false)
            .await
        {
            return Err(e);
        }
        let code = local::load_code(name, &type_name, &path);
        self.run_rust(&code, out, false).await?;
        out.stream(
            "stdout",
            &format!(
                "loaded {shown}{}: {type_name} (materialized {})\n",
                if partition.is_some() {
                    format!(" as {name}")
                } else {
                    String::new()
                },
                views::location(&last)
            ),
        );
        Ok(CellResult::none())
    }
}
