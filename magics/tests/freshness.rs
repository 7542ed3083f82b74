//! Freshness policies through the run service, on a notebook with a state
//! database whose timestamps the tests set: `notify` once per transition
//! into FAIL (a script appending to a file), and the upstream age guard
//! refusing (recorded, naming the upstream and its age) and refreshing a
//! selected upstream first (run with a fake session).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use slurmbook_magics::events::{AssetState, Emit, Event};
use slurmbook_magics::exec::local::{Session, SessionError, Sessions};
use slurmbook_magics::exec::slurm::OutputGate;
use slurmbook_magics::plan::Action;
use slurmbook_magics::policy::PolicyState;
use slurmbook_magics::run::{RunIo, Workspace};
use slurmbook_magics::{parse_selection, MaterializeArgs, Project};

fn write_notebook(dir: &Path, cells: &[&str]) -> PathBuf {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let path = dir.join("nb.ipynb");
    std::fs::write(&path, nb.to_string()).unwrap();
    path
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Records a successful materialization of `asset` (its current version)
/// that finished at `finished`, as if it had run then.
fn insert_success(dir: &Path, project: &Project, asset: &str, finished: DateTime<Utc>) {
    let conn = rusqlite::Connection::open(dir.join(".slurmbook/state.db")).unwrap();
    let v = project.versions.get(asset).unwrap();
    conn.execute(
        "INSERT INTO materializations (asset, version, own_hash, upstream_versions, target, status, started_at, finished_at, duration_ms)
         VALUES (?1, ?2, ?3, ?4, 'local', 'ok', ?5, ?6, 1000)",
        rusqlite::params![
            asset,
            v.version,
            v.own_hash,
            serde_json::to_string(&v.upstreams).unwrap(),
            ts(finished - Duration::seconds(1)),
            ts(finished)
        ],
    )
    .unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn notify_runs_once_per_transition_into_fail() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        &[
            "%%asset a --freshness 1h\n1u64",
            "%%asset b --freshness 6h --freshness-warn 1h\n2u64",
            "%%asset c\n3u64",
        ],
    );
    std::fs::write(
        dir.path().join("notify.sh"),
        "echo \"$SLURMBOOK_ASSET $SLURMBOOK_FRESHNESS $SLURMBOOK_AGE_S\" >> \"$1\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("slurmbook.toml"),
        "[profiles.local]\nnotify = \"sh notify.sh 'notified assets.txt'\"\n",
    )
    .unwrap();
    let log = dir.path().join("notified assets.txt");
    let mut ws = Workspace::for_notebook(nb);
    let project = ws.project().unwrap();
    let t0 = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    ws.db().unwrap();
    insert_success(dir.path(), &project, "a", t0 - Duration::minutes(30));
    insert_success(dir.path(), &project, "b", t0 - Duration::minutes(30));

    let status = |ws: &mut Workspace, now| {
        let report = ws.freshness_report(&project, now).unwrap();
        ws.wait_for_notifications();
        report
    };
    // PASS: nothing to say.
    let r = status(&mut ws, t0);
    assert!(r.ok);
    assert_eq!(r.without_policy, ["c"]);
    assert!(lines(&log).is_empty());
    // a FAILs (2 h old), b WARNs: notified once, for a.
    let r = status(&mut ws, t0 + Duration::minutes(90));
    assert!(!r.ok);
    assert_eq!(r.newly_failed, ["a"]);
    assert_eq!(r.assets[1].state, PolicyState::Warn);
    assert_eq!(lines(&log), ["a FAIL 7200"]);
    // Still FAIL: not again.
    let r = status(&mut ws, t0 + Duration::minutes(100));
    assert!(r.newly_failed.is_empty());
    assert_eq!(lines(&log).len(), 1);
    // a runs again and nobody looks until it FAILs again: a new failure
    // all the same (another materialization).
    insert_success(dir.path(), &project, "a", t0 + Duration::minutes(110));
    let r = status(&mut ws, t0 + Duration::minutes(220));
    assert_eq!(r.newly_failed, ["a"]);
    assert_eq!(lines(&log), ["a FAIL 7200", "a FAIL 6600"]);
    // a runs again and is seen PASS; FAIL later: notified again.
    insert_success(dir.path(), &project, "a", t0 + Duration::minutes(230));
    let r = status(&mut ws, t0 + Duration::minutes(235));
    assert_eq!(r.assets[0].state, PolicyState::Pass);
    assert_eq!(lines(&log).len(), 2);
    status(&mut ws, t0 + Duration::minutes(300));
    assert_eq!(lines(&log).len(), 3);
    assert_eq!(lines(&log)[2], "a FAIL 4200");
    // b newly FAILs after 6 h (a still FAILs: not again).
    let r = status(&mut ws, t0 + Duration::hours(7));
    assert_eq!(r.newly_failed, ["b"]);
    assert_eq!(lines(&log).len(), 4);
    assert_eq!(lines(&log)[3], "b FAIL 27000");
    // The report as JSON.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["counts"]["FAIL"], 2);
    assert_eq!(json["assets"][1]["asset"], "b");
    assert_eq!(json["assets"][1]["state"], "FAIL");
    assert_eq!(json["assets"][1]["fail_window_s"], 21600);
    assert_eq!(json["assets"][1]["detail"], "overdue by 1 h 30 m");
}

