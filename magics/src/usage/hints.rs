//! Right-sizing hints: an asset that used far less than it asked for, in
//! each of its last runs, is told which option value would do.
//!
//! * **Memory**: peak under a quarter of `--mem` ([`MEM_FRACTION`]): the
//!   peak × 1.5, rounded up to a power of two (at least 128M).
//! * **CPUs**: more than one CPU and a CPU efficiency under 25 %
//!   ([`CPU_EFFICIENCY`]): the cores it kept busy × 1.25, rounded up.
//! * **Time**: wall time under a tenth of `--time` ([`TIME_FRACTION`]):
//!   twice the wall time (at least a minute), rounded up to a minute (5
//!   minutes from 10 minutes on, 30 minutes from 2 hours on).
//!
//! A rule looks at the last [`LAST_RUNS`] runs that have both the request
//! and the figure, and holds only if it holds for each; the suggestion
//! covers the largest of them, and is made only when it is below what the
//! newest run asked.

use crate::model::usage::{format_bytes, format_ms, format_pct};
use crate::model::{Hint, SlurmTime, Usage};

/// Peak memory under this fraction of `--mem`.
pub const MEM_FRACTION: f64 = 0.25;
/// CPU efficiency under this.
pub const CPU_EFFICIENCY: f64 = 0.25;
/// Wall time under this fraction of `--time`.
pub const TIME_FRACTION: f64 = 0.10;
/// How many of an asset's last runs the rules look at.
pub const LAST_RUNS: usize = 3;

const MIB: u64 = 1024 * 1024;

/// The hints for an asset from the usage of its last successful runs,
/// newest first (see the module docs).
pub fn hints(runs: &[Usage]) -> Vec<Hint> {
    let runs = &runs[..runs.len().min(LAST_RUNS)];
    [mem_hint(runs), cpu_hint(runs), time_hint(runs)]
        .into_iter()
        .flatten()
        .collect()
}

/// The runs that know both values, newest first; `None` unless the rule
/// holds for each of them.
fn holding<T: Copy>(
    runs: &[Usage],
    values: impl Fn(&Usage) -> Option<(T, T)>,
    rule: impl Fn(T, T) -> bool,
) -> Option<Vec<(T, T)>> {
    let known: Vec<(T, T)> = runs.iter().filter_map(values).collect();
    (!known.is_empty() && known.iter().all(|&(asked, used)| rule(asked, used))).then_some(known)
}

fn mem_hint(runs: &[Usage]) -> Option<Hint> {
    let known = holding(
        runs,
        |u| Some((u.requested.mem_bytes?, u.max_rss_bytes?)),
        |asked, used| (used as f64) < asked as f64 * MEM_FRACTION,
    )?;
    let asked = known[0].0;
    let peak = known.iter().map(|k| k.1).max()?;
    let suggest = nice_mem((peak as f64 * 1.5) as u64);
    (suggest < asked).then(|| Hint {
        option: "mem".into(),
        asked: mem_option(asked),
        used: format!("peak {}", format_bytes(peak)),
        suggest: mem_option(suggest),
        runs: known.len(),
    })
}

fn cpu_hint(runs: &[Usage]) -> Option<Hint> {
    let known = holding(
        runs,
        |u| {
            let cpus = u.requested.cpus.or(u.cpus)?;
            Some((f64::from(cpus), u.cpu_efficiency()?))
        },
        |asked, eff| asked > 1.0 && eff < CPU_EFFICIENCY,
    )?;
    let asked = known[0].0 as u32;
    let busy = known.iter().map(|(c, e)| c * e).fold(0.0, f64::max);
    let worst = known.iter().map(|k| k.1).fold(0.0, f64::max);
    let suggest = ((busy * 1.25).ceil() as u32).max(1);
    (suggest < asked).then(|| Hint {
        option: "cpus".into(),
        asked: asked.to_string(),
        used: format!("CPU efficiency {}", format_pct(worst)),
        suggest: suggest.to_string(),
        runs: known.len(),
    })
}

fn time_hint(runs: &[Usage]) -> Option<Hint> {
    let known = holding(
        runs,
        |u| Some((u.requested.time_s? * 1000, u.wall_ms?)),
        |asked, wall| (wall as f64) < asked as f64 * TIME_FRACTION,
    )?;
    let asked = known[0].0 / 1000;
    let wall = known.iter().map(|k| k.1).max()?;
    let suggest = nice_time((wall * 2).div_ceil(1000).max(60));
    (suggest < asked).then(|| Hint {
        option: "time".into(),
        asked: SlurmTime { seconds: asked }.to_string(),
        used: format!("took {}", format_ms(wall)),
        suggest: SlurmTime { seconds: suggest }.to_string(),
        runs: known.len(),
    })
}

/// A power of two of MiB, at least 128M.
fn nice_mem(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).max(128).next_power_of_two() * MIB
}

/// Seconds rounded up to a minute (5 from 10 minutes, 30 from 2 hours).
fn nice_time(s: u64) -> u64 {
    let step = match s {
        0..=600 => 60,
        601..=7200 => 300,
        _ => 1800,
    };
    s.div_ceil(step) * step
}

