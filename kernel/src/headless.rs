//! `slurmbook run`, `slurmbook attach`/`cancel` and `slurmbook graph`: the
//! run service of `%materialize`, `%attach` and `%cancel` without Jupyter;
//! events rendered on a terminal ([`crate::terminal`]).

use crate::engine::Engine;
use crate::session::EngineSession;
use crate::terminal::TerminalEvents;
use anyhow::{Context, Result};
use slurmbook_magics::draw::graph;
use slurmbook_magics::events::{Emit, Event, RunSummary};
use slurmbook_magics::exec::local::Sessions;
use slurmbook_magics::exec::slurm::OutputGate;
use slurmbook_magics::run::{RunIo, Workspace};
use slurmbook_magics::views;
use slurmbook_magics::{parse_selection, MaterializeArgs, RunId, RunStatus, Target};
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

/// evcxr, started only when assets run in the kernel; Ctrl-C interrupts it.
pub(crate) struct CliSessions {
    pub(crate) session: Option<EngineSession>,
    /// Shared with the Ctrl-C handler.
    pub(crate) started: Arc<Mutex<Option<Engine>>>,
}

impl Sessions for CliSessions {
    type Session = EngineSession;

    fn session(&mut self) -> &mut EngineSession {
        self.session.get_or_insert_with(|| {
            let engine = Engine::start();
            *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
            EngineSession { engine }
        })
    }

    fn existing(&mut self) -> Option<&mut EngineSession> {
        self.session.as_mut()
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub(crate) fn workspace(notebook: &std::path::Path) -> Result<Workspace> {
    Ok(Workspace::for_notebook(std::path::absolute(notebook)?))
}

pub fn run(options: RunOptions) -> Result<ExitCode> {
    let mut workspace = workspace(&options.notebook)?;
    let selection = match &options.select {
        Some(text) => Some(parse_selection(text).map_err(|e| anyhow::anyhow!("--select: {e}"))?),
        None => None,
    };
    let args = MaterializeArgs {
        selection,
        target: options.target,
        profile: options.profile.clone(),
        force: options.force,
        dry_run: options.dry_run,
        jobs: options.jobs,
        repack: options.repack,
    };
    let runtime = runtime()?;
    let planned = runtime
        .block_on(workspace.plan_materialize(&args))
        .with_context(|| format!("planning {}", options.notebook.display()))?;
    let events = TerminalEvents::new(planned.plan.runs().count());
    events.emit(Event::Planned {
        plan: planned.plan.clone(),
    });
    if options.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !planned.has_work() {
        println!("nothing to do: every selected asset is fresh (use --force to run them anyway)");
        return Ok(ExitCode::SUCCESS);
    }
    let result = execute_on_terminal(&runtime, &events, async |sessions, io| {
        workspace.execute(&planned, sessions, io).await
    });
    let summary = result?;
    let code = outcome(&mut workspace, &summary)?;
    if planned.on_slurm() {
        print_transport_stats(&workspace);
        runtime.block_on(workspace.close());
    }
    Ok(code)
}

/// Runs `execute` (the run service's `execute` or `execute_tick`) with the
/// CLI's run I/O: events on the terminal, Ctrl-C cancelling, evcxr started
/// only if an asset runs in the kernel, and its child ended afterwards.
pub(crate) fn execute_on_terminal<T>(
    runtime: &tokio::runtime::Runtime,
    events: &TerminalEvents,
    execute: impl AsyncFnOnce(&mut CliSessions, RunIo<'_>) -> T,
) -> T {
    let cancel = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Mutex::new(None));
    cancel_on_ctrl_c(runtime, &cancel, started.clone());
    let mut sessions = CliSessions {
        session: None,
        started,
    };
    let gate = OutputGate::new();
    let io = RunIo {
        emit: events,
        cancel: &cancel,
        gate: &gate,
    };
    let result = runtime.block_on(execute(&mut sessions, io));
    if let Some(s) = &sessions.session {
        s.engine.kill_child();
    }
    result
}

/// Ctrl-C cancels the run (and interrupts evcxr when assets run in the kernel).
pub(crate) fn cancel_on_ctrl_c(
    runtime: &tokio::runtime::Runtime,
    cancel: &Arc<AtomicBool>,
    engine: Arc<Mutex<Option<Engine>>>,
) {
    let cancel = cancel.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: cancelling the run");
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(engine) = engine.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                engine.interrupt();
            }
        }
    });
}

/// Prints each failed asset's recorded error on stderr; the exit code of the run.
pub(crate) fn outcome(workspace: &mut Workspace, summary: &RunSummary) -> Result<ExitCode> {
    let db = workspace.db()?;
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

/// How much the run asked of its transport: SSH connections, commands and
/// bytes uploaded, or, on a submit host, local commands and bytes copied.
pub(crate) fn print_transport_stats(workspace: &Workspace) {
    if let Some(transport) = workspace.open_transport() {
        let stats = transport.stats();
        if transport.location() == slurmbook_magics::transport::local::LOCATION {
            println!(
                "local: {} command(s), {} byte(s) copied",
                stats.commands, stats.bytes_uploaded
            );
        } else {
            println!(
                "ssh: {} connection(s), {} remote command(s), {} byte(s) uploaded",
                stats.connections, stats.commands, stats.bytes_uploaded
            );
        }
    }
}

/// `slurmbook attach`: follow a Slurm run again (the newest in progress by
/// default) from where its output stopped, or, with `cancel`, `slurmbook
/// cancel`: cancel its jobs.
pub fn attach(notebook: PathBuf, run: Option<RunId>, cancel: bool) -> Result<ExitCode> {
    let mut workspace = workspace(&notebook)?;
    let Some(run) = workspace.slurm_run(run)? else {
        println!("no Slurm run is in progress");
        return Ok(ExitCode::SUCCESS);
    };
    if run.status != RunStatus::Running {
        println!("run {} already ended ({})", run.id, run.status.as_str());
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = runtime()?;
    if cancel {
        let jobs = runtime.block_on(workspace.cancel(&run))?;
        println!("run {} cancelled (scancel {})", run.id, jobs.join(" "));
        runtime.block_on(workspace.close());
        return Ok(ExitCode::SUCCESS);
    }
    let flag = Arc::new(AtomicBool::new(false));
    cancel_on_ctrl_c(&runtime, &flag, Arc::new(Mutex::new(None)));
    let steps = slurmbook_magics::exec::cluster::RemoteRun::load(workspace.db()?, run.id)?
        .jobs
        .len();
    let events = TerminalEvents::new(steps);
    let gate = OutputGate::new();
    let io = RunIo {
        emit: &events,
        cancel: &flag,
        gate: &gate,
    };
    let summary = runtime.block_on(workspace.attach(&run, io))?;
    let code = outcome(&mut workspace, &summary)?;
    runtime.block_on(workspace.close());
    Ok(code)
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Mermaid,
    Svg,
}

pub fn graph(notebook: PathBuf, select: Option<String>, format: GraphFormat) -> Result<ExitCode> {
    let mut workspace = workspace(&notebook)?;
    let project = workspace
        .project()
        .with_context(|| format!("reading {}", notebook.display()))?;
    let snap = workspace.snapshot(&project)?;
    let names = match select {
        Some(text) => {
            let sel = parse_selection(&text).map_err(|e| anyhow::anyhow!("--select: {e}"))?;
            Some(snap.select(&project, &sel)?)
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
