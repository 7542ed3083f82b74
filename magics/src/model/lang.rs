//! The language of an asset's body (`%%asset NAME --lang python|bash`):
//! Rust (the default, evaluated by evcxr or compiled into the job binary),
//! or Python and bash, run by the asset's environment's interpreter with
//! upstream values passed as JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The language of an asset's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Rust,
    /// Run by the environment's `python`; the value is the final expression.
    Python,
    /// Run by `bash -euo pipefail`; the value is the directory `$OUT`.
    Bash,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Bash => "bash",
        }
    }

    /// Not Rust: run by an interpreter of the environment, values as JSON.
    pub fn is_foreign(self) -> bool {
        self != Lang::Rust
    }

    /// The Rust type of the value for Rust consumers when the header
    /// states none: any JSON for Python, the directory's path for bash.
    pub fn default_rust_type(self) -> Option<&'static str> {
        match self {
            Lang::Rust => None,
            Lang::Python => Some("serde_json::Value"),
            Lang::Bash => Some("std::path::PathBuf"),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "bash" => Ok(Lang::Bash),
            _ => Err("`rust`, `python` or `bash`".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for l in [Lang::Rust, Lang::Python, Lang::Bash] {
            assert_eq!(l.as_str().parse::<Lang>(), Ok(l));
        }
        assert!("perl".parse::<Lang>().is_err());
        assert!(!Lang::Rust.is_foreign() && Lang::Python.is_foreign());
        assert_eq!(Lang::default(), Lang::Rust);
        assert_eq!(Lang::Bash.default_rust_type(), Some("std::path::PathBuf"));
    }
}
