//! Unpacking on the cluster: archive → an installed, activatable prefix,
//! once per prefix, safe against concurrent jobs.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rattler::install::Installer;
use rattler::package_cache::PackageCache;
use rattler_conda_types::{Channel, RepoData, RepoDataRecord, Subdir};
use rattler_digest::Sha256;
use rattler_shell::activation::{ActivationVariables, Activator, PathModificationBehavior};
use rattler_shell::shell::Bash;
use serde::Serialize;
use tracing::{debug, info, warn};
use url::Url;

use crate::error::{IoContext, PackError, Result};
use crate::{
    activation_script_path, is_ready, Manifest, ACTIVATION_SCRIPT, MANIFEST_NAME, READY_MARKER,
};

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// The prefix (absolute).
    pub prefix: PathBuf,
    /// True when the prefix was ready already and nothing was done.
    pub already: bool,
    /// Number of packages installed (0 when `already`).
    pub packages: usize,
    /// The activation script: `prefix/slurmbook-activate.sh`.
    pub activation_script: PathBuf,
}

#[derive(Serialize)]
struct ReadyMarker<'a> {
    key: Option<&'a str>,
    environment: Option<&'a str>,
    platform: Option<&'a str>,
    packages: usize,
    unpacked_by_pid: u32,
}

/// Unpacks `archive` (made by [`crate::pack`], or by `pixi-pack`) into
/// `prefix`, once: a second call when `prefix` is ready is a no-op
/// (`already: true`). Concurrent callers (threads, processes, jobs on other
/// nodes sharing a file system with working `flock`) serialize on
/// `<prefix>.lock`; the environment is installed into a temporary directory
/// beside `prefix` (with its files patched for `prefix`) and renamed into
/// place with a ready marker, so a half-unpacked prefix is never used.
pub fn unpack(archive: &Path, prefix: &Path) -> Result<UnpackReport> {
    let prefix = std::path::absolute(prefix).io("cannot resolve", prefix)?;
    let report = |already, packages| UnpackReport {
        activation_script: activation_script_path(&prefix),
        prefix: prefix.clone(),
        already,
        packages,
    };
    if is_ready(&prefix) {
        info!(prefix = %prefix.display(), "environment already unpacked");
        return Ok(report(true, 0));
    }
    let (parent, name) = match (prefix.parent(), prefix.file_name()) {
        (Some(parent), Some(name)) => (parent.to_path_buf(), name.to_string_lossy().into_owned()),
        _ => {
            return Err(unpack_error(
                &prefix,
                "the prefix must be a directory below some parent",
            ));
        }
    };
    std::fs::create_dir_all(&parent).io("cannot create", &parent)?;

    let lock_path = parent.join(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .io("cannot open", &lock_path)?;
    if lock.try_lock().is_err() {
        info!(lock = %lock_path.display(), "another process is unpacking this environment; waiting");
        lock.lock().io("cannot lock", &lock_path)?;
    }
    // The lock is released when `lock` is dropped (also on every error path).

    if is_ready(&prefix) {
        info!(prefix = %prefix.display(), "environment already unpacked (by another process)");
        return Ok(report(true, 0));
    }
    let started = Instant::now();
    // Under the lock, anything left of an earlier attempt is stale.
    remove_stale(&parent, &name, &prefix)?;

    let work = parent.join(format!(".{name}.work-{}", std::process::id()));
    let staged = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = install(archive, &prefix, &work, &staged);
    let (packages, wheels, marker) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    std::fs::rename(&staged, &prefix).io("cannot move the unpacked environment to", &prefix)?;
    // Wheels install where they stay (their scripts name the final
    // prefix's python); the ready marker comes last.
    let installed = crate::pypi::install_wheels(&prefix, &wheels).and_then(|()| {
        let marker_path = prefix.join(READY_MARKER);
        std::fs::write(&marker_path, marker).io("cannot write", &marker_path)
    });
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&prefix);
        return Err(e);
    }
    info!(
        prefix = %prefix.display(),
        packages,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "unpacked environment"
    );
    drop(lock);
    Ok(report(false, packages))
}

fn unpack_error(prefix: &Path, message: impl Into<String>) -> PackError {
    PackError::Unpack {
        prefix: prefix.to_path_buf(),
        message: message.into(),
    }
}

/// Removes leftovers of interrupted unpacks of `prefix` (called under the lock).
fn remove_stale(parent: &Path, name: &str, prefix: &Path) -> Result<()> {
    if prefix.exists() {
        warn!(prefix = %prefix.display(), "removing an environment without a ready marker");
        std::fs::remove_dir_all(prefix).io("cannot remove", prefix)?;
    }
    let work = format!(".{name}.work-");
    let tmp = format!(".{name}.tmp-");
    for entry in std::fs::read_dir(parent).io("cannot list", parent)? {
        let entry = entry.io("cannot list", parent)?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&work) || file_name.starts_with(&tmp) {
            let path = entry.path();
            warn!(path = %path.display(), "removing leftovers of an interrupted unpack");
            std::fs::remove_dir_all(&path).io("cannot remove", &path)?;
        }
    }
    Ok(())
}

