//! The test fixture: a local conda channel and a pixi project locking it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rattler_conda_types::{
    compression_level::CompressionLevel, package::DistArchiveIdentifier, Channel, RepoData,
    RepoDataRecord, Subdir,
};
use rattler_lock::{CondaBinaryData, LockFile, PlatformData, PlatformName};
use slurmbook_pack::PixiProject;

pub const PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub project: PixiProject,
    /// The package files of the channel, by package name.
    pub packages: Vec<(String, PathBuf)>,
    pub platform: String,
}

/// One file of a package: path inside the prefix, bytes, executable, text with
/// the prefix placeholder.
pub struct PkgFile {
    pub path: &'static str,
    pub bytes: Vec<u8>,
    pub executable: bool,
    pub placeholder: bool,
}

pub fn file(path: &'static str, bytes: impl Into<Vec<u8>>) -> PkgFile {
    PkgFile {
        path,
        bytes: bytes.into(),
        executable: false,
        placeholder: false,
    }
}

pub fn cc(args: &[&str], cwd: &Path) {
    let status = Command::new("cc")
        .args(args)
        .current_dir(cwd)
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc {args:?} failed");
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(bytes))
}

/// Writes `name-version-build.conda` into `channel/subdir` with `files` plus
/// `info/index.json` and `info/paths.json`.
pub fn make_package(
    work: &Path,
    channel: &Path,
    name: &str,
    subdir: &str,
    depends: &[&str],
    files: Vec<PkgFile>,
) -> PathBuf {
    let base = work.join(name);
    let mut paths = Vec::new();
    let mut entries = Vec::new();
    for f in &files {
        let path = base.join(f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.bytes).unwrap();
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut entry = serde_json::json!({
            "_path": f.path,
            "path_type": "hardlink",
            "sha256": sha256_hex(&f.bytes),
            "size_in_bytes": f.bytes.len(),
        });
        if f.placeholder {
            entry["prefix_placeholder"] = PLACEHOLDER.into();
            entry["file_mode"] = "text".into();
        }
        entries.push(entry);
        paths.push(path);
    }
    let noarch = subdir == "noarch";
    let mut index = serde_json::json!({
        "name": name,
        "version": "1.0",
        "build": "h0_0",
        "build_number": 0,
        "subdir": subdir,
        "depends": depends,
        "license": "MIT",
    });
    if noarch {
        index["noarch"] = "generic".into();
    }
    let info = base.join("info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(info.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        info.join("paths.json"),
        serde_json::json!({"paths_version": 1, "paths": entries}).to_string(),
    )
    .unwrap();
    paths.push(info.join("index.json"));
    paths.push(info.join("paths.json"));

    let out_dir = channel.join(subdir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = format!("{name}-1.0-h0_0");
    let out = out_dir.join(format!("{stem}.conda"));
    rattler_package_streaming::write::write_conda_package(
        std::fs::File::create(&out).unwrap(),
        &base,
        &paths,
        CompressionLevel::Default,
        None,
        &stem,
        None,
        None,
    )
    .unwrap();
    out
}

/// A local channel of three packages, indexed with rattler_index, and a pixi
/// project whose lock file (written with rattler_lock) locks them for the
/// current platform, by `file:` URL and sha256.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let project_dir = root.join("project");
    std::fs::create_dir_all(project_dir.join("notebooks/deep")).unwrap();
    let files = write_fixture(&root, &root.join("channel"), &project_dir, None, None);
    let project = PixiProject::find(&project_dir.join("notebooks/deep")).expect("project found");
    assert_eq!(project.root, project_dir);
    Fixture {
        _dir: dir,
        root,
        project,
        packages: files.packages,
        platform: files.platform,
    }
}

/// What [`write_fixture`] wrote.
pub struct FixtureFiles {
    /// The package files of the channel, by package name.
    pub packages: Vec<(String, PathBuf)>,
    /// The current platform (the packages' subdir).
    pub platform: String,
    /// The platform the lock file names (`lock_platform`, else `platform`).
    pub lock_platform: String,
}

