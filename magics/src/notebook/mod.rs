//! Reading a `.ipynb` into cells, and cells into asset specs, check specs
//! and item code ([`NotebookContents`]); the cells executed in the session
//! ([`SessionOverrides`]) are merged over them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cache::PlanCache;
use crate::decl::{CellDecl, DeclError};
use crate::model::CellRef;
use crate::syntax::CellError;

mod contents;
mod session;

pub use contents::NotebookContents;
pub use session::SessionOverrides;

/// nbformat cell type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    Code,
    Markdown,
    Raw,
}

/// One cell of a notebook file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookCell {
    pub cell: CellRef,
    pub kind: CellKind,
    pub source: String,
}

/// A notebook file's cells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notebook {
    pub path: Option<PathBuf>,
    pub cells: Vec<NotebookCell>,
}

/// A notebook that cannot be read.
#[derive(Debug, Error)]
pub enum NotebookError {
    #[error("cannot read notebook {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Jupyter notebook: {message}")]
    Format { path: String, message: String },
    #[error("{cell}: {source}")]
    Cell { cell: CellRef, source: CellError },
}

#[derive(Deserialize)]
struct RawNotebook {
    cells: Vec<RawCell>,
}

#[derive(Deserialize)]
struct RawCell {
    cell_type: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    source: Source,
}

