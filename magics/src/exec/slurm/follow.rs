//! Following a run's files: ONE remote `tail -F -v -c +1 -s 0.5 --pid=$$
//! FILE...` over the transport for the `.out` and `.err` of every job and
//! the `.steps` file of every allocation.
//!
//! tail runs under a `sh` that waits on its stdin ([`TAIL_SCRIPT`]):
//! closing our end (or losing the connection) ends that shell, and tail,
//! seeing its `--pid` gone, reads the files one last time and exits, so the
//! watcher knows it has everything. [`Demux`] splits tail's
//! `==> FILE <==` sections into per-file bytes with exact byte offsets (see
//! [`super::stream`] for how an offset `N` maps to `tail -c +(N+1)` and why
//! a resume runs `tail -c +1` and drops the first `N` bytes of each file
//! locally). A stream that breaks off (connection lost, tail killed) is
//! started again from the offsets accounted for, up to 10 times.
//!
//! What arrives is handed to a [`Deliver`] as a [`Delivery`]: the jobs'
//! output and protocol pieces, and the `.steps` lines (never shown as
//! output).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::jobs::WatchJob;
use super::protocol::{steps_file, StepLine};
use super::stream::{Demux, Piece};
use crate::events::Stream;
use crate::transport::{words, Transport};

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

/// Quiet time after which partial lines are shown.
const IDLE: Duration = Duration::from_millis(200);
/// Quiet time after which a held line end counts as data (tail writes a
/// separator together with its header, so this only needs to cover one write).
const NEWLINE_HOLD: Duration = Duration::from_millis(20);
/// How long tail may take to finish after the run ended.
const FINISH_WAIT: Duration = Duration::from_secs(10);
/// Breaks of the stream after which it is not started again.
const MAX_BREAKS: u32 = 10;

/// What the tail delivered in one step.
#[derive(Debug, Default)]
pub(super) struct Delivery {
    /// Output and protocol lines of the jobs (by job index).
    pub pieces: Vec<Piece>,
    /// Lines of the allocations' `.steps` files.
    pub step_lines: Vec<StepLine>,
}

/// Takes what the tail delivered: shows it and saves the offsets reached.
pub(super) trait Deliver {
    /// `false`: the output is frozen (the process is about to exit): the
    /// tail stops for good, without showing or saving anything more.
    fn deliver(&self, delivery: Delivery) -> bool;
}

/// The files of one watch and the demultiplexer of their tail.
#[derive(Debug)]
pub(super) struct Follower {
    demux: Demux,
    n_jobs: usize,
    /// Partial last line of each `.steps` file (by file job index).
    step_bufs: HashMap<usize, String>,
}

impl Follower {
    /// The follower of `jobs` (whose output was shown up to `offsets`) and
    /// the allocations `groups`, and the argv of its tail.
    pub fn new(
        run_dir: &str,
        jobs: &[WatchJob],
        offsets: &[(u64, u64)],
        groups: &[String],
    ) -> (Follower, Vec<String>) {
        let mut files = Vec::new();
        for (i, j) in jobs.iter().enumerate() {
            let (o, e) = offsets[i];
            let stem = j.stem();
            files.push((i, Stream::Stdout, format!("{run_dir}/{stem}.out"), o));
            files.push((i, Stream::Stderr, format!("{run_dir}/{stem}.err"), e));
        }
        // The `.steps` files come after the jobs' own: job index n + k.
        for (k, g) in groups.iter().enumerate() {
            files.push((jobs.len() + k, Stream::Stdout, steps_file(run_dir, g), 0));
        }
        // An array's tasks are shown line by line, prefixed by task.
        let tasks: std::collections::HashSet<usize> = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.task.is_some())
            .map(|(i, _)| i)
            .collect();
        let anchor = format!("{run_dir}/{TAIL_ANCHOR}");
        let mut argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            TAIL_SCRIPT.into(),
            "sh".into(),
            anchor.clone(),
        ];
        argv.extend(files.iter().map(|f| f.2.clone()));
        let follower = Follower {
            demux: Demux::new(files).ignore(anchor).whole_lines(&tasks),
            n_jobs: jobs.len(),
            step_bufs: HashMap::new(),
        };
        (follower, argv)
    }

    /// Offsets of job `i`: bytes of `(stdout, stderr)` accounted for.
    pub fn offsets(&self, i: usize) -> (u64, u64) {
        self.demux.offsets(i)
    }

    /// Whether the tail has not yet received all of job `i`'s files, whose
    /// sizes are `(stdout, stderr)`.
    pub fn behind(&self, i: usize, (o, e): (u64, u64)) -> bool {
        self.demux.files().iter().filter(|f| f.job == i).any(|f| {
            let size = if f.stream == Stream::Stdout { o } else { e };
            f.received().max(f.offset()) < size
        })
    }

    /// Take the `.steps` files' pieces out of `pieces`, as lines.
    fn split(&mut self, pieces: Vec<Piece>) -> Delivery {
        let mut d = Delivery::default();
        for p in pieces {
            let job = match &p {
                Piece::Output { job, .. } | Piece::Protocol { job, .. } => *job,
            };
            if job < self.n_jobs {
                d.pieces.push(p);
                continue;
            }
            let Piece::Output { text, .. } = p else {
                continue;
            };
            let buf = self.step_bufs.entry(job).or_default();
            buf.push_str(&text);
            let Some(k) = buf.rfind('\n') else { continue };
            let complete: String = buf.drain(..=k).collect();
            d.step_lines
                .extend(complete.lines().filter_map(StepLine::parse));
        }
        d
    }
}

