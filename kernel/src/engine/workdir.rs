//! Where evcxr builds, across kernel starts.
//!
//! evcxr compiles each cell as a crate in a work directory, by default a fresh
//! temporary one per process, so every start repeats cargo's first-build work
//! and every session rebuilds its `:dep` crates. The kernel gives evcxr one of
//! a few persistent *slots* of the per-user cache instead
//! (`$SLURMBOOK_CACHE_DIR`, else `<user cache dir>/slurmbook`): evcxr works
//! in `evcxr/slot-N/crate`. A kernel holds its slot with an exclusive `flock`
//! on `evcxr/slot-N.lock` for its whole life (the OS lets go when the process
//! ends, however it ends), so two kernels never share a slot; when every slot
//! is taken, or the cache cannot be written, evcxr keeps its temporary
//! directory, as before.
//!
//! The slot's `.cargo/config.toml` (beside `crate`, so evcxr's own config in
//! `crate/.cargo` stays evcxr's) makes cargo compile the cell crate through
//! the compile cache ([`super::rustc_cache`]): only evcxr's builds see it, not
//! user code nor other cargo runs of the kernel. `SLURMBOOK_NO_CACHE=1` turns
//! both off.

use super::rustc_cache;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How many kernels at once get a persistent slot.
const SLOTS: usize = 8;
/// A slot whose build directory grew past this is emptied at the next start.
const SLOT_TARGET_LIMIT: u64 = 4 << 30;

/// What [`prepare_process`] set up.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The slot (evcxr builds in its `crate`, `EVCXR_TMPDIR`), if one was free.
    pub slot: Option<PathBuf>,
    /// The compile cache's directory, if cargo was told to use it.
    pub rustc_cache: Option<PathBuf>,
    /// Why there is no slot or compile cache, when there is none.
    pub note: Option<String>,
    /// Keeps the slot's lock for the life of the process.
    _lock: Option<File>,
}

static PREPARED: OnceLock<Prepared> = OnceLock::new();

/// The per-user cache directory of slurmbook.
pub fn cache_root() -> Option<PathBuf> {
    match std::env::var_os("SLURMBOOK_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("slurmbook")),
    }
}

/// Takes a slot and points evcxr at it (with the compile cache, which also
/// keeps the slot's cell libraries loadable). It sets `EVCXR_TMPDIR`, so it must
/// run before any other thread starts; later calls return what the first one
/// did.
pub fn prepare_process() -> &'static Prepared {
    PREPARED.get_or_init(|| {
        let prepared = prepare();
        if let Some(slot) = &prepared.slot {
            // SAFETY (edition 2024 wording): no other thread exists yet.
            #[allow(unused_unsafe)]
            unsafe {
                std::env::set_var("EVCXR_TMPDIR", slot.join("crate"))
            };
        }
        prepared
    })
}

/// What [`prepare_process`] set up, if it ran.
pub fn prepared() -> Option<&'static Prepared> {
    PREPARED.get()
}

fn prepare() -> Prepared {
    let off = |note: &str| Prepared {
        note: Some(note.to_owned()),
        ..Prepared::default()
    };
    if std::env::var_os("SLURMBOOK_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0") {
        return off("SLURMBOOK_NO_CACHE is set");
    }
    if std::env::var_os("EVCXR_TMPDIR").is_some() {
        return off("EVCXR_TMPDIR is set: evcxr builds there");
    }
    let Some(root) = cache_root() else {
        return off("no user cache directory");
    };
    let Some((slot, lock)) = acquire_slot(&root.join("evcxr"), SLOTS) else {
        return off("no free slot in the cache (or it is not writable)");
    };
    let rustc_cache = root.join("rustc");
    let user_wrapper = [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    ]
    .iter()
    .any(|key| std::env::var_os(key).is_some_and(|v| !v.is_empty()));
    let written = std::env::current_exe()
        .and_then(|exe| write_cargo_config(&slot, &rustc_cache, &exe, !user_wrapper));
    // Without the wrapper, a cell library built in the slot may not find the
    // standard library (see rustc_cache::with_runpath): evcxr then keeps its
    // temporary directory.
    match written {
        Ok(true) => Prepared {
            slot: Some(slot),
            rustc_cache: Some(rustc_cache),
            note: None,
            _lock: Some(lock),
        },
        Ok(false) => off("a rustc wrapper of the user's is set, or the cache's path is unusual"),
        Err(error) => off(&format!("the slot's cargo configuration: {error}")),
    }
}

/// Writes the slot's cargo configuration: the compile cache (`cache`, run as
/// `exe`) as the cell crate's rustc wrapper, if `wanted` (not when the user
/// has a wrapper of their own) and no path would need quoting. Returns
/// whether the cache is on.
fn write_cargo_config(
    slot: &Path,
    cache: &Path,
    exe: &Path,
    wanted: bool,
) -> std::io::Result<bool> {
    let crate_dir = slot.join("crate");
    std::fs::create_dir_all(&crate_dir)?;
    let on = wanted
        && [exe, cache, &crate_dir]
            .iter()
            .all(|p| rustc_cache::plain_path(p));
    let config = slot.join(".cargo/config.toml");
    if !on {
        match std::fs::remove_file(&config) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => return Ok(false),
        }
    }
    std::fs::create_dir_all(slot.join(".cargo"))?;
    let text = format!(
        "# Written by slurmbook at every kernel start: evcxr's cell crate ({crate_dir}) is\n\
         # compiled through slurmbook's compile cache.\n\
         [build]\nrustc-workspace-wrapper = \"{exe}\"\n\n\
         [env]\n{cache_env} = \"{cache}\"\n{crate_env} = \"{crate_dir}\"\n",
        crate_dir = crate_dir.display(),
        exe = exe.display(),
        cache = cache.display(),
        cache_env = rustc_cache::CACHE_ENV,
        crate_env = rustc_cache::CRATE_ENV,
    );
    if std::fs::read_to_string(&config).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&config, text)?;
    }
    Ok(true)
}

