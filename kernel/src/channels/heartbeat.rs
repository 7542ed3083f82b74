//! Heartbeat: echoes every message it receives.

use zeromq::{RepSocket, SocketRecv, SocketSend};

pub async fn run(mut socket: RepSocket) {
    loop {
        match socket.recv().await {
            Ok(msg) => {
                if let Err(error) = socket.send(msg).await {
                    tracing::warn!(%error, "heartbeat echo failed");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
