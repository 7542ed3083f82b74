//! IOPub: the sole owner of the XPUB socket. Everyone else publishes through
//! the cloneable [`Iopub`] handle. Subscriptions are learnt in `recv()`, and
//! each new subscriber is greeted with `iopub_welcome` (JEP 65), so clients
//! know they are connected before any other message.

use super::frames_to_zmq;
use crate::wire::{Message, Signer};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use zeromq::{SocketRecv, SocketSend, XPubSocket};

#[derive(Clone)]
pub struct Iopub {
    tx: mpsc::UnboundedSender<Message>,
    session: String,
}

impl Iopub {
    pub fn new(session: &str) -> (Iopub, mpsc::UnboundedReceiver<Message>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Iopub {
                tx,
                session: session.to_owned(),
            },
            rx,
        )
    }

    /// Publishes a message whose parent is `parent`.
    pub fn send(&self, parent: Option<&Message>, msg_type: &str, content: Value) {
        let mut msg = Message::new(msg_type, &self.session, parent, content);
        msg.identities = vec![Bytes::from(format!("kernel.{}.{msg_type}", self.session))];
        if self.tx.send(msg).is_err() {
            tracing::debug!("iopub is closed");
        }
    }

    pub fn status(&self, parent: Option<&Message>, state: &str) {
        self.send(parent, "status", crate::protocol::status(state));
    }
}

pub async fn run(
    mut socket: XPubSocket,
    mut rx: mpsc::UnboundedReceiver<Message>,
    signer: Signer,
    session: String,
) {
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                publish(&mut socket, &msg, &signer).await;
            }
            sub = socket.recv() => match sub {
                Ok(sub) => {
                    let Some(frame) = sub.get(0) else { continue };
                    if frame.first() == Some(&1) {
                        let topic = String::from_utf8_lossy(&frame[1..]).into_owned();
                        tracing::debug!(%topic, "iopub subscriber");
                        let mut welcome = Message::new("iopub_welcome", &session, None, json!({ "subscription": topic }));
                        welcome.identities = vec![Bytes::from(frame[1..].to_vec())];
                        publish(&mut socket, &welcome, &signer).await;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "iopub receive");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        }
    }
}

async fn publish(socket: &mut XPubSocket, msg: &Message, signer: &Signer) {
    if let Some(zmq) = frames_to_zmq(msg.to_frames(signer)) {
        if let Err(error) = socket.send(zmq).await {
            tracing::warn!(%error, msg_type = msg.msg_type(), "iopub publish failed");
        }
    }
}
