//! SSH transport: one multiplexed OpenSSH master per [`Remote`], opened on
//! first use and shared by every command, upload and tail.
//!
//! Everything sent to the remote shell is either a fixed string of this
//! module or shell-quoted with [`quote`]; scripts go to `sh -s` on stdin, so
//! generated text is data, never a command line.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Environment variable naming an ssh config file to use instead of
/// `~/.ssh/config` (see [`SshTarget::with_env`]).
pub const SSH_CONFIG_ENV: &str = "SLURMBOOK_SSH_CONFIG";

/// How long connecting (TCP + authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where to connect. `host` is anything `ssh` accepts as a destination,
/// typically a `~/.ssh/config` alias; the other fields override the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshTarget {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
}

impl SshTarget {
    pub fn new(host: impl Into<String>) -> SshTarget {
        SshTarget {
            host: host.into(),
            ..SshTarget::default()
        }
    }

    /// Uses `$SLURMBOOK_SSH_CONFIG` as the config file when none is set.
    pub fn with_env(mut self) -> SshTarget {
        if self.config_file.is_none() {
            if let Some(p) = std::env::var_os(SSH_CONFIG_ENV).filter(|p| !p.is_empty()) {
                self.config_file = Some(PathBuf::from(p));
            }
        }
        self
    }

    fn config_text(&self) -> String {
        match &self.config_file {
            Some(p) => p.display().to_string(),
            None => "~/.ssh/config".to_string(),
        }
    }
}

/// Errors of the transport. Connection errors say what happened and what to check.
#[derive(Debug, Error)]
pub enum SshError {
    #[error("ssh: unknown host `{host}`: it is neither a resolvable name nor a `Host` alias in {config}. Check the spelling, the ssh config (or ${SSH_CONFIG_ENV}) and DNS/VPN.\n{detail}")]
    UnknownHost {
        host: String,
        config: String,
        detail: String,
    },
    #[error("ssh: `{host}` refused the key (Permission denied (publickey)). Check that your public key is in ~/.ssh/authorized_keys on the cluster, that the right IdentityFile is used (`ssh -v {host}` shows which keys are offered) and that your agent holds it (`ssh-add -l`).\n{detail}")]
    KeyRefused { host: String, detail: String },
    #[error("ssh: the host key of `{host}` has CHANGED (REMOTE HOST IDENTIFICATION HAS CHANGED), so slurmbook refuses to connect. If the cluster's admins announced a new host key, verify its fingerprint and remove the old entry with `ssh-keygen -R <hostname>`; otherwise someone may be intercepting the connection.\n{detail}")]
    HostKeyChanged { host: String, detail: String },
    #[error("ssh: the host key of `{host}` could not be verified (Host key verification failed): it is not in your known_hosts and strict host key checking is on. Connect once with `ssh {host}` in a terminal, check the fingerprint against the one your cluster publishes, and accept it.\n{detail}")]
    HostKeyUnknown { host: String, detail: String },
    #[error("ssh: cannot reach `{host}`: {detail}. Check the network or VPN, the host name and port in {config}.")]
    Unreachable {
        host: String,
        config: String,
        detail: String,
    },
    #[error("ssh: connecting to `{host}` failed: {detail}")]
    Connect { host: String, detail: String },
    #[error("ssh: the connection to `{host}` was lost{retried}: {detail}")]
    Disconnected {
        host: String,
        retried: &'static str,
        detail: String,
    },
    #[error("ssh: running `{command}` on `{host}` failed: {detail}")]
    Command {
        host: String,
        command: String,
        detail: String,
    },
    #[error("invalid remote path `{path}`: {why}")]
    BadPath { path: String, why: String },
    #[error("invalid argument for a remote command: {0}")]
    BadArgument(String),
    #[error("upload to `{path}` on `{host}` failed: {detail}")]
    Upload {
        host: String,
        path: String,
        detail: String,
    },
}

pub type Result<T, E = SshError> = std::result::Result<T, E>;

/// What a remote command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutput {
    /// Exit code; `None` if the remote process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl RemoteOutput {
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
pub struct RemoteStats {
    /// SSH master connections opened (the first one included).
    pub connections: u64,
    /// Of those, re-established after the master died.
    pub reconnects: u64,
    /// Remote commands started (each is one channel over the master).
    pub commands: u64,
    /// Bytes sent by [`Remote::upload_cas`].
    pub bytes_uploaded: u64,
}

