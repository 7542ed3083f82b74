//! The SSH [`Transport`]: one multiplexed OpenSSH master per [`Remote`],
//! opened on first use and shared by every command, upload and tail.
//!
//! Strict host key checking is on; a master that died is re-established
//! once (commands that may have run already are only repeated when
//! idempotent, [`Repeat::Safe`]). Everything sent to the remote shell is
//! either a fixed string of this module or shell-quoted; scripts go to
//! `sh -s` on stdin, so generated text is data, never a command line.
//!
//! * [`target`]: [`SshTarget`], where to connect.
//! * `upload`: content-addressed uploads in one round trip.
//! * `classify`: ssh's messages as helpful errors.

mod classify;
pub mod target;
mod upload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use super::error::{Result, TransportError};
use super::shell::{check_abs_path, command_line, join_dir_var, normalize, split_dir_var};
use super::{CommandOutput, Repeat, Streaming, Transport, TransportStats};
use classify::{abbreviate, classify_ssh_message, error_chain};
pub use target::{SshTarget, CONNECT_TIMEOUT, SSH_CONFIG_ENV};

/// Why one attempt failed.
enum AttemptError {
    /// The master is gone. `started`: the command may have run.
    MasterGone {
        started: bool,
        detail: String,
    },
    Other(TransportError),
}

