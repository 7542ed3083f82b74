//! `slurmbook fmt NOTEBOOK... [--check]`: rustfmt on every Rust cell of a
//! notebook. Only the `source` of the cells that change is rewritten, in
//! place in the file's text, so outputs, metadata and the rest of the file
//! stay byte for byte; the file is replaced atomically (temporary file,
//! fsync, rename) and only when something changed. Cells that do not parse
//! are reported and left as they are.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::json_spans::cell_spans;
use super::rustfmt::{Formatted, Rustfmt};
use super::{describe_cell, io, ToolError};
use crate::notebook::NotebookError;

/// What `fmt` did (or, with `--check`, would do) to one notebook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FmtReport {
    pub path: PathBuf,
    /// Cells whose formatting changes (`cell 4 (asset `stats`)`).
    pub changed: Vec<String>,
    /// Cells left as they are, and why.
    pub unparsable: Vec<(String, String)>,
    /// Whether the file was rewritten.
    pub written: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SourceForm {
    Text(String),
    Lines(Vec<String>),
}

/// Formats the notebook at `path` (with `check`, only reports).
pub fn format_notebook(path: &Path, edition: &str, check: bool) -> Result<FmtReport, ToolError> {
    let text = std::fs::read_to_string(path).map_err(|source| NotebookError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format_error = |message: String| NotebookError::Format {
        path: path.display().to_string(),
        message,
    };
    let cells = match cell_spans(&text) {
        Some(cells) => cells,
        None => {
            let why = serde_json::from_str::<serde::de::IgnoredAny>(&text)
                .err()
                .map_or("no `cells` list of objects".to_string(), |e| e.to_string());
            return Err(format_error(why).into());
        }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let rustfmt = Rustfmt { edition, dir };
    let mut report = FmtReport {
        path: path.to_path_buf(),
        ..FmtReport::default()
    };
    // (byte range of the source value in the file, its new JSON text)
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let Some(range) = cell.source.clone().filter(|_| cell.cell_type == "code") else {
            continue;
        };
        let old_json = &text[range.clone()];
        let form: SourceForm =
            serde_json::from_str(old_json).map_err(|e| format_error(e.to_string()))?;
        let src = match &form {
            SourceForm::Text(s) => s.clone(),
            SourceForm::Lines(lines) => lines.concat(),
        };
        match rustfmt.cell(&src)? {
            Formatted::Unchanged => {}
            Formatted::Unparsable(why) => report.unparsable.push((describe_cell(index, &src), why)),
            Formatted::Changed(new) => {
                report.changed.push(describe_cell(index, &src));
                edits.push((range, encode(old_json, &form, &new)));
            }
        }
    }
    if check || edits.is_empty() {
        return Ok(report);
    }
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (range, json) in &edits {
        out.push_str(&text[at..range.start]);
        out.push_str(json);
        at = range.end;
    }
    out.push_str(&text[at..]);
    write_atomically(path, out.as_bytes())?;
    report.written = true;
    Ok(report)
}

/// The new source as JSON, in the form (and the layout) of the old one: a
/// list of lines keeps the indentation nbformat gave it.
fn encode(old_json: &str, form: &SourceForm, new: &str) -> String {
    let string = |s: &str| serde_json::to_string(s).expect("strings serialize");
    match form {
        SourceForm::Lines(old) if !old.is_empty() => {
            let open = &old_json[1..old_json.find('"').unwrap_or(1)];
            let close = &old_json[old_json.rfind('"').map_or(1, |i| i + 1)..old_json.len() - 1];
            let separator = format!(",{}", open.trim_start_matches(','));
            let lines: Vec<String> = new.split_inclusive('\n').map(string).collect();
            format!("[{open}{}{close}]", lines.join(&separator))
        }
        SourceForm::Lines(_) => {
            let lines: Vec<String> = new.split_inclusive('\n').map(string).collect();
            format!("[{}]", lines.join(", "))
        }
        SourceForm::Text(_) => string(new),
    }
}

/// Replaces `path` by `bytes`: a temporary file beside it, synced, with the
/// same permissions, renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.slurmbook-fmt.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_nbformat() {
        let old = "[\n    \"a\\n\",\n    \"b\"\n   ]";
        let form: SourceForm = serde_json::from_str(old).unwrap();
        assert_eq!(
            encode(old, &form, "x\ny\nz"),
            "[\n    \"x\\n\",\n    \"y\\n\",\n    \"z\"\n   ]"
        );
        let form = SourceForm::Text(String::new());
        assert_eq!(encode("\"a\"", &form, "a\n\"b\""), "\"a\\n\\\"b\\\"\"");
    }
}