/// Quote one word for a POSIX shell: returned as is when it consists only of
/// characters no shell treats specially, else in single quotes with each `'`
/// written as `'\''`.
pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b));
    if plain {
        Cow::Borrowed(word)
    } else {
        let mut s = String::with_capacity(word.len() + 2);
        s.push('\'');
        for c in word.chars() {
            if c == '\'' {
                s.push_str("'\\''");
            } else {
                s.push(c);
            }
        }
        s.push('\'');
        Cow::Owned(s)
    }
}

/// One command line from an argv, every word quoted. Rejects NUL bytes,
/// which no argv can carry.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> Result<String> {
    if argv.is_empty() {
        return Err(SshError::BadArgument("empty command".into()));
    }
    let mut line = String::new();
    for (i, a) in argv.iter().enumerate() {
        let a = a.as_ref();
        if a.contains('\0') {
            return Err(SshError::BadArgument(format!(
                "argument {i} contains a NUL byte"
            )));
        }
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&quote(a));
    }
    Ok(line)
}

/// True for characters allowed in remote paths slurmbook builds on: no
/// whitespace, quotes, `$`, `%` (sbatch's filename patterns), `~` or globs.
pub fn is_safe_path(p: &str) -> bool {
    p.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b))
}

/// An absolute remote path made only of [`is_safe_path`] characters.
pub fn check_abs_path(p: &str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(SshError::BadPath {
            path: p.into(),
            why: "not absolute (expand `$SCRATCH`/`$HOME`/`~` with Remote::expand_dir first)"
                .into(),
        });
    }
    if !is_safe_path(p) {
        return Err(SshError::BadPath {
            path: p.into(),
            why: "only letters, digits and `_./-` are allowed".into(),
        });
    }
    Ok(())
}

/// Whether a command may be run again after the master died while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Idempotent: retried once after re-establishing the master.
    Always,
    /// Retried only if it certainly did not start (the master was already gone).
    IfNotStarted,
}

/// Why one attempt failed.
enum AttemptError {
    /// The master is gone. `started`: the command may have run.
    MasterGone {
        started: bool,
        detail: String,
    },
    Other(SshError),
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

    pub fn stats(&self) -> RemoteStats {
        RemoteStats {
            connections: self.connections.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
        }
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

    /// Close the master (also done when the `Remote` is dropped).
    pub async fn close(&self) {
        let s = self.session.lock().await.take();
        if let Some(s) = s {
            if let Ok(s) = Arc::try_unwrap(s) {
                let _ = s.close().await;
            }
        }
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
            return Err(SshError::BadArgument(format!(
                "`{}` is not an ssh destination",
                t.host
            )));
        }
        // ConnectTimeout covers TCP and the banner; this also bounds
        // authentication and ProxyJump hops.
        let session = tokio::time::timeout(CONNECT_TIMEOUT * 3, b.connect_mux(&t.host))
            .await
            .map_err(|_| SshError::Unreachable {
                host: t.host.clone(),
                config: t.config_text(),
                detail: format!("no connection after {} s", (CONNECT_TIMEOUT * 3).as_secs()),
            })?
            .map_err(|e| self.classify_connect(e))?;
        self.connections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(host = %t.host, "ssh master opened");
        Ok(session)
    }

