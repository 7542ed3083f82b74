//! Packing: lock file → one archive holding the locked packages as a local
//! channel plus a manifest.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rattler_conda_types::RepoDataRecord;
use rattler_digest::{Md5, Sha256};
use rattler_lock::LockFile;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::{IoContext, PackError, Result};
use crate::fetch::fetch;
use crate::{cache_key_of, Manifest, ManifestPackage, PixiProject, FORMAT, MANIFEST_NAME};

/// How an archive was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackedWith {
    /// By slurmbook itself, with the rattler crates.
    Native,
    /// By the `pixi-pack` found on PATH.
    PixiPack,
}

/// What [`pack`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackReport {
    /// The archive: `out_dir/slurmbook-env-<key>.tar`.
    pub archive: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Number of packages in it.
    pub packages: usize,
    /// The cache key ([`PixiProject::cache_key`]).
    pub key: String,
    /// How it was made.
    pub packed_with: PackedWith,
    /// True when the archive already existed for this key and was reused.
    pub reused: bool,
}

/// Packs `environment` of the project's lock file for `platform` into
/// `out_dir/slurmbook-env-<key>.tar`, with `pixi-pack` when it is on PATH
/// and natively ([`pack_native`]) otherwise. An archive already made for the
/// same key is reused.
pub fn pack(
    project: &PixiProject,
    environment: &str,
    platform: &str,
    out_dir: &Path,
) -> Result<PackReport> {
    match find_on_path("pixi-pack") {
        Some(pixi_pack) => pack_inner(project, environment, platform, out_dir, Some(&pixi_pack)),
        None => pack_inner(project, environment, platform, out_dir, None),
    }
}

/// Like [`pack`], but always packs with slurmbook's own code, never with
/// `pixi-pack`.
pub fn pack_native(
    project: &PixiProject,
    environment: &str,
    platform: &str,
    out_dir: &Path,
) -> Result<PackReport> {
    pack_inner(project, environment, platform, out_dir, None)
}

