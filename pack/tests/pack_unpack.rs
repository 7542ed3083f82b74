//! Packs a pixi environment of a local conda channel built in the test, and
//! unpacks it: the packaged tool and library work after activation, a second
//! unpack is a no-op, tampered packages and missing platforms are typed
//! errors, and concurrent unpacks install once.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::*;
use slurmbook_pack::{
    activation_script_path, pack_native, remote_prefix, unpack, Manifest, PackError, PixiProject,
    MANIFEST_NAME,
};

#[test]
fn pack_then_unpack_runs_the_tool_and_finds_the_library() {
    let fx = fixture();
    let out = fx.root.join("out");

    let started = Instant::now();
    let report = pack_native(&fx.project, "default", &fx.platform, &out).unwrap();
    let pack_time = started.elapsed();
    eprintln!(
        "pack: {} packages, {} bytes, {:?}: {}",
        report.packages,
        report.bytes,
        pack_time,
        report.archive.display()
    );
    assert!(report.archive.is_file());
    assert_eq!(
        report.bytes,
        std::fs::metadata(&report.archive).unwrap().len()
    );
    assert_eq!(report.packages, 3);
    assert!(!report.reused);
    assert_eq!(
        report.key,
        fx.project.cache_key("default", &fx.platform).unwrap()
    );
    assert_eq!(report.packed_with, slurmbook_pack::PackedWith::Native);

    // The archive: manifest + an indexed local channel with the packages.
    let entries = tar_entries(&report.archive);
    for expected in [
        MANIFEST_NAME.to_string(),
        "channel/noarch/repodata.json".to_string(),
        format!("channel/{}/repodata.json", fx.platform),
        "channel/noarch/hello-tool-1.0-h0_0.conda".to_string(),
        format!("channel/{}/libgreet-1.0-h0_0.conda", fx.platform),
        format!("channel/{}/greet-bin-1.0-h0_0.conda", fx.platform),
    ] {
        assert!(entries.contains(&expected), "{expected} in {entries:?}");
    }
    let mut tar = tar::Archive::new(std::fs::File::open(&report.archive).unwrap());
    let manifest: Manifest = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == MANIFEST_NAME)
        .map(|e| serde_json::from_reader(e).unwrap())
        .unwrap();
    assert_eq!(manifest.environment, "default");
    assert_eq!(manifest.platform, fx.platform);
    assert_eq!(manifest.key, report.key);
    let mut names: Vec<_> = manifest.packages.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["greet-bin", "hello-tool", "libgreet"]);
    for (name, path) in &fx.packages {
        let p = manifest.packages.iter().find(|p| &p.name == name).unwrap();
        assert_eq!(
            p.sha256,
            sha256_hex(&std::fs::read(path).unwrap()),
            "{name}"
        );
        assert!(p.md5.is_some());
    }

    // Packing again reuses the archive.
    let again = pack_native(&fx.project, "default", &fx.platform, &out).unwrap();
    assert!(again.reused);
    assert_eq!(again.archive, report.archive);

    // Unpack where the cluster would.
    let prefix = remote_prefix(&fx.root.join("remote"), &report.key);
    let started = Instant::now();
    let unpacked = unpack(&report.archive, &prefix).unwrap();
    eprintln!("unpack: {:?}", started.elapsed());
    assert!(!unpacked.already);
    assert_eq!(unpacked.packages, 3);
    assert_eq!(unpacked.activation_script, activation_script_path(&prefix));
    assert!(unpacked.activation_script.is_file());
    assert!(prefix.join("conda-meta/libgreet-1.0-h0_0.json").is_file());
    // No leftovers beside the prefix.
    let envs = prefix.parent().unwrap();
    let mut left: Vec<String> = std::fs::read_dir(envs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [format!(".{}.lock", report.key), report.key.clone()]);

    // The tool runs after activation; its placeholder was patched for the
    // final prefix (it was installed elsewhere and renamed).
    let script = activation_script_path(&prefix);
    let out = sh(&format!(
        ". '{}' && hello-tool && greet && echo \"activated=$HELLO_TOOL_ACTIVATED prefix=$CONDA_PREFIX\"",
        script.display()
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "activation failed: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&script).unwrap()
    );
    assert!(stdout.contains("hello from hello-tool"), "{stdout}");
    assert!(stdout.contains("hello from libgreet"), "{stdout}");
    assert!(stdout.contains("activated=yes"), "{stdout}");
    assert!(
        stdout.contains(&format!("prefix={}", prefix.display())),
        "{stdout}"
    );
    let patched = std::fs::read_to_string(prefix.join("bin/hello-tool")).unwrap();
    assert!(patched.contains(&prefix.display().to_string()), "{patched}");

    // Without activation the executable does not find its library.
    let out = sh(&format!("'{}'", prefix.join("bin/greet").display()));
    assert!(!out.status.success(), "greet ran without LD_LIBRARY_PATH");

    // A second unpack is a no-op.
    let second = unpack(&report.archive, &prefix).unwrap();
    assert!(second.already);
    assert_eq!(second.packages, 0);
}

