//! Running a group of assets inside ONE Slurm allocation.
//!
//! The batch script of a grouped job ([`driver_script`]) starts one
//! background shell per asset. Each waits until its upstream steps of the
//! allocation have ended (their `.<asset>.rc` files appear in the run
//! directory, written atomically), then runs the asset as an `srun` step:
//!
//! ```text
//! srun --exact -n1 -c<cpus> [--mem=<M>M] [--gres=...] [--time=...] --job-name=<asset>
//!      --output=<run>/<asset>.out --error=<run>/<asset>.err --open-mode=append -- <argv>
//! ```
//!
//! `--exact` (Slurm >= 21.08) gives each step only what it asks for, so
//! independent steps run in parallel within the allocation and steps that
//! do not fit wait in srun until others end. The asset's output goes to the
//! same `<asset>.out`/`.err` files as a job of its own, so the watcher's one
//! `tail -F` streams it unchanged. If an upstream step did not succeed, the
//! step is not started.
//!
//! Progress is appended to `<run>/<allocation>.steps`, which the same tail
//! follows, one line per event (small appends are atomic):
//!
//! ```text
//! start <asset> <node> <unix time with ns>
//! end <asset> <exit status of srun> <unix time>
//! skip <asset> <upstream that did not succeed>
//! ```
//!
//! Everything in the script is validated (asset names are identifiers, the
//! run directory a safe absolute path, resource values numbers or
//! whitelisted sbatch values) and every argument is shell-quoted.

use std::collections::{HashMap, HashSet};

use super::ssh::{check_abs_path, quote, Remote};
use super::submit::{env_prelude, submit_script_with, JobEnv, JobSpec, SubmitError};
use super::watch::WatchJob;
use crate::model::is_identifier;
use crate::plan::sbatch::check_value;
use crate::plan::{Allocation, StepResources};

/// A status line of a `.steps` file.
#[derive(Debug, Clone, PartialEq)]
pub enum StepLine {
    Start {
        asset: String,
        node: String,
        at: f64,
    },
    End {
        asset: String,
        code: i32,
        at: f64,
    },
    Skip {
        asset: String,
        upstream: String,
    },
}

impl StepLine {
    pub fn parse(line: &str) -> Option<StepLine> {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["start", a, node, at] => Some(StepLine::Start {
                asset: a.to_string(),
                node: node.to_string(),
                at: at.parse().ok()?,
            }),
            ["end", a, code, at] => Some(StepLine::End {
                asset: a.to_string(),
                code: code.parse().ok()?,
                at: at.parse().ok()?,
            }),
            ["skip", a, up] => Some(StepLine::Skip {
                asset: a.to_string(),
                upstream: up.to_string(),
            }),
            _ => None,
        }
    }
}

/// What the `.steps` file says about one asset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepStatus {
    pub node: Option<String>,
    pub started: Option<f64>,
    pub ended: Option<(i32, f64)>,
    pub skipped_because: Option<String>,
}

impl StepStatus {
    pub fn apply(map: &mut HashMap<String, StepStatus>, line: &StepLine) {
        match line {
            StepLine::Start { asset, node, at } => {
                let s = map.entry(asset.clone()).or_default();
                s.node = Some(node.clone());
                s.started = Some(*at);
            }
            StepLine::End { asset, code, at } => {
                map.entry(asset.clone()).or_default().ended = Some((*code, *at));
            }
            StepLine::Skip { asset, upstream } => {
                map.entry(asset.clone()).or_default().skipped_because = Some(upstream.clone());
            }
        }
    }

    pub fn elapsed_ms(&self) -> Option<u64> {
        let (s, (_, e)) = (self.started?, self.ended?);
        Some(((e - s).max(0.0) * 1000.0).round() as u64)
    }
}

/// One step of a grouped job.
#[derive(Debug, Clone, Copy)]
pub struct DriverStep<'a> {
    pub asset: &'a str,
    /// Upstream steps of the same allocation.
    pub after: &'a [String],
    pub command: &'a [String],
    pub resources: &'a StepResources,
}

