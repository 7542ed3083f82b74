//! Following a run's jobs: output through one `tail -F`, states through one
//! batched `squeue` per poll.
//!
//! * **Output.** One remote `tail -F -v -c +1 -s 0.5 --pid=$$ FILE...` over
//!   the multiplexed connection follows the `.out` and `.err` of every job
//!   (files that do not exist yet are retried by `-F`). It runs under a
//!   `sh` that waits on its stdin: closing our end (or losing the
//!   connection) ends that shell, and tail, seeing its `--pid` gone, reads
//!   the files one last time and exits, so the watcher knows it has
//!   everything. [`super::stream::Demux`] splits tail's `==> FILE <==`
//!   sections into per-file bytes and counts exact byte offsets; see there
//!   for how an offset `N` maps to `tail -c +(N+1)` and why a resume runs
//!   `tail -c +1` and drops the first `N` bytes of each file locally.
//!   Offsets are saved in the state db (`set_offsets`) together with every
//!   batch of output emitted, under one lock that [`freeze_output`] takes
//!   when the process is about to exit, so a later watch (`%attach`) starts
//!   exactly after the last line shown: none lost, none repeated.
//! * **States.** One `squeue --noheader --states=all --jobs=ID,...` per poll
//!   for the jobs not yet terminal; for jobs that became terminal or are no
//!   longer listed, one script runs `scontrol show job -o ID` for each
//!   (falling back to `sacct` where accounting exists), prints the last 40
//!   lines of their `.err` and the final sizes of their files. Polls start
//!   every 0.5 s and back off ×1.5 up to 5 s, back to 0.5 s on any change.
//! * **Protocol.** A stdout line `\u{1e}SLURMBOOK {json}` is the bundle
//!   talking, not output: `metadata` becomes [`Event::Metadata`],
//!   `materialized` and `failed` are kept for the result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::ssh::{check_abs_path, command_line, quote, Remote, SshError};
use super::stream::{Demux, Piece};
use super::submit::JobSpec;
use crate::events::{AssetState, Emit, Event, Stream};
use crate::model::is_identifier;
use crate::model::RunId;
use crate::state::{StateDb, StateError};

#[path = "watch_steps.rs"]
mod steps;

/// Poll interval bounds.
pub const POLL_MIN: Duration = Duration::from_millis(500);
pub const POLL_MAX: Duration = Duration::from_secs(5);
/// How long the cancel flag must stay set before the run's jobs are
/// cancelled: Jupyter clients interrupt a kernel right before shutting it
/// down to restart it, and a restart must leave the jobs running.
pub const CANCEL_GRACE: Duration = Duration::from_millis(1000);
/// Quiet time after which partial lines are shown.
const IDLE: Duration = Duration::from_millis(200);
/// Quiet time after which a held line end counts as data (tail writes a
/// separator together with its header, so this only needs to cover one write).
const NEWLINE_HOLD: Duration = Duration::from_millis(20);
/// Lines of a failed job's `.err` put in its error.
pub const STDERR_TAIL_LINES: usize = 40;

/// A submitted job to follow (or a step of one, for grouped runs).
/// Serializable, so a watch can be rebuilt later (`%attach`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchJob {
    pub asset: String,
    pub job_id: String,
    /// Upstream assets (of this run) it waits for.
    pub after: Vec<String>,
    /// The allocation (grouped job) the asset runs in as an `srun` step;
    /// its progress is read from `<run_dir>/<allocation>.steps`
    /// (see [`super::driver`]). `None`: a job of its own.
    #[serde(default)]
    pub step_of: Option<String>,
}

/// [`WatchJob`]s from what [`super::submit_all`] was given and returned.
pub fn watch_jobs(specs: &[JobSpec], submitted: &[(String, String)]) -> Vec<WatchJob> {
    submitted
        .iter()
        .map(|(asset, id)| WatchJob {
            asset: asset.clone(),
            job_id: id.clone(),
            after: specs
                .iter()
                .find(|s| s.asset == *asset)
                .map(|s| s.after.clone())
                .unwrap_or_default(),
            step_of: None,
        })
        .collect()
}

/// Everything [`watch_run`] needs.
pub struct WatchRun<'a> {
    pub remote: &'a Remote,
    /// Absolute run directory holding `<asset>.out` / `<asset>.err`.
    pub run_dir: &'a str,
    pub jobs: &'a [WatchJob],
    pub emit: &'a dyn Emit,
    /// When set, all jobs of the run still queued or running are
    /// `scancel`ed and the watch returns.
    pub cancel: &'a AtomicBool,
    /// Where offsets and job states are saved, and saved offsets read from
    /// (a missing `run_jobs` row is created).
    pub db: Option<(&'a StateDb, RunId)>,
}

/// How one job ended (or stood, if the watch was cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    pub asset: String,
    pub job_id: String,
    pub state: AssetState,
    /// Slurm's state: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    pub slurm_state: String,
    pub node: Option<String>,
    pub elapsed_ms: Option<u64>,
    pub exit_code: Option<i32>,
    /// Signal that ended the job, if any.
    pub signal: Option<i32>,
    /// Metadata the bundle reported (objects merged).
    pub metadata: serde_json::Value,
    /// Size of the value the bundle wrote (`materialized` event).
    pub materialized_bytes: Option<u64>,
    /// The bundle's own error (`failed` event).
    pub bundle_error: Option<String>,
    /// Last lines of the job's `.err` (failed jobs).
    pub stderr_tail: String,
    pub stdout_offset: u64,
    pub stderr_offset: u64,
}

/// What [`watch_run`] returns once every job is terminal or the run was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlurmJobsResult {
    pub jobs: Vec<JobOutcome>,
    /// The cancel flag was set and the run's jobs were cancelled.
    pub cancelled: bool,
    /// Problems that did not stop the watch (e.g. output streaming gave up).
    pub warnings: Vec<String>,
}

