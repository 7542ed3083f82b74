//! The options of an `%%asset` cell, as parsed (see `syntax::options` for
//! their declaration and parsing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::{Gpus, MemSize, SlurmTime};
use super::target::Target;

/// The options of one `%%asset` cell. `None` means "not given" (the profile
/// or the kernel's defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetOptions {
    pub partition: Option<String>,
    pub time: Option<SlurmTime>,
    pub cpus: Option<u32>,
    pub mem: Option<MemSize>,
    pub gpus: Option<Gpus>,
    pub nodes: Option<u32>,
    pub ntasks: Option<u32>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    pub target: Option<Target>,
    /// The pixi environment the asset runs in; part of the code version.
    pub env: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Order-only dependencies (`--deps a,b`).
    #[serde(default)]
    pub deps: Vec<String>,
    /// Run in a job of its own even when `%materialize --jobs grouped`.
    #[serde(default)]
    pub own_job: bool,
}

impl AssetOptions {
    /// The `sbatch` long options this asset asks for, as `(name, value)`
    /// pairs in a fixed order (`("partition", "cpu")`, `("time", "00:10:00")`, ...).
    /// Every value was validated when parsed.
    pub fn sbatch_args(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        push("partition", self.partition.clone());
        push("time", self.time.map(|t| t.to_string()));
        push("cpus-per-task", self.cpus.map(|c| c.to_string()));
        push("mem", self.mem.map(|m| m.to_string()));
        push("gres", self.gpus.as_ref().map(|g| format!("gpu:{g}")));
        push("nodes", self.nodes.map(|n| n.to_string()));
        push("ntasks", self.ntasks.map(|n| n.to_string()));
        push("account", self.account.clone());
        push("qos", self.qos.clone());
        push("constraint", self.constraint.clone());
        out
    }
}
