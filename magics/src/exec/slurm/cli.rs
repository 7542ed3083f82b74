//! The Slurm command line as the watcher uses it: building the `squeue`,
//! `scontrol`/`sacct` and `scancel` commands (and the one detail script)
//! and parsing what they print into typed records.
//!
//! * [`squeue_argv`] / [`parse_squeue`]: one `squeue --noheader
//!   --states=all --jobs=ID,... --format=%i|%T|%N|%r|%S` per poll, as
//!   [`QueueRow`]s by job id (`%S` of a pending job is the expected start
//!   `squeue --start` shows: no extra call).
//! * [`details_script`] / [`parse_details`]: for jobs that ended or are no
//!   longer listed, one script printing each job's `scontrol show job -o`
//!   record (`sacct` where the job is gone from slurmctld and accounting
//!   exists; with accounting, also its `sacct` usage lines, see
//!   [`super::accounting`]), the last lines of its `.err`, its files' sizes and, for a
//!   step of a grouped job, the allocation's `.steps` file, as [`Detail`]s
//!   by asset. Sections are told apart by a fresh random marker.
//! * [`scancel_argv`]: `scancel ID...`.
//!
//! [`query_queue`], [`query_details`] and [`cancel`] run them over a
//! [`Transport`].

use std::collections::{HashMap, HashSet};

use super::accounting::{AcctRow, SACCT_USAGE_FORMAT};
use super::protocol::steps_file;
use crate::transport::{quote, words, CommandOutput, Transport, TransportError};

/// Lines of a failed job's `.err` put in its error.
pub const STDERR_TAIL_LINES: usize = 40;

/// A Slurm job id: digits, or `ARRAYID_INDEX` for an array task.
pub fn valid_job_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match id.split_once('_') {
        Some((base, task)) => digits(base) && digits(task),
        None => digits(id),
    }
}

/// A state a job does not leave.
pub fn is_terminal_state(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "OUT_OF_MEMORY"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// A state of a job waiting to (re)start.
pub fn is_pending_state(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESV_DEL_HOLD"
            | "UNKNOWN"
    )
}

/// One line of [`squeue_argv`]'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    /// `%T`, without a trailing `+` (`CANCELLED+`).
    pub state: String,
    /// `%N`, when the job has a node.
    pub node: Option<String>,
    /// `%r`: why it is pending (`Resources`, `Dependency`, ...), `None`.
    pub reason: String,
    /// `%S`: expected start of a pending job (`N/A` when unknown), start
    /// of a running one.
    pub start: Option<String>,
}

/// The poll: the state of the jobs `ids` (validated job ids; an array
/// task's `123_17` asks for its array `123`, listed one line per task with
/// `--array`, each as `123_17`).
pub fn squeue_argv(ids: &[&str]) -> Vec<String> {
    let mut jobs: Vec<&str> = Vec::new();
    for id in ids {
        let base = super::jobs::base_job_id(id);
        if !jobs.contains(&base) {
            jobs.push(base);
        }
    }
    vec![
        "squeue".into(),
        "--noheader".into(),
        "--states=all".into(),
        "--array".into(),
        format!("--jobs={}", jobs.join(",")),
        "--format=%i|%T|%N|%r|%S".into(),
    ]
}

/// [`squeue_argv`]'s output by job id.
pub fn parse_squeue(stdout: &str) -> HashMap<String, QueueRow> {
    let mut listed = HashMap::new();
    for l in stdout.lines() {
        let mut f = l.trim().splitn(5, '|');
        if let (Some(id), Some(st), Some(node), Some(reason), start) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        {
            listed.insert(
                id.to_string(),
                QueueRow {
                    state: st.trim_end_matches('+').to_string(),
                    node: Some(node.to_string()).filter(|n| !n.is_empty() && n != "(null)"),
                    reason: reason.to_string(),
                    start: start.map(str::to_owned),
                },
            );
        }
    }
    listed
}