#[test]
fn a_tampered_package_fails_pack_with_a_checksum_error_naming_it() {
    let fx = fixture();
    let (_, greet) = fx.packages.iter().find(|(n, _)| n == "greet-bin").unwrap();
    let mut bytes = std::fs::read(greet).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(greet, bytes).unwrap();

    let err = pack_native(&fx.project, "default", &fx.platform, &fx.root.join("out")).unwrap_err();
    match &err {
        PackError::ChecksumMismatch {
            package, algorithm, ..
        } => {
            assert_eq!(package, "greet-bin-1.0-h0_0.conda");
            assert_eq!(*algorithm, "sha256");
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(
        err.to_string().contains("greet-bin-1.0-h0_0.conda"),
        "{err}"
    );
    // Nothing half-made is left for a later pack to reuse.
    let left: Vec<_> = std::fs::read_dir(fx.root.join("out")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn missing_lock_environment_and_platform_are_typed_errors() {
    let fx = fixture();
    let out = fx.root.join("out");
    let other = if fx.platform == "osx-arm64" {
        "linux-64"
    } else {
        "osx-arm64"
    };

    let err = pack_native(&fx.project, "default", other, &out).unwrap_err();
    assert!(
        matches!(&err, PackError::PlatformNotInLock { platform, available, .. }
            if platform == other && available == &fx.platform),
        "{err:?}"
    );
    assert!(err.to_string().contains(other), "{err}");

    let err = pack_native(&fx.project, "gpu", &fx.platform, &out).unwrap_err();
    assert!(
        matches!(&err, PackError::EnvironmentNotInLock { environment, available, .. }
            if environment == "gpu" && available == "default"),
        "{err:?}"
    );

    // Cache keys differ by environment and platform, and are stable.
    let key = fx.project.cache_key("default", &fx.platform).unwrap();
    assert_eq!(key, fx.project.cache_key("default", &fx.platform).unwrap());
    assert_ne!(key, fx.project.cache_key("gpu", &fx.platform).unwrap());
    assert_ne!(key, fx.project.cache_key("default", other).unwrap());
    assert_eq!(key.len(), 16);

    std::fs::remove_file(&fx.project.lock).unwrap();
    let err = pack_native(&fx.project, "default", &fx.platform, &out).unwrap_err();
    assert!(matches!(err, PackError::MissingLock(_)), "{err:?}");
    assert!(matches!(
        fx.project.cache_key("default", &fx.platform),
        Err(PackError::MissingLock(_))
    ));

    // No pixi.toml anywhere above: no project.
    assert_eq!(PixiProject::find(&fx.root.join("build")), None);
}

#[test]
fn a_broken_archive_is_an_unpack_error_and_leftovers_are_cleaned() {
    let fx = fixture();
    let report = pack_native(&fx.project, "default", &fx.platform, &fx.root.join("out")).unwrap();
    let envs = fx.root.join("remote/envs");
    let prefix = envs.join(&report.key);

    let junk = fx.root.join("junk.tar");
    std::fs::write(&junk, b"this is not a tar file at all").unwrap();
    let err = unpack(&junk, &prefix).unwrap_err();
    assert!(matches!(err, PackError::BadArchive { .. }), "{err:?}");
    assert!(!prefix.exists());

    // Leftovers of an interrupted unpack (a prefix without a ready marker and
    // a staging directory) are removed, and the unpack succeeds.
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(envs.join(format!(".{}.tmp-999999", report.key))).unwrap();
    let unpacked = unpack(&report.archive, &prefix).unwrap();
    assert!(!unpacked.already);
    assert!(!envs.join(format!(".{}.tmp-999999", report.key)).exists());
    assert!(prefix.join("bin/hello-tool").is_file());
}

#[test]
fn concurrent_unpacks_install_once() {
    let fx = fixture();
    let report = pack_native(&fx.project, "default", &fx.platform, &fx.root.join("out")).unwrap();

    // Two slurmbook-env processes.
    let prefix = remote_prefix(&fx.root.join("remote"), &report.key);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_slurmbook-env"))
            .args(["unpack", "--archive"])
            .arg(&report.archive)
            .arg("--prefix")
            .arg(&prefix)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn(), spawn()];
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut lines = Vec::new();
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("already unpacked: {}", prefix.display()),
            format!("unpacked 3 packages into {}", prefix.display()),
        ]
    );

    // Four threads in one process.
    let prefix = fx.root.join("remote2/envs").join(&report.key);
    let reports: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| unpack(&report.archive, &prefix)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(reports.iter().filter(|r| !r.already).count(), 1);
    assert_eq!(reports.iter().filter(|r| r.already).count(), 3);
    let out = sh(&format!(
        ". '{}' && hello-tool",
        activation_script_path(&prefix).display()
    ));
    assert!(out.status.success());
}

/// Serves files below `root` over plain HTTP/1.1 on 127.0.0.1 (one request
/// per connection) until the test process ends; returns the base URL.
fn serve_http(root: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let file = root.join(path.trim_start_matches('/'));
            let response = match std::fs::read(&file) {
                Ok(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                Err(_) => {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                }
            };
            let _ = stream.write_all(&response);
        }
    });
    base
}

