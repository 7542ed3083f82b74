//! End to end over the fixture notebook: read, infer, graph, versions,
//! staleness against a real state database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use slurmbook_magics::state::{ResultRecord, StartRecord};
use slurmbook_magics::{
    load_project, load_project_cached, parse_selection, EdgeKind, Freshness, PlanCache, Project,
    ProjectError, Reason, SessionOverrides, StateDb, Target,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weather.ipynb")
}

fn cell_source(index: usize) -> String {
    let nb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    nb["cells"][index]["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect()
}

/// The fixture with some cells' sources replaced, written to `dir`.
fn edited(dir: &Path, edits: &[(usize, &str)]) -> PathBuf {
    let mut nb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    for (i, src) in edits {
        nb["cells"][*i]["source"] = serde_json::Value::String(src.to_string());
    }
    let path = dir.join("weather.ipynb");
    std::fs::write(&path, serde_json::to_string(&nb).unwrap()).unwrap();
    path
}

fn load(edits: &[(usize, &str)]) -> Project {
    let dir = tempfile::tempdir().unwrap();
    load_project(edited(dir.path(), edits), &SessionOverrides::new()).unwrap()
}

fn version(p: &Project, name: &str) -> String {
    p.versions.get(name).unwrap().version.clone()
}

#[test]
fn fixture_loads_into_specs_graph_and_items() {
    let p = load_project(fixture(), &SessionOverrides::new()).unwrap();
    let names: Vec<&str> = p.assets.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["readings", "temperatures", "summary", "by_bucket", "report"]
    );
    assert_eq!(p.graph.names().collect::<Vec<_>>(), names);
    assert_eq!(
        p.graph.dependencies("temperatures"),
        [("readings", EdgeKind::Data)]
    );
    assert_eq!(
        p.graph.dependencies("by_bucket"),
        [
            ("temperatures", EdgeKind::Data),
            ("summary", EdgeKind::Order)
        ]
    );
    assert_eq!(
        p.graph.dependencies("report"),
        [("summary", EdgeKind::Data), ("by_bucket", EdgeKind::Data)]
    );
    assert_eq!(p.graph.node("summary").unwrap().checks, ["mean_is_sane"]);
    assert_eq!(p.checks_of("summary").count(), 1);
    // the items an asset needs, transitively; not the unrelated one
    let items: Vec<&str> = p
        .items_for("temperatures")
        .iter()
        .map(|i| i.names[0].as_str())
        .collect();
    assert_eq!(items, ["celsius", "scale"]);
    assert_eq!(p.items_for("by_bucket")[0].names, ["BTreeMap"]);
    assert!(p.items_for("readings").is_empty());
    assert_eq!(p.deps.len(), 1);
    assert_eq!(p.deps[0].name, "serde");
    // `threshold` is captured by the format string but defined nowhere
    assert_eq!(p.unresolved("report"), ["threshold"]);
    assert!(p.unresolved("temperatures").is_empty());
    assert_eq!(
        p.asset("summary").unwrap().options.env.as_deref(),
        Some("analysis")
    );
    assert_eq!(
        p.asset("summary").unwrap().cell.id.as_deref(),
        Some("cell-4")
    );
    assert!(p.notebook_path.is_some());
    assert_eq!(p.asset_rows().len(), 5);
}

#[test]
fn whitespace_and_comment_changes_keep_versions() {
    let base = load(&[]);
    let reformatted = "%%asset summary: (f64,usize)   --env=analysis\n\
        // a different comment\nlet n=temperatures.len();   /* inline */\n\n\
        let mean = temperatures.iter().sum::<f64>()/n as f64;\n\
        println!(\"{n} readings, mean {mean:.2}\");\n(mean,n)\n";
    let p = load(&[(4, reformatted)]);
    for name in ["summary", "by_bucket", "report"] {
        assert_eq!(version(&base, name), version(&p, name), "{name}");
    }
    // item reformatting and comments do not count either
    let items = cell_source(1).replace("x * 0.1 }", "x*0.1 // same\n}");
    assert_ne!(items, cell_source(1));
    let p = load(&[(1, &items)]);
    assert_eq!(version(&base, "temperatures"), version(&p, "temperatures"));
}

