//! Resource usage and observability of runs: what each asset used (the
//! figures are `crate::model::Usage`, recorded per materialization in the
//! state database's `usage` table), whether it asked for far more
//! ([`hints`]), when its job waited and ran ([`timeline`]), and the tables
//! and plots that show them ([`views`]).
//!
//! Where the figures come from:
//! * Slurm runs: `sacct` where the cluster has accounting, else the job
//!   binary's own measurement ([`job_runtime`]: `getrusage` of itself and
//!   its children, and its wall time, sent as a `usage` event of the job
//!   protocol); queue wait from `scontrol`'s `SubmitTime`/`StartTime`;
//!   assembled by the Slurm executor (`exec::usage`).
//! * In-kernel runs: wall time, and the session process's CPU time and
//!   peak memory where the OS tells ([`process`]).
//!
//! [`run_report`] (`%runs RUN`) and [`history_report`] (`%history NAME`)
//! read them back.

pub mod hints;
pub(crate) mod job_runtime;
pub mod process;
pub mod timeline;
pub mod views;

use std::collections::HashMap;

use crate::draw::plot::Plot;
use crate::draw::table::Table;
use crate::draw::timeline::Timeline;
use crate::model::{Hint, MaterializationId, MaterializationStatus, Target, Usage};
use crate::state::{Run, StateDb, StateError};

/// How many materializations `%history` shows.
pub const HISTORY_LIMIT: usize = 20;

/// The right-sizing hints of `asset` from its last successful Slurm runs
/// up to materialization `up_to` (all when `None`).
pub fn asset_hints(
    db: &StateDb,
    asset: &str,
    up_to: Option<MaterializationId>,
) -> Result<Vec<Hint>, StateError> {
    let runs: Vec<Usage> = db
        .asset_history(asset, 4 * hints::LAST_RUNS + 8)?
        .into_iter()
        .filter(|(m, _)| {
            m.status == MaterializationStatus::Ok
                && m.target == Target::Slurm
                && up_to.is_none_or(|id| m.id <= id)
        })
        .filter_map(|(_, u)| u)
        .take(hints::LAST_RUNS)
        .collect();
    Ok(hints::hints(&runs))
}

/// What `%runs RUN` shows.
pub struct RunReport {
    pub run: Run,
    /// Per asset: state, job, queue, wall, CPU, peak memory, ..., hints.
    pub table: Table,
    pub timeline: Timeline,
}

/// The report of one run.
pub fn run_report(db: &StateDb, run: Run) -> Result<RunReport, StateError> {
    let rows = db.run_assets(run.id)?;
    let usage = db.run_usage(run.id)?;
    let mut hints: HashMap<String, Vec<Hint>> = HashMap::new();
    for m in rows
        .iter()
        .filter(|m| m.status == MaterializationStatus::Ok && m.target == Target::Slurm)
    {
        let h = asset_hints(db, &m.asset, Some(m.id))?;
        if !h.is_empty() {
            hints.insert(m.asset.clone(), h);
        }
    }
    let mut table = views::run_table(&rows, &usage, &hints);
    table.caption = Some(format!(
        "run {} ({}, {}): {}",
        run.id,
        run.target.as_str(),
        run.status.as_str(),
        run.selection
    ));
    let timeline = timeline::build(&run, &rows, &usage);
    Ok(RunReport {
        run,
        table,
        timeline,
    })
}

/// What `%history NAME` shows.
pub struct HistoryReport {
    pub table: Table,
    pub plot: Plot,
}

/// The last [`HISTORY_LIMIT`] materializations of `asset`.
pub fn history_report(db: &StateDb, asset: &str) -> Result<HistoryReport, StateError> {
    let history = db.asset_history(asset, HISTORY_LIMIT)?;
    Ok(HistoryReport {
        table: views::history_table(asset, &history),
        plot: views::history_plot(asset, &history),
    })
}