impl SlurmJobsResult {
    pub fn job(&self, asset: &str) -> Option<&JobOutcome> {
        self.jobs.iter().find(|j| j.asset == asset)
    }

    pub fn all_done(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.state, AssetState::Done { .. }))
    }
}

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch: {0}")]
    Invalid(String),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("lost track of the run's jobs: {0}")]
    Poll(String),
}

/// `scancel` all `job_ids` in one command. Jobs already finished are not an error.
pub async fn cancel<S: AsRef<str>>(remote: &Remote, job_ids: &[S]) -> Result<(), SshError> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["scancel".to_string()];
    for id in job_ids {
        let id = id.as_ref();
        if !valid_job_id(id) {
            return Err(SshError::BadArgument(format!("`{id}` is not a job id")));
        }
        argv.push(id.to_string());
    }
    let out = remote.run(&argv).await?;
    let err = out.stderr_text();
    if out.success()
        || err.contains("already completing or completed")
        || err.contains("Invalid job id")
    {
        Ok(())
    } else {
        Err(SshError::Command {
            host: remote.target().host.clone(),
            command: argv.join(" "),
            detail: format!("exit status {:?}: {}", out.code, err.trim()),
        })
    }
}

fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Per-job results of the bundle protocol.
#[derive(Debug, Default, Clone)]
struct Proto {
    metadata: serde_json::Value,
    materialized: Option<u64>,
    bundle_error: Option<String>,
}

/// State shared by the tail and poll loops (never locked across an await).
struct Shared {
    demux: Demux,
    proto: Vec<Proto>,
    saved: Vec<(u64, u64)>,
    /// Grouped runs: what the allocations' `.steps` files said.
    steps: steps::Steps,
}

/// A job as the poll loop sees it.
#[derive(Debug, Clone)]
struct Track {
    slurm_state: String,
    reason: String,
    node: Option<String>,
    terminal: bool,
    /// Last state emitted.
    emitted: Option<AssetState>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    elapsed_ms: Option<u64>,
    stderr_tail: String,
    final_sizes: Option<(u64, u64)>,
    /// Upstream job ids Slurm marked `(failed)` in `Dependency=`.
    failed_deps: Vec<String>,
    missing_polls: u32,
    /// For dependents: why this job did not complete ("upstream x failed").
    root_cause: Option<String>,
}

impl Track {
    fn new() -> Track {
        Track {
            slurm_state: "UNKNOWN".into(),
            reason: String::new(),
            node: None,
            terminal: false,
            emitted: None,
            exit_code: None,
            signal: None,
            elapsed_ms: None,
            stderr_tail: String::new(),
            final_sizes: None,
            failed_deps: Vec::new(),
            missing_polls: 0,
            root_cause: None,
        }
    }
}

fn is_terminal_slurm(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "OUT_OF_MEMORY"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

fn is_pending_slurm(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESV_DEL_HOLD"
            | "UNKNOWN"
    )
}

/// Follow a run until every job is terminal (or the cancel flag has been
/// set for [`CANCEL_GRACE`]),
/// streaming output and state changes as events. See the module docs.
pub async fn watch_run(w: WatchRun<'_>) -> Result<SlurmJobsResult, WatchError> {
    check_abs_path(w.run_dir)?;
    if w.jobs.is_empty() {
        return Err(WatchError::Invalid("no jobs".into()));
    }
    for j in w.jobs {
        if !is_identifier(&j.asset) {
            return Err(WatchError::Invalid(format!(
                "`{}` is not an asset name",
                j.asset
            )));
        }
        if !valid_job_id(&j.job_id) {
            return Err(WatchError::Invalid(format!(
                "`{}` is not a job id (asset {})",
                j.job_id, j.asset
            )));
        }
    }
    let run_dir = w.run_dir.trim_end_matches('/');
    let mut offsets = vec![(0u64, 0u64); w.jobs.len()];
    if let Some((db, run)) = w.db {
        for (i, j) in w.jobs.iter().enumerate() {
            match db.offsets(run, &j.asset)? {
                Some(o) => offsets[i] = o,
                None => db.upsert_job(run, &j.asset, Some(&j.job_id), "queued")?,
            }
        }
    }
    let mut files = Vec::new();
    for (i, j) in w.jobs.iter().enumerate() {
        files.push((
            i,
            Stream::Stdout,
            format!("{run_dir}/{}.out", j.asset),
            offsets[i].0,
        ));
        files.push((
            i,
            Stream::Stderr,
            format!("{run_dir}/{}.err", j.asset),
            offsets[i].1,
        ));
    }
    let steps = steps::Steps::new(w.jobs);
    steps.add_files(run_dir, w.jobs.len(), &mut files);
    let anchor = format!("{run_dir}/{TAIL_ANCHOR}");
    let mut tail_argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        TAIL_SCRIPT.into(),
        "sh".into(),
        anchor.clone(),
    ];
    tail_argv.extend(files.iter().map(|f| f.2.clone()));
    let tail_line = command_line(&tail_argv)?;

    let shared = Mutex::new(Shared {
        demux: Demux::new(files).ignore(anchor),
        proto: vec![Proto::default(); w.jobs.len()],
        saved: offsets,
        steps,
    });
    let _final_save = SaveOnDrop {
        w: &w,
        shared: &shared,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let tail = tail_loop(&w, &tail_line, &shared, stop_rx);
    let poll = async {
        let r = poll_loop(&w, run_dir, &shared).await;
        let _ = stop_tx.send(true);
        r
    };
    let (mut warnings, polled) = tokio::join!(tail, poll);
    let (tracks, cancelled, poll_warnings) = polled?;
    warnings.extend(poll_warnings);
    let sh = shared.lock().expect("poisoned");
    let jobs = w
        .jobs
        .iter()
        .zip(tracks)
        .enumerate()
        .map(|(i, (j, t))| {
            let (o, e) = sh.demux.offsets(i);
            let p = &sh.proto[i];
            JobOutcome {
                asset: j.asset.clone(),
                job_id: j.job_id.clone(),
                state: t.emitted.clone().unwrap_or(AssetState::Queued {
                    job_id: Some(j.job_id.clone()),
                }),
                slurm_state: t.slurm_state,
                node: t.node,
                elapsed_ms: t.elapsed_ms,
                exit_code: t.exit_code,
                signal: t.signal,
                metadata: p.metadata.clone(),
                materialized_bytes: p.materialized,
                bundle_error: p.bundle_error.clone(),
                stderr_tail: t.stderr_tail,
                stdout_offset: o,
                stderr_offset: e,
            }
        })
        .collect();
    Ok(SlurmJobsResult {
        jobs,
        cancelled,
        warnings,
    })
}

