//! Automation conditions (`%%asset NAME --auto eager | on-missing |
//! "on-cron CRON"`), Dagster's `AutomationCondition`s: parsed and printed
//! here; evaluated against the state database and a clock in `crate::auto`.
//!
//! Cron expressions are the freshness policies' [`CronSchedule`]s: five
//! fields (minute hour day-of-month month day-of-week), UTC, parsed by
//! the `croner` crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::window::CronSchedule;

/// The forms `--auto` accepts, for error messages and `%help`.
pub const AUTO_FORMS: &str =
    "eager, on-missing, or \"on-cron CRON\" (five fields, UTC, e.g. \"on-cron 0 9 * * *\")";

/// When an asset materializes by itself (`slurmbook tick`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoCondition {
    /// Newly missing, or any upstream updated since it last ran; never
    /// while an upstream is missing or in progress, or it is in progress.
    Eager,
    /// Once after each cron tick, when every upstream has updated since it.
    OnCron(Box<CronSchedule>),
    /// Missing and never requested; upstreams present and not in progress.
    OnMissing,
}

impl fmt::Display for AutoCondition {
    /// `eager`, `on-missing`, `on-cron 0 9 * * *` (what `--auto` takes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoCondition::Eager => f.write_str("eager"),
            AutoCondition::OnMissing => f.write_str("on-missing"),
            AutoCondition::OnCron(c) => write!(f, "on-cron {c}"),
        }
    }
}

impl FromStr for AutoCondition {
    type Err = String;
    fn from_str(s: &str) -> Result<AutoCondition, String> {
        let s = s.trim();
        match s {
            "eager" => return Ok(AutoCondition::Eager),
            "on-missing" => return Ok(AutoCondition::OnMissing),
            _ => {}
        }
        match s.strip_prefix("on-cron") {
            Some(rest) if rest.starts_with(char::is_whitespace) => {
                let text = rest.split_whitespace().collect::<Vec<_>>().join(" ");
                Ok(AutoCondition::OnCron(Box::new(text.parse()?)))
            }
            Some(_) => Err(format!("{AUTO_FORMS}; `on-cron` needs a cron expression")),
            None => Err(format!("{AUTO_FORMS}, not `{s}`")),
        }
    }
}

impl Serialize for AutoCondition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AutoCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AutoCondition, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn conditions_parse_and_print() {
        for text in [
            "eager",
            "on-missing",
            "on-cron 0 9 * * *",
            "on-cron */15 * * * 1-5",
        ] {
            let c: AutoCondition = text.parse().unwrap();
            assert_eq!(c.to_string(), text);
        }
        let c: AutoCondition = "on-cron   0  9 * * *".parse().unwrap();
        assert_eq!(c.to_string(), "on-cron 0 9 * * *");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"on-cron 0 9 * * *\"");
        assert_eq!(serde_json::from_str::<AutoCondition>(&json).unwrap(), c);
    }

    #[test]
    fn bad_conditions_say_what_is_expected() {
        for bad in [
            "lazy",
            "on-cron",
            "on-cron 0 9 * *",
            "on-cron 61 9 * * *",
            "on-cron 0 9 * * *; rm -rf /",
            "on-cronx 0 9 * * *",
        ] {
            let e = bad.parse::<AutoCondition>().unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!("lazy"
            .parse::<AutoCondition>()
            .unwrap_err()
            .contains("eager, on-missing"));
    }

    #[test]
    fn ticks_are_found_around_now() {
        let cron: CronSchedule = "0 9 * * *".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 10, 30, 0).unwrap();
        assert_eq!(
            cron.last_at_or_before(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 2, 9, 0, 0).unwrap())
        );
        assert_eq!(
            cron.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 3, 9, 0, 0).unwrap())
        );
        let at_tick = Utc.with_ymd_and_hms(2026, 1, 2, 9, 0, 0).unwrap();
        assert_eq!(cron.last_at_or_before(at_tick), Some(at_tick));
    }
}
