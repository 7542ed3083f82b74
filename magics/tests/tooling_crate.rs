//! The notebook as a crate, built and run by real cargo (offline: the
//! dependencies come from the local registry cache): `export` of the
//! quickstart notebook builds and tests with no slurmbook, `lint` names the
//! cell and line of a clippy warning, `test` passes and fails with the checks.

use slurmbook_magics::run::Workspace;
use slurmbook_magics::tooling::{self, export, lint, test};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg(args[0])
        .arg("--offline")
        .args(&args[1..])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", tooling::target_dir())
        .env_remove("SLURMBOOK_VALUES")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn loaded(path: &Path) -> tooling::Loaded {
    tooling::load(&Workspace::for_notebook(path.to_path_buf())).unwrap()
}

#[test]
fn the_exported_quickstart_builds_and_tests_without_slurmbook() {
    let dir = tempfile::tempdir().unwrap();
    let nb = dir.path().join("quickstart.ipynb");
    std::fs::copy(root().join("notebooks/quickstart.ipynb"), &nb).unwrap();
    let out = dir.path().join("quickstart-crate");
    let l = loaded(&nb);
    let report = export::export(&l.project, &l.nb, &out, &l.edition).unwrap();
    assert_eq!(
        (report.package.as_str(), report.assets, report.checks),
        ("quickstart", 6, 1)
    );
    for file in [
        "Cargo.toml",
        "README.md",
        "src/lib.rs",
        "src/assets.rs",
        "src/checks.rs",
        "src/main.rs",
        export::MANIFEST,
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let assets = std::fs::read_to_string(out.join("src/assets.rs")).unwrap();
    assert!(
        assets.contains("pub fn stats(celsius: Vec<f64>) -> (f64, usize) {"),
        "{assets}"
    );
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("```mermaid") && readme.contains("celsius --> stats"),
        "{readme}"
    );

    // Files the user adds: a note, and a test of the library's API.
    std::fs::write(out.join("NOTES.md"), "mine\n").unwrap();
    std::fs::create_dir_all(out.join("tests")).unwrap();
    std::fs::write(
        out.join("tests/report.rs"),
        "#[test]\nfn report_mentions_readings() {\n    let mut values = quickstart::runtime::Values::new();\n    quickstart::runtime::materialize(&[\"report\"], &mut values).unwrap();\n    let report: String = quickstart::runtime::value(&values, \"report\");\n    assert!(report.starts_with(\"2000 readings\"), \"{report}\");\n}\n",
    )
    .unwrap();

    let (ok, text) = cargo(&out, &["build"]);
    assert!(ok, "{text}");
    let (ok, text) = cargo(&out, &["test"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("test checks::celsius_plausible ... ok"),
        "{text}"
    );
    assert!(
        text.contains("test report_mentions_readings ... ok"),
        "{text}"
    );
    // The binary materializes a selection into values/.
    let (ok, text) = cargo(&out, &["run", "--quiet", "--", "--select", "stats"]);
    assert!(ok, "{text}");
    let stats: (f64, usize) =
        serde_json::from_slice(&std::fs::read(out.join("values/stats.json")).unwrap()).unwrap();
    assert_eq!(stats.1, 2000);
    assert!(out.join("values/celsius.json").is_file() && !out.join("values/report.json").exists());

    // Exporting again: generated files up to date, the user's files kept.
    let again = export::export(&l.project, &l.nb, &out, &l.edition).unwrap();
    assert!(again.written.is_empty(), "{:?}", again.written);
    assert_eq!(
        std::fs::read_to_string(out.join("NOTES.md")).unwrap(),
        "mine\n"
    );
    assert!(out.join("tests/report.rs").is_file());

    // A directory with a Cargo.toml slurmbook did not write is refused, untouched.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("Cargo.toml"), "[package]\n").unwrap();
    let e = export::export(&l.project, &l.nb, &foreign, &l.edition).unwrap_err();
    assert!(e.to_string().contains("Cargo.toml"), "{e}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("Cargo.toml")).unwrap(),
        "[package]\n"
    );
    assert!(!foreign.join(export::MANIFEST).exists() && !foreign.join("src").exists());
}

fn write_notebook(path: &Path, cells: &[&str]) {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    std::fs::write(path, serde_json::to_string_pretty(&nb).unwrap()).unwrap();
}

#[test]
fn lint_names_the_cell_and_line_and_test_runs_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let nb = dir.path().join("lintme.ipynb");
    write_notebook(
        &nb,
        &[
            "fn halve(x: u64) -> u64 { x / 2 }",
            "%%asset nums\nvec![1u64, 2, 3]",
            "%%asset total\nlet mut s = 0;\nfor i in 0..nums.len() {\n    s += halve(nums[i]) * 2;\n}\ns",
            "%%check total positive\ntotal > 0",
        ],
    );
    let report = lint::lint(&loaded(&nb)).unwrap();
    let hit = report
        .diagnostics
        .iter()
        .find(|d| d.code.as_deref() == Some("clippy::needless_range_loop"))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(hit.cell, "cell 2 (asset `total`)");
    assert_eq!((hit.cell_index, hit.line), (Some(2), 3));
    assert!(
        hit.describe()
            .starts_with("cell 2 (asset `total`), line 3: warning: "),
        "{}",
        hit.describe()
    );
    assert_eq!(report.errors(), 0, "{report:?}");
    // The generated code around the cells is clippy-clean.
    assert!(
        report.diagnostics.iter().all(|d| d.cell_index.is_some()),
        "{report:?}"
    );

    // Without assets, the generated code is clippy-clean too.
    let plain = dir.path().join("plain.ipynb");
    write_notebook(&plain, &["let x = 1;", "fn unused_helper() {}"]);
    let report = lint::lint(&loaded(&plain)).unwrap();
    let names: Vec<String> = report.diagnostics.iter().map(|d| d.describe()).collect();
    assert_eq!(
        names,
        ["cell 1, line 1: warning: function `unused_helper` is never used [dead_code]"]
    );

    let mut ws = Workspace::for_notebook(nb.clone());
    let run = |ws: &mut Workspace| {
        let krate = test::prepare(ws, &loaded(&nb), false).unwrap();
        let out = krate.command().arg("--offline").output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(&mut ws);
    assert!(ok, "{text}");
    assert!(text.contains("checks::total_positive ... ok"), "{text}");

    // A failing check fails cargo test, naming the check.
    write_notebook(
        &nb,
        &[
            "%%asset nums\nvec![1u64, 2, 3]",
            "%%asset total\nnums.iter().sum::<u64>()",
            "%%check total positive\ntotal > 0",
            "%%check total small\nif total < 3 { Ok(()) } else { Err(format!(\"{total} is not small\")) }",
            "#[test]\nfn plain_test_in_an_item_cell() { assert_eq!(1 + 1, 2); }",
        ],
    );
    let (ok, text) = run(&mut ws);
    assert!(!ok, "{text}");
    assert!(text.contains("checks::total_positive ... ok"), "{text}");
    assert!(text.contains("checks::total_small ... FAILED"), "{text}");
    assert!(
        text.contains("check `small` of asset `total` failed: \"6 is not small\""),
        "{text}"
    );
    assert!(text.contains("plain_test_in_an_item_cell ... ok"), "{text}");
}

/// Partitioned assets in the crate: the function takes `partition` and
/// `partition_index`; the runtime computes every partition into the map
/// its downstreams receive (`--partitions-like`: the matching partition;
/// `--partitions-from`: the keys from the source's value).
#[test]
fn partitioned_assets_export_as_maps() {
    let dir = tempfile::tempdir().unwrap();
    let nb = dir.path().join("sweep.ipynb");
    write_notebook(
        &nb,
        &[
            "%%asset days\nvec![\"mon\".to_string(), \"tue\".to_string()]",
            "%%asset hours: u32 --partitions-from days\n(partition_index as u32 + 1) * 8",
            "%%asset sim: u64 --partitions 0..4\npartition_index as u64 * 10",
            "%%asset doubled: u64 --partitions-like sim\nsim * 2",
            "%%asset total\nsim.values().sum::<u64>() + doubled.values().sum::<u64>() + hours.values().map(|h| *h as u64).sum::<u64>()",
            "%%check total\ntotal == 60 + 120 + 24",
        ],
    );
    let out = dir.path().join("sweep-crate");
    let l = loaded(&nb);
    export::export(&l.project, &l.nb, &out, &l.edition).unwrap();
    let assets = std::fs::read_to_string(out.join("src/assets.rs")).unwrap();
    assert!(
        assets.contains("pub fn doubled(sim: u64, partition: &str, partition_index: usize) -> u64"),
        "{assets}"
    );
    assert!(
        assets.contains("sim: std::collections::BTreeMap<String, u64>, doubled: "),
        "{assets}"
    );
    let (ok, text) = cargo(&out, &["test"]);
    assert!(ok, "{text}");
    let (ok, text) = cargo(&out, &["run", "--quiet", "--", "--select", "total"]);
    assert!(ok, "{text}");
    let total: u64 =
        serde_json::from_slice(&std::fs::read(out.join("values/total.json")).unwrap()).unwrap();
    assert_eq!(total, 204);
    let hours: std::collections::BTreeMap<String, u32> =
        serde_json::from_slice(&std::fs::read(out.join("values/hours.json")).unwrap()).unwrap();
    assert_eq!(hours["tue"], 16);
}