/// Extracts the archive into `work`, installs its conda packages into
/// `staged` (patched for `prefix`) and writes the activation script;
/// returns the number of packages, the PyPI wheels (in `work`, verified)
/// to install once the prefix is in place, and the ready marker's text.
fn install(
    archive: &Path,
    prefix: &Path,
    work: &Path,
    staged: &Path,
) -> Result<(usize, Vec<PathBuf>, Vec<u8>)> {
    extract_archive(archive, work)?;
    let manifest = read_manifest(archive, work)?;
    let channel_dir = work.join("channel");
    if !channel_dir.is_dir() {
        return Err(bad_archive(archive, "it has no `channel/` directory"));
    }
    if let Some(manifest) = &manifest {
        for package in &manifest.packages {
            let path = work.join(&package.path);
            let actual = rattler_digest::compute_file_digest::<Sha256>(&path)
                .map_err(|e| bad_archive(archive, format!("{}: {e}", package.path)))?;
            if hex::encode(actual) != package.sha256 {
                return Err(PackError::ChecksumMismatch {
                    package: package.path.clone(),
                    algorithm: "sha256",
                    expected: package.sha256.clone(),
                    actual: hex::encode(actual),
                    url: archive.display().to_string(),
                });
            }
        }
    }
    let records = channel_records(archive, &channel_dir)?;
    if let Some(manifest) = manifest
        .as_ref()
        .filter(|m| m.packages.len() != records.len())
    {
        return Err(bad_archive(
            archive,
            format!(
                "the manifest lists {} packages, the channel's repodata {}",
                manifest.packages.len(),
                records.len()
            ),
        ));
    }
    let subdir = match &manifest {
        Some(manifest) => manifest
            .subdir
            .parse::<Subdir>()
            .map_err(|e| bad_archive(archive, e.to_string()))?,
        None => pixi_pack_subdir(archive, work)?,
    };
    let count = records.len();
    debug!(packages = count, staged = %staged.display(), "installing");

    let installer = Installer::new()
        .with_package_cache(PackageCache::new(work.join("pkgs")))
        .with_target_platform(subdir)
        .with_alternative_target_prefix(prefix)
        .with_execute_link_scripts(false);
    let staged_owned = staged.to_path_buf();
    crate::block_on(installer.install(staged_owned, records))?
        .map_err(|e| unpack_error(prefix, error_chain(&e)))?;

    write_activation(staged, prefix, subdir)?;
    let wheels = archive_wheels(archive, work, manifest.as_ref())?;
    let marker = ReadyMarker {
        key: manifest.as_ref().map(|m| m.key.as_str()),
        environment: manifest.as_ref().map(|m| m.environment.as_str()),
        platform: manifest.as_ref().map(|m| m.platform.as_str()),
        packages: count,
        unpacked_by_pid: std::process::id(),
    };
    Ok((
        count,
        wheels,
        serde_json::to_vec_pretty(&marker).unwrap_or_default(),
    ))
}

/// The archive's PyPI wheels: the manifest's (each checked against its
/// sha256), or every `pypi/*.whl` of a pixi-pack archive.
fn archive_wheels(
    archive: &Path,
    work: &Path,
    manifest: Option<&Manifest>,
) -> Result<Vec<PathBuf>> {
    match manifest {
        Some(m) => m
            .pypi
            .iter()
            .map(|w| {
                let path = work.join(&w.path);
                let actual = rattler_digest::compute_file_digest::<Sha256>(&path)
                    .map_err(|e| bad_archive(archive, format!("{}: {e}", w.path)))?;
                if hex::encode(actual) != w.sha256 {
                    return Err(PackError::ChecksumMismatch {
                        package: w.path.clone(),
                        algorithm: "sha256",
                        expected: w.sha256.clone(),
                        actual: hex::encode(actual),
                        url: archive.display().to_string(),
                    });
                }
                Ok(path)
            })
            .collect(),
        None => {
            let dir = work.join("pypi");
            let mut wheels: Vec<PathBuf> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "whl"))
                    .collect(),
                Err(_) => Vec::new(),
            };
            wheels.sort();
            Ok(wheels)
        }
    }
}

