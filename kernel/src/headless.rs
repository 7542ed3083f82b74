//! `slurmbook run`, `slurmbook attach`/`cancel` and `slurmbook graph`: the same planning and executors as
//! `%materialize`, without Jupyter; events rendered in a terminal with a
//! progress bar.

use crate::assets::session::EngineSession;
use crate::assets::views::{self, Snapshot};
use crate::assets::AssetWorkspace;
use crate::engine::Engine;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use slurmbook_magics::draw::graph;
use slurmbook_magics::events::{AssetState, Emit, Event, RunSummary, Stream};
use slurmbook_magics::exec::local::{self, LocalRun, Prepared};
use slurmbook_magics::plan;
use slurmbook_magics::{parse_selection, MaterializeArgs, RunId, RunStatus, Target};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub struct RunOptions {
    pub notebook: PathBuf,
    pub select: Option<String>,
    pub force: bool,
    pub profile: Option<String>,
    pub target: Option<Target>,
    pub dry_run: bool,
    /// Pack the job environment afresh and unpack it again on the cluster.
    pub repack: bool,
    pub jobs: Option<slurmbook_magics::JobGrouping>,
}

/// Renders events on a terminal: asset output as prefixed lines above a progress bar.
struct TerminalEvents {
    bar: ProgressBar,
    /// Without a terminal there is no bar: lines go straight to stdout.
    tty: bool,
    line_start: Mutex<HashMap<(String, bool), bool>>,
}

impl TerminalEvents {
    fn new(steps: usize) -> TerminalEvents {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let tty = console_is_tty();
        if !tty {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        TerminalEvents {
            bar,
            tty,
            line_start: Mutex::new(HashMap::new()),
        }
    }

    fn say(&self, line: impl AsRef<str>) {
        if self.tty {
            self.bar.println(line.as_ref());
        } else {
            println!("{}", line.as_ref());
        }
    }
}

impl Emit for TerminalEvents {
    fn emit(&self, event: Event) {
        match event {
            Event::Planned { plan } => {
                self.say(plan.text().trim_end());
                self.bar.set_length(plan.runs().count() as u64);
            }
            Event::State { asset, state } => match &state {
                AssetState::Running { .. } => self.bar.set_message(asset),
                AssetState::Queued { .. } | AssetState::Fresh => {}
                _ => {
                    self.say(format!("{asset:>20}  {}", state.describe()));
                    self.bar.inc(1);
                }
            },
            Event::Output {
                asset,
                stream,
                text,
            } => {
                let mut starts = self.line_start.lock().unwrap();
                let start = starts
                    .entry((asset.clone(), stream == Stream::Stderr))
                    .or_insert(true);
                let text = crate::render::prefix_lines(&asset, &text, start);
                for line in text.lines() {
                    self.say(line);
                }
            }
            Event::Display { asset, data } => {
                let text = data
                    .get("text/plain")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!(
                            "(display: {})",
                            data.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    });
                self.say(format!("[{asset}] {text}"));
            }
            Event::Metadata { .. } => {}
            Event::Check {
                asset,
                check,
                passed,
                message,
            } => self.say(match passed {
                true => format!("{asset:>20}  check {check} passed"),
                false => format!(
                    "{asset:>20}  check {check} FAILED: {}",
                    message.unwrap_or_default()
                ),
            }),
            Event::Finished { summary } => {
                self.bar.finish_and_clear();
                println!("{}", summary.line());
            }
        }
    }
}