/// The remote side of the tail: `$1` is the anchor, the rest are the jobs'
/// files. GNU tail gives up inotify (and polls every `-s`) when none of its
/// files exists at startup, as happens before any job started; the empty
/// anchor file, created here, keeps inotify on (and is ignored). tail runs
/// in the background bound to this shell (`--pid=$$`); the shell waits for
/// a line or EOF on stdin and exits, after which tail reads once more and
/// exits.
pub(crate) const TAIL_SCRIPT: &str = "touch -- \"$1\" 2>/dev/null; \
tail -F -v -c +1 -s 0.5 --pid=$$ -- \"$@\" </dev/null 2>/dev/null & read -r _ || :";

/// Empty file in the run directory that the tail also follows (see [`TAIL_SCRIPT`]).
pub const TAIL_ANCHOR: &str = ".slurmbook-tail";

struct SaveOnDrop<'a, 'w> {
    w: &'a WatchRun<'w>,
    shared: &'a Mutex<Shared>,
}

impl Drop for SaveOnDrop<'_, '_> {
    fn drop(&mut self) {
        save_offsets(self.w, self.shared);
    }
}

/// Write changed offsets to the db (cheap: WAL, no fsync per commit).
fn save_offsets(w: &WatchRun<'_>, shared: &Mutex<Shared>) {
    let Some((db, run)) = w.db else { return };
    let changed: Vec<(usize, (u64, u64))> = {
        let Ok(mut sh) = shared.lock() else { return };
        let mut v = Vec::new();
        for i in 0..w.jobs.len() {
            let o = sh.demux.offsets(i);
            if o != sh.saved[i] {
                sh.saved[i] = o;
                v.push((i, o));
            }
        }
        v
    };
    for (i, (o, e)) in changed {
        if let Err(err) = db.set_offsets(run, &w.jobs[i].asset, o, e) {
            tracing::warn!("saving output offsets of {}: {err}", w.jobs[i].asset);
        }
    }
}

/// Held while output is emitted and its offsets saved, so that a process
/// about to exit can wait for both to happen (or neither): see [`freeze_output`].
static OUTPUT_GATE: Mutex<()> = Mutex::new(());

/// Wait until output being emitted has its offsets saved, then stop every
/// watcher of this process from emitting more. For a kernel about to exit
/// (restart): a later `%attach` resumes exactly after the last line shown.
pub fn freeze_output() {
    let guard = OUTPUT_GATE.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::forget(guard);
}

/// Emit pieces and save the offsets they reach, as one step under [`OUTPUT_GATE`].
fn emit_and_save(w: &WatchRun<'_>, shared: &Mutex<Shared>, pieces: Vec<Piece>) {
    let _gate = OUTPUT_GATE.lock().unwrap_or_else(|p| p.into_inner());
    handle_pieces(w, shared, pieces);
    save_offsets(w, shared);
}

/// Emit what the demultiplexer found; protocol lines update `proto`.
fn handle_pieces(w: &WatchRun<'_>, shared: &Mutex<Shared>, pieces: Vec<Piece>) {
    for p in pieces {
        match p {
            Piece::Output { job, stream, text } => w.emit.emit(Event::Output {
                asset: w.jobs[job].asset.clone(),
                stream,
                text,
            }),
            Piece::Protocol { job, json, replay } => {
                let asset = &w.jobs[job].asset;
                let v: serde_json::Value = match serde_json::from_str(&json) {
                    Ok(v) => v,
                    Err(_) => {
                        if !replay {
                            w.emit.emit(Event::Output {
                                asset: asset.clone(),
                                stream: Stream::Stdout,
                                text: format!("SLURMBOOK {json}\n"),
                            });
                        }
                        continue;
                    }
                };
                let event = v.get("event").and_then(|e| e.as_str()).unwrap_or("");
                let mut sh = shared.lock().expect("poisoned");
                let proto = &mut sh.proto[job];
                match event {
                    "metadata" => {
                        let m = v.get("metadata").cloned().unwrap_or_default();
                        match (&mut proto.metadata, &m) {
                            (serde_json::Value::Object(old), serde_json::Value::Object(new)) => {
                                for (k, x) in new {
                                    old.insert(k.clone(), x.clone());
                                }
                            }
                            _ => proto.metadata = m.clone(),
                        }
                        drop(sh);
                        if !replay {
                            w.emit.emit(Event::Metadata {
                                asset: asset.clone(),
                                metadata: m,
                            });
                        }
                    }
                    "materialized" => {
                        proto.materialized =
                            Some(v.get("bytes").and_then(|b| b.as_u64()).unwrap_or(0))
                    }
                    "failed" => {
                        proto.bundle_error = Some(
                            v.get("error")
                                .and_then(|e| e.as_str())
                                .unwrap_or("failed")
                                .to_string(),
                        )
                    }
                    "display" => {
                        drop(sh);
                        if let (false, Some(serde_json::Value::Object(data))) =
                            (replay, v.get("data"))
                        {
                            w.emit.emit(Event::Display {
                                asset: asset.clone(),
                                data: data.clone().into_iter().collect(),
                            });
                        }
                    }
                    other => tracing::debug!("ignoring bundle event `{other}` of {asset}"),
                }
            }
        }
    }
}

