//! [`LocalHost`]: Slurm on this machine, without SSH — for a kernel that
//! already runs on a submit host (JupyterHub or Open OnDemand on a login
//! node, or inside a Slurm job). Commands are local processes started from
//! their argv (never through a shell with user text); generated scripts go
//! to `sh -s` on stdin as over SSH; uploads are copies into the
//! content-addressed cache (a repeat copies nothing); the watcher's `tail`
//! is a local child; `%load` reads value files directly.
//!
//! Every process started here leaves out the environment a surrounding
//! Slurm job sets (`SLURM_*`, `SBATCH_*`, `SALLOC_*`, `SRUN_*`, except
//! `SLURM_CONF`): inherited, they would change the memory, CPUs and nodes
//! of the jobs submitted and break `srun` inside them.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::shell::{check_abs_path, join_dir_var, normalize, split_dir_var};
use super::{CommandOutput, Repeat, Result, Streaming, Transport, TransportError, TransportStats};

/// What [`LocalHost::location`] says.
pub const LOCATION: &str = "this machine";

/// Variables of a surrounding Slurm job that a submitted job must not inherit.
pub fn inherited_from_a_job(name: &str) -> bool {
    ["SLURM_", "SBATCH_", "SALLOC_", "SRUN_"]
        .iter()
        .any(|p| name.starts_with(p))
        && name != "SLURM_CONF"
}

/// `Err(NotOnPath)` unless `program` is an executable file in a directory
/// of this process's PATH. Starts no process: a run checks `sbatch` with it
/// before building anything, since `sbatch` itself only runs inside the
/// submission script (where a missing one would just be `sh: sbatch: not
/// found`).
pub fn require_on_path(program: &str, profile: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if found {
        Ok(())
    } else {
        Err(TransportError::NotOnPath {
            program: program.to_string(),
            profile: profile.to_string(),
        })
    }
}

/// Slurm commands run as local processes (see the module docs).
#[derive(Debug, Default)]
pub struct LocalHost {
    /// The profile that chose it, for error messages.
    profile: String,
    commands: AtomicU64,
    bytes_uploaded: AtomicU64,
}

impl LocalHost {
    pub fn new(profile: impl Into<String>) -> LocalHost {
        LocalHost {
            profile: profile.into(),
            ..LocalHost::default()
        }
    }

    /// A command for `argv` with the job environment left out.
    fn process(&self, argv: &[&str]) -> Result<Command> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| TransportError::BadArgument("an empty command".into()))?;
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(TransportError::BadArgument(format!(
                "a NUL byte in {argv:?}"
            )));
        }
        let mut cmd = Command::new(program);
        cmd.args(args);
        user_only(&mut cmd);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(inherited_from_a_job) {
                cmd.env_remove(&name);
            }
        }
        self.commands.fetch_add(1, Ordering::Relaxed);
        Ok(cmd)
    }

    fn spawn_error(&self, program: &str, e: std::io::Error) -> TransportError {
        if e.kind() == std::io::ErrorKind::NotFound {
            TransportError::NotOnPath {
                program: program.to_string(),
                profile: self.profile.clone(),
            }
        } else {
            TransportError::Local {
                command: program.to_string(),
                detail: e.to_string(),
            }
        }
    }

    async fn output(
        &self,
        mut cmd: Command,
        program: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput> {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(program, e))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let local = |e: std::io::Error| TransportError::Local {
                command: program.to_string(),
                detail: format!("writing its input: {e}"),
            };
            pipe.write_all(data).await.map_err(local)?;
            pipe.shutdown().await.map_err(local)?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| TransportError::Local {
                command: program.to_string(),
                detail: e.to_string(),
            })?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// A streaming child, reaped as soon as it exits and killed when dropped.
///
/// Reaping matters: the watcher's `tail --pid=$$` ends when its shell has
/// gone, and an exited but unreaped shell (a zombie) still counts as there.
/// Over SSH, sshd reaps it at once; here, nobody would until the
/// [`Streaming`] is dropped, i.e. until the watcher gave up waiting for the
/// tail (10 s after every run).
struct Reaped {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Reaped {
    fn new(mut child: tokio::process::Child) -> Reaped {
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                _ = child.wait() => {}
                _ = killed => {
                    let _ = child.kill().await;
                }
            }
        });
        Reaped { kill: Some(kill) }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> TransportError {
    TransportError::Upload {
        host: LOCATION.into(),
        path: path.display().to_string(),
        detail: format!("{what}: {e}"),
    }
}

