//! Control: served on its own task, so interrupt and shutdown work while the
//! shell is busy running a cell.

use super::{zmq_to_frames, ControlHandler, Io, Replier};
use crate::protocol::{self, ShutdownRequest};
use crate::wire::Message;
use serde_json::json;
use std::sync::Arc;
use zeromq::{RouterRecvHalf, SocketRecv};

pub async fn run<C: ControlHandler>(
    mut recv: RouterRecvHalf,
    mut replier: Replier,
    io: Io,
    handler: Arc<C>,
) {
    loop {
        let frames = match recv.recv().await {
            Ok(msg) => zmq_to_frames(msg),
            Err(error) => {
                tracing::warn!(%error, "control receive failed");
                continue;
            }
        };
        let request = match Message::from_frames(frames, &io.signer) {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, "dropped a bad message on control");
                continue;
            }
        };
        io.iopub.status(Some(&request), "busy");
        match request.msg_type() {
            "kernel_info_request" => {
                let reply = request.reply(
                    "kernel_info_reply",
                    &io.session,
                    protocol::kernel_info_reply(),
                );
                replier.send(&reply).await;
            }
            "interrupt_request" => {
                handler.interrupt();
                let reply =
                    request.reply("interrupt_reply", &io.session, json!({ "status": "ok" }));
                replier.send(&reply).await;
            }
            "shutdown_request" => {
                let restart = serde_json::from_value::<ShutdownRequest>(request.content.clone())
                    .map(|r| r.restart)
                    .unwrap_or(false);
                shutdown(&request, restart, &mut replier, &io, handler.as_ref()).await;
            }
            other => {
                tracing::info!(msg_type = other, "unsupported control request");
                let reply_type = other.replace("_request", "_reply");
                let reply = request.reply(
                    &reply_type,
                    &io.session,
                    json!({ "status": "error", "ename": "NotImplemented",
                            "evalue": format!("{other} is not supported by slurmbook"), "traceback": [] }),
                );
                replier.send(&reply).await;
            }
        }
        io.iopub.status(Some(&request), "idle");
    }
}

/// Replies, lets the reply leave, stops the kernel's children and exits.
pub async fn shutdown<C: ControlHandler + ?Sized>(
    request: &Message,
    restart: bool,
    replier: &mut Replier,
    io: &Io,
    handler: &C,
) {
    tracing::info!(restart, "shutdown requested");
    // First: no more output after the replies (a client that saw the
    // iopub shutdown_reply has seen everything), and children stopped.
    handler.shutdown();
    let content = json!({ "status": "ok", "restart": restart });
    replier
        .send(&request.reply("shutdown_reply", &io.session, content.clone()))
        .await;
    io.iopub.send(Some(request), "shutdown_reply", content);
    io.iopub.status(Some(request), "idle");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    std::process::exit(0);
}
