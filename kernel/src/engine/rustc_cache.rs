//! A compile cache for the crate evcxr builds each cell as (`ctx`).
//!
//! evcxr compiles every cell, and a probe at every start, with cargo in its
//! work directory; rustc then runs for each, even when the very same code was
//! compiled before (the probe at every start; every cell when a notebook is
//! run again after a restart). cargo runs this binary as the cell crate's
//! rustc wrapper (`build.rustc-workspace-wrapper` in the slot's cargo
//! configuration, written by the `workdir` module): `slurmbook <rustc>
//! <args>`. A compile of `ctx` in the kernel's slot whose inputs are known
//! (rustc, its arguments, the source file, the `--extern` libraries) is
//! looked up by their digest; a hit writes back the outputs, messages and
//! exit status rustc gave, a miss runs rustc and stores them. Anything else,
//! and anything unexpected, runs rustc unchanged. A compile that read other
//! files or environment variables (its dep-info says so) or links native
//! libraries is not stored. The wrapper also gives the cell library an
//! absolute runpath to the standard library (`with_runpath`).
//!
//! Paths inside the slot are stored with a placeholder; cargo's crate hash
//! (`-C metadata`, part of the key) differs between slots, so in practice
//! each slot has its own entries.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The compile cache's directory (set for cargo by the kernel).
pub const CACHE_ENV: &str = "SLURMBOOK_RUSTC_CACHE";
/// The crate directory (slot) whose compiles are cached.
pub const CRATE_ENV: &str = "SLURMBOOK_RUSTC_CRATE";
const PLACEHOLDER: &str = "@SLURMBOOK_CRATE_DIR@";
const VERSION: &str = "slurmbook rustc cache v1";
/// Outputs bigger than this are not stored.
const MAX_ENTRY_BYTES: u64 = 8 << 20;
/// Past this many entries the least recently used are removed.
const MAX_ENTRIES: usize = 512;
/// rustc options whose value is the next argument.
const VALUE_FLAGS: &[&str] = &[
    "--crate-name",
    "--crate-type",
    "--edition",
    "--emit",
    "--print",
    "-C",
    "--codegen",
    "-L",
    "-l",
    "--extern",
    "--out-dir",
    "-o",
    "--target",
    "--cap-lints",
    "--check-cfg",
    "--cfg",
    "--error-format",
    "--json",
    "-W",
    "-A",
    "-D",
    "-F",
    "--warn",
    "--allow",
    "--deny",
    "--forbid",
    "--force-warn",
    "--sysroot",
    "-Z",
    "--remap-path-prefix",
    "--color",
    "--diagnostic-width",
    "--env-set",
    "--explain",
];

/// Whether cargo started this process as the rustc wrapper: `slurmbook
/// <rustc> <args>`. cargo also runs `slurmbook <rustc> -vV` to learn the
/// compiler's version, without the slot's `[env]`, so the first argument
/// decides. With [`CACHE_ENV`] set (by the slot's cargo configuration), an
/// option as first argument means another wrapper (e.g. sccache from
/// `:sccache`) runs this binary as if it were rustc. evcxr's own wrapper
/// (`:cache`) handles its invocations itself.
pub fn is_wrapper_invocation() -> bool {
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some()
        || std::env::var_os("EVCXR_RUSTC_WRAPPER").is_some()
    {
        return false;
    }
    std::env::args_os().nth(1).is_some_and(|first| {
        names_rustc(&first)
            || (std::env::var_os(CACHE_ENV).is_some() && first.to_string_lossy().starts_with('-'))
    })
}

fn names_rustc(arg: &std::ffi::OsStr) -> bool {
    Path::new(arg)
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("rustc"))
}

