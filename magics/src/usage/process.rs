//! What an in-kernel run can measure cheaply of the kernel's Rust session
//! process (evcxr's child, where asset code runs), on Linux: its CPU time
//! (`/proc/PID/stat` utime + stime) before and after an asset, and its
//! peak resident memory during it (the peak is reset through
//! `/proc/PID/clear_refs` before, and read from `VmHWM` after). Elsewhere,
//! or when the process is not ours to read, nothing.

/// A measurement in progress.
#[derive(Debug)]
pub struct ProcessProbe {
    pid: Option<u32>,
    cpu_ms: Option<u64>,
    peak_reset: bool,
}

/// What a probe measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    pub cpu_ms: Option<u64>,
    /// The process's peak RSS while measured (its RSS when the peak could
    /// not be reset is not a peak of the asset: `None` then).
    pub max_rss_bytes: Option<u64>,
}

impl ProcessProbe {
    pub fn start(pid: Option<u32>) -> ProcessProbe {
        let cpu_ms = pid.and_then(cpu_ms);
        let peak_reset = pid.is_some_and(reset_peak);
        ProcessProbe {
            pid,
            cpu_ms,
            peak_reset,
        }
    }

    pub fn finish(self) -> ProcessUsage {
        let Some(pid) = self.pid else {
            return ProcessUsage::default();
        };
        ProcessUsage {
            cpu_ms: match (self.cpu_ms, cpu_ms(pid)) {
                (Some(a), Some(b)) if b >= a => Some(b - a),
                _ => None,
            },
            max_rss_bytes: self.peak_reset.then(|| peak_rss(pid)).flatten(),
        }
    }
}

/// Clock ticks per second of `/proc/PID/stat`.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime of a process, in milliseconds.
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|t| t * 1000 / ticks_per_second())
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, whose
/// command name (field 2, in parentheses) may hold spaces.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, "VmHWM:").map(|kb| kb * 1024)
}

/// A `Key:   123 kB` line of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat =
            "4242 (evcxr child (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(300));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn measures_this_process() {
        let probe = ProcessProbe::start(Some(std::process::id()));
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let u = probe.finish();
        assert!(u.cpu_ms.is_some());
        assert_eq!(ProcessProbe::start(None).finish(), ProcessUsage::default());
    }
}
