//! Building the job binary on the cluster, for when this machine's platform
//! differs from the cluster's (or the profile says `build = "remote"`).
//!
//! Here: the bundle's sources plus `cargo vendor` output of its dependencies
//! go into one deterministic `.tar.gz` (same sources, same bytes), so the
//! content-addressed upload sends it once. There: one script, under a lock
//! (`builds/.lock`, so concurrent runs build one at a time), unpacks it into
//! `builds/work` (vendored crates accumulate there, and its target directory
//! is shared, so dependencies compile once), runs `cargo build --release
//! --offline` with the packed environment's toolchain when there is one
//! (its activation script is sourced first) or else the cluster's `cargo`,
//! and installs the binary as `builds/<hash>/<name>`, which later runs find
//! and reuse without building.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle::{self, binary_name, io, BundleError, BundleSources};
use crate::transport::{check_abs_path, command_line, Transport, TransportError};

/// Where a bundle's vendored sources are prepared locally.
fn bundle_dir(root: &Path, sources: &BundleSources) -> PathBuf {
    root.join("vendored").join(&sources.hash[..16])
}

/// The bundle's sources and vendored dependencies as one deterministic
/// `.tar.gz` (cached under `root`); returns its bytes.
pub fn vendor_archive(sources: &BundleSources, root: &Path) -> Result<Vec<u8>, BundleError> {
    let dir = bundle_dir(root, sources);
    let archive = dir.with_extension("tar.gz");
    if let Ok(bytes) = std::fs::read(&archive) {
        return Ok(bytes);
    }
    let _ = std::fs::remove_dir_all(&dir);
    bundle::write_sources(sources, &dir)?;
    let out = Command::new("cargo")
        .args(["vendor", "--versioned-dirs", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg(dir.join("vendor"))
        .output()
        .map_err(io("running cargo vendor"))?;
    if !out.status.success() {
        return Err(BundleError::Vendor(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    std::fs::create_dir_all(dir.join(".cargo")).map_err(io("creating .cargo"))?;
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n\
         [source.vendored-sources]\ndirectory = \"vendor\"\n",
    )
    .map_err(io("writing .cargo/config.toml"))?;
    let bytes = deterministic_tar_gz(&dir).map_err(io("packing the vendored sources"))?;
    let tmp = archive.with_extension("tmp");
    std::fs::write(&tmp, &bytes).map_err(io("writing the archive"))?;
    std::fs::rename(&tmp, &archive).map_err(io("writing the archive"))?;
    Ok(bytes)
}

/// A `.tar.gz` of `dir`'s files in sorted order, with fixed owners, modes
/// and times: the same tree always gives the same bytes.
fn deterministic_tar_gz(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for rel in files {
        let path = dir.join(&rel);
        let mut f = std::fs::File::open(&path)?;
        tar.append_file(&rel, &mut f)?;
    }
    tar.into_inner()?.finish()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") && dir == root {
                continue;
            }
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

/// The remote side; `$1` base dir, `$2` hash (16 hex), `$3` archive,
/// `$4` binary name, `$5` activation script or `-`. Prints `SBBUILT
/// cached|built PATH`; a failed build prints cargo's messages on stderr
/// and exits 2.
const BUILD_SCRIPT: &str = r#"set -eu
b="$1/builds"; out="$b/$2/$4"
if [ -x "$out" ]; then printf 'SBBUILT cached %s\n' "$out"; exit 0; fi
mkdir -p "$b/work"
exec 9>"$b/.lock"
flock 9
if [ -x "$out" ]; then printf 'SBBUILT cached %s\n' "$out"; exit 0; fi
cd "$b/work"
rm -rf src .cargo Cargo.toml Cargo.lock
tar -xzf "$3"
if [ "$5" != - ]; then . "$5"; fi
PATH="$PATH:$HOME/.cargo/bin"
if ! command -v cargo >/dev/null 2>&1; then
  echo "no cargo on the cluster: add rust to the pixi environment, or install it" >&2; exit 3
fi
if ! cargo build --release --offline --quiet --message-format=short 2>build.err; then
  cat build.err >&2; exit 2
fi
mkdir -p "$b/$2"
cp "target/release/$4" "$out.tmp"
mv "$out.tmp" "$out"
printf 'SBBUILT built %s\n' "$out"
"#;

/// How the remote build went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBuild {
    /// The binary's path on the cluster.
    pub binary: String,
    /// Whether it was built now (or found from an earlier build).
    pub built: bool,
    /// Bytes of the vendored archive sent (0 when the cluster had it).
    pub bytes_sent: u64,
}

/// Build the bundle on the cluster (see the module docs) under `base`
/// (the expanded `remote_dir`), with `activate` sourced first when given.
pub async fn build_on_cluster(
    remote: &dyn Transport,
    base: &str,
    sources: &BundleSources,
    root: &Path,
    activate: Option<&str>,
) -> Result<RemoteBuild, BundleError> {
    check_abs_path(base).map_err(ssh)?;
    let name = binary_name(&sources.hash);
    let hash = &sources.hash[..16];
    // Found from an earlier build: nothing vendored, nothing sent.
    let probe = format!("{base}/builds/{hash}/{name}");
    let found = remote
        .run(&["test", "-x", &probe])
        .await
        .map_err(ssh)?
        .success();
    if found {
        return Ok(RemoteBuild {
            binary: probe,
            built: false,
            bytes_sent: 0,
        });
    }
    let archive = vendor_archive(sources, root)?;
    let (remote_archive, sent) = remote
        .upload_cas(&format!("{base}/cache"), &archive, false)
        .await
        .map_err(ssh)?;
    let activate = activate.unwrap_or("-");
    let line = command_line(&[
        "sh",
        "-c",
        BUILD_SCRIPT,
        "sh",
        base,
        hash,
        &remote_archive,
        &name,
        activate,
    ])
    .map_err(ssh)?;
    let out = remote.run_script(&line).await.map_err(ssh)?;
    let stdout = out.stdout_text();
    let Some(rest) = stdout.lines().find_map(|l| l.strip_prefix("SBBUILT ")) else {
        let stderr = out.stderr_text();
        return Err(BundleError::RemoteBuild(if stderr.trim().is_empty() {
            format!("the build script exited with {:?}", out.code)
        } else {
            stderr.trim().to_string()
        }));
    };
    let mut parts = rest.splitn(2, ' ');
    let how = parts.next().unwrap_or_default();
    let binary = parts.next().unwrap_or_default().to_string();
    Ok(RemoteBuild {
        binary,
        built: how == "built",
        bytes_sent: sent,
    })
}

fn ssh(e: TransportError) -> BundleError {
    BundleError::RemoteBuild(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("src/x")).unwrap();
        std::fs::write(a.path().join("src/x/b.rs"), "b").unwrap();
        std::fs::write(a.path().join("Cargo.toml"), "[package]").unwrap();
        std::fs::create_dir_all(a.path().join("target")).unwrap();
        std::fs::write(a.path().join("target/junk"), "junk").unwrap();
        let first = deterministic_tar_gz(a.path()).unwrap();
        // Touch a file (new mtime): same bytes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(a.path().join("Cargo.toml"), "[package]").unwrap();
        assert_eq!(deterministic_tar_gz(a.path()).unwrap(), first);
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&first[..]));
        for e in ar.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names, ["Cargo.toml", "src/x/b.rs"]);
    }

    #[test]
    fn the_build_script_is_valid_sh() {
        let out = Command::new("sh")
            .args(["-n", "-c", BUILD_SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
