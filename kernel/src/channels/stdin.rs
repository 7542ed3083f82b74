//! Stdin: asks the frontend that sent an execute request for a line of input.

use super::{zmq_to_frames, Replier};
use crate::protocol::InputReply;
use crate::wire::{Message, Signer};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Mutex;
use zeromq::{RouterRecvHalf, SocketRecv};

#[derive(Clone)]
pub struct Stdin {
    replier: Replier,
    recv: Arc<Mutex<RouterRecvHalf>>,
    signer: Signer,
    session: String,
}

impl Stdin {
    pub fn new(replier: Replier, recv: RouterRecvHalf, signer: Signer, session: &str) -> Self {
        Stdin {
            replier,
            recv: Arc::new(Mutex::new(recv)),
            signer,
            session: session.to_owned(),
        }
    }

    /// Sends `input_request` to the peer of `parent` (an execute request) and
    /// waits for its `input_reply`.
    pub async fn request(&self, parent: &Message, prompt: &str, password: bool) -> Option<String> {
        let mut request = Message::new(
            "input_request",
            &self.session,
            Some(parent),
            json!({ "prompt": prompt, "password": password }),
        );
        request.identities = parent.identities.clone();
        let mut recv = self.recv.lock().await;
        self.replier.clone().send(&request).await;
        loop {
            let frames = match recv.recv().await {
                Ok(msg) => zmq_to_frames(msg),
                Err(error) => {
                    tracing::warn!(%error, "stdin receive failed");
                    return None;
                }
            };
            match Message::from_frames(frames, &self.signer) {
                Ok(msg) if msg.msg_type() == "input_reply" => {
                    return serde_json::from_value::<InputReply>(msg.content)
                        .map(|r| r.value)
                        .ok();
                }
                Ok(msg) => tracing::warn!(msg_type = msg.msg_type(), "unexpected message on stdin"),
                Err(error) => tracing::warn!(%error, "dropped a bad message on stdin"),
            }
        }
    }
}
