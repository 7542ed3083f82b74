//! A partitioned asset in the kernel (laptop mode, the local profile): its
//! partitions run as processes of the job binary (built locally, as a
//! bundle for Slurm is), from one task table, up to `--max-parallel` at
//! once (default: the number of cores). Each partition is recorded on its
//! own; a panicking one fails alone while the others go on. When all are
//! done, the whole asset's value — the map of every partition's value,
//! keyed by partition — is stored and bound in the session as the asset's
//! variable (`BTreeMap<String, T>`), which is what its non-partitioned
//! downstreams receive.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::bundle;
use crate::events::{AssetState, Emit, Event, Stream};
use crate::exec::session::{load_code, Session, SessionError};
use crate::exec::slurm::protocol::{parse_bundle_line, BundleEvent, ProtocolLine, PROTOCOL_PREFIX};
use crate::model::partition::abbreviate;
use crate::model::{MaterializationStatus, RunId, Target};
use crate::partitions;
use crate::plan::Step;
use crate::project::Project;
use crate::state::{ResultRecord, StartRecord, StateDb};
use crate::store::ValueStore;
use crate::version::AssetVersion;

/// What running a partitioned asset in the kernel needs.
pub struct SweepRun<'a> {
    pub project: &'a Project,
    pub db: &'a StateDb,
    pub store: &'a ValueStore,
    pub run_id: RunId,
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
}

/// One entry of a task table (the job binary's `--task-table FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub key: String,
    pub index: usize,
    pub output: String,
    pub inputs: BTreeMap<String, String>,
    pub input_maps: BTreeMap<String, BTreeMap<String, String>>,
}

fn fail(message: impl Into<String>) -> SessionError {
    SessionError {
        message: message.into(),
        detail: Vec::new(),
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// The stored value of a non-partitioned upstream `up` of `asset`.
fn upstream_value(ctx: &SweepRun<'_>, asset: &str, up: &str) -> Result<String, SessionError> {
    let last = ctx
        .db
        .last_success(up)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail(format!("upstream `{up}` of `{asset}` has no value")))?;
    match (last.value_path, last.target) {
        (Some(p), Target::Local) if Path::new(&p).is_file() => Ok(p),
        (Some(p), Target::Slurm) => Err(fail(format!(
            "upstream `{up}`'s value is on the cluster ({p}); materialize `{up}` in the kernel too"
        ))),
        (Some(p), _) => Err(fail(format!("upstream `{up}`'s stored value {p} is missing"))),
        (None, _) => Err(fail(format!(
            "upstream `{up}`'s value was not stored: the processes of partitioned `{asset}` read it as JSON, so its type must implement serde's Serialize"
        ))),
    }
}

/// The task table of `step`'s partitions to run.
pub fn task_table(ctx: &SweepRun<'_>, step: &Step) -> Result<Vec<Task>, SessionError> {
    let (project, asset) = (ctx.project, step.asset.as_str());
    let parts = step.partitions.as_ref().ok_or_else(|| {
        fail(format!(
            "`{asset}` is partitioned, but the plan has no partitions for it"
        ))
    })?;
    let value_path = |name: &str, key: &str| -> Result<String, SessionError> {
        let v = partitions::version_of(project, name, key);
        ctx.store
            .path_for(name, &v, "json")
            .map(|p| path_text(&p))
            .map_err(|e| fail(e.to_string()))
    };
    let mut inputs = BTreeMap::new();
    let mut input_maps = BTreeMap::new();
    let mut like = None;
    for (up, kind) in project.graph.dependencies(asset) {
        if !kind.carries_data() {
            continue;
        }
        if bundle::receives_map(project, asset, up) {
            let keys = partitions::keys_of(project, ctx.db, up)
                .map_err(|e| fail(e.to_string()))?
                .unwrap_or_default();
            let map = keys
                .iter()
                .map(|k| Ok((k.clone(), value_path(up, k)?)))
                .collect::<Result<BTreeMap<_, _>, SessionError>>()?;
            input_maps.insert(up.to_string(), map);
        } else if parts.like.as_deref() == Some(up) {
            like = Some(up.to_string());
        } else {
            inputs.insert(up.to_string(), upstream_value(ctx, asset, up)?);
        }
    }
    parts
        .run
        .iter()
        .map(|(index, key)| {
            let mut inputs = inputs.clone();
            if let Some(up) = &like {
                inputs.insert(up.clone(), value_path(up, key)?);
            }
            Ok(Task {
                key: key.clone(),
                index: *index,
                output: value_path(asset, key)?,
                inputs,
                input_maps: input_maps.clone(),
            })
        })
        .collect()
}

/// Whether `step` is partitioned like `up`.
pub fn is_like(step: &Step, up: &str) -> bool {
    step.partitions
        .as_ref()
        .and_then(|p| p.like.as_deref())
        .is_some_and(|l| l == up)
}

/// `step` without the partitions whose matching partition of the asset it
/// is partitioned like is not fresh (it failed in this run): those are
/// recorded as skipped, and their keys returned.
fn without_failed_upstream(
    ctx: &SweepRun<'_>,
    step: &Step,
    version: &AssetVersion,
) -> Result<(Step, Vec<String>), SessionError> {
    let asset = step.asset.as_str();
    let mut step = step.clone();
    let Some(parts) = step.partitions.as_mut() else {
        return Ok((step, Vec::new()));
    };
    let Some(up) = parts.like.clone() else {
        return Ok((step, Vec::new()));
    };
    let up_parts = partitions::status(ctx.project, ctx.db, &up)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail(format!("`{up}` is not partitioned")))?;
    let fresh: std::collections::HashSet<&str> = up_parts
        .keys
        .iter()
        .zip(&up_parts.states)
        .filter(|(_, s)| **s == partitions::PartState::Fresh)
        .map(|(k, _)| k.as_str())
        .collect();
    let (run, blocked): (Vec<_>, Vec<_>) = parts
        .run
        .drain(..)
        .partition(|(_, k)| fresh.contains(k.as_str()));
    parts.run = run;
    for (_, key) in &blocked {
        let pv = partitions::version_of(ctx.project, asset, key);
        let id = ctx
            .db
            .record_partition_start(&start_record(ctx, asset, &pv, version), key)
            .map_err(|e| fail(e.to_string()))?;
        let why = format!("upstream {up}[{key}] failed");
        ctx.db
            .record_result(
                id,
                &ResultRecord {
                    status: Some(MaterializationStatus::Skipped),
                    error: Some(why.clone()),
                    ..ResultRecord::default()
                },
            )
            .map_err(|e| fail(e.to_string()))?;
        ctx.emit.emit(Event::Output {
            asset: asset.to_string(),
            stream: Stream::Stderr,
            text: format!("partition {asset}[{key}] not run: {why}\n"),
        });
    }
    Ok((step, blocked.into_iter().map(|(_, k)| k).collect()))
}

