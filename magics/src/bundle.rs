//! Bundles: a Cargo crate generated from selected assets — the notebook's
//! item cells and `:dep` dependencies, one function per asset, and a `main`
//! that computes one asset: it reads upstream values (JSON files), computes,
//! writes its value atomically and reports events as JSON lines (with what
//! it used, measured by itself: `crate::usage::job_runtime`). The same
//! assets and dependencies always generate byte-identical sources, so builds
//! are cached by the sources' hash.

use crate::project::Project;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Prefix of the bundle's event lines on stdout.
pub const EVENT_PREFIX: &str = "\u{1e}SLURMBOOK ";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("asset `{asset}` uses `{names}`, defined by a plain cell of the session, which a Slurm job cannot see; make it a `const` (or fn) in an item cell, or an asset")]
    FreeVariables { asset: String, names: String },
    #[error("the type of asset `{asset}` is unknown; annotate it (`%%asset {asset}: TYPE`) or run it in the kernel first")]
    UnknownType { asset: String },
    #[error("asset `{asset}`'s value ({type_name}) crosses a Slurm job boundary, so its type must implement serde's Serialize and Deserialize (derive them, and add `:dep serde = {{ version = \"1\", features = [\"derive\"] }}`):\n{detail}")]
    NotSerializable {
        asset: String,
        type_name: String,
        detail: String,
    },
    #[error("the job program does not compile:\n{0}")]
    Compile(String),
    #[error("vendoring the job program's dependencies (cargo vendor) failed:\n{0}")]
    Vendor(String),
    #[error("building the job program on the cluster failed:\n{0}")]
    RemoteBuild(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BundleError {
    let context = context.into();
    move |source| BundleError::Io { context, source }
}

/// Generated sources of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSources {
    pub cargo_toml: String,
    pub main_rs: String,
    /// sha256 of both files: the build's cache key.
    pub hash: String,
}

/// The job binary's name: `slurmbook_job_<first 16 hex digits of the hash>`.
pub fn binary_name(hash: &str) -> String {
    format!("slurmbook_job_{}", &hash[..16])
}

/// Functions the job runtime gives asset code (`report_metadata(json)`).
pub const RUNTIME_NAMES: &[&str] = &["report_metadata"];

/// The extra parameters of a partitioned asset's function.
pub const PARTITION_PARAMS: &str = "partition: &str, partition_index: usize";

/// Whether `asset` receives its upstream `up` as a map of all of `up`'s
/// partitions (`up` is partitioned, and `asset` is not partitioned like it).
pub fn receives_map(project: &Project, asset: &str, up: &str) -> bool {
    let up_partitioned = project
        .asset(up)
        .is_some_and(|u| u.options.partitioning().is_some());
    let like = project
        .asset(asset)
        .and_then(|a| a.options.partitions_like.as_deref());
    up_partitioned && like != Some(up)
}

/// The type of `asset`'s parameter for its upstream `up` whose value (one
/// partition's, when partitioned) has type `ty`.
pub fn param_type(project: &Project, asset: &str, up: &str, ty: &str) -> String {
    if receives_map(project, asset, up) {
        format!("std::collections::BTreeMap<String, {ty}>")
    } else {
        ty.to_string()
    }
}

/// Checks what would make a job fail before anything is submitted: free
/// variables that are neither assets nor items (nor the runtime's).
pub fn check_free_variables(project: &Project, assets: &[String]) -> Result<(), BundleError> {
    for asset in assets {
        let mut unresolved = project.unresolved(asset);
        unresolved.retain(|n| !RUNTIME_NAMES.contains(n));
        if !unresolved.is_empty() {
            return Err(BundleError::FreeVariables {
                asset: asset.clone(),
                names: unresolved.join("`, `"),
            });
        }
    }
    Ok(())
}