/// What one detail round trip found about one asset's job.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Detail {
    /// `JobState` (`None`: Slurm no longer knows the job).
    pub state: Option<String>,
    pub reason: Option<String>,
    pub node: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub elapsed_ms: Option<u64>,
    /// Upstream job ids Slurm marked `(failed)` in `Dependency=`.
    pub failed_deps: Vec<String>,
    /// `Restarts=`: how often the job was requeued.
    pub restarts: Option<u32>,
    /// `TimeLimit=` as Slurm prints it (`00:01:00`, `1-00:00:00`).
    pub time_limit: Option<String>,
    /// The memory asked for: `MinMemoryNode=` (`200M`), or `MinMemoryCPU=` per CPU.
    pub mem_asked: Option<String>,
    /// The last [`STDERR_TAIL_LINES`] lines of the asset's `.err`.
    pub stderr_tail: String,
    /// Sizes of the asset's `.out` and `.err`.
    pub sizes: Option<(u64, u64)>,
    /// Grouped jobs: the allocation's `.steps` file.
    pub steps_text: Option<String>,
    /// Time in the queue: `StartTime` − `SubmitTime`.
    pub queue_ms: Option<u64>,
    /// The job's `sacct` usage lines (with accounting only).
    pub accounting: Vec<AcctRow>,
}

/// An asset whose job's details are asked for.
#[derive(Debug, Clone, Copy)]
pub struct DetailRequest<'a> {
    /// The job's file stem, and the key of its [`Detail`]: the asset, or
    /// `asset_ARRAYID_INDEX` for an array task (see
    /// [`super::WatchJob::stem`]); identifier characters only (validated by
    /// the caller).
    pub stem: &'a str,
    /// Digits (`ARRAYID_INDEX` for a task; validated by the caller).
    pub job_id: &'a str,
    /// The allocation the asset runs in as a step.
    pub step_of: Option<&'a str>,
}

