//! Cells and what they declare: where a spec came from ([`CellRef`]), asset
//! specs and check specs.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::lang::Lang;
use super::options::AssetOptions;

/// Where a spec came from: the cell's index in the notebook (0-based) and
/// its nbformat id. Cells only executed in the session (not in the saved
/// notebook) have `index == CellRef::SESSION`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellRef {
    pub index: usize,
    pub id: Option<String>,
}

impl CellRef {
    /// The index of session-only cells.
    pub const SESSION: usize = usize::MAX;

    /// A cell of the saved notebook.
    pub fn saved(index: usize, id: Option<String>) -> CellRef {
        CellRef { index, id }
    }

    /// A cell executed in the session that is not (yet) in the saved notebook.
    pub fn session(id: Option<String>) -> CellRef {
        CellRef {
            index: Self::SESSION,
            id,
        }
    }

    pub fn is_session(&self) -> bool {
        self.index == Self::SESSION
    }
}

impl fmt::Display for CellRef {
    /// `cell 3` (0-based index into the notebook's cells), `cell 3 (id ab12)`,
    /// or `session cell`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_session() {
            write!(f, "session cell")?;
        } else {
            write!(f, "cell {}", self.index)?;
        }
        match &self.id {
            Some(id) => write!(f, " (id {id})"),
            None => Ok(()),
        }
    }
}

/// An asset declared by an `%%asset` cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSpec {
    pub name: String,
    pub type_annotation: Option<String>,
    pub options: AssetOptions,
    pub body: String,
    pub cell: CellRef,
}

impl AssetSpec {
    /// The body's language (Rust unless `--lang` says otherwise).
    pub fn lang(&self) -> Lang {
        self.options.lang.unwrap_or_default()
    }

    /// The Rust type of the value when it is known without compiling: the
    /// annotation, else the default of a Python or bash asset.
    pub fn declared_type(&self) -> Option<String> {
        self.type_annotation
            .clone()
            .or_else(|| self.lang().default_rust_type().map(str::to_string))
    }
}

/// An asset check declared by a `%%check` cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub asset: String,
    /// `check` when the header gives no name.
    pub name: String,
    pub body: String,
    pub cell: CellRef,
}
