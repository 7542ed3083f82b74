//! What the code cells of a notebook declare, and merging the session's
//! executed cells over it.

use crate::items::{CellItems, DepLine, Item, ItemsError};
use crate::model::{AssetSpec, CellRef, CheckSpec};

use super::SessionOverrides;

/// What the code cells of a notebook declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotebookContents {
    pub assets: Vec<AssetSpec>,
    pub checks: Vec<CheckSpec>,
    pub items: Vec<Item>,
    pub deps: Vec<DepLine>,
    /// Plain cells whose items could not be read (they are left out).
    pub warnings: Vec<ItemsError>,
}

impl NotebookContents {
    /// Apply the session's executed cells over the saved notebook: an
    /// executed asset replaces the saved asset of the same name (and
    /// whatever the same cell id declared before), executed checks replace
    /// the same (asset, name), and an executed plain cell's items replace
    /// the saved items of the same cell id (or are appended).
    pub fn apply_overrides(&mut self, overrides: &SessionOverrides) {
        let replaced_cells: Vec<&str> = overrides.cell_ids().collect();
        let from_replaced = |c: &CellRef| {
            c.id.as_deref()
                .is_some_and(|id| replaced_cells.contains(&id))
        };
        self.assets
            .retain(|a| !overrides.assets.contains_key(&a.name) && !from_replaced(&a.cell));
        self.checks.retain(|c| {
            !overrides
                .checks
                .contains_key(&(c.asset.clone(), c.name.clone()))
                && !from_replaced(&c.cell)
        });
        let mut session_assets: Vec<&AssetSpec> = overrides.assets.values().collect();
        session_assets.sort_by_key(|a| overrides.rank(&format!("a:{}", a.name)));
        for a in session_assets {
            self.assets.push(a.clone());
        }
        let mut session_checks: Vec<&CheckSpec> = overrides.checks.values().collect();
        session_checks.sort_by_key(|c| overrides.rank(&format!("c:{}:{}", c.asset, c.name)));
        self.checks.extend(session_checks.into_iter().cloned());
        let plain_ids: Vec<&str> = overrides.plain.keys().map(String::as_str).collect();
        let replaced = |c: &CellRef| c.id.as_deref().is_some_and(|id| plain_ids.contains(&id));
        self.items.retain(|i| !replaced(&i.cell));
        self.deps.retain(|d| !replaced(&d.cell));
        let mut plain: Vec<(&String, &CellItems)> = overrides.plain.iter().collect();
        plain.sort_by_key(|(id, _)| overrides.rank(&format!("p:{id}")));
        for (_, got) in plain {
            self.items.extend(got.items.iter().cloned());
            self.deps.extend(got.deps.iter().cloned());
        }
        // Saved cells keep notebook order; session-only specs follow.
        self.assets.sort_by_key(|a| a.cell.index);
        self.checks.sort_by_key(|c| c.cell.index);
    }
}
