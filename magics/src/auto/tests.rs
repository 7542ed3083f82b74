//! Conditions against hand-made facts and a controlled clock.

use super::*;
use crate::notebook::SessionOverrides;
use crate::state::{AutoFacts, StateDb};
use chrono::{Duration, TimeZone};

fn project_of(cells: &[&str]) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|src| {
            serde_json::json!({"cell_type": "code", "metadata": {}, "source": src,
                               "outputs": [], "execution_count": null})
        })
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let path = dir.path().join("auto.ipynb");
    std::fs::write(&path, nb.to_string()).unwrap();
    crate::project::load_project(&path, &SessionOverrides::new()).unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
}

/// A success (id, at) that was also the latest attempt.
fn done(id: i64, when: DateTime<Utc>) -> AssetFacts {
    AssetFacts {
        last_success: Some((id, when)),
        latest_attempt: Some((id, when - Duration::minutes(1))),
        ..AssetFacts::default()
    }
}

fn facts(pairs: &[(&str, AssetFacts)]) -> AutoFacts {
    pairs
        .iter()
        .map(|(a, f)| (a.to_string(), f.clone()))
        .collect()
}

fn names(requests: &[AutoRequest]) -> Vec<&str> {
    requests.iter().map(|r| r.asset.as_str()).collect()
}

const EAGER: [&str; 2] = ["%%asset raw\n1u64", "%%asset clean --auto eager\nraw + 1"];

#[test]
fn eager_reacts_to_an_upstream_update_and_not_otherwise() {
    let p = project_of(&EAGER);
    let now = at(12, 0);
    // raw (id 1) then clean (id 2): nothing new.
    let quiet = facts(&[("raw", done(1, at(8, 0))), ("clean", done(2, at(8, 5)))]);
    assert!(evaluate(&p, &quiet, now).is_empty());
    // raw materialized again (id 3) after clean last ran.
    let updated = facts(&[("raw", done(3, at(9, 0))), ("clean", done(2, at(8, 5)))]);
    let r = evaluate(&p, &updated, now);
    assert_eq!(names(&r), ["clean"]);
    assert_eq!(r[0].reason, "eager: upstream raw updated");
    // A failed attempt of clean after raw's update handled it.
    let mut failed = done(2, at(8, 5));
    failed.latest_attempt = Some((4, at(9, 30)));
    let handled = facts(&[("raw", done(3, at(9, 0))), ("clean", failed)]);
    assert!(evaluate(&p, &handled, now).is_empty());
}

#[test]
fn eager_waits_for_missing_or_running_upstreams_and_itself() {
    let p = project_of(&EAGER);
    let now = at(12, 0);
    // raw was never materialized (and has no condition): clean waits.
    assert!(evaluate(&p, &AutoFacts::new(), now).is_empty());
    let mut running = done(3, at(9, 0));
    running.in_progress = true;
    let f = facts(&[("raw", running), ("clean", done(2, at(8, 5)))]);
    assert!(evaluate(&p, &f, now).is_empty(), "upstream in progress");
    let mut me = done(2, at(8, 5));
    me.in_progress = true;
    let f = facts(&[("raw", done(3, at(9, 0))), ("clean", me)]);
    assert!(evaluate(&p, &f, now).is_empty(), "itself in progress");
}

#[test]
fn eager_newly_missing_requests_a_chain_in_one_tick() {
    let p = project_of(&[
        "%%asset raw --auto eager\n1u64",
        "%%asset clean --auto eager\nraw + 1",
        "%%asset report --auto eager\nclean + 1",
    ]);
    let r = evaluate(&p, &AutoFacts::new(), at(12, 0));
    assert_eq!(names(&r), ["raw", "clean", "report"]);
    assert_eq!(r[0].reason, "eager: newly missing");
    // Requested once (a failed first attempt) is no longer newly missing.
    let tried = AssetFacts {
        latest_attempt: Some((1, at(11, 0))),
        last_request: Some(at(11, 0)),
        ..AssetFacts::default()
    };
    let f = facts(&[("raw", tried.clone())]);
    assert!(evaluate(&p, &f, at(12, 0)).is_empty());
}