/// Run (and re-run, if the stream breaks off) the tail until told to
/// stop; returns warnings.
pub(super) async fn tail_loop(
    transport: &dyn Transport,
    argv: &[String],
    follower: &Mutex<Follower>,
    sink: &dyn Deliver,
    mut stop_rx: watch::Receiver<bool>,
) -> Vec<String> {
    let lock = || follower.lock().expect("poisoned");
    let deliver = |pieces: Vec<Piece>| {
        let d = lock().split(pieces);
        sink.deliver(d)
    };
    let mut warnings = Vec::new();
    let mut breaks = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut child = match transport.spawn_streaming(&words(argv)).await {
            Ok(c) => c,
            Err(e) => {
                breaks += 1;
                if *stop_rx.borrow() || breaks > MAX_BREAKS || !e.is_transient() {
                    warnings.push(format!("output streaming stopped: {e}"));
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
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
            let holds = lock().demux.holds_newline();
            let quiet = if holds { NEWLINE_HOLD } else { IDLE };
            tokio::select! {
                r = tokio::time::timeout(quiet, child.stdout.read(&mut buf)) => {
                    let mut pieces = Vec::new();
                    match r {
                        Err(_) => {
                            let mut f = lock();
                            if holds {
                                f.demux.release_newline(&mut pieces);
                            } else {
                                f.demux.flush_partials(&mut pieces);
                            }
                        }
                        Ok(Ok(0)) => { clean_eof = true; break }
                        Ok(Ok(n)) => lock().demux.feed(&buf[..n], &mut pieces),
                        Ok(Err(e)) => { tracing::debug!("tail read: {e}"); break }
                    }
                    if !deliver(pieces) {
                        return frozen().await;
                    }
                }
                _ = stop_wait => {
                    stopping = true;
                    // EOF on the remote shell's stdin: tail reads once more and exits.
                    drop(child.stdin.take());
                    deadline = Some(tokio::time::Instant::now() + FINISH_WAIT);
                }
                _ = give_up => {
                    warnings.push("output streaming: tail did not finish within 10 s of the run's end".into());
                    break;
                }
            }
        }
        let mut pieces = Vec::new();
        {
            let mut f = lock();
            if stopping && clean_eof {
                f.demux.finish(&mut pieces);
            } else {
                f.demux.broken(&mut pieces);
            }
        }
        if !deliver(pieces) {
            return frozen().await;
        }
        drop(child);
        if stopping {
            break;
        }
        // The stream broke off (connection lost, tail killed): start again
        // from the offsets accounted for.
        breaks += 1;
        tracing::info!("output stream of the run ended unexpectedly; restarting it");
        lock().demux.restart();
        if breaks > MAX_BREAKS {
            warnings
                .push("output streaming: the tail broke off more than 10 times; giving up".into());
            break;
        }
        if let Err(e) = transport.ensure_alive().await {
            if !e.is_transient() {
                warnings.push(format!("output streaming stopped: {e}"));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    warnings
}

/// The output is frozen: this process is about to exit; never go on.
async fn frozen() -> Vec<String> {
    std::future::pending::<()>().await;
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_script_is_one_line() {
        assert!(!TAIL_SCRIPT.contains('\n'));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", TAIL_SCRIPT])
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    #[test]
    fn steps_lines_are_split_from_output() {
        let jobs = vec![WatchJob {
            asset: "a".into(),
            job_id: "7".into(),
            after: vec![],
            step_of: Some("alloc_a".into()),
            task: None,
        }];
        let (mut f, argv) = Follower::new("/r", &jobs, &[(0, 0)], &["alloc_a".into()]);
        assert_eq!(
            &argv[4..],
            [
                "/r/.slurmbook-tail",
                "/r/a.out",
                "/r/a.err",
                "/r/alloc_a.steps"
            ]
        );
        let mut pieces = Vec::new();
        f.demux.feed(
            b"==> /r/alloc_a.steps <==\nstart a vm 1.5\nend a 0 2",
            &mut pieces,
        );
        f.demux.feed(b".5\n\n==> /r/a.out <==\nhi\n", &mut pieces);
        f.demux.finish(&mut pieces);
        let d = f.split(pieces);
        assert_eq!(d.step_lines.len(), 2);
        assert_eq!(d.step_lines[1].to_string(), "end a 0 2.5");
        assert_eq!(
            d.pieces,
            [Piece::Output {
                job: 0,
                stream: Stream::Stdout,
                text: "hi\n".into()
            }]
        );
        assert!(!f.behind(0, (3, 0)));
        assert!(f.behind(0, (4, 0)));
    }
}