/// Runs as the rustc wrapper; never returns.
pub fn wrapper_main() -> ! {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if !args.first().is_some_and(|first| names_rustc(first)) {
        // Run as if it were rustc: be rustc (evcxr names it to cargo).
        args.insert(
            0,
            std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()),
        );
    }
    let rustc = args.remove(0);
    let args = with_runpath(args, Path::new(&rustc));
    let cache = match (std::env::var_os(CACHE_ENV), std::env::var_os(CRATE_ENV)) {
        (Some(dir), Some(crate_dir)) => Some(Cache {
            dir: dir.into(),
            crate_dir: crate_dir.into(),
        }),
        _ => None,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let plan = cache
        .as_ref()
        .and_then(|c| c.plan(Path::new(&rustc), &args, &cwd));
    let code = match (cache, plan) {
        (Some(cache), Some(plan)) => {
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            let code = cache.compile(&plan, Path::new(&rustc), &args, &mut out, &mut err);
            let _ = out.flush();
            let _ = err.flush();
            code
        }
        _ => exec(&rustc, &args),
    };
    std::process::exit(code)
}

/// The cell crate with an absolute runpath to the standard library beside
/// the relative one rustc writes: evcxr loads the library after moving it
/// one directory up, and the relative path only survives that when it climbs
/// to `/` (a work directory under `/tmp`), not from a persistent cache in the
/// home directory that also holds rustup's toolchains.
fn with_runpath(mut args: Vec<OsString>, rustc: &Path) -> Vec<OsString> {
    let is_cell_crate = args
        .windows(2)
        .any(|w| w[0] == "--crate-name" && w[1] == "ctx");
    if !is_cell_crate {
        return args;
    }
    // evcxr names the standard library it links (`core=<libdir>/libstd-*.so`).
    let from_evcxr = std::env::var_os("EVCXR_CORE_EXTERN").and_then(|v| {
        let v = v.to_str()?.to_owned();
        Some(Path::new(v.split_once('=')?.1).parent()?.to_path_buf())
    });
    let target = args
        .windows(2)
        .find(|w| w[0] == "--target")
        .map(|w| w[1].clone());
    let from_rustc = || {
        let toolchain = rustc.parent()?.parent()?;
        Some(
            toolchain
                .join("lib/rustlib")
                .join(target.as_ref()?)
                .join("lib"),
        )
    };
    if let Some(dir) = from_evcxr.or_else(from_rustc).filter(|d| d.is_dir()) {
        if let Some(dir) = dir.to_str().filter(|d| !d.contains(',')) {
            args.push("-C".into());
            args.push(format!("link-arg=-Wl,-rpath,{dir}").into());
        }
    }
    args
}

/// Replaces this process with rustc.
fn exec(rustc: &OsString, args: &[OsString]) -> i32 {
    use std::os::unix::process::CommandExt;
    let error = Command::new(rustc).args(args).exec();
    let _ = writeln!(
        std::io::stderr(),
        "error: slurmbook could not run {rustc:?}: {error}"
    );
    1
}

/// Whether `path` can stand in JSON messages and dep-info files unescaped.
pub fn plain_path(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        s.starts_with('/')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+@~,=".contains(c))
    })
}

pub struct Cache {
    pub dir: PathBuf,
    pub crate_dir: PathBuf,
}

/// A cacheable compile: its key and the source files it reads.
#[derive(Debug)]
pub struct Plan {
    key: String,
    sources: Vec<String>,
}

/// What rustc did, as stored.
struct Entry {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// (path relative to the crate directory, content).
    files: Vec<(String, Vec<u8>)>,
}

