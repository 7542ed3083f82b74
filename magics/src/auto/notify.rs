//! The tick's call site of the `notify` command (the freshness issue's
//! `notify = "COMMAND"` key): run on the side that ticks (on the cluster
//! for a schedule) when a scheduled run fails. The command is never run by
//! a shell and none of our text goes into its argv: what happened is in
//! its environment (`SLURMBOOK_ASSET`, `SLURMBOOK_FRESHNESS` = `failed`,
//! `SLURMBOOK_DETAIL`, `SLURMBOOK_RUN`, `SLURMBOOK_NOTEBOOK`).
//!
//! Until the freshness branch's `notify` key and its runner
//! (`policy::notify::spawn`, which splits the command like a shell) are
//! merged, [`command`] reads the key's environment form `SLURMBOOK_NOTIFY`
//! and [`send`] splits on whitespace; both are the only places to point at
//! theirs. Overdue assets are notified by their policy check, which the
//! tick calls after its run once merged.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a notify command may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub asset: String,
    /// `failed` (a scheduled run's asset failed).
    pub state: &'static str,
    pub detail: String,
    pub run: Option<i64>,
    pub notebook: Option<String>,
}

impl Notice {
    /// The environment variables the command gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SLURMBOOK_ASSET", self.asset.clone()),
            ("SLURMBOOK_FRESHNESS", self.state.to_string()),
            ("SLURMBOOK_DETAIL", self.detail.clone()),
        ];
        if let Some(run) = self.run {
            env.push(("SLURMBOOK_RUN", run.to_string()));
        }
        if let Some(nb) = &self.notebook {
            env.push(("SLURMBOOK_NOTEBOOK", nb.clone()));
        }
        env
    }
}

/// The configured notify command, if any.
pub fn command() -> Option<String> {
    std::env::var("SLURMBOOK_NOTIFY")
        .ok()
        .filter(|c| !c.trim().is_empty())
}

/// Runs `command` for `notice` in `dir` and waits for it (at most
/// [`TIMEOUT`]); `Err` says why it did not succeed (the caller logs it: a
/// notification never fails a tick).
pub fn send(command: &str, notice: &Notice, dir: &Path) -> Result<(), String> {
    let argv: Vec<&str> = command.split_whitespace().collect();
    let (program, args) = argv.split_first().ok_or("an empty notify command")?;
    let mut child = Command::new(program)
        .args(args)
        .envs(notice.env())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`{program}` exited with {status}")),
            Ok(None) if started.elapsed() < TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{program}` did not finish in {TIMEOUT:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
