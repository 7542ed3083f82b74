//! Fresh assets in a local run: which of them a step that runs needs in
//! the session, which must be computed again because their stored value
//! cannot be loaded, and loading the others from the value store.

use super::session::{load_code, Session};
use crate::events::Emit;
use crate::plan::{Action, Plan};
use crate::project::Project;
use crate::state::StateDb;
use std::collections::{HashMap, HashSet};

/// Whether a Rust step that runs (or a fresh asset computed again) needs
/// `name`'s value in the session (Python and bash steps read its file).
pub(super) fn needed_in_session(
    project: &Project,
    plan: &Plan,
    rerun: &HashMap<String, String>,
    name: &str,
) -> bool {
    plan.steps
        .iter()
        .filter(|s| s.action == Action::Run || rerun.contains_key(&s.asset))
        .filter(|s| {
            project
                .asset(&s.asset)
                .is_some_and(|a| !a.lang().is_foreign())
        })
        .any(|s| {
            project
                .graph
                .dependencies(&s.asset)
                .iter()
                .any(|(d, k)| *d == name && k.carries_data())
        })
}

/// Whether a step that runs (or a fresh asset computed again) needs `name`'s value.
fn needed_by_runs(
    project: &Project,
    plan: &Plan,
    rerun: &HashMap<String, String>,
    name: &str,
) -> bool {
    plan.steps
        .iter()
        .filter(|s| s.action == Action::Run || rerun.contains_key(&s.asset))
        .any(|s| {
            project
                .graph
                .dependencies(&s.asset)
                .iter()
                .any(|(d, k)| *d == name && k.carries_data())
        })
}

/// Why a stored value cannot be loaded, if it cannot (checked without
/// loading it: a recorded type and an existing file).
fn unloadable(db: &StateDb, name: &str) -> Option<String> {
    let last = match db.last_success(name) {
        Ok(Some(m)) => m,
        Ok(None) => return Some("no successful materialization".into()),
        Err(e) => return Some(e.to_string()),
    };
    match (
        last.value_path.as_deref(),
        last.metadata.get("type").and_then(|t| t.as_str()),
    ) {
        (Some(path), Some(_)) if std::path::Path::new(path).is_file() => None,
        (Some(path), Some(_)) => Some(format!("its stored file {path} is missing")),
        _ => Some("its value was not stored: its type does not implement serde's Serialize".into()),
    }
}

/// The fresh assets of the plan to compute again, with why: needed by a
/// step that runs (or by another of them), not in the session, and their
/// stored value cannot be loaded. Walks the plan from its end, so an
/// upstream of an asset computed again is considered too.
pub(super) fn fresh_to_rerun(
    project: &Project,
    plan: &Plan,
    db: &StateDb,
    in_session: &HashSet<String>,
) -> HashMap<String, String> {
    let mut rerun = HashMap::new();
    for step in plan.steps.iter().rev() {
        let name = step.asset.as_str();
        if step.action != Action::Skip || in_session.contains(name) {
            continue;
        }
        if !needed_by_runs(project, plan, &rerun, name) {
            continue;
        }
        if let Some(why) = unloadable(db, name) {
            rerun.insert(name.to_owned(), why);
        }
    }
    rerun
}

/// Brings a fresh asset's stored value into the session; the error if it cannot.
pub(super) async fn load_fresh<S: Session>(
    session: &mut S,
    db: &StateDb,
    name: &str,
    emit: &dyn Emit,
) -> Option<String> {
    let last = match db.last_success(name) {
        Ok(Some(m)) => m,
        Ok(None) => return Some("no successful materialization".into()),
        Err(e) => return Some(e.to_string()),
    };
    let (Some(path), Some(type_name)) = (
        last.value_path.as_deref(),
        last.metadata.get("type").and_then(|t| t.as_str()),
    ) else {
        return Some(
            "its value was not stored: its type does not implement serde's Serialize".into(),
        );
    };
    match session
        .run(
            &load_code(name, type_name, std::path::Path::new(path)),
            name,
            emit,
        )
        .await
    {
        Ok(_) => None,
        Err(e) => Some(e.message),
    }
}
