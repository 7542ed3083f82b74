//! The options of an `%%asset` cell, each declared once (name, value form,
//! help, parser, `sbatch` option) with [`spec::declare_options!`], and that
//! machinery itself. `syntax::options` parses them from a header line;
//! `config` takes the `sbatch` ones as profile defaults.

pub mod spec;
pub mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::auto::AutoCondition;
use super::resources::{Gpus, MemSize, SlurmTime};
use super::target::Target;
use spec::{declare_options, Options};

declare_options! {
    /// The options of one `%%asset` cell. `None` means "not given" (the
    /// profile or the kernel's defaults apply).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AssetOptions {
        pub partition: Option<String> = option("partition", "NAME",
            "Slurm partition (sbatch --partition)", values::partition, sbatch "partition"),
        pub time: Option<SlurmTime> = option("time", "TIME",
            "time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS", str::parse, sbatch "time"),
        pub cpus: Option<u32> = option("cpus", "N",
            "CPUs per task (sbatch --cpus-per-task)", values::positive, sbatch "cpus-per-task"),
        pub mem: Option<MemSize> = option("mem", "SIZE",
            "memory, e.g. 4G, 500M, 1024 (megabytes)", str::parse, sbatch "mem"),
        pub gpus: Option<Gpus> = option("gpus", "N|TYPE:N",
            "GPUs (sbatch --gres=gpu:N)", str::parse, sbatch "gres" "gpu:"),
        pub nodes: Option<u32> = option("nodes", "N",
            "number of nodes", values::positive, sbatch "nodes"),
        pub ntasks: Option<u32> = option("ntasks", "N",
            "number of tasks", values::positive, sbatch "ntasks"),
        pub account: Option<String> = option("account", "NAME",
            "Slurm account to charge", values::account, sbatch "account"),
        pub qos: Option<String> = option("qos", "NAME",
            "Slurm quality of service", values::qos, sbatch "qos"),
        pub constraint: Option<String> = option("constraint", "FEATURES",
            "node features (sbatch --constraint)", values::constraint, sbatch "constraint"),
        pub target: Option<Target> = option("target", "local|slurm",
            "where this asset runs", values::target),
        /// The pixi environment the asset runs in; part of the code version.
        pub env: Option<String> = option("env", "ENV",
            "pixi environment to run in", values::env),
        pub group: Option<String> = option("group", "GROUP",
            "asset group (select with group:GROUP)", values::group),
        #[serde(default)]
        pub tags: BTreeMap<String, String> = option("tags", "K=V[,K=V]",
            "tags (select with tag:K=V)", values::tags),
        /// Order-only dependencies (`--deps a,b`).
        #[serde(default)]
        pub deps: Vec<String> = option("deps", "A[,B]",
            "order-only dependencies on other assets", values::deps),
        /// Run in a job of its own even when `%materialize --jobs grouped`.
        #[serde(default)]
        pub own_job: bool = flag("own-job", "always run in a Slurm job of its own"),
        /// When `slurmbook tick` materializes it by itself (not part of the
        /// code version).
        pub auto: Option<AutoCondition> = option("auto", "eager|on-missing|\"on-cron CRON\"",
            "automation condition evaluated by `slurmbook tick`: eager (missing, or an upstream updated), on-missing, or \"on-cron 0 9 * * *\" (after each tick, once every upstream updated; UTC)",
            str::parse),
    }
}

impl AssetOptions {
    /// The `sbatch` long options this asset asks for, as `(name, value)`
    /// pairs in declaration order (`("partition", "cpu")`, `("time", "00:10:00")`, ...).
    /// Every value was validated when parsed.
    pub fn sbatch_args(&self) -> Vec<(&'static str, String)> {
        Self::OPTIONS
            .iter()
            .filter_map(|o| Some((o.sbatch?.name, self.sbatch_value(o.name)?)))
            .collect()
    }
}
