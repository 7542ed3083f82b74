//! Cell syntax: splitting a cell into an asset/check header and body, or
//! into runs of Rust code and line magics.

pub mod args;
pub mod asset;
pub mod complete;
pub mod line;
pub mod magic;
pub mod options;
pub mod selection;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use asset::{AssetHeader, CheckHeader, HeaderError};
pub use magic::{LineMagic, MagicError};

/// An `%%asset` cell: header and body (everything after the header line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetCell {
    pub header: AssetHeader,
    pub body: String,
    /// 0-based line of the body's first line within the cell.
    pub body_line: usize,
}

/// A `%%check` cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCell {
    pub header: CheckHeader,
    pub body: String,
    pub body_line: usize,
}

/// One piece of a plain cell, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// A run of Rust code (may include evcxr `:` commands).
    Rust { code: String, line: usize },
    /// A `%name args` line (0-based `line` within the cell).
    Magic { magic: LineMagic, line: usize },
}

/// A parsed cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // a parse result, not stored in bulk
pub enum Cell {
    Asset(AssetCell),
    Check(CheckCell),
    Code(Vec<Segment>),
}

/// A cell that does not parse; `line` is 1-based within the cell.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CellError {
    #[error("line {line}: {source}")]
    Header { line: usize, source: HeaderError },
    #[error("line {line}: {source}")]
    Magic { line: usize, source: MagicError },
    #[error("line {line}: `%%{name}` is only valid on a cell's first non-blank line")]
    MisplacedCellMagic { line: usize, name: String },
}

/// What the first non-blank line of a cell says the cell is.
pub(crate) enum Head<'a> {
    Asset { args: &'a str, line: usize },
    Check { args: &'a str, line: usize },
    UnknownCell { name: &'a str, line: usize },
    Plain,
}

pub(crate) fn head(src: &str) -> Head<'_> {
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some(rest) = line.strip_prefix("%%") else {
            return Head::Plain;
        };
        let name_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (name, args) = rest.split_at(name_end);
        return match name {
            "asset" => Head::Asset { args, line: i },
            "check" => Head::Check { args, line: i },
            _ => Head::UnknownCell { name, line: i },
        };
    }
    Head::Plain
}

/// The body after the header line `line` (0-based).
fn body_after(src: &str, line: usize) -> String {
    let mut rest = src;
    for _ in 0..=line {
        match rest.find('\n') {
            Some(i) => rest = &rest[i + 1..],
            None => return String::new(),
        }
    }
    rest.to_string()
}

/// Parse a cell. Line magics are validated all together: one bad line makes
/// the whole cell an error, so nothing of it runs.
pub fn parse_cell(src: &str) -> Result<Cell, CellError> {
    match head(src) {
        Head::Asset { args, line } => {
            let header =
                asset::parse_asset_header(args, 8).map_err(|source| CellError::Header {
                    line: line + 1,
                    source,
                })?;
            Ok(Cell::Asset(AssetCell {
                header,
                body: body_after(src, line),
                body_line: line + 1,
            }))
        }
        Head::Check { args, line } => {
            let header =
                asset::parse_check_header(args, 8).map_err(|source| CellError::Header {
                    line: line + 1,
                    source,
                })?;
            Ok(Cell::Check(CheckCell {
                header,
                body: body_after(src, line),
                body_line: line + 1,
            }))
        }
        Head::UnknownCell { name, line } => Err(CellError::Magic {
            line: line + 1,
            source: MagicError::UnknownCell {
                name: name.to_string(),
            },
        }),
        Head::Plain => {
            let mut segments = Vec::new();
            for (line, piece) in split_code(src) {
                match piece {
                    Piece::Rust(code) => segments.push(Segment::Rust { code, line }),
                    Piece::Magic(text) => {
                        if let Some(rest) = text.strip_prefix("%%") {
                            return Err(CellError::MisplacedCellMagic {
                                line: line + 1,
                                name: rest.split_whitespace().next().unwrap_or("").to_string(),
                            });
                        }
                        let magic =
                            magic::parse_line_magic(text).map_err(|source| CellError::Magic {
                                line: line + 1,
                                source,
                            })?;
                        segments.push(Segment::Magic { magic, line });
                    }
                }
            }
            Ok(Cell::Code(segments))
        }
    }
}