fn pack_inner(
    project: &PixiProject,
    environment: &str,
    platform: &str,
    out_dir: &Path,
    pixi_pack: Option<&Path>,
) -> Result<PackReport> {
    let started = Instant::now();
    let lock_bytes = project.lock_bytes()?;
    let key = cache_key_of(&lock_bytes, environment, platform);
    let lock_sha256 = hex::encode(rattler_digest::compute_bytes_digest::<Sha256>(&lock_bytes));
    std::fs::create_dir_all(out_dir).io("cannot create", out_dir)?;
    let archive = out_dir.join(format!("slurmbook-env-{key}.tar"));
    let sidecar = out_dir.join(format!("slurmbook-env-{key}.json"));

    // Validate the lock file first, even for pixi-pack: typed errors.
    // (pixi-pack handles PyPI packages its own way.)
    let (records, subdir, wheels) =
        locked_records(project, environment, platform, pixi_pack.is_none())?;

    if let Some(manifest) = read_sidecar(&sidecar).filter(|_| archive.is_file()) {
        let bytes = std::fs::metadata(&archive)
            .io("cannot stat", &archive)?
            .len();
        info!(archive = %archive.display(), "environment archive for key {key} already packed; reusing it");
        return Ok(PackReport {
            archive,
            bytes,
            packages: manifest.packages.len(),
            key,
            packed_with: manifest.packed_with,
            reused: true,
        });
    }

    // Everything is made in a staging directory beside the archive and
    // renamed into place, so a half-written archive is never reused.
    let staging = tempfile::Builder::new()
        .prefix(".slurmbook-pack-")
        .tempdir_in(out_dir)
        .io("cannot create a staging directory in", out_dir)?;
    let staged_archive = staging.path().join("env.tar");

    let (packages, pypi, packed_with) = match pixi_pack {
        Some(exe) => {
            run_pixi_pack(exe, project, environment, platform, &staged_archive)?;
            let packages = records.iter().map(|r| manifest_package(r, None)).collect();
            (packages, Vec::new(), PackedWith::PixiPack)
        }
        None => {
            let channel = staging.path().join("channel");
            let packages = fetch_all(&records, &channel)?;
            index_channel(&channel, subdir)?;
            let pypi = crate::pypi::fetch_wheels(&wheels, &staging.path().join("pypi"))?;
            (packages, pypi, PackedWith::Native)
        }
    };

    let manifest = Manifest {
        format: FORMAT,
        environment: environment.to_string(),
        platform: platform.to_string(),
        subdir: subdir.to_string(),
        key: key.clone(),
        lock_sha256,
        packed_with,
        packages,
        pypi,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    if packed_with == PackedWith::Native {
        let manifest_path = staging.path().join(MANIFEST_NAME);
        std::fs::write(&manifest_path, &manifest_json).io("cannot write", &manifest_path)?;
        write_tar(staging.path(), &staged_archive)?;
    }

    std::fs::rename(&staged_archive, &archive).io("cannot move the archive to", &archive)?;
    std::fs::write(&sidecar, &manifest_json).io("cannot write", &sidecar)?;
    let bytes = std::fs::metadata(&archive)
        .io("cannot stat", &archive)?
        .len();
    info!(
        archive = %archive.display(),
        bytes,
        packages = manifest.packages.len(),
        ?packed_with,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "packed environment `{environment}` for {platform}"
    );
    Ok(PackReport {
        archive,
        bytes,
        packages: manifest.packages.len(),
        key,
        packed_with,
        reused: false,
    })
}

/// The locked binary conda packages of `environment` for `platform`, the
/// platform's subdir, and (with `wheels`) its PyPI wheels; PyPI packages
/// that are not wheels are refused then.
fn locked_records(
    project: &PixiProject,
    environment: &str,
    platform: &str,
    wheels: bool,
) -> Result<(
    Vec<RepoDataRecord>,
    rattler_conda_types::Subdir,
    Vec<crate::pypi::LockedWheel>,
)> {
    let lock_path = &project.lock;
    if !lock_path.is_file() {
        return Err(PackError::MissingLock(lock_path.clone()));
    }
    let lock = LockFile::from_path(lock_path).map_err(|e| PackError::InvalidLock {
        path: lock_path.clone(),
        message: e.to_string(),
    })?;
    let env = lock
        .environment(environment)
        .ok_or_else(|| PackError::EnvironmentNotInLock {
            lock: lock_path.clone(),
            environment: environment.to_string(),
            available: join(lock.environments().map(|(name, _)| name.to_string())),
        })?;
    let not_locked = || PackError::PlatformNotInLock {
        lock: lock_path.clone(),
        environment: environment.to_string(),
        platform: platform.to_string(),
        available: join(env.platforms().map(|p| p.name().to_string())),
    };
    let lock_platform = lock.platform(platform).ok_or_else(not_locked)?;
    let packages: Vec<_> = env
        .packages(lock_platform)
        .ok_or_else(not_locked)?
        .collect();

    let unsupported = |what, names: Vec<String>| PackError::Unsupported {
        environment: environment.to_string(),
        platform: platform.to_string(),
        what,
        packages: join(names.into_iter()),
    };
    let pypi = if wheels {
        let dir = lock_path.parent().unwrap_or(Path::new("."));
        crate::pypi::locked_wheels(
            environment,
            dir,
            packages.iter().filter_map(|p| p.as_pypi()),
        )?
    } else {
        Vec::new()
    };
    let source: Vec<String> = packages
        .iter()
        .filter(|p| p.as_source_conda().is_some())
        .map(|p| p.name().to_string())
        .collect();
    if !source.is_empty() {
        return Err(unsupported("conda packages built from source", source));
    }
    let records = env
        .conda_repodata_records(lock_platform)
        .map_err(|e| PackError::InvalidLock {
            path: lock_path.clone(),
            message: e.to_string(),
        })?
        .ok_or_else(not_locked)?;
    Ok((records, lock_platform.subdir(), pypi))
}

fn join(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn read_sidecar(path: &Path) -> Option<Manifest> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(manifest) if manifest.format == FORMAT => Some(manifest),
        _ => {
            warn!(path = %path.display(), "ignoring an unreadable pack manifest");
            None
        }
    }
}

fn manifest_package(record: &RepoDataRecord, size: Option<u64>) -> ManifestPackage {
    let p = &record.package_record;
    let file = record.identifier.to_file_name();
    ManifestPackage {
        name: p.name.as_normalized().to_string(),
        version: p.version.to_string(),
        build: p.build.to_string(),
        subdir: p.subdir.clone(),
        path: format!("channel/{}/{file}", p.subdir),
        sha256: p.sha256.map(hex::encode).unwrap_or_default(),
        md5: p.md5.map(hex::encode),
        size: size.or(p.size).unwrap_or(0),
    }
}