#[test]
fn code_change_changes_the_version_and_everything_downstream() {
    let base = load(&[]);
    let changed = cell_source(4).replace("(mean, n)", "(mean * 2.0, n)");
    let p = load(&[(4, &changed)]);
    assert_eq!(version(&base, "temperatures"), version(&p, "temperatures"));
    assert_ne!(version(&base, "summary"), version(&p, "summary"));
    assert_ne!(
        version(&base, "by_bucket"),
        version(&p, "by_bucket"),
        "order-only upstreams count too"
    );
    assert_ne!(version(&base, "report"), version(&p, "report"));
    assert_eq!(base.versions.get("summary").unwrap().own_hash.len(), 64);
}

#[test]
fn options_partition_does_not_count_env_does() {
    let base = load(&[]);
    let header = cell_source(2);
    let p = load(&[(
        2,
        &header.replace(
            "--partition=cpu --time=00:10:00 --cpus=4",
            "--partition=gpu --time=01:00:00 --mem=4G --target=slurm",
        ),
    )]);
    assert_eq!(version(&base, "readings"), version(&p, "readings"));
    let p = load(&[(
        2,
        &header.replace("--group=ingest --tags team=geo", "--group=other"),
    )]);
    assert_eq!(version(&base, "readings"), version(&p, "readings"));
    let p = load(&[(4, &cell_source(4).replace("--env=analysis", "--env=gpu"))]);
    assert_ne!(version(&base, "summary"), version(&p, "summary"));
    let p = load(&[(4, &cell_source(4).replace(": (f64, usize)", ": (f64, u64)"))]);
    assert_ne!(
        version(&base, "summary"),
        version(&p, "summary"),
        "the type annotation counts"
    );
}

#[test]
fn item_and_dep_changes() {
    let base = load(&[]);
    // a change in an item used transitively (celsius -> scale)
    let p = load(&[(1, &cell_source(1).replace("x * 0.1", "x * 0.2"))]);
    assert_ne!(version(&base, "temperatures"), version(&p, "temperatures"));
    assert_eq!(version(&base, "readings"), version(&p, "readings"));
    // a change in an item nobody uses
    let p = load(&[(1, &cell_source(1).replace("{ 7 }", "{ 8 }"))]);
    assert_eq!(version(&base, "temperatures"), version(&p, "temperatures"));
    // :dep lines count for every asset
    let p = load(&[(
        1,
        &cell_source(1).replace("version = \"1\"", "version = \"1.0.200\""),
    )]);
    assert_ne!(version(&base, "readings"), version(&p, "readings"));
}

fn materialize_all(db: &StateDb, p: &Project) {
    let run = db.begin_run("*", Target::Local, None).unwrap();
    for name in p.graph.names() {
        let v = p.versions.get(name).unwrap();
        let id = db
            .record_start(&StartRecord {
                run_id: Some(run),
                asset: name,
                version: &v.version,
                own_hash: &v.own_hash,
                upstream_versions: &v.upstreams,
                target: Target::Local,
                job_id: None,
                node: None,
            })
            .unwrap();
        db.record_result(id, &ResultRecord::default()).unwrap();
    }
}

#[test]
fn staleness_against_the_state_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), &[]);
    let db = StateDb::open(dir.path()).unwrap();
    let p = load_project(&path, &SessionOverrides::new()).unwrap();
    let fresh = p.staleness(&db).unwrap();
    assert!(fresh.values().all(|f| *f == Freshness::Missing));
    assert_eq!(fresh["summary"].reasons(), [Reason::NeverMaterialized]);
    assert_eq!(
        fresh["summary"].reasons()[0].to_string(),
        "never materialized"
    );

    materialize_all(&db, &p);
    let st = p.staleness(&db).unwrap();
    assert!(st.values().all(Freshness::is_fresh), "{st:?}");
    let stale = p.select(&parse_selection("stale").unwrap(), &st).unwrap();
    assert!(stale.is_empty());

    // Edit summary: summary's code changed, its dependents see "upstream summary changed".
    edited(
        dir.path(),
        &[(4, &cell_source(4).replace("(mean, n)", "(mean + 1.0, n)"))],
    );
    let p2 = load_project(&path, &SessionOverrides::new()).unwrap();
    let st = p2.staleness(&db).unwrap();
    assert_eq!(st["readings"], Freshness::Fresh);
    assert_eq!(st["temperatures"], Freshness::Fresh);
    assert_eq!(st["summary"], Freshness::Stale(vec![Reason::CodeChanged]));
    assert_eq!(
        st["by_bucket"].reasons(),
        [Reason::UpstreamChanged("summary".into())]
    );
    assert_eq!(
        st["by_bucket"].reasons()[0].to_string(),
        "upstream summary changed"
    );
    assert_eq!(
        st["report"]
            .reasons()
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["upstream by_bucket changed", "upstream summary changed"]
    );
    assert_eq!(
        p2.select(&parse_selection("stale").unwrap(), &st).unwrap(),
        ["summary", "by_bucket", "report"]
    );
    assert_eq!(
        p2.select(&parse_selection("+report and not stale").unwrap(), &st)
            .unwrap(),
        ["readings", "temperatures"]
    );

    // A restart (new connection) gives the same answer.
    drop(db);
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(p2.staleness(&db).unwrap(), st);
}

