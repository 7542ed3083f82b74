//! The job binary on the cluster: built here and uploaded content-addressed
//! when this machine's platform is the cluster's, else built there
//! ([`put_binary`]); and built ahead of time for a schedule
//! ([`prebuild`], [`JobBinary`]): `slurmbook schedule install` builds the
//! binary of every asset with a condition where cargo is (this machine, or
//! the login node as `build = "remote"` does), so the ticks on the cluster
//! need no Rust toolchain; a tick uses it while the notebook snapshot is
//! the one it was built from.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::{self, BundleError, BundleSources};
use crate::config::Settings;
use crate::project::Project;
use crate::transport::{Transport, TransportError};

use super::connect::{local_platform, platform_name};
use super::remote_build;

/// Why a job binary could not be put on the cluster.
#[derive(Debug, thiserror::Error)]
pub enum PrebuiltError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the cluster runs {remote}, this machine {local}, and `build = \"local\"`: a binary built here cannot run there; set build = \"remote\" (or \"auto\") to build on the cluster")]
    Platform { remote: String, local: String },
}

/// Where a schedule keeps its [`JobBinary`], beside the snapshot.
pub const JOB_BINARY_FILE: &str = "job-binary.json";

/// A job binary built ahead of time for a notebook snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobBinary {
    /// Its path on the cluster.
    pub binary: String,
    /// Asset -> Rust type of its value.
    pub types: HashMap<String, String>,
    /// The assets it can run.
    pub assets: Vec<String>,
    /// The notebook it was built from (sha256 of the file).
    pub notebook_sha256: String,
}

/// sha256 of a notebook file's bytes.
pub fn notebook_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl JobBinary {
    /// Whether it can run every one of `assets`.
    pub fn covers(&self, assets: &[String]) -> bool {
        assets.iter().all(|a| self.assets.contains(a))
    }

    /// The job binary written beside `notebook` (`job-binary.json` in its
    /// directory), if it was built from this very notebook file.
    pub fn beside(notebook: &Path) -> Option<JobBinary> {
        let text = std::fs::read_to_string(notebook.parent()?.join(JOB_BINARY_FILE)).ok()?;
        let built: JobBinary = serde_json::from_str(&text).ok()?;
        let sha = notebook_sha256(&std::fs::read(notebook).ok()?);
        (built.notebook_sha256 == sha).then_some(built)
    }
}

/// The cluster's platform (`uname -sm` there) and whether the job binary
/// is built there (`build`: remote, local, or auto = when platforms differ).
pub(crate) async fn platform_and_build(
    remote: &dyn Transport,
    settings: &Settings,
) -> Result<(String, bool), PrebuiltError> {
    let uname = remote.run(&["uname", "-sm"]).await?.stdout_text();
    let mut parts = uname.split_whitespace();
    let platform = platform_name(parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let remotely = match settings.build().as_str() {
        "remote" => true,
        "local" if platform != local_platform() => {
            return Err(PrebuiltError::Platform {
                remote: platform,
                local: local_platform(),
            })
        }
        "local" => false,
        _ => platform != local_platform(),
    };
    Ok((platform, remotely))
}

/// Puts the job binary of `sources` on the cluster: built there (with the
/// packed environment's toolchain when `activate` is given), or built
/// here and uploaded into `base/cache`. Returns its path there and the
/// bytes sent for it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn put_binary(
    remote: &dyn Transport,
    sources: &BundleSources,
    root: &Path,
    types: &HashMap<String, String>,
    base: &str,
    remotely: bool,
    activate: Option<&str>,
) -> Result<(String, u64), PrebuiltError> {
    if remotely {
        let built = remote_build::build_on_cluster(remote, base, sources, root, activate).await?;
        tracing::info!(
            built = built.built,
            bytes_sent = built.bytes_sent,
            binary = %built.binary,
            "job binary built on the cluster"
        );
        return Ok((built.binary, built.bytes_sent));
    }
    let binary = bundle::build(sources, root, types)?;
    let bytes =
        std::fs::read(&binary).map_err(bundle::io(format!("reading {}", binary.display())))?;
    let (path, sent) = remote
        .upload_cas(&format!("{base}/cache"), &bytes, true)
        .await?;
    tracing::info!(bytes_sent = sent, binary = %path, "job binary uploaded");
    Ok((path, sent))
}

/// Builds the job binary of `assets` for the cluster of `settings` (types
/// probed here) and puts it there (returned with the bytes sent for it);
/// `notebook` is the file it is built from.
pub async fn prebuild(
    project: &Project,
    assets: &[String],
    settings: &Settings,
    remote: &dyn Transport,
    notebook: &[u8],
) -> Result<(JobBinary, u64), PrebuiltError> {
    bundle::check_free_variables(project, assets)?;
    let root = bundle::build_root();
    let types = bundle::probe_types(project, assets, &HashMap::new(), &root)?;
    let sources = bundle::generate(project, assets, &types)?;
    let (_, remotely) = platform_and_build(remote, settings).await?;
    let base = remote.expand_dir(settings.remote_dir()).await?;
    let (binary, sent) = put_binary(remote, &sources, &root, &types, &base, remotely, None).await?;
    let job = JobBinary {
        binary,
        types,
        assets: assets.to_vec(),
        notebook_sha256: notebook_sha256(notebook),
    };
    Ok((job, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_binary_is_used_only_for_its_own_snapshot_and_assets() {
        let dir = tempfile::tempdir().unwrap();
        let nb = dir.path().join("notebook.ipynb");
        std::fs::write(&nb, b"{\"cells\": []}").unwrap();
        let job = JobBinary {
            binary: "/scratch/cache/abc".into(),
            types: [("a".to_string(), "u64".to_string())].into(),
            assets: vec!["a".into(), "b".into()],
            notebook_sha256: notebook_sha256(b"{\"cells\": []}"),
        };
        assert!(JobBinary::beside(&nb).is_none(), "none written yet");
        let text = serde_json::to_string(&job).unwrap();
        std::fs::write(dir.path().join(JOB_BINARY_FILE), text).unwrap();
        assert_eq!(JobBinary::beside(&nb), Some(job.clone()));
        assert!(job.covers(&["b".into()]) && !job.covers(&["a".into(), "c".into()]));
        std::fs::write(&nb, b"{\"cells\": [1]}").unwrap();
        assert!(JobBinary::beside(&nb).is_none(), "the snapshot changed");
    }
}
