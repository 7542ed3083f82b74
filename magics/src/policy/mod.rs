//! Freshness policies: how old an asset's last successful materialization
//! may be, with Dagster's `FreshnessPolicy` semantics. (Not to be confused
//! with `version::Freshness`, which is about code versions: fresh, stale,
//! missing.)
//!
//! * a time window: `--freshness 6h [--freshness-warn 3h]`: PASS while the
//!   last success is at most 3 h old, WARN up to 6 h, FAIL beyond;
//! * a deadline: `--freshness-cron "0 9 * * *" --freshness 1h`: after each
//!   tick (UTC) the asset must have materialized since tick - 1 h; it FAILs
//!   from the first tick it missed until it materializes again.
//!   `--freshness-warn 30m` then WARNs 30 min before a deadline that is not
//!   met yet;
//! * UNKNOWN: never materialized.
//!
//! Every function takes `now`: nothing here reads the clock. The upstream
//! age guard (`--max-upstream-age`) is in [`guard`], `notify` in [`notify`],
//! what `slurmbook status` reports in [`report`].

pub mod guard;
pub mod notify;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AssetOptions, CronSchedule, Window};
use crate::project::Project;
use crate::state::Materialization;

/// The timezone cron deadlines are evaluated in (as Dagster's default).
pub const CRON_TIMEZONE: &str = "UTC";

/// Where an asset stands against its freshness policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PolicyState {
    Pass,
    Warn,
    Fail,
    /// Never materialized.
    Unknown,
}

impl PolicyState {
    /// `PASS`, `WARN`, `FAIL`, `UNKNOWN` (as stored and as `slurmbook status` prints).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyState::Pass => "PASS",
            PolicyState::Warn => "WARN",
            PolicyState::Fail => "FAIL",
            PolicyState::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyState> {
        [
            PolicyState::Pass,
            PolicyState::Warn,
            PolicyState::Fail,
            PolicyState::Unknown,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for PolicyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An asset's freshness policy (from its `--freshness*` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshnessPolicy {
    /// The FAIL window; with a cron, the window before each tick.
    pub fail: Window,
    /// The WARN window (an age; with a cron, a lead before the deadline).
    pub warn: Option<Window>,
    pub cron: Option<CronSchedule>,
}

impl FreshnessPolicy {
    /// The policy an asset's options declare, if any (`--freshness` given;
    /// the parser checked the rules between the options).
    pub fn of(options: &AssetOptions) -> Option<FreshnessPolicy> {
        Some(FreshnessPolicy {
            fail: options.freshness?,
            warn: options.freshness_warn,
            cron: options.freshness_cron.clone(),
        })
    }

    /// When an asset last materialized at `last` starts to FAIL: `last +
    /// window`, or with a cron the first tick after `last + window` (the
    /// first deadline that materialization does not meet). `None`: never
    /// (a cron without more ticks).
    pub fn fails_at(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let end = last + self.fail.duration();
        match &self.cron {
            None => Some(end),
            Some(cron) => cron.next_after(end),
        }
    }

    /// When it starts to WARN: `last + warn`, or with a cron `warn` before
    /// the deadline it fails at.
    pub fn warns_at(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let warn = self.warn?.duration();
        match &self.cron {
            None => Some(last + warn),
            Some(_) => Some(self.fails_at(last)? - warn),
        }
    }

    /// The state at `now` of an asset whose last successful materialization
    /// finished at `last`.
    pub fn evaluate(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> PolicyStatus {
        let Some(last) = last else {
            return PolicyStatus {
                state: PolicyState::Unknown,
                last: None,
                now,
                warns_at: None,
                fails_at: None,
            };
        };
        let fails_at = self.fails_at(last);
        let warns_at = self.warns_at(last);
        let state = if fails_at.is_some_and(|t| now >= t) {
            PolicyState::Fail
        } else if warns_at.is_some_and(|t| now >= t) {
            PolicyState::Warn
        } else {
            PolicyState::Pass
        };
        PolicyStatus {
            state,
            last: Some(last),
            now,
            warns_at,
            fails_at,
        }
    }

    /// `FAIL after 6h, WARN after 3h`; `due by each "0 9 * * *" (UTC),
    /// materialized within 1h before it; WARN 30m before`.
    pub fn describe(&self) -> String {
        match &self.cron {
            None => {
                let mut s = format!("FAIL after {}", self.fail);
                if let Some(w) = self.warn {
                    s.push_str(&format!(", WARN after {w}"));
                }
                s
            }
            Some(cron) => {
                let mut s = format!(
                    "due by each \"{cron}\" ({CRON_TIMEZONE}), materialized within {} before it",
                    self.fail
                );
                if let Some(w) = self.warn {
                    s.push_str(&format!("; WARN {w} before"));
                }
                s
            }
        }
    }
}

/// An asset's state against its policy at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyStatus {
    pub state: PolicyState,
    /// When its last successful materialization finished.
    pub last: Option<DateTime<Utc>>,
    /// The moment evaluated.
    pub now: DateTime<Utc>,
    pub warns_at: Option<DateTime<Utc>>,
    pub fails_at: Option<DateTime<Utc>>,
}

impl PolicyStatus {
    /// How old the last success is.
    pub fn age(&self) -> Option<Duration> {
        self.last.map(|l| self.now - l)
    }

    /// `fresh for 2 h 10 m`, `warn in 50 m` (PASS, with a WARN window),
    /// `warning: fails in 1 h 10 m`, `overdue by 40 m`, `never materialized`.
    pub fn text(&self) -> String {
        let until = |t: DateTime<Utc>| human_duration(t - self.now);
        match self.state {
            PolicyState::Unknown => "never materialized".into(),
            PolicyState::Fail => match self.fails_at {
                Some(t) => format!("overdue by {}", human_duration(self.now - t)),
                None => "overdue".into(),
            },
            PolicyState::Warn => match self.fails_at {
                Some(t) => format!("warning: fails in {}", until(t)),
                None => "warning".into(),
            },
            PolicyState::Pass => match (self.warns_at, self.fails_at) {
                (Some(w), _) => format!("warn in {}", until(w)),
                (None, Some(f)) => format!("fresh for {}", until(f)),
                (None, None) => "fresh".into(),
            },
        }
    }
}

/// `2 h 10 m`, `40 m`, `3 d 4 h`, `25 s` (rounded down to the unit shown).
pub fn human_duration(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if days > 0 {
        if hours > 0 {
            format!("{days} d {hours} h")
        } else {
            format!("{days} d")
        }
    } else if hours > 0 {
        if minutes > 0 {
            format!("{hours} h {minutes} m")
        } else {
            format!("{hours} h")
        }
    } else if minutes > 0 {
        format!("{minutes} m")
    } else {
        format!("{s} s")
    }
}

/// When a materialization's value came to be (its end; its start if it has none).
pub fn value_time(m: &Materialization) -> DateTime<Utc> {
    m.finished_at.unwrap_or(m.started_at)
}

/// The state of every asset that has a policy, at `now`, from the last
/// successful materializations.
pub fn evaluate_all(
    project: &Project,
    successes: &HashMap<String, Materialization>,
    now: DateTime<Utc>,
) -> BTreeMap<String, PolicyStatus> {
    project
        .assets
        .iter()
        .filter_map(|a| {
            let policy = FreshnessPolicy::of(&a.options)?;
            let last = successes.get(&a.name).map(value_time);
            Some((a.name.clone(), policy.evaluate(last, now)))
        })
        .collect()
}

#[cfg(test)]
mod tests;
