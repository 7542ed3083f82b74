//! A run's timeline from the state database: each materialization's
//! submit, job start, start and end (its usage row; the materialization's
//! own times for what it lacks), grouped allocations kept together, in
//! order of start.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::draw::timeline::{seconds_label, Timeline, TimelineBar};
use crate::model::{MaterializationId, MaterializationStatus, Usage};
use crate::state::{Materialization, Run};

/// How a timeline names a materialization's status.
pub fn state_label(s: MaterializationStatus) -> &'static str {
    match s {
        MaterializationStatus::Ok => "done",
        MaterializationStatus::Failed => "failed",
        MaterializationStatus::Cancelled => "cancelled",
        MaterializationStatus::Running => "running",
        MaterializationStatus::Skipped => "skipped",
    }
}

/// The times of one materialization (absolute).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Times {
    submitted: DateTime<Utc>,
    job_start: Option<DateTime<Utc>>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

fn times(m: &Materialization, u: Option<&Usage>) -> Times {
    let Some(u) = u else {
        return Times {
            submitted: m.started_at,
            job_start: None,
            start: Some(m.started_at),
            end: m.finished_at,
        };
    };
    let submitted = u.submitted_at.unwrap_or(m.started_at);
    let job_start = u.job_started_at.or_else(|| {
        u.queue_ms
            .map(|q| submitted + chrono::Duration::milliseconds(q as i64))
    });
    let start = u.started_at.or(job_start);
    let end = u.ended_at.or(m.finished_at);
    Times {
        submitted,
        job_start,
        start,
        end: end.map(|e| start.map_or(e, |s| e.max(s))),
    }
}

/// The timeline of `run` (its non-skipped materializations).
pub fn build(
    run: &Run,
    rows: &[Materialization],
    usage: &HashMap<MaterializationId, Usage>,
) -> Timeline {
    let rows: Vec<(&Materialization, Option<&Usage>, Times)> = rows
        .iter()
        .filter(|m| m.status != MaterializationStatus::Skipped)
        .map(|m| {
            let u = usage.get(&m.id);
            (m, u, times(m, u))
        })
        .collect();
    let t0 = rows
        .iter()
        .map(|r| r.2.submitted)
        .min()
        .unwrap_or(run.started_at);
    let secs = |t: DateTime<Utc>| (t - t0).num_milliseconds().max(0) as f64 / 1000.0;
    let mut bars: Vec<(String, f64, TimelineBar)> = rows
        .iter()
        .map(|(m, u, t)| {
            let first = t.start.or(t.job_start).unwrap_or(t.submitted);
            let group = u
                .and_then(|u| u.allocation.clone())
                .unwrap_or_else(|| format!(" {}", m.asset));
            let bar = TimelineBar {
                asset: m.asset.clone(),
                state: state_label(m.status).to_string(),
                job_id: m.job_id.clone(),
                allocation: u.and_then(|u| u.allocation.clone()),
                submitted: secs(t.submitted),
                job_start: t.job_start.map(secs),
                start: t.start.map(secs),
                end: t.end.map(secs),
                detail: u.map(Usage::summary).unwrap_or_default(),
            };
            (group, secs(first), bar)
        })
        .collect();
    // Allocations stay together, placed at their first step's start.
    let mut group_start: HashMap<String, f64> = HashMap::new();
    for (g, s, _) in &bars {
        let e = group_start.entry(g.clone()).or_insert(*s);
        *e = e.min(*s);
    }
    bars.sort_by(|a, b| {
        let ga = (group_start[&a.0], &a.0);
        let gb = (group_start[&b.0], &b.0);
        ga.partial_cmp(&gb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.asset.cmp(&b.2.asset))
    });
    let bars: Vec<TimelineBar> = bars.into_iter().map(|(_, _, b)| b).collect();
    Timeline {
        title: title(run, &bars),
        bars,
    }
}

