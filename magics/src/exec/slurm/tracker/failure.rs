//! Why a job failed, in words a Slurm user knows: the state (time limit,
//! out of memory, node failure, exit code, signal), the asset's own error,
//! the tail of its `.err` and, for a limit, what to change.

use super::Track;
use crate::exec::slurm::cli::STDERR_TAIL_LINES;

/// The error of a failed job: why (exit code, signal, time limit, ...),
/// the asset's own error, the last lines of its `.err`, and a hint on
/// what to change when Slurm ended it for a limit.
pub fn failure_text(asset: &str, t: &Track, bundle_error: Option<&str>) -> String {
    let limit = |what: &str, value: &Option<String>| match value {
        Some(v) => format!("{what} ({v})"),
        None => what.to_string(),
    };
    let mut first = match (t.slurm_state.as_str(), t.exit_code, t.signal) {
        ("TIMEOUT", ..) => format!("{} reached (TIMEOUT)", limit("time limit", &t.time_limit)),
        ("OUT_OF_MEMORY", ..) => format!("{} (OUT_OF_MEMORY)", limit("out of memory", &memory(t))),
        _ if killed_for_memory(t) => format!(
            "{} (Slurm killed it: exceeded its memory limit)",
            limit("out of memory", &memory(t))
        ),
        ("NODE_FAIL", ..) => match (&t.node_note, &t.node) {
            (Some(note), _) => format!("node failure (NODE_FAIL): {note}"),
            (None, Some(node)) => format!("node failure (NODE_FAIL) on node {node}"),
            (None, None) => "node failure (NODE_FAIL)".to_string(),
        },
        ("UNKNOWN", ..) => format!("the job vanished from Slurm (reason: {})", t.reason),
        (_, _, Some(sig)) => format!("killed by signal {sig} ({})", t.slurm_state),
        (_, Some(code), None) => format!("exit code {code}"),
        (st, None, None) => format!("{st} ({})", t.reason),
    };
    if t.restarts > 0 {
        first.push_str(&format!(
            " (requeued {} time{})",
            t.restarts,
            if t.restarts == 1 { "" } else { "s" }
        ));
    }
    let mut more = String::new();
    if let Some(e) = bundle_error {
        let mut lines = e.lines();
        if let Some(l) = lines.next() {
            first.push_str(": ");
            first.push_str(l);
        }
        let rest: Vec<&str> = lines.collect();
        if !rest.is_empty() {
            more.push('\n');
            more.push_str(&rest.join("\n"));
        }
    }
    if !t.stderr_tail.trim().is_empty() {
        more.push_str(&format!(
            "\n--- last {STDERR_TAIL_LINES} lines of {asset}.err ---\n{}",
            t.stderr_tail.trim_end()
        ));
    }
    if let Some(hint) = limit_hint(asset, t) {
        more.push_str("\nhint: ");
        more.push_str(&hint);
    }
    first + &more
}

/// "asked 200M": the memory the job asked for, as the message shows it.
fn memory(t: &Track) -> Option<String> {
    t.mem_asked.as_ref().map(|m| format!("asked {m}"))
}

/// Slurm killed the job for its memory without saying OUT_OF_MEMORY: a
/// site without cgroups, where slurmstepd samples the job's memory
/// (`JobAcctGatherParams=OverMemoryKill`) and ends it as FAILED, saying so
/// only on the job's stderr.
fn killed_for_memory(t: &Track) -> bool {
    t.stderr_tail.lines().any(|l| {
        l.contains("slurmstepd")
            && (l.contains("Exceeded job memory limit")
                || l.contains("Exceeded step memory limit")
                || l.contains("exceeded memory limit"))
    })
}

/// What to change when Slurm ended the job for one of its limits.
fn limit_hint(asset: &str, t: &Track) -> Option<String> {
    let state = if killed_for_memory(t) {
        "OUT_OF_MEMORY"
    } else {
        t.slurm_state.as_str()
    };
    match state {
        "TIMEOUT" => Some(format!(
            "the job ran out of its time limit{}; ask for more with `%%asset {asset} --time=HH:MM:SS` \
             (or `time` in the profile), within the partition's MaxTime (sinfo -o '%P %l')",
            t.time_limit.as_deref().map(|l| format!(" of {l}")).unwrap_or_default()
        )),
        "OUT_OF_MEMORY" => Some(format!(
            "ask for more memory with `%%asset {asset} --mem=SIZE` (e.g. twice {}), \
             or use less",
            t.mem_asked.as_deref().unwrap_or("what it asked for")
        )),
        "NODE_FAIL" => Some(format!(
            "the node it ran on failed, not the code: materialize {asset} again, or let \
             Slurm rerun it by itself after a node failure with `%%asset {asset} --requeue` \
             (or `requeue = true` in the profile)"
        )),
        _ => None,
    }
}