/// Generates the bundle of `assets` (in topological order); `types` gives
/// every asset's value type (the selected ones and their data upstreams).
pub fn generate(
    project: &Project,
    assets: &[String],
    types: &HashMap<String, String>,
) -> Result<BundleSources, BundleError> {
    let mut deps: BTreeMap<String, String> = BTreeMap::new();
    deps.insert("serde_json".into(), "\"1\"".into());
    deps.insert(
        "serde".into(),
        "{ version = \"1\", features = [\"derive\"] }".into(),
    );
    for d in &project.deps {
        deps.insert(d.name.clone(), d.spec.trim().to_string());
    }
    // The package name is filled in from the sources' hash (below), so every
    // bundle has its own binary in the shared target directory.
    let mut cargo_toml = String::from(
        "[package]\nname = \"@NAME@\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n",
    );
    for (name, spec) in &deps {
        cargo_toml.push_str(&format!("{name} = {spec}\n"));
    }
    cargo_toml.push_str("\n[profile.release]\nopt-level = 2\ndebug = false\n\n[workspace]\n");

    let mut main = String::from(
        "// Generated by slurmbook: computes one asset of the notebook per run.\n\
         #![allow(unused, clippy::all)]\n\n",
    );
    main.push_str("// ---- the notebook's item cells ----\n");
    for item in &project.items {
        main.push_str(&item.source);
        main.push_str("\n\n");
    }
    main.push_str(RUNTIME);
    main.push_str(crate::usage::job_runtime::USAGE_RUNTIME);
    let mut arms = String::new();
    let mut foreign = false;
    for asset in assets {
        let spec = project
            .asset(asset)
            .ok_or_else(|| BundleError::UnknownType {
                asset: asset.clone(),
            })?;
        if spec.lang().is_foreign() {
            // Run by the environment's interpreter; every upstream (data or
            // `--deps`) comes as an --input.
            foreign = true;
            arms.push_str(&format!(
                "        \"{asset}\" => slurmbook_foreign(&inputs, &output, \"{}\", \"{asset}\", {:?}),\n",
                spec.lang(),
                spec.body
            ));
            continue;
        }
        let ty = types.get(asset).ok_or_else(|| BundleError::UnknownType {
            asset: asset.clone(),
        })?;
        let ups: Vec<(String, String)> = project
            .graph
            .dependencies(asset)
            .into_iter()
            .filter(|(_, kind)| kind.carries_data())
            .map(|(d, _)| {
                types
                    .get(d)
                    .map(|t| (d.to_string(), param_type(project, asset, d, t)))
                    .ok_or_else(|| BundleError::UnknownType {
                        asset: d.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut params: Vec<String> = ups.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        let partitioned = spec.options.partitioning().is_some();
        if partitioned {
            params.push(PARTITION_PARAMS.to_string());
        }
        main.push_str(&format!(
            "// ---- asset {asset} ----\nfn asset_{asset}({}) -> {ty} {{\n{}\n}}\n\n",
            params.join(", "),
            spec.body.trim_end()
        ));
        let loads: Vec<String> = ups
            .iter()
            .map(|(n, t)| {
                if receives_map(project, asset, n) {
                    return format!("let {n}: {t} = slurmbook_load_map(&input_maps, \"{n}\");");
                }
                match project
                    .asset(n)
                    .map(|u| u.lang())
                    .filter(|l| l.is_foreign())
                {
                    // A Python or bash value that does not decode into its stated
                    // type is an error naming both assets and the type.
                    Some(lang) => format!(
                        "let {n}: {t} = slurmbook_load_foreign(&inputs, \"{n}\", {:?});",
                        crate::exec::foreign::decode_error(n, lang.as_str(), t, asset, "")
                            .trim_end_matches(": ")
                    ),
                    None => format!("let {n}: {t} = slurmbook_load(&inputs, \"{n}\");"),
                }
            })
            .collect();
        let mut args: Vec<&str> = ups.iter().map(|(n, _)| n.as_str()).collect();
        let mut loads = loads;
        if partitioned {
            loads.push(format!(
                "let (partition, partition_index) = slurmbook_partition(&task, \"{asset}\");"
            ));
            args.extend(["partition.as_str()", "partition_index"]);
        }
        arms.push_str(&format!(
            "        \"{asset}\" => {{ {} let value = asset_{asset}({}); slurmbook_store(&output, &value) }}\n",
            loads.join(" "),
            args.join(", ")
        ));
    }
    if foreign {
        main.push_str(&crate::exec::foreign::job::runtime());
    }
    main.push_str(&MAIN.replace("        // ARMS\n", &arms));
    let mut hasher = Sha256::new();
    hasher.update(cargo_toml.as_bytes());
    hasher.update([0]);
    hasher.update(main.as_bytes());
    let hash = hex::encode(hasher.finalize());
    Ok(BundleSources {
        cargo_toml: cargo_toml.replace("@NAME@", &binary_name(&hash)),
        main_rs: main,
        hash,
    })
}

const RUNTIME: &str = r#"// ---- slurmbook job runtime ----
/// Reports user metadata for this asset (shown in %assets and stored).
pub fn report_metadata(metadata: serde_json::Value) {
    slurmbook_emit(serde_json::json!({ "event": "metadata", "metadata": metadata }));
}

fn slurmbook_emit(event: serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\u{1e}SLURMBOOK {}", event);
    let _ = out.flush();
}

fn slurmbook_load<T: serde::de::DeserializeOwned>(inputs: &[(String, String)], name: &str) -> T {
    let path = &inputs.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no --input for upstream {name}")).1;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading upstream {name} from {path}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("decoding upstream {name} from {path}: {e}"))
}

fn slurmbook_load_map<T: serde::de::DeserializeOwned>(
    maps: &[(String, std::collections::BTreeMap<String, String>)],
    name: &str,
) -> std::collections::BTreeMap<String, T> {
    let map = &maps.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no --input-map for partitioned upstream {name}")).1;
    map.iter()
        .map(|(key, path)| {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading upstream {name}[{key}] from {path}: {e}"));
            let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("decoding upstream {name}[{key}] from {path}: {e}"));
            (key.clone(), value)
        })
        .collect()
}

fn slurmbook_partition(task: &Option<(String, usize)>, asset: &str) -> (String, usize) {
    task.clone().unwrap_or_else(|| panic!("asset {asset} is partitioned: run it with --task-table FILE [--task I]"))
}

/// Entry `index` of a task table (`--task-table FILE`): the partition, where
/// its value goes, and its inputs.
fn slurmbook_task(
    table: &str,
    index: usize,
) -> ((String, usize), String, Vec<(String, String)>, Vec<(String, std::collections::BTreeMap<String, String>)>) {
    #[derive(serde::Deserialize)]
    struct Entry {
        key: String,
        index: usize,
        output: String,
        #[serde(default)]
        inputs: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        input_maps: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    }
    let bytes = std::fs::read(table).unwrap_or_else(|e| panic!("reading the task table {table}: {e}"));
    let mut entries: Vec<Entry> = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("decoding the task table {table}: {e}"));
    if index >= entries.len() {
        panic!("task {index} is not in the task table {table} ({} tasks)", entries.len());
    }
    let e = entries.swap_remove(index);
    ((e.key, e.index), e.output, e.inputs.into_iter().collect(), e.input_maps.into_iter().collect())
}

fn slurmbook_store<T: serde::Serialize>(output: &str, value: &T) -> u64 {
    let bytes = serde_json::to_vec(value).expect("serializing the value");
    if let Some(dir) = std::path::Path::new(output).parent() {
        std::fs::create_dir_all(dir).expect("creating the value store");
    }
    let tmp = format!("{output}.tmp.{}", std::process::id());
    // A value that cannot be written whole (a full disk) leaves nothing behind.
    let written = std::fs::write(&tmp, &bytes)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, output));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        panic!("writing the value to {output}: {e}");
    }
    bytes.len() as u64
}

