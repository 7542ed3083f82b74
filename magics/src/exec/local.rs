//! The in-kernel executor (laptop mode): each selected asset is evaluated in
//! the kernel's own Rust session as a variable of its name, in topological
//! order. A failing asset (or check) stops its dependents, which are reported
//! as skipped because of it, while independent branches still run. A
//! partitioned asset runs as processes of the job binary ([`super::sweep`]),
//! its map of partitions then bound in the session; which fresh assets are
//! loaded or computed again is in [`super::fresh`].

use super::fresh::{fresh_to_rerun, load_fresh, needed_in_session};
use super::usage::kernel_usage;
use crate::events::{format_duration, AssetState, Emit, Event, RunSummary, Stream};
use crate::exec::foreign;
use crate::exec::foreign::bind::{bind_foreign, bind_foreign_upstreams, ForeignValues};
pub use crate::exec::session::{
    asset_code, check_code, load_code, store_code, Session, SessionError, Sessions,
};
use crate::model::MaterializationStatus;
use crate::model::RunId;
use crate::model::Target;
use crate::plan::{Action, Plan};
use crate::project::Project;
use crate::state::{ResultRecord, StartRecord, StateDb, StateError};
use crate::store::ValueStore;
use crate::usage::process::ProcessProbe;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the executor already set up in the session, kept across runs.
#[derive(Debug, Default)]
pub struct Prepared {
    epoch: Option<u64>,
    deps: Option<String>,
    items: Option<String>,
}

impl Prepared {
    fn valid(&self, epoch: u64) -> bool {
        self.epoch == Some(epoch)
    }
}

/// Everything a local run needs.
pub struct LocalRun<'a, S: Session> {
    pub project: &'a Project,
    pub plan: &'a Plan,
    pub db: &'a StateDb,
    pub store: &'a ValueStore,
    pub run_id: RunId,
    pub session: &'a mut S,
    pub prepared: &'a mut Prepared,
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
    /// The effective configuration (which environment Python and bash
    /// assets run in).
    pub settings: &'a crate::config::Settings,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("state database: {0}")]
    State(#[from] StateError),
    #[error("setting up the notebook's dependencies and items failed: {0}")]
    Prepare(String),
}

/// Whether the notebook itself depends on serde_json.
fn has_serde_json(project: &Project) -> bool {
    project.deps.iter().any(|d| d.name == "serde_json")
}

/// Evaluates the notebook's `:dep` lines and item cells, when they changed or
/// the session lost its state.
pub async fn prepare<S: Session>(
    session: &mut S,
    project: &Project,
    prepared: &mut Prepared,
    emit: &dyn Emit,
) -> Result<(), LocalError> {
    let epoch = session.epoch();
    if !prepared.valid(epoch) {
        *prepared = Prepared {
            epoch: Some(epoch),
            ..Prepared::default()
        };
    }
    let mut deps: String = project
        .deps
        .iter()
        .map(|d| format!(":dep {} = {}\n", d.name, d.spec))
        .collect();
    // Values are stored (and loaded after a restart) as JSON: the session
    // gets serde_json whether or not the notebook asked for it.
    if !has_serde_json(project) {
        deps.push_str(":dep serde_json = \"1\"\n");
    }
    if !deps.is_empty() && prepared.deps.as_deref() != Some(deps.as_str()) {
        session
            .run(&deps, "notebook", emit)
            .await
            .map_err(|e| LocalError::Prepare(e.message))?;
        prepared.deps = Some(deps);
    }
    let items: String = project
        .items
        .iter()
        .map(|i| format!("{}\n", i.source))
        .collect();
    if !items.trim().is_empty() && prepared.items.as_deref() != Some(items.as_str()) {
        session
            .run(&items, "notebook", emit)
            .await
            .map_err(|e| LocalError::Prepare(e.message))?;
        prepared.items = Some(items);
    }
    prepared.epoch = Some(session.epoch());
    Ok(())
}

