//! Slurm's accounting of a finished job, where the cluster has it: one
//! `sacct` line per job and step (`123`, `123.batch`, `123.0`, ...) with
//! elapsed and CPU time, peak memory and the trackable resources, parsed
//! into [`AcctRow`]s; and [`AcctRow::pick`], the figures of one asset (a
//! job of its own: the job's totals and its steps' peak; a step of a
//! grouped job: the `srun` step named after it). A leaf: it imports
//! nothing else of the crate.

use serde::{Deserialize, Serialize};

/// The `sacct` fields asked for (`-n -P`); the job name last, so a `|` in
/// it cannot shift the others.
pub const SACCT_USAGE_FORMAT: &str =
    "JobID,ElapsedRaw,TotalCPU,MaxRSS,AllocTRES,TRESUsageInTot,NNodes,JobName";

/// One `sacct` line of a job or step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcctRow {
    /// `123`, `123.batch`, `123.0`.
    pub job_id: String,
    pub name: String,
    pub elapsed_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub max_rss_bytes: Option<u64>,
    pub cpus: Option<u32>,
    pub nodes: Option<u32>,
    pub gpus: Option<u32>,
    pub mem_bytes: Option<u64>,
    pub gpu_util_pct: Option<f64>,
    pub gpu_mem_bytes: Option<u64>,
}

