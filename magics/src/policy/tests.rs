//! Freshness policies and the upstream age guard with a controlled clock:
//! every evaluation gets its `now`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::guard::guard_upstream_age;
use super::*;
use crate::model::{MaterializationStatus, Target};
use crate::notebook::Notebook;
use crate::plan::{plan_steps, Action, Plan};
use crate::syntax::magic::MaterializeArgs;
use crate::SessionOverrides;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn policy(options: &str) -> FreshnessPolicy {
    let words = crate::syntax::args::split_words(options, 1).unwrap();
    let o = crate::syntax::options::parse_asset_options(&words).unwrap();
    FreshnessPolicy::of(&o).expect("a policy")
}

fn h(n: i64) -> Duration {
    Duration::hours(n)
}

fn m(n: i64) -> Duration {
    Duration::minutes(n)
}

#[test]
fn time_window_pass_warn_fail_and_pass_again_after_a_run() {
    let p = policy("--freshness 6h --freshness-warn 3h");
    let t0 = at("2026-03-01T00:00:00Z");
    let s = p.evaluate(Some(t0), t0 + h(1));
    assert_eq!(s.state, PolicyState::Pass);
    assert_eq!(s.text(), "warn in 2 h");
    assert_eq!(s.age(), Some(h(1)));
    let s = p.evaluate(Some(t0), t0 + h(3) + m(30));
    assert_eq!(s.state, PolicyState::Warn);
    assert_eq!(s.text(), "warning: fails in 2 h 30 m");
    let s = p.evaluate(Some(t0), t0 + h(6) + m(40));
    assert_eq!(s.state, PolicyState::Fail);
    assert_eq!(s.text(), "overdue by 40 m");
    // A run at t0 + 7 h: PASS again.
    let run = t0 + h(7);
    let s = p.evaluate(Some(run), run + m(5));
    assert_eq!(s.state, PolicyState::Pass);
    assert_eq!(s.fails_at, Some(run + h(6)));
    // Without a WARN window: PASS until FAIL.
    let p = policy("--freshness 6h");
    let s = p.evaluate(Some(t0), t0 + h(3) + m(50));
    assert_eq!(
        (s.state, s.text()),
        (PolicyState::Pass, "fresh for 2 h 10 m".into())
    );
    assert_eq!(p.evaluate(Some(t0), t0 + h(6)).state, PolicyState::Fail);
    assert_eq!(p.describe(), "FAIL after 6h");
    assert_eq!(
        policy("--freshness 1d --freshness-warn 90m").describe(),
        "FAIL after 1d, WARN after 1h30m"
    );
}

#[test]
fn unknown_when_never_materialized() {
    for options in [
        "--freshness 6h",
        "--freshness 1h --freshness-cron '0 9 * * *'",
    ] {
        let s = policy(options).evaluate(None, at("2026-03-01T00:00:00Z"));
        assert_eq!(s.state, PolicyState::Unknown, "{options}");
        assert_eq!(s.text(), "never materialized");
        assert_eq!(s.age(), None);
    }
}

#[test]
fn cron_deadline_across_a_tick() {
    // Due by 09:00 UTC daily, materialized between 08:00 and 09:00.
    let p = policy("--freshness 1h --freshness-cron '0 9 * * *'");
    let last = at("2026-03-01T08:30:00Z");
    // After the tick it met: fresh until the next tick.
    let s = p.evaluate(Some(last), at("2026-03-01T10:00:00Z"));
    assert_eq!(
        (s.state, s.text()),
        (PolicyState::Pass, "fresh for 23 h".into())
    );
    // The evening before the next deadline: still the last completed tick's window.
    let s = p.evaluate(Some(last), at("2026-03-02T08:59:00Z"));
    assert_eq!(s.state, PolicyState::Pass);
    // Across the tick: FAIL from 09:00 on, until it materializes again.
    assert_eq!(
        p.evaluate(Some(last), at("2026-03-02T09:00:00Z")).state,
        PolicyState::Fail
    );
    let s = p.evaluate(Some(last), at("2026-03-02T09:40:00Z"));
    assert_eq!(
        (s.state, s.text()),
        (PolicyState::Fail, "overdue by 40 m".into())
    );
    // Materialized late (09:45): PASS until the next deadline.
    let late = at("2026-03-02T09:45:00Z");
    let s = p.evaluate(Some(late), at("2026-03-02T10:00:00Z"));
    assert_eq!(s.state, PolicyState::Pass);
    // ... it does not count for the next deadline's window (from 08:00).
    assert_eq!(s.fails_at, Some(at("2026-03-03T09:00:00Z")));
    // A materialization before the window opens (07:00 < 08:00) misses the deadline.
    let early = at("2026-03-02T07:00:00Z");
    assert_eq!(
        p.evaluate(Some(early), at("2026-03-02T09:00:00Z")).state,
        PolicyState::Fail
    );
    // WARN 30 min before a deadline not met yet.
    let p = policy("--freshness 1h --freshness-warn 30m --freshness-cron '0 9 * * *'");
    let s = p.evaluate(Some(last), at("2026-03-02T08:29:00Z"));
    assert_eq!(
        (s.state, s.text()),
        (PolicyState::Pass, "warn in 1 m".into())
    );
    let s = p.evaluate(Some(last), at("2026-03-02T08:40:00Z"));
    assert_eq!(
        (s.state, s.text()),
        (PolicyState::Warn, "warning: fails in 20 m".into())
    );
    // Met in the window (08:45): PASS again, the next deadline a day away.
    let met = at("2026-03-02T08:45:00Z");
    assert_eq!(
        p.evaluate(Some(met), at("2026-03-02T09:10:00Z")).state,
        PolicyState::Pass
    );
    assert!(
        p.describe().contains("\"0 9 * * *\" (UTC)"),
        "{}",
        p.describe()
    );
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(h(2) + m(10)), "2 h 10 m");
    assert_eq!(human_duration(m(40)), "40 m");
    assert_eq!(human_duration(h(3)), "3 h");
    assert_eq!(human_duration(h(76)), "3 d 4 h");
    assert_eq!(human_duration(Duration::seconds(25)), "25 s");
    assert_eq!(human_duration(Duration::seconds(-5)), "0 s");
}

