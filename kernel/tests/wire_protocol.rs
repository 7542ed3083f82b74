//! Drives the real `slurmbook` binary over real ZeroMQ sockets: signatures,
//! malformed messages, interrupt, shutdown and history.

use bytes::Bytes;
use serde_json::{json, Value};
use slurmbook_kernel::wire::{Message, Signer};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use zeromq::{DealerSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

const KEY: &str = "test-key-0123456789";

struct Kernel {
    child: Child,
    shell: DealerSocket,
    control: DealerSocket,
    iopub: SubSocket,
    signer: Signer,
    _dir: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Kernel {
    async fn start() -> Kernel {
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("sb-wire-{}-{}", std::process::id(), ports[0]));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = dir.join("connection.json");
        std::fs::write(
            &conn,
            json!({
                "shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2],
                "control_port": ports[3], "hb_port": ports[4], "ip": "127.0.0.1",
                "key": KEY, "transport": "tcp", "signature_scheme": "hmac-sha256",
            })
            .to_string(),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_slurmbook"))
            .args(["kernel", "--connection-file"])
            .arg(&conn)
            .env("SLURMBOOK_LOG_FILE", dir.join("kernel.log"))
            .spawn()
            .expect("start kernel");
        let endpoint = |p: u16| format!("tcp://127.0.0.1:{p}");
        let mut shell = DealerSocket::new();
        let mut control = DealerSocket::new();
        let mut iopub = SubSocket::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for (socket, port) in [(&mut shell, ports[0]), (&mut control, ports[3])] {
            while socket.connect(&endpoint(port)).await.is_err() {
                assert!(Instant::now() < deadline, "kernel did not bind");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while iopub.connect(&endpoint(ports[1])).await.is_err() {
            assert!(Instant::now() < deadline, "kernel did not bind iopub");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        iopub.subscribe("").await.unwrap();
        Kernel {
            child,
            shell,
            control,
            iopub,
            signer: Signer::new(KEY),
            _dir: dir,
        }
    }

    fn frames(&self, msg_type: &str, content: Value) -> (String, Vec<Bytes>) {
        let msg = Message::new(msg_type, "test-session", None, content);
        (msg.header.msg_id.clone(), msg.to_frames(&self.signer))
    }

    async fn send_shell(&mut self, frames: Vec<Bytes>) {
        self.shell
            .send(ZmqMessage::try_from(frames).unwrap())
            .await
            .unwrap();
    }

    async fn request(&mut self, msg_type: &str, content: Value) -> String {
        let (id, frames) = self.frames(msg_type, content);
        self.send_shell(frames).await;
        id
    }

    async fn control_request(&mut self, msg_type: &str, content: Value) -> String {
        let (id, frames) = self.frames(msg_type, content);
        self.control
            .send(ZmqMessage::try_from(frames).unwrap())
            .await
            .unwrap();
        id
    }

    async fn recv_on(
        socket: &mut DealerSocket,
        signer: &Signer,
        timeout: Duration,
    ) -> Option<Message> {
        match tokio::time::timeout(timeout, socket.recv()).await {
            Ok(Ok(msg)) => {
                Some(Message::from_frames(msg.into_vec(), signer).expect("kernel's reply verifies"))
            }
            _ => None,
        }
    }

    async fn shell_reply(&mut self, timeout: Duration) -> Option<Message> {
        Self::recv_on(&mut self.shell, &self.signer, timeout).await
    }

    async fn control_reply(&mut self, timeout: Duration) -> Option<Message> {
        Self::recv_on(&mut self.control, &self.signer, timeout).await
    }

    /// Waits for an iopub message of `msg_type` whose parent is `parent`.
    async fn iopub_until(&mut self, parent: &str, msg_type: &str, timeout: Duration) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.iopub.recv())
                .await
                .unwrap_or_else(|_| panic!("no {msg_type} on iopub in {timeout:?}"))
                .unwrap();
            let msg = Message::from_frames(msg.into_vec(), &self.signer).unwrap();
            if msg.parent_header["msg_id"] == parent && msg.msg_type() == msg_type {
                return msg;
            }
        }
    }

    async fn execute(&mut self, code: &str) -> Message {
        self.request("execute_request", json!({ "code": code, "silent": false }))
            .await;
        self.shell_reply(Duration::from_secs(180))
            .await
            .expect("execute_reply")
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn bad_signature_and_malformed_json_are_dropped_and_the_kernel_keeps_serving() {
    let mut k = Kernel::start().await;
    // A forged signature: the message must be ignored.
    let (_, mut frames) = k.frames("kernel_info_request", json!({}));
    frames[1] = Bytes::from("0".repeat(64));
    k.send_shell(frames).await;
    assert!(
        k.shell_reply(Duration::from_secs(2)).await.is_none(),
        "a forged message was answered"
    );
    // Correctly signed but unparsable content.
    let header =
        serde_json::to_vec(&Message::new("kernel_info_request", "s", None, json!({})).header)
            .unwrap();
    let parts: [&[u8]; 4] = [&header, b"{}", b"{}", b"{not json"];
    let sig = k.signer.sign(&parts);
    let frames = vec![
        Bytes::from_static(b"<IDS|MSG>"),
        Bytes::from(sig),
        Bytes::from(header.clone()),
        Bytes::from_static(b"{}"),
        Bytes::from_static(b"{}"),
        Bytes::from_static(b"{not json"),
    ];
    k.send_shell(frames).await;
    // Too few frames.
    k.send_shell(vec![
        Bytes::from_static(b"<IDS|MSG>"),
        Bytes::from_static(b"x"),
    ])
    .await;
    assert!(
        k.shell_reply(Duration::from_secs(2)).await.is_none(),
        "a malformed message was answered"
    );
    // The same connection (same routing identity) still gets answers.
    let id = k.request("kernel_info_request", json!({})).await;
    let reply = k
        .shell_reply(Duration::from_secs(10))
        .await
        .expect("kernel_info_reply");
    assert_eq!(reply.parent_header["msg_id"], id.as_str());
    assert_eq!(reply.content["implementation"], "slurmbook");
    assert!(k.child.try_wait().unwrap().is_none(), "kernel died");
}

#[tokio::test]
async fn interrupt_stops_a_running_cell_within_two_seconds() {
    let mut k = Kernel::start().await;
    let warm = k.execute("1").await;
    assert_eq!(warm.content["status"], "ok");
    let id = k
        .request(
            "execute_request",
            json!({ "code": "let kept = 1; println!(\"looping\"); loop { std::thread::sleep(std::time::Duration::from_millis(100)); }" }),
        )
        .await;
    let started = k.iopub_until(&id, "stream", Duration::from_secs(120)).await;
    assert!(started.content["text"]
        .as_str()
        .unwrap()
        .contains("looping"));
    let sent = Instant::now();
    k.control_request("interrupt_request", json!({})).await;
    let interrupt_reply = k
        .control_reply(Duration::from_secs(5))
        .await
        .expect("interrupt_reply");
    assert_eq!(interrupt_reply.content["status"], "ok");
    let reply = k
        .shell_reply(Duration::from_secs(10))
        .await
        .expect("execute_reply");
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "control came back after {took:?}"
    );
    assert_eq!(reply.content["status"], "error");
    assert_eq!(reply.content["ename"], "KeyboardInterrupt");
    assert!(reply.content["evalue"]
        .as_str()
        .unwrap()
        .contains("variables were lost"));
    // The session works again afterwards.
    let after = k.execute("40 + 2").await;
    assert_eq!(after.content["status"], "ok");
}

#[tokio::test]
async fn shutdown_replies_and_exits() {
    let mut k = Kernel::start().await;
    let id = k
        .control_request("shutdown_request", json!({ "restart": false }))
        .await;
    let reply = k
        .control_reply(Duration::from_secs(10))
        .await
        .expect("shutdown_reply");
    assert_eq!(reply.parent_header["msg_id"], id.as_str());
    assert_eq!(reply.content["status"], "ok");
    assert_eq!(reply.content["restart"], false);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = k.child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kernel still running after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn history_after_three_cells() {
    let mut k = Kernel::start().await;
    for code in ["let a = 1;", "a + 1", "a * 10"] {
        assert_eq!(k.execute(code).await.content["status"], "ok");
    }
    k.request(
        "history_request",
        json!({ "hist_access_type": "tail", "n": 3, "output": true, "raw": true }),
    )
    .await;
    let reply = k.shell_reply(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        reply.content["history"],
        json!([
            [1, 1, ["let a = 1;", null]],
            [1, 2, ["a + 1", "2"]],
            [1, 3, ["a * 10", "10"]]
        ])
    );
    // Search without `unique` or `n` (both optional).
    k.request(
        "history_request",
        json!({ "hist_access_type": "search", "pattern": "a *", "output": false, "raw": true }),
    )
    .await;
    let reply = k.shell_reply(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        reply.content["history"],
        json!([[1, 2, "a + 1"], [1, 3, "a * 10"]])
    );
}