/// A remote host reached through one multiplexed OpenSSH master.
pub struct Remote {
    target: SshTarget,
    session: Mutex<Option<Arc<Session>>>,
    connections: AtomicU64,
    reconnects: AtomicU64,
    commands: AtomicU64,
    bytes_uploaded: AtomicU64,
    expanded: std::sync::Mutex<HashMap<&'static str, String>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("target", &self.target)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Remote {
    /// A remote; nothing is connected until first use.
    pub fn new(target: SshTarget) -> Remote {
        Remote {
            target,
            session: Mutex::new(None),
            connections: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            expanded: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Open the master now (it is otherwise opened by the first command).
    pub async fn connect(&self) -> Result<()> {
        self.session().await.map(|_| ())
    }

    /// The control socket of the current master, if one is open (for
    /// `ssh -S <socket> -O check|exit x`).
    pub async fn control_socket(&self) -> Option<PathBuf> {
        self.session
            .lock()
            .await
            .as_ref()
            .map(|s| s.control_socket().to_path_buf())
    }

    async fn open(&self) -> Result<Session> {
        let t = &self.target;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Strict)
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(Duration::from_secs(15))
            // A master orphaned by a crashed kernel goes away by itself.
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(600).expect("non-zero"),
            ));
        if let Some(c) = &t.config_file {
            b.config_file(c);
        }
        if let Some(u) = &t.user {
            b.user(u.clone());
        }
        if let Some(p) = t.port {
            b.port(p);
        }
        if let Some(k) = &t.identity {
            b.keyfile(k);
        }
        if t.host.is_empty() || t.host.starts_with('-') || t.host.contains(char::is_whitespace) {
            return Err(TransportError::BadArgument(format!(
                "`{}` is not an ssh destination",
                t.host
            )));
        }
        // ConnectTimeout covers TCP and the banner; this also bounds
        // authentication and ProxyJump hops.
        let session = tokio::time::timeout(CONNECT_TIMEOUT * 3, b.connect_mux(&t.host))
            .await
            .map_err(|_| TransportError::Unreachable {
                host: t.host.clone(),
                config: t.config_text(),
                detail: format!("no connection after {} s", (CONNECT_TIMEOUT * 3).as_secs()),
            })?
            .map_err(|e| classify_ssh_message(&self.target, &error_chain(&e)))?;
        self.connections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(host = %t.host, "ssh master opened");
        Ok(session)
    }

    async fn session(&self) -> Result<Arc<Session>> {
        let mut g = self.session.lock().await;
        if let Some(s) = &*g {
            return Ok(s.clone());
        }
        let s = Arc::new(self.open().await?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// Replace the master `broken` with a new one (unless another task already did).
    async fn reconnect(&self, broken: &Arc<Session>) -> Result<Arc<Session>> {
        let mut g = self.session.lock().await;
        if let Some(cur) = &*g {
            if !Arc::ptr_eq(cur, broken) {
                return Ok(cur.clone());
            }
        }
        *g = None;
        tracing::info!(host = %self.target.host, "ssh master lost; reconnecting");
        let s = Arc::new(self.open().await?);
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        *g = Some(s.clone());
        Ok(s)
    }

    async fn exec(
        &self,
        line: &str,
        stdin: Option<&[u8]>,
        repeat: Repeat,
    ) -> Result<CommandOutput> {
        let session = self.session().await?;
        match self.attempt(&session, line, stdin).await {
            Ok(o) => Ok(o),
            Err(AttemptError::Other(e)) => Err(e),
            Err(AttemptError::MasterGone { started, detail }) => {
                if started && repeat == Repeat::Once {
                    return Err(TransportError::Disconnected {
                        host: self.target.host.clone(),
                        retried: " while a non-repeatable command ran (not retried)",
                        detail,
                    });
                }
                let session = self.reconnect(&session).await?;
                match self.attempt(&session, line, stdin).await {
                    Ok(o) => Ok(o),
                    Err(AttemptError::Other(e)) => Err(e),
                    Err(AttemptError::MasterGone { detail, .. }) => {
                        Err(TransportError::Disconnected {
                            host: self.target.host.clone(),
                            retried: " again after reconnecting",
                            detail,
                        })
                    }
                }
            }
        }
    }

    async fn attempt(
        &self,
        session: &Arc<Session>,
        line: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput, AttemptError> {
        let mut cmd = session.raw_command(user_only(line));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = match cmd.spawn().await {
            Ok(c) => c,
            Err(e) => return Err(self.attempt_error(session, line, e, false).await),
        };
        self.commands.fetch_add(1, Ordering::Relaxed);
        let input = child.stdin().take();
        let mut out = child.stdout().take();
        let mut err = child.stderr().take();
        let write = async {
            if let (Some(mut w), Some(data)) = (input, stdin) {
                // A remote that exits early closes the pipe; what it printed tells why.
                let _ = w.write_all(data).await;
                let _ = w.shutdown().await;
            }
        };
        let read_out = async {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                o.read_to_end(&mut v).await?;
            }
            Ok::<_, std::io::Error>(v)
        };
        let read_err = async {
            let mut v = Vec::new();
            if let Some(o) = err.as_mut() {
                o.read_to_end(&mut v).await?;
            }
            Ok::<_, std::io::Error>(v)
        };
        let ((), stdout, stderr) = tokio::join!(write, read_out, read_err);
        let status = child.wait().await;
        let (stdout, stderr) = (stdout.unwrap_or_default(), stderr.unwrap_or_default());
        let output = |code| CommandOutput {
            code,
            stdout,
            stderr,
        };
        match status {
            Ok(st) => {
                let code = st.code();
                if code == Some(255) && session.check().await.is_err() {
                    return Err(AttemptError::MasterGone {
                        started: true,
                        detail: "exit status 255 and the master is gone".into(),
                    });
                }
                Ok(output(code))
            }
            // native-mux reports exit status 127 as an error.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(output(Some(127)))
            }
            // Killed by a signal (the master is fine): no exit code.
            Err(openssh::Error::RemoteProcessTerminated) if session.check().await.is_ok() => {
                Ok(output(None))
            }
            Err(e) => Err(self.attempt_error(session, line, e, true).await),
        }
    }

    async fn attempt_error(
        &self,
        session: &Arc<Session>,
        line: &str,
        e: openssh::Error,
        started: bool,
    ) -> AttemptError {
        let detail = error_chain(&e);
        let gone = match e {
            openssh::Error::Disconnected | openssh::Error::Master(_) => true,
            openssh::Error::SshMux(_)
            | openssh::Error::RemoteProcessTerminated
            | openssh::Error::ChildIo(_) => session.check().await.is_err(),
            _ => false,
        };
        if gone {
            AttemptError::MasterGone { started, detail }
        } else {
            AttemptError::Other(TransportError::Command {
                host: self.target.host.clone(),
                command: abbreviate(line),
                detail,
            })
        }
    }

    /// Start a long-running command line with piped stdin and stdout
    /// (stderr discarded). Re-establishes a dead master once before giving up.
    async fn spawn_line(&self, line: &str) -> Result<Streaming> {
        let mut session = self.session().await?;
        for attempt in 0..2 {
            let mut cmd = Session::to_raw_command(session.clone(), user_only(line));
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            match cmd.spawn().await {
                Ok(mut child) => {
                    self.commands.fetch_add(1, Ordering::Relaxed);
                    let stdin = child.stdin().take();
                    let Some(stdout) = child.stdout().take() else {
                        return Err(TransportError::Command {
                            host: self.target.host.clone(),
                            command: abbreviate(line),
                            detail: "no stdout".into(),
                        });
                    };
                    return Ok(Streaming::new(
                        stdin.map(|w| Box::new(w) as _),
                        Box::new(stdout),
                        child,
                    ));
                }
                Err(e) => match self.attempt_error(&session, line, e, false).await {
                    AttemptError::MasterGone { detail, .. } => {
                        if attempt == 1 {
                            return Err(TransportError::Disconnected {
                                host: self.target.host.clone(),
                                retried: " again after reconnecting",
                                detail,
                            });
                        }
                        session = self.reconnect(&session).await?;
                    }
                    AttemptError::Other(e) => return Err(e),
                },
            }
        }
        unreachable!("the loop returns")
    }

    /// The value of `$HOME` or `$SCRATCH` on the remote (one `printf`, cached).
    async fn remote_var(&self, dir: &str, var: &'static str) -> Result<String> {
        let cached = self.expanded.lock().expect("poisoned").get(var).cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        // A fixed command; `var` is one of two constants.
        let line = match var {
            "HOME" => "printf %s \"$HOME\"",
            _ => "printf %s \"$SCRATCH\"",
        };
        let out = self.exec(line, None, Repeat::Safe).await?;
        let v = out.stdout_text();
        if !out.success() || v.is_empty() {
            return Err(TransportError::BadPath {
                path: dir.into(),
                why: format!("${var} is not set on `{}`", self.target.host),
            });
        }
        self.expanded
            .lock()
            .expect("poisoned")
            .insert(var, v.clone());
        Ok(v)
    }
}

