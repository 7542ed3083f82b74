//! `slurmbook lint NOTEBOOK [--deny-warnings]` and `%lint`: `cargo clippy`
//! on the notebook's crate, every diagnostic mapped back to the cell and the
//! line of the cell it points at ("cell 9 (asset `stats`), line 2: ...").

use std::collections::BTreeSet;

use super::crate_gen::GeneratedCrate;
use super::{io, write_work_crate, Loaded, ToolError};
use crate::draw::table::Table;

/// One compiler or clippy diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `warning` or `error`.
    pub level: String,
    /// The lint or error code (`clippy::needless_range_loop`, `E0308`).
    pub code: Option<String>,
    pub message: String,
    /// The cell (`cell 9 (asset `stats`)`), or the generated file when the
    /// diagnostic is not in notebook code.
    pub cell: String,
    pub cell_index: Option<usize>,
    /// 1-based line and column in the cell (or the generated file).
    pub line: usize,
    pub column: usize,
}

impl Diagnostic {
    /// `cell 9 (asset `stats`), line 2: warning: ... [clippy::x]`
    pub fn describe(&self) -> String {
        let code = self
            .code
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        format!(
            "{}, line {}: {}: {}{code}",
            self.cell, self.line, self.level, self.message
        )
    }
}

/// What clippy said about a notebook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintReport {
    pub diagnostics: Vec<Diagnostic>,
}

impl LintReport {
    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.level == "warning")
            .count()
    }

    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.level == "error")
            .count()
    }

    /// `N warnings, M errors` (or `no warnings`).
    pub fn summary(&self) -> String {
        if self.diagnostics.is_empty() {
            return "clippy: no warnings".to_string();
        }
        format!(
            "clippy: {} warning(s), {} error(s)",
            self.warnings(),
            self.errors()
        )
    }

    /// The table `%lint` shows.
    pub fn table(&self) -> Table {
        Table {
            columns: ["cell", "line", "level", "lint", "message"]
                .map(String::from)
                .to_vec(),
            rows: self
                .diagnostics
                .iter()
                .map(|d| {
                    vec![
                        d.cell.clone(),
                        d.line.to_string(),
                        d.level.clone(),
                        d.code.clone().unwrap_or_default(),
                        d.message.clone(),
                    ]
                })
                .collect(),
            row_states: self
                .diagnostics
                .iter()
                .map(|d| {
                    Some(
                        if d.level == "error" {
                            "failed"
                        } else {
                            "stale"
                        }
                        .into(),
                    )
                })
                .collect(),
            caption: Some(self.summary()),
        }
    }
}

/// Runs clippy on the notebook's crate.
pub fn lint(loaded: &Loaded) -> Result<LintReport, ToolError> {
    let (generated, dir) = write_work_crate(loaded)?;
    let out = super::cargo()
        .args([
            "clippy",
            "--all-targets",
            "--message-format=json",
            "--quiet",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", super::target_dir())
        .output()
        .map_err(io("running cargo clippy"))?;
    let report = parse(&String::from_utf8_lossy(&out.stdout), &generated);
    if !out.status.success() && report.errors() == 0 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ToolError::Cargo(format!(
            "cargo clippy failed:\n{}",
            stderr.trim()
        )));
    }
    Ok(report)
}

/// Reads cargo's JSON messages, mapping spans through the crate's origins.
pub fn parse(stdout: &str, generated: &GeneratedCrate) -> LintReport {
    let mut seen = BTreeSet::new();
    let mut diagnostics = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = &msg["message"];
        let level = message["level"].as_str().unwrap_or("");
        if msg["reason"] != "compiler-message" || !matches!(level, "warning" | "error") {
            continue;
        }
        let Some(span) = message["spans"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["is_primary"] == true))
        else {
            continue; // "N warnings emitted" and the like
        };
        let file = span["file_name"].as_str().unwrap_or("");
        let file_line = span["line_start"].as_u64().unwrap_or(0) as usize;
        let column = span["column_start"].as_u64().unwrap_or(0) as usize;
        let text = message["message"].as_str().unwrap_or("").to_string();
        if !seen.insert((file.to_string(), file_line, column, text.clone())) {
            continue; // the same code compiled as the library and its tests
        }
        let (cell, cell_index, line) = match generated.locate(file, file_line) {
            Some((origin, line)) => (origin.label.clone(), Some(origin.cell.index), line),
            None => (format!("generated {file}"), None, file_line),
        };
        diagnostics.push(Diagnostic {
            level: level.to_string(),
            code: message["code"]["code"].as_str().map(str::to_string),
            message: text,
            cell,
            cell_index,
            line,
            column,
        });
    }
    diagnostics.sort_by_key(|d| (d.cell_index.unwrap_or(usize::MAX), d.line, d.column));
    LintReport { diagnostics }
}