/// `run 3 · slurm · ok — 3 assets over 14s; in total 3.1s queued, 9.8s
/// computing` (queued: each job's wait once; computing: each asset's run).
fn title(run: &Run, bars: &[TimelineBar]) -> String {
    let mut waits: HashMap<String, f64> = HashMap::new();
    let mut computing = 0.0;
    for b in bars {
        let key = b.job_id.clone().unwrap_or_else(|| b.asset.clone());
        if let Some(j) = b.job_start.or(b.start) {
            let w = waits.entry(key).or_insert(0.0);
            *w = w.max(j - b.submitted);
        }
        if let (Some(s), Some(e)) = (b.start, b.end) {
            computing += e - s;
        }
    }
    let span = bars
        .iter()
        .flat_map(|b| [Some(b.submitted), b.end])
        .flatten()
        .fold(0.0, f64::max);
    let queued: f64 = waits.values().sum();
    format!(
        "run {} · {} · {} — {} asset{} over {}; in total {} queued, {} computing",
        run.id,
        run.target.as_str(),
        run.status.as_str(),
        bars.len(),
        if bars.len() == 1 { "" } else { "s" },
        seconds_label(span),
        seconds_label(queued),
        seconds_label(computing),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunStatus, Target};
    use std::collections::BTreeMap;

    fn at(s: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + (s * 1000.0) as i64).unwrap()
    }

    fn mat(
        id: i64,
        asset: &str,
        status: MaterializationStatus,
        start: f64,
        end: f64,
    ) -> Materialization {
        Materialization {
            id,
            asset: asset.into(),
            version: "v".into(),
            own_hash: "h".into(),
            upstream_versions: BTreeMap::new(),
            run_id: Some(1),
            target: Target::Slurm,
            status,
            started_at: at(start),
            finished_at: Some(at(end)),
            duration_ms: None,
            job_id: Some(format!("{}", 100 + id)),
            node: None,
            metadata: serde_json::Value::Null,
            value_path: None,
            error: None,
            partition: None,
        }
    }

    #[test]
    fn bars_in_order_of_start_with_allocations_together() {
        let run = Run {
            id: 4,
            started_at: at(0.0),
            finished_at: Some(at(20.0)),
            selection: "*".into(),
            target: Target::Slurm,
            profile: None,
            status: RunStatus::Failed,
        };
        let ok = MaterializationStatus::Ok;
        let mut rows = vec![
            mat(1, "late", ok, 0.0, 20.0),
            mat(2, "s2", MaterializationStatus::Failed, 0.0, 20.0),
            mat(3, "s1", ok, 0.0, 20.0),
            mat(4, "early", ok, 0.0, 20.0),
            mat(5, "fresh", MaterializationStatus::Skipped, 0.0, 0.0),
            mat(6, "old", ok, 1.0, 3.0),
        ];
        // The allocation's steps share its job.
        rows[1].job_id = Some("200".into());
        rows[2].job_id = Some("200".into());
        let step = |job_start: f64, start: f64, end: f64| Usage {
            allocation: Some("alloc_s1".into()),
            submitted_at: Some(at(0.0)),
            job_started_at: Some(at(job_start)),
            started_at: Some(at(start)),
            ended_at: Some(at(end)),
            wall_ms: Some(((end - start) * 1000.0) as u64),
            ..Usage::default()
        };
        let usage: HashMap<i64, Usage> = [
            (
                1,
                Usage {
                    submitted_at: Some(at(0.0)),
                    queue_ms: Some(9000),
                    ended_at: Some(at(12.0)),
                    ..Usage::default()
                },
            ),
            (2, step(2.0, 6.0, 7.0)),
            (3, step(2.0, 2.5, 6.0)),
            (
                4,
                Usage {
                    submitted_at: Some(at(0.0)),
                    job_started_at: Some(at(0.5)),
                    started_at: Some(at(0.5)),
                    ended_at: Some(at(1.5)),
                    ..Usage::default()
                },
            ),
        ]
        .into_iter()
        .collect();
        let t = build(&run, &rows, &usage);
        let names: Vec<&str> = t.bars.iter().map(|b| b.asset.as_str()).collect();
        // `old` has no usage row: its own start (1 s) counts.
        assert_eq!(names, ["early", "old", "s1", "s2", "late"]);
        let late = &t.bars[4];
        assert_eq!(
            (late.job_start, late.start, late.end),
            (Some(9.0), Some(9.0), Some(12.0))
        );
        assert_eq!(t.bars[3].state, "failed");
        assert_eq!(t.bars[2].allocation.as_deref(), Some("alloc_s1"));
        assert!(
            t.title
                .starts_with("run 4 · slurm · failed — 5 assets over 12s"),
            "{}",
            t.title
        );
        // Queued: late 9 s + early 0.5 s + the allocation's 2 s once + old 0.
        assert!(
            t.title.ends_with("in total 11.5s queued, 10.5s computing"),
            "{}",
            t.title
        );
    }
}
