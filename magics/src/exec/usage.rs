//! What a run's assets used, as the executors know it: assembled per Slurm
//! job from `sacct` (clusters with accounting), the job's own measurement
//! and `scontrol`'s times ([`slurm_usage`]), or measured in the kernel
//! ([`kernel_usage`]); recorded with each materialization and reported as
//! [`Event::Usage`], with right-sizing hints for the assets that ended well.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::events::{AssetState, Emit, Event};
use crate::exec::slurm::accounting::AcctRow;
use crate::exec::slurm::{JobOutcome, SlurmJobsResult};
use crate::model::{Requested, Usage, UsageSource};
use crate::plan::Plan;
use crate::state::{Materialization, StateDb, StateError};
use crate::usage::asset_hints;
use crate::usage::process::ProcessUsage;

/// What an asset asked for, and the grouped allocation it ran in (`None`:
/// a job of its own), from the run's planned allocations.
pub fn requested(plan: &Plan, asset: &str) -> (Requested, Option<String>) {
    for a in &plan.allocations {
        let Some(i) = a.assets.iter().position(|x| x == asset) else {
            continue;
        };
        let step = &a.steps[i];
        let group = a.is_group();
        let req = Requested {
            cpus: Some(
                step.cpus
                    * if group {
                        1
                    } else {
                        a.sbatch.ntasks.unwrap_or(1)
                    },
            ),
            mem_bytes: step.mem_mb.map(|m| m * 1024 * 1024),
            time_s: step.time.map(|t| t.seconds),
            gpus: step.gpus.as_ref().map(|g| g.count),
            nodes: Some(if group {
                1
            } else {
                a.sbatch.nodes.unwrap_or(1)
            }),
        };
        return (req, group.then(|| a.name.clone()));
    }
    (Requested::default(), None)
}

fn epoch(s: f64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis((s * 1000.0).round() as i64)
}

fn after(t: DateTime<Utc>, ms: Option<u64>) -> Option<DateTime<Utc>> {
    ms.map(|ms| t + Duration::milliseconds(ms as i64))
}

/// The usage of one Slurm job (or step): `sacct`'s figures where it has
/// them, the job's own for the rest, the wall time Slurm measured when
/// neither; queue wait from `scontrol`; times anchored at `submitted` (the
/// kernel's clock) by Slurm's durations, else the step's or the job's own
/// Unix times.
pub fn slurm_usage(
    o: &JobOutcome,
    requested: Requested,
    allocation: Option<String>,
    submitted: DateTime<Utc>,
) -> Usage {
    let acct = AcctRow::pick(&o.accounting, &o.asset, allocation.is_some());
    let own = o.job_usage.as_ref();
    let mut u = Usage {
        requested,
        submitted_at: Some(submitted),
        queue_ms: o.queue_ms,
        ..Usage::default()
    };
    let mut from_sacct = false;
    if let Some(a) = &acct {
        from_sacct = a.elapsed_ms.is_some() || a.cpu_ms.is_some() || a.max_rss_bytes.is_some();
        u.wall_ms = a.elapsed_ms;
        u.cpu_ms = a.cpu_ms;
        u.max_rss_bytes = a.max_rss_bytes.filter(|b| *b > 0);
        u.cpus = a.cpus;
        u.nodes = a.nodes;
        u.gpus = a.gpus;
        u.gpu_util_pct = a.gpu_util_pct;
        u.gpu_mem_bytes = a.gpu_mem_bytes;
    }
    let mut from_job = false;
    if let Some(j) = own {
        let mut fill = |slot: &mut Option<u64>, v: Option<u64>| {
            if slot.is_none() && v.is_some() {
                *slot = v;
                from_job = true;
            }
        };
        fill(&mut u.wall_ms, Some(j.wall_ms));
        fill(&mut u.cpu_ms, Some(j.user_ms + j.sys_ms));
        fill(&mut u.max_rss_bytes, j.max_rss_kb.map(|kb| kb * 1024));
        u.cpus = u.cpus.or(j.cpus);
        u.gpus = u.gpus.or(j.gpus);
    }
    if u.wall_ms.is_none() {
        u.wall_ms = o.elapsed_ms;
    }
    u.source = match (from_sacct, from_job) {
        (true, true) => Some(UsageSource::SacctAndJob),
        (true, false) => Some(UsageSource::Sacct),
        (false, true) => Some(UsageSource::Job),
        (false, false) => None,
    };
    u.nodes = u.nodes.or(u.requested.nodes);
    place(&mut u, o, submitted, allocation.is_some());
    u.allocation = allocation;
    u
}

