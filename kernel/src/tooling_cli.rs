//! `slurmbook fmt`, `lint`, `test` and `export`: the notebook's code as
//! maintained code, for CI and pre-commit (the work is done by
//! `slurmbook_magics::tooling`, which `%lint` and `%export` share).

use anyhow::{Context, Result};
use slurmbook_magics::run::Workspace;
use slurmbook_magics::tooling::{self, export, fmt, lint, test};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn workspace(notebook: &Path) -> Result<Workspace> {
    let path = std::path::absolute(notebook)?;
    anyhow::ensure!(path.is_file(), "no notebook at {}", path.display());
    Ok(Workspace::for_notebook(path))
}

/// Exit 1 with `--check` when a cell would change; 2 when a notebook could
/// not be read (the others are still formatted).
pub fn fmt(notebooks: Vec<PathBuf>, check: bool) -> Result<ExitCode> {
    let mut would_change = 0;
    let mut failed = false;
    for notebook in &notebooks {
        let result = workspace(notebook).and_then(|ws| {
            let edition = ws.settings(None)?.edition().to_string();
            Ok(fmt::format_notebook(notebook, &edition, check)?)
        });
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                eprintln!("slurmbook fmt: {}: {error:#}", notebook.display());
                failed = true;
                continue;
            }
        };
        for (cell, why) in &report.unparsable {
            eprintln!("{}: {cell}: not formatted: {why}", notebook.display());
        }
        if report.changed.is_empty() {
            continue;
        }
        would_change += 1;
        let verb = if check {
            "would reformat"
        } else {
            "reformatted"
        };
        println!(
            "{verb} {}: {}",
            notebook.display(),
            report.changed.join(", ")
        );
    }
    let verb = if check {
        "would be reformatted"
    } else {
        "reformatted"
    };
    println!(
        "{would_change} notebook(s) {verb}, {} left unchanged",
        notebooks.len() - would_change
    );
    Ok(if failed {
        ExitCode::from(2)
    } else if check && would_change > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Exit 1 when the crate does not compile, or with `--deny-warnings` when
/// clippy warns.
pub fn lint(notebook: PathBuf, deny_warnings: bool) -> Result<ExitCode> {
    let ws = workspace(&notebook)?;
    let loaded = tooling::load(&ws).with_context(|| format!("reading {}", notebook.display()))?;
    let report = lint::lint(&loaded)?;
    for d in &report.diagnostics {
        println!("{}", d.describe());
    }
    println!("{}", report.summary());
    Ok(
        if report.errors() > 0 || (deny_warnings && !report.diagnostics.is_empty()) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// cargo test's output and exit code.
pub fn test(notebook: PathBuf, stored: bool) -> Result<ExitCode> {
    let mut ws = workspace(&notebook)?;
    let loaded = tooling::load(&ws).with_context(|| format!("reading {}", notebook.display()))?;
    let krate = test::prepare(&mut ws, &loaded, stored)?;
    eprintln!(
        "slurmbook test: cargo test --manifest-path {}",
        krate.manifest.display()
    );
    let status = krate.command().status().context("running cargo test")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

pub fn export(notebook: PathBuf, to: PathBuf) -> Result<ExitCode> {
    let ws = workspace(&notebook)?;
    let loaded = tooling::load(&ws).with_context(|| format!("reading {}", notebook.display()))?;
    let report = export::export(&loaded.project, &loaded.nb, &to, &loaded.edition)?;
    print!("{}", report.describe());
    Ok(ExitCode::SUCCESS)
}