pub(crate) enum Piece<'a> {
    Rust(String),
    Magic(&'a str),
}

/// Split a plain cell into runs of Rust lines and `%` lines (column 0), with
/// their 0-based first line. Whitespace-only Rust runs are dropped.
pub(crate) fn split_code(src: &str) -> Vec<(usize, Piece<'_>)> {
    let mut out = Vec::new();
    let mut run = String::new();
    let mut run_start = 0;
    let flush = |run: &mut String, start: usize, out: &mut Vec<(usize, Piece<'_>)>| {
        if !run.trim().is_empty() {
            out.push((start, Piece::Rust(std::mem::take(run))));
        }
        run.clear();
    };
    for (i, line) in src.lines().enumerate() {
        if line.starts_with('%') {
            flush(&mut run, run_start, &mut out);
            out.push((i, Piece::Magic(line)));
            run_start = i + 1;
        } else {
            if run.is_empty() {
                run_start = i;
            } else {
                run.push('\n');
            }
            run.push_str(line);
        }
    }
    flush(&mut run, run_start, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_cell_with_leading_blank_lines() {
        let cell = parse_cell("\n%%asset temps --cpus=4\n(0..10).collect::<Vec<_>>()\n").unwrap();
        let Cell::Asset(a) = cell else {
            panic!("{cell:?}")
        };
        assert_eq!(a.header.name, "temps");
        assert_eq!(a.header.options.cpus, Some(4));
        assert_eq!(a.body, "(0..10).collect::<Vec<_>>()\n");
        assert_eq!(a.body_line, 2);
    }

    #[test]
    fn header_only_cell_has_empty_body() {
        let Cell::Asset(a) = parse_cell("%%asset x").unwrap() else {
            panic!()
        };
        assert_eq!(a.body, "");
    }

    #[test]
    fn check_cell() {
        let Cell::Check(c) = parse_cell("%%check summary positive\nsummary.0 > 0.0").unwrap()
        else {
            panic!()
        };
        assert_eq!(c.header.asset, "summary");
        assert_eq!(c.header.name.as_deref(), Some("positive"));
        assert_eq!(c.body, "summary.0 > 0.0");
    }

    #[test]
    fn code_cell_segments_in_order() {
        let src = "let a = 1;\nlet b = 2;\n%graph\n\n%materialize +b --dry-run\nprintln!(\"{a}\");";
        let Cell::Code(segs) = parse_cell(src).unwrap() else {
            panic!()
        };
        assert_eq!(segs.len(), 4);
        assert!(
            matches!(&segs[0], Segment::Rust { code, line: 0 } if code == "let a = 1;\nlet b = 2;")
        );
        assert!(matches!(
            &segs[1],
            Segment::Magic {
                magic: LineMagic::Graph { selection: None },
                line: 2
            }
        ));
        assert!(
            matches!(&segs[2], Segment::Magic { magic: LineMagic::Materialize(m), line: 4 } if m.dry_run)
        );
        assert!(matches!(&segs[3], Segment::Rust { line: 5, .. }));
    }

    #[test]
    fn errors_carry_the_line_and_nothing_is_returned() {
        let e = parse_cell("let a = 1;\n%assets\n%bogus\n").unwrap_err();
        assert!(matches!(e, CellError::Magic { line: 3, .. }), "{e}");
        assert!(e.to_string().contains("%materialize"), "{e}");
        let e = parse_cell("let a = 1;\n%%asset x\n1").unwrap_err();
        assert!(
            matches!(e, CellError::MisplacedCellMagic { line: 2, .. }),
            "{e}"
        );
        let e = parse_cell("%%time\n1").unwrap_err();
        assert!(e.to_string().contains("%%asset, %%check"), "{e}");
        let e = parse_cell("\n%%asset x --cpus=zero\n1").unwrap_err();
        assert!(matches!(e, CellError::Header { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("column 18"), "{e}");
    }

    #[test]
    fn indented_percent_is_rust() {
        let Cell::Code(segs) = parse_cell("let x = 5\n  % 3;").unwrap() else {
            panic!()
        };
        assert_eq!(segs.len(), 1);
    }
}
