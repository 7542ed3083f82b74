//! Threads that read evcxr's stdout and stderr channels from the start (evcxr
//! blocks until its stdout channel is drained) and turn the lines of
//! [`super::lines`] into [`Output`]s for the cell that is running.

use super::lines;
use super::Output;
use crossbeam_channel::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// What the pumps share with the engine thread.
pub struct PumpState {
    /// Where output of the running cell goes.
    pub sink: Mutex<Option<UnboundedSender<Output>>>,
    /// Asks the stdout pump to forward what it holds and say so.
    flush: Sender<Sender<()>>,
    pub stderr: Mutex<StderrState>,
    pub stderr_synced: Condvar,
}

#[derive(Default)]
pub struct StderrState {
    /// How many end-of-cell sync lines the stderr pump has seen.
    pub syncs: u64,
    /// The panic message of the running cell, if user code panicked.
    pub panic: Option<Vec<String>>,
    pub panicked: bool,
}

/// How long the engine waits for the stdout pump to confirm a flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

impl PumpState {
    pub fn send(&self, output: Output) {
        if let Some(sink) = self.sink.lock().unwrap().as_ref() {
            if sink.send(output).is_err() {
                tracing::debug!("output after its cell finished was dropped");
            }
        }
    }

    /// Waits until every stdout line evcxr handed over has been forwarded:
    /// the pump finishes the line it holds, forwards any still queued, then
    /// answers (one round trip, no polling).
    pub fn wait_stdout(&self) {
        let (ack, acked) = crossbeam_channel::bounded(1);
        if self.flush.send(ack).is_ok() && acked.recv_timeout(FLUSH_TIMEOUT).is_err() {
            tracing::warn!("the stdout pump did not confirm a flush");
        }
    }

    /// Waits until the stderr pump has seen `syncs` sync lines (or gives up).
    pub fn wait_stderr(&self, syncs: u64, timeout: Duration) -> bool {
        let guard = self.stderr.lock().unwrap();
        let (guard, result) = self
            .stderr_synced
            .wait_timeout_while(guard, timeout, |s| s.syncs < syncs)
            .unwrap();
        drop(guard);
        !result.timed_out()
    }
}

/// Starts the stdout and stderr pumps; returns what they share with the engine.
pub fn spawn(stdout: Receiver<String>, stderr: Receiver<String>) -> Arc<PumpState> {
    let (flush, flushes) = crossbeam_channel::unbounded();
    let state = Arc::new(PumpState {
        sink: Mutex::new(None),
        flush,
        stderr: Mutex::new(StderrState::default()),
        stderr_synced: Condvar::new(),
    });
    let out_state = state.clone();
    std::thread::Builder::new()
        .name("evcxr-stdout".into())
        .spawn(move || stdout_pump(out_state, stdout, flushes))
        .expect("spawn stdout pump");
    let err_state = state.clone();
    std::thread::Builder::new()
        .name("evcxr-stderr".into())
        .spawn(move || stderr_pump(err_state, stderr))
        .expect("spawn stderr pump");
    state
}

fn stdout_pump(state: Arc<PumpState>, rx: Receiver<String>, flushes: Receiver<Sender<()>>) {
    let forward = |line: String| {
        if let Some(output) = decode_stdout(&line, &state) {
            state.send(output);
        }
    };
    loop {
        crossbeam_channel::select! {
            recv(rx) -> line => match line {
                Ok(line) => forward(line),
                Err(_) => return,
            },
            recv(flushes) -> ack => {
                let Ok(ack) = ack else { return };
                while let Ok(line) = rx.try_recv() {
                    forward(line);
                }
                let _ = ack.send(());
            }
        }
    }
}

fn decode_stdout(line: &str, state: &PumpState) -> Option<Output> {
    if let Some(json) = line.strip_prefix(lines::DISPLAY) {
        return match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
            Ok(raw) => Some(super::rich::display_output(raw)),
            Err(error) => {
                tracing::warn!(%error, "undecodable display line from evcxr's child");
                None
            }
        };
    }
    if line == lines::PANIC {
        state.stderr.lock().unwrap().panicked = true;
        return None;
    }
    Some(Output::Stdout(with_newline(line)))
}

fn with_newline(line: &str) -> String {
    match line.strip_suffix(lines::NO_NEWLINE) {
        Some(partial) => partial.to_owned(),
        None => format!("{line}\n"),
    }
}

fn stderr_pump(state: Arc<PumpState>, rx: Receiver<String>) {
    // Blank lines are held back: the panic hook's output starts with one, and
    // a panic is shown as the cell's error, not as stderr.
    let mut blanks = 0;
    while let Ok(line) = rx.recv() {
        let mut s = state.stderr.lock().unwrap();
        if line.is_empty() && s.panic.is_none() {
            blanks += 1;
            continue;
        }
        if line == lines::STDERR_SYNC {
            if blanks > 0 && s.panic.is_none() {
                state.send(Output::Stderr("\n".repeat(std::mem::take(&mut blanks))));
            }
            s.syncs += 1;
            drop(s);
            state.stderr_synced.notify_all();
            continue;
        }
        if s.panic.is_none() && is_panic_start(&line) {
            s.panic = Some(Vec::new());
            blanks = 0;
        }
        if let Some(panic) = s.panic.as_mut() {
            panic.push(with_newline(&line).trim_end_matches('\n').to_owned());
            continue;
        }
        drop(s);
        if blanks > 0 {
            state.send(Output::Stderr("\n".repeat(std::mem::take(&mut blanks))));
        }
        state.send(Output::Stderr(with_newline(&line)));
    }
}

fn is_panic_start(line: &str) -> bool {
    line.starts_with("thread '") && line.contains(" panicked at ")
}

/// The message of a panic from the lines the panic hook printed.
pub fn panic_message(lines: &[String]) -> String {
    let body: Vec<&str> = lines
        .iter()
        .skip(1)
        .map(String::as_str)
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace:"))
        .collect();
    if body.is_empty() {
        lines.first().cloned().unwrap_or_else(|| "panic".into())
    } else {
        body.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_keep_their_missing_newline() {
        assert_eq!(with_newline("abc\u{1}"), "abc");
        assert_eq!(with_newline("abc"), "abc\n");
    }

    #[test]
    fn panic_message_is_the_hook_body() {
        let lines = vec![
            "thread '<unnamed>' panicked at src/lib.rs:3:1:".to_string(),
            "boom".to_string(),
            "note: run with `RUST_BACKTRACE=1`".to_string(),
        ];
        assert!(is_panic_start(&lines[0]));
        assert_eq!(panic_message(&lines), "boom");
    }
}