#[async_trait]
impl Transport for LocalHost {
    fn location(&self) -> &str {
        LOCATION
    }

    async fn command(&self, argv: &[&str], _repeat: Repeat) -> Result<CommandOutput> {
        let cmd = self.process(argv)?;
        self.output(cmd, argv[0], None).await
    }

    async fn script(&self, script: &str, _repeat: Repeat) -> Result<CommandOutput> {
        let cmd = self.process(&["sh", "-s"])?;
        self.output(cmd, "sh", Some(script.as_bytes())).await
    }

    async fn upload_cas(
        &self,
        cache_dir: &str,
        bytes: &[u8],
        executable: bool,
    ) -> Result<(String, u64)> {
        check_abs_path(cache_dir)?;
        let hash = hex::encode(Sha256::digest(bytes));
        let dir = Path::new(cache_dir);
        let path = dir.join(&hash);
        if tokio::fs::metadata(&path)
            .await
            .is_ok_and(|m| m.len() == bytes.len() as u64)
        {
            return Ok((path.display().to_string(), 0));
        }
        crate::private_fs::create_private_dir(dir)
            .map_err(|e| io_error(dir, "creating the cache directory", e))?;
        // Written beside its final place and renamed: never half there.
        let staging = dir.join(format!(".{hash}.{}", uuid::Uuid::new_v4().simple()));
        let result = async {
            tokio::fs::write(&staging, bytes)
                .await
                .map_err(|e| io_error(&staging, "writing", e))?;
            // The user's alone, like everything under `remote_dir`.
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o700 } else { 0o600 };
            tokio::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| io_error(&staging, "setting its permissions", e))?;
            tokio::fs::rename(&staging, &path)
                .await
                .map_err(|e| io_error(&path, "moving it into place", e))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&staging).await;
        }
        result?;
        self.bytes_uploaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok((path.display().to_string(), bytes.len() as u64))
    }

    async fn spawn_streaming(&self, argv: &[&str]) -> Result<Streaming> {
        let mut cmd = self.process(argv)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(argv[0], e))?;
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>);
        let stdout = child.stdout.take().ok_or_else(|| TransportError::Local {
            command: argv[0].to_string(),
            detail: "no stdout".into(),
        })?;
        Ok(Streaming::new(stdin, Box::new(stdout), Reaped::new(child)))
    }

    async fn fetch(&self, path: &str) -> Result<Vec<u8>> {
        check_abs_path(path)?;
        tokio::fs::read(path)
            .await
            .map_err(|e| TransportError::Local {
                command: format!("reading {path}"),
                detail: e.to_string(),
            })
    }

    async fn expand_dir(&self, dir: &str) -> Result<String> {
        let (var, rest) = split_dir_var(dir)?;
        let Some(var) = var else {
            check_abs_path(rest)?;
            return Ok(normalize(rest));
        };
        let value = std::env::var(var).map_err(|_| TransportError::BadPath {
            path: dir.into(),
            why: format!("${var} is not set on this machine"),
        })?;
        join_dir_var(dir, var, &value, rest)
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            connections: 0,
            reconnects: 0,
            commands: self.commands.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {}
}