/// The detail script (see the module docs); `marker` starts every section line.
pub fn details_script(run_dir: &str, requests: &[DetailRequest<'_>], marker: &str) -> String {
    let mut s = format!("n={marker}\n");
    let mut asked = HashSet::new();
    for r in requests {
        let id = r.job_id;
        let out = quote(&format!("{run_dir}/{}.out", r.stem)).into_owned();
        let err = quote(&format!("{run_dir}/{}.err", r.stem)).into_owned();
        // stem: identifier characters; the job's record once per script.
        s.push_str(&format!(
            "printf '%s JOB %s %s\\n' \"$n\" {id} {}\n",
            r.stem
        ));
        if asked.insert(id) {
            s.push_str(&format!(
                "scontrol show job -o {id} 2>/dev/null || {{ l=$(sacct -n -P -X -j {id} --format=JobID,State,ExitCode,NodeList,ElapsedRaw,Submit,Start 2>/dev/null | head -n 1); if [ -n \"$l\" ]; then printf 'SACCT|%s\\n' \"$l\"; fi; }}\n\
                 sacct -n -P -j {id} --format={SACCT_USAGE_FORMAT} 2>/dev/null | while IFS= read -r l; do printf 'ACCT|%s\\n' \"$l\"; done\n"
            ));
        }
        if let Some(g) = r.step_of {
            s.push_str(&format!(
                "printf '%s STEPS\\n' \"$n\"\ncat {} 2>/dev/null\n",
                quote(&steps_file(run_dir, g))
            ));
        }
        s.push_str(&format!(
            "printf '%s ERR\\n' \"$n\"\n\
             tail -n {STDERR_TAIL_LINES} {err} 2>/dev/null | tail -c 16384\n\
             o=$(wc -c 2>/dev/null < {out}) || o=0\n\
             e=$(wc -c 2>/dev/null < {err}) || e=0\n\
             printf '\\n%s SIZE %s %s\\n' \"$n\" $o $e\n"
        ));
    }
    s
}

/// [`details_script`]'s output by asset (by job id for a `JOB` line
/// without an asset).
pub fn parse_details(text: &str, n: &str) -> HashMap<String, Detail> {
    let job_mark = format!("{n} JOB ");
    let err_mark = format!("{n} ERR");
    let size_mark = format!("{n} SIZE ");
    let steps_mark = format!("{n} STEPS");
    let mut map = HashMap::new();
    let mut job_of: HashMap<String, String> = HashMap::new();
    let mut cur: Option<(String, Detail)> = None;
    let mut in_err = false;
    let mut in_steps = false;
    let mut err_lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix(&job_mark) {
            if let Some((key, d)) = cur.take() {
                map.insert(key, d);
            }
            let mut words = rest.split_whitespace();
            let id = words.next().unwrap_or_default().to_string();
            let key = words
                .next()
                .map(str::to_owned)
                .unwrap_or_else(|| id.clone());
            job_of.insert(key.clone(), id);
            cur = Some((key, Detail::default()));
            in_err = false;
            in_steps = false;
            continue;
        }
        let Some((_, d)) = cur.as_mut() else { continue };
        if line == steps_mark {
            in_steps = true;
            d.steps_text = Some(String::new());
        } else if line == err_mark {
            in_steps = false;
            in_err = true;
            err_lines.clear();
        } else if let Some(sizes) = line.strip_prefix(&size_mark) {
            in_err = false;
            while err_lines.last().is_some_and(|l| l.is_empty()) {
                err_lines.pop();
            }
            d.stderr_tail = err_lines.join("\n");
            let mut it = sizes
                .split_whitespace()
                .map(|x| x.parse::<u64>().unwrap_or(0));
            d.sizes = Some((it.next().unwrap_or(0), it.next().unwrap_or(0)));
        } else if in_err {
            err_lines.push(line);
        } else if in_steps {
            if let Some(t) = d.steps_text.as_mut() {
                t.push_str(line);
                t.push('\n');
            }
        } else if line.starts_with("JobId=") {
            parse_scontrol(line, d);
        } else if let Some(rest) = line.strip_prefix("SACCT|") {
            parse_sacct(rest, d);
        } else if let Some(row) = line.strip_prefix("ACCT|").and_then(AcctRow::parse) {
            d.accounting.push(row);
        }
    }
    if let Some((key, d)) = cur.take() {
        map.insert(key, d);
    }
    // Several assets of one job (a grouped run): the job's record was
    // printed once; give it to each.
    let records: HashMap<String, Detail> = map
        .iter()
        .filter(|(_, d)| d.state.is_some() || !d.accounting.is_empty())
        .map(|(k, d)| (job_of[k].clone(), d.clone()))
        .collect();
    for (key, d) in map.iter_mut() {
        if d.state.is_none() {
            if let Some(r) = records.get(&job_of[key]).filter(|r| r.state.is_some()) {
                d.state = r.state.clone();
                d.reason = r.reason.clone();
                d.node = r.node.clone();
                d.exit_code = r.exit_code;
                d.signal = r.signal;
                d.elapsed_ms = r.elapsed_ms;
                d.failed_deps = r.failed_deps.clone();
                d.restarts = r.restarts;
                d.queue_ms = r.queue_ms;
            }
            if d.accounting.is_empty() {
                if let Some(r) = records.get(&job_of[key]) {
                    d.accounting = r.accounting.clone();
                }
            }
        }
    }
    map
}

/// `ExitCode=3:0`: the exit code, and the signal when not 0.
fn parse_exit(s: &str) -> (Option<i32>, Option<i32>) {
    let mut it = s.split(':');
    let code = it.next().and_then(|c| c.parse().ok());
    let sig = it.next().and_then(|c| c.parse().ok()).filter(|s| *s != 0);
    (code, sig)
}

fn parse_time(s: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()
}

