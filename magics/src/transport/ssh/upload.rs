//! Content-addressed uploads over the SSH master: one round trip asks
//! whether `<cache_dir>/<sha256>` exists and, only when it does not,
//! receives the bytes on stdin (see [`UPLOAD_SCRIPT`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use openssh::{Session, Stdio};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::super::error::{Result, TransportError};
use super::super::shell::{check_abs_path, command_line, normalize};
use super::{AttemptError, Remote};

/// `sh -c` script of [`Remote`]'s `upload_cas`: `$1` dir, `$2` sha256, `$3`
/// `x` for executable, `$4` size. Prints `present` or `absent` first; when
/// absent reads the content on stdin and prints `ok` once it is in place.
/// One line, so that it also passes through a csh login shell.
pub(super) const UPLOAD_SCRIPT: &str = concat!(
    r#"f="$1/$2"; "#,
    r#"if [ -f "$f" ]; then "#,
    r#"if [ "$3" = x ] && [ ! -x "$f" ]; then chmod 700 "$f" || exit 1; fi; "#,
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
    r#"if [ "$3" = x ]; then chmod 700 "$t"; else chmod 600 "$t"; fi || exit 1; "#,
    r#"mv -f "$t" "$f" || exit 1; "#,
    r#"trap - EXIT; "#,
    r#"echo ok"#,
);

impl Remote {
    /// Upload `bytes` to `cache_dir/<sha256>` unless it is there already
    /// (checked in the same round trip, before any byte is sent). Written to
    /// a temporary name, verified (size, and sha256 when `sha256sum` exists)
    /// and renamed into place. `cache_dir` must be absolute (see
    /// `expand_dir`); it is created if missing. Returns the remote path and
    /// the number of bytes sent (0 when already present).
    pub(super) async fn upload(
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
                        return Err(TransportError::Disconnected {
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
            AttemptError::Other(TransportError::Upload {
                host: self.target.host.clone(),
                path: path.to_string(),
                detail,
            })
        };
        let mut cmd = session.raw_command(super::user_only(line));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_scripts_are_one_line() {
        assert!(!UPLOAD_SCRIPT.contains('\n'));
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
}