#[test]
fn session_overrides_win_over_the_saved_notebook() {
    let mut s = SessionOverrides::new();
    s.record(
        Some("cell-4"),
        Some(4),
        "%%asset summary\ntemperatures.len()",
    )
    .unwrap();
    s.record(None, None, "%%asset fresh_idea\nsummary * 2")
        .unwrap();
    let p = load_project(fixture(), &s).unwrap();
    assert_eq!(p.asset("summary").unwrap().body, "temperatures.len()");
    assert_eq!(
        p.graph.dependencies("fresh_idea"),
        [("summary", EdgeKind::Data)]
    );
    assert!(p.asset("fresh_idea").unwrap().cell.is_session());
    let base = load_project(fixture(), &SessionOverrides::new()).unwrap();
    assert_ne!(version(&base, "summary"), version(&p, "summary"));
}

#[test]
fn errors_name_assets_and_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(
        dir.path(),
        &[(
            3,
            "%%asset temperatures\nreadings.iter().map(|r| ).collect()",
        )],
    );
    let e = load_project(&path, &SessionOverrides::new()).unwrap_err();
    assert!(matches!(e, ProjectError::Body { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "asset `temperatures` (cell 3 (id cell-3)): Rust syntax error at line 1, column 25"
        ),
        "{msg}"
    );

    let path = edited(dir.path(), &[(2, "%%asset readings\nreport.len()")]);
    let msg = load_project(&path, &SessionOverrides::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("readings -> temperatures -> summary -> report -> readings"),
        "{msg}"
    );

    let path = edited(dir.path(), &[(8, "%%asset summary\n1")]);
    let msg = load_project(&path, &SessionOverrides::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "asset `summary` is declared twice: in cell 4 (id cell-4) and in cell 8 (id cell-8)"
    );

    let path = edited(dir.path(), &[(5, "%%asset by_bucket --deps summry\n1")]);
    let msg = load_project(&path, &SessionOverrides::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`--deps summry`") && msg.contains("cell 5"),
        "{msg}"
    );

    let path = edited(dir.path(), &[(6, "%%check summry\ntrue")]);
    let msg = load_project(&path, &SessionOverrides::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no asset `summry`") && msg.contains("cell 6"),
        "{msg}"
    );

    let path = edited(
        dir.path(),
        &[(
            2,
            "%%asset readings --partition=\"cpu; touch /tmp/pwned\"\n1",
        )],
    );
    let msg = load_project(&path, &SessionOverrides::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("cell 2 (id cell-2): line 1:") && msg.contains("--partition"),
        "{msg}"
    );
}

#[test]
fn selection_helpers_on_the_fixture() {
    let p = load_project(fixture(), &SessionOverrides::new()).unwrap();
    let none: HashMap<String, Freshness> = HashMap::new();
    let sel = |s: &str| p.select(&parse_selection(s).unwrap(), &none).unwrap();
    assert_eq!(sel("group:ingest"), ["readings", "temperatures"]);
    assert_eq!(sel("tag:team=geo"), ["readings", "by_bucket"]);
    assert_eq!(sel("tag:tier"), ["by_bucket"]);
    assert_eq!(sel("summary+1"), ["summary", "by_bucket", "report"]);
    assert_eq!(sel("1+report"), ["summary", "by_bucket", "report"]);
    // with no state, everything counts as stale
    assert_eq!(sel("stale").len(), 5);
}

