//! The `notify` command: run when an asset newly enters FAIL. The command
//! is split into argv as a shell would split it (quotes respected) but is
//! never run by a shell, and none of our text goes into it: the asset, its
//! state and the age of its value are in the environment
//! (`SLURMBOOK_ASSET`, `SLURMBOOK_FRESHNESS`, `SLURMBOOK_AGE_S`, and
//! `SLURMBOOK_DETAIL`, `SLURMBOOK_NOTEBOOK`). A command that cannot start,
//! fails or hangs (killed after [`TIMEOUT`]) is logged, never an error.
//!
//! "Newly": the state database remembers each asset's last policy state
//! and the materialization it was computed from; FAIL is new when the
//! remembered state was not FAIL, or was FAIL of an older materialization
//! (a new materialization passes at first, so FAIL again is a new failure).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{PolicyState, PolicyStatus};

/// How long a notify command may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `command` as argv: words split like a shell's (quotes and backslashes),
/// without expansion; `Err` says what is wrong.
pub fn argv(command: &str) -> Result<Vec<String>, String> {
    if command.chars().any(|c| c.is_control() && c != '\t') {
        return Err("a command on one line (no control characters)".into());
    }
    match shlex::split(command) {
        Some(words) if !words.is_empty() => Ok(words),
        Some(_) => Err("a command (a program and its arguments)".into()),
        None => Err("a command with balanced quotes".into()),
    }
}

/// Whether `status` of an asset whose last success is `materialization`
/// is a new FAIL against what was remembered (`previous`: state and
/// materialization id).
pub fn is_new_failure(
    status: &PolicyStatus,
    materialization: Option<i64>,
    previous: Option<(PolicyState, Option<i64>)>,
) -> bool {
    status.state == PolicyState::Fail && previous != Some((PolicyState::Fail, materialization))
}

/// What a notification says.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub asset: &'a str,
    pub status: &'a PolicyStatus,
    pub notebook: Option<&'a Path>,
}

impl Notice<'_> {
    /// The environment variables the command gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SLURMBOOK_ASSET", self.asset.to_string()),
            (
                "SLURMBOOK_FRESHNESS",
                self.status.state.as_str().to_string(),
            ),
            (
                "SLURMBOOK_AGE_S",
                self.status
                    .age()
                    .map(|a| a.num_seconds().to_string())
                    .unwrap_or_default(),
            ),
            ("SLURMBOOK_DETAIL", self.status.text()),
        ];
        if let Some(nb) = self.notebook {
            env.push(("SLURMBOOK_NOTEBOOK", nb.display().to_string()));
        }
        env
    }
}

/// Starts `command` for `notice` in `dir`; the returned thread waits for it
/// (at most [`TIMEOUT`]) and logs how it ended. `None` when it could not
/// start (logged).
pub fn spawn(command: &str, notice: &Notice<'_>, dir: &Path) -> Option<JoinHandle<()>> {
    spawn_env(command, notice.asset, notice.env(), dir)
}

/// Starts `command` about `asset` with `env` in its environment (the
/// notices of other call sites: a scheduled run's failure), as [`spawn`].
pub fn spawn_env(
    command: &str,
    asset: &str,
    env: Vec<(&'static str, String)>,
    dir: &Path,
) -> Option<JoinHandle<()>> {
    let argv = match argv(command) {
        Ok(argv) => argv,
        Err(e) => {
            tracing::warn!(command, "notify: not run: expected {e}");
            return None;
        }
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let asset = asset.to_string();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(command, asset, "notify: cannot start `{}`: {e}", argv[0]);
            return None;
        }
    };
    let program = PathBuf::from(&argv[0]);
    Some(std::thread::spawn(move || {
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => {
                    tracing::warn!(asset, "notify: waiting for {}: {e}", program.display());
                    return;
                }
            }
        };
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        match status {
            Some(s) if s.success() => {
                tracing::info!(asset, "notify: {} ran", program.display())
            }
            Some(s) => tracing::warn!(asset, "notify: {} failed ({s}): {tail}", program.display()),
            None => tracing::warn!(
                asset,
                "notify: {} killed after {} s",
                program.display(),
                TIMEOUT.as_secs()
            ),
        }
    }))
}
