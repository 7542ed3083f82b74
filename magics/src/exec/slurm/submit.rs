//! Submitting a whole subgraph of assets as Slurm jobs in one SSH round trip.
//!
//! [`submit_script`] generates one POSIX sh script (sent to `sh -s` on
//! stdin) that creates the run directory, writes every job's batch script
//! (a heredoc with a quoted delimiter, so nothing in it is expanded) and
//! runs `sbatch --parsable` for each job in topological order, each
//! dependent with `--dependency=afterok:<ids of its upstreams>` and
//! `--kill-on-invalid-dep=yes`. Job ids are kept in shell variables
//! (`J_<asset>`) and printed as `SBJOB <asset> <id>` lines. If an `sbatch`
//! fails, the jobs already submitted by the script are `scancel`ed and the
//! failing asset and sbatch's stderr are reported.
//!
//! Everything put into the script is validated first: asset names are Rust
//! identifiers, the run tag is `[A-Za-z0-9_-]`, the run directory an
//! absolute path of `[A-Za-z0-9_./-]`, each job's typed
//! [`SbatchRequest`] becomes `#SBATCH` lines of its batch script with
//! values of a restricted alphabet, and every argument is shell-quoted.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::is_identifier;
use crate::plan::order::topo_order;
use crate::plan::SbatchRequest;
use crate::transport::{check_abs_path, quote, Transport, TransportError};

/// A shell function of the batch scripts: `sb_attempt FILE` appends an
/// `attempt` event line of the job protocol to FILE (on a line of its
/// own) when Slurm restarted the job (`SLURM_RESTART_COUNT` > 0). The
/// output files are opened in append mode, so a requeued job's output
/// follows the output of the attempt before it; this line marks where the
/// new attempt starts.
pub const ATTEMPT_MARK: &str = r#"sb_attempt() {
  case ${SLURM_RESTART_COUNT:-0} in ''|0|*[!0-9]*) return 0;; esac
  sb_l=
  if [ -f "$1" ]; then sb_l=$(tail -c 1 "$1" 2>/dev/null) || sb_l=; fi
  if [ -n "$sb_l" ]; then printf '\n' >> "$1"; fi
  printf '\036SLURMBOOK {"event":"attempt","restart":%s}\n' "$SLURM_RESTART_COUNT" >> "$1"
  return 0
}
"#;

/// One asset to run as a Slurm job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub asset: String,
    /// What the job asks Slurm for (rendered to `#SBATCH` lines).
    pub sbatch: SbatchRequest,
    /// The job's argv, e.g. `[binary, asset, "--output", path, ...]`.
    pub command: Vec<String>,
    /// Upstream assets in this submission the job waits for (afterok).
    pub after: Vec<String>,
    /// The packed environment the job runs in (`None`: the cluster's own).
    pub env: Option<JobEnv>,
}

impl JobSpec {
    /// What the allocation planner sees of this job (not `--own-job`; its
    /// environment named by its prefix).
    pub fn step_request(&self) -> crate::plan::StepRequest {
        crate::plan::StepRequest {
            asset: self.asset.clone(),
            after: self.after.clone(),
            sbatch: self.sbatch.clone(),
            own_job: false,
            env: self.env.as_ref().map(|e| e.prefix.clone()),
        }
    }
}

/// A packed environment on the cluster: the job unpacks it once (a no-op
/// when ready; concurrent jobs wait on its lock) and activates it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobEnv {
    /// The `slurmbook-env` program on the cluster.
    pub tool: String,
    /// The environment's archive on the cluster.
    pub archive: String,
    /// Where it is unpacked: `remote_dir/envs/<key>`.
    pub prefix: String,
}

impl JobEnv {
    /// The script a job sources to activate the environment.
    pub fn activation_script(&self) -> String {
        format!("{}/{}", self.prefix, slurmbook_pack::ACTIVATION_SCRIPT)
    }

