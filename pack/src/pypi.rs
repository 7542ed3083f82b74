//! PyPI packages of a pixi environment: the lock's wheels are packed
//! beside the conda packages (`pypi/<file>`, checksums verified against the
//! lock) and installed into the unpacked prefix with the environment's own
//! Python and no index: `python -m pip install --no-deps --no-index` when
//! the environment has pip, else [`WHEEL_INSTALLER`] (a small stdlib-only
//! installer). Source distributions, source trees and editable installs
//! are refused: a cluster node builds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use rattler_digest::Sha256;
use rattler_lock::{PackageHashes, PypiPackageData};
use tracing::{debug, info};
use url::Url;

use crate::error::{IoContext, PackError, Result};
use crate::ManifestWheel;

/// A wheel the lock file pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockedWheel {
    pub name: String,
    pub version: String,
    pub file_name: String,
    /// Where the lock says it comes from (a URL, or a path relative to it).
    pub location: String,
    pub sha256: Option<String>,
}

/// The wheels among the locked PyPI packages of `environment`; anything
/// else is [`PackError::PypiNotWheel`].
pub(crate) fn locked_wheels<'a>(
    environment: &str,
    lock_dir: &Path,
    packages: impl Iterator<Item = &'a PypiPackageData>,
) -> Result<Vec<LockedWheel>> {
    let mut out = Vec::new();
    for p in packages {
        let location = p.location().inner();
        let refuse = |what| PackError::PypiNotWheel {
            package: p.name().to_string(),
            environment: environment.to_string(),
            what,
            location: location.to_string(),
        };
        let Some(wheel) = p.as_wheel() else {
            return Err(refuse("a source tree (a path, git or editable install)"));
        };
        let file_name = location.file_name().unwrap_or_default().to_string();
        if !file_name.ends_with(".whl") {
            return Err(refuse("a source distribution"));
        }
        let sha256 = match &wheel.hash {
            Some(PackageHashes::Sha256(h)) | Some(PackageHashes::Md5Sha256(_, h)) => {
                Some(hex::encode(h))
            }
            _ => None,
        };
        let location = match location {
            rattler_lock::UrlOrPath::Url(url) => url.to_string(),
            rattler_lock::UrlOrPath::Path(path) => {
                let path = Path::new(path.as_str());
                let full = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    lock_dir.join(path)
                };
                Url::from_file_path(&full)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|()| full.display().to_string())
            }
        };
        out.push(LockedWheel {
            name: p.name().to_string(),
            version: wheel.version.to_string(),
            file_name,
            location,
            sha256,
        });
    }
    Ok(out)
}

/// Fetches every wheel into `dir` (the archive's `pypi/`) and verifies it
/// against the lock's sha256 (a wheel without one is refused).
pub(crate) fn fetch_wheels(wheels: &[LockedWheel], dir: &Path) -> Result<Vec<ManifestWheel>> {
    let mut out = Vec::new();
    for w in wheels {
        let expected = w.sha256.clone().ok_or_else(|| PackError::MissingChecksum {
            package: w.file_name.clone(),
        })?;
        std::fs::create_dir_all(dir).io("cannot create", dir)?;
        let dest = dir.join(&w.file_name);
        let url = Url::parse(&w.location).map_err(|e| PackError::Fetch {
            package: w.file_name.clone(),
            url: w.location.clone(),
            message: e.to_string(),
        })?;
        debug!(url = %url, "fetching {}", w.file_name);
        crate::fetch::fetch(&url, &dest, &w.file_name)?;
        let actual = hex::encode(
            rattler_digest::compute_file_digest::<Sha256>(&dest).io("cannot read", &dest)?,
        );
        if actual != expected {
            return Err(PackError::ChecksumMismatch {
                package: w.file_name.clone(),
                algorithm: "sha256",
                expected,
                actual,
                url: w.location.clone(),
            });
        }
        out.push(ManifestWheel {
            name: w.name.clone(),
            version: w.version.clone(),
            path: format!("pypi/{}", w.file_name),
            sha256: actual,
        });
    }
    Ok(out)
}

/// Installs the wheel files into `prefix` with `prefix/bin/python`: pip
/// (`--no-deps --no-index`) when the environment has it, else
/// [`WHEEL_INSTALLER`].
pub(crate) fn install_wheels(prefix: &Path, wheels: &[PathBuf]) -> Result<()> {
    if wheels.is_empty() {
        return Ok(());
    }
    let python = prefix.join("bin").join("python");
    let failed = |message: String| PackError::Unpack {
        prefix: prefix.to_path_buf(),
        message,
    };
    if !python.is_file() {
        return Err(failed(format!(
            "the environment has {} PyPI wheel(s) but no Python ({} is missing): add `python` to its dependencies",
            wheels.len(),
            python.display()
        )));
    }
    let has_pip = Command::new(&python)
        .args(["-c", "import pip"])
        .env("PYTHONNOUSERSITE", "1")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut command = Command::new(&python);
    if has_pip {
        command.args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-warn-script-location",
        ]);
    } else {
        command.args(["-c", WHEEL_INSTALLER]);
    }
    command
        .args(wheels)
        .env("PYTHONNOUSERSITE", "1")
        .env("PATH", path_with(prefix));
    let output = command
        .output()
        .map_err(|e| failed(format!("cannot run {}: {e}", python.display())))?;
    if !output.status.success() {
        return Err(failed(format!(
            "installing the PyPI wheels with {} ({}) failed: {}",
            python.display(),
            if has_pip {
                "pip"
            } else {
                "slurmbook's installer"
            },
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    info!(
        wheels = wheels.len(),
        pip = has_pip,
        "installed PyPI wheels into {}",
        prefix.display()
    );
    Ok(())
}

fn path_with(prefix: &Path) -> std::ffi::OsString {
    let mut dirs = vec![prefix.join("bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Installs wheels (`python -c WHEEL_INSTALLER W.whl...`) into the running
/// interpreter's prefix, with the standard library alone: files to
/// purelib/platlib (and `.data/` to scripts, data, headers), console
/// scripts from `entry_points.txt`, `INSTALLER` and `RECORD`.
pub const WHEEL_INSTALLER: &str = include_str!("wheel_installer.py");