/// What the fixture adds for Python and PyPI tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The platform the lock names (default: the current one).
    pub lock_platform: Option<&'a str>,
    /// A `cargo-shim` package running this cargo.
    pub cargo_shim: Option<&'a Path>,
    /// A `python` package: `bin/python` is a copy of this machine's own
    /// interpreter with a `pyvenv.cfg` beside `bin/` (so its `sys.prefix`,
    /// and site-packages, are the environment's), standing in for
    /// conda-forge's python.
    pub python: bool,
    /// A real pure-Python wheel built here (`slurmbook_greeting`, with a
    /// console script), locked as a PyPI package by `file:` URL and sha256.
    pub wheel: bool,
    /// A source distribution locked as a PyPI package (which slurmbook
    /// refuses to pack).
    pub sdist: bool,
}

/// The Python module inside the fixture's wheel.
pub const WHEEL_MODULE: &str = "slurmbook_greeting";
/// What `slurmbook_greeting.greet()` returns.
pub const WHEEL_GREETING: &str = "hello from a wheel";

/// Builds the three packages (compiling libgreet and greet with `cc` in
/// `scratch/src`, staging packages in `scratch/build`) into the local
/// `channel`, indexes it, and writes `project_dir/pixi.toml` and
/// `project_dir/pixi.lock` locking them. The lock names the current platform,
/// or `lock_platform` when given (a lock that lacks the current platform).
/// With `cargo_shim`, a fourth package `cargo-shim` has a `bin/cargo` that
/// notes its use in `$CONDA_PREFIX/cargo-shim.log` and runs that cargo (a
/// stand-in for a packed Rust toolchain).
pub fn write_fixture(
    scratch: &Path,
    channel: &Path,
    project_dir: &Path,
    lock_platform: Option<&str>,
    cargo_shim: Option<&Path>,
) -> FixtureFiles {
    write_fixture_with(
        scratch,
        channel,
        project_dir,
        Extras {
            lock_platform,
            cargo_shim,
            ..Extras::default()
        },
    )
}