"#;

const MAIN: &str = r#"fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut asset = None;
    let mut output = None;
    let mut inputs: Vec<(String, String)> = Vec::new();
    let mut input_maps: Vec<(String, std::collections::BTreeMap<String, String>)> = Vec::new();
    let mut table = None;
    let mut task_index: Option<usize> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--output" => { output = args.get(i + 1).cloned(); i += 2; }
            "--task-table" => { table = args.get(i + 1).cloned(); i += 2; }
            "--task" => {
                task_index = Some(args.get(i + 1).and_then(|t| t.parse().ok()).expect("--task I (an integer)"));
                i += 2;
            }
            "--input-map" => {
                let spec = args.get(i + 1).cloned().unwrap_or_default();
                let (n, p) = spec.split_once('=').expect("--input-map NAME=FILE");
                let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("reading the input map {p}: {e}"));
                let map = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("decoding the input map {p}: {e}"));
                input_maps.push((n.to_string(), map));
                i += 2;
            }
            "--input" => {
                let spec = args.get(i + 1).cloned().unwrap_or_default();
                let (n, p) = spec.split_once('=').expect("--input NAME=PATH");
                inputs.push((n.to_string(), p.to_string()));
                i += 2;
            }
            other => { asset = Some(other.to_string()); i += 1; }
        }
    }
    let asset = asset.expect("usage: slurmbook_job ASSET (--output PATH [--input NAME=PATH]... [--input-map NAME=FILE]... | --task-table FILE [--task I])");
    let mut task: Option<(String, usize)> = None;
    if let Some(table) = &table {
        let index = task_index.unwrap_or_else(|| {
            std::env::var("SLURM_ARRAY_TASK_ID").ok().and_then(|t| t.parse().ok())
                .expect("--task I, or SLURM_ARRAY_TASK_ID in the environment")
        });
        let (t, out, ins, maps) = slurmbook_task(table, index);
        task = Some(t);
        output = Some(out);
        inputs.extend(ins);
        input_maps.extend(maps);
    }
    let output = output.expect("--output PATH");
    let before = slurmbook_rusage_now();
    let started = std::time::Instant::now();
    let started_at = slurmbook_now();
    let result = std::panic::catch_unwind(|| match asset.as_str() {
        // ARMS
        other => { eprintln!("unknown asset {other}"); std::process::exit(2) }
    });
    slurmbook_report_usage(started, started_at, before);
    match result {
        Ok(bytes) => slurmbook_emit(serde_json::json!({
            "event": "materialized", "bytes": bytes, "elapsed_ms": started.elapsed().as_millis() as u64,
        })),
        Err(panic) => {
            let message = panic.downcast_ref::<String>().cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            slurmbook_emit(serde_json::json!({ "event": "failed", "error": message }));
            std::process::exit(1);
        }
    }
}
"#;

