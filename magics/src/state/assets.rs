//! The `assets` table: each asset's current version and cell.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::model::CellRef;

use super::*;

/// A row of the `assets` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRow {
    pub name: String,
    pub version: String,
    pub own_hash: String,
    pub cell: CellRef,
}

impl StateDb {
    /// Replace the `assets` table with the notebook's current assets, in one transaction.
    pub fn sync_assets(&self, rows: &[AssetRow]) -> Result<(), StateError> {
        let tx = self.write()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS keep (name TEXT PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM keep", [])?;
        {
            let at = ts(now());
            let mut keep = tx.prepare_cached("INSERT OR IGNORE INTO keep (name) VALUES (?1)")?;
            let mut up = tx.prepare_cached(
                "INSERT INTO assets (name, version, own_hash, cell_index, cell_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, own_hash = excluded.own_hash,
                   cell_index = excluded.cell_index, cell_id = excluded.cell_id,
                   updated_at = CASE WHEN assets.version = excluded.version THEN assets.updated_at ELSE excluded.updated_at END",
            )?;
            for r in rows {
                keep.execute([&r.name])?;
                let index = (!r.cell.is_session()).then_some(r.cell.index as i64);
                up.execute(params![r.name, r.version, r.own_hash, index, r.cell.id, at])?;
            }
        }
        tx.execute(
            "DELETE FROM assets WHERE name NOT IN (SELECT name FROM keep)",
            [],
        )?;
        tx.execute("DELETE FROM keep", [])?;
        tx.commit()?;
        Ok(())
    }

    /// The `assets` table, by name.
    pub fn assets(&self) -> Result<Vec<AssetRow>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, version, own_hash, cell_index, cell_id FROM assets ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let index: Option<i64> = r.get(3)?;
                Ok(AssetRow {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    own_hash: r.get(2)?,
                    cell: CellRef {
                        index: index.map_or(CellRef::SESSION, |i| i as usize),
                        id: r.get(4)?,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
