//! The Rust language behind the channels: [`RustKernel`] serves the shell
//! (cells, completion, inspection, history) and [`KernelControl`] the control
//! channel (interrupt, shutdown).

mod cells;
mod complete;
mod config;
mod errors;
mod execute;
pub mod history;
mod logs;
mod magic;
mod materialize;
pub mod render;
mod runs;
mod tooling;
mod usage;
mod views;

use crate::channels::{ControlHandler, Io, ShellHandler};
use crate::engine::{is_complete, Engine};
use crate::protocol::{CodeAtCursor, ExecuteRequest, HistoryRequest};
use crate::wire::Message;
use serde_json::{json, Value};
use slurmbook_magics::exec::slurm::OutputGate;
use slurmbook_magics::run::Workspace;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct RustKernel {
    engine: Engine,
    /// Counts cells run with `store_history`; the first is 1.
    execution_count: u32,
    history: history::History,
    /// The notebook, its state and configuration, and the run service.
    workspace: Workspace,
    /// Set by an interrupt: the running materialization stops.
    cancel: Arc<AtomicBool>,
    /// Output of Slurm runs shown and saved as one step; frozen on shutdown.
    output_gate: Arc<OutputGate>,
}

impl RustKernel {
    pub fn new(
        engine: Engine,
        workspace: Workspace,
        cancel: Arc<AtomicBool>,
        output_gate: Arc<OutputGate>,
    ) -> RustKernel {
        RustKernel {
            engine,
            execution_count: 0,
            history: history::History::default(),
            workspace,
            cancel,
            output_gate,
        }
    }
}

impl ShellHandler for RustKernel {
    async fn execute(&mut self, request: &Message, content: ExecuteRequest, io: &Io) -> Value {
        self.execute_cell(request, content, io).await
    }

    async fn complete(&mut self, content: CodeAtCursor) -> Value {
        self.complete_at(content).await
    }

    async fn inspect(&mut self, content: CodeAtCursor) -> Value {
        self.inspect_at(content).await
    }

    fn is_complete(&mut self, code: &str) -> Value {
        match is_complete::check(code) {
            is_complete::Completeness::Complete => json!({ "status": "complete" }),
            is_complete::Completeness::Incomplete(indent) => {
                json!({ "status": "incomplete", "indent": indent })
            }
            is_complete::Completeness::Invalid => json!({ "status": "invalid" }),
        }
    }

    fn history(&mut self, request: HistoryRequest) -> Value {
        self.history.reply(&request)
    }

    fn execution_count(&self) -> u32 {
        self.execution_count
    }
}

pub struct KernelControl {
    pub engine: Engine,
    pub cancel: Arc<AtomicBool>,
    /// The gate of the kernel's Slurm watches (see [`OutputGate`]).
    pub output_gate: Arc<OutputGate>,
}

impl ControlHandler for KernelControl {
    fn interrupt(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        let was_running = self.engine.interrupt();
        tracing::info!(was_running, "interrupt");
    }

    fn shutdown(&self) {
        // A Slurm run being watched keeps going on the cluster; `%attach`
        // resumes right after the last line this kernel showed.
        self.output_gate.freeze();
        self.engine.kill_child();
    }
}