fn start_record<'a>(
    ctx: &SweepRun<'_>,
    asset: &'a str,
    partition_version: &'a str,
    version: &'a AssetVersion,
) -> StartRecord<'a> {
    StartRecord {
        run_id: Some(ctx.run_id),
        asset,
        version: partition_version,
        own_hash: &version.own_hash,
        upstream_versions: &version.upstreams,
        target: Target::Local,
        job_id: None,
        node: None,
    }
}

/// What a partition's process says.
enum Said {
    Line(usize, Stream, String),
    Closed(usize),
}

/// Reads one stream of task `i`'s process into `tx`, line by line.
fn forward<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    i: usize,
    stream: Stream,
    reader: R,
    tx: mpsc::UnboundedSender<Said>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(Said::Line(i, stream, line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Said::Closed(i));
    });
}

/// One running partition.
struct Running {
    child: tokio::process::Child,
    id: i64,
    open: u8,
    metadata: serde_json::Value,
    reported: Option<String>,
    tail: Vec<String>,
}

/// Runs `step`'s partitions (the executor records the whole asset); on
/// success the map of all partitions is bound in `session` as the asset's
/// variable (and stored by the executor, like any value).
pub async fn run<S: Session>(
    ctx: &SweepRun<'_>,
    session: &mut S,
    step: &Step,
    version: &AssetVersion,
) -> Result<(), SessionError> {
    let (project, asset) = (ctx.project, step.asset.as_str());
    let known: HashMap<String, String> = session.variables().await.into_iter().collect();
    let build = || -> Result<(PathBuf, String), bundle::BundleError> {
        let names = [asset.to_string()];
        bundle::check_free_variables(project, &names)?;
        let root = bundle::build_root();
        let types = bundle::probe_types(project, &names, &known, &root)?;
        let sources = bundle::generate(project, &names, &types)?;
        let exe = bundle::build(&sources, &root, &types)?;
        Ok((exe, types[asset].clone()))
    };
    let (exe, ty) = build().map_err(|e| fail(e.to_string()))?;
    let (step, not_run) = without_failed_upstream(ctx, step, version)?;
    let step = &step;
    let tasks = task_table(ctx, step)?;
    let table_dir = ctx.store.dir().join(".tasks");
    crate::private_fs::create_private_dir(&table_dir).map_err(|e| fail(e.to_string()))?;
    let table = table_dir.join(format!("{asset}-run{}.json", ctx.run_id));
    std::fs::write(
        &table,
        serde_json::to_vec(&tasks).expect("a task table serializes"),
    )
    .map_err(|e| fail(format!("writing {}: {e}", table.display())))?;
    let max_parallel = step
        .partitions
        .as_ref()
        .and_then(|p| p.max_parallel)
        .map(|n| n as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let failed = run_tasks(
        ctx,
        (asset, &ty),
        version,
        (&exe, &table),
        &tasks,
        max_parallel,
    )
    .await;
    let _ = std::fs::remove_file(&table);
    let mut failed = failed?;
    failed.extend(not_run);
    let keys = partitions::keys_of(project, ctx.db, asset)
        .map_err(|e| fail(e.to_string()))?
        .unwrap_or_default();
    let order: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    failed.sort_by_key(|k| order.get(k.as_str()).copied());
    let total = step.partitions.as_ref().map_or(tasks.len(), |p| p.total);
    if !failed.is_empty() {
        let text = format!(
            "{} of {total} partitions failed: {}",
            failed.len(),
            abbreviate(&failed, 20)
        );
        return Err(SessionError {
            message: text.clone(),
            detail: vec![text],
        });
    }
    if ctx.cancel.load(Ordering::SeqCst) {
        return Err(fail("interrupted"));
    }
    // The whole asset: every partition's value, keyed by partition.
    let mut map = serde_json::Map::new();
    for key in &keys {
        let v = partitions::version_of(project, asset, key);
        let path = ctx
            .store
            .path_for(asset, &v, "json")
            .map_err(|e| fail(e.to_string()))?;
        let value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .ok_or_else(|| fail(format!("partition {asset}[{key}] has no stored value")))?;
        map.insert(key.clone(), value);
    }
    let bytes = serde_json::to_vec(&map).expect("JSON values serialize");
    let path = ctx
        .store
        .write_bytes(asset, &version.version, "json", &bytes)
        .map_err(|e| fail(e.to_string()))?;
    let map_type = format!("std::collections::BTreeMap<String, {ty}>");
    let quiet = |_: Event| {};
    session
        .run(&load_code(asset, &map_type, &path), asset, &quiet)
        .await
        .map(|_| ())
}

/// Runs the tasks, `max_parallel` at once, recording each partition;
/// returns the keys of those that failed.
async fn run_tasks(
    ctx: &SweepRun<'_>,
    (asset, ty): (&str, &str),
    version: &AssetVersion,
    (exe, table): (&Path, &Path),
    tasks: &[Task],
    max_parallel: usize,
) -> Result<Vec<String>, SessionError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut running: HashMap<usize, Running> = HashMap::new();
    let mut next = 0;
    let mut failed = Vec::new();
    let mut ended = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let state = |e: crate::state::StateError| fail(e.to_string());
    while next < tasks.len() || !running.is_empty() {
        let cancelled = ctx.cancel.load(Ordering::SeqCst);
        while !cancelled && running.len() < max_parallel && next < tasks.len() {
            let i = next;
            next += 1;
            let task = &tasks[i];
            let pv = partitions::version_of(ctx.project, asset, &task.key);
            let id = ctx
                .db
                .record_partition_start(&start_record(ctx, asset, &pv, version), &task.key)
                .map_err(state)?;
            let spawned = tokio::process::Command::new(exe)
                .arg(asset)
                .arg("--task-table")
                .arg(table)
                .arg("--task")
                .arg(i.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    let error = format!("starting {}: {e}", exe.display());
                    finish(ctx, id, Some(error), None, serde_json::json!({}))?;
                    failed.push(task.key.clone());
                    continue;
                }
            };
            forward(
                i,
                Stream::Stdout,
                child.stdout.take().expect("piped"),
                tx.clone(),
            );
            forward(
                i,
                Stream::Stderr,
                child.stderr.take().expect("piped"),
                tx.clone(),
            );
            running.insert(
                i,
                Running {
                    child,
                    id,
                    open: 2,
                    metadata: serde_json::json!({}),
                    reported: None,
                    tail: Vec::new(),
                },
            );
        }
        if running.is_empty() {
            break;
        }
        let said = tokio::select! {
            said = rx.recv() => said,
            _ = tick.tick() => {
                if ctx.cancel.load(Ordering::SeqCst) {
                    for r in running.values_mut() {
                        let _ = r.child.start_kill();
                    }
                }
                continue;
            }
        };
        match said {
            Some(Said::Line(i, stream, line)) => {
                let Some(r) = running.get_mut(&i) else {
                    continue;
                };
                let event = match line.as_bytes().strip_prefix(PROTOCOL_PREFIX) {
                    Some(json) => match parse_bundle_line(&String::from_utf8_lossy(json)) {
                        ProtocolLine::Event(e) => Some(e),
                        _ => None,
                    },
                    None => None,
                };
                match event {
                    Some(BundleEvent::Metadata { metadata }) => {
                        if let (Some(all), Some(new)) =
                            (r.metadata.as_object_mut(), metadata.as_object())
                        {
                            all.extend(new.clone());
                        }
                    }
                    Some(BundleEvent::Failed { error }) => r.reported = Some(error),
                    Some(_) => {}
                    None => {
                        if stream == Stream::Stderr {
                            r.tail.push(line.clone());
                            if r.tail.len() > 20 {
                                r.tail.remove(0);
                            }
                        }
                        ctx.emit.emit(Event::Output {
                            asset: format!("{asset}[{}]", tasks[i].key),
                            stream,
                            text: line + "\n",
                        });
                    }
                }
            }
            Some(Said::Closed(i)) => {
                let done = running.get_mut(&i).is_some_and(|r| {
                    r.open -= 1;
                    r.open == 0
                });
                if !done {
                    continue;
                }
                let mut r = running.remove(&i).expect("running");
                ended += 1;
                let status = r.child.wait().await;
                let task = &tasks[i];
                let ok =
                    status.as_ref().is_ok_and(|s| s.success()) && Path::new(&task.output).is_file();
                if ok {
                    // What `%load "NAME[KEY]"` binds it as.
                    r.metadata["type"] = serde_json::json!(ty);
                    finish(ctx, r.id, None, Some(task.output.clone()), r.metadata)?;
                } else {
                    let error = r
                        .reported
                        .or_else(|| r.tail.last().cloned())
                        .unwrap_or_else(|| match &status {
                            Ok(s) => format!("exited with {s}"),
                            Err(e) => e.to_string(),
                        });
                    let cancelled = ctx.cancel.load(Ordering::SeqCst);
                    let detail = if r.tail.is_empty() {
                        error.clone()
                    } else {
                        format!("{error}\n{}", r.tail.join("\n"))
                    };
                    if cancelled {
                        ctx.db
                            .record_result(
                                r.id,
                                &ResultRecord {
                                    status: Some(MaterializationStatus::Cancelled),
                                    error: Some("interrupted".into()),
                                    ..ResultRecord::default()
                                },
                            )
                            .map_err(state)?;
                    } else {
                        finish(ctx, r.id, Some(detail), None, r.metadata)?;
                    }
                    ctx.emit.emit(Event::Output {
                        asset: asset.to_string(),
                        stream: Stream::Stderr,
                        text: format!("partition {asset}[{}] failed: {error}\n", task.key),
                    });
                    failed.push(task.key.clone());
                }
                // The status table counts them.
                ctx.emit.emit(Event::State {
                    asset: asset.to_string(),
                    state: AssetState::Running {
                        location: progress(ended, failed.len(), tasks.len()),
                    },
                });
            }
            None => break,
        }
    }
    // Not started because the run was interrupted.
    failed.extend(tasks[next..].iter().map(|t| t.key.clone()));
    Ok(failed)
}

/// `kernel: 4/6 partitions ended, 1 failed`.
fn progress(ended: usize, failed: usize, total: usize) -> String {
    let failed = match failed {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    format!("kernel: {ended}/{total} partitions ended{failed}")
}

/// Records how a partition ended.
fn finish(
    ctx: &SweepRun<'_>,
    id: i64,
    error: Option<String>,
    value_path: Option<String>,
    metadata: serde_json::Value,
) -> Result<(), SessionError> {
    ctx.db
        .record_result(
            id,
            &ResultRecord {
                status: Some(if error.is_some() {
                    MaterializationStatus::Failed
                } else {
                    MaterializationStatus::Ok
                }),
                metadata,
                value_path,
                error,
                ..ResultRecord::default()
            },
        )
        .map_err(|e| fail(e.to_string()))
}
