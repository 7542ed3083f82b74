//! How slurmbook reaches a cluster: the one [`Transport`] trait the Slurm
//! executor talks through, and its SSH implementation.
//!
//! * [`Transport`]: run a command (an argv, never a shell string with user
//!   text), run a script (sent on stdin), upload content-addressed
//!   (`<cache_dir>/<sha256>`, nothing resent), start a streaming command
//!   (how files are followed: the watcher's `tail -F`), fetch a file,
//!   expand `$HOME`/`$SCRATCH` directories, counters, close.
//! * [`ssh`]: [`Remote`], one lazily opened, multiplexed OpenSSH master per
//!   host (strict host key checking), reconnect-once after the master died.
//! * [`local`]: [`LocalHost`], Slurm on this machine without SSH (a
//!   profile without `host`).
//! * [`shell`]: quoting ([`quote`], [`command_line`]) and the remote path
//!   rules ([`check_abs_path`]), shared by every implementation.
//! * The error type: [`TransportError`] (module [`error`]).
//!
//! Executors hold a `&dyn Transport` (or `Arc<dyn Transport>`); only the
//! code that chooses the transport names [`Remote`].
//!
//! [`LocalHost`] runs the same argv as local processes, scripts with
//! `sh -s`, uploads as copies into the cache directory, the watcher's tail
//! as a local child, and expands directories from its own environment.

pub mod error;
pub mod local;
pub mod shell;
pub mod ssh;

use std::any::Any;
use std::fmt;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use error::{Result, TransportError};
pub use local::LocalHost;
pub use shell::{check_abs_path, command_line, is_safe_path, quote, words};
pub use ssh::{Remote, SshTarget, CONNECT_TIMEOUT, SSH_CONFIG_ENV};

/// Which transport a profile asks for: SSH to a host, or this machine (a
/// Slurm profile without `host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportTarget {
    Ssh(SshTarget),
    /// Slurm commands run here; the profile's name, for messages.
    Local {
        profile: String,
    },
}

impl TransportTarget {
    /// A transport to it (SSH connects lazily, on the first command).
    pub fn open(&self) -> std::sync::Arc<dyn Transport> {
        match self {
            TransportTarget::Ssh(t) => std::sync::Arc::new(Remote::new(t.clone())),
            TransportTarget::Local { profile } => std::sync::Arc::new(LocalHost::new(profile)),
        }
    }

    /// `ssh login.hpc.example` or `local (no SSH)`, for `%config`.
    pub fn describe(&self) -> String {
        match self {
            TransportTarget::Ssh(t) => format!("ssh {}", t.host),
            TransportTarget::Local { .. } => "local (no SSH)".to_string(),
        }
    }
}

/// Whether a command may run a second time when the connection broke while
/// it ran (and was re-established).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Idempotent: run again once after reconnecting.
    Safe,
    /// Never run twice: retried only if it certainly did not start.
    Once,
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` if the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportStats {
    /// Connections opened (the first one included; SSH: master connections).
    pub connections: u64,
    /// Of those, re-established after the connection died.
    pub reconnects: u64,
    /// Commands started (SSH: each is one channel over the master).
    pub commands: u64,
    /// Bytes sent by [`Transport::upload_cas`].
    pub bytes_uploaded: u64,
}

/// A long-running command started by [`Transport::spawn_streaming`]:
/// its stdin (closing it asks the command to finish) and stdout. Dropping
/// it lets go of the process.
pub struct Streaming {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// Whatever keeps the process and its pipes alive.
    _process: Box<dyn Any + Send>,
}

impl Streaming {
    pub fn new(
        stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
        stdout: Box<dyn AsyncRead + Send + Unpin>,
        process: impl Any + Send,
    ) -> Streaming {
        Streaming {
            stdin,
            stdout,
            _process: Box::new(process),
        }
    }
}

impl fmt::Debug for Streaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("stdin_open", &self.stdin.is_some())
            .finish_non_exhaustive()
    }
}

/// The way to the cluster: where Slurm commands run and files live.
///
/// Every command is an argv whose words arrive verbatim (an implementation
/// may join them into a quoted command line, see [`command_line`]);
/// generated scripts go on stdin, so they are data, never a command line.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Where commands run, for messages: the ssh destination, `localhost`.
    fn location(&self) -> &str;

    /// Run `argv` and collect its output. A non-zero exit is not an error.
    async fn command(&self, argv: &[&str], repeat: Repeat) -> Result<CommandOutput>;

    /// Run a POSIX sh script, given to `sh -s` on stdin.
    async fn script(&self, script: &str, repeat: Repeat) -> Result<CommandOutput>;

    /// Put `bytes` at `<cache_dir>/<sha256>` unless it is there already
    /// (checked before any byte is sent), verified and renamed into place;
    /// `cache_dir` is absolute and created if missing. Returns the path and
    /// the number of bytes sent (0 when already present).
    async fn upload_cas(
        &self,
        cache_dir: &str,
        bytes: &[u8],
        executable: bool,
    ) -> Result<(String, u64)>;

    /// Start a long-running command with piped stdin and stdout (stderr
    /// discarded): how the watcher follows files (`tail -F`).
    async fn spawn_streaming(&self, argv: &[&str]) -> Result<Streaming>;

    /// The content of the file at `path`.
    async fn fetch(&self, path: &str) -> Result<Vec<u8>>;

    /// Expand a user-given directory: a leading `$HOME`, `${HOME}`,
    /// `$SCRATCH`, `${SCRATCH}` or `~` is replaced by its value where the
    /// commands run; a relative path is relative to `$HOME`. The result is
    /// absolute and passes [`check_abs_path`].
    async fn expand_dir(&self, dir: &str) -> Result<String>;

    /// Make sure the connection is usable, re-establishing it if it died
    /// (after a streaming command broke off).
    async fn ensure_alive(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> TransportStats;

    /// Close the connection (it is reopened by the next command).
    async fn close(&self);

    /// [`Transport::command`] of an idempotent command.
    async fn run(&self, argv: &[&str]) -> Result<CommandOutput> {
        self.command(argv, Repeat::Safe).await
    }

    /// [`Transport::command`] of a command that must not run twice.
    async fn run_once(&self, argv: &[&str]) -> Result<CommandOutput> {
        self.command(argv, Repeat::Once).await
    }

    /// [`Transport::script`] of a script that must not run twice.
    async fn run_script(&self, script: &str) -> Result<CommandOutput> {
        self.script(script, Repeat::Once).await
    }

    /// [`Transport::script`] of a script that may safely run twice.
    async fn run_script_idempotent(&self, script: &str) -> Result<CommandOutput> {
        self.script(script, Repeat::Safe).await
    }
}
