//! One cell through rustfmt: the Rust parts of the cell are formatted, the
//! magic lines (`%%asset ...` headers, `%materialize`, evcxr's `:dep`) and
//! the blank lines around the Rust parts stay as they are. A part is
//! formatted inside a wrapper function (a cell is a block: statements and a
//! final expression), then unindented; a result whose tokens differ from
//! the original's is never used.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use proc_macro2::TokenStream;

use super::ToolError;
use crate::syntax::{self, Head};

const OPEN: &str = "fn __slurmbook_cell() {\n";
const CLOSE: &str = "}\n";

/// What rustfmt made of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formatted {
    Unchanged,
    Changed(String),
    /// Not Rust that parses (or not safely formattable): left as it is.
    Unparsable(String),
}

/// The toolchain's rustfmt (`$RUSTFMT` or `rustfmt` on PATH), run in `dir`
/// so a `rustfmt.toml` of the project applies.
pub struct Rustfmt<'a> {
    pub edition: &'a str,
    pub dir: &'a Path,
}

enum Line<'a> {
    Keep(&'a str),
    Rust(&'a str),
}

impl Rustfmt<'_> {
    /// Formats one code cell's source.
    pub fn cell(&self, src: &str) -> Result<Formatted, ToolError> {
        let lines: Vec<&str> = src.split_inclusive('\n').collect();
        let classified: Vec<Line<'_>> = match syntax::head(src) {
            Head::Asset { line, .. } | Head::Check { line, .. } => lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    if i <= line {
                        Line::Keep(l)
                    } else {
                        Line::Rust(l)
                    }
                })
                .collect(),
            Head::UnknownCell { .. } => return Ok(Formatted::Unchanged),
            Head::Plain => lines
                .iter()
                .map(|l| {
                    if l.starts_with('%') || l.starts_with(':') {
                        Line::Keep(l)
                    } else {
                        Line::Rust(l)
                    }
                })
                .collect(),
        };
        let mut out = String::with_capacity(src.len());
        let mut run: Vec<&str> = Vec::new();
        let mut run_start = 0;
        for (i, line) in classified.iter().enumerate() {
            match line {
                Line::Keep(text) => {
                    if let Err(message) = self.run(&run, run_start, &mut out)? {
                        return Ok(Formatted::Unparsable(message));
                    }
                    run.clear();
                    out.push_str(text);
                    run_start = i + 1;
                }
                Line::Rust(text) => run.push(text),
            }
        }
        if let Err(message) = self.run(&run, run_start, &mut out)? {
            return Ok(Formatted::Unparsable(message));
        }
        Ok(if out == src {
            Formatted::Unchanged
        } else {
            Formatted::Changed(out)
        })
    }

    /// Formats a run of Rust lines (the cell's lines `first..`), keeping its
    /// leading and trailing blank lines; `Err` says why it cannot be.
    fn run(
        &self,
        lines: &[&str],
        first: usize,
        out: &mut String,
    ) -> Result<Result<(), String>, ToolError> {
        let start = lines
            .iter()
            .position(|l| !l.trim().is_empty())
            .unwrap_or(lines.len());
        let end = lines
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(start, |i| i + 1);
        lines[..start].iter().for_each(|l| out.push_str(l));
        if start < end {
            let code: String = lines[start..end].concat();
            match self.code(&code, first + start)? {
                Ok(formatted) => out.push_str(&formatted),
                Err(message) => return Ok(Err(message)),
            }
        }
        lines[end..].iter().for_each(|l| out.push_str(l));
        Ok(Ok(()))
    }

    /// Formats a piece of code that starts on the cell's line `first`
    /// (0-based); the result ends with a newline exactly when `code` does.
    fn code(&self, code: &str, first: usize) -> Result<Result<String, String>, ToolError> {
        let Ok(before) = code.parse::<TokenStream>() else {
            return Ok(Err(format!(
                "line {}: Rust that does not lex (unbalanced delimiters or an unterminated literal)",
                first + 1
            )));
        };
        let ends_with_newline = code.ends_with('\n');
        let mut input = String::with_capacity(code.len() + 32);
        input.push_str(OPEN);
        input.push_str(code);
        if !ends_with_newline {
            input.push('\n');
        }
        input.push_str(CLOSE);
        let program = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
        let mut child = Command::new(&program)
            .args(["--edition", self.edition])
            .current_dir(self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ToolError::Rustfmt(format!(
                    "cannot run {} ({e}); install it with `rustup component add rustfmt`",
                    program.to_string_lossy()
                ))
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child
            .wait_with_output()
            .map_err(super::io("running rustfmt"))?;
        let _ = writer.join();
        if !output.status.success() {
            return Ok(Err(rustfmt_error(
                &String::from_utf8_lossy(&output.stderr),
                first,
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(inner) = unwrap(&text) else {
            return Ok(Err("rustfmt's output is not the expected shape".into()));
        };
        let mut formatted: String = inner
            .split_inclusive('\n')
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect();
        if !ends_with_newline && formatted.ends_with('\n') {
            formatted.pop();
        }
        let same = formatted
            .parse::<TokenStream>()
            .is_ok_and(|after| after.to_string() == before.to_string());
        if !same {
            return Ok(Err(format!(
                "line {}: rustfmt's result cannot be put back into the cell unchanged in meaning (a multi-line string literal?); left as it is",
                first + 1
            )));
        }
        Ok(Ok(formatted))
    }
}

/// The wrapper function's body, as rustfmt printed it.
fn unwrap(text: &str) -> Option<&str> {
    if text.trim_end() == OPEN.trim_end().to_string() + "}" {
        return Some("");
    }
    text.strip_prefix(OPEN)?.strip_suffix(CLOSE)
}

/// rustfmt's first error, its line translated to the cell's.
fn rustfmt_error(stderr: &str, first: usize) -> String {
    let message = stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or("rustfmt failed")
        .trim_start_matches("error: ")
        .to_string();
    // `--> <stdin>:LINE:COLUMN`; the wrapper adds one line before the code.
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> <stdin>:"))
        .and_then(|at| at.split(':').next()?.parse::<usize>().ok())
        .map(|l| l.saturating_sub(1).max(1) + first);
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(src: &str) -> Formatted {
        let dir = std::env::temp_dir();
        Rustfmt {
            edition: "2021",
            dir: &dir,
        }
        .cell(src)
        .unwrap()
    }

    #[test]
    fn formats_bodies_and_keeps_magic_lines() {
        assert_eq!(
            fmt("%%asset a --cpus=2\nlet x=1;\nx+1"),
            Formatted::Changed("%%asset a --cpus=2\nlet x = 1;\nx + 1".into())
        );
        assert_eq!(
            fmt(":dep rand = \"0.8\"\nfn f( x:u8)->u8{x}\n%graph\n\n\nlet y=f(1);\n"),
            Formatted::Changed(
                ":dep rand = \"0.8\"\nfn f(x: u8) -> u8 {\n    x\n}\n%graph\n\n\nlet y = f(1);\n"
                    .into()
            )
        );
        assert_eq!(fmt("let x = 1;\nx"), Formatted::Unchanged);
        assert_eq!(fmt("%%bash\necho  hi"), Formatted::Unchanged);
        assert_eq!(fmt("%materialize"), Formatted::Unchanged);
    }

    #[test]
    fn broken_cells_are_reported() {
        let Formatted::Unparsable(m) = fmt("%%asset a\nlet x = ;\nx") else {
            panic!()
        };
        assert!(m.starts_with("line 2:"), "{m}");
        assert!(matches!(fmt("fn f( {"), Formatted::Unparsable(_)));
    }

    #[test]
    fn multi_line_literals_are_never_changed() {
        let src = "let s = \"a\n    b\";\nlet t=1;";
        assert!(
            matches!(fmt(src), Formatted::Unparsable(_)),
            "{:?}",
            fmt(src)
        );
    }
}
