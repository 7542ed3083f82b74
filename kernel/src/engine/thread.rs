//! The thread that owns evcxr's `CommandContext`.

use super::pumps::{self, PumpState};
use super::{errors, rich, Completions, ErrorInfo, ExecOutcome, Output, Request, Shared};
use evcxr::{CommandContext, EvalCallbacks, EvalOutputs};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How long to wait for a cell's last stderr lines after it ended.
const STDERR_GRACE: Duration = Duration::from_secs(2);

pub(super) fn run(rx: Receiver<Request>, shared: Arc<Shared>) {
    let started = std::time::Instant::now();
    match super::workdir::prepared() {
        Some(prepared) => {
            if let Some(slot) = &prepared.slot {
                super::workdir::tidy_slot(slot);
            }
            tracing::info!(
                slot = ?prepared.slot,
                compile_cache = ?prepared.rustc_cache,
                note = prepared.note.as_deref().unwrap_or(""),
                "evcxr work directory"
            );
        }
        None => tracing::info!("evcxr builds in a temporary directory"),
    }
    let mut engine = match CommandContext::new() {
        Ok((ctx, outputs)) => {
            let pumps = pumps::spawn(outputs.stdout, outputs.stderr);
            *shared.process.lock().unwrap() = Some(ctx.process_handle());
            tracing::info!(elapsed = ?started.elapsed(), "evcxr is ready");
            Ok(Evcxr {
                ctx,
                pumps,
                shared,
                // evcxr's warm-up probe ran once in the child.
                syncs_expected: 1,
            })
        }
        Err(error) => {
            tracing::error!(%error, "evcxr failed to start");
            Err(format!("the Rust engine (evcxr) failed to start: {error}"))
        }
    };
    for request in rx {
        match (&mut engine, request) {
            (
                Ok(e),
                Request::Execute {
                    code,
                    sink,
                    allow_stdin,
                    reply,
                },
            ) => {
                let _ = reply.send(e.execute(&code, sink, allow_stdin));
            }
            (Err(message), Request::Execute { reply, .. }) => {
                let _ = reply.send(ExecOutcome::Error(ErrorInfo::new(
                    "EngineError",
                    message.clone(),
                )));
            }
            (Ok(e), Request::Complete { code, pos, reply }) => {
                let _ = reply.send(e.complete(&code, pos));
            }
            (Ok(e), Request::Inspect { code, pos, reply }) => {
                let _ = reply.send(e.inspect(&code, pos));
            }
            (Ok(e), Request::Variables { reply }) => {
                let vars = e
                    .ctx
                    .variables_and_types()
                    .map(|(n, t)| (n.to_owned(), t.to_owned()))
                    .collect();
                let _ = reply.send(vars);
            }
            (Err(_), Request::Complete { reply, .. }) => {
                let _ = reply.send(Completions::default());
            }
            (Err(_), Request::Inspect { reply, .. }) => {
                let _ = reply.send(None);
            }
            (Err(_), Request::Variables { reply }) => {
                let _ = reply.send(Vec::new());
            }
        }
    }
}

struct Evcxr {
    ctx: CommandContext,
    pumps: Arc<PumpState>,
    shared: Arc<Shared>,
    syncs_expected: u64,
}

/// evcxr commands that would end or wreck the kernel process from inside.
fn forbidden_command(code: &str) -> Option<&'static str> {
    code.lines().map(str::trim).find_map(|line| {
        let word = line.split_whitespace().next()?;
        (word == ":quit").then_some(
            ":quit would end the kernel process; use the notebook's Kernel menu to shut down or restart",
        )
    })
}

