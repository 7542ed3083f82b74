//! The notebook as a Cargo crate: the item cells at the library's root, one
//! function per asset (`src/assets.rs`), a runtime computing assets in
//! order with values passed as JSON like between Slurm jobs
//! (`src/runtime.rs`), the `%%check` cells as tests (`src/checks.rs`), a
//! binary with the job binary's command line (`src/main.rs`) and a README.
//! Every piece of notebook code keeps its lines, and [`Origin`]s map the
//! generated lines back to cells.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use super::{io, ToolError};
use crate::model::CellRef;
use crate::notebook::Notebook;
use crate::project::Project;
use crate::syntax::{head, Head};

/// Where some generated lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The generated file, relative to the crate (`src/assets.rs`).
    pub file: &'static str,
    /// The 1-based line of the file where the cell's code starts.
    pub first_line: usize,
    pub lines: usize,
    pub cell: CellRef,
    /// The 0-based line in the cell of `first_line`.
    pub cell_line: usize,
    /// `cell 4 (asset `stats`)`.
    pub label: String,
}

/// A generated crate: files (relative path, contents) and line origins.
#[derive(Debug, Clone)]
pub struct GeneratedCrate {
    pub name: String,
    pub files: Vec<(&'static str, String)>,
    pub origins: Vec<Origin>,
}

impl GeneratedCrate {
    /// The cell (and its 1-based line) behind a line of a generated file.
    pub fn locate(&self, file: &str, line: usize) -> Option<(&Origin, usize)> {
        self.origins
            .iter()
            .find(|o| o.file == file && line >= o.first_line && line < o.first_line + o.lines)
            .map(|o| (o, o.cell_line + (line - o.first_line) + 1))
    }

    /// Writes the files into `dir` (created), replacing those that differ.
    pub fn write(&self, dir: &Path) -> Result<(), ToolError> {
        for (rel, contents) in &self.files {
            let path = dir.join(rel);
            if std::fs::read(&path).is_ok_and(|old| old == contents.as_bytes()) {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&path, contents).map_err(io(format!("writing {}", path.display())))?;
        }
        Ok(())
    }
}

/// A generated file being written, counting its lines.
struct File {
    path: &'static str,
    text: String,
}

impl File {
    fn new(path: &'static str) -> File {
        File {
            path,
            text: String::new(),
        }
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The 1-based line the next text starts on.
    fn next_line(&self) -> usize {
        self.text.matches('\n').count() + 1
    }

    /// Notebook code, recorded as coming from `cell` (line `cell_line`).
    fn code(&mut self, code: &str, cell: &CellRef, cell_line: usize, label: String) -> Origin {
        let origin = Origin {
            file: self.path,
            first_line: self.next_line(),
            lines: code.lines().count().max(1),
            cell: cell.clone(),
            cell_line,
            label,
        };
        self.text.push_str(code.trim_end_matches('\n'));
        self.text.push('\n');
        origin
    }
}

/// `cell 4` (as reports name cells), or `session cell`.
pub fn cell_name(cell: &CellRef) -> String {
    if cell.is_session() {
        "session cell".to_string()
    } else {
        format!("cell {}", cell.index)
    }
}

/// The package name for a notebook file: its stem as a Rust identifier.
pub fn package_name(notebook: &Path) -> String {
    let stem = notebook
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "nb_");
    }
    if [
        "std",
        "core",
        "alloc",
        "test",
        "proc_macro",
        "self",
        "crate",
    ]
    .contains(&name.as_str())
    {
        name.insert_str(0, "nb_");
    }
    name
}

/// The 0-based line of the first body line of a `%%asset`/`%%check` cell.
fn body_line(nb: &Notebook, cell: &CellRef) -> usize {
    nb.cells
        .get(cell.index)
        .and_then(|c| match head(&c.source) {
            Head::Asset { line, .. } | Head::Check { line, .. } => Some(line + 1),
            _ => None,
        })
        .unwrap_or(1)
}

/// Infers every asset's value type (declared ones as declared), compiling
/// probes like the job bundle does.
pub fn infer_types(project: &Project) -> Result<HashMap<String, String>, ToolError> {
    rust_only(project)?;
    let names: Vec<String> = project.assets.iter().map(|a| a.name.clone()).collect();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    crate::bundle::check_free_variables(project, &names)?;
    Ok(crate::bundle::probe_types(
        project,
        &names,
        &HashMap::new(),
        &crate::bundle::build_root(),
    )?)
}

/// The generated crate is Rust alone: a Python or bash asset is refused
/// (with its name and language) rather than compiled as Rust.
fn rust_only(project: &Project) -> Result<(), ToolError> {
    match project.assets.iter().find(|a| a.lang().is_foreign()) {
        Some(a) => Err(ToolError::Export(format!(
            "asset `{}` is a {} asset: the generated crate (lint, test, export) holds Rust assets only",
            a.name,
            a.lang()
        ))),
        None => Ok(()),
    }
}