/// When it waited and ran. The computation: its step's lines, else its
/// own clock (both to the millisecond), else — a job of its own — Slurm's
/// times (whole seconds) from the submission. The job started at
/// submission + queue wait, but no later than the computation, which also
/// bounds the queue wait (Slurm's times are truncated to seconds).
fn place(u: &mut Usage, o: &JobOutcome, submitted: DateTime<Utc>, step: bool) {
    let own = o.job_usage.as_ref();
    let own_start = own.and_then(|j| j.started_at).and_then(epoch);
    let own_end = own.and_then(|j| j.ended_at).and_then(epoch);
    let slurm_start = after(submitted, o.queue_ms);
    let slurm_end = slurm_start.and_then(|s| after(s, o.elapsed_ms));
    let (step_start, step_end) = o.step_times;
    u.started_at = step_start
        .and_then(epoch)
        .or(own_start)
        .or(slurm_start.filter(|_| !step));
    u.ended_at = step_end
        .and_then(epoch)
        .or(own_end)
        .or(slurm_end.filter(|_| !step));
    u.job_started_at = match (slurm_start, u.started_at) {
        (Some(j), Some(s)) => Some(j.min(s)),
        (j, s) => j.or(s.filter(|_| !step)),
    };
    if let Some(j) = u.job_started_at.filter(|j| *j >= submitted) {
        let waited = (j - submitted).num_milliseconds() as u64;
        u.queue_ms = Some(u.queue_ms.map_or(waited, |q| q.min(waited)));
    }
    if matches!(o.state, AssetState::Cancelled { .. }) && u.started_at.is_none() {
        u.ended_at = None;
    }
}

/// Records the usage of each job of a Slurm run with its materialization
/// (`rows`, by asset) and reports it, with hints for the assets done.
pub fn record_slurm(
    db: &StateDb,
    plan: &Plan,
    result: &SlurmJobsResult,
    rows: &HashMap<String, Materialization>,
    emit: &dyn Emit,
) -> Result<(), StateError> {
    for o in &result.jobs {
        let Some(row) = rows.get(&o.asset) else {
            continue;
        };
        let (req, allocation) = requested(plan, &o.asset);
        let usage = slurm_usage(o, req, allocation, row.started_at);
        db.record_usage(row.id, &usage)?;
        let hints = match o.state {
            AssetState::Done { .. } => asset_hints(db, &o.asset, None)?,
            _ => Vec::new(),
        };
        emit.emit(Event::Usage {
            asset: o.asset.clone(),
            usage,
            hints,
        });
    }
    Ok(())
}