fn bad_archive(archive: &Path, message: impl Into<String>) -> PackError {
    PackError::BadArchive {
        archive: archive.to_path_buf(),
        message: message.into(),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}

/// Extracts a tar, or a zstd-compressed tar, into `dest`.
fn extract_archive(archive: &Path, dest: &Path) -> Result<()> {
    let mut file = File::open(archive).io("cannot open", archive)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).io("cannot read", archive)?;
    file.seek(SeekFrom::Start(0)).io("cannot read", archive)?;
    let reader: Box<dyn Read> = if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::Decoder::new(file).io("cannot decompress", archive)?)
    } else {
        Box::new(BufReader::new(file))
    };
    std::fs::create_dir_all(dest).io("cannot create", dest)?;
    tar::Archive::new(reader)
        .unpack(dest)
        .map_err(|e| bad_archive(archive, format!("cannot extract: {e}")))
}

fn read_manifest(archive: &Path, work: &Path) -> Result<Option<Manifest>> {
    let path = work.join(MANIFEST_NAME);
    if !path.is_file() {
        if work.join("pixi-pack.json").is_file() {
            return Ok(None);
        }
        return Err(bad_archive(
            archive,
            format!("it has neither {MANIFEST_NAME} nor pixi-pack.json"),
        ));
    }
    let bytes = std::fs::read(&path).io("cannot read", &path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| bad_archive(archive, format!("bad {MANIFEST_NAME}: {e}")))
}

/// The platform of a pixi-pack archive, from its `pixi-pack.json`.
fn pixi_pack_subdir(archive: &Path, work: &Path) -> Result<Subdir> {
    let path = work.join("pixi-pack.json");
    let bytes = std::fs::read(&path).io("cannot read", &path)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad_archive(archive, e.to_string()))?;
    value
        .get("platform")
        .and_then(|p| p.as_str())
        .ok_or_else(|| bad_archive(archive, "pixi-pack.json has no platform"))?
        .parse::<Subdir>()
        .map_err(|e| bad_archive(archive, e.to_string()))
}

/// The records of every package in the local channel, with `file:` URLs.
fn channel_records(archive: &Path, channel_dir: &Path) -> Result<Vec<RepoDataRecord>> {
    let channel_url = Url::from_directory_path(channel_dir)
        .map_err(|()| bad_archive(archive, "the channel path is not absolute"))?;
    let channel = Channel::from_url(channel_url);
    let mut records = Vec::new();
    for entry in std::fs::read_dir(channel_dir).io("cannot list", channel_dir)? {
        let entry = entry.io("cannot list", channel_dir)?;
        let repodata = entry.path().join("repodata.json");
        if !repodata.is_file() {
            continue;
        }
        let data = RepoData::from_path(&repodata)
            .map_err(|e| bad_archive(archive, format!("{}: {e}", repodata.display())))?;
        records.extend(data.into_repo_data_records(&channel));
    }
    for record in &records {
        let exists = record.url.to_file_path().is_ok_and(|p| p.is_file());
        if !exists {
            return Err(bad_archive(
                archive,
                format!("repodata lists {} but the file is missing", record.url),
            ));
        }
    }
    Ok(records)
}

/// Writes `staged/slurmbook-activate.sh` for the final `prefix`: rattler's
/// activation (PATH, CONDA_PREFIX, `etc/conda/env_vars.d`, sourcing
/// `etc/conda/activate.d/*.sh`) plus `prefix/lib` on LD_LIBRARY_PATH.
fn write_activation(staged: &Path, prefix: &Path, subdir: Subdir) -> Result<()> {
    let mut activator = Activator::from_path(staged, Bash::default(), subdir)
        .map_err(|e| unpack_error(prefix, format!("activation: {}", error_chain(&e))))?;
    let relocate = |path: &PathBuf| match path.strip_prefix(staged) {
        Ok(rest) => prefix.join(rest),
        Err(_) => path.clone(),
    };
    activator.target_prefix = prefix.to_path_buf();
    activator.paths = activator.paths.iter().map(relocate).collect();
    activator.activation_scripts = activator.activation_scripts.iter().map(relocate).collect();
    let variables = ActivationVariables {
        conda_prefix: None,
        path: None,
        path_modification_behavior: PathModificationBehavior::Prepend,
        current_env: Default::default(),
    };
    let activation = activator
        .activation(variables)
        .map_err(|e| unpack_error(prefix, format!("activation: {}", error_chain(&e))))?;
    let body = activation
        .script
        .contents()
        .map_err(|e| unpack_error(prefix, format!("activation: {}", error_chain(&e))))?;
    let lib = shell_quote(&prefix.join("lib").to_string_lossy());
    let script = format!(
        "# Activates the slurmbook environment {prefix}.\n\
         # Use from a POSIX shell: . {script}\n\
         {body}\n\
         export LD_LIBRARY_PATH={lib}\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n",
        prefix = prefix.display().to_string().replace(['\n', '\r'], "?"),
        script = shell_quote(&activation_script_path(prefix).to_string_lossy())
            .replace(['\n', '\r'], "?"),
    );
    let path = staged.join(ACTIVATION_SCRIPT);
    std::fs::write(&path, script).io("cannot write", &path)
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