/// Where bundles are built (shared target dir, so dependencies build once).
pub fn build_root() -> PathBuf {
    std::env::var_os("SLURMBOOK_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("slurmbook/build")
        })
}

/// Writes the crate (`Cargo.toml`, `src/main.rs`) into `dir`.
pub fn write_sources(sources: &BundleSources, dir: &Path) -> Result<(), BundleError> {
    std::fs::create_dir_all(dir.join("src")).map_err(io(format!("creating {}", dir.display())))?;
    std::fs::write(dir.join("Cargo.toml"), &sources.cargo_toml)
        .map_err(io("writing Cargo.toml"))?;
    std::fs::write(dir.join("src/main.rs"), &sources.main_rs).map_err(io("writing main.rs"))
}

/// Writes the sources (once per hash) and builds the job binary with
/// `cargo build --release`; returns the binary's path. A cached build is reused.
pub fn build(
    sources: &BundleSources,
    root: &Path,
    types: &HashMap<String, String>,
) -> Result<PathBuf, BundleError> {
    let dir = root.join("bundles").join(&sources.hash[..16]);
    let target = root.join("target");
    let name = binary_name(&sources.hash);
    let binary = target.join("release").join(&name);
    let stamp = dir.join("built");
    let exe_copy = dir.join(&name);
    if stamp.exists() && exe_copy.exists() {
        return Ok(exe_copy);
    }
    write_sources(sources, &dir)?;
    let out = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--message-format=short"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .map_err(io("running cargo"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(explain_compile_error(&stderr, types));
    }
    std::fs::copy(&binary, &exe_copy).map_err(io("copying the job binary"))?;
    std::fs::write(&stamp, b"").map_err(io("stamping the build"))?;
    Ok(exe_copy)
}