// The upstream age guard.

fn project(cells: &[&str]) -> Project {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let nb = Notebook::from_str(&nb.to_string()).unwrap();
    Project::from_notebook(&nb, &SessionOverrides::new()).unwrap()
}

/// A successful materialization of `name` at its current version, finished at `t`.
fn success(p: &Project, name: &str, t: DateTime<Utc>) -> (String, Materialization) {
    let v = p.versions.get(name).unwrap();
    (
        name.to_string(),
        Materialization {
            id: t.timestamp(),
            asset: name.to_string(),
            version: v.version.clone(),
            own_hash: v.own_hash.clone(),
            upstream_versions: v.upstreams.clone(),
            run_id: None,
            target: Target::Local,
            status: MaterializationStatus::Ok,
            started_at: t - Duration::seconds(1),
            finished_at: Some(t),
            duration_ms: Some(1000),
            job_id: None,
            node: None,
            metadata: serde_json::Value::Null,
            value_path: None,
            error: None,
            partition: None,
        },
    )
}

fn pipeline() -> Project {
    project(&[
        "%%asset raw\n1u64",
        "%%asset other\n2u64",
        "%%asset summary --max-upstream-age 12h --deps other\nraw + 1",
        "%%asset report\nsummary * 2",
    ])
}

fn guarded(
    p: &Project,
    selection: &str,
    successes: &HashMap<String, Materialization>,
    now: DateTime<Utc>,
) -> Plan {
    let args = MaterializeArgs {
        selection: Some(selection.parse().unwrap()),
        ..MaterializeArgs::default()
    };
    let mut plan = plan_steps(p, &args, &p.freshness(successes), Target::Local).unwrap();
    guard_upstream_age(&mut plan, p, successes, now);
    plan
}

fn action(plan: &Plan, asset: &str) -> (Action, String) {
    let s = plan.step(asset).unwrap();
    (s.action.clone(), s.why.clone())
}

#[test]
fn guard_refuses_an_asset_whose_unselected_upstream_is_too_old() {
    let p = pipeline();
    let now = at("2026-03-01T12:00:00Z");
    // `other` is an order-only upstream: its age does not count.
    let successes: HashMap<_, _> = [
        success(&p, "raw", now - h(14) - m(3)),
        success(&p, "other", now - h(100)),
    ]
    .into();
    let plan = guarded(&p, "summary+", &successes, now);
    assert_eq!(
        action(&plan, "summary"),
        (
            Action::Refused,
            "upstream raw is 14 h 3 m old, over --max-upstream-age 12h".into()
        )
    );
    assert_eq!(
        action(&plan, "report"),
        (Action::Refused, "upstream summary is not run".into())
    );
    assert_eq!(plan.runs().count(), 0);
    let text = plan.text();
    assert!(text.contains("0 to run, 0 fresh, 2 not run"), "{text}");
    assert!(
        text.contains("not run: upstream raw is 14 h 3 m old, over --max-upstream-age 12h"),
        "{text}"
    );
    // Young enough: it runs.
    let successes: HashMap<_, _> = [success(&p, "raw", now - h(11))].into();
    let plan = guarded(&p, "summary", &successes, now);
    assert_eq!(action(&plan, "summary").0, Action::Run);
    // Never materialized, not selected: refused too.
    let plan = guarded(&p, "summary", &HashMap::new(), now);
    assert_eq!(
        action(&plan, "summary"),
        (
            Action::Refused,
            "upstream raw was never materialized (--max-upstream-age 12h)".into()
        )
    );
}

#[test]
fn guard_refreshes_a_selected_upstream_first() {
    let p = pipeline();
    let now = at("2026-03-01T12:00:00Z");
    // raw is fresh by its code, but 14 h old: selected, it runs again first.
    let successes: HashMap<_, _> = [success(&p, "raw", now - h(14))].into();
    let plan = guarded(&p, "+summary", &successes, now);
    assert_eq!(
        action(&plan, "raw"),
        (
            Action::Run,
            "14 h old, over --max-upstream-age 12h of summary".into()
        )
    );
    assert_eq!(action(&plan, "summary").0, Action::Run);
    let order: Vec<&str> = plan.runs().map(|s| s.asset.as_str()).collect();
    assert_eq!(order.first(), Some(&"raw"));
    assert!(plan
        .step("summary")
        .unwrap()
        .after
        .contains(&"raw".to_string()));
    // Young enough: raw stays fresh (skipped).
    let successes: HashMap<_, _> = [success(&p, "raw", now - h(2))].into();
    let plan = guarded(&p, "+summary", &successes, now);
    assert_eq!(action(&plan, "raw").0, Action::Skip);
    assert_eq!(plan.refused().count(), 0);
}

#[test]
fn evaluate_all_covers_assets_with_a_policy_only() {
    let p = project(&[
        "%%asset a --freshness 6h --freshness-warn 3h\n1",
        "%%asset b\n2",
        "%%asset c --freshness 1h\n3",
    ]);
    let now = at("2026-03-01T12:00:00Z");
    let successes: HashMap<_, _> = [success(&p, "a", now - h(4)), success(&p, "b", now)].into();
    let all = evaluate_all(&p, &successes, now);
    assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(all["a"].state, PolicyState::Warn);
    assert_eq!(all["c"].state, PolicyState::Unknown);
}
