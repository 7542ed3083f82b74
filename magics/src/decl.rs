//! What one code cell declares: an asset or a check (header parsed, body
//! split off), plain Rust code (its items and `:dep` lines), or another
//! language's cell.

use thiserror::Error;

use crate::items::{extract_items, CellItems, ItemsError};
use crate::model::{AssetSpec, CellRef, CheckSpec};
use crate::syntax::{self, asset, CellError, Head};

/// A cell whose `%%asset` / `%%check` header is malformed.
#[derive(Debug, Error)]
#[error("{cell}: {source}")]
pub struct DeclError {
    pub cell: CellRef,
    pub source: CellError,
}

/// What one cell declares.
#[allow(clippy::large_enum_variant)] // a parse result, not stored in bulk
#[derive(Debug, Clone)]
pub(crate) enum CellDecl {
    Asset(AssetSpec),
    Check(CheckSpec),
    /// Rust code (items, statements) and line magics.
    Plain,
    /// Another cell magic (`%%bash`...): not Rust, nothing declared.
    Foreign,
}

impl CellDecl {
    /// The same declaration made by another cell.
    pub(crate) fn relabel(&self, cell: &CellRef) -> CellDecl {
        let mut out = self.clone();
        match &mut out {
            CellDecl::Asset(a) => a.cell = cell.clone(),
            CellDecl::Check(c) => c.cell = cell.clone(),
            CellDecl::Plain | CellDecl::Foreign => {}
        }
        out
    }
}

/// Parse the header of an asset or check cell; plain cells give `Plain`.
pub(crate) fn declare(cell: &CellRef, src: &str) -> Result<CellDecl, DeclError> {
    let err = |line: usize, source| DeclError {
        cell: cell.clone(),
        source: CellError::Header {
            line: line + 1,
            source,
        },
    };
    match syntax::head(src) {
        Head::Asset { args, line } => {
            let h = asset::parse_asset_header(args, 8).map_err(|e| err(line, e))?;
            Ok(CellDecl::Asset(AssetSpec {
                name: h.name,
                type_annotation: h.type_annotation,
                options: h.options,
                body: body_after(src, line),
                cell: cell.clone(),
            }))
        }
        Head::Check { args, line } => {
            let h = asset::parse_check_header(args, 8).map_err(|e| err(line, e))?;
            Ok(CellDecl::Check(CheckSpec {
                asset: h.asset,
                name: h.name.unwrap_or_else(|| "check".to_string()),
                body: body_after(src, line),
                cell: cell.clone(),
            }))
        }
        Head::UnknownCell { .. } => Ok(CellDecl::Foreign),
        Head::Plain => Ok(CellDecl::Plain),
    }
}

fn body_after(src: &str, line: usize) -> String {
    src.split_inclusive('\n').skip(line + 1).collect()
}

/// Items and `:dep` lines of a plain cell; line magics are skipped (they
/// are not validated here: a bad magic does not hide the cell's items).
pub(crate) fn plain_items(cell: &CellRef, src: &str) -> Result<CellItems, ItemsError> {
    let mut all = CellItems::default();
    for (line, piece) in syntax::split_code(src) {
        if let syntax::Piece::Rust(code) = piece {
            let got = extract_items(&code, cell, line)?;
            all.items.extend(got.items);
            all.deps.extend(got.deps);
        }
    }
    Ok(all)
}