impl Cache {
    /// Whether this compile can be cached, and under which key.
    /// `cwd` is where cargo started rustc.
    pub fn plan(&self, rustc: &Path, args: &[OsString], cwd: &Path) -> Option<Plan> {
        let crate_dir = self.crate_dir.to_str()?;
        if !plain_path(&self.crate_dir) || cwd != self.crate_dir {
            return None;
        }
        let args: Vec<&str> = args.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
        let crate_name = args.iter().position(|a| *a == "--crate-name");
        if crate_name.and_then(|i| args.get(i + 1)) != Some(&"ctx")
            || !args
                .iter()
                .any(|a| a.starts_with("--json=") && a.contains("artifacts"))
        {
            return None;
        }
        let mut hasher = Sha256::new();
        let mut feed = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        feed(VERSION.as_bytes());
        feed(rustc.to_str()?.as_bytes());
        feed(&file_stamp(rustc)?);
        feed(
            std::env::var("RUSTC_BOOTSTRAP")
                .unwrap_or_default()
                .as_bytes(),
        );
        let mut sources = Vec::new();
        let mut takes_value = false;
        for (i, arg) in args.iter().enumerate() {
            feed(arg.replace(crate_dir, PLACEHOLDER).as_bytes());
            let value_of = |flag: &str| (i > 0 && args[i - 1] == flag).then_some(*arg);
            // Native libraries: their files are not part of the key.
            if arg.starts_with("-l")
                || value_of("-L")
                    .is_some_and(|v| !v.starts_with("dependency=") && !v.starts_with("crate="))
                || arg.starts_with("-L") && arg.len() > 2
            {
                return None;
            }
            if let Some(value) = value_of("--extern").or_else(|| arg.strip_prefix("--extern=")) {
                if let Some((_, path)) = value.split_once('=') {
                    feed(&file_stamp(Path::new(path))?);
                }
            }
            let was_value = std::mem::replace(&mut takes_value, VALUE_FLAGS.contains(arg));
            if !was_value && !arg.starts_with('-') {
                if !arg.ends_with(".rs") {
                    return None;
                }
                feed(&std::fs::read(self.crate_dir.join(arg)).ok()?);
                sources.push(arg.to_string());
            }
        }
        if sources.len() != 1 {
            return None;
        }
        Some(Plan {
            key: hex::encode(hasher.finalize()),
            sources,
        })
    }

