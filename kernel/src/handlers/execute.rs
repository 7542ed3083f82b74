//! `execute_request`: execution counter, execute_input, running Rust through
//! the engine or a magic, results, errors, user expressions and history.

use super::render::CellOutput;
use super::RustKernel;
use crate::channels::Io;
use crate::engine::{ErrorInfo, ExecOutcome};
use crate::protocol::{self, ExecuteRequest, MimeBundle};
use crate::wire::Message;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

/// What a cell produced, before it is turned into messages.
pub(super) struct CellResult {
    pub value: Option<MimeBundle>,
    /// execute_reply payloads (e.g. pager content).
    pub payload: Vec<Value>,
}

impl CellResult {
    /// No value, no payload (a magic that only printed or displayed).
    pub fn none() -> CellResult {
        CellResult {
            value: None,
            payload: Vec::new(),
        }
    }
}

impl RustKernel {
    pub(super) async fn execute_cell(
        &mut self,
        request: &Message,
        req: ExecuteRequest,
        io: &Io,
    ) -> Value {
        let store = req.store_history && !req.silent;
        if store {
            self.execution_count += 1;
        }
        let count = self.execution_count;
        if !req.silent {
            io.iopub.send(
                Some(request),
                "execute_input",
                json!({ "code": req.code, "execution_count": count }),
            );
        }
        let out = CellOutput {
            parent: request,
            io,
            silent: req.silent,
        };
        // A wait for the state database another process holds shows in this cell.
        let _lock_notices = (!req.silent).then(|| LockNotices::install(io, request));
        // JupyterLab sends the cell's nbformat id in the request metadata.
        let cell_id = request.metadata.get("cellId").and_then(Value::as_str);
        let outcome = self
            .run_cell(&req.code, cell_id, &out, req.allow_stdin)
            .await;
        let text_of = |r: &CellResult| {
            r.value
                .as_ref()
                .and_then(|v| v.get("text/plain"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if store {
            let output = outcome.as_ref().ok().and_then(text_of);
            self.history.push(count, &req.code, output);
        }
        match outcome {
            Ok(result) => {
                if let Some(value) = result.value {
                    if !req.silent {
                        io.iopub.send(
                            Some(request),
                            "execute_result",
                            protocol::execute_result(count, value),
                        );
                    }
                }
                let user_expressions = match &req.user_expressions {
                    Some(exprs) if !exprs.is_empty() => self.user_expressions(exprs).await,
                    _ => Map::new(),
                };
                json!({
                    "status": "ok",
                    "execution_count": count,
                    "payload": result.payload,
                    "user_expressions": user_expressions,
                })
            }
            Err(error) => {
                if !req.silent {
                    io.iopub.send(
                        Some(request),
                        "error",
                        protocol::error_content(&error.ename, &error.evalue, &error.traceback),
                    );
                }
                json!({
                    "status": "error",
                    "execution_count": count,
                    "ename": error.ename,
                    "evalue": error.evalue,
                    "traceback": error.traceback,
                })
            }
        }
    }

    /// Runs Rust code in evcxr, rendering its output as it comes.
    pub(super) async fn run_rust(
        &mut self,
        code: &str,
        out: &CellOutput<'_>,
        allow_stdin: bool,
    ) -> Result<CellResult, ErrorInfo> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let run = self.engine.execute(code, tx, allow_stdin);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                biased;
                Some(output) = rx.recv() => out.render(output, &mut rx).await,
                outcome = &mut run => break outcome,
            }
        };
        while let Ok(output) = rx.try_recv() {
            out.render(output, &mut rx).await;
        }
        match outcome {
            ExecOutcome::Ok { result } => Ok(CellResult {
                value: result,
                payload: Vec::new(),
            }),
            ExecOutcome::Error(e) => Err(e),
        }
    }

    async fn user_expressions(&mut self, exprs: &Map<String, Value>) -> Map<String, Value> {
        let mut results = Map::new();
        for (name, expr) in exprs {
            let code = expr.as_str().unwrap_or_default();
            let (tx, _rx) = mpsc::unbounded_channel();
            let value = match self.engine.execute(code, tx, false).await {
                ExecOutcome::Ok { result } => json!({
                    "status": "ok",
                    "data": result.unwrap_or_default(),
                    "metadata": {},
                }),
                ExecOutcome::Error(e) => json!({
                    "status": "error",
                    "ename": e.ename,
                    "evalue": e.evalue,
                    "traceback": e.traceback,
                }),
            };
            results.insert(name.clone(), value);
        }
        results
    }
}

/// While a cell runs, "the state database is locked ...; waiting" goes to
/// its stderr (not only to the log); cleared when the cell ends.
struct LockNotices;

impl LockNotices {
    fn install(io: &Io, parent: &Message) -> LockNotices {
        let iopub = io.iopub.clone();
        let parent = parent.clone();
        let listener: slurmbook_magics::state::LockListener =
            std::sync::Arc::new(move |text: &str| {
                iopub.send(
                    Some(&parent),
                    "stream",
                    crate::protocol::stream("stderr", &format!("{text}\n")),
                )
            });
        slurmbook_magics::state::set_lock_listener(Some(listener));
        LockNotices
    }
}

impl Drop for LockNotices {
    fn drop(&mut self) {
        slurmbook_magics::state::set_lock_listener(None);
    }
}
