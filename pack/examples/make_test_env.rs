//! Writes the pack tests' fixture into a directory, for tests outside this
//! crate (tests/notebooks/test_slurm_env.py):
//!
//! ```text
//! make_test_env DIR [--lock-platform PLATFORM] [--cargo-shim REAL_CARGO]
//!               [--python] [--wheel] [--sdist]
//! ```
//!
//! `DIR/pixi.toml` and `DIR/pixi.lock` (a pixi project) lock three packages
//! of the local channel `DIR/channel` by `file:` URL and sha256: `libgreet`
//! (`lib/libgreet.so`), `greet-bin` (`bin/greet`, linked against libgreet
//! without an rpath) and `hello-tool` (a noarch script printing
//! `hello from hello-tool`). The lock names the current platform, or
//! `--lock-platform` (a lock without the current platform). With
//! `--cargo-shim REAL_CARGO`, a fourth package's `bin/cargo` logs its use to
//! `$CONDA_PREFIX/cargo-shim.log` and runs REAL_CARGO. `--python` adds a
//! `python` package (this machine's interpreter, made the environment's by
//! a `pyvenv.cfg`), `--wheel` a real pure-Python wheel built here
//! (`slurmbook_greeting`, locked as a PyPI package), `--sdist` a source
//! distribution in the lock. Needs `cc` (and `python3` for the last three).
//! Prints one JSON object: project, channel, platform, lock_platform and
//! packages (name -> .conda path).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut lock_platform: Option<String> = None;
    let mut cargo_shim: Option<PathBuf> = None;
    let (mut python, mut wheel, mut sdist) = (false, false, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lock-platform" => lock_platform = args.next(),
            "--cargo-shim" => cargo_shim = args.next().map(PathBuf::from),
            "--python" => python = true,
            "--wheel" => wheel = true,
            "--sdist" => sdist = true,
            "-h" | "--help" => {
                println!(
                    "usage: make_test_env DIR [--lock-platform PLATFORM] [--cargo-shim REAL_CARGO]"
                );
                return ExitCode::SUCCESS;
            }
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(arg.into()),
            _ => {
                eprintln!("make_test_env: unexpected argument {arg:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: make_test_env DIR [--lock-platform PLATFORM] [--cargo-shim REAL_CARGO]");
        return ExitCode::from(2);
    };
    std::fs::create_dir_all(&dir).expect("the directory can be created");
    let dir = dir.canonicalize().expect("the directory exists");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let channel = dir.join("channel");
    let files = common::write_fixture_with(
        scratch.path(),
        &channel,
        &dir,
        common::Extras {
            lock_platform: lock_platform.as_deref(),
            cargo_shim: cargo_shim.as_deref(),
            python,
            wheel,
            sdist,
        },
    );
    let packages: serde_json::Map<String, serde_json::Value> = files
        .packages
        .iter()
        .map(|(name, path)| (name.clone(), path.display().to_string().into()))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "project": dir.display().to_string(),
            "channel": channel.display().to_string(),
            "platform": files.platform,
            "lock_platform": files.lock_platform,
            "packages": packages,
        })
    );
    ExitCode::SUCCESS
}