impl Evcxr {
    fn execute(
        &mut self,
        code: &str,
        sink: UnboundedSender<Output>,
        allow_stdin: bool,
    ) -> ExecOutcome {
        if let Some(message) = forbidden_command(code) {
            return ExecOutcome::Error(ErrorInfo::new("UnsupportedCommand", message));
        }
        *self.pumps.sink.lock().unwrap() = Some(sink.clone());
        {
            let mut s = self.pumps.stderr.lock().unwrap();
            s.panic = None;
            s.panicked = false;
        }
        self.shared.interrupted.store(false, Ordering::SeqCst);
        self.shared.busy.store(true, Ordering::SeqCst);

        let input_sink = sink.clone();
        let mut callbacks = EvalCallbacks {
            input_reader: &|request| {
                read_input(
                    &input_sink,
                    allow_stdin,
                    request.prompt.clone(),
                    request.is_password,
                )
            },
        };
        let eval_started = std::time::Instant::now();
        let result = self.ctx.execute_with_callbacks(code, &mut callbacks);
        let eval_took = eval_started.elapsed();
        self.shared.busy.store(false, Ordering::SeqCst);

        // evcxr returned once its stdout channel was empty; taking the pump's
        // lock proves the last line it took has been forwarded too.
        self.pumps.wait_stdout();
        if matches!(&result, Ok(outputs) if ran(outputs)) {
            self.syncs_expected += 1;
            if !self.pumps.wait_stderr(self.syncs_expected, STDERR_GRACE) {
                tracing::warn!("stderr of the cell did not end in time");
            }
        } else if matches!(&result, Err(evcxr::Error::SubprocessTerminated(_))) {
            self.shared.epoch.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.syncs_expected = self
            .syncs_expected
            .max(self.pumps.stderr.lock().unwrap().syncs);
        *self.pumps.sink.lock().unwrap() = None;
        tracing::debug!(
            eval = ?eval_took,
            after = ?eval_started.elapsed().saturating_sub(eval_took),
            "cell evaluated"
        );

        if self.shared.interrupted.swap(false, Ordering::SeqCst) {
            return ExecOutcome::Error(ErrorInfo::new(
                "KeyboardInterrupt",
                "interrupted: evcxr's process was killed and restarted, so the session's variables were lost",
            ));
        }
        let panic = {
            let mut s = self.pumps.stderr.lock().unwrap();
            let lines = s.panic.take();
            let panicked = std::mem::take(&mut s.panicked);
            (panicked || lines.is_some()).then(|| lines.unwrap_or_default())
        };
        if let Some(lines) = panic {
            let message = pumps::panic_message(&lines);
            let mut traceback = lines.clone();
            traceback.push(
                "(variables defined by this cell were not kept; earlier ones are intact)".into(),
            );
            return ExecOutcome::Error(ErrorInfo {
                ename: "Panic".into(),
                evalue: message,
                traceback,
            });
        }
        match result {
            Ok(outputs) if is_unit(&outputs) => ExecOutcome::Ok { result: None },
            // A cell ending in `;` has no value: content evcxr collected at its
            // end came from displays the cell printed.
            Ok(outputs) if ends_with_statement(code) => {
                let _ = sink.send(rich::content_output(outputs.content_by_mime_type));
                ExecOutcome::Ok { result: None }
            }
            Ok(outputs) => {
                // The last content the cell printed may be a clear-output,
                // collected with the cell's value.
                let (clear, data) = rich::split_clear(rich::bundle(outputs.content_by_mime_type));
                if let Some(clear) = clear {
                    let _ = sink.send(clear);
                }
                ExecOutcome::Ok {
                    result: (!data.is_empty()).then_some(data),
                }
            }
            Err(error) => ExecOutcome::Error(errors::from_evcxr(&error, code)),
        }
    }

    fn complete(&mut self, code: &str, pos: usize) -> Completions {
        match self.ctx.completions(code, pos) {
            Ok(c) => {
                let mut matches: Vec<String> = Vec::new();
                for completion in c.completions {
                    if !matches.contains(&completion.code) {
                        matches.push(completion.code);
                    }
                }
                Completions {
                    matches,
                    start: c.start_offset,
                    end: c.end_offset,
                }
            }
            Err(error) => {
                tracing::debug!(%error, "completion failed");
                Completions {
                    matches: Vec::new(),
                    start: pos,
                    end: pos,
                }
            }
        }
    }

    fn inspect(&mut self, code: &str, pos: usize) -> Option<crate::protocol::MimeBundle> {
        let end = word_end(code, pos);
        match self.ctx.hover_at(code, end) {
            Ok((plain, html)) if plain != "No documentation found" && !plain.trim().is_empty() => {
                Some(rich::bundle([
                    ("text/plain".to_string(), plain),
                    ("text/html".to_string(), html),
                ]))
            }
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%error, "hover failed");
                None
            }
        }
    }
}

/// No value worth showing: nothing, or `()` (e.g. a final `println!`).
fn is_unit(outputs: &EvalOutputs) -> bool {
    let c = &outputs.content_by_mime_type;
    c.is_empty() || (c.len() == 1 && c.get("text/plain").map(|t| t.trim()) == Some("()"))
}

/// Whether the cell's last line of code ends a statement (no final expression).
fn ends_with_statement(code: &str) -> bool {
    code.lines()
        .map(|l| match l.find("//") {
            Some(p) => &l[..p],
            None => l,
        })
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .is_some_and(|l| l.ends_with(';'))
}

/// Whether evcxr ran code in its child (and so the child sent a stderr sync).
fn ran(outputs: &EvalOutputs) -> bool {
    outputs.phases.iter().any(|p| p.name == "Execution")
}

/// The end of the identifier under or before the cursor (hover wants the end).
fn word_end(code: &str, pos: usize) -> usize {
    let pos = pos.min(code.len());
    code[pos..]
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map(|(i, _)| pos + i)
        .unwrap_or(code.len())
}

/// Asks the frontend for a line of input on behalf of user code.
fn read_input(
    sink: &UnboundedSender<Output>,
    allow_stdin: bool,
    prompt: String,
    password: bool,
) -> String {
    if !allow_stdin {
        return String::new();
    }
    let (reply, answer) = std::sync::mpsc::channel();
    if sink
        .send(Output::Input {
            prompt,
            password,
            reply,
        })
        .is_err()
    {
        return String::new();
    }
    answer.recv().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_is_refused() {
        assert!(forbidden_command(":quit").is_some());
        assert!(forbidden_command("let a = 1;\n  :quit  ").is_some());
        assert!(forbidden_command(":vars").is_none());
        assert!(forbidden_command("let quit = 1;").is_none());
    }

    #[test]
    fn statements_have_no_value() {
        assert!(ends_with_statement("println!(\"x\");\n// done"));
        assert!(!ends_with_statement("let a = 1;\na + 1"));
        assert!(!ends_with_statement("if a { 1 } else { 2 }"));
    }

    #[test]
    fn word_end_finds_identifier_end() {
        assert_eq!(word_end("foo.bar_baz(1)", 5), 11);
        assert_eq!(word_end("abc", 1), 3);
    }
}
