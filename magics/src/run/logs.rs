//! `%log NAME` and `slurmbook log`: the whole output of an asset's Slurm
//! job, fetched from its run directory on the cluster into a private local
//! copy (`.slurmbook/logs/run-<id>/<asset>.out|.err`). The cell shows a
//! long output only up to a limit; this is where the rest is.

use std::path::PathBuf;

use super::error::{LogError, RunError};
use super::workspace::Workspace;
use crate::events::Stream;
use crate::exec::cluster::RemoteRun;
use crate::exec::slurm::protocol::PROTOCOL_PREFIX;
use crate::model::{RunId, Target};
use crate::private_fs::{create_private_dir, create_private_file};
use crate::state::STATE_DIR;

/// The local copy of one output file of an asset's job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLog {
    pub asset: String,
    pub run: RunId,
    pub stream: Stream,
    /// Where it was on the cluster.
    pub remote: String,
    /// The local copy.
    pub path: PathBuf,
    pub bytes: u64,
}

impl Workspace {
    /// Fetches the `stream` output of `asset`'s job in `run` (default: its
    /// latest materialization) into `.slurmbook/logs/run-<id>/`.
    pub async fn job_log(
        &mut self,
        asset: &str,
        run: Option<RunId>,
        stream: Stream,
    ) -> Result<JobLog, RunError> {
        let no_run = || LogError::NoSlurmRun {
            asset: asset.to_string(),
            run,
        };
        let db = self.db()?;
        let m = match run {
            Some(id) => db.run_assets(id)?.into_iter().rfind(|m| m.asset == asset),
            None => db.latest(asset)?,
        }
        .ok_or_else(no_run)?;
        let run_id = m.run_id.ok_or_else(no_run)?;
        if m.target != Target::Slurm {
            return Err(LogError::InKernel {
                asset: asset.to_string(),
                run: run_id,
            }
            .into());
        }
        let remote = RemoteRun::load(db, run_id)?;
        let ext = match stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        let remote_path = format!("{}/{asset}.{ext}", remote.run_dir.trim_end_matches('/'));
        let bytes = self.fetch_from_run(Some(run_id), &remote_path).await?;
        let dir = self
            .dir()
            .join(STATE_DIR)
            .join("logs")
            .join(format!("run-{run_id}"));
        let path = dir.join(format!("{asset}.{ext}"));
        let bytes = without_protocol_lines(&bytes);
        write_private(&dir, &path, &bytes).map_err(|e| LogError::Write {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        Ok(JobLog {
            asset: asset.to_string(),
            run: run_id,
            stream,
            remote: remote_path,
            path,
            bytes: bytes.len() as u64,
        })
    }
}

/// Writes `bytes` to `path` (user-only), through a temporary file renamed
/// into place: a reader never sees half a log.
fn write_private(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".log-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = create_private_file(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The job's output as the asset printed it: the job binary's protocol
/// lines (progress, usage, the value's size) taken out.
pub fn without_protocol_lines(bytes: &[u8]) -> Vec<u8> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| !line.starts_with(PROTOCOL_PREFIX))
        .flatten()
        .copied()
        .collect()
}

/// The last `n` lines of `text` (all of it when shorter).
pub fn last_lines(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    match trimmed.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::{last_lines, without_protocol_lines};

    #[test]
    fn protocol_lines_are_not_output() {
        let log = b"a\n\x1eSLURMBOOK {\"event\":\"x\"}\nb\x1eSLURMBOOK no\n\x1eSLURMBOOK {}";
        assert_eq!(without_protocol_lines(log), b"a\nb\x1eSLURMBOOK no\n");
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(last_lines("a\nb\n", 0), "");
        assert_eq!(last_lines("", 3), "");
    }
}