/// A compile failure caused by a value that cannot cross a job boundary says so.
fn explain_compile_error(stderr: &str, types: &HashMap<String, String>) -> BundleError {
    let about_serde = stderr.lines().find(|l| {
        l.contains("error")
            && (l.contains("Serialize")
                || l.contains("Deserialize")
                || l.contains("DeserializeOwned"))
    });
    if let Some(line) = about_serde {
        // Which asset: the type named in the message.
        let mut by_len: Vec<(&String, &String)> = types.iter().collect();
        by_len.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
        if let Some((asset, ty)) = by_len.into_iter().find(|(_, t)| line.contains(t.as_str())) {
            return BundleError::NotSerializable {
                asset: asset.clone(),
                type_name: ty.clone(),
                detail: line.trim().to_string(),
            };
        }
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("error"))
        .take(20)
        .collect();
    BundleError::Compile(if errors.is_empty() {
        stderr.to_string()
    } else {
        errors.join("\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::Notebook;
    use crate::SessionOverrides;

    fn project(cells: &[&str]) -> Project {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
            .collect();
        let nb =
            serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
        let nb = Notebook::from_str(&nb.to_string()).unwrap();
        Project::from_notebook(&nb, &SessionOverrides::new()).unwrap()
    }

    fn types(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn generates_identical_sources_for_the_same_assets() {
        let p = project(&[
            "fn double(x: u64) -> u64 { x * 2 }",
            "%%asset a\n(0..10u64).collect::<Vec<u64>>()",
            "%%asset b\na.iter().map(|x| double(*x)).sum::<u64>()",
        ]);
        let t = types(&[("a", "Vec<u64>"), ("b", "u64")]);
        let one = generate(&p, &["a".into(), "b".into()], &t).unwrap();
        let two = generate(&p, &["a".into(), "b".into()], &t).unwrap();
        assert_eq!(one, two);
        assert!(one.main_rs.contains("fn asset_b(a: Vec<u64>) -> u64"));
        assert!(one.main_rs.contains("fn double(x: u64)"));
        assert!(one.cargo_toml.contains("serde_json = \"1\""));
        let other = generate(&p, &["a".into()], &t).unwrap();
        assert_ne!(one.hash, other.hash);
    }

    #[test]
    fn free_session_variables_are_reported() {
        let p = project(&["let threshold = 3;", "%%asset a\nthreshold + 1"]);
        let err = check_free_variables(&p, &["a".into()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`threshold`") && text.contains("const"),
            "{text}"
        );
        let p = project(&["const THRESHOLD: i32 = 3;", "%%asset a\nTHRESHOLD + 1"]);
        assert!(check_free_variables(&p, &["a".into()]).is_ok());
        let p = project(&["%%asset a\nreport_metadata(serde_json::json!({\"n\": 1}));\n1"]);
        assert!(check_free_variables(&p, &["a".into()]).is_ok());
    }

    #[test]
    fn missing_types_are_errors() {
        let p = project(&["%%asset a\n1", "%%asset b\na + 1"]);
        assert!(matches!(
            generate(&p, &["b".into()], &types(&[("b", "i32")])),
            Err(BundleError::UnknownType { asset }) if asset == "a"
        ));
    }
}

/// Infers the value types of `assets` (and their data upstreams) that are not
/// in `known`, by compiling probes: each asset body as a function returning
/// `()`, whose "mismatched types" error names the body's type. Layer by layer,
/// since a body's type may depend on its upstreams' types.
pub fn probe_types(
    project: &Project,
    assets: &[String],
    known: &HashMap<String, String>,
    root: &Path,
) -> Result<HashMap<String, String>, BundleError> {
    let mut types = known.clone();
    // What the session knows of a partitioned asset is its map of all
    // partitions: its type here is one partition's.
    types.retain(|a, _| {
        project
            .asset(a)
            .is_none_or(|s| s.options.partitioning().is_none())
    });
    let mut wanted: Vec<String> = Vec::new();
    for a in assets {
        for up in project.graph.upstream(a, None).unwrap_or_default() {
            if !wanted.contains(&up) {
                wanted.push(up);
            }
        }
        if !wanted.contains(a) {
            wanted.push(a.clone());
        }
    }
    for a in &wanted {
        // Annotated, or a Python or bash asset's default.
        if let Some(ty) = project.asset(a).and_then(|s| s.declared_type()) {
            types.insert(a.clone(), ty);
        }
    }
    loop {
        let layer: Vec<&String> = wanted
            .iter()
            .filter(|a| !types.contains_key(*a))
            .filter(|a| {
                project
                    .graph
                    .dependencies(a)
                    .iter()
                    .filter(|(_, k)| k.carries_data())
                    .all(|(d, _)| types.contains_key(*d))
            })
            .collect();
        if layer.is_empty() {
            return match wanted.iter().find(|a| !types.contains_key(*a)) {
                Some(a) => Err(BundleError::UnknownType { asset: a.clone() }),
                None => Ok(types),
            };
        }
        let found = probe_layer(project, &layer, &types, root)?;
        types.extend(found);
    }
}

fn probe_layer(
    project: &Project,
    layer: &[&String],
    types: &HashMap<String, String>,
    root: &Path,
) -> Result<HashMap<String, String>, BundleError> {
    let mut main = String::from("#![allow(unused, clippy::all)]\n");
    for item in &project.items {
        main.push_str(&item.source);
        main.push('\n');
    }
    // line ranges of each probe function
    let mut ranges: Vec<(String, usize, usize)> = Vec::new();
    for asset in layer {
        let spec = project
            .asset(asset)
            .ok_or_else(|| BundleError::UnknownType {
                asset: asset.to_string(),
            })?;
        let mut params: Vec<String> = project
            .graph
            .dependencies(asset)
            .into_iter()
            .filter(|(_, k)| k.carries_data())
            .map(|(d, _)| format!("{d}: {}", param_type(project, asset, d, &types[d])))
            .collect();
        if spec.options.partitioning().is_some() {
            params.push(PARTITION_PARAMS.to_string());
        }
        let start = main.lines().count() + 1;
        main.push_str(&format!(
            "fn probe_{asset}({}) -> () {{\n{}\n}}\n",
            params.join(", "),
            spec.body.trim_end()
        ));
        ranges.push((asset.to_string(), start, main.lines().count()));
    }
    main.push_str("fn main() {}\n");
    let mut deps = String::new();
    deps.push_str("serde_json = \"1\"\nserde = { version = \"1\", features = [\"derive\"] }\n");
    for d in &project.deps {
        if d.name != "serde" && d.name != "serde_json" {
            deps.push_str(&format!("{} = {}\n", d.name, d.spec.trim()));
        }
    }
    let cargo_toml = format!(
        "[package]\nname = \"slurmbook_probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{deps}\n[workspace]\n"
    );
    let dir = probe_dir(root, &cargo_toml, &main);
    std::fs::create_dir_all(dir.join("src")).map_err(io("creating the type probe"))?;
    write_once(&dir.join("Cargo.toml"), &cargo_toml).map_err(io("writing the type probe"))?;
    write_once(&dir.join("src/main.rs"), &main).map_err(io("writing the type probe"))?;
    let out = Command::new("cargo")
        .args(["check", "--quiet", "--message-format=json"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("target"))
        .output()
        .map_err(io("running cargo check"))?;
    let mut found: HashMap<String, String> = HashMap::new();
    let mut other_errors: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = &msg["message"];
        if msg["reason"] != "compiler-message" || message["level"] != "error" {
            continue;
        }
        let primary = message["spans"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["is_primary"] == true));
        let Some(span) = primary else {
            continue;
        };
        let line_no = call_site_line(span);
        let asset = ranges
            .iter()
            .find(|(_, a, b)| line_no >= *a && line_no <= *b)
            .map(|(n, _, _)| n.clone());
        let label = span["label"].as_str().unwrap_or("");
        match (asset, found_type(label)) {
            (Some(asset), Some(ty)) if message["code"]["code"] == "E0308" => {
                found.entry(asset).or_insert(ty);
            }
            _ => other_errors.push(message["rendered"].as_str().unwrap_or("").to_string()),
        }
    }
    for (asset, _, _) in &ranges {
        if !found.contains_key(asset) {
            if other_errors.is_empty() {
                // No mismatch: the body's value is `()`.
                found.insert(asset.clone(), "()".into());
            } else {
                return Err(BundleError::Compile(other_errors.join("\n")));
            }
        }
    }
    Ok(found)
}

/// The type probe's crate directory, named by its content: kernels that
/// probe at the same time (two notebooks of one user on a JupyterHub, or two
/// test runs) never overwrite each other's sources, and an unchanged probe
/// is checked again for free.
fn probe_dir(root: &Path, cargo_toml: &str, main: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(cargo_toml.as_bytes());
    hasher.update([0]);
    hasher.update(main.as_bytes());
    root.join("probe")
        .join(&hex::encode(hasher.finalize())[..16])
}

/// Writes `text` to `path` unless it is there (the path names its content):
/// through a temporary file and a rename, so a reader never sees half of it.
fn write_once(path: &Path, text: &str) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The probe's line a compiler span points at: for a span inside a macro
/// (the body ends in `format!(..)` or `vec![..]`), the line of the macro's
/// call in the probe.
fn call_site_line(span: &serde_json::Value) -> usize {
    let mut span = span;
    for _ in 0..32 {
        if span["file_name"].as_str() == Some("src/main.rs") {
            return span["line_start"].as_u64().unwrap_or(0) as usize;
        }
        match span.get("expansion").map(|e| &e["span"]) {
            Some(next) if next.is_object() => span = next,
            _ => break,
        }
    }
    0
}

/// The type in a "expected `()`, found `T`" label (integer and float literals
/// take Rust's defaults).
fn found_type(label: &str) -> Option<String> {
    let rest = label.split("found ").nth(1)?.trim();
    if let Some(ty) = rest.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Some(ty.to_string());
    }
    match rest {
        "integer" => Some("i32".into()),
        "floating-point number" => Some("f64".into()),
        _ => None,
    }
}

#[cfg(test)]
mod probe_tests {
    use super::{found_type, probe_dir, write_once};
    use std::path::Path;

    #[test]
    fn each_probe_has_its_own_directory() {
        let root = Path::new("/cache/build");
        let a = probe_dir(root, "[package]", "fn probe_a() -> () { 1 }");
        assert_eq!(a, probe_dir(root, "[package]", "fn probe_a() -> () { 1 }"));
        assert_ne!(a, probe_dir(root, "[package]", "fn probe_a() -> () { 2 }"));
        assert_ne!(a, probe_dir(root, "[package] ", "fn probe_a() -> () { 1 }"));
        assert!(a.starts_with("/cache/build/probe"), "{}", a.display());

        let dir = std::env::temp_dir().join(format!("sb-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("main.rs");
        write_once(&file, "first").unwrap();
        write_once(&file, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "first");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_rustc_labels() {
        assert_eq!(
            found_type("expected `()`, found `Vec<f64>`").as_deref(),
            Some("Vec<f64>")
        );
        assert_eq!(
            found_type("expected `()`, found integer").as_deref(),
            Some("i32")
        );
        assert_eq!(
            found_type("expected `()`, found floating-point number").as_deref(),
            Some("f64")
        );
        assert_eq!(found_type("something else"), None);
    }
}
