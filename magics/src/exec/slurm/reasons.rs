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
}