#[test]
fn cached_planning_matches_uncached_after_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), &[]);
    let cache = PlanCache::new();
    let first = load_project_cached(&path, &SessionOverrides::new(), &cache).unwrap();
    assert_eq!(cache.len(), (5, 2), "5 bodies and 2 plain cells cached");
    assert_eq!(cache.cells(), 8);
    // Edit one asset and the item cell, then re-plan with the cache.
    edited(
        dir.path(),
        &[
            (4, &cell_source(4).replace("(mean, n)", "(mean, n + 1)")),
            (1, &cell_source(1).replace("x * 0.1", "x * 0.3")),
        ],
    );
    let cached = load_project_cached(&path, &SessionOverrides::new(), &cache).unwrap();
    let fresh = load_project(&path, &SessionOverrides::new()).unwrap();
    for a in &fresh.assets {
        assert_eq!(
            cached.versions.get(&a.name),
            fresh.versions.get(&a.name),
            "{}",
            a.name
        );
    }
    assert_eq!(cached.items, fresh.items);
    assert_eq!(cached.assets, fresh.assets);
    assert_ne!(version(&first, "summary"), version(&cached, "summary"));
    assert_ne!(
        version(&first, "temperatures"),
        version(&cached, "temperatures")
    );
    assert_eq!(version(&first, "readings"), version(&cached, "readings"));
    assert_eq!(cache.len(), (5, 2), "old entries were dropped");
}

/// Everything a plan reads from a project, for comparing two of them.
fn summary(p: &Project) -> String {
    let mut out = format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n",
        p.assets,
        p.checks,
        p.items,
        p.deps,
        p.graph.names().collect::<Vec<_>>(),
        p.graph.edges()
    );
    for a in &p.assets {
        out += &format!(
            "{} {:?} {:?} {:?} {:?}\n",
            a.name,
            p.versions.get(&a.name),
            p.free_identifiers(&a.name),
            p.unresolved(&a.name),
            p.items_for(&a.name)
                .iter()
                .map(|i| &i.source)
                .collect::<Vec<_>>()
        );
    }
    out + &format!("{:?}", p.asset_rows())
}

#[test]
fn cold_and_warm_planning_give_identical_projects() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), &[]);
    let cache = PlanCache::new();
    let overrides = SessionOverrides::new();
    let mut last_versions = Vec::new();
    // Edits of the saved fixture (each from the original), each planned
    // warm (shared cache) and cold.
    let edits: Vec<Vec<(usize, String)>> = vec![
        vec![],
        vec![(4, cell_source(4).replace("(mean, n)", "(mean, n + 1)"))],
        vec![(4, cell_source(4) + " // only a comment")],
        vec![(1, cell_source(1).replace("x * 0.1", "x * 0.3"))],
        // a body outside the fast path's subset (a nested fn) and back
        vec![(
            4,
            cell_source(4).replace(
                "(mean, n)",
                "fn twice(x: f64) -> f64 { x * 2.0 } (twice(mean), n)",
            ),
        )],
        vec![],
        // the graph changes: fewer edges, no `--deps`, a moved check
        vec![(8, "%%asset report\nformat!(\"{}\", summary.0)".to_string())],
        vec![(5, cell_source(5).replace("--deps summary ", ""))],
        vec![(
            6,
            "%%check temperatures some\n!temperatures.is_empty()".to_string(),
        )],
        // names change: a renamed asset
        vec![(2, cell_source(2).replace("%%asset readings", "%%asset raw"))],
        // a cycle (an error, warm and cold), then the saved notebook again
        vec![(2, cell_source(2) + ";\nreport.len()")],
        vec![],
    ];
    for edit in &edits {
        let refs: Vec<(usize, &str)> = edit.iter().map(|(i, s)| (*i, s.as_str())).collect();
        edited(dir.path(), &refs);
        let warm = load_project_cached(&path, &overrides, &cache);
        let cold = load_project(&path, &overrides);
        let (warm, cold) = match (warm, cold) {
            (Ok(warm), Ok(cold)) => (warm, cold),
            (warm, cold) => {
                let (w, c) = (warm.unwrap_err(), cold.unwrap_err());
                assert_eq!(w.to_string(), c.to_string());
                last_versions.push(String::new());
                continue;
            }
        };
        assert_eq!(summary(&warm), summary(&cold), "after edit {edit:?}");
        assert_eq!(warm.versions, cold.versions);
        last_versions.push(version(&warm, "report"));
    }
    assert_eq!(
        last_versions[0], last_versions[5],
        "same notebook, same versions"
    );
    assert_eq!(
        last_versions[0], last_versions[2],
        "a comment changes no version"
    );
    assert_ne!(last_versions[0], last_versions[1]);
    assert_ne!(last_versions[0], last_versions[4]);
    assert_ne!(last_versions[0], last_versions[6]);
    assert!(last_versions[10].is_empty(), "the cycle is an error");
    assert_eq!(last_versions[0], last_versions[11]);
}