/// Runs the plan in the session. Returns the summary (also emitted as
/// [`Event::Finished`]).
pub async fn materialize<S: Session>(run: LocalRun<'_, S>) -> Result<RunSummary, LocalError> {
    let LocalRun {
        project,
        plan,
        db,
        store,
        run_id,
        session,
        prepared,
        emit,
        cancel,
        settings,
    } = run;
    let sweep = super::sweep::SweepRun {
        project,
        db,
        store,
        run_id,
        emit,
        cancel,
    };
    let foreign_ctx = foreign::local::LocalForeign {
        project,
        settings,
        db,
        store,
        emit,
        cancel,
    };
    let started = Instant::now();
    let queued_at = chrono::Utc::now();
    let mut usages = Vec::new();
    let mut summary = RunSummary {
        run_id: Some(run_id),
        ..RunSummary::default()
    };
    for step in plan.runs() {
        emit.emit(Event::State {
            asset: step.asset.clone(),
            state: AssetState::queued(None),
        });
    }
    if plan.runs().next().is_some() {
        prepare(session, project, prepared, emit).await?;
    }
    let in_session: HashSet<String> = session
        .variables()
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // Why an asset cannot run: the first upstream that failed or was skipped.
    let mut blocked: HashMap<String, String> = HashMap::new();
    let rerun = fresh_to_rerun(project, plan, db, &in_session);
    // Python and bash values are bound, as their stated types, when Rust
    // code needs them.
    let mut foreign_values = ForeignValues::new(&in_session);
    for step in &plan.steps {
        let name = step.asset.as_str();
        let version = project
            .versions
            .get(name)
            .expect("planned assets have versions");
        let start = StartRecord {
            run_id: Some(run_id),
            asset: name,
            version: &version.version,
            own_hash: &version.own_hash,
            upstream_versions: &version.upstreams,
            target: Target::Local,
            job_id: None,
            node: None,
        };
        if step.action == Action::Refused {
            super::record_refused(db, run_id, project, step, emit)?;
            blocked.insert(name.to_owned(), step.why.clone());
            summary.skipped.push(name.to_owned());
            continue;
        }
        if step.action == Action::Skip {
            // A fresh asset a later step needs must be in the session: loaded
            // from the store, or computed again when its value cannot be.
            let needed = needed_in_session(project, plan, &rerun, name);
            let mut why_rerun = rerun.get(name).cloned();
            if why_rerun.is_none() && needed && !in_session.contains(name) {
                why_rerun = load_fresh(session, db, name, emit).await;
            }
            match why_rerun {
                Some(why) => emit.emit(Event::Output {
                    asset: name.to_owned(),
                    stream: Stream::Stderr,
                    text: format!(
                        "computing fresh asset {name} again: its stored value could not be loaded ({why})\n"
                    ),
                }),
                None => {
                    db.record_skipped(std::slice::from_ref(&start))?;
                    emit.emit(Event::State {
                        asset: name.to_owned(),
                        state: AssetState::Fresh,
                    });
                    summary.fresh.push(name.to_owned());
                    continue;
                }
            }
        }
        if cancel.load(Ordering::SeqCst) {
            emit.emit(Event::State {
                asset: name.to_owned(),
                state: AssetState::Cancelled {
                    because: Some("the run was interrupted".into()),
                },
            });
            summary.cancelled.push(name.to_owned());
            continue;
        }
        // A failed upstream it is partitioned like blocks only the matching partitions.
        let like = |u: &&String| super::sweep::is_like(step, u) && blocked[*u] == "failed";
        if let Some(because) = step
            .after
            .iter()
            .find(|u| blocked.contains_key(*u) && !like(u))
        {
            let reason = blocked[because].clone();
            let text = format!("upstream {because} {reason}");
            blocked.insert(name.to_owned(), text.clone());
            let id = db.record_start(&start)?;
            db.record_result(
                id,
                &ResultRecord {
                    status: Some(MaterializationStatus::Skipped),
                    error: Some(text.clone()),
                    ..ResultRecord::default()
                },
            )?;
            emit.emit(Event::State {
                asset: name.to_owned(),
                state: AssetState::Skipped { because: text },
            });
            summary.skipped.push(name.to_owned());
            continue;
        }
        let spec = project.asset(name).expect("planned assets exist");
        // Timed from the recorded start, so the status table and `%assets`
        // (whose duration the database computes) show the same time.
        let t = Instant::now();
        let id = db.record_start(&start)?;
        emit.emit(Event::State {
            asset: name.to_owned(),
            state: AssetState::Running {
                location: "kernel".into(),
            },
        });
        let (started_at, probe) = (
            chrono::Utc::now(),
            // (A Python or bash asset runs in a process of its own: what
            // the session's process used says nothing of it.)
            ProcessProbe::start(session.process_id().filter(|_| !spec.lang().is_foreign())),
        );
        let outcome = if spec.lang().is_foreign() {
            foreign::local::run(&foreign_ctx, spec, &version.version)
                .await
                .map(Some)
                .map_err(|f| SessionError {
                    message: f.message,
                    detail: vec![f.detail],
                })
        } else if step.partitions.is_some() {
            super::sweep::run(&sweep, session, step, version)
                .await
                .map(|()| None)
        } else {
            match bind_foreign_upstreams(project, db, session, name, &mut foreign_values).await {
                Err(e) => Err(e),
                Ok(()) => session
                    .run(
                        &asset_code(name, spec.type_annotation.as_deref(), &spec.body),
                        name,
                        emit,
                    )
                    .await
                    .map(|_| None),
            }
        };
        let eval_ms = t.elapsed().as_millis() as u64;
        let usage = kernel_usage(queued_at, started_at, eval_ms, probe.finish());
        db.record_usage(id, &usage)?;
        usages.push((name.to_owned(), usage));
        match outcome {
            Err(error) => {
                let cancelled = cancel.load(Ordering::SeqCst);
                db.record_result(
                    id,
                    &ResultRecord {
                        status: Some(if cancelled {
                            MaterializationStatus::Cancelled
                        } else {
                            MaterializationStatus::Failed
                        }),
                        error: Some(error.detail.join("\n")),
                        ..ResultRecord::default()
                    },
                )?;
                blocked.insert(name.to_owned(), "failed".into());
                if cancelled {
                    emit.emit(Event::State {
                        asset: name.to_owned(),
                        state: AssetState::Cancelled {
                            because: Some("interrupted".into()),
                        },
                    });
                    summary.cancelled.push(name.to_owned());
                } else {
                    emit.emit(Event::State {
                        asset: name.to_owned(),
                        state: AssetState::Failed {
                            error: error.message.clone(),
                        },
                    });
                    summary.failed.push(name.to_owned());
                }
            }
            Ok(foreign_value) => {
                let (type_name, value_path, mut metadata) = match foreign_value {
                    Some((path, reported)) => {
                        // Rust code (checks, consumers) sees it as its stated type.
                        foreign_values.ran(name, path.clone());
                        (
                            spec.declared_type(),
                            Some(path.display().to_string()),
                            reported,
                        )
                    }
                    None => {
                        let type_name = session
                            .variables()
                            .await
                            .into_iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, t)| t);
                        let path = store_value(session, store, name, &version.version).await;
                        (type_name, path, serde_json::json!({}))
                    }
                };
                if !metadata.is_object() {
                    metadata = serde_json::json!({});
                }
                metadata["type"] = serde_json::json!(type_name);
                metadata["eval"] = serde_json::json!(format_duration(eval_ms));
                if let Some(p) = &step.partitions {
                    // How many partitions the stored map holds (see `partitions`).
                    metadata["partitions"] = serde_json::json!(p.total);
                }
                let ms = t.elapsed().as_millis() as u64;
                db.record_result(
                    id,
                    &ResultRecord {
                        metadata: metadata.clone(),
                        value_path: value_path.clone(),
                        ..ResultRecord::default()
                    },
                )?;
                emit.emit(Event::Metadata {
                    asset: name.to_owned(),
                    metadata,
                });
                // Checks run after their asset; a failing one blocks dependents.
                let mut failed_check = None;
                for check in project.checks_of(name) {
                    let result =
                        match bind_foreign(project, db, session, name, None, &mut foreign_values)
                            .await
                        {
                            Err(e) => Err(e),
                            Ok(()) => session.run(&check_code(&check.body), name, emit).await,
                        };
                    let message = match result {
                        Ok(Some(text)) if text.trim() == "None" => None,
                        Ok(Some(text)) => Some(
                            text.trim()
                                .trim_start_matches("Some(")
                                .trim_end_matches(')')
                                .to_string(),
                        ),
                        Ok(None) => {
                            Some("the check did not evaluate to bool or Result".to_string())
                        }
                        Err(e) => Some(e.message),
                    };
                    emit.emit(Event::Check {
                        asset: name.to_owned(),
                        check: check.name.clone(),
                        passed: message.is_none(),
                        message: message.clone(),
                    });
                    if message.is_some() && failed_check.is_none() {
                        failed_check = Some(check.name.clone());
                    }
                }
                if let Some(check) = failed_check {
                    blocked.insert(name.to_owned(), format!("failed check {check}"));
                }
                emit.emit(Event::State {
                    asset: name.to_owned(),
                    state: AssetState::Done {
                        duration_ms: ms,
                        location: "kernel".into(),
                    },
                });
                summary.done.push(name.to_owned());
            }
        }
    }
    // A session variable of a Python or bash asset that ran must not keep
    // its old value (the others are bound when Rust code needs them).
    for (asset, error) in foreign_values.refresh(project, db, session).await {
        emit.emit(Event::Output {
            asset,
            stream: Stream::Stderr,
            text: format!("{}\n", error.message),
        });
    }
    for (asset, usage) in usages {
        let hints = Vec::new();
        emit.emit(Event::Usage {
            asset,
            usage,
            hints,
        });
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    emit.emit(Event::Finished {
        summary: summary.clone(),
    });
    Ok(summary)
}

/// Serializes a value in the session and stores it atomically.
async fn store_value<S: Session>(
    session: &mut S,
    store: &ValueStore,
    name: &str,
    version: &str,
) -> Option<String> {
    let dir = store.dir();
    crate::private_fs::create_private_dir(dir).ok()?;
    let staging = dir.join(format!(".{name}-{version}.staging"));
    let quiet = |_: Event| {};
    let result = session.run(&store_code(name, &staging), name, &quiet).await;
    if let Err(e) = result {
        tracing::info!(asset = name, error = %e.message, "value not stored (not serde-serializable?)");
        let _ = std::fs::remove_file(&staging);
        return None;
    }
    let bytes = std::fs::read(&staging).ok()?;
    let _ = std::fs::remove_file(&staging);
    store
        .write_bytes(name, version, "json", &bytes)
        .ok()
        .map(|p| p.display().to_string())
}
