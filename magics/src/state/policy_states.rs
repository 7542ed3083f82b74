//! The `policy_states` table: each asset's freshness policy state as last
//! evaluated (`PASS`, `WARN`, `FAIL`, `UNKNOWN`), the materialization it was
//! computed from and since when it holds, so that `notify` runs once when
//! an asset newly enters FAIL (see `policy::notify`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::*;
use crate::model::MaterializationId;

/// One asset's evaluated policy state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub asset: String,
    /// `PASS`, `WARN`, `FAIL` or `UNKNOWN`.
    pub state: String,
    /// The last successful materialization it was computed from.
    pub materialization: Option<MaterializationId>,
    /// Since when the asset is in this state (as first evaluated).
    pub since: DateTime<Utc>,
}

impl StateDb {
    /// Remembers the states evaluated at `now` (`since` of a row whose state
    /// did not change is kept), forgets assets not in `rows`, and returns
    /// what was remembered before, by asset: one transaction, so two
    /// processes evaluating at once see each change once.
    pub fn remember_policy_states(
        &self,
        rows: &[(String, String, Option<MaterializationId>)],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, PolicyRow>, StateError> {
        let tx = self.write()?;
        let before = read_policy_states(&tx)?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO policy_states (asset, state, materialization_id, since, evaluated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (asset) DO UPDATE SET
                   since = CASE WHEN policy_states.state = excluded.state THEN policy_states.since ELSE excluded.since END,
                   state = excluded.state, materialization_id = excluded.materialization_id,
                   evaluated_at = excluded.evaluated_at",
            )?;
            for (asset, state, materialization) in rows {
                up.execute(params![asset, state, materialization, ts(now)])?;
            }
            let keep: std::collections::HashSet<&str> =
                rows.iter().map(|(a, _, _)| a.as_str()).collect();
            let mut del = tx.prepare_cached("DELETE FROM policy_states WHERE asset = ?1")?;
            for asset in before.keys().filter(|a| !keep.contains(a.as_str())) {
                del.execute([asset])?;
            }
        }
        tx.commit()?;
        Ok(before)
    }

    /// The remembered policy states, by asset.
    pub fn policy_states(&self) -> Result<HashMap<String, PolicyRow>, StateError> {
        read_policy_states(&self.conn)
    }
}

fn read_policy_states(conn: &Connection) -> Result<HashMap<String, PolicyRow>, StateError> {
    let mut stmt =
        conn.prepare_cached("SELECT asset, state, materialization_id, since FROM policy_states")?;
    let raw = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(asset, state, materialization, since)| {
            Ok((
                asset.clone(),
                PolicyRow {
                    asset,
                    state,
                    materialization,
                    since: parse_ts("policy_states", &since)?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn row(asset: &str, state: &str, m: Option<i64>) -> (String, String, Option<i64>) {
        (asset.into(), state.into(), m)
    }

    #[test]
    fn remembers_states_keeps_since_and_returns_what_was_before() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let (t1, t2, t3) = (
            at("2026-03-01T00:00:00Z"),
            at("2026-03-01T01:00:00Z"),
            at("2026-03-01T02:00:00Z"),
        );
        let before = db
            .remember_policy_states(&[row("a", "PASS", Some(1)), row("b", "UNKNOWN", None)], t1)
            .unwrap();
        assert!(before.is_empty());
        let before = db
            .remember_policy_states(&[row("a", "PASS", Some(1)), row("b", "FAIL", Some(2))], t2)
            .unwrap();
        assert_eq!(before["b"].state, "UNKNOWN");
        assert_eq!(before["a"].since, t1);
        let now = db.policy_states().unwrap();
        assert_eq!(now["a"].since, t1, "unchanged: since kept");
        assert_eq!((now["b"].state.as_str(), now["b"].since), ("FAIL", t2));
        assert_eq!(now["b"].materialization, Some(2));
        // An asset that lost its policy is forgotten.
        db.remember_policy_states(&[row("b", "FAIL", Some(2))], t3)
            .unwrap();
        let now = db.policy_states().unwrap();
        assert_eq!(now.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(now["b"].since, t2);
    }
}
