//! Time windows of freshness policies (`--freshness 6h`, `--freshness-warn
//! 90m`, `--max-upstream-age 1d`) and the cron deadlines of
//! `--freshness-cron "0 9 * * *"`: parsed, validated and printed here;
//! evaluated in `crate::policy`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::resources::SlurmTime;

/// The shortest window a policy accepts (as Dagster's).
pub const MIN_WINDOW_SECONDS: u64 = 60;

/// The longest window: ten years (beyond it, arithmetic on dates gets silly).
const MAX_WINDOW_SECONDS: u64 = 10 * 366 * 86_400;

const WINDOW_FORMS: &str =
    "a duration of at least 1 minute: 90m, 6h, 1d, 1h30m, 2w, or Slurm's MM, HH:MM:SS, D-HH[:MM[:SS]] (01:30:00)";

/// A duration of at least one minute, in seconds. Parses human forms
/// (`90m`, `6h`, `1d`, `1h30m`, `2w`, `45s` as part of one) and Slurm's
/// time forms (`90` minutes, `01:30:00`, `1-12`); prints the human form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub seconds: u64,
}

impl Window {
    pub fn from_seconds(seconds: u64) -> Window {
        Window { seconds }
    }

    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds as i64)
    }
}

/// `1h30m`, `6h`, `2w3d`: numbers each followed by a unit (w, d, h, m, s).
fn human(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let unit = match c.to_ascii_lowercase() {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(digits.parse::<u64>().ok()?.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty()).then_some(total)
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let seconds = human(s)
            .or_else(|| s.parse::<SlurmTime>().ok().map(|t| t.seconds))
            .ok_or_else(|| WINDOW_FORMS.to_string())?;
        if !(MIN_WINDOW_SECONDS..=MAX_WINDOW_SECONDS).contains(&seconds) {
            return Err(format!("{WINDOW_FORMS}, at most 10 years"));
        }
        Ok(Window { seconds })
    }
}

impl fmt::Display for Window {
    /// `1d6h`, `1h30m`, `90s` parts in order, the zero ones left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.seconds;
        let mut wrote = false;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                wrote = true;
            }
        }
        if !wrote {
            write!(f, "0s")?;
        }
        Ok(())
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A cron schedule of deadlines (5 fields: minute, hour, day of month,
/// month, day of week; `@daily` and the like), evaluated in UTC. Parsed by
/// the `croner` crate; kept as the text it was given.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    text: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick strictly after `t`; `None` when the pattern has no
    /// more ticks (croner searches up to year 5000).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }

    /// The last tick at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t, true).ok()
    }

    /// The smallest interval between two consecutive ticks, over the ticks
    /// of the four years from 2024 (leap days and every weekday included)
    /// or the first 2000 of them; `None` for a pattern with fewer than two.
    pub fn smallest_interval(&self) -> Option<chrono::Duration> {
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .expect("a valid date")
            .with_timezone(&Utc);
        let end = start + chrono::Duration::days(4 * 366);
        let mut smallest: Option<chrono::Duration> = None;
        let mut prev = self.next_after(start - chrono::Duration::seconds(1))?;
        for _ in 0..2000 {
            let Some(next) = self.next_after(prev) else {
                break;
            };
            let gap = next - prev;
            smallest = Some(smallest.map_or(gap, |s| s.min(gap)));
            if next > end {
                break;
            }
            prev = next;
        }
        smallest
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronSchedule {}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use croner::parser::{CronParser, Seconds, Year};
        let text = s.trim();
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|e| {
            format!(
                "a cron schedule of 5 fields (minute hour day-of-month month day-of-week, e.g. \"0 9 * * *\"; in quotes): {e}"
            )
        })?;
        let schedule = CronSchedule {
            text: text.to_string(),
            cron,
        };
        let now = Utc::now();
        if schedule.next_after(now).is_none() && schedule.last_at_or_before(now).is_none() {
            return Err("a cron schedule that has ticks".to_string());
        }
        Ok(schedule)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<u64, String> {
        s.parse::<Window>().map(|w| w.seconds)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_in_human_and_slurm_forms() {
        assert_eq!(secs("90m"), Ok(5400));
        assert_eq!(secs("6h"), Ok(21600));
        assert_eq!(secs("1d"), Ok(86400));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2w"), Ok(14 * 86400));
        assert_eq!(secs("6H"), Ok(21600));
        assert_eq!(secs("01:30:00"), Ok(5400));
        assert_eq!(secs("90"), Ok(5400), "Slurm: minutes");
        assert_eq!(secs("1-12"), Ok(86400 + 12 * 3600));
        assert_eq!(secs("1m"), Ok(60));
        assert_eq!(secs("90s"), Ok(90));
        for bad in [
            "", "0", "30s", "59s", "00:00:59", "h", "6x", "6h3", "-6h", "6 h", "1.5h", "6h;id",
            "99999w",
        ] {
            let e = secs(bad).expect_err(bad);
            assert!(e.contains("at least 1 minute"), "{bad}: {e}");
        }
    }

    #[test]
    fn windows_print_compactly_and_round_trip() {
        for (text, shown) in [
            ("90m", "1h30m"),
            ("6h", "6h"),
            ("1-06:00:00", "1d6h"),
            ("90s", "1m30s"),
        ] {
            let w: Window = text.parse().unwrap();
            assert_eq!(w.to_string(), shown);
            assert_eq!(shown.parse::<Window>().unwrap(), w);
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
        }
    }

    #[test]
    fn cron_schedules_parse_and_tick_in_utc() {
        let c: CronSchedule = "0 9 * * *".parse().unwrap();
        assert_eq!(
            c.next_after(at("2026-03-01T08:00:00Z")),
            Some(at("2026-03-01T09:00:00Z"))
        );
        assert_eq!(
            c.next_after(at("2026-03-01T09:00:00Z")),
            Some(at("2026-03-02T09:00:00Z")),
            "strictly after"
        );
        assert_eq!(
            c.last_at_or_before(at("2026-03-01T09:00:00Z")),
            Some(at("2026-03-01T09:00:00Z"))
        );
        assert_eq!(c.smallest_interval(), Some(chrono::Duration::days(1)));
        let weekdays: CronSchedule = "30 8 * * MON-FRI".parse().unwrap();
        assert_eq!(
            weekdays.smallest_interval(),
            Some(chrono::Duration::days(1))
        );
        let hourly: CronSchedule = "@hourly".parse().unwrap();
        assert_eq!(hourly.smallest_interval(), Some(chrono::Duration::hours(1)));
        for bad in [
            "",
            "0 9 * *",
            "0 9 * * * *",
            "61 9 * * *",
            "x y z",
            "0 9 31 2 *",
        ] {
            let e = bad.parse::<CronSchedule>().expect_err(bad);
            assert!(e.contains("cron schedule"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"0 9 * * *\"");
        assert_eq!(serde_json::from_str::<CronSchedule>(&json).unwrap(), c);
    }
}