/// `<run>/<allocation>.steps`.
pub fn steps_file(run_dir: &str, allocation: &str) -> String {
    format!("{}/{allocation}.steps", run_dir.trim_end_matches('/'))
}

const DRIVER_PRELUDE: &str = r#"st="$d/$g.steps"
cd "$d" || exit 1
node=${SLURMD_NODENAME:-$(hostname)}
log() { printf '%s\n' "$*" >> "$st"; }
# finish ASSET STATUS: publish how a step ended, and wake the waiting steps.
finish() {
  printf '%s\n' "$2" > "$d/.$1.rc.tmp" && mv -f "$d/.$1.rc.tmp" "$d/.$1.rc"
  for w in "$d/.$g.wait."*; do
    [ -e "$w" ] && kill -USR1 "${w##*.wait.}" 2>/dev/null
  done
  :
}
# await ASSET UPSTREAM...: wait until the upstream steps ended; 1 (and a
# skip line) if one of them did not succeed. Waiting steps sleep until a
# step finishes (it signals them: no polling delay along a chain); the
# 1 s sleep only bounds a wake-up lost between the test and the sleep.
await() {
  a=$1; shift
  [ $# -eq 0 ] && return 0
  self=$(exec sh -c 'echo $PPID')
  sp=
  trap '[ -n "$sp" ] && kill "$sp" 2>/dev/null' USR1
  : > "$d/.$g.wait.$self"
  for u in "$@"; do
    while [ ! -e "$d/.$u.rc" ]; do sleep 1 & sp=$!; wait "$sp"; sp=; done
    if [ "$(cat "$d/.$u.rc")" != 0 ]; then
      rm -f "$d/.$g.wait.$self"
      log "skip $a $u"; finish "$a" skip; return 1
    fi
  done
  rm -f "$d/.$g.wait.$self"
  trap - USR1
  return 0
}
# step ASSET SRUN-ARGS...
step() {
  a=$1; shift
  log "start $a $node $(date +%s.%N)"
  srun "$@"
  r=$?
  log "end $a $r $(date +%s.%N)"
  finish "$a" "$r"
}
"#;

/// The batch script of a grouped job (see the module docs). Validates
/// everything put into it.
pub fn driver_script(
    run_dir: &str,
    allocation: &str,
    steps: &[DriverStep<'_>],
    env: Option<&JobEnv>,
) -> Result<String, SubmitError> {
    let inv = |s: String| SubmitError::Invalid(s);
    check_abs_path(run_dir)?;
    let run_dir = run_dir.trim_end_matches('/');
    if !is_identifier(allocation) {
        return Err(inv(format!(
            "`{allocation}` is not a valid allocation name"
        )));
    }
    let names: HashSet<&str> = steps.iter().map(|s| s.asset).collect();
    if names.len() != steps.len() {
        return Err(inv(format!(
            "allocation `{allocation}` lists an asset twice"
        )));
    }
    let mut s = String::from("#!/bin/sh\n# Generated by slurmbook: the steps of one allocation.\n");
    s.push_str(&format!("d={}\ng={allocation}\n", quote(run_dir)));
    if let Some(env) = env {
        // Steps inherit the activated environment from this script.
        env.check()?;
        s.push_str(&format!("cd \"$d\"\n{}\n", env_prelude(env)));
    }
    s.push_str(DRIVER_PRELUDE);
    // A requeued job starts from scratch.
    let mut rm = String::from("rm -f");
    for st in steps {
        if !is_identifier(st.asset) {
            return Err(inv(format!("`{}` is not a valid asset name", st.asset)));
        }
        rm.push_str(&format!(" \"$d/.{}.rc\"", st.asset));
    }
    rm.push_str(" \"$d/.$g.wait.\"*");
    s.push_str(&rm);
    s.push('\n');
    for st in steps {
        let a = st.asset;
        for u in st.after {
            if !names.contains(u.as_str()) || u == a {
                return Err(inv(format!(
                    "step `{a}` waits for `{u}`, which is not another step of `{allocation}`"
                )));
            }
        }
        if st.command.is_empty() || st.command.iter().any(|c| c.contains('\0')) {
            return Err(inv(format!("step `{a}`: empty command or NUL byte")));
        }
        let r = st.resources;
        let mut srun: Vec<String> = vec![
            "--exact".into(),
            "--ntasks=1".into(),
            format!("--cpus-per-task={}", r.cpus.max(1)),
        ];
        if let Some(m) = r.mem_mb {
            srun.push(format!("--mem={m}M"));
        }
        if let Some(g) = &r.gpus {
            let g = format!("gpu:{g}");
            check_value("gres", &g).map_err(|e| inv(format!("step `{a}`: {e}")))?;
            srun.push(quote(&format!("--gres={g}")).into_owned());
        }
        if let Some(t) = r.time {
            srun.push(format!("--time={t}"));
        }
        srun.push(format!("--job-name={a}"));
        srun.push(format!("\"--output=$d/{a}.out\""));
        srun.push(format!("\"--error=$d/{a}.err\""));
        srun.push("--open-mode=append".into());
        srun.push("--".into());
        for c in st.command {
            srun.push(quote(c).into_owned());
        }
        let mut wait = format!("await {a}");
        for u in st.after {
            wait.push(' ');
            wait.push_str(u);
        }
        s.push_str(&format!("( {wait} && step {a} {} ) &\n", srun.join(" ")));
    }
    s.push_str("wait\n");
    // The job fails when a step did not succeed (dependent jobs then do not start).
    s.push_str("for a in");
    for st in steps {
        s.push(' ');
        s.push_str(st.asset);
    }
    s.push_str("; do [ \"$(cat \"$d/.$a.rc\" 2>/dev/null)\" = 0 ] || exit 1; done\nexit 0\n");
    Ok(s)
}

/// Submit the run's allocations in ONE round trip: single-asset
/// allocations as ordinary jobs, groups as driver jobs, each waiting
/// (`afterok`) for the allocations it depends on. `jobs` has one
/// [`JobSpec`] per asset (its argv and upstreams). Returns the
/// [`WatchJob`]s to follow, one per asset, in the allocations' order.
pub async fn submit_allocations(
    remote: &Remote,
    run_dir: &str,
    run_tag: &str,
    jobs: &[JobSpec],
    allocations: &[Allocation],
) -> Result<Vec<WatchJob>, SubmitError> {
    let (specs, scripts) = allocation_jobs(run_dir, jobs, allocations)?;
    let script = submit_script_with(run_dir, run_tag, &specs, &scripts)?;
    let out = remote.run_script(&script).await?;
    let ids = super::submit::parse_submit_output(
        &out.stdout_text(),
        &out.stderr_text(),
        out.code,
        specs.len(),
    )?;
    Ok(allocation_watch_jobs(jobs, allocations, &ids))
}

/// The job specs (one per allocation) and the batch scripts of the groups.
pub fn allocation_jobs(
    run_dir: &str,
    jobs: &[JobSpec],
    allocations: &[Allocation],
) -> Result<(Vec<JobSpec>, HashMap<String, String>), SubmitError> {
    let by_asset: HashMap<&str, &JobSpec> = jobs.iter().map(|j| (j.asset.as_str(), j)).collect();
    let mut specs = Vec::new();
    let mut scripts = HashMap::new();
    for a in allocations {
        let members: Vec<&JobSpec> = a
            .assets
            .iter()
            .map(|x| {
                by_asset.get(x.as_str()).copied().ok_or_else(|| {
                    SubmitError::Invalid(format!("allocation `{}`: no job for `{x}`", a.name))
                })
            })
            .collect::<Result<_, _>>()?;
        if !a.is_group() {
            specs.push(JobSpec {
                asset: a.name.clone(),
                sbatch: a.sbatch.clone(),
                command: members[0].command.clone(),
                after: a.after.clone(),
                env: members[0].env.clone(),
            });
            continue;
        }
        let inside: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                m.after
                    .iter()
                    .filter(|u| a.assets.contains(u))
                    .cloned()
                    .collect()
            })
            .collect();
        let steps: Vec<DriverStep<'_>> = members
            .iter()
            .zip(&inside)
            .zip(&a.steps)
            .map(|((m, after), res)| DriverStep {
                asset: &m.asset,
                after,
                command: &m.command,
                resources: res,
            })
            .collect();
        let env = members[0].env.as_ref();
        if members.iter().any(|m| m.env.as_ref() != env) {
            return Err(SubmitError::Invalid(format!(
                "allocation `{}` mixes job environments",
                a.name
            )));
        }
        scripts.insert(
            a.name.clone(),
            driver_script(run_dir, &a.name, &steps, env)?,
        );
        specs.push(JobSpec {
            asset: a.name.clone(),
            sbatch: a.sbatch.clone(),
            command: vec!["/bin/sh".into()],
            after: a.after.clone(),
            env: None,
        });
    }
    Ok((specs, scripts))
}