pub fn run(options: RunOptions) -> Result<ExitCode> {
    let path = std::path::absolute(&options.notebook)?;
    let mut workspace = AssetWorkspace::for_notebook(path.clone());
    let project = workspace
        .project()
        .with_context(|| format!("reading {}", path.display()))?;
    let selection = match &options.select {
        Some(text) => Some(parse_selection(text).map_err(|e| anyhow::anyhow!("--select: {e}"))?),
        None => None,
    };
    let settings = workspace.settings(options.profile.as_deref())?;
    let args = MaterializeArgs {
        selection,
        target: options.target,
        profile: options.profile.clone(),
        force: options.force,
        dry_run: options.dry_run,
        jobs: options.jobs,
        repack: options.repack,
    };
    let db = workspace.db()?;
    db.sync_assets(&project.asset_rows())?;
    let freshness = project.staleness(db)?;
    let plan = plan::plan(&project, &args, &freshness, settings.target())?
        .with_profile(&project, &settings);
    let slurm_steps = plan.runs().filter(|s| s.target == Target::Slurm).count();
    if slurm_steps > 0 && slurm_steps < plan.runs().count() {
        bail!("this selection mixes targets (kernel and Slurm); give --target, or run them separately");
    }
    let events = TerminalEvents::new(plan.runs().count());
    events.emit(Event::Planned { plan: plan.clone() });
    if options.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if plan.runs().next().is_none() {
        println!("nothing to do: every selected asset is fresh (use --force to run them anyway)");
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    if slurm_steps > 0 {
        cancel_on_ctrl_c(&runtime, &cancel, None);
        return run_on_cluster(
            &mut workspace,
            &project,
            &plan,
            &settings,
            &events,
            &runtime,
            &cancel,
            &args,
        );
    }
    // evcxr warms up only when assets run in the kernel.
    let engine = Engine::start();
    cancel_on_ctrl_c(&runtime, &cancel, Some(engine.clone()));
    let store = workspace.store();
    let db = workspace.db()?;
    let run_id = db.begin_run(&plan.selection, Target::Local, options.profile.as_deref())?;
    let mut session = EngineSession {
        engine: engine.clone(),
    };
    let mut prepared = Prepared::default();
    let result = runtime.block_on(local::materialize(LocalRun {
        project: &project,
        plan: &plan,
        db,
        store: &store,
        run_id,
        session: &mut session,
        prepared: &mut prepared,
        emit: &events,
        cancel: &cancel,
    }));
    engine.kill_child();
    db.finish_run(
        run_id,
        result
            .as_ref()
            .map_or(RunStatus::Failed, RunSummary::status),
    )?;
    let summary = result?;
    let code = outcome(db, &summary)?;
    Ok(code)
}

/// Ctrl-C cancels the run (and interrupts evcxr when assets run in the kernel).
fn cancel_on_ctrl_c(
    runtime: &tokio::runtime::Runtime,
    cancel: &Arc<AtomicBool>,
    engine: Option<Engine>,
) {
    let cancel = cancel.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: cancelling the run");
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(engine) = engine {
                engine.interrupt();
            }
        }
    });
}