/// The usage of an asset run in the kernel: queued when the run began,
/// its evaluation's wall time and times, and what the session process
/// measured.
pub fn kernel_usage(
    queued: DateTime<Utc>,
    started: DateTime<Utc>,
    wall_ms: u64,
    process: ProcessUsage,
) -> Usage {
    Usage {
        source: Some(UsageSource::Kernel),
        submitted_at: Some(queued),
        started_at: Some(started),
        ended_at: after(started, Some(wall_ms)),
        wall_ms: Some(wall_ms),
        cpu_ms: process.cpu_ms,
        max_rss_bytes: process.max_rss_bytes,
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::slurm::JobUsage;

    fn outcome(state: AssetState) -> JobOutcome {
        JobOutcome {
            asset: "a".into(),
            job_id: "7".into(),
            state,
            slurm_state: "COMPLETED".into(),
            node: Some("vm".into()),
            elapsed_ms: Some(3000),
            exit_code: Some(0),
            signal: None,
            metadata: serde_json::Value::Null,
            materialized_bytes: None,
            bundle_error: None,
            stderr_tail: String::new(),
            stdout_offset: 0,
            stderr_offset: 0,
            queue_ms: Some(2000),
            step_times: (None, None),
            accounting: Vec::new(),
            job_usage: None,
            task: None,
        }
    }

    fn done() -> AssetState {
        AssetState::Done {
            duration_ms: 3000,
            location: "vm".into(),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn without_accounting_the_jobs_own_figures_count() {
        let mut o = outcome(done());
        o.job_usage = Some(JobUsage {
            wall_ms: 2500,
            user_ms: 2000,
            sys_ms: 300,
            max_rss_kb: Some(204_800),
            started_at: Some(1_800_000_002.2),
            ended_at: Some(1_800_000_004.7),
            cpus: Some(1),
            gpus: None,
        });
        let u = slurm_usage(&o, Requested::default(), None, t(0));
        assert_eq!(u.source, Some(UsageSource::Job));
        assert_eq!((u.wall_ms, u.cpu_ms), (Some(2500), Some(2300)));
        assert_eq!(u.max_rss_bytes, Some(200 << 20));
        assert_eq!(u.queue_ms, Some(2000));
        // Its own clock places the computation; Slurm's queue wait the job.
        assert_eq!(u.job_started_at, Some(t(2)));
        let ms = |s: i64, ms: i64| t(s) + Duration::milliseconds(ms);
        assert_eq!(
            (u.started_at, u.ended_at),
            (Some(ms(2, 200)), Some(ms(4, 700)))
        );
        assert_eq!(u.cpu_efficiency(), Some(0.92));
        // Without it, Slurm's times: submitted + queue, + elapsed.
        o.job_usage = None;
        let u = slurm_usage(&o, Requested::default(), None, t(0));
        assert_eq!((u.started_at, u.ended_at), (Some(t(2)), Some(t(5))));
        assert_eq!(u.source, None);
    }

    #[test]
    fn accounting_wins_and_the_job_fills_the_gaps() {
        let mut o = outcome(done());
        o.accounting = [
            "7|4|00:06.000||billing=2,cpu=2,mem=1G,node=1||1|job",
            "7.batch|4|00:06.000||cpu=2,mem=1G,node=1||1|batch",
        ]
        .iter()
        .filter_map(|l| AcctRow::parse(l))
        .collect();
        o.job_usage = Some(JobUsage {
            wall_ms: 2500,
            user_ms: 1,
            max_rss_kb: Some(1024),
            ..JobUsage::default()
        });
        let u = slurm_usage(&o, Requested::default(), None, t(0));
        assert_eq!(u.source, Some(UsageSource::SacctAndJob));
        assert_eq!(
            (u.wall_ms, u.cpu_ms, u.cpus),
            (Some(4000), Some(6000), Some(2))
        );
        assert_eq!(u.max_rss_bytes, Some(1 << 20));
        assert_eq!(u.cpu_efficiency(), Some(0.75));
    }

    #[test]
    fn a_step_takes_its_times_from_the_steps_file() {
        let mut o = outcome(done());
        o.step_times = (Some(1_800_000_003.0), Some(1_800_000_004.0));
        let u = slurm_usage(&o, Requested::default(), Some("alloc_a".into()), t(0));
        assert_eq!(u.job_started_at, Some(t(2)));
        assert_eq!((u.started_at, u.ended_at), (Some(t(3)), Some(t(4))));
        assert_eq!(u.allocation.as_deref(), Some("alloc_a"));
        // scontrol's whole seconds said 2 s; the step started 0.4 s in.
        o.step_times = (Some(1_800_000_000.4), Some(1_800_000_001.0));
        let u = slurm_usage(&o, Requested::default(), Some("alloc_a".into()), t(0));
        assert_eq!(u.job_started_at, u.started_at);
        assert_eq!(u.queue_ms, Some(400));
        // Nothing measured: Slurm's elapsed time, no source.
        assert_eq!((u.wall_ms, u.source), (Some(3000), None));
        // A job cancelled before it started has no run.
        let mut o = outcome(AssetState::Cancelled { because: None });
        o.queue_ms = None;
        let u = slurm_usage(&o, Requested::default(), None, t(0));
        assert_eq!((u.started_at, u.ended_at), (None, None));
    }

    #[test]
    fn kernel_runs_record_their_wall_time() {
        let u = kernel_usage(
            t(0),
            t(1),
            1500,
            ProcessUsage {
                cpu_ms: Some(1400),
                max_rss_bytes: None,
            },
        );
        assert_eq!(u.source, Some(UsageSource::Kernel));
        assert_eq!(u.ended_at, Some(t(1) + Duration::milliseconds(1500)));
        assert_eq!(u.cpu_efficiency(), None);
    }
}
