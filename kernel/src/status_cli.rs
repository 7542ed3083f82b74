//! `slurmbook status NOTEBOOK [--json]`: every asset's freshness policy
//! state now (PASS, WARN, FAIL, UNKNOWN), for cron and CI: exits 0 when
//! nothing is FAIL, [`EXIT_FAIL`] when something is. Evaluating remembers
//! the states and runs the `notify` command for assets that newly FAIL
//! (waited for before exiting).

use anyhow::{Context, Result};
use slurmbook_magics::draw::table;
use slurmbook_magics::run::Workspace;
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit code when an asset FAILs its freshness policy.
pub const EXIT_FAIL: u8 = 3;

pub fn status(notebook: PathBuf, json: bool) -> Result<ExitCode> {
    let path = std::path::absolute(&notebook)?;
    anyhow::ensure!(path.is_file(), "no notebook at {}", path.display());
    let mut workspace = Workspace::for_notebook(path);
    let project = workspace
        .project()
        .with_context(|| format!("reading {}", notebook.display()))?;
    let report = workspace.freshness_report(&project, chrono::Utc::now())?;
    workspace.wait_for_notifications();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if report.assets.is_empty() {
            println!("no asset has a freshness policy (--freshness WINDOW)");
        } else {
            print!("{}", table::text(&report.table()));
        }
        println!("{}", report.summary());
        if !report.newly_failed.is_empty() {
            println!("newly failing: {}", report.newly_failed.join(", "));
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAIL)
    })
}
