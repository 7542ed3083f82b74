//! The kernel's evcxr engine as the executors' [`Session`]: output of asset
//! code becomes events of that asset.

use crate::engine::{Engine, ExecOutcome, Output};
use slurmbook_magics::events::{Emit, Event, Stream};
use slurmbook_magics::exec::local::{Session, SessionError, Sessions};
use tokio::sync::mpsc;

pub struct EngineSession {
    pub engine: Engine,
}

impl Session for EngineSession {
    async fn run(
        &mut self,
        code: &str,
        asset: &str,
        emit: &dyn Emit,
    ) -> Result<Option<String>, SessionError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let run = self.engine.execute(code, tx, false);
        tokio::pin!(run);
        let forward = |output: Output| match output {
            Output::Stdout(text) => emit.emit(Event::Output {
                asset: asset.to_owned(),
                stream: Stream::Stdout,
                text,
            }),
            Output::Stderr(text) => emit.emit(Event::Output {
                asset: asset.to_owned(),
                stream: Stream::Stderr,
                text,
            }),
            Output::Display(data) => emit.emit(Event::Display {
                asset: asset.to_owned(),
                data: data.into_iter().collect(),
            }),
            Output::ClearOutput { .. } => {}
            Output::Input { reply, .. } => {
                let _ = reply.send(String::new());
            }
        };
        let outcome = loop {
            tokio::select! {
                biased;
                Some(output) = rx.recv() => forward(output),
                outcome = &mut run => break outcome,
            }
        };
        while let Ok(output) = rx.try_recv() {
            forward(output);
        }
        match outcome {
            ExecOutcome::Ok { result } => Ok(result.and_then(|bundle| {
                bundle
                    .get("text/plain")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })),
            ExecOutcome::Error(e) => Err(SessionError {
                message: format!("{}: {}", e.ename, e.evalue),
                detail: e.traceback,
            }),
        }
    }

    async fn variables(&mut self) -> Vec<(String, String)> {
        self.engine.variables().await
    }

    fn epoch(&self) -> u64 {
        self.engine.epoch()
    }

    fn process_id(&self) -> Option<u32> {
        self.engine.child_pid()
    }
}

/// The kernel always has its session running.
impl Sessions for EngineSession {
    type Session = EngineSession;

    fn session(&mut self) -> &mut EngineSession {
        self
    }

    fn existing(&mut self) -> Option<&mut EngineSession> {
        Some(self)
    }
}
