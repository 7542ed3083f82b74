//! `slurmbook test NOTEBOOK [--stored]`: the notebook's `%%check` cells (and
//! the `#[test]` functions of its item cells) as `cargo test` of its crate,
//! on values computed afresh, or with `--stored` on the values the notebook
//! has stored for its fresh assets.

use std::path::PathBuf;
use std::process::Command;

use super::{io, write_work_crate, Loaded, ToolError};
use crate::run::Workspace;

/// A crate ready for `cargo test`.
#[derive(Debug, Clone)]
pub struct TestCrate {
    pub manifest: PathBuf,
    /// Stored values for the checks (`SLURMBOOK_VALUES`), with `--stored`.
    pub values: Option<PathBuf>,
}

impl TestCrate {
    /// `cargo test` of the crate (stdio inherited unless the caller sets it).
    pub fn command(&self) -> Command {
        let mut cmd = super::cargo();
        cmd.arg("test")
            .arg("--manifest-path")
            .arg(&self.manifest)
            .env("CARGO_TARGET_DIR", super::target_dir());
        match &self.values {
            Some(dir) => cmd.env("SLURMBOOK_VALUES", dir),
            None => cmd.env_remove("SLURMBOOK_VALUES"),
        };
        cmd
    }
}

/// Writes the crate; with `stored`, also the stored values of the fresh
/// assets (as `NAME.json`) for the checks to use instead of computing them.
pub fn prepare(
    workspace: &mut Workspace,
    loaded: &Loaded,
    stored: bool,
) -> Result<TestCrate, ToolError> {
    let (_, dir) = write_work_crate(loaded)?;
    let values = if stored {
        let values = dir.join("values");
        let _ = std::fs::remove_dir_all(&values);
        std::fs::create_dir_all(&values).map_err(io("creating the stored values"))?;
        let project = &loaded.project;
        let db = workspace
            .db()
            .map_err(|e| ToolError::Cargo(format!("state database: {e}")))?;
        let last = db
            .last_successes()
            .map_err(|e| ToolError::Cargo(format!("state database: {e}")))?;
        let freshness = project.freshness(&last);
        for (name, m) in &last {
            let fresh = freshness.get(name).is_some_and(|f| f.is_fresh());
            let Some(path) = m.value_path.as_deref().filter(|p| p.ends_with(".json")) else {
                continue;
            };
            if fresh {
                let path = workspace.dir().join(path);
                let path = if path.is_file() {
                    path
                } else {
                    PathBuf::from(m.value_path.as_deref().unwrap_or_default())
                };
                if path.is_file() {
                    std::fs::copy(&path, values.join(format!("{name}.json")))
                        .map_err(io(format!("copying the stored value of {name}")))?;
                }
            }
        }
        Some(values)
    } else {
        None
    };
    Ok(TestCrate {
        manifest: dir.join("Cargo.toml"),
        values,
    })
}
