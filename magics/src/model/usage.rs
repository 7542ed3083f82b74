//! Resource usage of one materialization: what it asked for, what it used
//! (wall time, queue wait, CPU time, peak memory, GPUs) and when it was
//! queued, started and ended, with the figures derived from them (CPU
//! efficiency, node-hours, GPU-hours). Plain data: where the figures come
//! from is the executors' business (`sacct`, the job's self-measurement,
//! the kernel's process); right-sizing hints are the `usage` module's.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a materialization's figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// Slurm's accounting (`sacct`): the whole job or step.
    Sacct,
    /// The job binary's own measurement (`getrusage` of itself and its
    /// children, and its wall time), reported through the job protocol.
    Job,
    /// Both: `sacct` where it had a figure, the job's own for the rest.
    SacctAndJob,
    /// The kernel's Rust session (in-kernel runs): wall time, and the
    /// session process's CPU time and peak memory where the OS tells.
    Kernel,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Sacct => "sacct",
            UsageSource::Job => "job",
            UsageSource::SacctAndJob => "sacct+job",
            UsageSource::Kernel => "kernel",
        }
    }

    pub fn parse(s: &str) -> Option<UsageSource> {
        [
            UsageSource::Sacct,
            UsageSource::Job,
            UsageSource::SacctAndJob,
            UsageSource::Kernel,
        ]
        .into_iter()
        .find(|u| u.as_str() == s)
    }

    /// How tables name it: "sacct", "self-measured", ...
    pub fn describe(self) -> &'static str {
        match self {
            UsageSource::Sacct => "sacct",
            UsageSource::Job => "self-measured",
            UsageSource::SacctAndJob => "sacct + self-measured",
            UsageSource::Kernel => "kernel",
        }
    }
}

/// What a Slurm job (or step) asked for; `None`: not asked (the
/// partition's default applied).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    pub cpus: Option<u32>,
    pub mem_bytes: Option<u64>,
    pub time_s: Option<u64>,
    pub gpus: Option<u32>,
    pub nodes: Option<u32>,
}

/// Resource usage of one materialization. Every figure is optional: each
/// source knows some.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub source: Option<UsageSource>,
    /// The grouped allocation the asset ran in as a step (its job is shared).
    pub allocation: Option<String>,
    /// Submitted (Slurm) or queued in the run (kernel).
    pub submitted_at: Option<DateTime<Utc>>,
    /// The job (allocation) started; for a step, its job's start.
    pub job_started_at: Option<DateTime<Utc>>,
    /// The asset started computing (a step: its `srun`).
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Time in Slurm's queue (submit to start).
    pub queue_ms: Option<u64>,
    pub wall_ms: Option<u64>,
    /// User + system CPU time.
    pub cpu_ms: Option<u64>,
    /// Peak resident memory.
    pub max_rss_bytes: Option<u64>,
    /// CPUs it had (for the efficiency).
    pub cpus: Option<u32>,
    pub nodes: Option<u32>,
    pub gpus: Option<u32>,
    /// GPU utilization Slurm reported (`gres/gpuutil`, percent).
    pub gpu_util_pct: Option<f64>,
    /// GPU memory Slurm reported (`gres/gpumem`).
    pub gpu_mem_bytes: Option<u64>,
    pub requested: Requested,
}

impl Usage {
    /// CPU time over wall time × CPUs (0..=1, more when the CPU count is
    /// unknown and the asset used several).
    pub fn cpu_efficiency(&self) -> Option<f64> {
        let (cpu, wall) = (self.cpu_ms?, self.wall_ms?);
        let cpus = self.cpus.or(self.requested.cpus)?.max(1);
        (wall > 0).then(|| cpu as f64 / (wall as f64 * f64::from(cpus)))
    }

    /// Nodes × wall time, in hours.
    pub fn node_hours(&self) -> Option<f64> {
        let nodes = self.nodes.or(self.requested.nodes)?;
        self.wall_ms
            .map(|w| f64::from(nodes) * w as f64 / 3_600_000.0)
    }

    /// GPUs × wall time, in hours (when it had GPUs).
    pub fn gpu_hours(&self) -> Option<f64> {
        let gpus = self.gpus.or(self.requested.gpus).filter(|g| *g > 0)?;
        self.wall_ms
            .map(|w| f64::from(gpus) * w as f64 / 3_600_000.0)
    }

    /// Whether any figure is known.
    pub fn is_empty(&self) -> bool {
        self.wall_ms.is_none()
            && self.cpu_ms.is_none()
            && self.max_rss_bytes.is_none()
            && self.queue_ms.is_none()
    }