/// How `--mem` is written: `2G`, `512M`, `1500K`.
pub fn mem_option(bytes: u64) -> String {
    // Powers of two: a mask tells whole units.
    if bytes & (1024 * MIB - 1) == 0 {
        format!("{}G", bytes / (1024 * MIB))
    } else if bytes & (MIB - 1) == 0 {
        format!("{}M", bytes / MIB)
    } else {
        format!("{}K", bytes.div_ceil(1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Requested;

    const GIB: u64 = 1024 * MIB;

    fn run(mem: Option<u64>, peak: Option<u64>) -> Usage {
        Usage {
            max_rss_bytes: peak,
            requested: Requested {
                mem_bytes: mem,
                ..Requested::default()
            },
            ..Usage::default()
        }
    }

    fn texts(runs: &[Usage]) -> Vec<String> {
        hints(runs).iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn memory_under_a_quarter_suggests_a_smaller_mem() {
        // The example: asked 16G, peak 1.1G.
        let peak = (1.1 * GIB as f64) as u64;
        assert_eq!(
            texts(&[run(Some(16 * GIB), Some(peak))]),
            ["asked --mem 16G, peak 1.1G: --mem 2G would do"]
        );
        // A quarter or more: no hint.
        assert!(hints(&[run(Some(4 * GIB), Some(GIB))]).is_empty());
        // Not asked, or not measured: no hint.
        assert!(hints(&[run(None, Some(MIB))]).is_empty());
        assert!(hints(&[run(Some(GIB), None)]).is_empty());
        // Small peaks round up to 128M.
        assert_eq!(hints(&[run(Some(GIB), Some(10 * MIB))])[0].suggest, "128M");
    }

    #[test]
    fn every_one_of_the_last_runs_must_agree() {
        let small = run(Some(16 * GIB), Some(GIB));
        let big = run(Some(16 * GIB), Some(6 * GIB));
        // One big run among the last three: no hint.
        assert!(hints(&[small.clone(), big.clone(), small.clone()]).is_empty());
        // Older than the last three: it no longer counts.
        let h = hints(&[small.clone(), small.clone(), small.clone(), big]);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].runs, 3);
        assert_eq!(
            h[0].to_string(),
            "asked --mem 16G, peak 1.0G (last 3 runs): --mem 2G would do"
        );
        // The suggestion covers the largest peak.
        let h = hints(&[small, run(Some(16 * GIB), Some(3 * GIB))]);
        assert_eq!(h[0].suggest, "8G");
    }

    #[test]
    fn low_cpu_efficiency_suggests_fewer_cpus() {
        let u = |cpus: u32, cpu_ms: u64| Usage {
            wall_ms: Some(100_000),
            cpu_ms: Some(cpu_ms),
            requested: Requested {
                cpus: Some(cpus),
                ..Requested::default()
            },
            ..Usage::default()
        };
        // 8 CPUs, ~1.1 cores busy: 14 %.
        assert_eq!(
            texts(&[u(8, 110_000)]),
            ["asked --cpus 8, CPU efficiency 14 %: --cpus 2 would do"]
        );
        assert_eq!(hints(&[u(8, 50_000)])[0].suggest, "1");
        // 25 % or more, or a single CPU: no hint.
        assert!(hints(&[u(4, 100_000)]).is_empty());
        assert!(hints(&[u(1, 1_000)]).is_empty());
    }

    #[test]
    fn short_runs_suggest_a_shorter_time() {
        let u = |time_s: u64, wall_ms: u64| Usage {
            wall_ms: Some(wall_ms),
            requested: Requested {
                time_s: Some(time_s),
                ..Requested::default()
            },
            ..Usage::default()
        };
        assert_eq!(
            texts(&[u(3600, 130_000)]),
            ["asked --time 01:00:00, took 2m10s: --time 00:05:00 would do"]
        );
        // At least a minute.
        assert_eq!(hints(&[u(600, 1_200)])[0].suggest, "00:01:00");
        // A tenth or more: no hint; nothing shorter than a minute to offer.
        assert!(hints(&[u(600, 60_000)]).is_empty());
        assert!(hints(&[u(60, 1_000)]).is_empty());
        assert_eq!(nice_time(7201), 9000);
    }

    #[test]
    fn several_rules_at_once_in_a_fixed_order() {
        let u = Usage {
            wall_ms: Some(10_000),
            cpu_ms: Some(1_000),
            max_rss_bytes: Some(200 * MIB),
            requested: Requested {
                cpus: Some(4),
                mem_bytes: Some(2 * GIB),
                time_s: Some(600),
                ..Requested::default()
            },
            ..Usage::default()
        };
        let h = hints(&[u]);
        let options: Vec<&str> = h.iter().map(|h| h.option.as_str()).collect();
        assert_eq!(options, ["mem", "cpus", "time"]);
        assert_eq!(h[0].suggest, "512M");
        assert_eq!(mem_option(1500 * 1024), "1500K");
    }
}
