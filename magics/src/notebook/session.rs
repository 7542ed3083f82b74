//! The cells the kernel executed in this session, which may differ from the
//! saved notebook (the user has not saved yet).

use std::collections::BTreeMap;

use crate::decl::{declare, plain_items, CellDecl};
use crate::items::CellItems;
use crate::model::{AssetSpec, CellRef, CheckSpec};
use crate::workers::par_map;

use super::NotebookError;

/// Cells executed in the session, to be merged over the saved notebook
/// (which may be stale: the user has not saved yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOverrides {
    /// Executed `%%asset` cells by asset name.
    pub assets: BTreeMap<String, AssetSpec>,
    /// Executed `%%check` cells by (asset, check name).
    pub checks: BTreeMap<(String, String), CheckSpec>,
    /// Items of executed plain cells, by cell id (cells without an id get a
    /// generated key, so each execution adds).
    pub plain: BTreeMap<String, CellItems>,
    order: BTreeMap<String, u64>,
    counter: u64,
}

impl SessionOverrides {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a cell the kernel executed. `cell_id` is the nbformat id
    /// JupyterLab sends (`cellId` in the request metadata), if any; `index`
    /// the cell's index in the saved notebook if known. Returns an error for
    /// a malformed asset/check header (and records nothing).
    pub fn record(
        &mut self,
        cell_id: Option<&str>,
        index: Option<usize>,
        source: &str,
    ) -> Result<(), NotebookError> {
        let cell = CellRef {
            index: index.unwrap_or(CellRef::SESSION),
            id: cell_id.map(str::to_string),
        };
        self.counter += 1;
        let n = self.counter;
        let decl = declare(&cell, source)?;
        // A cell that used to declare something else no longer does.
        if let Some(id) = cell_id {
            self.assets.retain(|_, a| a.cell.id.as_deref() != Some(id));
            self.checks.retain(|_, c| c.cell.id.as_deref() != Some(id));
            self.plain.remove(id);
        }
        match decl {
            CellDecl::Asset(a) => {
                self.order.insert(format!("a:{}", a.name), n);
                self.assets.insert(a.name.clone(), a);
            }
            CellDecl::Check(c) => {
                self.order.insert(format!("c:{}:{}", c.asset, c.name), n);
                self.checks.insert((c.asset.clone(), c.name.clone()), c);
            }
            CellDecl::Foreign => {}
            CellDecl::Plain => {
                // Items that do not parse were not defined in the session either.
                let got = par_map(&[(&cell, source)], |(c, s)| plain_items(c, s))
                    .pop()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let key = cell_id.map_or_else(|| format!("#{n}"), str::to_string);
                self.order.insert(format!("p:{key}"), n);
                self.plain.insert(key, got);
            }
        }
        Ok(())
    }

    /// When a key was recorded (entries added by hand sort last).
    pub(super) fn rank(&self, key: &str) -> u64 {
        self.order.get(key).copied().unwrap_or(u64::MAX)
    }

    pub(super) fn cell_ids(&self) -> impl Iterator<Item = &str> {
        self.assets
            .values()
            .filter_map(|a| a.cell.id.as_deref())
            .chain(self.checks.values().filter_map(|c| c.cell.id.as_deref()))
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty() && self.checks.is_empty() && self.plain.is_empty()
    }
}