impl AcctRow {
    /// One line of `sacct -n -P --format=`[`SACCT_USAGE_FORMAT`].
    pub fn parse(line: &str) -> Option<AcctRow> {
        let f: Vec<&str> = line.splitn(8, '|').collect();
        if f.len() < 8 || f[0].is_empty() {
            return None;
        }
        let alloc = tres(f[4]);
        let used = tres(f[5]);
        let get = |m: &[(String, String)], k: &str| {
            m.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        Some(AcctRow {
            job_id: f[0].to_string(),
            elapsed_ms: f[1].trim().parse::<u64>().ok().map(|s| s * 1000),
            cpu_ms: parse_duration_ms(f[2]),
            max_rss_bytes: parse_size(f[3]),
            cpus: get(&alloc, "cpu").and_then(|v| v.parse().ok()),
            mem_bytes: get(&alloc, "mem").and_then(|v| parse_size(&v)),
            gpus: get(&alloc, "gres/gpu").and_then(|v| v.parse().ok()),
            gpu_util_pct: get(&used, "gres/gpuutil").and_then(|v| v.parse().ok()),
            gpu_mem_bytes: get(&used, "gres/gpumem").and_then(|v| parse_size(&v)),
            nodes: f[6]
                .trim()
                .parse()
                .ok()
                .or_else(|| get(&alloc, "node").and_then(|v| v.parse().ok())),
            name: f[7].to_string(),
        })
    }

    /// Whether this is the job itself (not one of its steps).
    pub fn is_job(&self) -> bool {
        !self.job_id.contains('.')
    }

    /// The figures of one asset from its job's rows: a step of a grouped
    /// job is the step named after it; a job of its own is the job's line
    /// (elapsed, total CPU, allocation) with the largest peak of its steps.
    pub fn pick(rows: &[AcctRow], asset: &str, step: bool) -> Option<AcctRow> {
        if step {
            return rows
                .iter()
                .rfind(|r| !r.is_job() && r.name == asset)
                .cloned();
        }
        let mut job = rows.iter().find(|r| r.is_job())?.clone();
        let peak = rows.iter().filter_map(|r| r.max_rss_bytes).max();
        job.max_rss_bytes = job.max_rss_bytes.max(peak);
        if job.gpu_util_pct.is_none() {
            job.gpu_util_pct = rows.iter().find_map(|r| r.gpu_util_pct);
        }
        if job.gpu_mem_bytes.is_none() {
            job.gpu_mem_bytes = rows.iter().filter_map(|r| r.gpu_mem_bytes).max();
        }
        Some(job)
    }
}

/// `cpu=2,mem=4G,node=1,gres/gpu=1` as pairs.
fn tres(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `123456K`, `1.5G`, `2048` (bytes), `0`; `None` for empty.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (num, factor) = match s.as_bytes()[s.len() - 1].to_ascii_uppercase() {
        b'K' => (&s[..s.len() - 1], 1024.0),
        b'M' => (&s[..s.len() - 1], 1024.0 * 1024.0),
        b'G' => (&s[..s.len() - 1], 1024.0 * 1024.0 * 1024.0),
        b'T' => (&s[..s.len() - 1], 1024.0f64.powi(4)),
        b'P' => (&s[..s.len() - 1], 1024.0f64.powi(5)),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then(|| (v * factor).round() as u64)
}

/// Slurm's durations: `MM:SS[.mmm]`, `HH:MM:SS[.mmm]`, `D-HH:MM:SS`.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => ("0", *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    let h: u64 = h.parse().ok()?;
    let m: u64 = m.parse().ok()?;
    let sec: f64 = sec.parse().ok()?;
    let total = (days * 86400 + h * 3600 + m * 60) as f64 + sec;
    Some((total * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sacct -n -P -j 123 --format=...` of a 2-CPU job (Slurm 23.02 format).
    const JOB: &str = "\
123|65|01:02.500||billing=2,cpu=2,mem=16G,node=1||2|numbers
123.batch|65|01:02.400|1153434K|cpu=2,mem=16G,node=1|cpu=00:01:02,energy=0,fs/disk=2100,mem=1153434K,pages=3,vmem=1300000K|1|batch
123.extern|65|00:00.001|1024K|billing=2,cpu=2,mem=16G,node=1|cpu=00:00:00,mem=1024K|1|extern";

    #[test]
    fn a_job_of_its_own_is_its_totals_and_its_steps_peak() {
        let rows: Vec<AcctRow> = JOB.lines().filter_map(AcctRow::parse).collect();
        assert_eq!(rows.len(), 3);
        let a = AcctRow::pick(&rows, "numbers", false).unwrap();
        assert_eq!(a.elapsed_ms, Some(65_000));
        assert_eq!(a.cpu_ms, Some(62_500));
        assert_eq!(a.cpus, Some(2));
        assert_eq!(a.mem_bytes, Some(16 << 30));
        assert_eq!(a.max_rss_bytes, Some(1153434 * 1024));
        assert_eq!(a.nodes, Some(2));
        assert_eq!(a.gpus, None);
    }

    #[test]
    fn a_step_is_the_srun_named_after_the_asset() {
        let text = "\
77|30|00:20.000||billing=4,cpu=4,mem=4G,node=1,gres/gpu=2||1|alloc_a
77.batch|30|00:00.100|4000K|cpu=4,mem=4G,node=1||1|batch
77.0|12|00:11.000|200M|cpu=1,mem=1G,node=1,gres/gpu=1|cpu=00:00:11,mem=200M,gres/gpumem=3G,gres/gpuutil=87|1|a
77.1|15|00:08.000|1.5G|cpu=2,mem=2G,node=1|cpu=00:00:08,mem=1.5G|1|b";
        let rows: Vec<AcctRow> = text.lines().filter_map(AcctRow::parse).collect();
        let a = AcctRow::pick(&rows, "a", true).unwrap();
        assert_eq!((a.cpus, a.gpus), (Some(1), Some(1)));
        assert_eq!(a.max_rss_bytes, Some(200 << 20));
        assert_eq!(a.gpu_util_pct, Some(87.0));
        assert_eq!(a.gpu_mem_bytes, Some(3 << 30));
        let b = AcctRow::pick(&rows, "b", true).unwrap();
        assert_eq!(b.max_rss_bytes, Some(1610612736));
        assert_eq!(b.cpu_ms, Some(8000));
        assert_eq!(AcctRow::pick(&rows, "c", true), None);
        assert_eq!(AcctRow::pick(&[], "a", false), None);
    }

    #[test]
    fn slurm_values() {
        assert_eq!(parse_duration_ms("00:01.234"), Some(1234));
        assert_eq!(parse_duration_ms("01:02:03"), Some(3_723_000));
        assert_eq!(parse_duration_ms("1-00:00:01"), Some(86_401_000));
        assert_eq!(parse_duration_ms(""), None);
        assert_eq!(parse_duration_ms("x"), None);
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("2048"), Some(2048));
        assert_eq!(parse_size("1.5M"), Some(1572864));
        assert_eq!(parse_size(""), None);
        assert_eq!(AcctRow::parse("garbage"), None);
    }
}