    fn classify_connect(&self, e: openssh::Error) -> SshError {
        let detail = error_chain(&e);
        classify_ssh_message(&self.target, &detail)
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

    /// Run `argv` (each word quoted) and collect its output. For idempotent
    /// commands: if the master dies, it is re-established once and the
    /// command run again.
    pub async fn run<S: AsRef<str>>(&self, argv: &[S]) -> Result<RemoteOutput> {
        let line = command_line(argv)?;
        self.exec(&line, None, Retry::Always).await
    }

    /// Like [`Remote::run`], but never run twice: retried after a reconnect
    /// only if it certainly did not start.
    pub async fn run_once<S: AsRef<str>>(&self, argv: &[S]) -> Result<RemoteOutput> {
        let line = command_line(argv)?;
        self.exec(&line, None, Retry::IfNotStarted).await
    }

    /// Run a POSIX sh script, sent on stdin to `sh -s`. Not assumed
    /// idempotent: retried after a reconnect only if it did not start.
    pub async fn run_script(&self, script: &str) -> Result<RemoteOutput> {
        self.exec("sh -s", Some(script.as_bytes()), Retry::IfNotStarted)
            .await
    }

    /// [`Remote::run_script`] for scripts that may safely run twice.
    pub async fn run_script_idempotent(&self, script: &str) -> Result<RemoteOutput> {
        self.exec("sh -s", Some(script.as_bytes()), Retry::Always)
            .await
    }

    async fn exec(&self, line: &str, stdin: Option<&[u8]>, retry: Retry) -> Result<RemoteOutput> {
        let session = self.session().await?;
        match self.attempt(&session, line, stdin).await {
            Ok(o) => Ok(o),
            Err(AttemptError::Other(e)) => Err(e),
            Err(AttemptError::MasterGone { started, detail }) => {
                if started && retry == Retry::IfNotStarted {
                    return Err(SshError::Disconnected {
                        host: self.target.host.clone(),
                        retried: " while a non-repeatable command ran (not retried)",
                        detail,
                    });
                }
                let session = self.reconnect(&session).await?;
                match self.attempt(&session, line, stdin).await {
                    Ok(o) => Ok(o),
                    Err(AttemptError::Other(e)) => Err(e),
                    Err(AttemptError::MasterGone { detail, .. }) => Err(SshError::Disconnected {
                        host: self.target.host.clone(),
                        retried: " again after reconnecting",
                        detail,
                    }),
                }
            }
        }
    }

    async fn attempt(
        &self,
        session: &Arc<Session>,
        line: &str,
        stdin: Option<&[u8]>,
    ) -> Result<RemoteOutput, AttemptError> {
        let mut cmd = session.raw_command(line);
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
        match status {
            Ok(st) => {
                let code = st.code();
                if code == Some(255) && session.check().await.is_err() {
                    return Err(AttemptError::MasterGone {
                        started: true,
                        detail: "exit status 255 and the master is gone".into(),
                    });
                }
                Ok(RemoteOutput {
                    code,
                    stdout,
                    stderr,
                })
            }
            // native-mux reports exit status 127 as an error.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(RemoteOutput {
                    code: Some(127),
                    stdout,
                    stderr,
                })
            }
            // Killed by a signal (the master is fine): no exit code.
            Err(openssh::Error::RemoteProcessTerminated) if session.check().await.is_ok() => {
                Ok(RemoteOutput {
                    code: None,
                    stdout,
                    stderr,
                })
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
            AttemptError::Other(SshError::Command {
                host: self.target.host.clone(),
                command: abbreviate(line),
                detail,
            })
        }
    }

    /// Start a long-running remote command with piped stdin and stdout
    /// (stderr discarded). Re-establishes a dead master once before giving up.
    pub(crate) async fn spawn_streaming(&self, line: &str) -> Result<openssh::Child<Arc<Session>>> {
        let mut session = self.session().await?;
        for attempt in 0..2 {
            let mut cmd = Session::to_raw_command(session.clone(), line);
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            match cmd.spawn().await {
                Ok(child) => {
                    self.commands.fetch_add(1, Ordering::Relaxed);
                    return Ok(child);
                }
                Err(e) => match self.attempt_error(&session, line, e, false).await {
                    AttemptError::MasterGone { detail, .. } => {
                        if attempt == 1 {
                            return Err(SshError::Disconnected {
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

    /// Make sure the master is alive, re-establishing it if it died.
    pub async fn ensure_alive(&self) -> Result<()> {
        let session = self.session().await?;
        if session.check().await.is_err() {
            self.reconnect(&session).await?;
        }
        Ok(())
    }

    /// Expand a user-given remote directory: a leading `$HOME`, `${HOME}`,
    /// `$SCRATCH`, `${SCRATCH}` or `~` is replaced by the remote value (one
    /// `printf %s "$VAR"`, cached); a relative path is taken relative to
    /// `$HOME`. The rest must match `^[A-Za-z0-9_./-]*$`, and so must the
    /// result, which is absolute.
    pub async fn expand_dir(&self, dir: &str) -> Result<String> {
        let (var, rest) = split_dir_var(dir)?;
        let Some(var) = var else {
            check_abs_path(rest)?;
            return Ok(normalize(rest));
        };
        let cached = self.expanded.lock().expect("poisoned").get(var).cloned();
        let value = match cached {
            Some(v) => v,
            None => {
                // A fixed command; `var` is one of two constants.
                let line = match var {
                    "HOME" => "printf %s \"$HOME\"",
                    _ => "printf %s \"$SCRATCH\"",
                };
                let out = self.exec(line, None, Retry::Always).await?;
                let v = out.stdout_text();
                if !out.success() || v.is_empty() {
                    return Err(SshError::BadPath {
                        path: dir.into(),
                        why: format!("${var} is not set on `{}`", self.target.host),
                    });
                }
                self.expanded
                    .lock()
                    .expect("poisoned")
                    .insert(var, v.clone());
                v
            }
        };
        let full = format!("{}/{}", value.trim_end_matches('/'), rest);
        if let Err(SshError::BadPath { why, .. }) = check_abs_path(&full) {
            return Err(SshError::BadPath {
                path: dir.into(),
                why: format!("${var} is `{value}` on the cluster, which is unusable: {why}"),
            });
        }
        Ok(normalize(&full))
    }

    /// Upload `bytes` to `cache_dir/<sha256>` unless it is there already
    /// (checked in the same round trip, before any byte is sent). Written to
    /// a temporary name, verified (size, and sha256 when `sha256sum` exists)
    /// and renamed into place. `cache_dir` must be absolute (see
    /// [`Remote::expand_dir`]); it is created if missing. Returns the remote
    /// path and the number of bytes sent (0 when already present).
    pub async fn upload_cas(
        &self,
        cache_dir: &str,
        bytes: &[u8],
        executable: bool,
    ) -> Result<(String, u64)> {
        check_abs_path(cache_dir)?;
        let hash = hex::encode(Sha256::digest(bytes));
        let dir = normalize(cache_dir);
        let path = format!("{}/{}", dir.trim_end_matches('/'), hash);
        let argv = [
            "sh",
            "-c",
            UPLOAD_SCRIPT,
            "sh",
            &dir,
            &hash,
            if executable { "x" } else { "-" },
            &bytes.len().to_string(),
        ];
        let line = command_line(&argv)?;
        // Idempotent (content-addressed): retried once after a reconnect.
        let mut session = self.session().await?;
        for attempt in 0..2 {
            match self.upload_attempt(&session, &line, bytes, &path).await {
                Ok(sent) => {
                    self.bytes_uploaded.fetch_add(sent, Ordering::Relaxed);
                    return Ok((path, sent));
                }
                Err(AttemptError::Other(e)) => return Err(e),
                Err(AttemptError::MasterGone { detail, .. }) => {
                    if attempt == 1 {
                        return Err(SshError::Disconnected {
                            host: self.target.host.clone(),
                            retried: " again after reconnecting",
                            detail,
                        });
                    }
                    session = self.reconnect(&session).await?;
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn upload_attempt(
        &self,
        session: &Arc<Session>,
        line: &str,
        bytes: &[u8],
        path: &str,
    ) -> Result<u64, AttemptError> {
        let upload_err = |detail: String| {
            AttemptError::Other(SshError::Upload {
                host: self.target.host.clone(),
                path: path.to_string(),
                detail,
            })
        };
        let mut cmd = session.raw_command(line);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn().await {
            Ok(c) => c,
            Err(e) => return Err(self.attempt_error(session, line, e, false).await),
        };
        self.commands.fetch_add(1, Ordering::Relaxed);
        let mut stdin = child.stdin().take();
        let mut out = BufReader::new(child.stdout().take().expect("piped"));
        let mut errp = child.stderr().take().expect("piped");
        let mut first = String::new();
        let read_first = out.read_line(&mut first).await;
        let mut sent = 0u64;
        if read_first.is_ok() && first.trim_end() == "absent" {
            if let Some(w) = stdin.as_mut() {
                if w.write_all(bytes).await.is_ok() {
                    sent = bytes.len() as u64;
                }
            }
        }
        if let Some(mut w) = stdin.take() {
            let _ = w.shutdown().await;
        }
        let mut rest = String::new();
        let mut errs = String::new();
        let _ = tokio::join!(
            out.read_to_string(&mut rest),
            errp.read_to_string(&mut errs)
        );
        let status = match child.wait().await {
            Ok(s) => s,
            Err(e) => return Err(self.attempt_error(session, line, e, true).await),
        };
        if status.code() == Some(255) && session.check().await.is_err() {
            return Err(AttemptError::MasterGone {
                started: true,
                detail: "exit status 255 and the master is gone".into(),
            });
        }
        match (first.trim_end(), rest.trim_end(), status.success()) {
            ("present", _, true) => Ok(0),
            ("absent", "ok", true) => Ok(sent),
            _ => Err(upload_err(format!(
                "exit status {:?}: {}{}",
                status.code(),
                rest.trim(),
                errs.trim()
            ))),
        }
    }
}

/// `sh -c` script of [`Remote::upload_cas`]: `$1` dir, `$2` sha256, `$3` `x`
/// for executable, `$4` size. Prints `present` or `absent` first; when
/// absent reads the content on stdin and prints `ok` once it is in place.
/// One line, so that it also passes through a csh login shell.
const UPLOAD_SCRIPT: &str = concat!(
    r#"f="$1/$2"; "#,
    r#"if [ -f "$f" ]; then "#,
    r#"if [ "$3" = x ] && [ ! -x "$f" ]; then chmod 755 "$f" || exit 1; fi; "#,
    r#"echo present; exit 0; fi; "#,
    r#"echo absent; "#,
    r#"mkdir -p "$1" || exit 1; "#,
    r#"t="$f.tmp.$$"; "#,
    r#"trap 'rm -f "$t"' EXIT; "#,
    r#"cat > "$t" || exit 1; "#,
    r#"n=$(wc -c < "$t" | tr -d ' '); "#,
    r#"if [ "$n" != "$4" ]; then echo "received $n of $4 bytes" >&2; exit 1; fi; "#,
    r#"if command -v sha256sum >/dev/null 2>&1; then "#,
    r#"h=$(sha256sum < "$t"); h=${h%% *}; "#,
    r#"if [ "$h" != "$2" ]; then echo "checksum mismatch: $h" >&2; exit 1; fi; fi; "#,
    r#"if [ "$3" = x ]; then chmod 755 "$t"; else chmod 644 "$t"; fi || exit 1; "#,
    r#"mv -f "$t" "$f" || exit 1; "#,
    r#"trap - EXIT; "#,
    r#"echo ok"#,
);

/// Split a leading `$HOME`/`${HOME}`/`$SCRATCH`/`${SCRATCH}`/`~` off `dir`.
/// A relative path is relative to `$HOME`. The remainder is validated.
fn split_dir_var(dir: &str) -> Result<(Option<&'static str>, &str)> {
    let bad = |why: &str| SshError::BadPath {
        path: dir.into(),
        why: why.into(),
    };
    let candidates: [(&str, &'static str); 5] = [
        ("${HOME}", "HOME"),
        ("$HOME", "HOME"),
        ("${SCRATCH}", "SCRATCH"),
        ("$SCRATCH", "SCRATCH"),
        ("~", "HOME"),
    ];
    let mut found = None;
    for (prefix, var) in candidates {
        if let Some(rest) = dir.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                found = Some((var, rest.trim_start_matches('/')));
                break;
            }
        }
    }
    let (var, rest) = match found {
        Some((v, r)) => (Some(v), r),
        None if dir.starts_with('/') => (None, dir),
        None if dir.starts_with('$') || dir.starts_with('~') => {
            return Err(bad(
                "only a leading $HOME, $SCRATCH or ~ is expanded (~user is not)",
            ))
        }
        None if dir.is_empty() => return Err(bad("empty")),
        None => (Some("HOME"), dir),
    };
    if !is_safe_path(rest) {
        return Err(bad(
            "after a leading $HOME/$SCRATCH/~ only letters, digits and `_./-` are allowed",
        ));
    }
    Ok((var, rest))
}

/// Collapse `//` and trailing `/` (keeps `/` itself).
fn normalize(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for part in p.split('/').filter(|x| !x.is_empty() && *x != ".") {
        s.push('/');
        s.push_str(part);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn abbreviate(line: &str) -> String {
    let first = line.lines().next().unwrap_or("");
    if first.len() > 120 || line.contains('\n') {
        let mut end = first.len().min(120);
        while !first.is_char_boundary(end) {
            end -= 1;
        }
        format!("{} ...", &first[..end])
    } else {
        first.to_string()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Turn what `ssh` said when connecting into a helpful error.
pub(crate) fn classify_ssh_message(target: &SshTarget, detail: &str) -> SshError {
    let host = target.host.clone();
    let detail = detail.trim().to_string();
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || detail.contains("Host key for ") && detail.contains("has changed")
    {
        SshError::HostKeyChanged { host, detail }
    } else if detail.contains("Host key verification failed")
        || detail.contains("No ED25519 host key is known")
        || detail.contains("host key is known for")
    {
        SshError::HostKeyUnknown { host, detail }
    } else if detail.contains("Permission denied") {
        SshError::KeyRefused { host, detail }
    } else if detail.contains("Could not resolve hostname")
        || detail.contains("Name or service not known")
        || detail.contains("nodename nor servname")
    {
        SshError::UnknownHost {
            host,
            config: target.config_text(),
            detail,
        }
    } else if detail.contains("Connection refused")
        || detail.contains("timed out")
        || detail.contains("No route to host")
        || detail.contains("Network is unreachable")
    {
        SshError::Unreachable {
            host,
            config: target.config_text(),
            detail,
        }
    } else {
        SshError::Connect { host, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_verbatim_for_sh() {
        assert_eq!(quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(touch /tmp/x)"), "'$(touch /tmp/x)'");
        assert_eq!(quote("`id`"), "'`id`'");
        assert_eq!(quote("~"), "'~'");
        assert!(command_line(&["a\0b"]).is_err());
        assert!(command_line::<&str>(&[]).is_err());
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let words = [
            "plain",
            "with space",
            "it's",
            "$(touch /tmp/slurmbook-quote-test)",
            "`id`",
            "a\nb",
            "\"dq\" \\ back",
            "*",
            "~",
            "",
            "ünïcode",
        ];
        let line = command_line(&words).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let mut expect: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        expect.push(String::new()); // after the last NUL
        assert_eq!(got, expect);
        assert!(!std::path::Path::new("/tmp/slurmbook-quote-test").exists());
    }

    #[test]
    fn argv_scripts_are_one_line() {
        assert!(!UPLOAD_SCRIPT.contains('\n'));
        assert!(!super::super::watch::TAIL_SCRIPT.contains('\n'));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", UPLOAD_SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn dir_variables() {
        assert_eq!(
            split_dir_var("$SCRATCH/slurmbook").unwrap(),
            (Some("SCRATCH"), "slurmbook")
        );
        assert_eq!(split_dir_var("${HOME}").unwrap(), (Some("HOME"), ""));
        assert_eq!(split_dir_var("~/x/y").unwrap(), (Some("HOME"), "x/y"));
        assert_eq!(split_dir_var("rel/dir").unwrap(), (Some("HOME"), "rel/dir"));
        assert_eq!(split_dir_var("/abs/dir").unwrap(), (None, "/abs/dir"));
        for bad in [
            "$SCRATCHX/a",
            "$SCRATCH/a b",
            "$SCRATCH/$(id)",
            "~root/x",
            "$OTHER/x",
            "/a;b",
            "/x/%j",
            "",
        ] {
            assert!(split_dir_var(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize("/a//b/./c/"), "/a/b/c");
    }

    #[test]
    fn connect_errors_are_classified() {
        let t = SshTarget::new("h");
        let c = |s: &str| classify_ssh_message(&t, s);
        assert!(matches!(
            c("ssh: Could not resolve hostname h: Name or service not known"),
            SshError::UnknownHost { .. }
        ));
        assert!(matches!(
            c("root@127.0.0.1: Permission denied (publickey)."),
            SshError::KeyRefused { .. }
        ));
        assert!(matches!(
            c("@@@\nWARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\nHost key verification failed."),
            SshError::HostKeyChanged { .. }
        ));
        assert!(matches!(
            c("No ED25519 host key is known for [127.0.0.1]:5 and you have requested strict checking.\nHost key verification failed."),
            SshError::HostKeyUnknown { .. }
        ));
        assert!(matches!(
            c("ssh: connect to host 127.0.0.1 port 1: Connection refused"),
            SshError::Unreachable { .. }
        ));
    }
}