#[test]
fn packs_from_an_http_channel_and_names_a_missing_package() {
    let fx = fixture();
    let channel = fx.root.join("channel");
    let base = serve_http(channel.clone());
    // rattler_lock writes `file:` locations as plain paths.
    let local = format!("conda: {}/", channel.display());
    let lock = std::fs::read_to_string(&fx.project.lock).unwrap();
    assert_eq!(lock.matches(&local).count(), 6, "{lock}");
    let lock = lock.replace(&local, &format!("conda: {base}"));
    std::fs::write(&fx.project.lock, lock).unwrap();

    let report = pack_native(&fx.project, "default", &fx.platform, &fx.root.join("out")).unwrap();
    assert_eq!(report.packages, 3);
    let prefix = fx.root.join("remote/envs").join(&report.key);
    assert!(!unpack(&report.archive, &prefix).unwrap().already);
    let out = sh(&format!(
        ". '{}' && hello-tool",
        activation_script_path(&prefix).display()
    ));
    assert!(out.status.success());

    // The server answers 404 for a package that is gone.
    let (_, hello) = fx.packages.iter().find(|(n, _)| n == "hello-tool").unwrap();
    std::fs::remove_file(hello).unwrap();
    std::fs::write(
        &fx.project.lock,
        format!("{}\n", std::fs::read_to_string(&fx.project.lock).unwrap()),
    )
    .unwrap();
    let err = pack_native(&fx.project, "default", &fx.platform, &fx.root.join("out2")).unwrap_err();
    match &err {
        PackError::Fetch { package, url, .. } => {
            assert_eq!(package, "hello-tool-1.0-h0_0.conda");
            assert!(url.starts_with(&base), "{url}");
        }
        other => panic!("expected a fetch error, got {other:?}"),
    }
}
