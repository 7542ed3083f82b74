//! The options of an `%%asset` cell, each declared once (name, value form,
//! help, parser, `sbatch` option) with [`spec::declare_options!`], and that
//! machinery itself. `syntax::options` parses them from a header line;
//! `config` takes the `sbatch` ones as profile defaults.

pub mod spec;
pub mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::auto::AutoCondition;
use super::lang::Lang;
use super::partition::{PartitionSpec, PerTask};
use super::resources::{Gpus, MemSize, SlurmTime};
use super::target::Target;
use super::window::{CronSchedule, Window};
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
        /// Whether Slurm requeues the job when its node fails (`None`: the
        /// cluster's `JobRequeue` decides).
        pub requeue: Option<bool> = toggle("requeue",
            "requeue the job when its node fails (sbatch --requeue; --no-requeue: fail instead)", sbatch "requeue"),
        pub target: Option<Target> = option("target", "local|slurm",
            "where this asset runs", values::target),
        /// The pixi environment the asset runs in; part of the code version.
        pub env: Option<String> = option("env", "ENV",
            "pixi environment to run in", values::env),
        /// The body's language (`None`: Rust); part of the code version.
        pub lang: Option<Lang> = option("lang", "rust|python|bash",
            "the body's language: Python and bash run in the asset's environment", values::lang),
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
        /// Partitions (a sweep): a range or a list of keys; part of no
        /// version (each partition has its own, see `model::partition`).
        pub partitions: Option<PartitionSpec> = option("partitions", "0..N|A,B,C",
            "partitioned asset (a sweep): the body runs once per key, with `partition: &str` and `partition_index: usize` in scope",
            values::partitions),
        /// Partitions whose keys are another asset's value.
        pub partitions_from: Option<String> = option("partitions-from", "NAME",
            "partitioned by the keys NAME's value holds (a Vec<String> or a Vec of integers)",
            values::asset_name),
        /// Partitioned like another partitioned asset, partition by partition.
        pub partitions_like: Option<String> = option("partitions-like", "NAME",
            "partitioned like NAME: partition KEY gets NAME's partition KEY as its value",
            values::asset_name),
        /// At most this many partitions at once (Slurm's `--array=...%N`).
        pub max_parallel: Option<u32> = option("max-parallel", "N",
            "at most N partitions at once (default: the number of cores; on Slurm, the array's %N)",
            values::positive),
        /// Partitions per Slurm array task (`auto`: one, or several short ones).
        pub per_task: Option<PerTask> = option("per-task", "N|auto",
            "on Slurm, partitions run one after another in each array task (default auto: one per task, or several once a run measured them short)",
            values::per_task),
        /// When `slurmbook tick` materializes it by itself (not part of the
        /// code version).
        pub auto: Option<AutoCondition> = option("auto", "eager|on-missing|\"on-cron CRON\"",
            "automation condition evaluated by `slurmbook tick`: eager (missing, or an upstream updated), on-missing, or \"on-cron 0 9 * * *\" (after each tick, once every upstream updated; UTC)",
            str::parse),
        /// Freshness policy: FAIL once the last success is older than this.
        pub freshness: Option<Window> = option("freshness", "WINDOW",
            "freshness policy: FAIL once the last successful materialization is older than WINDOW (90m, 6h, 1d, 01:30:00)",
            str::parse),
        pub freshness_warn: Option<Window> = option("freshness-warn", "WINDOW",
            "WARN once older than WINDOW (shorter than --freshness); with --freshness-cron: WINDOW before a deadline not met yet",
            str::parse),
        /// Deadlines: after each tick the asset must have materialized since
        /// tick - `freshness`.
        pub freshness_cron: Option<CronSchedule> = option("freshness-cron", "\"CRON\"",
            "deadlines (cron, UTC): after each tick the asset must have materialized within the --freshness window before it",
            str::parse),
        /// Before the asset runs, every upstream's value must be younger.
        pub max_upstream_age: Option<Window> = option("max-upstream-age", "AGE",
            "run only when every upstream's value is younger than AGE (a selected upstream is refreshed first)",
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

    /// How the asset is partitioned, if it is (at most one of
    /// `--partitions`, `--partitions-from`, `--partitions-like`: see
    /// [`AssetOptions::check_partitions`]).
    pub fn partitioning(&self) -> Option<PartitionSpec> {
        self.partitions
            .clone()
            .or_else(|| self.partitions_from.clone().map(PartitionSpec::From))
            .or_else(|| self.partitions_like.clone().map(PartitionSpec::Like))
    }

    /// The rules between the partition options: at most one way of
    /// partitioning, and `--max-parallel` only with one. `Err` names the
    /// option at fault and what it expected.
    pub fn check_partitions(&self) -> Result<(), (&'static str, String)> {
        let given = [
            ("partitions", self.partitions.is_some()),
            ("partitions-from", self.partitions_from.is_some()),
            ("partitions-like", self.partitions_like.is_some()),
        ];
        let mut set = given.iter().filter(|(_, on)| *on).map(|(n, _)| *n);
        let first = set.next();
        if let Some(second) = set.next() {
            return Err((
                second,
                format!(
                    "no other partitioning than --{} (give one of --partitions, --partitions-from, --partitions-like)",
                    first.unwrap_or_default()
                ),
            ));
        }
        if let (Some(first), Some(lang)) = (first, self.lang.filter(|l| l.is_foreign())) {
            return Err((
                first,
                format!("a Rust asset: partitions are for Rust bodies, not --lang {lang}"),
            ));
        }
        if first.is_none() && self.per_task.is_some() {
            return Err((
                "per-task",
                "a partitioned asset (--partitions, --partitions-from or --partitions-like)".into(),
            ));
        }
        if first.is_none() && self.max_parallel.is_some() {
            return Err((
                "max-parallel",
                "a partitioned asset (--partitions, --partitions-from or --partitions-like)".into(),
            ));
        }
        Ok(())
    }

    /// The rules between the freshness options (each value was validated
    /// alone when parsed): `--freshness-warn` and `--freshness-cron` need a
    /// `--freshness` window, the WARN window is shorter than it, and with a
    /// cron the window is at most the smallest interval between its ticks
    /// (Dagster's rules). `Err` names the option at fault and what it expected.
    pub fn check_freshness(&self) -> Result<(), (&'static str, String)> {
        match (&self.freshness, &self.freshness_warn) {
            (None, Some(_)) => {
                return Err((
                    "freshness-warn",
                    "a --freshness WINDOW too (the WARN window is shorter than it)".into(),
                ))
            }
            (Some(fail), Some(warn)) if warn >= fail => {
                return Err((
                    "freshness-warn",
                    format!("a window shorter than --freshness ({fail})"),
                ))
            }
            _ => {}
        }
        if let Some(cron) = &self.freshness_cron {
            let Some(window) = self.freshness else {
                return Err((
                    "freshness-cron",
                    "a --freshness WINDOW too: the time before each tick in which the asset must materialize".into(),
                ));
            };
            if let Some(step) = cron.smallest_interval() {
                if window.duration() > step {
                    let step = Window::from_seconds(step.num_seconds().max(0) as u64);
                    return Err((
                        "freshness",
                        format!(
                            "at most the smallest interval between the ticks of --freshness-cron \"{cron}\" ({step})"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
