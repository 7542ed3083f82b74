//! Why a job waits: Slurm's pending reason (`squeue %r`) with a few words
//! on the common ones, and its expected start (`squeue %S`, the estimate
//! `squeue --start` shows) as the live status table shows them. A leaf.

/// What the common reasons mean.
const EXPLAINED: &[(&str, &str)] = &[
    ("Priority", "jobs of higher priority go first"),
    ("Resources", "waiting for free nodes/CPUs/memory"),
    ("Dependency", "waiting for its upstream jobs"),
    ("BeginTime", "not allowed to start yet"),
    ("JobHeldUser", "held by its user (scontrol release)"),
    (
        "JobHeldAdmin",
        "held by an administrator (scontrol release)",
    ),
    (
        "QOSMaxJobsPerUser",
        "the QOS's limit of running jobs per user",
    ),
    ("QOSMaxCpuPerUserLimit", "the QOS's limit of CPUs per user"),
    ("AssocMaxJobsLimit", "the account's limit of running jobs"),
    (
        "AssocGrpCPUMinutesLimit",
        "the account's CPU-minutes are used up",
    ),
    ("ReqNodeNotAvail", "a requested node is unavailable"),
    ("PartitionDown", "the partition is down"),
    ("PartitionTimeLimit", "--time exceeds the partition's limit"),
    ("Reservation", "waiting for its reservation"),
    ("Licenses", "waiting for licenses"),
];

/// The reason a pending job shows: `None` when Slurm gives none
/// (`None`, empty); known reasons with a few words (`Priority: jobs of
/// higher priority go first`).
pub fn pending_reason(reason: &str) -> Option<String> {
    let r = reason.trim();
    if r.is_empty() || r == "None" || r == "(null)" {
        return None;
    }
    Some(match EXPLAINED.iter().find(|(k, _)| *k == r) {
        Some((k, why)) => format!("{k}: {why}"),
        None => r.to_string(),
    })
}

/// `squeue %S` of a pending job: `Some("2026-11-26 15:05:09")` when Slurm
/// has an estimate, `None` for `N/A`, `Unknown` or nothing.
pub fn start_estimate(s: &str) -> Option<String> {
    let s = s.trim();
    let ok = s.len() >= 10 && s.as_bytes()[0].is_ascii_digit() && s.contains('-');
    ok.then(|| s.replacen('T', " ", 1))
}

/// sbatch's refusals of what a job asks for, and what to change.
const REFUSALS: &[(&str, &str)] = &[
    (
        "More processors requested than permitted",
        "no node of the partition has that many CPUs: lower --cpus (or --ntasks); \
         `sinfo -o '%P %c %m'` lists CPUs and memory per node",
    ),
    (
        "Memory specification can not be satisfied",
        "no node of the partition has that much memory: lower --mem; \
         `sinfo -o '%P %c %m'` lists CPUs and memory per node (MB)",
    ),
    (
        "Requested node configuration is not available",
        "no node of the partition matches --cpus/--mem/--gpus/--constraint/--nodes; \
         `sinfo -o '%P %D %c %m %G %f'` lists what the nodes have",
    ),
    (
        "Requested time limit is invalid",
        "--time exceeds the partition's MaxTime: lower it or pick another partition \
         (`sinfo -o '%P %l'`)",
    ),
    (
        "Invalid partition name",
        "the partition does not exist: `sinfo -s` lists the partitions",
    ),
    (
        "invalid partition specified",
        "the partition does not exist: `sinfo -s` lists the partitions",
    ),
    (
        "Invalid account",
        "the account is unknown or not yours: `sacctmgr show assoc user=$USER` lists yours",
    ),
    (
        "Invalid qos",
        "the QOS is unknown or not allowed: `sacctmgr show assoc user=$USER format=qos` lists yours",
    ),
];

/// A hint for an `sbatch` refusal (its stderr), when it is one of the
/// requests no node or limit can ever satisfy.
pub fn sbatch_refusal_hint(stderr: &str) -> Option<&'static str> {
    REFUSALS
        .iter()
        .find(|(said, _)| stderr.contains(said))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_estimates() {
        assert_eq!(pending_reason("None"), None);
        assert_eq!(pending_reason(""), None);
        assert_eq!(
            pending_reason("Priority").as_deref(),
            Some("Priority: jobs of higher priority go first")
        );
        assert_eq!(
            pending_reason("QOSGrpNodeLimit").as_deref(),
            Some("QOSGrpNodeLimit")
        );
        assert_eq!(
            start_estimate("2026-11-26T15:05:09").as_deref(),
            Some("2026-11-26 15:05:09")
        );
        assert_eq!(start_estimate("N/A"), None);
        assert_eq!(start_estimate("Unknown"), None);
    }

    #[test]
    fn refusals_get_a_hint() {
        let cpus =
            "sbatch: error: Batch job submission failed: More processors requested than permitted";
        assert!(sbatch_refusal_hint(cpus)
            .unwrap()
            .starts_with("no node of the partition has that many CPUs"));
        let mem = "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available";
        assert!(sbatch_refusal_hint(mem).unwrap().contains("lower --mem"));
        assert_eq!(
            sbatch_refusal_hint("sbatch: error: Slurm temporarily unable to accept job"),
            None
        );
    }
}
