//! `%%asset` and `%%check` cells run directly: the asset (or check) alone,
//! in the kernel, against the session's values. The cell is recorded over
//! the saved notebook only if the project still analyses: nothing is
//! half-applied.

use super::errors::{magic_error, run_error};
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::{ErrorInfo, ExecOutcome};
use crate::session::EngineSession;
use serde_json::Value;
use slurmbook_magics::events::{Emit, Event, Stream};
use slurmbook_magics::exec::foreign::bind::bind_stored;
use slurmbook_magics::exec::local::check_code;
use slurmbook_magics::run::RunIo;
use slurmbook_magics::syntax::{AssetCell, CheckCell};
use slurmbook_magics::views;
use slurmbook_magics::Project;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

/// Output of an asset cell run directly: the asset's own output, unprefixed.
struct CellEvents<'a> {
    out: &'a CellOutput<'a>,
}

impl Emit for CellEvents<'_> {
    fn emit(&self, event: Event) {
        match event {
            Event::Output { stream, text, .. } => self.out.stream(
                if stream == Stream::Stderr {
                    "stderr"
                } else {
                    "stdout"
                },
                &text,
            ),
            Event::Display { data, .. } => self.out.display(data.into_iter().collect(), None),
            // Words on the run: waiting for another run computing the asset.
            Event::Notice { text } => self.out.stream("stderr", &format!("{text}\n")),
            Event::Check {
                check,
                passed,
                message,
                ..
            } => {
                let line = match passed {
                    true => format!("check {check} passed\n"),
                    false => format!("check {check} FAILED: {}\n", message.unwrap_or_default()),
                };
                self.out
                    .stream(if passed { "stdout" } else { "stderr" }, &line);
            }
            _ => {}
        }
    }
}

impl RustKernel {
    /// Records an executed asset or check cell over the saved notebook, only
    /// if the project still analyses (no cycle, no duplicate).
    fn record_cell(&mut self, code: &str, cell_id: Option<&str>) -> Result<Project, ErrorInfo> {
        let mut overrides = self.workspace.overrides.clone();
        overrides
            .record(cell_id, None, code)
            .map_err(|e| magic_error(e.to_string()))?;
        let project = self
            .workspace
            .project_with(&overrides)
            .map_err(|e| ErrorInfo::new("AssetError", e.to_string()))?;
        self.workspace.overrides = overrides;
        Ok(project)
    }

    async fn session_variables(&mut self) -> Vec<String> {
        self.engine
            .variables()
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// `%%asset NAME ...`: materializes that asset alone, in the kernel, with
    /// its upstreams' current values from the session.
    pub(super) async fn run_asset_cell(
        &mut self,
        code: &str,
        cell_id: Option<&str>,
        cell: AssetCell,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let project = self.record_cell(code, cell_id)?;
        let name = cell.header.name.clone();
        let variables = self.session_variables().await;
        // A Python or bash asset reads its upstreams' stored values; a Rust
        // asset gets Python and bash upstreams from the store too.
        let foreign = |n: &str| project.asset(n).is_some_and(|a| a.lang().is_foreign());
        let missing: Vec<&str> = project
            .graph
            .dependencies(&name)
            .into_iter()
            .filter(|(d, kind)| kind.carries_data() && !variables.iter().any(|v| v == d))
            .map(|(d, _)| d)
            .filter(|d| !foreign(&name) && !foreign(d))
            .collect();
        if !missing.is_empty() {
            return Err(ErrorInfo::new(
                "MissingUpstream",
                format!(
                    "`{name}` needs {} from upstream, not in this session yet; run `%materialize +{name}` to compute its upstreams and it, or `%load` them",
                    missing.join(", ")
                ),
            ));
        }
        // A cell runs in the kernel: the cluster's settings do not matter.
        let settings = self.workspace.settings(None).unwrap_or_default();
        let run = self
            .workspace
            .plan_cell(project, &name, settings)
            .map_err(|e| run_error(&format!("%%asset {name}"), e))?;
        self.cancel.store(false, Ordering::SeqCst);
        let mut session = EngineSession {
            engine: self.engine.clone(),
        };
        let summary = self
            .workspace
            .execute(
                &run,
                &mut session,
                RunIo {
                    emit: &CellEvents { out },
                    cancel: &self.cancel,
                    gate: &self.output_gate,
                },
            )
            .await
            .map_err(|e| run_error(&format!("%%asset {name}"), e))?;
        if !summary.failed.is_empty() || !summary.cancelled.is_empty() {
            return Err(self.asset_error(&name, summary.cancelled.contains(&name)));
        }
        if let Some(step) = run.plan.refused().next() {
            return Err(ErrorInfo::new(
                "UpstreamTooOld",
                format!("`{name}` was not run: {}", step.why),
            ));
        }
        // A Python or bash value is in the session as its stated type, as a
        // Rust cell's is.
        if run
            .project
            .asset(&name)
            .is_some_and(|a| a.lang().is_foreign())
        {
            let db = self
                .workspace
                .db()
                .map_err(|e| ErrorInfo::new("StateError", e.to_string()))?;
            bind_stored(&run.project, db, &mut session, &name)
                .await
                .map_err(|e| ErrorInfo::new("ValueError", e.message))?;
        }
        // Show the value, as a plain cell would.
        let (tx, _rx) = mpsc::unbounded_channel();
        let value = match self.engine.execute(&name, tx, false).await {
            ExecOutcome::Ok { result } => result,
            ExecOutcome::Error(_) => None,
        };
        Ok(CellResult {
            value,
            payload: Vec::new(),
        })
    }

    /// The error of an asset that failed in a run, with its full traceback.
    fn asset_error(&mut self, name: &str, cancelled: bool) -> ErrorInfo {
        if cancelled {
            return ErrorInfo::new(
                "KeyboardInterrupt",
                format!("materializing {name} was interrupted; evcxr was restarted and the session's variables were lost"),
            );
        }
        let detail = self
            .workspace
            .db()
            .ok()
            .and_then(|db| db.latest(name).ok().flatten())
            .and_then(|m| m.error)
            .unwrap_or_default();
        let lines: Vec<String> = detail.lines().map(str::to_owned).collect();
        let first = lines
            .iter()
            .map(|l| views::strip_ansi(l))
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| "failed".into());
        ErrorInfo {
            ename: "AssetFailed".into(),
            evalue: format!("{name}: {first}"),
            traceback: if lines.is_empty() {
                vec![format!("{name} failed")]
            } else {
                lines
            },
        }
    }

    /// `%%check ASSET [NAME]`: runs the check against the asset's value in the session.
    pub(super) async fn run_check_cell(
        &mut self,
        code: &str,
        cell_id: Option<&str>,
        cell: CheckCell,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        self.record_cell(code, cell_id)?;
        let asset = &cell.header.asset;
        if !self.session_variables().await.iter().any(|n| n == asset) {
            return Err(ErrorInfo::new(
                "MissingUpstream",
                format!("check on `{asset}`: `{asset}` is not in this session; run `%materialize +{asset}` first"),
            ));
        }
        let check_name = cell.header.name.clone().unwrap_or_else(|| "check".into());
        let r = self.run_rust(&check_code(&cell.body), out, false).await?;
        let text = r
            .value
            .as_ref()
            .and_then(|v| v.get("text/plain"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned();
        if text == "None" {
            out.stream("stdout", &format!("check {check_name} on {asset} passed\n"));
            Ok(CellResult {
                value: None,
                payload: Vec::new(),
            })
        } else {
            Err(ErrorInfo::new(
                "CheckFailed",
                format!("check {check_name} on {asset} failed: {text}"),
            ))
        }
    }
}