#[test]
fn a_failing_notify_command_is_logged_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(dir.path(), &["%%asset a --freshness 1h\n1u64"]);
    let mut ws = Workspace::for_notebook(nb);
    let project = ws.project().unwrap();
    ws.db().unwrap();
    let t = Utc::now();
    // A program that does not exist.
    ws.config
        .insert("notify".into(), "/nonexistent/notify-me --now".into());
    insert_success(dir.path(), &project, "a", t - Duration::hours(3));
    let report = ws
        .freshness_report(&project, t)
        .expect("a report despite the command");
    ws.wait_for_notifications();
    assert_eq!(report.newly_failed, ["a"]);
    // A program that fails.
    ws.config.insert("notify".into(), "false".into());
    insert_success(dir.path(), &project, "a", t - Duration::hours(2));
    let report = ws.freshness_report(&project, t).unwrap();
    ws.wait_for_notifications();
    assert_eq!(report.newly_failed, ["a"]);
    assert_eq!(report.assets[0].state, PolicyState::Fail);
}

/// A session that "evaluates" every asset at once, and remembers the order
/// of the asset bodies it was given.
#[derive(Default)]
struct FakeSession {
    ran: Vec<String>,
}

impl Session for FakeSession {
    async fn run(
        &mut self,
        code: &str,
        asset: &str,
        _emit: &dyn Emit,
    ) -> Result<Option<String>, SessionError> {
        // Only asset bodies count: not the notebook's setup (`:dep`, items)
        // nor the executor storing a computed value.
        let storing = code.starts_with("std::fs::write(");
        if asset != "notebook" && !storing {
            self.ran.push(asset.to_string());
        }
        Ok(None)
    }

    async fn variables(&mut self) -> Vec<(String, String)> {
        self.ran
            .iter()
            .map(|a| (a.clone(), "u64".to_string()))
            .collect()
    }

    fn epoch(&self) -> u64 {
        1
    }
}

impl Sessions for FakeSession {
    type Session = FakeSession;
    fn session(&mut self) -> &mut FakeSession {
        self
    }
    fn existing(&mut self) -> Option<&mut FakeSession> {
        Some(self)
    }
}

#[derive(Default)]
struct Recorded(Mutex<Vec<Event>>);

impl Emit for Recorded {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

async fn materialize(
    ws: &mut Workspace,
    selection: &str,
    session: &mut FakeSession,
) -> (
    slurmbook_magics::run::PlannedRun,
    slurmbook_magics::events::RunSummary,
    Vec<Event>,
) {
    let args = MaterializeArgs {
        selection: Some(parse_selection(selection).unwrap()),
        ..MaterializeArgs::default()
    };
    let run = ws.plan_materialize(&args).await.unwrap();
    let events = Recorded::default();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let gate = OutputGate::new();
    let io = RunIo {
        emit: &events,
        cancel: &cancel,
        gate: &gate,
    };
    let summary = ws.execute(&run, session, io).await.unwrap();
    let events = events.0.into_inner().unwrap();
    (run, summary, events)
}

#[tokio::test]
async fn upstream_age_guard_refuses_and_records_then_refreshes_a_selected_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        &[
            "%%asset raw\n1u64",
            "%%asset summary --max-upstream-age 12h\nraw + 1",
        ],
    );
    let mut ws = Workspace::for_notebook(nb);
    let project = ws.project().unwrap();
    ws.db().unwrap();
    insert_success(
        dir.path(),
        &project,
        "raw",
        Utc::now() - Duration::hours(14) - Duration::minutes(5),
    );

    // `summary` alone: raw is too old and not selected: not run, recorded.
    let mut session = FakeSession::default();
    let (run, summary, events) = materialize(&mut ws, "summary", &mut session).await;
    let why = "upstream raw is 14 h 5 m old, over --max-upstream-age 12h";
    assert_eq!(run.plan.step("summary").unwrap().action, Action::Refused);
    assert!(run.has_work(), "a refusal is recorded, so the run happens");
    assert_eq!(summary.skipped, ["summary"]);
    assert!(!summary.ok());
    assert!(
        session.ran.is_empty(),
        "nothing evaluated: {:?}",
        session.ran
    );
    assert!(events.iter().any(|e| matches!(e,
        Event::State { asset, state: AssetState::Skipped { because } }
            if asset == "summary" && because == why)));
    let recorded = ws
        .db()
        .unwrap()
        .run_assets(summary.run_id.unwrap())
        .unwrap();
    let m = recorded.iter().find(|m| m.asset == "summary").unwrap();
    assert_eq!(m.status.as_str(), "skipped");
    assert_eq!(m.error.as_deref(), Some(why));

    // `+summary`: raw (fresh by its code) is refreshed first, then summary runs.
    let mut session = FakeSession::default();
    let (run, summary, _) = materialize(&mut ws, "+summary", &mut session).await;
    assert_eq!(
        run.plan.step("raw").unwrap().why,
        "14 h 5 m old, over --max-upstream-age 12h of summary"
    );
    assert_eq!(session.ran, ["raw", "summary"]);
    assert_eq!(summary.done, ["raw", "summary"]);
    assert!(summary.ok());

    // Now raw is young: `summary` alone is fresh, with --force it runs.
    let args = MaterializeArgs {
        selection: Some(parse_selection("summary").unwrap()),
        force: true,
        ..MaterializeArgs::default()
    };
    let run = ws.plan_materialize(&args).await.unwrap();
    assert_eq!(run.plan.step("summary").unwrap().action, Action::Run);
}
