//! The Rust engine: one thread owns evcxr's `CommandContext`; the rest of the
//! kernel talks to it through [`Engine`], a cloneable handle. Output of a
//! running cell arrives as [`Output`]s on a channel given with each request;
//! the engine knows nothing of Jupyter messages.

pub mod child_io;
mod errors;
pub mod is_complete;
pub mod lines;
mod pumps;
pub mod rich;
pub mod rustc_cache;
mod thread;
pub mod workdir;

use crate::protocol::MimeBundle;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

/// Output of a running cell, in the order it happened.
#[derive(Debug)]
pub enum Output {
    Stdout(String),
    Stderr(String),
    Display(MimeBundle),
    ClearOutput {
        wait: bool,
    },
    /// User code reads a line (`evcxr_input`); answer on `reply`.
    Input {
        prompt: String,
        password: bool,
        reply: std::sync::mpsc::Sender<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
}

impl ErrorInfo {
    pub fn new(ename: &str, evalue: impl Into<String>) -> ErrorInfo {
        let evalue = evalue.into();
        ErrorInfo {
            ename: ename.into(),
            traceback: vec![format!("{ename}: {evalue}")],
            evalue,
        }
    }
}

#[derive(Debug)]
pub enum ExecOutcome {
    /// The cell ran; `result` is the final expression's bundle, if any.
    Ok {
        result: Option<MimeBundle>,
    },
    Error(ErrorInfo),
}

#[derive(Debug, Default, Clone)]
pub struct Completions {
    pub matches: Vec<String>,
    /// Byte offsets into the code.
    pub start: usize,
    pub end: usize,
}

enum Request {
    Execute {
        code: String,
        sink: UnboundedSender<Output>,
        allow_stdin: bool,
        reply: oneshot::Sender<ExecOutcome>,
    },
    Complete {
        code: String,
        pos: usize,
        reply: oneshot::Sender<Completions>,
    },
    Inspect {
        code: String,
        pos: usize,
        reply: oneshot::Sender<Option<MimeBundle>>,
    },
    Variables {
        reply: oneshot::Sender<Vec<(String, String)>>,
    },
}

/// Handle to the engine thread. Cheap to clone; requests are served in order.
#[derive(Clone)]
pub struct Engine {
    tx: std::sync::mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// evcxr's child process (valid across evcxr's restarts of it).
    process: Mutex<Option<Arc<Mutex<Child>>>>,
    /// Set by an interrupt, read by the execution it ended.
    interrupted: AtomicBool,
    busy: AtomicBool,
    /// Counts restarts of evcxr's child process (each loses the session's state).
    epoch: std::sync::atomic::AtomicU64,
}

impl Engine {
    /// Starts the engine thread. evcxr warms up (compiles a probe) in the
    /// background; requests sent meanwhile wait for it. Call
    /// [`workdir::prepare_process`] first (before other threads exist) for
    /// the persistent work directory and compile cache.
    pub fn start() -> Engine {
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("evcxr".into())
            .spawn(move || thread::run(rx, thread_shared))
            .expect("spawn evcxr thread");
        Engine { tx, shared }
    }

    pub async fn execute(
        &self,
        code: &str,
        sink: UnboundedSender<Output>,
        allow_stdin: bool,
    ) -> ExecOutcome {
        let (reply, rx) = oneshot::channel();
        let request = Request::Execute {
            code: code.to_owned(),
            sink,
            allow_stdin,
            reply,
        };
        if self.tx.send(request).is_err() {
            return ExecOutcome::Error(ErrorInfo::new(
                "EngineError",
                "the Rust engine has stopped",
            ));
        }
        rx.await.unwrap_or_else(|_| {
            ExecOutcome::Error(ErrorInfo::new("EngineError", "the Rust engine has stopped"))
        })
    }

    pub async fn complete(&self, code: &str, pos: usize) -> Completions {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request::Complete {
            code: code.to_owned(),
            pos,
            reply,
        });
        rx.await.unwrap_or_default()
    }

    pub async fn inspect(&self, code: &str, pos: usize) -> Option<MimeBundle> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request::Inspect {
            code: code.to_owned(),
            pos,
            reply,
        });
        rx.await.ok().flatten()
    }

    pub async fn variables(&self) -> Vec<(String, String)> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request::Variables { reply });
        rx.await.unwrap_or_default()
    }

    /// Interrupts a running cell by killing evcxr's child process (evcxr
    /// restarts it; the session's variables are lost). Returns whether a cell
    /// was running.
    pub fn interrupt(&self) -> bool {
        if !self.shared.busy.load(Ordering::SeqCst) {
            return false;
        }
        self.shared.interrupted.store(true, Ordering::SeqCst);
        self.kill_child();
        true
    }

    /// Changes whenever evcxr's process was restarted and the session lost its state.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    /// The pid of evcxr's child process, where cells run.
    pub fn child_pid(&self) -> Option<u32> {
        let process = self.shared.process.lock().ok()?.clone()?;
        // Never wait for evcxr: without the pid, nothing is measured.
        let child = process.try_lock().ok()?;
        Some(child.id())
    }

    /// Kills evcxr's child process (used at shutdown too).
    pub fn kill_child(&self) {
        if let Some(process) = self.shared.process.lock().unwrap().as_ref() {
            if let Ok(mut child) = process.lock() {
                let _ = child.kill();
            }
        }
    }
}
