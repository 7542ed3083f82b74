//! The kernel ends with the process that started it. A Jupyter server that
//! is killed (a JupyterHub stopping or culling a user's server, an OOM
//! kill) never sends `shutdown_request`; like ipykernel's parent poller,
//! the kernel checks once a second that its parent is still there and
//! otherwise stops its children and exits, instead of living on as an
//! orphan. Slurm runs it was watching keep going; `%attach` resumes them.

use std::sync::Arc;
use std::time::Duration;

use crate::channels::ControlHandler;

/// Watches the parent process (nothing to watch when it is already init).
pub async fn watch<C: ControlHandler + ?Sized>(handler: Arc<C>) {
    let parent = std::os::unix::process::parent_id();
    if parent <= 1 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if std::os::unix::process::parent_id() != parent {
            tracing::warn!(
                parent,
                "the process that started the kernel is gone: shutting down"
            );
            handler.shutdown();
            std::process::exit(0);
        }
    }
}