    pub(crate) fn check(&self) -> Result<(), SubmitError> {
        for p in [&self.tool, &self.archive, &self.prefix] {
            check_abs_path(p)?;
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum SubmitError {
    #[error("cannot submit: {0}")]
    Invalid(String),
    #[error(transparent)]
    Ssh(#[from] TransportError),
    #[error("sbatch failed for asset `{asset}`: {stderr}{}{}", cancelled_text(.cancelled), refusal_hint(.stderr))]
    Sbatch {
        asset: String,
        stderr: String,
        /// Jobs of this submission that had been submitted and were cancelled again.
        cancelled: Vec<String>,
    },
    #[error("submission script failed: {0}")]
    Script(String),
}

fn cancelled_text(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(
            " (the {} job(s) already submitted were cancelled: {})",
            ids.len(),
            ids.join(", ")
        )
    }
}

/// What to change when sbatch refused a job for what it asked.
fn refusal_hint(stderr: &str) -> String {
    super::reasons::sbatch_refusal_hint(stderr)
        .map(|h| format!("\nhint: {h}"))
        .unwrap_or_default()
}

/// What `sbatch --parsable` prints: the job's (or the array's) id, digits.
fn check_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Validate and order the jobs: topological by `after`, stable otherwise.
fn order_jobs(jobs: &[JobSpec]) -> Result<Vec<&JobSpec>, SubmitError> {
    let inv = |s: String| SubmitError::Invalid(s);
    let mut index = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if !is_identifier(&j.asset) {
            return Err(inv(format!("`{}` is not a valid asset name", j.asset)));
        }
        if index.insert(j.asset.as_str(), i).is_some() {
            return Err(inv(format!("asset `{}` is listed twice", j.asset)));
        }
    }
    for j in jobs {
        if j.command.is_empty() {
            return Err(inv(format!("asset `{}` has an empty command", j.asset)));
        }
        if let Some(a) = j.command.iter().find(|a| a.contains('\0')) {
            return Err(inv(format!(
                "asset `{}`: command argument {a:?} contains a NUL byte",
                j.asset
            )));
        }
        j.sbatch
            .directives()
            .map_err(|e| inv(format!("asset `{}`: {e}", j.asset)))?;
        for u in &j.after {
            if !index.contains_key(u.as_str()) {
                return Err(inv(format!(
                    "asset `{}` waits for `{u}`, which is not in this submission",
                    j.asset
                )));
            }
            if *u == j.asset {
                return Err(inv(format!("asset `{}` waits for itself", j.asset)));
            }
        }
    }
    let ups: Vec<Vec<usize>> = jobs
        .iter()
        .map(|j| j.after.iter().map(|u| index[u.as_str()]).collect())
        .collect();
    let order = topo_order(&ups).map_err(|cycle| {
        let names: Vec<&str> = cycle.iter().map(|&i| jobs[i].asset.as_str()).collect();
        inv(format!("dependency cycle among {}", names.join(", ")))
    })?;
    let order: Vec<&JobSpec> = order.into_iter().map(|i| &jobs[i]).collect();
    Ok(order)
}

/// Shell lines that unpack `env` (once; a no-op when ready) and activate
/// it, in a script whose working directory is the run directory. What
/// unpacking printed goes to `<job name>.env.log`, or to stderr when it
/// failed (exit 97).
pub fn env_prelude(env: &JobEnv) -> String {
    format!(
        "if ! unpacked=$({} unpack --archive {} --prefix {} 2>&1); then\n  \
         printf 'slurmbook: unpacking the environment failed:\\n%s\\n' \"$unpacked\" >&2; exit 97\nfi\n\
         printf '%s\\n' \"$unpacked\" >> \"$SLURM_JOB_NAME.env.log\"\n. {}",
        quote(&env.tool),
        quote(&env.archive),
        quote(&env.prefix),
        quote(&env.activation_script()),
    )
}

/// `script` with the job's `#SBATCH` lines after its first (`#!`) line.
fn with_directives(script: &str, sbatch: &SbatchRequest) -> Result<String, SubmitError> {
    let directives = sbatch
        .directives()
        .map_err(|e| SubmitError::Invalid(e.to_string()))?;
    let (first, rest) = script.split_once('\n').unwrap_or((script, ""));
    Ok(format!("{first}\n{directives}{rest}"))
}

/// The batch script of one job: `set -e`, `cd` into the run directory,
/// unpack (once) and activate its environment, `exec` the quoted argv.
/// What unpacking printed goes to `<job name>.env.log` in the run
/// directory, or to the job's stderr when it failed (exit 97).
pub fn job_script(run_dir: &str, command: &[String], env: Option<&JobEnv>) -> String {
    let mut s = String::from("#!/bin/sh\n# Generated by slurmbook.\nset -e\n");
    // A requeued job: mark where this attempt's output starts (fd 1 is the
    // job's `.out`, opened in append mode).
    s.push_str(ATTEMPT_MARK);
    s.push_str("sb_attempt \"/proc/$$/fd/1\"\ncd ");
    s.push_str(&quote(run_dir));
    if let Some(env) = env {
        s.push('\n');
        s.push_str(&env_prelude(env));
    }
    s.push_str("\nexec");
    for a in command {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s
}

/// A heredoc delimiter that no line of `content` equals.
fn heredoc_delimiter(content: &str) -> String {
    let hash = hex::encode(Sha256::digest(content.as_bytes()));
    let mut delim = format!("SLURMBOOK_EOF_{}", &hash[..16]);
    while content.lines().any(|l| l == delim) {
        delim.push('X');
    }
    delim
}

/// The submission script for `jobs` (see the module docs). Validates
/// everything; nothing is sent.
pub fn submit_script(
    run_dir: &str,
    run_tag: &str,
    jobs: &[JobSpec],
) -> Result<String, SubmitError> {
    submit_script_with(run_dir, run_tag, jobs, &HashMap::new())
}

/// [`submit_script`] where the jobs named in `scripts` get that batch
/// script (already validated, e.g. a grouped job's driver script)
/// instead of [`job_script`] of their command.
pub fn submit_script_with(
    run_dir: &str,
    run_tag: &str,
    jobs: &[JobSpec],
    scripts: &HashMap<String, String>,
) -> Result<String, SubmitError> {
    submit_script_ext(run_dir, run_tag, jobs, scripts, &SubmitExtras::default())
}

/// What a submission may carry beyond its jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitExtras {
    /// Per job, the upstream jobs (of its `after`) it waits for task by
    /// task (`aftercorr`: job arrays) rather than as a whole (`afterok`).
    pub corr: HashMap<String, Vec<String>>,
    /// Files written into the run directory before any job is submitted
    /// (name, content): task tables, input maps. Names are
    /// `[A-Za-z0-9_.-]`, not starting with a dot.
    pub files: Vec<(String, String)>,
}

fn check_file_name(name: &str) -> Result<(), SubmitError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SubmitError::Invalid(format!(
            "`{name}` is not a file name slurmbook writes"
        )))
    }
}