#[test]
fn on_cron_fires_once_per_tick_and_waits_for_upstreams() {
    let p = project_of(&[
        "%%asset raw --auto \"on-cron 0 9 * * *\"\n1u64",
        "%%asset daily --auto \"on-cron 0 9 * * *\"\nraw + 1",
    ]);
    // Before today's tick, yesterday's was handled.
    let yesterday = at(9, 0) - Duration::days(1);
    let handled = |id| AssetFacts {
        last_request: Some(yesterday + Duration::minutes(1)),
        ..done(id, yesterday + Duration::minutes(2))
    };
    let f = facts(&[("raw", handled(1)), ("daily", handled(2))]);
    assert!(evaluate(&p, &f, at(8, 59)).is_empty());
    // After the tick: raw (no upstreams) and daily with it, in one run.
    let r = evaluate(&p, &f, at(9, 1));
    assert_eq!(names(&r), ["raw", "daily"]);
    assert_eq!(r[0].reason, "on-cron 0 9 * * * tick 2026-03-02T09:00:00Z");
    // raw was requested at 9:01 and is running: daily waits for it.
    let mut raw = handled(1);
    raw.last_request = Some(at(9, 1));
    raw.latest_attempt = Some((3, at(9, 1)));
    raw.in_progress = true;
    let f = facts(&[("raw", raw.clone()), ("daily", handled(2))]);
    assert!(evaluate(&p, &f, at(9, 2)).is_empty());
    // raw failed: daily keeps waiting (raw has not updated since the tick).
    raw.in_progress = false;
    let f = facts(&[("raw", raw.clone()), ("daily", handled(2))]);
    assert!(evaluate(&p, &f, at(10, 0)).is_empty());
    // raw succeeded at 9:30 (e.g. by hand): daily runs, once.
    raw.last_success = Some((4, at(9, 30)));
    raw.latest_attempt = Some((4, at(9, 29)));
    let f = facts(&[("raw", raw.clone()), ("daily", handled(2))]);
    assert_eq!(names(&evaluate(&p, &f, at(10, 0))), ["daily"]);
    let mut daily = handled(2);
    daily.last_request = Some(at(10, 0));
    let f = facts(&[("raw", raw), ("daily", daily)]);
    assert!(evaluate(&p, &f, at(10, 1)).is_empty(), "once per tick");
}

#[test]
fn on_missing_runs_what_was_never_materialized_once() {
    let p = project_of(&[
        "%%asset raw --auto on-missing\n1u64",
        "%%asset clean --auto on-missing\nraw + 1",
    ]);
    let r = evaluate(&p, &AutoFacts::new(), at(12, 0));
    assert_eq!(names(&r), ["raw", "clean"]);
    assert_eq!(r[1].reason, "on-missing: never materialized");
    // Materialized: nothing, even when raw updates (that is eager's job).
    let f = facts(&[("raw", done(3, at(11, 0))), ("clean", done(2, at(10, 0)))]);
    assert!(evaluate(&p, &f, at(12, 0)).is_empty());
}

#[test]
fn ticks_claim_in_the_database_and_a_second_tick_does_nothing() {
    let p = project_of(&EAGER);
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let raw = crate::version::AssetVersion {
        own_hash: "h".into(),
        version: "v".into(),
        upstreams: Default::default(),
    };
    let run = db
        .begin_run("raw", crate::model::Target::Local, None)
        .unwrap();
    let id = db
        .record_start(&crate::state::StartRecord {
            run_id: Some(run),
            asset: "raw",
            version: &raw.version,
            own_hash: &raw.own_hash,
            upstream_versions: &raw.upstreams,
            target: crate::model::Target::Local,
            job_id: None,
            node: None,
        })
        .unwrap();
    db.record_result(id, &Default::default()).unwrap();
    let now = Utc::now();
    let claim = |db: &StateDb| {
        db.claim_auto(now, crate::model::Target::Local, None, |f| {
            evaluate(&p, f, now)
        })
        .unwrap()
    };
    let first = claim(&db).expect("clean is newly missing");
    assert_eq!(first.selection(), "clean");
    assert_eq!(first.trigger, "clean: eager: newly missing");
    assert_eq!(
        db.run_trigger(first.run_id).unwrap().as_deref(),
        Some("clean: eager: newly missing")
    );
    // The claim is in progress until its run records the asset.
    assert!(db.auto_facts(now).unwrap()["clean"].in_progress);
    assert_eq!(claim(&db), None, "a second tick right after does nothing");
    // A claim of a tick that died long ago no longer blocks.
    let later = now + Duration::hours(crate::state::CLAIM_TIMEOUT_HOURS + 1);
    assert!(!db.auto_facts(later).unwrap()["clean"].in_progress);
}