    /// One line for tables: `wall 1.2 s · queue 3 s · CPU 85 % · peak 180M`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(w) = self.wall_ms {
            parts.push(format!("wall {}", format_ms(w)));
        }
        if let Some(q) = self.queue_ms {
            parts.push(format!("queue {}", format_ms(q)));
        }
        if let Some(e) = self.cpu_efficiency() {
            parts.push(format!("CPU {}", format_pct(e)));
        } else if let Some(c) = self.cpu_ms {
            parts.push(format!("CPU time {}", format_ms(c)));
        }
        if let Some(m) = self.max_rss_bytes {
            parts.push(format!("peak {}", format_bytes(m)));
        }
        if let Some(g) = self.gpu_hours() {
            parts.push(format!("{} GPU-h", format_hours(g)));
        }
        parts.join(" · ")
    }
}

/// A right-sizing hint: an asset used far less than it asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hint {
    /// The asset option: `mem`, `cpus`, `time`.
    pub option: String,
    /// What it asked (`16G`).
    pub asked: String,
    /// What it used (`peak 1.1G`, `CPU efficiency 9 %`, `took 2m10s`).
    pub used: String,
    /// The value that would do (`2G`).
    pub suggest: String,
    /// Over how many runs the rule held.
    pub runs: usize,
}

impl fmt::Display for Hint {
    /// `asked --mem 16G, peak 1.1G: --mem 2G would do`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let over = if self.runs > 1 {
            format!(" (last {} runs)", self.runs)
        } else {
            String::new()
        };
        write!(
            f,
            "asked --{o} {}, {}{over}: --{o} {} would do",
            self.asked,
            self.used,
            self.suggest,
            o = self.option
        )
    }
}

/// `850 ms`, `1.2 s`, `2m10s`, `1h05m`.
pub fn format_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// Node- or GPU-hours: `12.3`, `0.25`, `<0.01`.
pub fn format_hours(h: f64) -> String {
    if h >= 10.0 {
        format!("{h:.1}")
    } else if h >= 0.01 {
        format!("{h:.2}")
    } else {
        "<0.01".to_string()
    }
}

/// `85 %`.
pub fn format_pct(fraction: f64) -> String {
    let pct = fraction * 100.0;
    if pct < 10.0 {
        format!("{pct:.1} %")
    } else {
        format!("{pct:.0} %")
    }
}

/// Binary units as Slurm writes them: `512K`, `180M`, `1.1G`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else if v < 10.0 {
        format!("{:.1}{}", v, UNITS[u])
    } else {
        format!("{:.0}{}", v, UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_figures() {
        let u = Usage {
            wall_ms: Some(10_000),
            cpu_ms: Some(5_000),
            cpus: Some(2),
            nodes: Some(2),
            gpus: Some(4),
            ..Usage::default()
        };
        assert_eq!(u.cpu_efficiency(), Some(0.25));
        assert!((u.node_hours().unwrap() - 20.0 / 3600.0).abs() < 1e-12);
        assert!((u.gpu_hours().unwrap() - 40.0 / 3600.0).abs() < 1e-12);
        let none = Usage::default();
        assert_eq!(none.cpu_efficiency(), None);
        assert_eq!(none.node_hours(), None);
        assert!(none.is_empty());
        // The request stands in for an unknown allocation.
        let req = Usage {
            wall_ms: Some(1000),
            cpu_ms: Some(1000),
            requested: Requested {
                cpus: Some(4),
                ..Requested::default()
            },
            ..Usage::default()
        };
        assert_eq!(req.cpu_efficiency(), Some(0.25));
        assert_eq!(req.gpu_hours(), None);
    }

    #[test]
    fn formats() {
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(180 * 1024 * 1024), "180M");
        assert_eq!(format_bytes(1_181_116_006), "1.1G");
        assert_eq!(format_ms(130_000), "2m10s");
        assert_eq!(format_ms(3_900_000), "1h05m");
        assert_eq!(format_pct(0.091), "9.1 %");
        assert_eq!(format_pct(0.85), "85 %");
        assert_eq!(format_hours(0.0006), "<0.01");
        assert_eq!(format_hours(0.254), "0.25");
        let h = Hint {
            option: "mem".into(),
            asked: "16G".into(),
            used: "peak 1.1G".into(),
            suggest: "2G".into(),
            runs: 1,
        };
        assert_eq!(
            h.to_string(),
            "asked --mem 16G, peak 1.1G: --mem 2G would do"
        );
        assert_eq!(
            UsageSource::parse("sacct+job"),
            Some(UsageSource::SacctAndJob)
        );
    }
}