/// Prints each failed asset's recorded error on stderr; the exit code of the run.
fn outcome(db: &slurmbook_magics::StateDb, summary: &RunSummary) -> Result<ExitCode> {
    for name in &summary.failed {
        if let Some(m) = db.latest(name)? {
            eprintln!("\n{name} failed:");
            for line in m.error.unwrap_or_default().lines() {
                eprintln!("  {line}");
            }
        }
    }
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `slurmbook attach`: follow a Slurm run again (the newest in progress by
/// default) from where its output stopped, or, with `cancel`, `slurmbook
/// cancel`: cancel its jobs.
pub fn attach(notebook: PathBuf, run: Option<RunId>, cancel: bool) -> Result<ExitCode> {
    use slurmbook_magics::exec::{cluster, slurm::OutputGate};
    use slurmbook_magics::transport::{Remote, Transport};
    let path = std::path::absolute(&notebook)?;
    let mut workspace = AssetWorkspace::for_notebook(path);
    let db = workspace.db()?;
    let Some(run) = cluster::slurm_run(db, run)? else {
        println!("no Slurm run is in progress");
        return Ok(ExitCode::SUCCESS);
    };
    if run.status != RunStatus::Running {
        println!("run {} already ended ({})", run.id, run.status.as_str());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = workspace.settings(run.profile.as_deref())?;
    let remote = Remote::new(cluster::ssh_target(&settings)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let db = workspace.db()?;
    if cancel {
        let jobs = runtime.block_on(cluster::cancel_run(db, run.id, &remote))?;
        db.finish_run(run.id, RunStatus::Cancelled)?;
        println!("run {} cancelled (scancel {})", run.id, jobs.join(" "));
        runtime.block_on(remote.close());
        return Ok(ExitCode::SUCCESS);
    }
    let flag = Arc::new(AtomicBool::new(false));
    cancel_on_ctrl_c(&runtime, &flag, None);
    let steps = cluster::RemoteRun::load(db, run.id)?.jobs.len();
    let events = TerminalEvents::new(steps);
    let result = runtime.block_on(cluster::attach(cluster::AttachRun {
        db,
        run_id: run.id,
        remote: &remote,
        emit: &events,
        cancel: &flag,
        gate: &OutputGate::new(),
    }));
    if let Ok(summary) = &result {
        db.finish_run(run.id, summary.status())?;
    }
    let summary = result?;
    let code = outcome(db, &summary)?;
    runtime.block_on(remote.close());
    Ok(code)
}

/// The Slurm path of `slurmbook run` (e.g. `--profile cluster`): the same
/// executor as `%materialize --target slurm`.
#[allow(clippy::too_many_arguments)]
fn run_on_cluster(
    workspace: &mut AssetWorkspace,
    project: &slurmbook_magics::Project,
    plan: &slurmbook_magics::plan::Plan,
    settings: &slurmbook_magics::config::Settings,
    events: &TerminalEvents,
    runtime: &tokio::runtime::Runtime,
    cancel: &AtomicBool,
    args: &MaterializeArgs,
) -> Result<ExitCode> {
    use slurmbook_magics::exec::{cluster, slurm::OutputGate};
    use slurmbook_magics::transport::{Remote, Transport};
    let profile = args.profile.as_deref();
    let remote = Remote::new(cluster::ssh_target(settings)?);
    let db = workspace.db()?;
    let run_id = db.begin_run(&plan.selection, Target::Slurm, profile)?;
    let session_types = HashMap::new();
    let result = runtime.block_on(cluster::materialize(cluster::ClusterRun {
        project,
        plan,
        db,
        run_id,
        settings,
        remote: &remote,
        session_types: &session_types,
        emit: events,
        cancel,
        gate: &OutputGate::new(),
        repack: args.repack,
    }));
    db.finish_run(
        run_id,
        result
            .as_ref()
            .map_or(RunStatus::Failed, RunSummary::status),
    )?;
    let summary = result?;
    let code = outcome(db, &summary)?;
    let stats = remote.stats();
    println!(
        "ssh: {} connection(s), {} remote command(s), {} byte(s) uploaded",
        stats.connections, stats.commands, stats.bytes_uploaded
    );
    runtime.block_on(remote.close());
    Ok(code)
}

fn console_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Mermaid,
    Svg,
}

pub fn graph(notebook: PathBuf, select: Option<String>, format: GraphFormat) -> Result<ExitCode> {
    let path = std::path::absolute(&notebook)?;
    let mut workspace = AssetWorkspace::for_notebook(path.clone());
    let project = workspace
        .project()
        .with_context(|| format!("reading {}", path.display()))?;
    let db = workspace.db()?;
    let snap = Snapshot {
        freshness: project.staleness(db)?,
        latest: db.latest_all()?,
        successes: db.last_successes()?,
    };
    let names = match select {
        Some(text) => {
            let sel = parse_selection(&text).map_err(|e| anyhow::anyhow!("--select: {e}"))?;
            Some(project.select(&sel, &snap.freshness)?)
        }
        None => None,
    };
    let (nodes, edges) = views::graph_parts(&project, names.as_deref(), &snap);
    let text = match format {
        GraphFormat::Text => graph::text(&nodes, &edges),
        GraphFormat::Mermaid => graph::mermaid(&nodes, &edges),
        GraphFormat::Svg => graph::svg(&nodes, &edges),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
