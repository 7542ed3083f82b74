//! Runs and materializations: ids and statuses, as stored in the state
//! database and reported by executors.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A run's id in the state database.
pub type RunId = i64;

/// A materialization's id.
pub type MaterializationId = i64;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($name::$variant),)* _ => Err(s.to_string()) }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// State of one materialization.
    MaterializationStatus {
        Running = "running",
        Ok = "ok",
        Failed = "failed",
        Cancelled = "cancelled",
        Skipped = "skipped",
    }
);

text_enum!(
    /// State of a run.
    RunStatus {
        Running = "running",
        Ok = "ok",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);