/// `b - a` in milliseconds, when both are known and in order.
fn span_ms(a: Option<chrono::NaiveDateTime>, b: Option<chrono::NaiveDateTime>) -> Option<u64> {
    let ms = (b? - a?).num_milliseconds();
    (ms >= 0).then_some(ms as u64)
}

/// One `scontrol show job -o` line.
pub fn parse_scontrol(line: &str, d: &mut Detail) {
    let mut f: HashMap<&str, &str> = HashMap::new();
    for w in line.split_whitespace() {
        if let Some((k, v)) = w.split_once('=') {
            f.entry(k).or_insert(v);
        }
    }
    d.state = f.get("JobState").map(|s| s.to_string());
    d.reason = f.get("Reason").map(|s| s.to_string());
    d.node = f
        .get("NodeList")
        .filter(|n| !n.is_empty() && **n != "(null)")
        .map(|s| s.to_string());
    let (code, sig) = f
        .get("ExitCode")
        .map(|e| parse_exit(e))
        .unwrap_or((None, None));
    d.exit_code = code;
    d.signal = sig;
    d.restarts = f.get("Restarts").and_then(|r| r.parse().ok());
    d.time_limit = f
        .get("TimeLimit")
        .filter(|t| !t.is_empty() && **t != "UNLIMITED" && **t != "Partition_Limit")
        .map(|t| t.to_string());
    d.mem_asked = f
        .get("MinMemoryNode")
        .map(|m| m.to_string())
        .or_else(|| f.get("MinMemoryCPU").map(|m| format!("{m} per CPU")))
        .filter(|m| !m.starts_with('0'));
    let time = |k: &str| f.get(k).and_then(|s| parse_time(s));
    d.elapsed_ms = span_ms(time("StartTime"), time("EndTime"));
    d.queue_ms = span_ms(time("SubmitTime"), time("StartTime"));
    if let Some(dep) = f.get("Dependency") {
        // afterok:123(failed),afterok:124(unfulfilled) or afterok:123(failed):124(...)
        for part in dep.split([',', '?']) {
            let part = part.split_once(':').map(|(_, r)| r).unwrap_or(part);
            for item in part.split(':') {
                if let Some(id) = item.strip_suffix("(failed)") {
                    let id = id.split('_').next().unwrap_or(id);
                    if valid_job_id(id) {
                        d.failed_deps.push(id.to_string());
                    }
                }
            }
        }
    }
}

/// One `sacct -n -P -X --format=JobID,State,ExitCode,NodeList,ElapsedRaw[,Submit,Start]` line.
pub fn parse_sacct(rest: &str, d: &mut Detail) {
    let f: Vec<&str> = rest.split('|').collect();
    if f.len() < 5 {
        return;
    }
    d.state = f[1].split_whitespace().next().map(str::to_string);
    let (code, sig) = parse_exit(f[2]);
    d.exit_code = code;
    d.signal = sig;
    d.node = Some(f[3].to_string()).filter(|n| !n.is_empty() && n != "None assigned");
    d.elapsed_ms = f[4].trim().parse::<u64>().ok().map(|s| s * 1000);
    if f.len() >= 7 {
        d.queue_ms = span_ms(parse_time(f[5]), parse_time(f[6]));
    }
}

/// `scancel ID...`; rejects anything but job ids.
pub fn scancel_argv<S: AsRef<str>>(job_ids: &[S]) -> Result<Vec<String>, TransportError> {
    let mut argv = vec!["scancel".to_string()];
    for id in job_ids {
        let id = id.as_ref();
        if !valid_job_id(id) {
            return Err(TransportError::BadArgument(format!(
                "`{id}` is not a job id"
            )));
        }
        argv.push(id.to_string());
    }
    Ok(argv)
}

/// A failed command as an error.
fn failed(t: &dyn Transport, command: String, out: &CommandOutput) -> TransportError {
    TransportError::Command {
        host: t.location().to_string(),
        command,
        detail: format!("exit status {:?}: {}", out.code, out.stderr_text().trim()),
    }
}