/// The real interpreter behind `python3` on PATH, and its directory.
fn real_python() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "python3 -c failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Writes `dir/<name>` (a zip made by python3's zipfile) with `files`.
fn zip_with_python(dir: &Path, name: &str, files: &[(&str, String)]) -> PathBuf {
    let path = dir.join(name);
    let spec: Vec<(String, String)> = files
        .iter()
        .map(|(n, c)| (n.to_string(), c.clone()))
        .collect();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    for n, c in json.loads(sys.argv[2]):\n        z.writestr(n, c)",
        ])
        .arg(&path)
        .arg(serde_json::to_string(&spec).unwrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// The fixture's wheel: `slurmbook_greeting-1.0-py3-none-any.whl`.
fn make_wheel(dir: &Path) -> PathBuf {
    let info = "slurmbook_greeting-1.0.dist-info";
    zip_with_python(
        dir,
        "slurmbook_greeting-1.0-py3-none-any.whl",
        &[
            (
                "slurmbook_greeting/__init__.py",
                format!("def greet():\n    return {WHEEL_GREETING:?}\n\ndef main():\n    print(greet())\n"),
            ),
            (&format!("{info}/METADATA"), "Metadata-Version: 2.1\nName: slurmbook-greeting\nVersion: 1.0\n".into()),
            (&format!("{info}/WHEEL"), "Wheel-Version: 1.0\nGenerator: slurmbook-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n".into()),
            (&format!("{info}/entry_points.txt"), "[console_scripts]\nslurmbook-greeting = slurmbook_greeting:main\n".into()),
            (&format!("{info}/RECORD"), String::new()),
        ],
    )
}

/// Locks a PyPI file (`location`, its bytes' sha256) in `builder`.
fn lock_pypi(
    builder: rattler_lock::LockFileBuilder,
    platform: &str,
    name: &str,
    file: &Path,
) -> rattler_lock::LockFileBuilder {
    use std::str::FromStr;
    let bytes = std::fs::read(file).unwrap();
    let sha = rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(&bytes);
    let url = url::Url::from_file_path(file).unwrap();
    let data = rattler_lock::PypiDistributionData {
        name: pep508_rs::PackageName::from_str(name).unwrap(),
        version: pep440_rs::Version::from_str("1.0").unwrap(),
        location: rattler_lock::Verbatim::new(rattler_lock::UrlOrPath::Url(url)),
        index_url: None,
        hash: Some(rattler_lock::PackageHashes::Sha256(sha)),
        requires_dist: Vec::new(),
        requires_python: None,
    };
    builder
        .with_pypi_package("default", platform, data.into())
        .unwrap()
}

/// [`write_fixture`] with [`Extras`].
pub fn write_fixture_with(
    scratch: &Path,
    channel: &Path,
    project_dir: &Path,
    extras: Extras<'_>,
) -> FixtureFiles {
    let Extras {
        lock_platform,
        cargo_shim,
        ..
    } = extras;
    let work = scratch.join("build");
    let subdir = Subdir::current().expect("a known platform");
    let platform = subdir.as_str().to_string();

    // libgreet: a shared library, compiled now.
    let src = scratch.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("greet.c"),
        "const char *greet(void) { return \"hello from libgreet\"; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("main.c"),
        "#include <stdio.h>\nconst char *greet(void);\nint main(void) { puts(greet()); return 0; }\n",
    )
    .unwrap();
    cc(&["-shared", "-fPIC", "-o", "libgreet.so", "greet.c"], &src);
    // greet: an executable linked against libgreet without an rpath, so it
    // only finds the library through LD_LIBRARY_PATH.
    cc(&["-o", "greet", "main.c", "-L.", "-lgreet"], &src);
    let read = |name: &str| std::fs::read(src.join(name)).unwrap();

    let libgreet = make_package(
        &work,
        channel,
        "libgreet",
        &platform,
        &[],
        vec![file("lib/libgreet.so", read("libgreet.so"))],
    );
    let greet = make_package(
        &work,
        channel,
        "greet-bin",
        &platform,
        &["libgreet"],
        vec![PkgFile {
            executable: true,
            ..file("bin/greet", read("greet"))
        }],
    );
    // hello-tool: a noarch shell script whose text has the prefix placeholder,
    // and an activate.d script.
    let hello = make_package(
        &work,
        channel,
        "hello-tool",
        "noarch",
        &[],
        vec![
            PkgFile {
                executable: true,
                placeholder: true,
                ..file(
                    "bin/hello-tool",
                    format!("#!/bin/sh\ncat \"{PLACEHOLDER}/share/hello-tool/greeting.txt\"\n"),
                )
            },
            file("share/hello-tool/greeting.txt", "hello from hello-tool\n"),
            file(
                "etc/conda/activate.d/hello-tool.sh",
                "export HELLO_TOOL_ACTIVATED=yes\n",
            ),
        ],
    );

    let shim = cargo_shim.map(|real| {
        make_package(
            &work,
            channel,
            "cargo-shim",
            "noarch",
            &[],
            vec![PkgFile {
                executable: true,
                ..file(
                    "bin/cargo",
                    format!(
                        "#!/bin/sh\necho \"cargo $*\" >> \"$CONDA_PREFIX/cargo-shim.log\"\nexec '{}' \"$@\"\n",
                        real.display()
                    ),
                )
            }],
        )
    });

    let python = extras.python.then(|| {
        let real = real_python();
        let home = real.parent().unwrap().display().to_string();
        make_package(
            &work,
            channel,
            "python",
            &platform,
            &[],
            vec![
                PkgFile {
                    executable: true,
                    ..file("bin/python", std::fs::read(&real).unwrap())
                },
                file(
                    "pyvenv.cfg",
                    format!("home = {home}\ninclude-system-site-packages = false\n"),
                ),
            ],
        )
    });

    slurmbook_pack::index_channel(channel, subdir).unwrap();

    let channel_url = url::Url::from_directory_path(channel).unwrap();
    let conda_channel = Channel::from_url(channel_url.clone());
    let mut records: Vec<RepoDataRecord> = Vec::new();
    for sub in [platform.as_str(), "noarch"] {
        let repodata = RepoData::from_path(channel.join(sub).join("repodata.json")).unwrap();
        records.extend(repodata.into_repo_data_records(&conda_channel));
    }
    assert_eq!(
        records.len(),
        3 + usize::from(shim.is_some()) + usize::from(python.is_some()),
        "the index lists the packages"
    );

    let lock_platform = lock_platform.unwrap_or(&platform).to_string();
    let lock_subdir: Subdir = if lock_platform == platform {
        subdir
    } else {
        lock_platform.parse().expect("a known lock platform")
    };
    let mut builder = LockFile::builder()
        .with_platforms(vec![PlatformData {
            name: PlatformName::try_from(lock_platform.as_str()).unwrap(),
            subdir: lock_subdir,
            virtual_packages: Vec::new(),
        }])
        .unwrap()
        .with_channels(
            "default",
            [rattler_lock::Channel::from(channel_url.to_string())],
        );
    for record in records {
        assert!(record.package_record.sha256.is_some());
        let file_name: DistArchiveIdentifier = record.identifier.clone();
        builder = builder
            .with_conda_package(
                "default",
                &lock_platform,
                CondaBinaryData {
                    package_record: record.package_record,
                    location: record.url.into(),
                    file_name,
                    channel: None,
                }
                .into(),
            )
            .unwrap();
    }
    let pypi_dir = channel.parent().unwrap_or(channel).join("pypi");
    std::fs::create_dir_all(&pypi_dir).unwrap();
    let mut pypi_deps = String::new();
    let mut pypi_files = Vec::new();
    if extras.wheel {
        let wheel = make_wheel(&pypi_dir);
        builder = lock_pypi(builder, &lock_platform, "slurmbook-greeting", &wheel);
        pypi_deps.push_str("slurmbook-greeting = \"*\"\n");
        pypi_files.push(("slurmbook-greeting".to_string(), wheel));
    }
    if extras.sdist {
        let sdist = pypi_dir.join("slurmbook_sdist-1.0.tar.gz");
        std::fs::write(&sdist, b"not really a tarball").unwrap();
        builder = lock_pypi(builder, &lock_platform, "slurmbook-sdist", &sdist);
        pypi_deps.push_str("slurmbook-sdist = \"*\"\n");
        pypi_files.push(("slurmbook-sdist".to_string(), sdist));
    }
    if !pypi_deps.is_empty() {
        pypi_deps = format!("\n[pypi-dependencies]\n{pypi_deps}");
    }
    std::fs::create_dir_all(project_dir).unwrap();
    std::fs::write(
        project_dir.join("pixi.toml"),
        format!(
            "[workspace]\nname = \"fixture\"\nchannels = [\"{channel_url}\"]\nplatforms = [\"{lock_platform}\"]\n\n\
             [dependencies]\nhello-tool = \"*\"\ngreet-bin = \"*\"\n{}{}{pypi_deps}",
            if shim.is_some() {
                "cargo-shim = \"*\"\n"
            } else {
                ""
            },
            if python.is_some() {
                "python = \"*\"\n"
            } else {
                ""
            }
        ),
    )
    .unwrap();
    builder
        .finish()
        .to_path(&project_dir.join("pixi.lock"))
        .unwrap();

    let mut packages = vec![
        ("libgreet".into(), libgreet),
        ("greet-bin".into(), greet),
        ("hello-tool".into(), hello),
    ];
    packages.extend(shim.map(|p| ("cargo-shim".to_string(), p)));
    packages.extend(python.map(|p| ("python".to_string(), p)));
    packages.extend(pypi_files);
    FixtureFiles {
        packages,
        platform,
        lock_platform,
    }
}

pub fn tar_entries(archive: &Path) -> Vec<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    tar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

pub fn sh(script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("CONDA_PREFIX")
        .output()
        .unwrap()
}