/// The generated crate's expression for a partitioned asset's keys.
fn keys_expr(project: &Project, asset: &str) -> String {
    use crate::model::PartitionSpec;
    match project.asset(asset).and_then(|a| a.options.partitioning()) {
        Some(PartitionSpec::Range { start, end }) => {
            format!("({start}u64..{end}).map(|i| i.to_string()).collect()")
        }
        // Keys are letters, digits, `.`, `_` and `-`: `{:?}` quotes them.
        Some(PartitionSpec::List(keys)) => format!(
            "vec![{}]",
            keys.iter()
                .map(|k| format!("{k:?}.to_string()"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(PartitionSpec::From(source)) => format!("keys_of(values, {source:?})?"),
        Some(PartitionSpec::Like(up)) => keys_expr(project, &up),
        None => "Vec::new()".into(),
    }
}

/// Generates the crate of `project` (read from `nb`), named `name`.
pub fn generate(
    project: &Project,
    nb: &Notebook,
    name: &str,
    types: &HashMap<String, String>,
    edition: &str,
) -> Result<GeneratedCrate, ToolError> {
    rust_only(project)?;
    let order: Vec<String> = project
        .graph
        .topo_order(project.assets.iter().map(|a| a.name.as_str()));
    let type_of = |asset: &str| {
        types.get(asset).cloned().ok_or_else(|| {
            ToolError::from(crate::bundle::BundleError::UnknownType {
                asset: asset.to_string(),
            })
        })
    };
    let data_ups = |asset: &str| -> Vec<String> {
        project
            .graph
            .dependencies(asset)
            .into_iter()
            .filter(|(_, k)| k.carries_data())
            .map(|(d, _)| d.to_string())
            .collect()
    };
    let mut origins = Vec::new();

    let mut lib = File::new("src/lib.rs");
    lib.push(&format!(
        "//! The assets of the notebook `{}`, generated by slurmbook: its item cells\n\
         //! here, one function per asset in [`assets`], the checks as tests.\n\n",
        nb.path
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().escape_default().to_string())
            .unwrap_or_else(|| "notebook".into())
    ));
    let mut last_cell = None;
    for item in &project.items {
        if last_cell != Some(&item.cell) {
            lib.push(&format!("// ---- {} ----\n", cell_name(&item.cell)));
            last_cell = Some(&item.cell);
        }
        let label = cell_name(&item.cell);
        origins.push(lib.code(&item.source, &item.cell, item.line, label));
        lib.push("\n");
    }
    lib.push("pub mod assets;\npub mod runtime;\n#[cfg(test)]\nmod checks;\n");

    let mut assets = File::new("src/assets.rs");
    assets.push(
        "//! One function per asset: its value, from its upstreams' values.\n\
         #![allow(private_interfaces)]\n\n\
         #[allow(unused_imports)]\nuse super::*;\n\
         #[allow(unused_imports)]\nuse crate::runtime::report_metadata;\n",
    );
    let mut table = String::new();
    let mut arms = String::new();
    for asset in &order {
        let spec = project.asset(asset).expect("assets of the graph");
        let ups = data_ups(asset);
        let mut params: Vec<String> = ups
            .iter()
            .map(|u| {
                let ty = crate::bundle::param_type(project, asset, u, &type_of(u)?);
                Ok(format!("{u}: {ty}"))
            })
            .collect::<Result<_, ToolError>>()?;
        let partitioning = spec.options.partitioning();
        if partitioning.is_some() {
            params.push(crate::bundle::PARTITION_PARAMS.to_string());
        }
        let depends = if ups.is_empty() {
            String::new()
        } else {
            format!(" Depends on `{}`.", ups.join("`, `"))
        };
        assets.push(&format!(
            "\n/// Asset `{asset}` ({}).{depends}\npub fn {asset}({}) -> {} {{\n",
            cell_name(&spec.cell),
            params.join(", "),
            type_of(asset)?
        ));
        origins.push(assets.code(
            &spec.body,
            &spec.cell,
            body_line(nb, &spec.cell),
            format!("{} (asset `{asset}`)", cell_name(&spec.cell)),
        ));
        assets.push("}\n");
        let mut quoted: Vec<String> = ups.iter().map(|u| format!("{u:?}")).collect();
        // `--partitions-from`/`-like`: the keys' asset is computed first.
        if let Some(source) = partitioning.as_ref().and_then(|p| p.source()) {
            if !ups.iter().any(|u| u == source) {
                quoted.push(format!("{source:?}"));
            }
        }
        writeln!(table, "    ({asset:?}, &[{}]),", quoted.join(", ")).expect("string");
        let like = spec.options.partitions_like.as_deref();
        let loads: String = ups
            .iter()
            .map(|u| match like == Some(u.as_str()) {
                true => format!("let {u} = input_partition(values, {u:?}, partition)?; "),
                false => format!("let {u} = input(values, {u:?})?; "),
            })
            .collect();
        let call = format!("crate::assets::{asset}({})", ups.join(", "));
        let mut args = ups.clone();
        args.extend(["partition".to_string(), "partition_index".to_string()]);
        let partition_call = format!("crate::assets::{asset}({})", args.join(", "));
        match partitioning {
            // Every partition, into the map a downstream receives.
            Some(_) => writeln!(
                arms,
                "        {asset:?} => {{ let keys: Vec<String> = {}; let mut map = BTreeMap::new();                  for (partition_index, partition) in keys.iter().enumerate() {{ let partition = partition.as_str();                  {loads}map.insert(partition.to_string(), {}); }} output(map) }}",
                keys_expr(project, asset),
                partition_call
            ),
            None => writeln!(arms, "        {asset:?} => {{ {loads}output({call}) }}"),
        }
        .expect("string");
    }
    let runtime = RUNTIME
        .replace("    // ASSETS\n", &table)
        .replace("        // ARMS\n", &arms);

    let mut checks = File::new("src/checks.rs");
    checks.push(
        "//! The notebook's `%%check` cells as tests: each computes the values it\n\
         //! checks (and their upstreams) afresh, or takes stored ones from the\n\
         //! directory `SLURMBOOK_VALUES` names (`NAME.json`).\n\n\
         #[allow(unused_imports)]\nuse super::*;\n#[allow(unused_imports)]\nuse crate::runtime::{self, CheckOutcome};\n",
    );
    let mut test_names: Vec<String> = Vec::new();
    for check in &project.checks {
        let mut bound: Vec<String> = vec![check.asset.clone()];
        if let Ok(analysis) = crate::infer::analyze_body(&check.body) {
            for free in &analysis.free {
                if project.asset(free).is_some() && !bound.contains(free) {
                    bound.push(free.clone());
                }
            }
        }
        let mut test = format!("{}_{}", check.asset, check.name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        while test_names.contains(&test) {
            test.push('_');
        }
        test_names.push(test.clone());
        let quoted: Vec<String> = bound.iter().map(|b| format!("{b:?}")).collect();
        checks.push(&format!(
            "\n/// `%%check {} {}` ({}).\n#[test]\nfn {test}() {{\n    let mut values = runtime::Values::new();\n    runtime::preload(&mut values);\n    runtime::materialize(&[{}], &mut values).unwrap_or_else(|e| panic!(\"{{e}}\"));\n",
            check.asset,
            check.name,
            cell_name(&check.cell),
            quoted.join(", ")
        ));
        for b in &bound {
            checks.push(&format!(
                "    #[allow(unused_variables)]\n    let {b}: {} = runtime::value(&values, {b:?});\n",
                type_of(b)?
            ));
        }
        checks.push("    let outcome = {\n");
        origins.push(checks.code(
            &check.body,
            &check.cell,
            body_line(nb, &check.cell),
            format!(
                "{} (check `{}` of `{}`)",
                check.cell, check.name, check.asset
            ),
        ));
        checks.push(&format!(
            "    }};\n    if let Some(failure) = outcome.failure() {{\n        panic!(\"check `{}` of asset `{}` failed: {{failure}}\");\n    }}\n}}\n",
            check.name, check.asset
        ));
    }

    let main = MAIN.replace("@CRATE@", name);
    let readme = super::readme::readme(project, nb, name, types, &order);
    Ok(GeneratedCrate {
        name: name.to_string(),
        files: vec![
            ("Cargo.toml", cargo_toml(project, name, edition)),
            ("README.md", readme),
            ("src/lib.rs", lib.text),
            ("src/assets.rs", assets.text),
            ("src/runtime.rs", runtime),
            ("src/checks.rs", checks.text),
            ("src/main.rs", main),
        ],
        origins,
    })
}

fn cargo_toml(project: &Project, name: &str, edition: &str) -> String {
    let mut deps: BTreeMap<String, String> = BTreeMap::new();
    deps.insert("serde_json".into(), "\"1\"".into());
    deps.insert(
        "serde".into(),
        "{ version = \"1\", features = [\"derive\"] }".into(),
    );
    for d in &project.deps {
        deps.insert(d.name.clone(), d.spec.trim().to_string());
    }
    let mut toml = format!(
        "# Generated by slurmbook from the notebook; `slurmbook export` rewrites it.\n\
         [package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"{edition}\"\npublish = false\n\n[dependencies]\n"
    );
    for (dep, spec) in &deps {
        writeln!(toml, "{dep} = {spec}").expect("string");
    }
    // A project of its own, even inside another workspace.
    toml.push_str("\n[workspace]\n");
    toml
}

const RUNTIME: &str = include_str!("crate_gen/runtime.rs.in");
const MAIN: &str = include_str!("crate_gen/main.rs.in");