/// Run (and re-run, if the connection breaks) the tail until told to stop.
async fn tail_loop(
    w: &WatchRun<'_>,
    line: &str,
    shared: &Mutex<Shared>,
    mut stop_rx: watch::Receiver<bool>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut breaks = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut child = match w.remote.spawn_streaming(line).await {
            Ok(c) => c,
            Err(e) => {
                breaks += 1;
                if *stop_rx.borrow() || breaks > 10 || !recoverable(&e) {
                    warnings.push(format!("output streaming stopped: {e}"));
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut stdin = child.stdin().take();
        let Some(mut stdout) = child.stdout().take() else {
            warnings.push("output streaming: no stdout".into());
            break;
        };
        let mut stopping = false;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut clean_eof = false;
        loop {
            let stop_wait = async {
                if stopping {
                    std::future::pending::<()>().await
                } else {
                    let _ = stop_rx.wait_for(|s| *s).await;
                }
            };
            let give_up = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let holds = shared.lock().expect("poisoned").demux.holds_newline();
            let quiet = if holds { NEWLINE_HOLD } else { IDLE };
            tokio::select! {
                r = tokio::time::timeout(quiet, stdout.read(&mut buf)) => {
                    let mut pieces = Vec::new();
                    match r {
                        Err(_) => {
                            let mut sh = shared.lock().expect("poisoned");
                            if holds {
                                sh.demux.release_newline(&mut pieces);
                            } else {
                                sh.demux.flush_partials(&mut pieces);
                            }
                        }
                        Ok(Ok(0)) => { clean_eof = true; break }
                        Ok(Ok(n)) => shared.lock().expect("poisoned").demux.feed(&buf[..n], &mut pieces),
                        Ok(Err(e)) => { tracing::debug!("tail read: {e}"); break }
                    }
                    let pieces = steps::take_status(w, shared, pieces);
                    emit_and_save(w, shared, pieces);
                }
                _ = stop_wait => {
                    stopping = true;
                    // EOF on the remote shell's stdin: tail reads once more and exits.
                    drop(stdin.take());
                    deadline = Some(tokio::time::Instant::now() + Duration::from_secs(10));
                }
                _ = give_up => {
                    warnings.push("output streaming: tail did not finish within 10 s of the run's end".into());
                    break;
                }
            }
        }
        let mut pieces = Vec::new();
        {
            let mut sh = shared.lock().expect("poisoned");
            if stopping && clean_eof {
                sh.demux.finish(&mut pieces);
            } else {
                sh.demux.broken(&mut pieces);
            }
        }
        let pieces = steps::take_status(w, shared, pieces);
        emit_and_save(w, shared, pieces);
        drop(stdout);
        drop(child);
        if stopping {
            break;
        }
        // The stream broke off (connection lost, tail killed): start again
        // from the offsets accounted for.
        breaks += 1;
        tracing::info!("output stream of the run ended unexpectedly; restarting it");
        shared.lock().expect("poisoned").demux.restart();
        if breaks > 10 {
            warnings
                .push("output streaming: the tail broke off more than 10 times; giving up".into());
            break;
        }
        if let Err(e) = w.remote.ensure_alive().await {
            if !recoverable(&e) {
                warnings.push(format!("output streaming stopped: {e}"));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    warnings
}

fn recoverable(e: &SshError) -> bool {
    matches!(
        e,
        SshError::Disconnected { .. }
            | SshError::Unreachable { .. }
            | SshError::Connect { .. }
            | SshError::Command { .. }
    )
}

/// Poll states until every job is terminal; returns the tracks, whether
/// the run was cancelled, and warnings.
async fn poll_loop(
    w: &WatchRun<'_>,
    run_dir: &str,
    shared: &Mutex<Shared>,
) -> Result<(Vec<Track>, bool, Vec<String>), WatchError> {
    let n = w.jobs.len();
    let mut tracks: Vec<Track> = (0..n).map(|_| Track::new()).collect();
    let order = topo_order(w.jobs);
    let index: HashMap<&str, usize> = w
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.asset.as_str(), i))
        .collect();
    let by_job_id: HashMap<&str, usize> = w
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.job_id.as_str(), i))
        .collect();
    let mut interval = POLL_MIN;
    let mut cancelled = false;
    let mut cancel_seen: Option<Instant> = None;
    let mut cancel_deadline: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    let mut warnings = Vec::new();
    // True once the cancel flag has been set for CANCEL_GRACE.
    let mut cancel_due = |cancelled: bool| {
        if cancelled || !w.cancel.load(Ordering::Relaxed) {
            return false;
        }
        cancel_seen.get_or_insert_with(Instant::now).elapsed() >= CANCEL_GRACE
    };
    loop {
        if cancel_due(cancelled) {
            cancelled = true;
            let ids: Vec<&str> = w
                .jobs
                .iter()
                .zip(&tracks)
                .filter(|(_, t)| !t.terminal)
                .map(|(j, _)| j.job_id.as_str())
                .collect();
            let mut seen = std::collections::HashSet::new();
            let ids: Vec<&str> = ids.into_iter().filter(|i| seen.insert(*i)).collect();
            if let Err(e) = cancel(w.remote, &ids).await {
                warnings.push(format!("scancel failed: {e}"));
            }
            cancel_deadline = Some(Instant::now() + Duration::from_secs(15));
            interval = POLL_MIN;
        }
        let mut changed = false;
        match poll_once(w, run_dir, &mut tracks, shared).await {
            Ok(c) => {
                changed = c;
                failing_since = None;
            }
            Err(e) => {
                if !recoverable(&e) {
                    return Err(e.into());
                }
                let since = *failing_since.get_or_insert_with(Instant::now);
                tracing::warn!("polling job states: {e}");
                if since.elapsed() > Duration::from_secs(300) {
                    return Err(WatchError::Poll(format!(
                        "job states could not be read for 5 minutes: {e}"
                    )));
                }
            }
        }
        if cancelled && cancel_deadline.is_some_and(|d| Instant::now() > d) {
            for t in tracks.iter_mut().filter(|t| !t.terminal) {
                t.terminal = true;
                t.slurm_state = "CANCELLED".into();
                t.reason = "slurmbook".into();
            }
        }
        changed |= resolve_states(
            w,
            &order,
            &index,
            &by_job_id,
            &mut tracks,
            shared,
            cancelled,
        );
        if tracks.iter().all(|t| t.terminal) {
            break;
        }
        interval = if changed {
            POLL_MIN
        } else {
            interval.mul_f64(1.5).min(POLL_MAX)
        };
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if cancel_due(cancelled) {
                break;
            }
            if shared.lock().expect("poisoned").steps.dirty {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
        }
    }
    // Let the tail catch up with the files' final sizes before stopping it.
    wait_caught_up(shared, &tracks, (0..n).collect(), Duration::from_secs(5)).await;
    Ok((tracks, cancelled, warnings))
}

/// Wait until the tail has received every byte of the jobs' files (as
/// measured when they ended), or `limit` passed.
async fn wait_caught_up(
    shared: &Mutex<Shared>,
    tracks: &[Track],
    jobs: Vec<usize>,
    limit: Duration,
) {
    let start = Instant::now();
    loop {
        let behind = {
            let sh = shared.lock().expect("poisoned");
            jobs.iter().any(|&i| {
                let Some((o, e)) = tracks[i].final_sizes else {
                    return false;
                };
                sh.demux.files().iter().filter(|f| f.job == i).any(|f| {
                    let size = if f.stream == Stream::Stdout { o } else { e };
                    f.received().max(f.offset()) < size
                })
            })
        };
        if !behind || start.elapsed() > limit {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One poll: squeue for all live jobs, details for those that ended.
/// Returns whether anything changed.
async fn poll_once(
    w: &WatchRun<'_>,
    run_dir: &str,
    tracks: &mut [Track],
    shared: &Mutex<Shared>,
) -> Result<bool, SshError> {
    let live: Vec<usize> = (0..tracks.len()).filter(|&i| !tracks[i].terminal).collect();
    if live.is_empty() {
        return Ok(false);
    }
    let mut ids: Vec<&str> = live.iter().map(|&i| w.jobs[i].job_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    shared.lock().expect("poisoned").steps.dirty = false;
    let out = w
        .remote
        .run(&[
            "squeue",
            "--noheader",
            "--states=all",
            &format!("--jobs={}", ids.join(",")),
            "--format=%i|%T|%N|%r",
        ])
        .await?;
    let stderr = out.stderr_text();
    if !out.success() && !stderr.contains("Invalid job id") {
        return Err(SshError::Command {
            host: w.remote.target().host.clone(),
            command: "squeue".into(),
            detail: format!("exit status {:?}: {}", out.code, stderr.trim()),
        });
    }
    let mut listed: HashMap<String, (String, String, String)> = HashMap::new();
    for l in out.stdout_text().lines() {
        let mut f = l.trim().splitn(4, '|');
        if let (Some(id), Some(st), Some(node), Some(reason)) =
            (f.next(), f.next(), f.next(), f.next())
        {
            listed.insert(
                id.to_string(),
                (st.to_string(), node.to_string(), reason.to_string()),
            );
        }
    }
    let mut changed = false;
    let mut need_detail = Vec::new();
    for &i in &live {
        if w.jobs[i].step_of.is_some() {
            let job = listed.get(&w.jobs[i].job_id);
            let t = &mut tracks[i];
            changed |= steps::poll_step(w, shared, i, t, job, &mut need_detail);
            continue;
        }
        let t = &mut tracks[i];
        match listed.get(&w.jobs[i].job_id) {
            Some((st, node, reason)) => {
                // CANCELLED+ etc.: keep the word.
                let st = st.trim_end_matches('+').to_string();
                if st != t.slurm_state {
                    changed = true;
                }
                t.slurm_state = st.clone();
                t.reason = reason.clone();
                if !node.is_empty() && node != "(null)" {
                    t.node = Some(node.clone());
                }
                t.missing_polls = 0;
                if is_terminal_slurm(&st) {
                    need_detail.push(i);
                }
            }
            None => need_detail.push(i),
        }
    }
    if need_detail.is_empty() {
        return Ok(changed);
    }
    let details = job_details(w, run_dir, &need_detail).await?;
    let mut ended = Vec::new();
    for i in need_detail {
        let t = &mut tracks[i];
        if w.jobs[i].step_of.is_some() {
            if steps::step_detail(w, shared, i, t, details.get(&w.jobs[i].asset)) {
                ended.push(i);
                changed = true;
            }
            continue;
        }
        match details.get(&w.jobs[i].asset) {
            Some(d) if d.state.is_some() => {
                let st = d.state.clone().unwrap_or_default();
                t.slurm_state = st.clone();
                if let Some(r) = &d.reason {
                    t.reason = r.clone();
                }
                if d.node.is_some() {
                    t.node = d.node.clone();
                }
                t.exit_code = d.exit_code;
                t.signal = d.signal;
                t.elapsed_ms = d.elapsed_ms;
                t.failed_deps = d.failed_deps.clone();
                t.stderr_tail = d.stderr_tail.clone();
                t.final_sizes = d.sizes;
                if is_terminal_slurm(&st) {
                    t.terminal = true;
                    ended.push(i);
                }
                changed = true;
            }
            other => {
                t.missing_polls += 1;
                if t.missing_polls >= 3 {
                    t.terminal = true;
                    t.slurm_state = "UNKNOWN".into();
                    t.reason = "vanished".into();
                    if let Some(d) = other {
                        t.stderr_tail = d.stderr_tail.clone();
                        t.final_sizes = d.sizes;
                    }
                    ended.push(i);
                    changed = true;
                }
            }
        }
    }
    // Show the ended jobs' last output before their final state.
    wait_caught_up(shared, tracks, ended, Duration::from_secs(2)).await;
    Ok(changed)
}

#[derive(Debug, Default, Clone)]
struct Detail {
    state: Option<String>,
    reason: Option<String>,
    node: Option<String>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    elapsed_ms: Option<u64>,
    failed_deps: Vec<String>,
    stderr_tail: String,
    sizes: Option<(u64, u64)>,
    /// Grouped jobs: the allocation's `.steps` file.
    steps_text: Option<String>,
}

fn nonce() -> String {
    use sha2::{Digest, Sha256};
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = Sha256::digest(format!("{t}-{}-{:p}", std::process::id(), &t).as_bytes());
    format!("SB{}", &hex::encode(h)[..16])
}

/// One round trip: scontrol (or sacct) record, `.err` tail and file sizes of each job.
async fn job_details(
    w: &WatchRun<'_>,
    run_dir: &str,
    jobs: &[usize],
) -> Result<HashMap<String, Detail>, SshError> {
    let n = nonce();
    let mut s = format!("n={n}\n");
    let mut asked = std::collections::HashSet::new();
    for &i in jobs {
        let j = &w.jobs[i];
        let id = &j.job_id; // digits only (validated)
        let out = quote(&format!("{run_dir}/{}.out", j.asset)).into_owned();
        let err = quote(&format!("{run_dir}/{}.err", j.asset)).into_owned();
        // asset: an identifier (validated); the job's record once per call.
        s.push_str(&format!(
            "printf '%s JOB %s %s\\n' \"$n\" {id} {}\n",
            j.asset
        ));
        if asked.insert(id.as_str()) {
            s.push_str(&format!(
                "scontrol show job -o {id} 2>/dev/null || {{ l=$(sacct -n -P -X -j {id} --format=JobID,State,ExitCode,NodeList,ElapsedRaw 2>/dev/null | head -n 1); if [ -n \"$l\" ]; then printf 'SACCT|%s\\n' \"$l\"; fi; }}\n"
            ));
        }
        if let Some(g) = &j.step_of {
            s.push_str(&format!(
                "printf '%s STEPS\\n' \"$n\"\ncat {} 2>/dev/null\n",
                quote(&super::driver::steps_file(run_dir, g))
            ));
        }
        s.push_str(&format!(
            "printf '%s ERR\\n' \"$n\"\n\
             tail -n {STDERR_TAIL_LINES} {err} 2>/dev/null | tail -c 16384\n\
             o=$(wc -c 2>/dev/null < {out}) || o=0\n\
             e=$(wc -c 2>/dev/null < {err}) || e=0\n\
             printf '\\n%s SIZE %s %s\\n' \"$n\" $o $e\n"
        ));
    }
    let out = w.remote.run_script_idempotent(&s).await?;
    Ok(parse_details(&out.stdout_text(), &n))
}

fn parse_details(text: &str, n: &str) -> HashMap<String, Detail> {
    let job_mark = format!("{n} JOB ");
    let err_mark = format!("{n} ERR");
    let size_mark = format!("{n} SIZE ");
    let steps_mark = format!("{n} STEPS");
    // Keyed by asset (`JOB <id> <asset>`), or by job id without one.
    let mut map = HashMap::new();
    let mut job_of: HashMap<String, String> = HashMap::new();
    let mut cur: Option<(String, Detail)> = None;
    let mut in_err = false;
    let mut in_steps = false;
    let mut err_lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix(&job_mark) {
            if let Some((key, d)) = cur.take() {
                map.insert(key, d);
            }
            let mut words = rest.split_whitespace();
            let id = words.next().unwrap_or_default().to_string();
            let key = words
                .next()
                .map(str::to_owned)
                .unwrap_or_else(|| id.clone());
            job_of.insert(key.clone(), id);
            cur = Some((key, Detail::default()));
            in_err = false;
            in_steps = false;
            continue;
        }
        let Some((_, d)) = cur.as_mut() else { continue };
        if line == steps_mark {
            in_steps = true;
            d.steps_text = Some(String::new());
        } else if line == err_mark {
            in_steps = false;
            in_err = true;
            err_lines.clear();
        } else if let Some(sizes) = line.strip_prefix(&size_mark) {
            in_err = false;
            while err_lines.last().is_some_and(|l| l.is_empty()) {
                err_lines.pop();
            }
            d.stderr_tail = err_lines.join("\n");
            let mut it = sizes
                .split_whitespace()
                .map(|x| x.parse::<u64>().unwrap_or(0));
            d.sizes = Some((it.next().unwrap_or(0), it.next().unwrap_or(0)));
        } else if in_err {
            err_lines.push(line);
        } else if in_steps {
            if let Some(t) = d.steps_text.as_mut() {
                t.push_str(line);
                t.push('\n');
            }
        } else if line.starts_with("JobId=") {
            parse_scontrol(line, d);
        } else if let Some(rest) = line.strip_prefix("SACCT|") {
            parse_sacct(rest, d);
        }
    }
    if let Some((key, d)) = cur.take() {
        map.insert(key, d);
    }
    // Several assets of one job (a grouped run): the job's record was
    // printed once; give it to each.
    let records: HashMap<String, Detail> = map
        .iter()
        .filter(|(_, d)| d.state.is_some())
        .map(|(k, d)| (job_of[k].clone(), d.clone()))
        .collect();
    for (key, d) in map.iter_mut() {
        if d.state.is_none() {
            if let Some(r) = records.get(&job_of[key]) {
                d.state = r.state.clone();
                d.reason = r.reason.clone();
                d.node = r.node.clone();
                d.exit_code = r.exit_code;
                d.signal = r.signal;
                d.elapsed_ms = r.elapsed_ms;
                d.failed_deps = r.failed_deps.clone();
            }
        }
    }
    map
}

fn parse_exit(s: &str) -> (Option<i32>, Option<i32>) {
    let mut it = s.split(':');
    let code = it.next().and_then(|c| c.parse().ok());
    let sig = it.next().and_then(|c| c.parse().ok()).filter(|s| *s != 0);
    (code, sig)
}

fn parse_time(s: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()
}

fn parse_scontrol(line: &str, d: &mut Detail) {
    let mut f: HashMap<&str, &str> = HashMap::new();
    for w in line.split_whitespace() {
        if let Some((k, v)) = w.split_once('=') {
            f.entry(k).or_insert(v);
        }
    }
    d.state = f.get("JobState").map(|s| s.to_string());
    d.reason = f.get("Reason").map(|s| s.to_string());
    d.node = f
        .get("NodeList")
        .filter(|n| !n.is_empty() && **n != "(null)")
        .map(|s| s.to_string());
    let (code, sig) = f
        .get("ExitCode")
        .map(|e| parse_exit(e))
        .unwrap_or((None, None));
    d.exit_code = code;
    d.signal = sig;
    if let (Some(a), Some(b)) = (
        f.get("StartTime").and_then(|s| parse_time(s)),
        f.get("EndTime").and_then(|s| parse_time(s)),
    ) {
        let ms = (b - a).num_milliseconds();
        if ms >= 0 {
            d.elapsed_ms = Some(ms as u64);
        }
    }
    if let Some(dep) = f.get("Dependency") {
        // afterok:123(failed),afterok:124(unfulfilled) or afterok:123(failed):124(...)
        for part in dep.split([',', '?']) {
            let part = part.split_once(':').map(|(_, r)| r).unwrap_or(part);
            for item in part.split(':') {
                if let Some(id) = item.strip_suffix("(failed)") {
                    let id = id.split('_').next().unwrap_or(id);
                    if valid_job_id(id) {
                        d.failed_deps.push(id.to_string());
                    }
                }
            }
        }
    }
}

fn parse_sacct(rest: &str, d: &mut Detail) {
    // JobID|State|ExitCode|NodeList|ElapsedRaw
    let f: Vec<&str> = rest.split('|').collect();
    if f.len() < 5 {
        return;
    }
    d.state = f[1].split_whitespace().next().map(str::to_string);
    let (code, sig) = parse_exit(f[2]);
    d.exit_code = code;
    d.signal = sig;
    d.node = Some(f[3].to_string()).filter(|n| !n.is_empty() && n != "None assigned");
    d.elapsed_ms = f[4].trim().parse::<u64>().ok().map(|s| s * 1000);
}

fn topo_order(jobs: &[WatchJob]) -> Vec<usize> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.asset.as_str(), i))
        .collect();
    let mut done = vec![false; jobs.len()];
    let mut order = Vec::with_capacity(jobs.len());
    while order.len() < jobs.len() {
        let next = (0..jobs.len()).find(|&i| {
            !done[i]
                && jobs[i]
                    .after
                    .iter()
                    .all(|u| index.get(u.as_str()).is_none_or(|&k| done[k] || k == i))
        });
        // A cycle cannot be submitted; take the rest in order if it happens.
        let i = next.unwrap_or_else(|| (0..jobs.len()).find(|&i| !done[i]).expect("not all done"));
        done[i] = true;
        order.push(i);
    }
    order
}

/// Compute each job's [`AssetState`] and emit transitions (in topological
/// order, so a cancelled dependent can name the failed upstream). Returns
/// whether anything was emitted.
fn resolve_states(
    w: &WatchRun<'_>,
    order: &[usize],
    index: &HashMap<&str, usize>,
    by_job_id: &HashMap<&str, usize>,
    tracks: &mut [Track],
    shared: &Mutex<Shared>,
    user_cancelled: bool,
) -> bool {
    let mut changes: Vec<(String, &'static str)> = Vec::new();
    for &i in order {
        let j = &w.jobs[i];
        let t = &tracks[i];
        let state = if !t.terminal {
            if is_pending_slurm(&t.slurm_state) {
                AssetState::Queued {
                    job_id: Some(j.job_id.clone()),
                }
            } else {
                AssetState::Running {
                    location: t.node.clone().unwrap_or_else(|| "slurm".into()),
                }
            }
        } else {
            let bundle_error = shared.lock().expect("poisoned").proto[i]
                .bundle_error
                .clone();
            match t.slurm_state.as_str() {
                "COMPLETED" => AssetState::Done {
                    duration_ms: t.elapsed_ms.unwrap_or(0),
                    location: t.node.clone().unwrap_or_else(|| "slurm".into()),
                },
                "CANCELLED" => {
                    let upstream = if t.reason.contains("Dependency") || !t.failed_deps.is_empty() {
                        failed_upstream(w, i, index, by_job_id, tracks)
                    } else {
                        None
                    };
                    let because = match upstream {
                        Some(u) => Some(u),
                        None if user_cancelled => Some("interrupted".to_string()),
                        None if t.reason.contains("Dependency") => {
                            Some("an upstream job failed".into())
                        }
                        None => Some("cancelled outside slurmbook (scancel)".into()),
                    };
                    tracks[i].root_cause = because.clone();
                    AssetState::Cancelled { because }
                }
                _ => AssetState::Failed {
                    error: failure_text(&j.asset, &tracks[i], bundle_error.as_deref()),
                },
            }
        };
        let t = &mut tracks[i];
        if t.emitted.as_ref() != Some(&state) {
            t.emitted = Some(state.clone());
            changes.push((j.asset.clone(), state.label()));
            w.emit.emit(Event::State {
                asset: j.asset.clone(),
                state,
            });
        }
    }
    if let (Some((db, run)), false) = (w.db, changes.is_empty()) {
        let pairs: Vec<(&str, &str)> = changes.iter().map(|(a, s)| (a.as_str(), *s)).collect();
        if let Err(e) = db.set_job_states(run, &pairs) {
            tracing::warn!("saving job states: {e}");
        }
    }
    !changes.is_empty()
}

/// "upstream x failed" for a job cancelled because a dependency failed,
/// naming the root failure when the upstream was itself cancelled.
fn failed_upstream(
    w: &WatchRun<'_>,
    i: usize,
    index: &HashMap<&str, usize>,
    by_job_id: &HashMap<&str, usize>,
    tracks: &[Track],
) -> Option<String> {
    let candidates: Vec<usize> = {
        let from_slurm: Vec<usize> = tracks[i]
            .failed_deps
            .iter()
            .filter_map(|id| {
                // A grouped job holds several assets: name the one that failed.
                let of_job = || (0..w.jobs.len()).filter(|&k| w.jobs[k].job_id == *id);
                of_job()
                    .find(|&k| tracks[k].terminal && tracks[k].slurm_state == "FAILED")
                    .or_else(|| {
                        of_job()
                            .find(|&k| tracks[k].terminal && tracks[k].slurm_state != "COMPLETED")
                    })
                    .or_else(|| by_job_id.get(id.as_str()).copied())
            })
            .collect();
        if from_slurm.is_empty() {
            w.jobs[i]
                .after
                .iter()
                .filter_map(|u| index.get(u.as_str()).copied())
                .filter(|&k| tracks[k].terminal && tracks[k].slurm_state != "COMPLETED")
                .collect()
        } else {
            from_slurm
        }
    };
    if let Some(&k) = candidates.first() {
        let up = &tracks[k];
        return Some(match (&up.slurm_state[..], &up.root_cause) {
            ("CANCELLED", Some(cause)) if cause.starts_with("upstream ") => cause.clone(),
            ("CANCELLED", _) => format!("upstream {} was cancelled", w.jobs[k].asset),
            _ => format!("upstream {} failed", w.jobs[k].asset),
        });
    }
    tracks[i]
        .failed_deps
        .first()
        .map(|id| format!("upstream job {id} failed"))
}

fn failure_text(asset: &str, t: &Track, bundle_error: Option<&str>) -> String {
    let mut first = match (t.slurm_state.as_str(), t.exit_code, t.signal) {
        ("TIMEOUT", ..) => "time limit reached (TIMEOUT)".to_string(),
        ("OUT_OF_MEMORY", ..) => "out of memory (OUT_OF_MEMORY)".to_string(),
        ("NODE_FAIL", ..) => "node failure (NODE_FAIL)".to_string(),
        ("UNKNOWN", ..) => format!("the job vanished from Slurm (reason: {})", t.reason),
        (_, _, Some(sig)) => format!("killed by signal {sig} ({})", t.slurm_state),
        (_, Some(code), None) => format!("exit code {code}"),
        (st, None, None) => format!("{st} ({})", t.reason),
    };
    let mut more = String::new();
    if let Some(e) = bundle_error {
        let mut lines = e.lines();
        if let Some(l) = lines.next() {
            first.push_str(": ");
            first.push_str(l);
        }
        let rest: Vec<&str> = lines.collect();
        if !rest.is_empty() {
            more.push('\n');
            more.push_str(&rest.join("\n"));
        }
    }
    if !t.stderr_tail.trim().is_empty() {
        more.push_str(&format!(
            "\n--- last {STDERR_TAIL_LINES} lines of {asset}.err ---\n{}",
            t.stderr_tail
        ));
    }
    first + &more
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scontrol_and_details() {
        let n = "SBx";
        let text = format!(
            "{n} JOB 1\nJobId=1 JobName=wrap JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01 StartTime=2026-11-24T22:24:11 EndTime=2026-11-24T22:24:12 NodeList=vm BatchHost=vm\n{n} ERR\nboom\nline2\n\n{n} SIZE 12 10\n\
             {n} JOB 2\nJobId=2 JobState=CANCELLED Reason=DependencyNeverSatisfied Dependency=afterok:1(failed) ExitCode=0:0 StartTime=Unknown EndTime=2026-11-24T22:24:13 NodeList=\n{n} ERR\n\n{n} SIZE 0 0\n"
        );
        let d = parse_details(&text, n);
        let a = &d["1"];
        assert_eq!(a.state.as_deref(), Some("FAILED"));
        assert_eq!(a.exit_code, Some(3));
        assert_eq!(a.signal, None);
        assert_eq!(a.elapsed_ms, Some(1000));
        assert_eq!(a.node.as_deref(), Some("vm"));
        assert_eq!(a.stderr_tail, "boom\nline2");
        assert_eq!(a.sizes, Some((12, 10)));
        let b = &d["2"];
        assert_eq!(b.state.as_deref(), Some("CANCELLED"));
        assert_eq!(b.failed_deps, ["1"]);
        assert_eq!(b.elapsed_ms, None);
        assert_eq!(b.node, None);
        assert_eq!(b.stderr_tail, "");
    }

    #[test]
    fn failure_text_starts_with_exit_code() {
        let mut t = Track::new();
        t.slurm_state = "FAILED".into();
        t.exit_code = Some(2);
        t.stderr_tail = "panicked at x".into();
        let s = failure_text("a", &t, Some("value too big"));
        assert!(s.starts_with("exit code 2: value too big\n"), "{s}");
        assert!(s.contains("panicked at x"), "{s}");
    }
}
