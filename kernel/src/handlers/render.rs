//! Renders engine [`Output`]s of a running cell as IOPub messages (and stdin
//! requests), coalescing consecutive stream text.

use crate::channels::Io;
use crate::engine::Output;
use crate::protocol;
use crate::wire::Message;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

pub struct CellOutput<'a> {
    pub parent: &'a Message,
    pub io: &'a Io,
    pub silent: bool,
}

impl CellOutput<'_> {
    pub fn stream(&self, name: &str, text: &str) {
        if !self.silent && !text.is_empty() {
            self.io
                .iopub
                .send(Some(self.parent), "stream", protocol::stream(name, text));
        }
    }

    pub fn display(&self, data: protocol::MimeBundle, display_id: Option<&str>) {
        if !self.silent {
            self.io.iopub.send(
                Some(self.parent),
                "display_data",
                protocol::display_data(data, display_id),
            );
        }
    }

    pub fn update_display(&self, data: protocol::MimeBundle, display_id: &str) {
        if !self.silent {
            self.io.iopub.send(
                Some(self.parent),
                "update_display_data",
                protocol::update_display_data(data, display_id),
            );
        }
    }

    /// Renders one output, plus whatever else is already queued behind it.
    pub async fn render(&self, first: Output, rx: &mut UnboundedReceiver<Output>) {
        let mut next = Some(first);
        while let Some(output) = next.take() {
            match output {
                Output::Stdout(text) => next = self.coalesce("stdout", text, rx),
                Output::Stderr(text) => next = self.coalesce("stderr", text, rx),
                Output::Display(data) => self.display(data, None),
                Output::ClearOutput { wait } => {
                    if !self.silent {
                        self.io.iopub.send(
                            Some(self.parent),
                            "clear_output",
                            json!({ "wait": wait }),
                        );
                    }
                }
                Output::Input {
                    prompt,
                    password,
                    reply,
                } => {
                    let value = self.io.stdin.request(self.parent, &prompt, password).await;
                    let _ = reply.send(value.unwrap_or_default());
                }
            }
            if next.is_none() {
                next = rx.try_recv().ok();
            }
        }
    }

    /// Joins text of the same stream already queued; returns the first other output.
    fn coalesce(
        &self,
        name: &str,
        mut text: String,
        rx: &mut UnboundedReceiver<Output>,
    ) -> Option<Output> {
        let mut other = None;
        while let Ok(output) = rx.try_recv() {
            match (name, output) {
                ("stdout", Output::Stdout(more)) | ("stderr", Output::Stderr(more)) => {
                    text.push_str(&more)
                }
                (_, output) => {
                    other = Some(output);
                    break;
                }
            }
        }
        self.stream(name, &text);
        other
    }
}
