//! Shell: a reader task verifies and queues requests; a worker serves them one
//! at a time with busy/idle around each. When a cell fails with
//! `stop_on_error`, execute requests already queued are aborted.

use super::{control, zmq_to_frames, ControlHandler, Io, Replier, ShellHandler};
use crate::protocol::{
    CodeAtCursor, CommInfoRequest, CommOpen, ExecuteRequest, HistoryRequest, IsCompleteRequest,
};
use crate::wire::Message;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;
use zeromq::{RouterRecvHalf, SocketRecv};

pub async fn run<H: ShellHandler, C: ControlHandler>(
    recv: RouterRecvHalf,
    mut replier: Replier,
    io: Io,
    mut handler: H,
    control: Arc<C>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(read(recv, io.clone(), tx));
    let mut aborting: VecDeque<Message> = VecDeque::new();
    loop {
        let (request, abort) = match aborting.pop_front() {
            Some(r) => (r, true),
            None => match rx.recv().await {
                Some(r) => (r, false),
                None => return,
            },
        };
        io.iopub.status(Some(&request), "busy");
        if let Some((reply, failed)) = serve(
            &request,
            abort,
            &mut handler,
            &mut replier,
            &io,
            control.as_ref(),
        )
        .await
        {
            if failed {
                // Abort what was queued behind the failed cell, before the
                // client learns of the failure and sends anything new.
                while let Ok(queued) = rx.try_recv() {
                    aborting.push_back(queued);
                }
            }
            replier.send(&reply).await;
        }
        io.iopub.status(Some(&request), "idle");
    }
}

async fn read(mut recv: RouterRecvHalf, io: Io, tx: mpsc::UnboundedSender<Message>) {
    loop {
        let frames = match recv.recv().await {
            Ok(msg) => zmq_to_frames(msg),
            Err(error) => {
                tracing::warn!(%error, "shell receive failed");
                continue;
            }
        };
        match Message::from_frames(frames, &io.signer) {
            Ok(msg) => {
                if tx.send(msg).is_err() {
                    return;
                }
            }
            Err(error) => tracing::warn!(%error, "dropped a bad message on shell"),
        }
    }
}

/// Serves one request; returns its reply and whether it was a failed cell
/// with stop_on_error (None when there is nothing to reply).
async fn serve<H: ShellHandler, C: ControlHandler>(
    request: &Message,
    abort: bool,
    handler: &mut H,
    replier: &mut Replier,
    io: &Io,
    control: &C,
) -> Option<(Message, bool)> {
    let msg_type = request.msg_type().to_owned();
    let parsed = |r: &Message| r.content.clone();
    let (reply_type, content, failed) = match msg_type.as_str() {
        "execute_request" => match serde_json::from_value::<ExecuteRequest>(parsed(request)) {
            Ok(_) if abort => (
                "execute_reply",
                json!({ "status": "aborted", "execution_count": handler.execution_count() }),
                false,
            ),
            Ok(req) => {
                let stop = req.stop_on_error;
                let content = handler.execute(request, req, io).await;
                let failed = stop && content["status"] == "error";
                ("execute_reply", content, failed)
            }
            Err(e) => ("execute_reply", bad_request(&e), false),
        },
        "complete_request" => match serde_json::from_value::<CodeAtCursor>(parsed(request)) {
            Ok(req) => ("complete_reply", handler.complete(req).await, false),
            Err(e) => ("complete_reply", bad_request(&e), false),
        },
        "inspect_request" => match serde_json::from_value::<CodeAtCursor>(parsed(request)) {
            Ok(req) => ("inspect_reply", handler.inspect(req).await, false),
            Err(e) => ("inspect_reply", bad_request(&e), false),
        },
        "is_complete_request" => match serde_json::from_value::<IsCompleteRequest>(parsed(request))
        {
            Ok(req) => ("is_complete_reply", handler.is_complete(&req.code), false),
            Err(e) => ("is_complete_reply", bad_request(&e), false),
        },
        "history_request" => match serde_json::from_value::<HistoryRequest>(parsed(request)) {
            Ok(req) => ("history_reply", handler.history(req), false),
            Err(e) => ("history_reply", bad_request(&e), false),
        },
        "kernel_info_request" => (
            "kernel_info_reply",
            crate::protocol::kernel_info_reply(),
            false,
        ),
        "comm_info_request" => {
            let _ = serde_json::from_value::<CommInfoRequest>(parsed(request));
            (
                "comm_info_reply",
                json!({ "status": "ok", "comms": {} }),
                false,
            )
        }
        "comm_open" => {
            if let Ok(open) = serde_json::from_value::<CommOpen>(parsed(request)) {
                tracing::info!(target_name = %open.target_name, "comm_open for an unknown target; closing it");
                io.iopub.send(
                    Some(request),
                    "comm_close",
                    json!({ "comm_id": open.comm_id, "data": {} }),
                );
            }
            return None;
        }
        "comm_msg" | "comm_close" => return None,
        "shutdown_request" => {
            let restart = request
                .content
                .get("restart")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            control::shutdown(request, restart, replier, io, control).await;
            return None;
        }
        other => {
            tracing::warn!(msg_type = other, "unknown shell request ignored");
            return None;
        }
    };
    Some((request.reply(reply_type, &io.session, content), failed))
}

fn bad_request(error: &serde_json::Error) -> Value {
    json!({
        "status": "error",
        "ename": "BadRequest",
        "evalue": format!("malformed request content: {error}"),
        "traceback": [],
    })
}
