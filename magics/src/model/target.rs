//! Where assets run (`Target`) and how a run maps assets to Slurm jobs
//! (`JobGrouping`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an asset (or a whole `%materialize`) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// In the kernel's own evcxr session.
    Local,
    /// As a Slurm job on the configured cluster.
    Slurm,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Slurm => "slurm",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Target::Local),
            "slurm" => Ok(Target::Slurm),
            _ => Err("`local` or `slurm`".to_string()),
        }
    }
}
/// How `%materialize` maps assets to Slurm jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobGrouping {
    /// One job per asset, chained with `afterok`.
    PerAsset,
    /// Compatible connected assets share one allocation, each an `srun`
    /// step (unless `--own-job`); the default.
    Grouped,
}

impl JobGrouping {
    pub fn as_str(self) -> &'static str {
        match self {
            JobGrouping::PerAsset => "per-asset",
            JobGrouping::Grouped => "grouped",
        }
    }
}

impl FromStr for JobGrouping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "per-asset" => Ok(JobGrouping::PerAsset),
            "grouped" => Ok(JobGrouping::Grouped),
            _ => Err(format!("`{s}`: use `per-asset` or `grouped`")),
        }
    }
}
