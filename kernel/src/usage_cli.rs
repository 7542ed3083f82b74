//! `slurmbook runs NOTEBOOK [RUN]` and `slurmbook history NOTEBOOK NAME`:
//! `%runs`, `%runs RUN` and `%history NAME` on a terminal — tables as
//! text, the run's timeline as text (or SVG with `--svg`); `slurmbook log
//! NOTEBOOK NAME`: `%log NAME`, the whole output of an asset's job.

use anyhow::{bail, Result};
use slurmbook_magics::draw::{plot, table, timeline};
use slurmbook_magics::run::Workspace;
use slurmbook_magics::views;
use slurmbook_magics::RunId;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn workspace(notebook: &Path) -> Result<Workspace> {
    let path = std::path::absolute(notebook)?;
    anyhow::ensure!(path.is_file(), "no notebook at {}", path.display());
    let mut workspace = Workspace::for_notebook(path);
    sync_schedules(&mut workspace)?;
    Ok(workspace)
}

/// Imports what the notebook's schedules did on the cluster (as `%runs`
/// does); a schedule that cannot be reached is a warning.
fn sync_schedules(workspace: &mut Workspace) -> Result<()> {
    if workspace.schedules().map_or(true, |s| s.is_empty()) {
        return Ok(());
    }
    let runtime = crate::headless::runtime()?;
    let (imported, warnings) = runtime.block_on(workspace.sync_schedules());
    runtime.block_on(workspace.close());
    for w in warnings {
        eprintln!("{w}");
    }
    if imported > 0 {
        eprintln!("{imported} scheduled run(s) imported from the cluster");
    }
    Ok(())
}

/// Without `run`: the runs. With it: what each asset used, then the timeline.
pub fn runs(notebook: PathBuf, run: Option<RunId>, svg: bool) -> Result<ExitCode> {
    let mut workspace = workspace(&notebook)?;
    let Some(run) = run else {
        let db = workspace.db()?;
        let runs = db.runs()?;
        let triggers = db.run_triggers()?;
        let t = views::runs_table(&runs, |id| db.run_assets(id).unwrap_or_default(), &triggers);
        print!("{}", table::text(&t));
        return Ok(ExitCode::SUCCESS);
    };
    let Some(report) = workspace.run_report(run)? else {
        bail!(
            "there is no run {run} (`slurmbook runs {}` lists them)",
            notebook.display()
        );
    };
    if svg {
        print!("{}", timeline::svg(&report.timeline));
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table::text(&report.table));
    println!();
    print!("{}", timeline::text(&report.timeline));
    Ok(ExitCode::SUCCESS)
}

/// An asset's last materializations (`--svg`: the plots).
pub fn history(notebook: PathBuf, name: String, svg: bool) -> Result<ExitCode> {
    let mut workspace = workspace(&notebook)?;
    let report = workspace.history(&name)?;
    if svg {
        print!("{}", plot::svg(&report.plot));
    } else if report.table.rows.is_empty() {
        println!("{name} was never materialized");
    } else {
        print!("{}", table::text(&report.table));
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole output of `name`'s Slurm job, on stdout as it was written.
pub fn log(notebook: PathBuf, name: String, run: Option<RunId>, stderr: bool) -> Result<ExitCode> {
    use slurmbook_magics::events::Stream;
    use std::io::Write;
    let mut workspace = workspace(&notebook)?;
    let stream = if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let log = runtime.block_on(workspace.job_log(&name, run, stream))?;
    let bytes = std::fs::read(&log.path)?;
    std::io::stdout().write_all(&bytes)?;
    Ok(ExitCode::SUCCESS)
}