/// Fetches every record into `channel/<subdir>/<file>` and verifies it
/// against the lock file's checksums.
fn fetch_all(records: &[RepoDataRecord], channel: &Path) -> Result<Vec<ManifestPackage>> {
    let mut packages = Vec::with_capacity(records.len());
    for record in records {
        let file = record.identifier.to_file_name();
        let p = &record.package_record;
        if p.sha256.is_none() && p.md5.is_none() {
            return Err(PackError::MissingChecksum { package: file });
        }
        let dir = channel.join(&p.subdir);
        std::fs::create_dir_all(&dir).io("cannot create", &dir)?;
        let dest = dir.join(&file);
        debug!(url = %record.url, "fetching {file}");
        let size = fetch(&record.url, &dest, &file)?;
        verify(record, &dest, &file)?;
        packages.push(manifest_package(record, Some(size)));
    }
    Ok(packages)
}

/// Checks `path` against the sha256 (and md5) of `record`.
fn verify(record: &RepoDataRecord, path: &Path, package: &str) -> Result<()> {
    let mismatch = |algorithm, expected: String, actual: String| PackError::ChecksumMismatch {
        package: package.to_string(),
        algorithm,
        expected,
        actual,
        url: record.url.to_string(),
    };
    if let Some(expected) = record.package_record.sha256 {
        let actual = rattler_digest::compute_file_digest::<Sha256>(path).io("cannot read", path)?;
        if actual != expected {
            return Err(mismatch(
                "sha256",
                hex::encode(expected),
                hex::encode(actual),
            ));
        }
    }
    if let Some(expected) = record.package_record.md5 {
        let actual = rattler_digest::compute_file_digest::<Md5>(path).io("cannot read", path)?;
        if actual != expected {
            return Err(mismatch("md5", hex::encode(expected), hex::encode(actual)));
        }
    }
    Ok(())
}

/// Writes `repodata.json` for every subdir of the local channel (with an
/// empty `noarch` and target subdir, which conda clients expect).
pub fn index_channel(channel: &Path, subdir: rattler_conda_types::Subdir) -> Result<()> {
    for dir in ["noarch", subdir.as_str()] {
        let dir = channel.join(dir);
        std::fs::create_dir_all(&dir).io("cannot create", &dir)?;
    }
    let config = rattler_index::IndexFsConfig {
        channel: channel.to_path_buf(),
        target_platform: None,
        repodata_patch: None,
        write_zst: false,
        write_shards: false,
        repodata_revisions: Vec::new(),
        package_revision_assignment: Default::default(),
        force: true,
        max_parallel: 4,
        multi_progress: None,
    };
    crate::block_on(rattler_index::index_fs(config))?.map_err(|e| PackError::Index {
        channel: channel.to_path_buf(),
        message: format!("{e:#}"),
    })?;
    // rattler_index writes through a `.tmp` directory; it is not part of the channel.
    let tmp = channel.join(".tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).io("cannot remove", &tmp)?;
    }
    Ok(())
}

/// Writes `staging/{slurmbook-manifest.json, channel/}` as a plain tar (conda
/// packages are compressed already) with deterministic headers.
fn write_tar(staging: &Path, archive: &Path) -> Result<()> {
    let file = File::create(archive).io("cannot create", archive)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    tar.append_path_with_name(staging.join(MANIFEST_NAME), MANIFEST_NAME)
        .io("cannot add the manifest to", archive)?;
    tar.append_dir_all("channel", staging.join("channel"))
        .io("cannot add the channel to", archive)?;
    if staging.join("pypi").is_dir() {
        tar.append_dir_all("pypi", staging.join("pypi"))
            .io("cannot add the PyPI wheels to", archive)?;
    }
    let mut out = tar.into_inner().io("cannot finish", archive)?;
    out.flush().io("cannot write", archive)?;
    Ok(())
}

/// Best-effort `pixi-pack` run (it is not installed where slurmbook is tested):
/// old releases take `pixi-pack pack --manifest-file M`, newer ones
/// `pixi-pack M`.
fn run_pixi_pack(
    exe: &Path,
    project: &PixiProject,
    environment: &str,
    platform: &str,
    out: &Path,
) -> Result<()> {
    let help = Command::new(exe)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let has_pack_subcommand = help.lines().any(|l| l.trim_start().starts_with("pack "));
    let mut command = Command::new(exe);
    if has_pack_subcommand {
        command
            .arg("pack")
            .arg("--manifest-file")
            .arg(&project.manifest);
    } else {
        command.arg(&project.manifest);
    }
    command
        .args([
            "--environment",
            environment,
            "--platform",
            platform,
            "--output-file",
        ])
        .arg(out)
        .current_dir(&project.root);
    info!(?command, "packing with pixi-pack");
    let output = command.output().map_err(|e| PackError::PixiPack {
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if !output.status.success() || !out.is_file() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(PackError::PixiPack {
            status: output.status.to_string(),
            stderr: tail,
        });
    }
    Ok(())
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
