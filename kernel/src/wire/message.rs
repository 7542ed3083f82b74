//! Jupyter messages and their framing on the wire:
//! `[identities..., "<IDS|MSG>", signature, header, parent_header, metadata, content, buffers...]`.

use super::Signer;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const DELIMITER: &[u8] = b"<IDS|MSG>";
pub const PROTOCOL_VERSION: &str = "5.3";

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message has no <IDS|MSG> delimiter")]
    NoDelimiter,
    #[error("message has {0} frames after the delimiter; at least 5 are required")]
    TooFewFrames(usize),
    #[error("message signature does not match")]
    BadSignature,
    #[error("invalid JSON in the {part}: {source}")]
    BadJson {
        part: &'static str,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub msg_id: String,
    #[serde(default)]
    pub session: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub date: String,
    pub msg_type: String,
    #[serde(default = "default_version")]
    pub version: String,
}

fn default_version() -> String {
    PROTOCOL_VERSION.into()
}

impl Header {
    pub fn new(msg_type: &str, session: &str) -> Header {
        Header {
            msg_id: uuid::Uuid::new_v4().to_string(),
            session: session.to_owned(),
            username: "kernel".into(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            msg_type: msg_type.to_owned(),
            version: PROTOCOL_VERSION.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    /// ZeroMQ routing identities (ROUTER) or the topic (IOPub).
    pub identities: Vec<Bytes>,
    pub header: Header,
    /// The parent header as received (an empty object when there is none).
    pub parent_header: Value,
    pub metadata: Value,
    pub content: Value,
    pub buffers: Vec<Bytes>,
}

impl Message {
    /// Parses and verifies a multipart message.
    pub fn from_frames(frames: Vec<Bytes>, signer: &Signer) -> Result<Message, WireError> {
        let delim = frames
            .iter()
            .position(|f| f.as_ref() == DELIMITER)
            .ok_or(WireError::NoDelimiter)?;
        let identities = frames[..delim].to_vec();
        let rest = &frames[delim + 1..];
        if rest.len() < 5 {
            return Err(WireError::TooFewFrames(rest.len()));
        }
        let signed: [&[u8]; 4] = [&rest[1], &rest[2], &rest[3], &rest[4]];
        if !signer.verify(&rest[0], &signed) {
            return Err(WireError::BadSignature);
        }
        let parse = |part: &'static str, bytes: &Bytes| -> Result<Value, WireError> {
            serde_json::from_slice(bytes).map_err(|source| WireError::BadJson { part, source })
        };
        let header: Header =
            serde_json::from_slice(&rest[1]).map_err(|source| WireError::BadJson {
                part: "header",
                source,
            })?;
        Ok(Message {
            identities,
            header,
            parent_header: parse("parent header", &rest[2])?,
            metadata: parse("metadata", &rest[3])?,
            content: parse("content", &rest[4])?,
            buffers: rest[5..].to_vec(),
        })
    }

    /// Serializes and signs the message into frames.
    pub fn to_frames(&self, signer: &Signer) -> Vec<Bytes> {
        let header = serde_json::to_vec(&self.header).expect("header serializes");
        let parent = serde_json::to_vec(&self.parent_header).expect("json serializes");
        let metadata = serde_json::to_vec(&self.metadata).expect("json serializes");
        let content = serde_json::to_vec(&self.content).expect("json serializes");
        let signature = signer.sign(&[&header, &parent, &metadata, &content]);
        let mut frames = self.identities.clone();
        frames.push(Bytes::from_static(DELIMITER));
        frames.push(Bytes::from(signature));
        frames.push(Bytes::from(header));
        frames.push(Bytes::from(parent));
        frames.push(Bytes::from(metadata));
        frames.push(Bytes::from(content));
        frames.extend(self.buffers.iter().cloned());
        frames
    }

    /// A new message of `msg_type` whose parent is `parent` (or none).
    pub fn new(msg_type: &str, session: &str, parent: Option<&Message>, content: Value) -> Message {
        Message {
            identities: Vec::new(),
            header: Header::new(msg_type, session),
            parent_header: parent
                .map(|p| serde_json::to_value(&p.header).expect("header serializes"))
                .unwrap_or_else(|| json!({})),
            metadata: json!({}),
            content,
            buffers: Vec::new(),
        }
    }

    /// A reply to this request, routed back to the same peer.
    pub fn reply(&self, msg_type: &str, session: &str, content: Value) -> Message {
        let mut reply = Message::new(msg_type, session, Some(self), content);
        reply.identities = self.identities.clone();
        reply
    }

    pub fn msg_type(&self) -> &str {
        &self.header.msg_type
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_frames() {
        let signer = Signer::new("k");
        let mut msg = Message::new("execute_request", "s", None, json!({"code": "1"}));
        msg.identities = vec![Bytes::from_static(b"peer")];
        let frames = msg.to_frames(&signer);
        let back = Message::from_frames(frames, &signer).unwrap();
        assert_eq!(back.header, msg.header);
        assert_eq!(back.content, json!({"code": "1"}));
        assert_eq!(back.identities, vec![Bytes::from_static(b"peer")]);
    }

    #[test]
    fn rejects_bad_signature_and_bad_json() {
        let signer = Signer::new("k");
        let msg = Message::new("kernel_info_request", "s", None, json!({}));
        let mut frames = msg.to_frames(&signer);
        frames[1] = Bytes::from_static(b"00");
        assert!(matches!(
            Message::from_frames(frames, &signer),
            Err(WireError::BadSignature)
        ));
        let mut frames = msg.to_frames(&Signer::new(""));
        frames[5] = Bytes::from_static(b"{not json");
        assert!(matches!(
            Message::from_frames(frames, &Signer::new("")),
            Err(WireError::BadJson { .. })
        ));
        assert!(matches!(
            Message::from_frames(vec![Bytes::from_static(b"x")], &signer),
            Err(WireError::NoDelimiter)
        ));
    }
}