/// [`submit_script_with`] with [`SubmitExtras`].
pub fn submit_script_ext(
    run_dir: &str,
    run_tag: &str,
    jobs: &[JobSpec],
    scripts: &HashMap<String, String>,
    extras: &SubmitExtras,
) -> Result<String, SubmitError> {
    check_abs_path(run_dir)?;
    if run_tag.is_empty()
        || run_tag.len() > 40
        || !run_tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(SubmitError::Invalid(format!(
            "run tag `{run_tag}`: use 1-40 letters, digits, `_` or `-`"
        )));
    }
    if jobs.is_empty() {
        return Err(SubmitError::Invalid("no jobs".into()));
    }
    let order = order_jobs(jobs)?;
    let d = quote(run_dir);
    let mut s = String::new();
    s.push_str("# slurmbook submission\nset -u\n");
    s.push_str(&format!("d={d}\nids=''\n"));
    s.push_str(
        r#"fail() {
  printf 'SBFAIL %s\n' "$1"
  if [ -n "$2" ] && [ -s "$2" ]; then cat "$2" >&2; fi
  if [ -n "$ids" ]; then
    scancel $ids >/dev/null 2>&1
    printf 'SBCANCELLED%s\n' "$ids"
  fi
  exit 3
}
mkdir -p "$d" || fail - ''
"#,
    );
    // All files and batch scripts first: a failing write submits nothing.
    for (name, content) in &extras.files {
        check_file_name(name)?;
        let mut content = content.clone();
        if !content.ends_with('\n') {
            content.push('\n');
        }
        let delim = heredoc_delimiter(&content);
        s.push_str(&format!(
            "cat > \"$d/{name}\" <<'{delim}' || fail - ''\n{content}{delim}\n"
        ));
    }
    for j in &order {
        if let Some(env) = &j.env {
            env.check()?;
        }
        let script = match scripts.get(&j.asset) {
            Some(s) => s.clone(),
            None => job_script(run_dir, &j.command, j.env.as_ref()),
        };
        let script = with_directives(&script, &j.sbatch)?;
        let delim = heredoc_delimiter(&script);
        s.push_str(&format!(
            "cat > \"$d/{a}.sh\" <<'{delim}' || fail {a} ''\n{script}{delim}\n",
            a = j.asset
        ));
    }
    for j in &order {
        let a = &j.asset;
        // An array's tasks write files of their own: `a_ARRAYID_INDEX`;
        // a task running several partitions writes theirs itself, and its
        // own (Slurm's messages) to `a_ARRAYID_tINDEX`.
        let stem = match j.sbatch.array {
            Some(array) if array.per_task > 1 => format!("{a}_%A_t%a"),
            Some(_) => format!("{a}_%A_%a"),
            None => a.clone(),
        };
        let mut argv: Vec<String> = vec![
            "sbatch".into(),
            "--parsable".into(),
            quote(&format!("--job-name=sb-{run_tag}-{a}")).into_owned(),
            format!("\"--output=$d/{stem}.out\""),
            format!("\"--error=$d/{stem}.err\""),
            "--open-mode=append".into(),
            "--kill-on-invalid-dep=yes".into(),
        ];
        if !j.after.is_empty() {
            let corr = extras.corr.get(a).map(Vec::as_slice).unwrap_or_default();
            let ids = |corr_wanted: bool| -> Vec<String> {
                j.after
                    .iter()
                    .filter(|u| corr.contains(u) == corr_wanted)
                    .map(|u| format!("${{J_{u}}}"))
                    .collect()
            };
            let mut deps = Vec::new();
            for (kind, ids) in [("afterok", ids(false)), ("aftercorr", ids(true))] {
                if !ids.is_empty() {
                    deps.push(format!("{kind}:{}", ids.join(":")));
                }
            }
            argv.push(format!("\"--dependency={}\"", deps.join(",")));
        }
        argv.push(format!("\"$d/{a}.sh\""));
        s.push_str(&format!(
            "J_{a}=$({} 2>\"$d/{a}.sbatch.err\") || fail {a} \"$d/{a}.sbatch.err\"\n\
             J_{a}=${{J_{a}%%;*}}\n\
             case $J_{a} in ''|*[!0-9]*) fail {a} \"$d/{a}.sbatch.err\";; esac\n\
             ids=\"$ids $J_{a}\"\n\
             printf 'SBJOB %s %s\\n' {a} \"$J_{a}\"\n",
            argv.join(" ")
        ));
    }
    s.push_str("printf 'SBDONE\\n'\n");
    Ok(s)
}