/// Runs `cmd` with `umask 077`, as the SSH transport runs its commands:
/// what Slurm commands and scripts create under `remote_dir` (and the jobs,
/// which inherit sbatch's umask) is the user's alone.
fn user_only(cmd: &mut Command) {
    // SAFETY: umask(2) is async-signal-safe and touches no memory; it runs
    // in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_variables_are_left_out_but_the_config_is_kept() {
        for name in [
            "SLURM_JOB_ID",
            "SLURM_MEM_PER_NODE",
            "SLURM_CPUS_PER_TASK",
            "SBATCH_PARTITION",
            "SRUN_CPUS_PER_TASK",
            "SALLOC_ACCOUNT",
        ] {
            assert!(inherited_from_a_job(name), "{name}");
        }
        for name in [
            "SLURM_CONF",
            "PATH",
            "HOME",
            "SLURMBOOK_HOST",
            "XSLURM_JOB_ID",
        ] {
            assert!(!inherited_from_a_job(name), "{name}");
        }
    }

    #[tokio::test]
    async fn commands_get_their_words_verbatim_and_no_job_environment() {
        // Only this test's children read it.
        std::env::set_var("SLURM_MEM_PER_NODE", "4000");
        let t = LocalHost::new("hub");
        let out = t
            .run(&[
                "sh",
                "-c",
                "printf '%s|' \"$1\" \"${SLURM_MEM_PER_NODE-unset}\"",
                "sh",
                "$(id); `x` 'q'",
            ])
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "$(id); `x` 'q'|unset|");
        let s = t
            .run_script("echo \"${SLURM_MEM_PER_NODE-unset}\"")
            .await
            .unwrap();
        assert_eq!(s.stdout_text(), "unset\n");
        assert_eq!(t.stats().commands, 2);
    }

    #[tokio::test]
    async fn a_missing_program_names_the_profile_and_the_way_out() {
        let e = LocalHost::new("hub")
            .run(&["slurmbook-no-such-sbatch"])
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("slurmbook-no-such-sbatch") && text.contains("`hub`"),
            "{text}"
        );
        assert!(text.contains("host = "), "{text}");
    }

    #[test]
    fn require_on_path_finds_executables_only() {
        assert!(require_on_path("sh", "hub").is_ok());
        let e = require_on_path("slurmbook-no-such-sbatch", "hub").unwrap_err();
        assert!(
            matches!(&e, TransportError::NotOnPath { program, profile }
                if program == "slurmbook-no-such-sbatch" && profile == "hub"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_streaming_shell_is_reaped_so_its_tail_pid_ends() {
        // The watcher's shape: tail bound to its shell with --pid=$$, the
        // shell waiting for EOF on stdin. Without reaping, the exited shell
        // stays a zombie and tail never ends.
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        std::fs::write(&file, "line\n").unwrap();
        let t = LocalHost::new("hub");
        let mut s = t
            .spawn_streaming(&[
                "sh",
                "-c",
                "tail -F -c +1 -s 0.2 --pid=$$ -- \"$1\" </dev/null 2>/dev/null & read -r _ || :",
                "sh",
                file.to_str().unwrap(),
            ])
            .await
            .unwrap();
        drop(s.stdin.take());
        let mut out = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            s.stdout.read_to_end(&mut out),
        )
        .await
        .expect("tail ended once its shell exited")
        .unwrap();
        assert_eq!(out, b"line\n");
    }

    #[tokio::test]
    async fn a_dropped_stream_is_killed() {
        let t = LocalHost::new("hub");
        let s = t
            .spawn_streaming(&["sh", "-c", "echo $$; exec sleep 600"])
            .await
            .unwrap();
        let mut s = s;
        let mut line = String::new();
        {
            use tokio::io::AsyncBufReadExt;
            let mut r = tokio::io::BufReader::new(&mut s.stdout);
            r.read_line(&mut line).await.unwrap();
        }
        let pid: i32 = line.trim().parse().unwrap();
        drop(s);
        let gone = || !std::path::Path::new(&format!("/proc/{pid}")).exists();
        for _ in 0..300 {
            if gone() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("process {pid} still there 30 s after its stream was dropped");
    }

    #[tokio::test]
    async fn uploads_are_content_addressed_copies() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let cache = cache.to_str().unwrap();
        let t = LocalHost::new("hub");
        let (path, sent) = t
            .upload_cas(cache, b"#!/bin/sh\necho hi\n", true)
            .await
            .unwrap();
        assert_eq!(sent, 18);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the user's alone");
        let dir_mode = std::fs::metadata(cache).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let (again, sent) = t
            .upload_cas(cache, b"#!/bin/sh\necho hi\n", true)
            .await
            .unwrap();
        assert_eq!((again.as_str(), sent), (path.as_str(), 0));
        assert_eq!(t.fetch(&path).await.unwrap(), b"#!/bin/sh\necho hi\n");
        assert_eq!(t.stats().bytes_uploaded, 18);
        let names: Vec<_> = std::fs::read_dir(cache).unwrap().collect();
        assert_eq!(names.len(), 1, "no staging file is left");
    }

    #[tokio::test]
    async fn directories_expand_from_this_machines_environment() {
        let t = LocalHost::new("hub");
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            t.expand_dir("$HOME/slurmbook").await.unwrap(),
            normalize(&format!("{home}/slurmbook"))
        );
        assert_eq!(t.expand_dir("/scratch//x/").await.unwrap(), "/scratch/x");
        assert!(t.expand_dir("$HOME/a b").await.is_err());
    }
}
