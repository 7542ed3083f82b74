//! What the cluster allows, from `sinfo`: partitions' time limits, the
//! default partition, one node's CPUs and memory, each partition's CPUs.
//! The allocation planner splits and caps with it; the array planner
//! bundles short partitions by the CPUs (see `super::array_tasks`).

use std::collections::HashMap;

use crate::model::SlurmTime;

/// The `sinfo` call whose output [`ClusterLimits::from_sinfo`] reads.
pub const SINFO_ARGV: &[&str] = &["sinfo", "--noheader", "--format=%P|%l|%c|%m|%C"];

/// What the cluster allows; everything optional (unknown = no cap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterLimits {
    /// Partition -> its MaxTime in seconds (`None`: unlimited).
    pub max_time: HashMap<String, Option<u64>>,
    pub default_partition: Option<String>,
    /// CPUs of one node (the smallest, if they differ).
    pub node_cpus: Option<u32>,
    /// Memory of one node in MB.
    pub node_mem_mb: Option<u64>,
    /// Partition -> its CPUs (all its nodes', whatever their state).
    pub partition_cpus: HashMap<String, u32>,
}

/// The call whose output [`max_array_size`] reads.
pub const CONFIG_ARGV: &[&str] = &["scontrol", "show", "config"];

/// `MaxArraySize` of `scontrol show config` output (`MaxArraySize = 1001`):
/// an array's indices must stay below it. `None` when not printed.
pub fn max_array_size(config: &str) -> Option<u32> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
    })
}

impl ClusterLimits {
    /// The partition a job asking for `asked` runs in: it, else the
    /// cluster's default partition.
    pub fn partition_of(&self, asked: Option<&str>) -> Option<String> {
        asked
            .map(str::to_string)
            .or_else(|| self.default_partition.clone())
    }

    /// The MaxTime (seconds) of the partition a job asking for `asked`
    /// runs in; `None`: unlimited or unknown.
    pub fn max_time_of(&self, asked: Option<&str>) -> Option<u64> {
        let p = self.partition_of(asked)?;
        self.max_time.get(&p).copied().flatten()
    }

    /// From `sinfo --noheader --format='%P|%l|%c|%m|%C'` output
    /// (`debug*|1:00:00|2|22900|0/2/0/2`; a partition may have several
    /// lines, one per kind of node, whose CPUs add up).
    pub fn from_sinfo(text: &str) -> ClusterLimits {
        let mut l = ClusterLimits::default();
        for line in text.lines() {
            let f: Vec<&str> = line.trim().split('|').collect();
            if f.len() < 4 || f[0].is_empty() {
                continue;
            }
            let (name, default) = match f[0].strip_suffix('*') {
                Some(n) => (n, true),
                None => (f[0], false),
            };
            if default {
                l.default_partition = Some(name.to_string());
            }
            let limit = f[1].parse::<SlurmTime>().ok().map(|t| t.seconds);
            l.max_time.insert(name.to_string(), limit);
            // `2+` when nodes differ: the leading number is the smallest.
            let num = |s: &str| {
                s.trim_end_matches('+')
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
            };
            if let Some(c) = num(f[2]) {
                l.node_cpus = Some(l.node_cpus.map_or(c as u32, |o| o.min(c as u32)));
            }
            if let Some(m) = num(f[3]) {
                l.node_mem_mb = Some(l.node_mem_mb.map_or(m, |o| o.min(m)));
            }
            // Allocated/idle/other/total.
            let total = f.get(4).and_then(|c| c.rsplit('/').next()).and_then(num);
            if let Some(t) = total.and_then(|t| u32::try_from(t).ok()) {
                *l.partition_cpus.entry(name.to_string()).or_default() += t;
            }
        }
        l
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn max_array_size_from_scontrol_config() {
        let text = "MailProg                = /bin/mail\nMaxArraySize            = 1001\nMaxJobCount = 10000\n";
        assert_eq!(super::max_array_size(text), Some(1001));
        assert_eq!(super::max_array_size("MaxJobCount = 3\n"), None);
    }

    #[test]
    fn partition_cpus_add_up_over_their_lines() {
        let l = super::ClusterLimits::from_sinfo(
            "debug*|1:00:00|2|22900|0/2/0/2\nbig|infinite|64+|1000|10/100/18/128\nbig|infinite|32|500|0/32/0/32\nold|2:00|4|100\n",
        );
        assert_eq!(l.partition_cpus["debug"], 2);
        assert_eq!(l.partition_cpus["big"], 160);
        assert!(!l.partition_cpus.contains_key("old"));
        assert_eq!(l.default_partition.as_deref(), Some("debug"));
        assert_eq!(l.node_cpus, Some(2));
    }
}
