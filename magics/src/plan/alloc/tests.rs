//! The allocation planner's tests.

use super::*;
use crate::plan::limits::ClusterLimits;

fn step(asset: &str, after: &[&str], flags: &[(&'static str, &str)]) -> StepRequest {
    StepRequest {
        asset: asset.into(),
        after: after.iter().map(|s| s.to_string()).collect(),
        sbatch: {
            let mut r = SbatchRequest::default();
            for (n, v) in flags {
                r.set(n, v).unwrap();
            }
            r
        },
        own_job: false,
        env: None,
    }
}

fn limits() -> ClusterLimits {
    ClusterLimits::from_sinfo("debug*|1:00:00|2|22900\nlong|7-00:00:00|2|22900\n")
}

fn shape(a: &[Allocation]) -> Vec<(Vec<&str>, Vec<&str>)> {
    a.iter()
        .map(|a| {
            (
                a.assets.iter().map(String::as_str).collect(),
                a.after.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

fn flag(a: &Allocation, name: &str) -> Option<String> {
    a.sbatch
        .flags()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[test]
fn sinfo_limits() {
    let l = limits();
    assert_eq!(l.default_partition.as_deref(), Some("debug"));
    assert_eq!(l.max_time["debug"], Some(3600));
    assert_eq!(l.max_time["long"], Some(7 * 86400));
    assert_eq!(l.node_cpus, Some(2));
    assert_eq!(l.node_mem_mb, Some(22900));
    let l = ClusterLimits::from_sinfo("gpu|infinite|64+|512000\n");
    assert_eq!(l.max_time["gpu"], None);
    assert_eq!(l.node_cpus, Some(64));
    assert_eq!(l.default_partition, None);
}

#[test]
fn chain_is_one_job_with_summed_time() {
    let t: &[(&str, &str)] = &[("time", "00:05:00"), ("cpus-per-task", "1")];
    let mut steps = vec![step("s0", &[], t)];
    for i in 1..10 {
        steps.push(step(&format!("s{i}"), &[&format!("s{}", i - 1)], t));
    }
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].assets.len(), 10);
    assert!(a[0].is_group());
    assert_eq!(a[0].name, "alloc_s0");
    assert_eq!(a[0].time().as_deref(), Some("00:50:00"));
    assert_eq!(flag(&a[0], "cpus-per-task").as_deref(), Some("1"));
    // per-asset: ten jobs chained
    let p = plan_allocations(&steps, JobGrouping::PerAsset, &limits());
    assert_eq!(p.len(), 10);
    assert_eq!(p[3].assets, ["s3"]);
    assert_eq!(p[3].after, ["s2"]);
    assert_eq!(p[3].name, "s3");
    assert_eq!(p[3].time().as_deref(), Some("00:05:00"));
}

#[test]
fn diamond_time_is_the_longest_path_and_cpus_the_widest_level() {
    let steps = vec![
        step("a", &[], &[("time", "00:10:00")]),
        step("b", &["a"], &[("time", "00:20:00")]),
        step("c", &["a"], &[("time", "00:05:00"), ("cpus-per-task", "1")]),
        step("d", &["b", "c"], &[("time", "00:10:00")]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(shape(&a), [(vec!["a", "b", "c", "d"], vec![])]);
    assert_eq!(a[0].time().as_deref(), Some("00:40:00"));
    assert_eq!(flag(&a[0], "cpus-per-task").as_deref(), Some("2"));
    assert_eq!(flag(&a[0], "mem").as_deref(), None);
    // the node's 2 CPUs cap the sum, the largest step wins over the cap
    let steps = vec![
        step("a", &[], &[("cpus-per-task", "2")]),
        step("b", &[], &[("cpus-per-task", "2")]),
        step("z", &["a", "b"], &[("cpus-per-task", "3")]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(a.len(), 1);
    assert_eq!(flag(&a[0], "cpus-per-task").as_deref(), Some("3"));
    assert_eq!(
        a[0].time().as_deref(),
        None,
        "no step has a time: none is set"
    );
}

#[test]
fn memory_is_summed_over_parallel_steps_when_given() {
    let steps = vec![
        step("a", &[], &[("mem", "1G")]),
        step("b", &[], &[("mem", "500M")]),
        step("c", &["a", "b"], &[("mem", "1200M")]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(a.len(), 1);
    assert_eq!(flag(&a[0], "mem").as_deref(), Some("1524M"));
    assert_eq!(a[0].steps[0].mem_mb, Some(1024));
}

#[test]
fn fan_in_of_roots_is_one_job() {
    let mut steps: Vec<StepRequest> = (0..49).map(|i| step(&format!("r{i}"), &[], &[])).collect();
    let roots: Vec<String> = (0..49).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = roots.iter().map(String::as_str).collect();
    steps.push(step("sink", &refs, &[]));
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(a.len(), 1, "{:?}", shape(&a));
    assert_eq!(a[0].assets.len(), 50);
    assert_eq!(a[0].assets.last().map(String::as_str), Some("sink"));
    assert_eq!(
        flag(&a[0], "cpus-per-task").as_deref(),
        Some("2"),
        "capped by the node"
    );
}

#[test]
fn incompatible_requests_and_own_job_are_separate_jobs() {
    let mut steps = vec![
        step("a", &[], &[("partition", "debug")]),
        step("b", &["a"], &[]), // default partition is debug: compatible
        step("c", &["b"], &[("partition", "long")]),
        step("d", &["c"], &[("partition", "debug")]),
        step("e", &["d"], &[("partition", "debug"), ("mem", "1G")]),
        step("f", &["d"], &[("partition", "debug"), ("account", "x")]),
        step("g", &["d"], &[]),
    ];
    steps.push(StepRequest {
        own_job: true,
        env: None,
        ..step("h", &["g"], &[])
    });
    steps.push(step("i", &["h"], &[("nodes", "2")]));
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(
        shape(&a),
        [
            (vec!["a", "b"], vec![]),
            (vec!["c"], vec!["alloc_a"]),
            (vec!["d", "g"], vec!["c"]),
            (vec!["e"], vec!["alloc_d"]),
            (vec!["f"], vec!["alloc_d"]),
            (vec!["h"], vec!["alloc_d"]),
            (vec!["i"], vec!["h"]),
        ]
    );
    assert_eq!(a[5].note.as_deref(), Some("--own-job"));
    assert_eq!(flag(&a[1], "partition").as_deref(), Some("long"));
    assert_eq!(flag(&a[0], "partition").as_deref(), Some("debug"));
}

#[test]
fn no_cycle_through_another_job() {
    // a -> x(long) -> c, and a -> c: c cannot join a's job (a's job
    // would wait for x, which waits for a's job).
    let steps = vec![
        step("a", &[], &[]),
        step("x", &["a"], &[("partition", "long")]),
        step("c", &["a", "x"], &[]),
        step("d", &["c"], &[]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(
        shape(&a),
        [
            (vec!["a"], vec![]),
            (vec!["x"], vec!["a"]),
            (vec!["c", "d"], vec!["a", "x"]),
        ]
    );
    // Fan-in of two groups where one reaches the other through a third job.
    let steps = vec![
        step("p", &[], &[]),
        step("q", &["p"], &[("partition", "long")]),
        step("r", &["q"], &[]),
        step("s", &["p", "r"], &[]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(a.len(), 3, "{:?}", shape(&a));
    let s_job = a
        .iter()
        .find(|x| x.assets.contains(&"s".to_string()))
        .unwrap();
    assert!(s_job.assets.contains(&"r".to_string()), "{:?}", shape(&a));
    assert!(!s_job.assets.contains(&"p".to_string()), "{:?}", shape(&a));
}

#[test]
fn partition_time_cap_splits_the_group() {
    let t: &[(&str, &str)] = &[("time", "00:25:00")];
    let steps: Vec<StepRequest> = (0..5)
        .map(|i| {
            let up = format!("s{}", i.max(1) - 1);
            let after: Vec<&str> = if i == 0 { vec![] } else { vec![&up] };
            step(&format!("s{i}"), &after, t)
        })
        .collect();
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(
        shape(&a),
        [
            (vec!["s0", "s1"], vec![]),
            (vec!["s2", "s3"], vec!["alloc_s0"]),
            (vec!["s4"], vec!["alloc_s2"]),
        ]
    );
    assert_eq!(a[0].time().as_deref(), Some("00:50:00"));
    assert_eq!(a[2].time().as_deref(), Some("00:25:00"));
    // the long partition (7 days) takes them all
    let steps: Vec<StepRequest> = steps
        .into_iter()
        .map(|mut s| {
            s.sbatch.partition = Some("long".into());
            s
        })
        .collect();
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].time().as_deref(), Some("02:05:00"));
}

#[test]
fn group_names_do_not_clash_with_assets() {
    let steps = vec![
        step("x", &[], &[]),
        step("y", &["x"], &[]),
        step("alloc_x", &[], &[("partition", "long")]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alloc_x_", "alloc_x"]);
}

#[test]
fn an_array_is_a_job_of_its_own_chained_with_the_groups() {
    let mut sim = step("sim", &["prep"], &[]);
    sim.sbatch.set("array", "0-99%16").unwrap();
    let steps = vec![
        step("prep", &[], &[]),
        step("setup", &["prep"], &[]),
        sim,
        step("report", &["sim", "setup"], &[]),
        step("publish", &["report"], &[]),
    ];
    let a = plan_allocations(&steps, JobGrouping::Grouped, &limits());
    assert_eq!(
        shape(&a),
        [
            (vec!["prep", "setup"], vec![]),
            (vec!["sim"], vec!["alloc_prep"]),
            (vec!["report", "publish"], vec!["alloc_prep", "sim"]),
        ]
    );
    assert_eq!(a[1].note.as_deref(), Some("job array"));
    assert_eq!(flag(&a[1], "array").as_deref(), Some("0-99%16"));
    assert_eq!(flag(&a[0], "array"), None);
}
