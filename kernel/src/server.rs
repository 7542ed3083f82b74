//! Binds the five sockets of a connection file and runs the channels.

use crate::channels::{control, heartbeat, iopub, shell, stdin, Io, Replier};
use crate::engine::Engine;
use crate::handlers::{KernelControl, RustKernel};
use crate::wire::{ConnectionInfo, Signer};
use anyhow::{Context, Result};
use slurmbook_magics::run::Workspace;
use std::sync::Arc;
use zeromq::{RepSocket, RouterSocket, Socket, XPubSocket};

/// Serves the kernel's channels; `engine` was started (and warms up) already.
pub async fn serve(conn: ConnectionInfo, engine: Engine) -> Result<()> {
    // The first kernel_info_reply asks rustc for its version (once, through
    // rustup's proxy): ask now, while the sockets are bound.
    std::thread::spawn(|| drop(crate::protocol::kernel_info_reply()));
    let signer = Signer::new(&conn.key);
    let session = uuid::Uuid::new_v4().to_string();

    let mut shell_socket = RouterSocket::new();
    bind(&mut shell_socket, &conn, conn.shell_port, "shell").await?;
    let mut control_socket = RouterSocket::new();
    bind(&mut control_socket, &conn, conn.control_port, "control").await?;
    let mut stdin_socket = RouterSocket::new();
    bind(&mut stdin_socket, &conn, conn.stdin_port, "stdin").await?;
    let mut iopub_socket = XPubSocket::new();
    bind(&mut iopub_socket, &conn, conn.iopub_port, "iopub").await?;
    let mut hb_socket = RepSocket::new();
    bind(&mut hb_socket, &conn, conn.hb_port, "heartbeat").await?;

    let (iopub, iopub_rx) = iopub::Iopub::new(&session);
    tokio::spawn(iopub::run(
        iopub_socket,
        iopub_rx,
        signer.clone(),
        session.clone(),
    ));
    tokio::spawn(heartbeat::run(hb_socket));
    iopub.status(None, "starting");

    let (stdin_send, stdin_recv) = stdin_socket.split();
    let io = Io {
        session: session.clone(),
        signer: signer.clone(),
        iopub,
        stdin: stdin::Stdin::new(
            Replier::new(stdin_send, signer.clone()),
            stdin_recv,
            signer.clone(),
            &session,
        ),
    };
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let output_gate = Arc::new(slurmbook_magics::exec::slurm::OutputGate::new());
    let control_handler = Arc::new(KernelControl {
        engine: engine.clone(),
        cancel: cancel.clone(),
        output_gate: output_gate.clone(),
    });
    tokio::spawn(crate::parent::watch(control_handler.clone()));
    let (control_send, control_recv) = control_socket.split();
    tokio::spawn(control::run(
        control_recv,
        Replier::new(control_send, signer.clone()),
        io.clone(),
        control_handler.clone(),
    ));
    let (shell_send, shell_recv) = shell_socket.split();
    tracing::info!(%session, "kernel ready");
    shell::run(
        shell_recv,
        Replier::new(shell_send, signer),
        io,
        RustKernel::new(engine, Workspace::from_env(), cancel, output_gate),
        control_handler,
    )
    .await;
    Ok(())
}

async fn bind<S: Socket>(
    socket: &mut S,
    conn: &ConnectionInfo,
    port: u16,
    name: &str,
) -> Result<()> {
    let endpoint = conn.endpoint(port);
    socket
        .bind(&endpoint)
        .await
        .with_context(|| format!("binding the {name} socket to {endpoint}"))?;
    Ok(())
}
