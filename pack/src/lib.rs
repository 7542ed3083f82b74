//! Environment packing for slurmbook.
//!
//! The environment of a notebook is the `pixi.toml` / `pixi.lock` of its
//! project. [`pack`] turns one environment of the lock file, for one target
//! platform, into ONE archive: the locked conda packages as a local channel
//! (indexed with `rattler_index`) plus a manifest ([`Manifest`]). The archive
//! is copied to the cluster and unpacked there by the `slurmbook-env` binary
//! of this crate ([`unpack`]), once per cache key, into
//! `remote_dir/envs/<key>` ([`remote_prefix`]). A job script activates it with
//! `. <prefix>/slurmbook-activate.sh` ([`activation_script_path`]).
//!
//! ```no_run
//! use slurmbook_pack::{pack, unpack, PixiProject};
//! # fn main() -> Result<(), slurmbook_pack::PackError> {
//! let Some(project) = PixiProject::find(std::path::Path::new("notebooks")) else {
//!     return Ok(()); // no pixi project: jobs use the cluster's environment
//! };
//! let report = pack(&project, "default", "linux-64", std::path::Path::new("/tmp/packs"))?;
//! // ... upload report.archive, then on the cluster:
//! let prefix = slurmbook_pack::remote_prefix(std::path::Path::new("/scratch/me/slurmbook"), &report.key);
//! let unpacked = unpack(&report.archive, &prefix)?;
//! assert!(unpacked.activation_script.is_file());
//! # Ok(()) }
//! ```

mod error;
mod fetch;
mod pack;
mod pypi;
mod unpack;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{PackError, Result};
pub use pack::{index_channel, pack, pack_native, PackReport, PackedWith};
pub use pypi::WHEEL_INSTALLER;
pub use unpack::{unpack, UnpackReport};

use error::IoContext;

/// The default pixi environment name.
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// Name of the manifest inside an archive.
pub const MANIFEST_NAME: &str = "slurmbook-manifest.json";

/// Name of the activation script inside an unpacked prefix.
pub const ACTIVATION_SCRIPT: &str = "slurmbook-activate.sh";

/// Name of the marker that says a prefix is completely unpacked.
pub const READY_MARKER: &str = ".slurmbook-ready";

/// Bumped when the archive layout or the unpacked prefix changes, so that
/// cache keys (and with them cached prefixes on clusters) change too.
const FORMAT: u32 = 1;

/// A pixi project: the directory holding `pixi.toml` (and `pixi.lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixiProject {
    /// The directory holding `pixi.toml`.
    pub root: PathBuf,
    /// `root/pixi.toml`.
    pub manifest: PathBuf,
    /// `root/pixi.lock` (it may not exist; [`pack`] then fails with
    /// [`PackError::MissingLock`]).
    pub lock: PathBuf,
}

impl PixiProject {
    /// Finds the pixi project of `start_dir`: the nearest directory, from
    /// `start_dir` upwards, holding a `pixi.toml`. `None` when there is none
    /// (jobs then run in the cluster's own environment).
    pub fn find(start_dir: &Path) -> Option<PixiProject> {
        let start = std::path::absolute(start_dir).ok()?;
        start.ancestors().find_map(|dir| {
            let manifest = dir.join("pixi.toml");
            manifest.is_file().then(|| PixiProject {
                root: dir.to_path_buf(),
                lock: dir.join("pixi.lock"),
                manifest,
            })
        })
    }

    /// The lock file's bytes, or [`PackError::MissingLock`].
    fn lock_bytes(&self) -> Result<Vec<u8>> {
        match std::fs::read(&self.lock) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(PackError::MissingLock(self.lock.clone()))
            }
            Err(e) => Err(e).io("cannot read", &self.lock),
        }
    }

    /// What the lock file pins for each of its environments, as a digest
    /// (16 hex digits) per environment name: every platform's packages,
    /// their locations and checksums (conda and PyPI). A change to one
    /// environment leaves the others' digests as they were.
    pub fn environment_digests(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let bytes = self.lock_bytes()?;
        environment_digests_of(&self.lock, &bytes)
    }

    /// The cache key of `environment` for `platform`: a hash of the lock
    /// file's bytes, the environment and the platform (and the archive format).
    /// The same lock gives the same key on every machine, so a cluster keeps
    /// one unpacked prefix per key.
    pub fn cache_key(&self, environment: &str, platform: &str) -> Result<String> {
        Ok(cache_key_of(&self.lock_bytes()?, environment, platform))
    }
}

