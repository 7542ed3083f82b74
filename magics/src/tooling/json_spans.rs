//! Where each cell's `source` is in a notebook file's text: the byte ranges
//! `fmt` replaces, so that every other byte of the file stays as it was.
//! The text is valid JSON (checked by serde_json first); this only walks it.

use std::ops::Range;

/// One cell: its `cell_type` and the byte range of its `source` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpan {
    pub cell_type: String,
    pub source: Option<Range<usize>>,
}

/// The cells of notebook JSON `text`; `None` when it is not a notebook
/// (not an object with a `cells` array of objects).
pub fn cell_spans(text: &str) -> Option<Vec<CellSpan>> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let b = text.as_bytes();
    let mut cells = None;
    let mut i = ws(b, 0);
    object(b, &mut i, |b, i, key| {
        if key == "cells" {
            cells = Some(cell_array(text, b, i)?);
            Some(())
        } else {
            skip(b, i)
        }
    })?;
    cells
}

fn cell_array(text: &str, b: &[u8], i: &mut usize) -> Option<Vec<CellSpan>> {
    let mut out = Vec::new();
    expect(b, i, b'[')?;
    *i = ws(b, *i);
    if b.get(*i) == Some(&b']') {
        *i += 1;
        return Some(out);
    }
    loop {
        let mut cell = CellSpan {
            cell_type: String::new(),
            source: None,
        };
        object(b, i, |b, i, key| {
            match key {
                "source" => {
                    let start = *i;
                    skip(b, i)?;
                    cell.source = Some(start..*i);
                }
                "cell_type" => {
                    let start = *i;
                    skip(b, i)?;
                    cell.cell_type = serde_json::from_str(&text[start..*i]).ok()?;
                }
                _ => skip(b, i)?,
            }
            Some(())
        })?;
        out.push(cell);
        *i = ws(b, *i);
        match b.get(*i)? {
            b',' => *i = ws(b, *i + 1),
            b']' => {
                *i += 1;
                return Some(out);
            }
            _ => return None,
        }
    }
}

/// Walks an object, calling `member` with `i` at each value (after `:` and
/// whitespace); `member` must move `i` past the value.
fn object(
    b: &[u8],
    i: &mut usize,
    mut member: impl FnMut(&[u8], &mut usize, &str) -> Option<()>,
) -> Option<()> {
    expect(b, i, b'{')?;
    *i = ws(b, *i);
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Some(());
    }
    loop {
        let start = *i;
        string(b, i)?;
        let key: String = serde_json::from_slice(&b[start..*i]).ok()?;
        *i = ws(b, *i);
        expect(b, i, b':')?;
        *i = ws(b, *i);
        member(b, i, &key)?;
        *i = ws(b, *i);
        match b.get(*i)? {
            b',' => *i = ws(b, *i + 1),
            b'}' => {
                *i += 1;
                return Some(());
            }
            _ => return None,
        }
    }
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn string(b: &[u8], i: &mut usize) -> Option<()> {
    expect(b, i, b'"')?;
    loop {
        match b.get(*i)? {
            b'\\' => *i += 2,
            b'"' => {
                *i += 1;
                return Some(());
            }
            _ => *i += 1,
        }
    }
}

/// Moves `i` past one JSON value.
fn skip(b: &[u8], i: &mut usize) -> Option<()> {
    match b.get(*i)? {
        b'"' => string(b, i),
        b'{' => object(b, i, |b, i, _| skip(b, i)),
        b'[' => {
            *i = ws(b, *i + 1);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Some(());
            }
            loop {
                skip(b, i)?;
                *i = ws(b, *i);
                match b.get(*i)? {
                    b',' => *i = ws(b, *i + 1),
                    b']' => {
                        *i += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }
        _ => {
            while b
                .get(*i)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                *i += 1;
            }
            Some(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sources() {
        let text = r##"{"metadata": {"a": [1, {"b": "}"}]},
 "cells": [
  {"cell_type": "markdown", "source": ["# x\n", "y"], "metadata": {}},
  {"metadata": {"k": "\"source\""}, "cell_type": "code", "source": "let a = \"]\";", "outputs": [true, null, -1.5e3]},
  {"cell_type": "raw"}
 ], "nbformat": 4}"##;
        let cells = cell_spans(text).unwrap();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0].cell_type, "markdown");
        assert_eq!(
            &text[cells[0].source.clone().unwrap()],
            r##"["# x\n", "y"]"##
        );
        assert_eq!(cells[1].cell_type, "code");
        assert_eq!(
            &text[cells[1].source.clone().unwrap()],
            r#""let a = \"]\";""#
        );
        assert_eq!(cells[2].source, None);
        assert!(cell_spans("[1]").is_none());
        assert!(cell_spans("{\"cells\": 3}").is_none());
        assert!(cell_spans("{\"cells\": [}").is_none());
    }
}
