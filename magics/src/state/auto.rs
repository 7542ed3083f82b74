//! Automation (`slurmbook tick`): the `run_triggers` table (what triggered
//! a run, shown by `%runs`) and `auto_requests` (each asset a tick
//! requested, on the tick's clock). A tick reads what it evaluates and
//! records what it requests in ONE write transaction ([`StateDb::claim_auto`]),
//! so two ticks racing on one database never request the same asset: the
//! second waits for the first's transaction and then sees its claims.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, OptionalExtension};

use crate::model::{MaterializationStatus, RunId, Target};

use super::*;

/// How long a claim whose run never recorded the asset (the tick died
/// before submitting) keeps the asset "in progress".
pub const CLAIM_TIMEOUT_HOURS: i64 = 6;

/// What conditions are evaluated against, for one asset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFacts {
    /// The last successful materialization: its id and when it ended.
    pub last_success: Option<(i64, DateTime<Utc>)>,
    /// The latest attempt (any status but skipped): its id and start.
    pub latest_attempt: Option<(i64, DateTime<Utc>)>,
    /// Running now: the latest attempt runs (and is newer than the last
    /// success), or a tick claimed it and its run has not recorded it yet.
    pub in_progress: bool,
    /// When a tick last requested it (the tick's clock).
    pub last_request: Option<DateTime<Utc>>,
}

/// Facts of every asset the database knows (others have the default).
pub type AutoFacts = HashMap<String, AssetFacts>;

/// An asset a tick requests, and why ("eager: upstream raw updated").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRequest {
    pub asset: String,
    pub reason: String,
}

/// A tick's claim: the run it began and what it requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoClaim {
    pub run_id: RunId,
    pub requests: Vec<AutoRequest>,
    /// What `%runs` shows as the run's trigger.
    pub trigger: String,
}

impl AutoClaim {
    /// The requested assets, as a selection (`a,b,c`).
    pub fn selection(&self) -> String {
        selection_of(&self.requests)
    }
}

/// The requested assets, as a selection (`a,b,c`).
pub fn selection_of(requests: &[AutoRequest]) -> String {
    requests
        .iter()
        .map(|r| r.asset.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A run's trigger text: `b: eager: upstream a updated; c: on-missing`.
pub fn trigger_of(requests: &[AutoRequest]) -> String {
    requests
        .iter()
        .map(|r| format!("{}: {}", r.asset, r.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl StateDb {
    /// The facts conditions are evaluated against, at `now`.
    pub fn auto_facts(&self, now: DateTime<Utc>) -> Result<AutoFacts, StateError> {
        let mut facts: AutoFacts = HashMap::new();
        let successes = self.last_successes()?;
        for (asset, m) in &successes {
            facts.entry(asset.clone()).or_default().last_success =
                Some((m.id, m.finished_at.unwrap_or(m.started_at)));
        }
        for (asset, m) in self.latest_all()? {
            let newer = successes.get(&asset).is_none_or(|s| m.started_after(s));
            let f = facts.entry(asset).or_default();
            f.latest_attempt = Some((m.id, m.started_at));
            if m.status == MaterializationStatus::Running && newer {
                f.in_progress = true;
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT asset, MAX(requested_at) FROM auto_requests GROUP BY asset")?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (asset, at) in rows {
            facts.entry(asset).or_default().last_request = Some(parse_ts("auto_requests", &at)?);
        }
        // Claims of runs still going that have not recorded the asset yet.
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.asset, a.requested_at FROM auto_requests a JOIN runs r ON r.id = a.run_id
             WHERE r.status = 'running' AND NOT EXISTS
               (SELECT 1 FROM materializations m WHERE m.run_id = a.run_id AND m.asset = a.asset)",
        )?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (asset, at) in rows {
            let at = parse_ts("auto_requests", &at)?;
            if now - at < Duration::hours(CLAIM_TIMEOUT_HOURS) {
                facts.entry(asset).or_default().in_progress = true;
            }
        }
        Ok(facts)
    }

    /// Evaluates and claims in one write transaction: `evaluate` gets the
    /// facts at `now`; what it requests is recorded with a new run (status
    /// running, its trigger) before the transaction commits. `None` when it
    /// requests nothing (no run is begun).
    pub fn claim_auto(
        &self,
        now: DateTime<Utc>,
        target: Target,
        profile: Option<&str>,
        evaluate: impl FnOnce(&AutoFacts) -> Vec<AutoRequest>,
    ) -> Result<Option<AutoClaim>, StateError> {
        let tx = self.write()?;
        let facts = self.auto_facts(now)?;
        let requests = evaluate(&facts);
        if requests.is_empty() {
            tx.commit()?;
            return Ok(None);
        }
        let selection = selection_of(&requests);
        let trigger = trigger_of(&requests);
        tx.execute(
            "INSERT INTO runs (started_at, selection, target, profile, status) VALUES (?1, ?2, ?3, ?4, 'running')",
            params![ts(super::now()), selection, target.as_str(), profile],
        )?;
        let run_id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO run_triggers (run_id, trigger) VALUES (?1, ?2)",
            params![run_id, trigger],
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO auto_requests (run_id, asset, requested_at, reason) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in &requests {
                stmt.execute(params![run_id, r.asset, ts(now), r.reason])?;
            }
        }
        tx.commit()?;
        Ok(Some(AutoClaim {
            run_id,
            requests,
            trigger,
        }))
    }

    /// Corrects a claimed run's target once its plan says where it runs.
    pub fn set_run_target(&self, run: RunId, target: Target) -> Result<(), StateError> {
        self.conn
            .prepare_cached("UPDATE runs SET target = ?1 WHERE id = ?2")?
            .execute(params![target.as_str(), run])?;
        Ok(())
    }

    /// What triggered `run` (a tick's conditions), if anything did.
    pub fn run_trigger(&self, run: RunId) -> Result<Option<String>, StateError> {
        Ok(self
            .conn
            .prepare_cached("SELECT trigger FROM run_triggers WHERE run_id = ?1")?
            .query_row([run], |r| r.get(0))
            .optional()?)
    }

    /// Every run's trigger, by run.
    pub fn run_triggers(&self) -> Result<HashMap<RunId, String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT run_id, trigger FROM run_triggers")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