#[async_trait]
impl Transport for Remote {
    fn location(&self) -> &str {
        &self.target.host
    }

    async fn command(&self, argv: &[&str], repeat: Repeat) -> Result<CommandOutput> {
        let line = command_line(argv)?;
        self.exec(&line, None, repeat).await
    }

    async fn script(&self, script: &str, repeat: Repeat) -> Result<CommandOutput> {
        self.exec("sh -s", Some(script.as_bytes()), repeat).await
    }

    async fn upload_cas(
        &self,
        cache_dir: &str,
        bytes: &[u8],
        executable: bool,
    ) -> Result<(String, u64)> {
        self.upload(cache_dir, bytes, executable).await
    }

    async fn spawn_streaming(&self, argv: &[&str]) -> Result<Streaming> {
        let line = command_line(argv)?;
        self.spawn_line(&line).await
    }

    async fn fetch(&self, path: &str) -> Result<Vec<u8>> {
        let out = self.command(&["cat", "--", path], Repeat::Safe).await?;
        if !out.success() {
            return Err(TransportError::Command {
                host: self.target.host.clone(),
                command: format!("cat -- {path}"),
                detail: format!("exit status {:?}: {}", out.code, out.stderr_text().trim()),
            });
        }
        Ok(out.stdout)
    }

    async fn expand_dir(&self, dir: &str) -> Result<String> {
        let (var, rest) = split_dir_var(dir)?;
        let Some(var) = var else {
            check_abs_path(rest)?;
            return Ok(normalize(rest));
        };
        let value = self.remote_var(dir, var).await?;
        join_dir_var(dir, var, &value, rest)
    }

    async fn ensure_alive(&self) -> Result<()> {
        let session = self.session().await?;
        if session.check().await.is_err() {
            self.reconnect(&session).await?;
        }
        Ok(())
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            connections: self.connections.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        let s = self.session.lock().await.take();
        if let Some(s) = s {
            if let Ok(s) = Arc::try_unwrap(s) {
                let _ = s.close().await;
            }
        }
    }
}

/// `line` run with `umask 077`: whatever it creates on the cluster
/// (`remote_dir`, values, environments, logs; the jobs too, which inherit
/// sbatch's umask) is readable by the user alone. Fixed text before an
/// already quoted line; `;` works in sh and csh login shells alike.
pub(super) fn user_only(line: &str) -> String {
    format!("umask 077; {line}")
}
