//! PyPI packages of a pixi lock: a real pure-Python wheel (built by the
//! fixture) is packed with the conda packages, verified against the lock,
//! and installed at unpack with the environment's own Python and no index,
//! so it imports and its console script runs; a tampered wheel and a
//! source distribution are refused with errors that name them.
//!
//! The environment's `python` is the fixture's `python` conda package: a
//! copy of this machine's own interpreter with a `pyvenv.cfg` beside its
//! `bin/` (so `sys.prefix` and site-packages are the unpacked prefix's),
//! standing in for conda-forge's python, which the tests cannot download.

mod common;

use std::process::Command;

use common::*;
use slurmbook_pack::{pack_native, unpack, PackError, PixiProject};

fn fixture_with(extras: Extras<'_>) -> (tempfile::TempDir, PixiProject, FixtureFiles) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let project_dir = root.join("project");
    let files = write_fixture_with(&root, &root.join("channel"), &project_dir, extras);
    let project = PixiProject::find(&project_dir).unwrap();
    (dir, project, files)
}

#[test]
fn a_wheel_is_packed_verified_and_installed_with_the_environments_python() {
    let (dir, project, files) = fixture_with(Extras {
        python: true,
        wheel: true,
        ..Extras::default()
    });
    let out = dir.path().join("out");
    let report = pack_native(&project, "default", &files.platform, &out).unwrap();
    let entries = tar_entries(&report.archive);
    assert!(
        entries.contains(&"pypi/slurmbook_greeting-1.0-py3-none-any.whl".to_string()),
        "{entries:?}"
    );
    let manifest: slurmbook_pack::Manifest = serde_json::from_slice(
        &std::fs::read(out.join(format!("slurmbook-env-{}.json", report.key))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.pypi.len(), 1);
    assert_eq!(manifest.pypi[0].name, "slurmbook-greeting");
    let wheel = &files
        .packages
        .iter()
        .find(|(n, _)| n == "slurmbook-greeting")
        .unwrap()
        .1;
    assert_eq!(
        manifest.pypi[0].sha256,
        sha256_hex(&std::fs::read(wheel).unwrap())
    );

    let prefix = dir.path().join("cluster/envs").join(&report.key);
    let unpacked = unpack(&report.archive, &prefix).unwrap();
    assert!(!unpacked.already);
    let python = prefix.join("bin/python");
    let run = Command::new(&python)
        .args([
            "-c",
            &format!("import sys, {WHEEL_MODULE} as m; print(m.greet()); print(sys.prefix)"),
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8_lossy(&run.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(WHEEL_GREETING));
    assert_eq!(
        lines.next().map(std::path::PathBuf::from),
        Some(prefix.clone()),
        "the environment's own site-packages"
    );
    // Installed as a distribution (by slurmbook's installer: no pip in
    // this environment), with its console script.
    let script = prefix.join("bin/slurmbook-greeting");
    let ran = Command::new(&script).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), WHEEL_GREETING);
    let meta = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; d = m.distribution('slurmbook-greeting'); print(d.version, d.read_text('INSTALLER').strip())",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&meta.stdout).trim(),
        "1.0 slurmbook"
    );
    // Ready only now, and a second unpack does nothing.
    assert!(slurmbook_pack::is_ready(&prefix));
    assert!(unpack(&report.archive, &prefix).unwrap().already);
}

#[test]
fn a_tampered_wheel_is_a_checksum_error() {
    let (dir, project, files) = fixture_with(Extras {
        python: true,
        wheel: true,
        ..Extras::default()
    });
    let wheel = &files
        .packages
        .iter()
        .find(|(n, _)| n == "slurmbook-greeting")
        .unwrap()
        .1;
    let mut bytes = std::fs::read(wheel).unwrap();
    bytes.push(b'\n');
    std::fs::write(wheel, bytes).unwrap();
    let err = pack_native(
        &project,
        "default",
        &files.platform,
        &dir.path().join("out"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PackError::ChecksumMismatch { package, .. } if package == "slurmbook_greeting-1.0-py3-none-any.whl"),
        "{err}"
    );
}

#[test]
fn a_source_distribution_is_refused_naming_it_and_the_way_out() {
    let (dir, project, files) = fixture_with(Extras {
        python: true,
        sdist: true,
        ..Extras::default()
    });
    let err = pack_native(
        &project,
        "default",
        &files.platform,
        &dir.path().join("out"),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PackError::PypiNotWheel { .. }), "{text}");
    assert!(
        text.contains("PyPI package `slurmbook-sdist`")
            && text.contains("is a source distribution")
            && text.contains("slurmbook_sdist-1.0.tar.gz")
            && text.contains("`pixi build` or `rattler-build`"),
        "{text}"
    );
}