    /// Serves the compile from the cache or runs rustc (and stores what it
    /// did). Returns rustc's exit status.
    pub fn compile(
        &self,
        plan: &Plan,
        rustc: &Path,
        args: &[OsString],
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> i32 {
        let entry_dir = self.dir.join(&plan.key);
        if let Some(entry) = Entry::load(&entry_dir, &self.crate_dir) {
            if entry.restore(&self.crate_dir).is_ok() {
                let _ = out.write_all(&entry.stdout);
                let _ = err.write_all(&entry.stderr);
                touch(&entry_dir.join("status"));
                return entry.code;
            }
        }
        let output = match Command::new(rustc)
            .args(args)
            .current_dir(&self.crate_dir)
            .output()
        {
            Ok(output) => output,
            Err(error) => {
                let _ = writeln!(
                    err,
                    "error: slurmbook could not run {}: {error}",
                    rustc.display()
                );
                return 1;
            }
        };
        let _ = out.write_all(&output.stdout);
        let _ = err.write_all(&output.stderr);
        let code = output.status.code().unwrap_or(1);
        if code == 0 || code == 1 {
            if let Some(entry) = self.entry_of(plan, code, output.stdout, output.stderr) {
                let _ = entry.store(&self.dir, &plan.key, &self.crate_dir);
            }
        }
        code
    }

    /// The entry for a compile that just ran, unless it is not cacheable.
    fn entry_of(&self, plan: &Plan, code: i32, stdout: Vec<u8>, stderr: Vec<u8>) -> Option<Entry> {
        let crate_dir = self.crate_dir.to_str()?;
        let mut files = Vec::new();
        let mut size = 0;
        for line in String::from_utf8_lossy(&stderr).lines() {
            if !line.starts_with(r#"{"$message_type":"artifact""#) {
                continue;
            }
            let message: serde_json::Value = serde_json::from_str(line).ok()?;
            let path = message["artifact"].as_str()?;
            let relative = path.strip_prefix(crate_dir)?.strip_prefix('/')?;
            let content = std::fs::read(path).ok()?;
            if path.ends_with(".d") && !dep_info_reads_only(&content, &plan.sources) {
                return None;
            }
            size += content.len() as u64;
            files.push((relative.to_owned(), content));
        }
        if size > MAX_ENTRY_BYTES || (code == 0 && files.is_empty()) {
            return None;
        }
        Some(Entry {
            code,
            stdout,
            stderr,
            files,
        })
    }
}

/// Whether a dep-info file names no input but `sources` (no other files, no
/// environment variables).
fn dep_info_reads_only(content: &[u8], sources: &[String]) -> bool {
    let Ok(text) = std::str::from_utf8(content) else {
        return false;
    };
    text.lines().all(|line| {
        if line.starts_with('#') {
            return false;
        }
        let Some((_, deps)) = line
            .rsplit_once(": ")
            .or_else(|| line.strip_suffix(':').map(|t| (t, "")))
        else {
            return line.trim().is_empty();
        };
        deps.split_whitespace()
            .all(|dep| sources.iter().any(|s| s == dep))
    })
}

/// Size and modification time of a file, as key material.
fn file_stamp(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let mut stamp = meta.len().to_le_bytes().to_vec();
    stamp.extend_from_slice(&mtime.to_le_bytes());
    Some(stamp)
}

fn touch(path: &Path) {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.replace(from, to).into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

/// Writes `content` to `path` through a new file renamed into place: the old
/// file may be a hard link to a library a running cell has loaded.
fn write_new(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".slurmbook-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&temp, content)?;
    if path.extension().is_some_and(|e| e == "so") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

impl Entry {
    fn load(dir: &Path, crate_dir: &Path) -> Option<Entry> {
        let crate_dir = crate_dir.to_str()?;
        let code = std::fs::read_to_string(dir.join("status"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let manifest = std::fs::read_to_string(dir.join("files")).ok()?;
        let mut files = Vec::new();
        for (i, relative) in manifest.lines().enumerate() {
            let content = std::fs::read(dir.join(format!("file-{i}"))).ok()?;
            let content = if relative.ends_with(".d") {
                replace(&content, PLACEHOLDER, crate_dir)
            } else {
                content
            };
            files.push((relative.to_owned(), content));
        }
        Some(Entry {
            code,
            stdout: replace(
                &std::fs::read(dir.join("stdout")).ok()?,
                PLACEHOLDER,
                crate_dir,
            ),
            stderr: replace(
                &std::fs::read(dir.join("stderr")).ok()?,
                PLACEHOLDER,
                crate_dir,
            ),
            files,
        })
    }

    fn restore(&self, crate_dir: &Path) -> std::io::Result<()> {
        for (relative, content) in &self.files {
            if relative
                .split('/')
                .any(|part| part == ".." || part.is_empty())
            {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            write_new(&crate_dir.join(relative), content)?;
        }
        Ok(())
    }

    /// Stores the entry under `key`, atomically (a temporary directory renamed).
    fn store(&self, cache: &Path, key: &str, crate_dir: &Path) -> std::io::Result<()> {
        let crate_dir = crate_dir.to_str().ok_or(std::io::ErrorKind::InvalidInput)?;
        std::fs::create_dir_all(cache)?;
        let temp = cache.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let result = (|| {
            std::fs::create_dir(&temp)?;
            std::fs::write(
                temp.join("stdout"),
                replace(&self.stdout, crate_dir, PLACEHOLDER),
            )?;
            std::fs::write(
                temp.join("stderr"),
                replace(&self.stderr, crate_dir, PLACEHOLDER),
            )?;
            let mut manifest = String::new();
            for (i, (relative, content)) in self.files.iter().enumerate() {
                let content = if relative.ends_with(".d") {
                    replace(content, crate_dir, PLACEHOLDER)
                } else {
                    content.clone()
                };
                std::fs::write(temp.join(format!("file-{i}")), content)?;
                manifest.push_str(relative);
                manifest.push('\n');
            }
            std::fs::write(temp.join("files"), manifest)?;
            // Written last: an entry without a status is never read.
            std::fs::write(temp.join("status"), self.code.to_string())?;
            std::fs::rename(&temp, cache.join(key))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        evict(cache, MAX_ENTRIES);
        result
    }
}

/// Removes the least recently used entries (and stale temporary
/// directories) once there are more than `max`.
fn evict(cache: &Path, max: usize) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let mut dated: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| {
            let used = std::fs::metadata(e.path().join("status"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (used, e.path())
        })
        .collect();
    if dated.len() <= max {
        return;
    }
    dated.sort();
    let excess = dated.len() - max * 3 / 4;
    for (_, path) in dated.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(path);
    }
}

#[cfg(test)]
mod tests;
