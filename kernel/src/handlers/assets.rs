//! Asset magics: `%%asset` and `%%check` cells, `%assets`, `%graph`,
//! `%materialize`, `%load`, `%runs`, `%attach`, `%cancel`, `%config`.
//! Every command validates fully before it changes anything.

use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::assets::session::EngineSession;
use crate::assets::views::{self, Snapshot};
use crate::engine::{ErrorInfo, ExecOutcome};
use crate::protocol::MimeBundle;
use crate::render::{table_bundle, JupyterEvents};
use serde_json::Value;
use slurmbook_magics::draw::graph;
use slurmbook_magics::events::{Emit, Event, RunSummary, Stream};
use slurmbook_magics::exec::cluster;
use slurmbook_magics::exec::local::{self, check_code, LocalRun};
use slurmbook_magics::plan::{self, Action, Plan, Step};
use slurmbook_magics::syntax::{AssetCell, CheckCell};
use slurmbook_magics::transport::Transport;
use slurmbook_magics::{MaterializeArgs, Project, RunStatus, Selection, Target};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

pub(super) fn magic_error(message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("MagicError", message)
}

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
    pub(super) fn project(&self) -> Result<Project, ErrorInfo> {
        self.workspace
            .project()
            .map_err(|e| ErrorInfo::new("AssetError", e.to_string()))
    }

    fn snapshot(&mut self, project: &Project) -> Result<Snapshot, ErrorInfo> {
        let db = self.workspace.db().map_err(state_error)?;
        db.sync_assets(&project.asset_rows()).map_err(state_error)?;
        Ok(Snapshot {
            freshness: project.staleness(db).map_err(state_error)?,
            latest: db.latest_all().map_err(state_error)?,
            successes: db.last_successes().map_err(state_error)?,
        })
    }

    /// What inspecting an asset's name shows: deps, state, last materialization.
    pub(super) fn describe_asset(&mut self, name: &str) -> Option<String> {
        let project = self.project().ok()?;
        let spec = project.asset(name)?.clone();
        let snap = self.snapshot(&project).ok()?;
        let status = snap.status(name);
        let deps: Vec<&str> = project
            .graph
            .dependencies(name)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let dependents: Vec<&str> = project
            .graph
            .dependents(name)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let mut text = format!("asset {name}");
        if let Some(ty) = &spec.type_annotation {
            text.push_str(&format!(": {ty}"));
        }
        text.push_str(&format!(
            "
  deps:       {}
  dependents: {}
  state:      {}{}
",
            if deps.is_empty() {
                "none".to_string()
            } else {
                deps.join(", ")
            },
            if dependents.is_empty() {
                "none".to_string()
            } else {
                dependents.join(", ")
            },
            status.state,
            if status.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", status.why)
            },
        ));
        match snap.successes.get(name) {
            Some(m) => text.push_str(&format!(
                "  last:       {} on {}{}
",
                m.finished_at
                    .unwrap_or(m.started_at)
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S"),
                views::location(m),
                m.metadata
                    .get("type")
                    .and_then(Value::as_str)
                    .map(|t| format!(", type {t}"))
                    .unwrap_or_default(),
            )),
            None => text.push_str("  last:       never materialized\n"),
        }
        Some(text)
    }

    /// Records an executed asset or check cell over the saved notebook, only
    /// if the project still analyses (no cycle, no duplicate): nothing is
    /// half-applied.
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
        let variables: Vec<String> = self
            .engine
            .variables()
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let missing: Vec<&str> = project
            .graph
            .dependencies(&name)
            .into_iter()
            .filter(|(d, kind)| kind.carries_data() && !variables.iter().any(|v| v == d))
            .map(|(d, _)| d)
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
        let version = project
            .versions
            .get(&name)
            .map(|v| v.version.clone())
            .unwrap_or_default();
        let plan = Plan {
            selection: name.clone(),
            force: true,
            steps: vec![Step {
                asset: name.clone(),
                action: Action::Run,
                target: Target::Local,
                why: "cell run".into(),
                after: Vec::new(),
                version,
                checks: project.checks_of(&name).map(|c| c.name.clone()).collect(),
            }],
            jobs: None,
            allocations: Vec::new(),
        };
        let summary = self
            .run_local(&project, &plan, &CellEvents { out }, None)
            .await?;
        if !summary.failed.is_empty() || !summary.cancelled.is_empty() {
            return Err(self.asset_error(&name, summary.cancelled.contains(&name)));
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
        let in_session = self
            .engine
            .variables()
            .await
            .iter()
            .any(|(n, _)| n == asset);
        if !in_session {
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

    /// Runs a plan in the kernel, recording the run.
    async fn run_local(
        &mut self,
        project: &Project,
        plan: &Plan,
        emit: &dyn Emit,
        profile: Option<&str>,
    ) -> Result<RunSummary, ErrorInfo> {
        let store = self.workspace.store();
        self.cancel.store(false, Ordering::SeqCst);
        let mut session = EngineSession {
            engine: self.engine.clone(),
        };
        let ws = &mut self.workspace;
        let db = ws.db().map_err(state_error)?;
        db.sync_assets(&project.asset_rows()).map_err(state_error)?;
        let run_id = db
            .begin_run(&plan.selection, Target::Local, profile)
            .map_err(state_error)?;
        // `db` borrows the workspace; take `prepared` out for the run.
        let mut prepared = std::mem::take(&mut ws.prepared);
        let db = ws.db().map_err(state_error)?;
        let result = local::materialize(LocalRun {
            project,
            plan,
            db,
            store: &store,
            run_id,
            session: &mut session,
            prepared: &mut prepared,
            emit,
            cancel: &self.cancel,
        })
        .await;
        ws.prepared = prepared;
        let db = ws.db().map_err(state_error)?;
        let status = result
            .as_ref()
            .map_or(RunStatus::Failed, RunSummary::status);
        db.finish_run(run_id, status).map_err(state_error)?;
        result.map_err(|e| ErrorInfo::new("MaterializeError", e.to_string()))
    }

    /// The cluster connection of `settings` (reused while the target is the same).
    pub(super) fn remote_for(
        &mut self,
        settings: &slurmbook_magics::config::Settings,
    ) -> Result<std::sync::Arc<slurmbook_magics::exec::slurm::Remote>, ErrorInfo> {
        let target = cluster::ssh_target(settings).map_err(|e| magic_error(e.to_string()))?;
        if let Some((t, remote)) = &self.remote {
            if *t == target {
                return Ok(remote.clone());
            }
        }
        let remote =
            std::sync::Arc::new(slurmbook_magics::exec::slurm::Remote::new(target.clone()));
        self.remote = Some((target, remote.clone()));
        Ok(remote)
    }

    /// Fetches a value from the cluster into the local store (only when asked, by `%load`).
    async fn download_value(
        &mut self,
        name: &str,
        version: &str,
        remote_path: &str,
    ) -> Result<String, ErrorInfo> {
        let store = self.workspace.store();
        if let Ok(local) = store.path_for(name, version, "json") {
            if local.exists() {
                return Ok(local.display().to_string());
            }
        }
        let settings = self
            .workspace
            .settings(None)
            .map_err(|e| magic_error(format!("%load: {e}")))?;
        let remote = self.remote_for(&settings)?;
        let out = remote
            .run(&["cat", remote_path])
            .await
            .map_err(|e| ErrorInfo::new("SlurmError", format!("%load {name}: {e}")))?;
        if !out.success() {
            return Err(ErrorInfo::new(
                "SlurmError",
                format!(
                    "%load {name}: reading {remote_path} on the cluster failed: {}",
                    out.stderr_text().trim()
                ),
            ));
        }
        let local = store
            .write_bytes(name, version, "json", &out.stdout)
            .map_err(|e| ErrorInfo::new("StateError", e.to_string()))?;
        Ok(local.display().to_string())
    }

    /// Runs a plan as Slurm jobs, recording the run.
    async fn run_cluster(
        &mut self,
        project: &Project,
        plan: &Plan,
        settings: &slurmbook_magics::config::Settings,
        emit: &dyn Emit,
        args: &MaterializeArgs,
    ) -> Result<RunSummary, ErrorInfo> {
        let profile = args.profile.as_deref();
        let remote = self.remote_for(settings)?;
        let session_types: std::collections::HashMap<String, String> =
            self.engine.variables().await.into_iter().collect();
        self.cancel.store(false, Ordering::SeqCst);
        let db = self.workspace.db().map_err(state_error)?;
        db.sync_assets(&project.asset_rows()).map_err(state_error)?;
        let run_id = db
            .begin_run(&plan.selection, Target::Slurm, profile)
            .map_err(state_error)?;
        let result = cluster::materialize(cluster::ClusterRun {
            project,
            plan,
            db,
            run_id,
            settings,
            remote: remote.as_ref(),
            session_types: &session_types,
            emit,
            cancel: &self.cancel,
            gate: &self.output_gate,
            repack: args.repack,
        })
        .await;
        let status = result
            .as_ref()
            .map_or(RunStatus::Failed, RunSummary::status);
        db.finish_run(run_id, status).map_err(state_error)?;
        result.map_err(|e| ErrorInfo::new("SlurmError", e.to_string()))
    }

    pub(super) async fn materialize(
        &mut self,
        args: MaterializeArgs,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let project = self.project()?;
        let snap = self.snapshot(&project)?;
        let settings = self
            .workspace
            .settings(args.profile.as_deref())
            .map_err(|e| magic_error(format!("%materialize: {e}")))?;
        let plan = plan::plan(&project, &args, &snap.freshness, settings.target())
            .map_err(|e| magic_error(format!("%materialize: {e}")))?
            .with_profile(&project, &settings);
        let slurm_steps = plan.runs().filter(|s| s.target == Target::Slurm).count();
        if slurm_steps > 0 && slurm_steps < plan.runs().count() {
            let local: Vec<&str> = plan
                .runs()
                .filter(|s| s.target == Target::Local)
                .map(|s| s.asset.as_str())
                .collect();
            return Err(magic_error(format!(
                "%materialize: this selection mixes targets ({} in the kernel, the rest on Slurm); give --target, or materialize them separately",
                local.join(", ")
            )));
        }
        let events = JupyterEvents::new(out);
        events.emit(Event::Planned { plan: plan.clone() });
        if args.dry_run {
            return Ok(CellResult {
                value: None,
                payload: Vec::new(),
            });
        }
        let summary = if slurm_steps > 0 {
            self.run_cluster(&project, &plan, &settings, &events, &args)
                .await?
        } else {
            self.run_local(&project, &plan, &events, args.profile.as_deref())
                .await?
        };
        run_result(&summary, &events, slurm_steps > 0)
    }

    pub(super) fn assets_magic(&mut self, out: &CellOutput<'_>) -> Result<CellResult, ErrorInfo> {
        let project = self.project()?;
        let snap = self.snapshot(&project)?;
        out.display(table_bundle(&views::assets_table(&project, &snap)), None);
        Ok(CellResult {
            value: None,
            payload: Vec::new(),
        })
    }

    pub(super) fn graph_magic(
        &mut self,
        selection: Option<Selection>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let project = self.project()?;
        let snap = self.snapshot(&project)?;
        let names = match &selection {
            Some(sel) => Some(
                project
                    .select(sel, &snap.freshness)
                    .map_err(|e| magic_error(format!("%graph: {e}")))?,
            ),
            None => None,
        };
        let (nodes, edges) = views::graph_parts(&project, names.as_deref(), &snap);
        let mut data = MimeBundle::new();
        data.insert(
            "text/vnd.mermaid".into(),
            Value::String(graph::mermaid(&nodes, &edges)),
        );
        data.insert(
            "image/svg+xml".into(),
            Value::String(graph::svg(&nodes, &edges)),
        );
        data.insert(
            "text/plain".into(),
            Value::String(graph::text(&nodes, &edges)),
        );
        out.display(data, None);
        Ok(CellResult {
            value: None,
            payload: Vec::new(),
        })
    }

    /// `%load NAME`: binds a stored value in the session with its type.
    pub(super) async fn load_magic(
        &mut self,
        name: &str,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let db = self.workspace.db().map_err(state_error)?;
        let last = db
            .last_success(name)
            .map_err(state_error)?
            .ok_or_else(|| magic_error(format!("%load: `{name}` was never materialized")))?;
        let (Some(path), Some(type_name)) = (
            last.value_path.clone(),
            last.metadata
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ) else {
            return Err(magic_error(format!(
                "%load: the value of `{name}` was not stored (its type must implement serde's Serialize, and the notebook needs `:dep serde_json`)"
            )));
        };
        let path = if last.target == Target::Slurm {
            self.download_value(name, &last.version, &path).await?
        } else {
            path
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        if let ExecOutcome::Error(e) = self
            .engine
            .execute(":dep serde_json = \"1\"", tx, false)
            .await
        {
            return Err(e);
        }
        let code = local::load_code(name, &type_name, std::path::Path::new(&path));
        self.run_rust(&code, out, false).await?;
        out.stream(
            "stdout",
            &format!(
                "loaded {name}: {type_name} (materialized {})\n",
                views::location(&last)
            ),
        );
        Ok(CellResult {
            value: None,
            payload: Vec::new(),
        })
    }

    pub(super) fn config_magic(
        &mut self,
        settings: Vec<(String, String)>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        // Validate everything before applying anything.
        for (key, value) in &settings {
            if key == "notebook" {
                if !std::path::Path::new(value).is_file() {
                    return Err(magic_error(format!(
                        "%config notebook: no notebook at {value}"
                    )));
                }
                continue;
            }
            slurmbook_magics::config::validate(key, value).map_err(|e| {
                let also = match e {
                    slurmbook_magics::config::ConfigError::UnknownKey(_) => ", notebook",
                    _ => "",
                };
                magic_error(format!("%config: {e}{also}"))
            })?;
        }
        let mut candidate = self.workspace.config.clone();
        for (key, value) in &settings {
            if key != "notebook" {
                candidate.insert(key.clone(), value.clone());
            }
        }
        let before = std::mem::replace(&mut self.workspace.config, candidate);
        if let Err(e) = self.workspace.settings(None) {
            self.workspace.config = before;
            return Err(magic_error(format!("%config: {e}")));
        }
        for (key, value) in &settings {
            if key == "notebook" {
                let path = self
                    .workspace
                    .set_notebook(std::path::Path::new(value))
                    .map_err(|e| magic_error(format!("%config notebook: {e:#}")))?;
                out.stream("stdout", &format!("notebook = {}\n", path.display()));
            } else {
                out.stream("stdout", &format!("{key} = {value}\n"));
            }
        }
        if settings.is_empty() {
            let notebook = match self.workspace.notebook() {
                Some((path, source)) => {
                    let from = match source {
                        crate::assets::NotebookSource::Environment => "JPY_SESSION_NAME",
                        crate::assets::NotebookSource::Config => "%config",
                        crate::assets::NotebookSource::CommandLine => "command line",
                    };
                    format!("notebook   = {}    ({from})\n", path.display())
                }
                None => "notebook   = (none: JupyterLab sets JPY_SESSION_NAME, or use %config notebook=PATH)\n".into(),
            };
            let settings = self
                .workspace
                .settings(None)
                .map_err(|e| magic_error(format!("%config: {e}")))?;
            let platform = settings
                .get("platform")
                .map(str::to_owned)
                .unwrap_or_else(slurmbook_magics::exec::cluster::local_platform);
            let env = slurmbook_magics::exec::job_env::EnvStatus::of(
                &self.workspace.dir(),
                &settings,
                &platform,
            );
            out.stream(
                "stdout",
                &format!(
                    "{notebook}state      = {}\n{}{}",
                    self.workspace.dir().join(".slurmbook/state.db").display(),
                    settings.render(),
                    env.render()
                ),
            );
        }
        Ok(CellResult {
            value: None,
            payload: Vec::new(),
        })
    }
}

/// The cell's result for a run that ended: an error naming what failed,
/// was skipped or was cancelled (an interrupt is a `KeyboardInterrupt`).
pub(super) fn run_result(
    summary: &RunSummary,
    events: &JupyterEvents<'_>,
    slurm: bool,
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
        return Err(ErrorInfo::new(
            "KeyboardInterrupt",
            format!(
                "the run was interrupted: {} cancelled; evcxr was restarted and the session's variables were lost",
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
    Ok(CellResult {
        value: None,
        payload: Vec::new(),
    })
}

pub(super) fn state_error(e: impl std::fmt::Display) -> ErrorInfo {
    ErrorInfo::new("StateError", e.to_string())
}