/// nbformat's `source`: a string or a list of strings, joined on reading.
#[derive(Default)]
struct Source(String);

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Source, E> {
                Ok(Source(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Source, E> {
                Ok(Source(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Source, A::Error> {
                let mut out = String::new();
                while seq.next_element_seed(AppendTo(&mut out))?.is_some() {}
                Ok(Source(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Appends one string of a `source` list to the joined source, without an
/// allocation per line.
struct AppendTo<'a>(&'a mut String);

impl<'de> serde::de::DeserializeSeed<'de> for AppendTo<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AppendTo<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a line of source")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

impl Notebook {
    /// Read a `.ipynb` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Notebook, NotebookError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| NotebookError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut nb = Self::parse(&text, &path.display().to_string())?;
        nb.path = Some(path.to_path_buf());
        Ok(nb)
    }

    /// Read notebook JSON from a string.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(json: &str) -> Result<Notebook, NotebookError> {
        Self::parse(json, "notebook")
    }

    fn parse(json: &str, what: &str) -> Result<Notebook, NotebookError> {
        let raw: RawNotebook = serde_json::from_str(json).map_err(|e| NotebookError::Format {
            path: what.to_string(),
            message: e.to_string(),
        })?;
        let cells = raw
            .cells
            .into_iter()
            .enumerate()
            .map(|(index, c)| NotebookCell {
                cell: CellRef { index, id: c.id },
                kind: match c.cell_type.as_str() {
                    "code" => CellKind::Code,
                    "markdown" => CellKind::Markdown,
                    _ => CellKind::Raw,
                },
                source: c.source.0,
            })
            .collect();
        Ok(Notebook { path: None, cells })
    }

    /// Asset specs, check specs, items and `:dep` lines of the code cells.
    pub fn contents(&self) -> Result<NotebookContents, NotebookError> {
        self.contents_with(&PlanCache::new())
    }

    /// Like [`Notebook::contents`], reusing (and updating) a cache of the
    /// plain cells' items.
    pub fn contents_with(&self, cache: &PlanCache) -> Result<NotebookContents, NotebookError> {
        let mut out = NotebookContents::default();
        let mut plain: Vec<(&CellRef, &str)> = Vec::new();
        let code: Vec<(&CellRef, &str)> = self
            .cells
            .iter()
            .filter(|c| c.kind == CellKind::Code)
            .map(|c| (&c.cell, c.source.as_str()))
            .collect();
        for (decl, (cell, src)) in cache.declare_all(&code).into_iter().zip(&code) {
            match decl? {
                CellDecl::Asset(a) => out.assets.push(a),
                CellDecl::Check(k) => out.checks.push(k),
                CellDecl::Plain => plain.push((cell, src)),
                CellDecl::Foreign => {}
            }
        }
        for result in cache.cell_items(&plain) {
            match result {
                Ok(got) => {
                    out.items.extend(got.items);
                    out.deps.extend(got.deps);
                }
                Err(e) => out.warnings.push(e),
            }
        }
        Ok(out)
    }
}

impl From<DeclError> for NotebookError {
    fn from(e: DeclError) -> Self {
        NotebookError::Cell {
            cell: e.cell,
            source: e.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NB: &str = r##"{
      "nbformat": 4, "nbformat_minor": 5, "metadata": {},
      "cells": [
        {"cell_type": "markdown", "id": "m0", "metadata": {}, "source": ["# Title\n", "%%asset not_code"]},
        {"cell_type": "code", "id": "c1", "metadata": {}, "outputs": [], "execution_count": null,
         "source": [":dep rand = \"0.8\"\n", "fn helper(x: f64) -> f64 { x * 2.0 }\n", "let tmp = 1;"]},
        {"cell_type": "code", "id": "c2", "metadata": {}, "outputs": [], "execution_count": 1,
         "source": "%%asset temperatures --cpus=4\n(0..10).map(|i| helper(i as f64)).collect::<Vec<f64>>()"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
         "source": ["%%asset summary: (f64, usize)\n", "let n = temperatures.len();\n", "(temperatures.iter().sum::<f64>(), n)"]},
        {"cell_type": "code", "id": "c4", "metadata": {}, "outputs": [], "execution_count": null,
         "source": ["%%check summary nonneg\n", "summary.0 >= 0.0"]},
        {"cell_type": "code", "id": "c5", "metadata": {}, "outputs": [], "execution_count": null,
         "source": ["%materialize +summary\n", "%bogus magic"]},
        {"cell_type": "raw", "id": "r6", "metadata": {}, "source": "fn not_rust() {}"}
      ]
    }"##;

    #[test]
    fn reads_cells_in_both_source_forms() {
        let nb = Notebook::from_str(NB).unwrap();
        assert_eq!(nb.cells.len(), 7);
        assert_eq!(nb.cells[0].kind, CellKind::Markdown);
        assert_eq!(
            nb.cells[1].source,
            ":dep rand = \"0.8\"\nfn helper(x: f64) -> f64 { x * 2.0 }\nlet tmp = 1;"
        );
        assert_eq!(nb.cells[3].cell, CellRef { index: 3, id: None });
        assert_eq!(nb.cells[2].cell.id.as_deref(), Some("c2"));
        assert_eq!(nb.cells[6].kind, CellKind::Raw);
    }

    #[test]
    fn contents_of_code_cells() {
        let c = Notebook::from_str(NB).unwrap().contents().unwrap();
        let names: Vec<&str> = c.assets.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["temperatures", "summary"]);
        assert_eq!(c.assets[0].options.cpus, Some(4));
        assert_eq!(c.assets[1].type_annotation.as_deref(), Some("(f64, usize)"));
        assert_eq!(
            c.assets[1].body,
            "let n = temperatures.len();\n(temperatures.iter().sum::<f64>(), n)"
        );
        assert_eq!(c.assets[1].cell.index, 3);
        assert_eq!(c.checks.len(), 1);
        assert_eq!(
            (c.checks[0].asset.as_str(), c.checks[0].name.as_str()),
            ("summary", "nonneg")
        );
        assert_eq!(c.items.len(), 1);
        assert_eq!(c.items[0].names, ["helper"]);
        assert_eq!(c.deps.len(), 1);
        assert_eq!(c.deps[0].name, "rand");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn bad_header_names_the_cell() {
        let nb = r#"{"cells": [{"cell_type": "code", "id": "x9", "source": "%%asset a --cpus=lots\n1"}]}"#;
        let e = Notebook::from_str(nb).unwrap().contents().unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("cell 0 (id x9): line 1:"), "{msg}");
        assert!(msg.contains("--cpus"), "{msg}");
        assert!(Notebook::from_str("{\"cells\": 3}").is_err());
        assert!(Notebook::from_path("/nonexistent/nb.ipynb").is_err());
    }

    #[test]
    fn unparsable_plain_cell_is_a_warning() {
        let nb = r#"{"cells": [{"cell_type": "code", "source": "fn ok() {}\nfn broken( {"}]}"#;
        let c = Notebook::from_str(nb).unwrap().contents().unwrap();
        assert!(c.items.is_empty());
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn session_overrides_replace_saved_specs() {
        let mut c = Notebook::from_str(NB).unwrap().contents().unwrap();
        let mut s = SessionOverrides::new();
        // `summary` edited in the session (the saved notebook is stale)
        s.record(None, Some(3), "%%asset summary\ntemperatures.len()")
            .unwrap();
        // cell c2 now declares a differently named asset: the old name goes
        s.record(Some("c2"), Some(2), "%%asset temps\nvec![1.0]")
            .unwrap();
        // a new session-only asset
        s.record(Some("new1"), None, "%%asset extra\nsummary + 1")
            .unwrap();
        // plain cell c1 re-executed with a different helper
        s.record(Some("c1"), Some(1), "fn helper2() {}").unwrap();
        // a bad header records nothing
        assert!(s.record(Some("zz"), None, "%%asset bad-name\n1").is_err());
        c.apply_overrides(&s);
        let names: Vec<&str> = c.assets.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["temps", "summary", "extra"]);
        assert_eq!(c.assets[1].body, "temperatures.len()");
        assert!(c.assets[2].cell.is_session());
        assert_eq!(c.items.len(), 1);
        assert_eq!(c.items[0].names, ["helper2"]);
        assert!(c.deps.is_empty(), "the :dep line of c1 is gone");
        // re-executing the same cell id replaces, not adds
        let mut s2 = s.clone();
        s2.record(Some("new1"), None, "%%asset extra2\n1").unwrap();
        assert!(!s2.assets.contains_key("extra"));
        assert!(s2.assets.contains_key("extra2"));
    }

    #[test]
    fn cell_ref_display() {
        assert_eq!(CellRef::saved(3, None).to_string(), "cell 3");
        assert_eq!(
            CellRef::saved(3, Some("ab".into())).to_string(),
            "cell 3 (id ab)"
        );
        assert_eq!(CellRef::session(None).to_string(), "session cell");
    }
}