/// Locks the first free `slot-N` under `dir`; returns its path and lock.
pub fn acquire_slot(dir: &Path, slots: usize) -> Option<(PathBuf, File)> {
    std::fs::create_dir_all(dir).ok()?;
    for n in 0..slots {
        let lock_path = dir.join(format!("slot-{n}.lock"));
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        else {
            continue;
        };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        let slot = dir.join(format!("slot-{n}"));
        if std::fs::create_dir_all(&slot).is_ok() {
            return Some((slot, file));
        }
    }
    None
}

/// Readies a slot for a new session: removes the cell libraries of earlier
/// sessions (evcxr numbers them from 1 again) and empties a build directory
/// that grew too big. Runs on the engine thread, before evcxr starts.
pub fn tidy_slot(slot: &Path) {
    let target = slot.join("crate/target");
    let Ok(triples) = std::fs::read_dir(&target) else {
        return;
    };
    for triple in triples.flatten() {
        let Ok(libs) = std::fs::read_dir(triple.path().join("debug")) else {
            continue;
        };
        for lib in libs.flatten() {
            let name = lib.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("libcode_") && name.ends_with(".so") {
                let _ = std::fs::remove_file(lib.path());
            }
        }
    }
    let size = dir_size(&target, SLOT_TARGET_LIMIT);
    if size > SLOT_TARGET_LIMIT {
        tracing::info!(slot = %slot.display(), size, "emptying the slot's build directory (too big)");
        let _ = std::fs::remove_dir_all(&target);
    }
}

/// Bytes under `dir` (not following links), counting stops past `limit`.
fn dir_size(dir: &Path, limit: u64) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
                if total > limit {
                    return total;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sb-workdir-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn two_holders_get_different_slots_and_a_released_slot_is_reused() {
        let dir = temp_dir("slots");
        let (a, lock_a) = acquire_slot(&dir, 2).unwrap();
        let (b, _lock_b) = acquire_slot(&dir, 2).unwrap();
        assert_ne!(a, b);
        assert!(acquire_slot(&dir, 2).is_none(), "both slots are held");
        drop(lock_a);
        let (c, _lock_c) = acquire_slot(&dir, 2).unwrap();
        assert_eq!(a, c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tidy_removes_old_cell_libraries_only() {
        let slot = temp_dir("tidy");
        let debug = slot.join("crate/target/x86_64-unknown-linux-gnu/debug");
        std::fs::create_dir_all(debug.join("deps")).unwrap();
        for name in [
            "libcode_1.so",
            "libcode_12.so",
            "libctx.so",
            "deps/libserde-1.rlib",
        ] {
            std::fs::write(debug.join(name), b"x").unwrap();
        }
        tidy_slot(&slot);
        assert!(!debug.join("libcode_1.so").exists());
        assert!(!debug.join("libcode_12.so").exists());
        assert!(debug.join("libctx.so").exists());
        assert!(debug.join("deps/libserde-1.rlib").exists());
        std::fs::remove_dir_all(&slot).unwrap();
    }

    #[test]
    fn the_slot_config_names_the_wrapper_and_the_cache_or_nothing() {
        let slot = temp_dir("config");
        let cache = slot.join("rustc");
        let exe = Path::new("/opt/slurmbook/bin/slurmbook");
        assert!(write_cargo_config(&slot, &cache, exe, true).unwrap());
        let config = std::fs::read_to_string(slot.join(".cargo/config.toml")).unwrap();
        assert!(config.contains("rustc-workspace-wrapper = \"/opt/slurmbook/bin/slurmbook\""));
        assert!(config.contains(&format!("SLURMBOOK_RUSTC_CACHE = \"{}\"", cache.display())));
        assert!(config.contains(&format!(
            "SLURMBOOK_RUSTC_CRATE = \"{}/crate\"",
            slot.display()
        )));
        assert!(slot.join("crate").is_dir());
        assert!(!write_cargo_config(&slot, &cache, exe, false).unwrap());
        assert!(!slot.join(".cargo/config.toml").exists());
        assert!(
            !write_cargo_config(&slot, &cache, Path::new("/opt/my apps/slurmbook"), true).unwrap()
        );
        std::fs::remove_dir_all(&slot).unwrap();
    }

    #[test]
    fn dir_size_counts_nested_files_and_stops_early() {
        let dir = temp_dir("size");
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/one"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("a/b/two"), [0u8; 20]).unwrap();
        assert_eq!(dir_size(&dir, u64::MAX), 30);
        assert!(dir_size(&dir, 5) > 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