/// The cache key of lock file bytes, an environment and a platform
/// (16 hex digits: short, because conda prefixes end up in shebang lines).
pub fn cache_key_of(lock_bytes: &[u8], environment: &str, platform: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("slurmbook-env/{FORMAT}\0").as_bytes());
    hasher.update(lock_bytes);
    hasher.update(b"\0");
    hasher.update(environment.as_bytes());
    hasher.update(b"\0");
    hasher.update(platform.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

/// [`PixiProject::environment_digests`] of lock file bytes read from `path`.
pub fn environment_digests_of(
    path: &Path,
    bytes: &[u8],
) -> Result<std::collections::BTreeMap<String, String>> {
    let text = std::str::from_utf8(bytes).map_err(|e| PackError::InvalidLock {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let lock =
        rattler_lock::LockFile::from_str_with_base_directory(text, path.parent()).map_err(|e| {
            PackError::InvalidLock {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
    let mut out = std::collections::BTreeMap::new();
    for (name, env) in lock.environments() {
        let mut lines: Vec<String> = Vec::new();
        for (platform, packages) in env.packages_by_platform() {
            for p in packages {
                let hashes = match (p.as_conda().and_then(|c| c.record()), p.as_pypi()) {
                    (Some(r), _) => format!(
                        "{} {}",
                        r.sha256.map(hex::encode).unwrap_or_default(),
                        r.md5.map(hex::encode).unwrap_or_default()
                    ),
                    (None, Some(pypi)) => pypi
                        .as_wheel()
                        .map(|w| format!("{} {:?}", w.version, w.hash))
                        .unwrap_or_default(),
                    (None, None) => String::new(),
                };
                lines.push(format!(
                    "{}\0{}\0{}\0{hashes}",
                    platform.name(),
                    p.name(),
                    p.location()
                ));
            }
        }
        lines.sort();
        let mut hasher = Sha256::new();
        hasher.update(format!("slurmbook-env-digest/{FORMAT}\0").as_bytes());
        for line in &lines {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        out.insert(name.to_string(), hex::encode(&hasher.finalize()[..8]));
    }
    Ok(out)
}

/// Where the environment with cache key `key` lives on the cluster:
/// `remote_dir/envs/<key>`.
pub fn remote_prefix(remote_dir: &Path, key: &str) -> PathBuf {
    remote_dir.join("envs").join(key)
}

/// The activation script of an unpacked prefix: `prefix/slurmbook-activate.sh`.
/// A job script runs `. <this path>` before its command.
pub fn activation_script_path(prefix: &Path) -> PathBuf {
    prefix.join(ACTIVATION_SCRIPT)
}

/// Whether `prefix` is a completely unpacked environment.
pub fn is_ready(prefix: &Path) -> bool {
    prefix.join(READY_MARKER).is_file()
}

/// The manifest stored in an archive as [`MANIFEST_NAME`] (and beside it as
/// `<archive>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Archive format version.
    pub format: u32,
    /// The pixi environment.
    pub environment: String,
    /// The target platform (lock file platform name, e.g. `linux-64`).
    pub platform: String,
    /// The conda subdir of the platform.
    pub subdir: String,
    /// The cache key ([`PixiProject::cache_key`]).
    pub key: String,
    /// sha256 of the lock file's bytes.
    pub lock_sha256: String,
    /// How the archive was made.
    pub packed_with: PackedWith,
    /// The packages in the archive's local channel.
    pub packages: Vec<ManifestPackage>,
    /// The PyPI wheels in the archive (`pypi/<file>`), installed into the
    /// prefix after the conda packages, with its own Python, no index.
    #[serde(default)]
    pub pypi: Vec<ManifestWheel>,
}

/// One PyPI wheel of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestWheel {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Path inside the archive, e.g. `pypi/six-1.17.0-py2.py3-none-any.whl`.
    pub path: String,
    /// sha256 of the wheel (verified against the lock file at pack time).
    pub sha256: String,
}

/// One package of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Conda subdir (`noarch`, `linux-64`, ...).
    pub subdir: String,
    /// Path inside the archive, e.g. `channel/linux-64/zlib-1.3.1-h0_0.conda`.
    pub path: String,
    /// sha256 of the package file (verified against the lock file at pack time).
    pub sha256: String,
    /// md5 of the package file, when the lock file has one.
    pub md5: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// Runs a future to completion on a private tokio runtime, on a thread of its
/// own, so callers may be inside another runtime (or none).
fn block_on<F>(future: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(PackError::Runtime)?;
                Ok(runtime.block_on(future))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