/// Submit every job in ONE ssh round trip (see the module docs). Returns
/// `(asset, job id)` in submission (topological) order.
pub async fn submit_all(
    remote: &dyn Transport,
    run_dir: &str,
    run_tag: &str,
    jobs: &[JobSpec],
) -> Result<Vec<(String, String)>, SubmitError> {
    let script = submit_script(run_dir, run_tag, jobs)?;
    let out = remote.run_script(&script).await?;
    parse_submit_output(&out.stdout_text(), &out.stderr_text(), out.code, jobs.len())
}

pub(crate) fn parse_submit_output(
    stdout: &str,
    stderr: &str,
    code: Option<i32>,
    n_jobs: usize,
) -> Result<Vec<(String, String)>, SubmitError> {
    let mut ids = Vec::new();
    let mut failed = None;
    let mut cancelled = Vec::new();
    let mut done = false;
    for line in stdout.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("SBJOB") => {
                if let (Some(a), Some(id)) = (w.next(), w.next()) {
                    if check_job_id(id) {
                        ids.push((a.to_string(), id.to_string()));
                    }
                }
            }
            Some("SBFAIL") => failed = w.next().map(str::to_string),
            Some("SBCANCELLED") => cancelled = w.map(str::to_string).collect(),
            Some("SBDONE") => done = true,
            _ => {}
        }
    }
    if let Some(asset) = failed {
        let stderr = stderr.trim().to_string();
        if asset == "-" {
            return Err(SubmitError::Script(format!(
                "could not create the run directory: {stderr}"
            )));
        }
        return Err(SubmitError::Sbatch {
            asset,
            stderr: if stderr.is_empty() {
                "(no output)".into()
            } else {
                stderr
            },
            cancelled,
        });
    }
    if !done || code != Some(0) || ids.len() != n_jobs {
        return Err(SubmitError::Script(format!(
            "unexpected end (exit status {code:?}, {} of {n_jobs} jobs submitted): {}{}",
            ids.len(),
            stderr.trim(),
            if ids.is_empty() {
                String::new()
            } else {
                format!(
                    "; submitted job ids: {}",
                    ids.iter()
                        .map(|(_, i)| i.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(asset: &str, after: &[&str]) -> JobSpec {
        JobSpec {
            asset: asset.into(),
            sbatch: SbatchRequest {
                partition: Some("debug".into()),
                time: Some("00:05:00".parse().unwrap()),
                ..SbatchRequest::default()
            },
            command: vec!["sh".into(), "-c".into(), "echo 'hi'; echo $(id)".into()],
            after: after.iter().map(|s| s.to_string()).collect(),
            env: None,
        }
    }

    #[test]
    fn script_orders_and_quotes() {
        let jobs = vec![job("c", &["b"]), job("a", &[]), job("b", &["a"])];
        let s = submit_script("/scratch/run1", "r1", &jobs).unwrap();
        let pa = s.find("J_a=$(sbatch").unwrap();
        let pb = s.find("J_b=$(sbatch").unwrap();
        let pc = s.find("J_c=$(sbatch").unwrap();
        assert!(pa < pb && pb < pc, "{s}");
        assert!(s.contains("\"--dependency=afterok:${J_a}\""), "{s}");
        assert!(
            s.contains("exec sh -c 'echo '\\''hi'\\''; echo $(id)'"),
            "{s}"
        );
        assert!(s.contains("<<'SLURMBOOK_EOF_"), "{s}");
        // The request is rendered once, as directives of the batch script.
        assert!(
            s.contains("#!/bin/sh\n#SBATCH --partition=debug\n#SBATCH --time=00:05:00\n# Generated by slurmbook."),
            "{s}"
        );
        assert!(!s.contains("sbatch --partition"), "{s}");
    }

    #[test]
    fn an_array_job_writes_a_file_pair_per_task() {
        let mut j = job("sim", &[]);
        j.sbatch.set("array", "0-99%16").unwrap();
        let s = submit_script("/scratch/run1", "r1", &[j, job("report", &["sim"])]).unwrap();
        assert!(s.contains("#SBATCH --array=0-99%16\n"), "{s}");
        assert!(
            s.contains("\"--output=$d/sim_%A_%a.out\" \"--error=$d/sim_%A_%a.err\""),
            "{s}"
        );
        assert!(s.contains("\"--output=$d/report.out\""), "{s}");
        assert!(s.contains("\"--dependency=afterok:${J_sim}\""), "{s}");
    }

    #[test]
    fn extras_write_files_first_and_chain_arrays_task_by_task() {
        let mut sim = job("sim", &[]);
        sim.sbatch.set("array", "0-9").unwrap();
        let mut post = job("post", &["sim"]);
        post.sbatch.set("array", "0-9").unwrap();
        let jobs = [sim, post, job("report", &["sim", "post"])];
        let extras = SubmitExtras {
            corr: HashMap::from([("post".to_string(), vec!["sim".to_string()])]),
            files: vec![("sim.tasks.json".into(), "[{\"key\": \"$(id)\"}]".into())],
        };
        let s = submit_script_ext("/r", "t", &jobs, &HashMap::new(), &extras).unwrap();
        assert!(s.contains("\"--dependency=aftercorr:${J_sim}\""), "{s}");
        assert!(
            s.contains("\"--dependency=afterok:${J_sim}:${J_post}\""),
            "{s}"
        );
        let file = s
            .find("cat > \"$d/sim.tasks.json\" <<'SLURMBOOK_EOF_")
            .unwrap();
        assert!(file < s.find("J_sim=$(sbatch").unwrap(), "{s}");
        for bad in ["../x", ".hidden", "a b", "a;b", ""] {
            let extras = SubmitExtras {
                files: vec![(bad.into(), "x".into())],
                ..SubmitExtras::default()
            };
            assert!(
                submit_script_ext("/r", "t", &jobs, &HashMap::new(), &extras).is_err(),
                "{bad}"
            );
        }
        // The script is valid sh.
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    #[test]
    fn rejects_injection_and_bad_input() {
        let mut j = job("a", &[]);
        j.sbatch.partition = Some("cpu; touch /tmp/pwned".into());
        let e = submit_script("/r", "t", &[j]).unwrap_err();
        assert!(e.to_string().contains("not allowed"), "{e}");
        for bad_name in ["a-b", "fn", "a b", "1a", "$(x)"] {
            assert!(
                submit_script("/r", "t", &[job(bad_name, &[])]).is_err(),
                "{bad_name}"
            );
        }
        assert!(submit_script("/r x", "t", &[job("a", &[])]).is_err());
        assert!(submit_script("$SCRATCH/r", "t", &[job("a", &[])]).is_err());
        assert!(submit_script("/r", "t;x", &[job("a", &[])]).is_err());
        assert!(submit_script("/r", "t", &[job("a", &["zz"])]).is_err());
        assert!(submit_script("/r", "t", &[job("a", &["b"]), job("b", &["a"])]).is_err());
        assert!(submit_script("/r", "t", &[job("a", &[]), job("a", &[])]).is_err());
    }

    #[test]
    fn delimiter_is_not_in_content() {
        let c = "x\nSLURMBOOK_EOF_0000\n";
        let d = heredoc_delimiter(c);
        assert!(!c.lines().any(|l| l == d));
    }

    #[test]
    fn parses_failure_output() {
        let e = parse_submit_output(
            "SBJOB a 5\nSBFAIL b\nSBCANCELLED 5\n",
            "sbatch: error: invalid partition\n",
            Some(3),
            2,
        )
        .unwrap_err();
        match e {
            SubmitError::Sbatch {
                asset,
                stderr,
                cancelled,
            } => {
                assert_eq!(asset, "b");
                assert!(stderr.contains("invalid partition"));
                assert_eq!(cancelled, ["5"]);
            }
            e => panic!("{e}"),
        }
    }
}
