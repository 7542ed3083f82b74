//! Executors: run a [`crate::plan::Plan`] and report [`crate::events::Event`]s.
//! They know nothing of Jupyter. [`usage`]: what the assets used, recorded
//! and reported by both.

pub mod cluster;
pub mod connect;
pub mod foreign;
mod fresh;
pub mod job_env;
pub mod local;
pub mod prebuilt;
pub mod remote_build;
pub mod session;
pub mod slurm;
pub mod sweep;
pub mod usage;

use crate::events::{AssetState, Emit, Event};
use crate::model::{MaterializationStatus, RunId};
use crate::plan::Step;
use crate::project::Project;
use crate::state::{ResultRecord, StartRecord, StateDb, StateError};

/// Records a step the plan refused (an upstream too old for its
/// `--max-upstream-age`) as skipped with the reason, and reports it.
pub(crate) fn record_refused(
    db: &StateDb,
    run_id: RunId,
    project: &Project,
    step: &Step,
    emit: &dyn Emit,
) -> Result<(), StateError> {
    let version = project
        .versions
        .get(&step.asset)
        .expect("planned assets have versions");
    let id = db.record_start(&StartRecord {
        run_id: Some(run_id),
        asset: &step.asset,
        version: &version.version,
        own_hash: &version.own_hash,
        upstream_versions: &version.upstreams,
        target: step.target,
        job_id: None,
        node: None,
    })?;
    db.record_result(
        id,
        &ResultRecord {
            status: Some(MaterializationStatus::Skipped),
            error: Some(step.why.clone()),
            ..ResultRecord::default()
        },
    )?;
    emit.emit(Event::State {
        asset: step.asset.clone(),
        state: AssetState::Skipped {
            because: step.why.clone(),
        },
    });
    Ok(())
}