/// Run [`squeue_argv`]. Jobs Slurm no longer knows are simply not listed.
pub async fn query_queue(
    t: &dyn Transport,
    ids: &[&str],
) -> Result<HashMap<String, QueueRow>, TransportError> {
    let argv = squeue_argv(ids);
    let out = t.run(&words(&argv)).await?;
    if !out.success() && !out.stderr_text().contains("Invalid job id") {
        return Err(failed(t, "squeue".into(), &out));
    }
    Ok(parse_squeue(&out.stdout_text()))
}

/// Run [`details_script`] (idempotent) and parse its output.
pub async fn query_details(
    t: &dyn Transport,
    run_dir: &str,
    requests: &[DetailRequest<'_>],
) -> Result<HashMap<String, Detail>, TransportError> {
    let marker = format!("SB{}", uuid::Uuid::new_v4().simple());
    let out = t
        .run_script_idempotent(&details_script(run_dir, requests, &marker))
        .await?;
    Ok(parse_details(&out.stdout_text(), &marker))
}

/// The cluster's `MaxArraySize` (`scontrol show config`; `None` when it
/// does not say).
pub async fn max_array_size(t: &dyn Transport) -> Result<Option<u32>, TransportError> {
    let argv = crate::plan::limits::CONFIG_ARGV;
    let out = t.run(argv).await?;
    if !out.success() {
        return Err(failed(t, argv.join(" "), &out));
    }
    Ok(crate::plan::limits::max_array_size(&out.stdout_text()))
}

/// `scancel` all `job_ids` in one command. Jobs already finished are not an error.
pub async fn cancel<S: AsRef<str>>(t: &dyn Transport, job_ids: &[S]) -> Result<(), TransportError> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let argv = scancel_argv(job_ids)?;
    let out = t.run(&words(&argv)).await?;
    let err = out.stderr_text();
    if out.success()
        || err.contains("already completing or completed")
        || err.contains("Invalid job id")
    {
        Ok(())
    } else {
        Err(failed(t, argv.join(" "), &out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scontrol_and_details() {
        let n = "SBx";
        let text = format!(
            "{n} JOB 1\nJobId=1 JobName=wrap JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01 StartTime=2026-11-24T22:24:11 EndTime=2026-11-24T22:24:12 NodeList=vm BatchHost=vm\n{n} ERR\nboom\nline2\n\n{n} SIZE 12 10\n\
             {n} JOB 2\nJobId=2 JobState=CANCELLED Reason=DependencyNeverSatisfied Dependency=afterok:1(failed) ExitCode=0:0 StartTime=Unknown EndTime=2026-11-24T22:24:13 NodeList=\n{n} ERR\n\n{n} SIZE 0 0\n"
        );
        let d = parse_details(&text, n);
        let a = &d["1"];
        assert_eq!(a.state.as_deref(), Some("FAILED"));
        assert_eq!(a.exit_code, Some(3));
        assert_eq!(a.signal, None);
        assert_eq!(a.elapsed_ms, Some(1000));
        assert_eq!(a.node.as_deref(), Some("vm"));
        assert_eq!(a.stderr_tail, "boom\nline2");
        assert_eq!(a.sizes, Some((12, 10)));
        let b = &d["2"];
        assert_eq!(b.state.as_deref(), Some("CANCELLED"));
        assert_eq!(b.failed_deps, ["1"]);
        assert_eq!(b.elapsed_ms, None);
        assert_eq!(b.node, None);
        assert_eq!(b.stderr_tail, "");
    }

    #[test]
    fn squeue_rows_are_typed() {
        // Recorded on the loopback cluster (Slurm 22.05).
        let rows = parse_squeue(
            "5|CANCELLED||DependencyNeverSatisfied\n1|COMPLETED|vm|None\n3|PENDING||Resources\n8|CANCELLED+|vm|None\n",
        );
        assert_eq!(rows.len(), 4);
        assert_eq!(rows["5"].node, None);
        assert_eq!(rows["5"].reason, "DependencyNeverSatisfied");
        assert_eq!(rows["1"].node.as_deref(), Some("vm"));
        assert_eq!(rows["8"].state, "CANCELLED");
        assert_eq!(rows["3"].state, "PENDING");
    }

    #[test]
    fn sacct_fills_in_for_jobs_slurmctld_forgot() {
        let n = "SBy";
        let text = format!(
            "{n} JOB 123 a\nSACCT|123|CANCELLED by 0|0:15|vm|3\n{n} ERR\n{n} SIZE 5 0\n\
             {n} JOB 124 b\nSACCT|124|COMPLETED|0:0|None assigned|0\n{n} ERR\n{n} SIZE 0 0\n"
        );
        let d = parse_details(&text, n);
        assert_eq!(d["a"].state.as_deref(), Some("CANCELLED"));
        assert_eq!((d["a"].exit_code, d["a"].signal), (Some(0), Some(15)));
        assert_eq!(d["a"].elapsed_ms, Some(3000));
        assert_eq!(d["a"].node.as_deref(), Some("vm"));
        assert_eq!(d["b"].node, None);
        assert_eq!(d["b"].restarts, None);
    }

    #[test]
    fn details_carry_the_queue_wait_and_accounting_lines() {
        let n = "SBq";
        let text = format!(
            "{n} JOB 7 a\nJobId=7 JobState=COMPLETED Reason=None ExitCode=0:0 SubmitTime=2026-11-26T15:05:00 StartTime=2026-11-26T15:05:09 EndTime=2026-11-26T15:05:19 NodeList=vm\n\
             ACCT|7|10|00:08.000||cpu=2,mem=1G,node=1||1|alloc_a\nACCT|7.0|5|00:04.000|100M|cpu=1,mem=512M,node=1||1|a\n\
             {n} ERR\n{n} SIZE 0 0\n{n} JOB 7 b\n{n} ERR\n{n} SIZE 0 0\n"
        );
        let d = parse_details(&text, n);
        assert_eq!(d["a"].queue_ms, Some(9000));
        assert_eq!(d["a"].elapsed_ms, Some(10_000));
        assert_eq!(d["b"].queue_ms, Some(9000));
        assert_eq!(d["a"].accounting.len(), 2);
        assert_eq!(d["b"].accounting, d["a"].accounting);
        // Without accounting (no ACCT lines) there are none.
        let d = parse_details(&format!("{n} JOB 8 c\n{n} ERR\n{n} SIZE 0 0\n"), n);
        assert!(d["c"].accounting.is_empty());
        // sacct's fallback line with Submit and Start.
        let mut f = Detail::default();
        parse_sacct(
            "9|COMPLETED|0:0|vm|4|2026-11-26T15:05:00|2026-11-26T15:05:02",
            &mut f,
        );
        assert_eq!(f.queue_ms, Some(2000));
        // The poll's fifth field: the expected start.
        let rows = parse_squeue("3|PENDING||Priority|2026-11-26T15:10:00\n4|RUNNING|vm|None\n");
        assert_eq!(rows["3"].start.as_deref(), Some("2026-11-26T15:10:00"));
        assert_eq!(rows["4"].start, None);
    }

    #[test]
    fn details_script_asks_each_job_once() {
        let reqs = [
            DetailRequest {
                stem: "a",
                job_id: "7",
                step_of: Some("alloc_a"),
            },
            DetailRequest {
                stem: "b",
                job_id: "7",
                step_of: Some("alloc_a"),
            },
        ];
        let s = details_script("/r", &reqs, "SBm");
        assert_eq!(s.matches("scontrol show job -o 7").count(), 1);
        assert_eq!(s.matches("cat /r/alloc_a.steps").count(), 2);
        assert!(s.starts_with("n=SBm\n"));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(scancel_argv(&["1", "22"]).unwrap(), ["scancel", "1", "22"]);
        assert!(scancel_argv(&["1;id"]).is_err());
    }
}
