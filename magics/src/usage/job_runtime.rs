//! The job binary's self-measurement (part of the generated bundle's
//! runtime): after computing, `main` reports a `usage` event —
//! `getrusage` of itself (`RUSAGE_SELF`) and of its waited-for children
//! (`RUSAGE_CHILDREN`): user and system CPU time summed (since the
//! computation started, the same span as the wall time), peak resident
//! memory the larger of the two; its wall time and Unix start/end times;
//! the CPUs and GPUs Slurm gave it (`SLURM_CPUS_PER_TASK`, else
//! `SLURM_CPUS_ON_NODE`; `SLURM_GPUS_ON_NODE`). So a cluster without
//! accounting (`sacct`) still shows the figures. `getrusage` is declared
//! directly (Linux, 64-bit: `struct rusage` is 18 `long`s), so the bundle
//! needs no extra crate; elsewhere only times are reported.

/// Rust source appended to the bundle's runtime.
pub(crate) const USAGE_RUNTIME: &str = r#"// ---- slurmbook resource usage, measured by the job itself ----
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod slurmbook_rusage {
    #[repr(C)]
    struct Timeval { sec: i64, usec: i64 }
    #[repr(C)]
    struct Rusage { utime: Timeval, stime: Timeval, maxrss: i64, rest: [i64; 13] }
    extern "C" { fn getrusage(who: i32, usage: *mut Rusage) -> i32; }
    /// (user ms, system ms, peak RSS KiB) of `who` (0: itself, -1: its children).
    pub fn get(who: i32) -> Option<(u64, u64, u64)> {
        let zero = || Timeval { sec: 0, usec: 0 };
        let mut r = Rusage { utime: zero(), stime: zero(), maxrss: 0, rest: [0; 13] };
        if unsafe { getrusage(who, &mut r) } != 0 {
            return None;
        }
        let ms = |t: &Timeval| t.sec.max(0) as u64 * 1000 + t.usec.max(0) as u64 / 1000;
        Some((ms(&r.utime), ms(&r.stime), r.maxrss.max(0) as u64))
    }
}
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod slurmbook_rusage {
    pub fn get(_who: i32) -> Option<(u64, u64, u64)> { None }
}

fn slurmbook_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn slurmbook_env_count(name: &str) -> Option<u32> {
    let v = std::env::var(name).ok()?;
    v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// (user ms, system ms, peak RSS KiB) of itself and its children so far.
fn slurmbook_rusage_now() -> (u64, u64, Option<u64>) {
    let (mut user, mut sys, mut rss) = (0u64, 0u64, None::<u64>);
    for who in [0, -1] {
        if let Some((u, s, m)) = slurmbook_rusage::get(who) {
            user += u;
            sys += s;
            rss = Some(rss.unwrap_or(0).max(m));
        }
    }
    (user, sys, rss)
}

/// `before`: [`slurmbook_rusage_now`] when the computation started.
fn slurmbook_report_usage(started: std::time::Instant, started_at: f64, before: (u64, u64, Option<u64>)) {
    let wall_ms = started.elapsed().as_millis() as u64;
    let mut event = serde_json::json!({
        "event": "usage", "wall_ms": wall_ms, "started_at": started_at, "ended_at": slurmbook_now(),
    });
    let (user, sys, rss) = slurmbook_rusage_now();
    event["user_ms"] = user.saturating_sub(before.0).into();
    event["sys_ms"] = sys.saturating_sub(before.1).into();
    if let Some(m) = rss {
        event["max_rss_kb"] = m.into();
    }
    let cpus = slurmbook_env_count("SLURM_CPUS_PER_TASK").or_else(|| slurmbook_env_count("SLURM_CPUS_ON_NODE"));
    if let Some(c) = cpus {
        event["cpus"] = c.into();
    }
    if let Some(g) = slurmbook_env_count("SLURM_GPUS_ON_NODE") {
        event["gpus"] = g.into();
    }
    slurmbook_emit(event);
}

"#;
