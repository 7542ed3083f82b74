//! `slurmbook tick NOTEBOOK [--profile P] [--dry-run]`: every automation
//! condition evaluated once against the state database and the clock, what
//! they request materialized in ONE run through the run service (events on
//! a terminal, like `slurmbook run`). Exit status: 0 ran (or nothing to
//! do), 1 a materialization failed, 2 bad input. Made for cron.

use crate::headless::{execute_on_terminal, outcome, print_transport_stats, runtime, workspace};
use crate::terminal::TerminalEvents;
use anyhow::Result;
use chrono::{DateTime, Utc};
use slurmbook_magics::events::{Emit, Event};
use slurmbook_magics::run::{RunErrorKind, Tick, TickArgs};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status of bad input (a selection, a setting, the notebook).
const BAD_INPUT: u8 = 2;

pub fn tick(
    notebook: PathBuf,
    profile: Option<String>,
    dry_run: bool,
    now: Option<DateTime<Utc>>,
) -> Result<ExitCode> {
    if !notebook.is_file() {
        eprintln!("slurmbook tick: no notebook {}", notebook.display());
        return Ok(ExitCode::from(BAD_INPUT));
    }
    let mut workspace = workspace(&notebook)?;
    // A schedule's job binary, built at install for this very snapshot.
    workspace.prebuilt = slurmbook_magics::exec::prebuilt::JobBinary::beside(&notebook);
    let now = now.unwrap_or_else(Utc::now);
    let args = TickArgs {
        profile,
        dry_run,
        now,
    };
    let runtime = runtime()?;
    let stamp = now.format("%Y-%m-%d %H:%M:%S UTC");
    let tick = match runtime.block_on(workspace.plan_tick(&args)) {
        Ok(tick) => tick,
        Err(e) => {
            eprintln!("slurmbook tick: {e}");
            workspace.wait_for_notifications();
            return Ok(match e.kind() {
                RunErrorKind::Usage | RunErrorKind::Asset => ExitCode::from(BAD_INPUT),
                _ => ExitCode::FAILURE,
            });
        }
    };
    let (planned, claim) = match tick {
        Tick::Nothing => {
            println!("tick {stamp}: nothing to do");
            workspace.wait_for_notifications();
            return Ok(ExitCode::SUCCESS);
        }
        Tick::DryRun(requests) => {
            println!("tick {stamp} (dry run): would run");
            for r in requests {
                println!("  {:<24} {}", r.asset, r.reason);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Tick::Planned(planned, claim) => (planned, claim),
    };
    println!("tick {stamp}: run {} ({})", claim.run_id, claim.trigger);
    let events = TerminalEvents::new(planned.plan.runs().count());
    events.emit(Event::Planned {
        plan: planned.plan.clone(),
    });
    let result = execute_on_terminal(&runtime, &events, async |sessions, io| {
        workspace.execute_tick(&planned, &claim, sessions, io).await
    });
    let code = match result {
        Ok(summary) => outcome(&mut workspace, &summary)?,
        Err(e) => {
            eprintln!("slurmbook tick: run {}: {e}", claim.run_id);
            ExitCode::FAILURE
        }
    };
    if planned.on_slurm() {
        print_transport_stats(&workspace);
        runtime.block_on(workspace.close());
    }
    workspace.wait_for_notifications();
    Ok(code)
}

/// The exit code of a schedule command's error (2: bad input).
fn schedule_failed(what: &str, e: &slurmbook_magics::run::ScheduleError) -> ExitCode {
    eprintln!("slurmbook schedule {what}: {e}");
    if e.is_usage() {
        ExitCode::from(BAD_INPUT)
    } else {
        ExitCode::FAILURE
    }
}

/// `slurmbook schedule install NOTEBOOK --profile P [--every 15m] [--fallback]`.
pub fn install(
    notebook: PathBuf,
    profile: String,
    every: String,
    fallback: bool,
) -> Result<ExitCode> {
    let every: slurmbook_magics::auto::schedule::Every = match every.parse() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("slurmbook schedule install: --every {e}");
            return Ok(ExitCode::from(BAD_INPUT));
        }
    };
    if !notebook.is_file() {
        eprintln!(
            "slurmbook schedule install: no notebook {}",
            notebook.display()
        );
        return Ok(ExitCode::from(BAD_INPUT));
    }
    let mut workspace = workspace(&notebook)?;
    let runtime = runtime()?;
    let result = runtime.block_on(workspace.schedule_install(&profile, every, fallback));
    runtime.block_on(workspace.close());
    match result {
        Ok(done) => {
            let s = &done.schedule;
            let how = match s.method {
                slurmbook_magics::run::Method::Scrontab => "a scrontab entry",
                slurmbook_magics::run::Method::Fallback => {
                    "a job that resubmits itself with --begin (scrontab fallback)"
                }
            };
            println!(
                "schedule {} installed: {how} runs `slurmbook tick` every {} with profile {} in {} ({} byte(s) uploaded)",
                s.id, s.every, s.profile, s.dir, done.bytes_sent
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(schedule_failed("install", &e)),
    }
}

/// `slurmbook schedule list [NOTEBOOK] --profile P`.
pub fn list(notebook: Option<PathBuf>, profile: String) -> Result<ExitCode> {
    let mut workspace = match &notebook {
        Some(nb) => workspace(nb)?,
        None => slurmbook_magics::run::Workspace::from_env(),
    };
    let runtime = runtime()?;
    let result = runtime.block_on(workspace.schedule_list(&profile));
    runtime.block_on(workspace.close());
    match result {
        Ok(list) if list.is_empty() => {
            println!("no schedules on profile {profile}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(list) => {
            println!(
                "{:<28} {:<7} {:<6} {:<9} notebook",
                "schedule", "active", "every", "method"
            );
            for s in list {
                let method = match s.method {
                    slurmbook_magics::run::Method::Scrontab => "scrontab",
                    slurmbook_magics::run::Method::Fallback => "fallback",
                };
                println!(
                    "{:<28} {:<7} {:<6} {:<9} {}",
                    s.id,
                    if s.active { "yes" } else { "no" },
                    s.every,
                    method,
                    s.notebook
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(schedule_failed("list", &e)),
    }
}

/// `slurmbook schedule remove NOTEBOOK --profile P`.
pub fn remove(notebook: PathBuf, profile: String) -> Result<ExitCode> {
    let mut workspace = workspace(&notebook)?;
    let runtime = runtime()?;
    let result = runtime.block_on(workspace.schedule_remove(&profile));
    runtime.block_on(workspace.close());
    match result {
        Ok(true) => {
            println!("schedule removed (its state stays on the cluster: %runs and %load still see its runs)");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            println!("no schedule of {} on profile {profile}", notebook.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(schedule_failed("remove", &e)),
    }
}
