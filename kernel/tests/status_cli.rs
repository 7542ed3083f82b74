//! The headless freshness commands on a notebook whose state database has
//! timestamps the test chose: `slurmbook status [--json]` (exit 0, or 3
//! when something FAILs; `notify` once per new FAIL), `slurmbook graph`
//! with `overdue`, and `slurmbook run` refused by `--max-upstream-age`.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;
use slurmbook_magics::{load_project, SessionOverrides};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Fixture {
    dir: tempfile::TempDir,
    nb: PathBuf,
}

impl Fixture {
    fn new(cells: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cells: Vec<Value> = cells
            .iter()
            .map(|c| serde_json::json!({"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": null}))
            .collect();
        let nb = dir.path().join("pipeline.ipynb");
        std::fs::write(
            &nb,
            serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
                .to_string(),
        )
        .unwrap();
        Fixture { dir, nb }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn slurmbook(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_slurmbook"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SLURMBOOK_NOTIFY")
            .env_remove("SLURMBOOK_PROFILE")
            .output()
            .unwrap()
    }

    fn status_json(&self) -> (i32, Value) {
        let out = self.slurmbook(&["status", self.nb.to_str().unwrap(), "--json"]);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), json)
    }

    /// A successful materialization of `asset` at its current version,
    /// finished `ago` before now.
    fn materialized(&self, asset: &str, ago: Duration) {
        let project = load_project(&self.nb, &SessionOverrides::new()).unwrap();
        let v = project.versions.get(asset).unwrap();
        let finished: DateTime<Utc> = Utc::now() - ago;
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let conn = rusqlite::Connection::open(self.path(".slurmbook/state.db")).unwrap();
        // Time passes: the asset's earlier materializations are older than
        // this one (the latest success is the newest by time).
        conn.execute(
            "UPDATE materializations SET started_at = ?2, finished_at = ?3
             WHERE asset = ?1 AND COALESCE(finished_at, started_at) >= ?3",
            rusqlite::params![
                asset,
                ts(finished - Duration::seconds(3)),
                ts(finished - Duration::seconds(2))
            ],
        )
        .unwrap();
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
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn state_of<'a>(json: &'a Value, asset: &str) -> &'a Value {
    json["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["asset"] == asset)
        .unwrap_or_else(|| panic!("{asset} not in {json}"))
}

#[test]
fn status_exit_codes_json_and_notify_once_per_new_failure() {
    let f = Fixture::new(&[
        "%%asset a --freshness 1h\n1u64",
        "%%asset b --freshness 6h --freshness-warn 3h\n2u64",
        "%%asset c\n3u64",
        "%%asset d --freshness 1h --freshness-cron \"0 9 * * *\"\n4u64",
    ]);
    std::fs::write(
        f.path("notify.sh"),
        "echo \"$SLURMBOOK_ASSET $SLURMBOOK_FRESHNESS $SLURMBOOK_AGE_S\" >> notified.txt\n",
    )
    .unwrap();
    std::fs::write(
        f.path("slurmbook.toml"),
        "[profiles.local]\nnotify = \"sh notify.sh\"\n",
    )
    .unwrap();
    let log = f.path("notified.txt");

    // Never materialized: UNKNOWN is not a failure.
    let (code, json) = f.status_json();
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["ok"], true);
    assert_eq!(json["counts"]["UNKNOWN"], 3);
    assert_eq!(json["without_policy"], serde_json::json!(["c"]));
    assert_eq!(json["cron_timezone"], "UTC");
    assert_eq!(state_of(&json, "d")["cron"], "0 9 * * *");

    // a fresh, b in its WARN window: still exit 0.
    f.materialized("a", Duration::minutes(20));
    f.materialized("b", Duration::hours(4));
    let (code, json) = f.status_json();
    assert_eq!(code, 0, "{json}");
    assert_eq!(state_of(&json, "a")["state"], "PASS");
    assert_eq!(state_of(&json, "b")["state"], "WARN");
    assert_eq!(state_of(&json, "b")["warn_window_s"], 3 * 3600);
    let out = f.slurmbook(&["status", f.nb.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("fresh for 39 m") || t.contains("fresh for 40 m"),
        "{t}"
    );
    assert!(
        t.contains("warning: fails in 1 h 59 m") || t.contains("warning: fails in 2 h"),
        "{t}"
    );
    assert!(
        t.contains("1 PASS, 1 WARN, 0 FAIL, 1 UNKNOWN (1 asset without a freshness policy)"),
        "{t}"
    );

    // a runs (a materialization finished 2 h ago): FAIL, exit 3, notified once.
    f.materialized("a", Duration::hours(2));
    let (code, json) = f.status_json();
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["ok"], false);
    assert_eq!(state_of(&json, "a")["state"], "FAIL");
    assert_eq!(json["newly_failed"], serde_json::json!(["a"]));
    let age = state_of(&json, "a")["age_s"].as_i64().unwrap();
    assert!((7200..7260).contains(&age), "{age}");
    let notified = lines(&log);
    assert_eq!(notified.len(), 1, "{notified:?}");
    assert!(notified[0].starts_with("a FAIL 72"), "{notified:?}");
    let (code, json) = f.status_json();
    assert_eq!(code, 3);
    assert_eq!(json["newly_failed"], serde_json::json!([]));
    assert_eq!(lines(&log).len(), 1, "not notified twice");

    // The graph selects what is overdue and shows the badges.
    let out = f.slurmbook(&[
        "graph",
        f.nb.to_str().unwrap(),
        "--select",
        "overdue or warn",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("a ") && t.contains("[FAIL overdue by"), "{t}");
    assert!(t.contains("[WARN warning: fails in"), "{t}");
    assert!(!t.contains("\nc ") && !t.starts_with("c "), "{t}");
    let out = f.slurmbook(&["graph", f.nb.to_str().unwrap(), "--format", "mermaid"]);
    assert!(text(&out).contains("classDef overdue"), "{}", text(&out));

    // Fresh again: exit 0, nothing new to notify.
    f.materialized("a", Duration::minutes(1));
    let (code, _) = f.status_json();
    assert_eq!(code, 0);
    assert_eq!(lines(&log).len(), 1);
}

#[test]
fn run_refuses_an_asset_whose_upstream_is_too_old_and_dry_run_shows_the_refresh() {
    let f = Fixture::new(&[
        "%%asset raw\n1u64",
        "%%asset summary --max-upstream-age 12h\nraw + 1",
    ]);
    // The state database exists after a first look.
    assert!(f
        .slurmbook(&["status", f.nb.to_str().unwrap()])
        .status
        .success());
    f.materialized("raw", Duration::hours(14) + Duration::minutes(2));

    let out = f.slurmbook(&["run", f.nb.to_str().unwrap(), "--select", "summary"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not run: upstream raw is 14 h 2 m old, over --max-upstream-age 12h"),
        "{t}"
    );
    assert!(t.contains("0 done, 0 fresh, 0 failed, 1 skipped"), "{t}");
    let db = rusqlite::Connection::open(f.path(".slurmbook/state.db")).unwrap();
    let (status, error): (String, String) = db
        .query_row(
            "SELECT status, error FROM materializations WHERE asset = 'summary' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "skipped");
    assert!(error.contains("upstream raw is 14 h 2 m old"), "{error}");

    let out = f.slurmbook(&[
        "run",
        f.nb.to_str().unwrap(),
        "--select",
        "+summary",
        "--dry-run",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("run on local (14 h 2 m old, over --max-upstream-age 12h of summary)"),
        "{t}"
    );
    assert!(t.contains("2 to run, 0 fresh"), "{t}");
}
