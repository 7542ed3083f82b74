//! One module per Jupyter channel. Each owns its sockets; the shell and
//! control loops hand requests to handler traits the language implements
//! ([`ShellHandler`], [`ControlHandler`]); iopub has a single owner task fed by
//! a channel ([`iopub::Iopub`]).

pub mod control;
pub mod heartbeat;
pub mod iopub;
pub mod shell;
pub mod stdin;

use crate::protocol::{CodeAtCursor, ExecuteRequest, HistoryRequest};
use crate::wire::{Message, Signer};
use bytes::Bytes;
use serde_json::Value;
use std::future::Future;
use zeromq::{RouterSendHalf, SocketSend, ZmqMessage};

/// What a request handler needs to talk back to the frontend.
#[derive(Clone)]
pub struct Io {
    pub session: String,
    pub signer: Signer,
    pub iopub: iopub::Iopub,
    pub stdin: stdin::Stdin,
}

/// The language side of the shell channel.
/// Its futures need not be `Send`: the shell worker runs on the kernel's main task.
pub trait ShellHandler: 'static {
    /// Runs a cell; returns the execute_reply content (status ok/error) and
    /// whether it failed.
    fn execute(
        &mut self,
        request: &Message,
        content: ExecuteRequest,
        io: &Io,
    ) -> impl Future<Output = Value>;
    fn complete(&mut self, content: CodeAtCursor) -> impl Future<Output = Value>;
    fn inspect(&mut self, content: CodeAtCursor) -> impl Future<Output = Value>;
    fn is_complete(&mut self, code: &str) -> Value;
    fn history(&mut self, request: HistoryRequest) -> Value;
    /// The execution count an aborted request reports.
    fn execution_count(&self) -> u32;
}

/// The language side of the control channel (served while a cell runs).
pub trait ControlHandler: Send + Sync + 'static {
    /// Interrupts whatever runs now.
    fn interrupt(&self);
    /// Stops what the kernel started (child processes) before it exits.
    fn shutdown(&self);
}

/// Sends signed messages on a ROUTER socket (shell, control, stdin).
#[derive(Clone)]
pub struct Replier {
    socket: RouterSendHalf,
    signer: Signer,
}

impl Replier {
    pub fn new(socket: RouterSendHalf, signer: Signer) -> Self {
        Replier { socket, signer }
    }

    pub async fn send(&mut self, message: &Message) {
        let frames = message.to_frames(&self.signer);
        match frames_to_zmq(frames) {
            Some(msg) => {
                if let Err(error) = self.socket.send(msg).await {
                    tracing::warn!(%error, msg_type = message.msg_type(), "sending a reply failed");
                }
            }
            None => tracing::error!("tried to send an empty message"),
        }
    }
}

pub fn frames_to_zmq(frames: Vec<Bytes>) -> Option<ZmqMessage> {
    ZmqMessage::try_from(frames).ok()
}

pub fn zmq_to_frames(msg: ZmqMessage) -> Vec<Bytes> {
    msg.into_vec()
}
