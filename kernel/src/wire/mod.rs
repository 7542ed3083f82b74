//! The Jupyter wire protocol: connection files, HMAC signing and the
//! conversion between raw ZeroMQ frames and [`Message`]s. Nothing here knows
//! about kernels, handlers or Rust evaluation.

pub mod connection;
pub mod message;
pub mod signing;

pub use connection::ConnectionInfo;
pub use message::{Header, Message, WireError};
pub use signing::Signer;
