//! Slurm resource values: time limits, memory sizes, GPU requests. Each
//! parses from and prints to the form `sbatch` accepts, and validates
//! strictly (these values end up in job scripts).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ident::{positive_int, valid_chars};

/// A Slurm time limit, stored in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlurmTime {
    pub seconds: u64,
}

const TIME_FORMATS: &str = "a Slurm time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS";

impl FromStr for SlurmTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        fn num(part: &str) -> Option<u64> {
            if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        }
        let bad = || TIME_FORMATS.to_string();
        let (days, rest) = match s.split_once('-') {
            Some((d, rest)) => (Some(num(d).ok_or_else(bad)?), rest),
            None => (None, s),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let nums: Vec<u64> = parts
            .iter()
            .map(|p| num(p))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let seconds = match (days, nums.as_slice()) {
            (None, [m]) => m * 60,
            (None, [m, s]) if *s < 60 => m * 60 + s,
            (None, [h, m, s]) if *m < 60 && *s < 60 => h * 3600 + m * 60 + s,
            (Some(d), [h]) if *h < 24 => d * 86400 + h * 3600,
            (Some(d), [h, m]) if *h < 24 && *m < 60 => d * 86400 + h * 3600 + m * 60,
            (Some(d), [h, m, s]) if *h < 24 && *m < 60 && *s < 60 => {
                d * 86400 + h * 3600 + m * 60 + s
            }
            _ => return Err(bad()),
        };
        if seconds == 0 {
            return Err(format!("{TIME_FORMATS}, greater than zero"));
        }
        Ok(SlurmTime { seconds })
    }
}

impl fmt::Display for SlurmTime {
    /// `HH:MM:SS`, or `D-HH:MM:SS` from one day on: both are valid `sbatch --time`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, rem) = (self.seconds / 86400, self.seconds % 86400);
        let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        if d > 0 {
            write!(f, "{d}-{h:02}:{m:02}:{s:02}")
        } else {
            write!(f, "{h:02}:{m:02}:{s:02}")
        }
    }
}

/// Memory unit of `--mem` (Slurm's default unit is megabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemUnit {
    K,
    M,
    G,
    T,
}

/// A `--mem` value such as `4G`, `500M` or `1024` (megabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemSize {
    pub amount: u64,
    pub unit: MemUnit,
}

impl MemSize {
    /// The size in kibibytes, as Slurm counts it.
    pub fn kibibytes(&self) -> u64 {
        let factor = match self.unit {
            MemUnit::K => 1,
            MemUnit::M => 1024,
            MemUnit::G => 1024 * 1024,
            MemUnit::T => 1024 * 1024 * 1024,
        };
        self.amount.saturating_mul(factor)
    }
}

impl FromStr for MemSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            "a memory size: digits with an optional K, M, G or T suffix (e.g. 4G, 500M, 1024)"
                .to_string()
        };
        let (digits, unit) = match s.as_bytes().last() {
            Some(b'k' | b'K') => (&s[..s.len() - 1], MemUnit::K),
            Some(b'm' | b'M') => (&s[..s.len() - 1], MemUnit::M),
            Some(b'g' | b'G') => (&s[..s.len() - 1], MemUnit::G),
            Some(b't' | b'T') => (&s[..s.len() - 1], MemUnit::T),
            _ => (s, MemUnit::M),
        };
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(MemSize {
            amount: digits.parse().map_err(|_| bad())?,
            unit,
        })
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            MemUnit::K => "K",
            MemUnit::M => "M",
            MemUnit::G => "G",
            MemUnit::T => "T",
        };
        write!(f, "{}{unit}", self.amount)
    }
}

/// A `--gpus` value: `2` or `a100:2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gpus {
    pub kind: Option<String>,
    pub count: u32,
}

impl FromStr for Gpus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || "a GPU count (>= 1) or TYPE:COUNT, e.g. 2 or a100:2".to_string();
        let (kind, count) = match s.split_once(':') {
            Some((kind, count)) => {
                if !valid_chars(kind, |c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                    return Err(bad());
                }
                (Some(kind.to_string()), count)
            }
            None => (None, s),
        };
        let count = positive_int(count).ok_or_else(bad)?;
        Ok(Gpus { kind, count })
    }
}

impl fmt::Display for Gpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(kind) => write!(f, "{kind}:{}", self.count),
            None => write!(f, "{}", self.count),
        }
    }
}

macro_rules! serde_as_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: String| serde::de::Error::custom(format!("expected {e}")))
            }
        }
    )*};
}
serde_as_string!(SlurmTime, MemSize, Gpus);
