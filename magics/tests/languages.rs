//! Python and bash assets in a project: dependencies inferred from their
//! code with the Python parser and the shell scanner (explicit `--deps`
//! too), their language in their versions, and the pixi lock's digest of
//! their environment in every asset's version (Rust assets too) under
//! `env:<name>`, with a lock change read as "environment changed".

use std::path::{Path, PathBuf};

use slurmbook_magics::{load_project, EdgeKind, Project, SessionOverrides};

fn notebook(dir: &Path, cells: &[&str]) -> PathBuf {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|s| serde_json::json!({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null, "source": s}))
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let path = dir.join("lang.ipynb");
    std::fs::write(&path, nb.to_string()).unwrap();
    path
}

const CELLS: &[&str] = &[
    "%%asset raw: Vec<i64> --lang python\nimport math\nsquares = [i * i for i in range(5)]\nsquares",
    "%%asset stats\nraw.iter().sum::<i64>()",
    "%%asset files --lang bash\n# $raw in a comment is no use\nfor x in 1 2; do echo \"$x\"; done > \"$OUT/n\"\necho \"${stats}\" '$raw'",
    // `raw` bound locally first, `stats` read inside a function, `files`
    // only in a string: one dependency (stats) and one explicit.
    "%%asset summary --lang python --deps files\nraw = 1\ndef f():\n    return stats + raw\n{'n': f(), 'text': 'files'}",
];

fn deps(p: &Project, name: &str) -> Vec<(String, EdgeKind)> {
    let mut d: Vec<(String, EdgeKind)> = p
        .graph
        .dependencies(name)
        .into_iter()
        .map(|(n, k)| (n.to_string(), k))
        .collect();
    d.sort_by(|a, b| a.0.cmp(&b.0));
    d
}

#[test]
fn python_and_shell_dependencies_are_inferred_from_their_code() {
    let dir = tempfile::tempdir().unwrap();
    let p = load_project(notebook(dir.path(), CELLS), &SessionOverrides::new()).unwrap();
    assert_eq!(deps(&p, "raw"), vec![]);
    assert_eq!(deps(&p, "stats"), vec![("raw".into(), EdgeKind::Data)]);
    assert_eq!(deps(&p, "files"), vec![("stats".into(), EdgeKind::Data)]);
    let summary = deps(&p, "summary");
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert_eq!(summary[1], ("stats".into(), EdgeKind::Data));
    assert_eq!(summary[0].0, "files");
    assert_ne!(summary[0].1, EdgeKind::Data, "--deps is order only");
    // Without a pixi project, versions have no environment entry.
    assert!(p.versions.get("raw").unwrap().environment().is_none());
}

#[test]
fn a_python_syntax_error_is_an_error_of_the_asset_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_project(
        notebook(dir.path(), &["%%asset raw --lang python\nx = [1,\ny = 2"]),
        &SessionOverrides::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Python syntax error"), "{err}");
    assert!(err.contains("raw"), "{err}");
}

#[test]
fn the_language_is_part_of_the_code_version() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_project(
        notebook(dir.path(), &["%%asset x --lang python\nprint(1)"]),
        &SessionOverrides::new(),
    )
    .unwrap();
    let b = load_project(
        notebook(dir.path(), &["%%asset x --lang bash\nprint(1)"]),
        &SessionOverrides::new(),
    )
    .unwrap();
    assert_ne!(
        a.versions.get("x").unwrap().own_hash,
        b.versions.get("x").unwrap().own_hash
    );
}

/// A pixi project of two environments whose lock is written by rattler_lock.
fn pixi_project(dir: &Path, default_md5: &str) {
    std::fs::write(
        dir.join("pixi.toml"),
        "[workspace]\nname = \"x\"\nchannels = []\nplatforms = [\"linux-64\"]\n",
    )
    .unwrap();
    let url =
        |n: &str| format!("https://conda.anaconda.org/conda-forge/linux-64/{n}-1.0-h0_0.conda");
    let package = |n: &str, md5: &str| {
        format!(
            "- conda: {}\n  subdir: linux-64\n  sha256: {}\n  md5: {md5}\n",
            url(n),
            "0".repeat(64)
        )
    };
    let env = |e: &str, n: &str| {
        format!(
            "  {e}:\n    channels:\n    - url: https://conda.anaconda.org/conda-forge/\n    packages:\n      linux-64:\n      - conda: {}\n",
            url(n)
        )
    };
    let lock = format!(
        "version: 6\nenvironments:\n{}{}packages:\n{}{}",
        env("default", "a"),
        env("gpu", "b"),
        package("a", default_md5),
        package("b", "cccccccccccccccccccccccccccccccc")
    );
    std::fs::write(dir.join("pixi.lock"), lock).unwrap();
}

#[test]
fn the_lock_digest_of_each_assets_environment_is_in_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let cells = &[
        "%%asset a: i64\n1",
        "%%asset b --lang python --env gpu\n2",
        "%%asset c\na + 1",
    ];
    pixi_project(dir.path(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let nb = notebook(dir.path(), cells);
    let pixi = slurmbook_pack::PixiProject::find(dir.path()).expect("a pixi project");
    let digests = pixi.environment_digests().unwrap();
    assert_eq!(digests.len(), 2, "{digests:?}");
    let before = load_project(&nb, &SessionOverrides::new()).unwrap();
    let env_of = |p: &Project, n: &str| {
        p.versions
            .get(n)
            .unwrap()
            .environment()
            .map(|(e, d)| (e.to_string(), d.to_string()))
    };
    let (env, digest) = env_of(&before, "a").expect("a Rust asset has its environment too");
    assert_eq!(env, "default");
    assert_eq!(env_of(&before, "b").unwrap().0, "gpu");
    // Only the default environment's packages change.
    pixi_project(dir.path(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    let after = load_project(&nb, &SessionOverrides::new()).unwrap();
    assert_ne!(env_of(&after, "a").unwrap().1, digest);
    assert_eq!(env_of(&after, "b"), env_of(&before, "b"));
    for (name, changed) in [("a", true), ("b", false), ("c", true)] {
        let old = before.versions.get(name).unwrap();
        let new = after.versions.get(name).unwrap();
        assert_eq!(old.version != new.version, changed, "{name}");
        assert_eq!(old.own_hash, new.own_hash, "the code did not change");
    }
}
