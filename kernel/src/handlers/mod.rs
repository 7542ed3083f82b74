//! The Rust language behind the channels: [`RustKernel`] serves the shell
//! (cells, completion, inspection, history) and [`KernelControl`] the control
//! channel (interrupt, shutdown).

mod complete;
mod execute;
pub mod history;
mod magic;
pub mod render;

use crate::channels::{ControlHandler, Io, ShellHandler};
use crate::engine::{is_complete, Engine};
use crate::protocol::{CodeAtCursor, ExecuteRequest, HistoryRequest};
use crate::wire::Message;
use serde_json::{json, Value};

pub struct RustKernel {
    engine: Engine,
    /// Counts cells run with `store_history`; the first is 1.
    execution_count: u32,
    history: history::History,
}

impl RustKernel {
    pub fn new(engine: Engine) -> RustKernel {
        RustKernel {
            engine,
            execution_count: 0,
            history: history::History::default(),
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
            is_complete::Completeness::Incomplete(indent) => json!({ "status": "incomplete", "indent": indent }),
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
}

impl ControlHandler for KernelControl {
    fn interrupt(&self) {
        let was_running = self.engine.interrupt();
        tracing::info!(was_running, "interrupt");
    }

    fn shutdown(&self) {
        self.engine.kill_child();
    }
}