/// One [`WatchJob`] per asset from the allocations' submitted job ids.
pub fn allocation_watch_jobs(
    jobs: &[JobSpec],
    allocations: &[Allocation],
    ids: &[(String, String)],
) -> Vec<WatchJob> {
    let id_of: HashMap<&str, &str> = ids.iter().map(|(n, i)| (n.as_str(), i.as_str())).collect();
    let mut out = Vec::new();
    for a in allocations {
        let Some(id) = id_of.get(a.name.as_str()) else {
            continue;
        };
        for asset in &a.assets {
            out.push(WatchJob {
                asset: asset.clone(),
                job_id: id.to_string(),
                after: jobs
                    .iter()
                    .find(|j| j.asset == *asset)
                    .map(|j| j.after.clone())
                    .unwrap_or_default(),
                step_of: a.is_group().then(|| a.name.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobGrouping;
    use crate::plan::{plan_allocations, ClusterLimits, SbatchRequest, StepRequest};

    fn res() -> StepResources {
        StepResources {
            cpus: 1,
            mem_mb: Some(100),
            gpus: None,
            time: Some("00:05:00".parse().unwrap()),
        }
    }

    #[test]
    fn script_waits_runs_and_quotes() {
        let r = res();
        let cmd = vec!["/c/bin".to_string(), "b".into(), "it's $(x)".into()];
        let up = vec!["a".to_string()];
        let s = driver_script(
            "/scratch/run",
            "alloc_a",
            &[
                DriverStep {
                    asset: "a",
                    after: &[],
                    command: &cmd,
                    resources: &r,
                },
                DriverStep {
                    asset: "b",
                    after: &up,
                    command: &cmd,
                    resources: &r,
                },
            ],
            Some(&JobEnv {
                tool: "/s/cache/tool".into(),
                archive: "/s/cache/env".into(),
                prefix: "/s/envs/k1".into(),
            }),
        )
        .unwrap();
        assert!(s.contains("d=/scratch/run\ng=alloc_a\n"), "{s}");
        assert!(
            s.contains(
                "unpacked=$(/s/cache/tool unpack --archive /s/cache/env --prefix /s/envs/k1 2>&1)"
            ) && s.contains(". /s/envs/k1/slurmbook-activate.sh\n"),
            "{s}"
        );
        assert!(s.contains("( await a && step a --exact --ntasks=1 --cpus-per-task=1 --mem=100M --time=00:05:00 --job-name=a \"--output=$d/a.out\" \"--error=$d/a.err\" --open-mode=append -- /c/bin b 'it'\\''s $(x)' ) &"), "{s}");
        assert!(s.contains("( await b a && step b "), "{s}");
        assert!(s.contains("for a in a b; do"), "{s}");
    }

    #[test]
    fn script_rejects_injection() {
        let cmd = vec!["x".to_string()];
        let one = |asset: &str, after: &[String], r: &StepResources| {
            let st = DriverStep {
                asset,
                after,
                command: &cmd,
                resources: r,
            };
            driver_script("/r", "g", &[st], None).map(|_| ())
        };
        let r = res();
        assert!(one("a", &[], &r).is_ok());
        assert!(one("a;rm", &[], &r).is_err());
        assert!(one("a", &["$(id)".to_string()], &r).is_err());
        let st = DriverStep {
            asset: "a",
            after: &[],
            command: &cmd,
            resources: &r,
        };
        assert!(driver_script("/r", "g;x", &[st], None).is_err());
        assert!(driver_script("/r $(x)", "g", &[st], None).is_err());
        assert!(driver_script("/r", "g", &[st, st], None).is_err());
        let bad = StepResources {
            gpus: Some(crate::model::Gpus {
                kind: Some("1;touch /tmp/x".into()),
                count: 1,
            }),
            ..res()
        };
        let e = one("a", &[], &bad).unwrap_err();
        assert!(e.to_string().contains("not allowed"), "{e}");
    }

    #[test]
    fn parses_status_lines() {
        let mut m = HashMap::new();
        for l in [
            "start a vm 1795566113.198467870",
            "end a 3 1795566115.7",
            "skip b a",
            "garbage",
        ] {
            if let Some(x) = StepLine::parse(l) {
                StepStatus::apply(&mut m, &x);
            }
        }
        assert_eq!(m["a"].node.as_deref(), Some("vm"));
        assert_eq!(m["a"].ended.map(|e| e.0), Some(3));
        assert_eq!(m["a"].elapsed_ms(), Some(2502));
        assert_eq!(m["b"].skipped_because.as_deref(), Some("a"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn allocations_become_one_job_per_allocation() {
        let spec = |a: &str, after: &[&str]| JobSpec {
            asset: a.into(),
            sbatch: SbatchRequest {
                time: Some("00:01:00".parse().unwrap()),
                ..SbatchRequest::default()
            },
            command: vec!["bin".into(), a.into()],
            after: after.iter().map(|s| s.to_string()).collect(),
            env: None,
        };
        let jobs = vec![
            spec("a", &[]),
            spec("b", &["a"]),
            spec("c", &["b"]),
            JobSpec {
                sbatch: SbatchRequest {
                    partition: Some("long".into()),
                    ..SbatchRequest::default()
                },
                ..spec("d", &["c"])
            },
        ];
        let reqs: Vec<StepRequest> = jobs
            .iter()
            .map(|j| StepRequest {
                asset: j.asset.clone(),
                after: j.after.clone(),
                sbatch: j.sbatch.clone(),
                own_job: false,
                env: None,
            })
            .collect();
        let allocs = plan_allocations(&reqs, JobGrouping::Grouped, &ClusterLimits::default());
        let (specs, scripts) = allocation_jobs("/r", &jobs, &allocs).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].asset, "alloc_a");
        assert_eq!(specs[1].asset, "d");
        assert_eq!(specs[1].after, ["alloc_a"]);
        assert_eq!(specs[1].command, ["bin", "d"]);
        assert!(scripts["alloc_a"].contains("( await c b && step c"));
        let s = submit_script_with("/r", "t", &specs, &scripts).unwrap();
        assert!(s.contains("\"--dependency=afterok:${J_alloc_a}\""), "{s}");
        assert!(s.contains("--time=00:03:00"), "{s}");
        let w = allocation_watch_jobs(
            &jobs,
            &allocs,
            &[("alloc_a".into(), "7".into()), ("d".into(), "8".into())],
        );
        assert_eq!(w.len(), 4);
        assert_eq!(w[1].job_id, "7");
        assert_eq!(w[1].step_of.as_deref(), Some("alloc_a"));
        assert_eq!(w[3].job_id, "8");
        assert_eq!(w[3].step_of, None);
        assert_eq!(w[3].after, ["c"]);
    }
}
