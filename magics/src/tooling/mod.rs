//! A notebook's code as maintained code, for the CLI and the kernel alike:
//!
//! * [`fmt`]: `slurmbook fmt [--check]`, rustfmt on every Rust cell (magic
//!   lines, cell positions, outputs and metadata untouched);
//! * [`crate_gen`]: the notebook as a Cargo crate (a library with one
//!   function per asset, a binary, tests from the checks), with a map from
//!   the generated lines back to the cells;
//! * [`export`]: `slurmbook export --to DIR` / `%export DIR`, that crate as
//!   a standalone project;
//! * [`lint`]: `slurmbook lint` / `%lint`, clippy's diagnostics mapped back
//!   to cells and lines;
//! * [`test`]: `slurmbook test`, the checks as `cargo test`.

pub mod crate_gen;
pub mod export;
pub mod fmt;
mod json_spans;
pub mod lint;
mod readme;
mod rustfmt;
pub mod test;

use std::path::PathBuf;

use thiserror::Error;

use crate::bundle::BundleError;
use crate::notebook::NotebookError;
use crate::project::ProjectError;

/// Why a tooling command could not do its work (nothing was changed).
#[derive(Debug, Error)]
pub enum ToolError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Notebook(Box<NotebookError>),
    #[error(transparent)]
    Project(Box<ProjectError>),
    #[error(transparent)]
    Bundle(Box<BundleError>),
    #[error(transparent)]
    Config(Box<crate::config::ConfigError>),
    #[error("no notebook is attached: open this kernel from a saved notebook, or `%config notebook=PATH`")]
    NoNotebook,
    #[error("{0}")]
    Rustfmt(String),
    #[error("{0}")]
    Export(String),
    #[error("{0}")]
    Cargo(String),
}

macro_rules! boxed_from {
    ($($variant:ident($error:ty)),*) => {$(
        impl From<$error> for ToolError {
            fn from(e: $error) -> Self {
                ToolError::$variant(Box::new(e))
            }
        }
    )*};
}
boxed_from!(
    Notebook(NotebookError),
    Project(ProjectError),
    Bundle(BundleError),
    Config(crate::config::ConfigError)
);

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolError {
    let context = context.into();
    move |source| ToolError::Io { context, source }
}

/// What lint, test and export work on: the project (the session's cells
/// over the saved notebook), the notebook itself and the Rust edition.
pub struct Loaded {
    pub project: crate::project::Project,
    pub nb: crate::notebook::Notebook,
    pub edition: String,
}

/// Loads what lint, test and export need from a workspace.
pub fn load(workspace: &crate::run::Workspace) -> Result<Loaded, ToolError> {
    let (path, _) = workspace.notebook().ok_or(ToolError::NoNotebook)?;
    let nb = crate::notebook::Notebook::from_path(path)?;
    let project = workspace.project()?;
    let edition = workspace.settings(None)?.edition().to_string();
    Ok(Loaded {
        project,
        nb,
        edition,
    })
}

/// Writes the notebook's crate into its work directory (see [`work_dir`]).
pub(crate) fn write_work_crate(
    loaded: &Loaded,
) -> Result<(crate_gen::GeneratedCrate, PathBuf), ToolError> {
    let path = loaded.nb.path.clone().unwrap_or_default();
    let types = crate_gen::infer_types(&loaded.project)?;
    let name = crate_gen::package_name(&path);
    let generated =
        crate_gen::generate(&loaded.project, &loaded.nb, &name, &types, &loaded.edition)?;
    let dir = work_dir(&path);
    generated.write(&dir)?;
    Ok((generated, dir))
}

/// Where the crates of `lint` and `test` are generated and built: beside
/// the job bundles, so their dependencies build once.
pub fn work_dir(notebook: &std::path::Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(notebook.to_string_lossy().as_bytes()));
    crate::bundle::build_root()
        .join("tooling")
        .join(&hash[..16])
}

/// The shared target directory of generated crates.
pub fn target_dir() -> PathBuf {
    crate::bundle::build_root().join("target")
}

/// `cargo`, or `$CARGO` when cargo runs us.
pub(crate) fn cargo() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    std::process::Command::new(cargo)
}

/// How reports name a cell: `cell 4 (asset `stats`)`, `cell 6 (check of
/// `celsius`)`, `cell 2` (0-based, as everywhere in slurmbook).
pub fn describe_cell(index: usize, src: &str) -> String {
    use crate::syntax::{head, Head};
    let first_word = |args: &str| {
        args.split_whitespace()
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_string()
    };
    match head(src) {
        Head::Asset { args, .. } => format!("cell {index} (asset `{}`)", first_word(args)),
        Head::Check { args, .. } => format!("cell {index} (check of `{}`)", first_word(args)),
        _ => format!("cell {index}"),
    }
}
