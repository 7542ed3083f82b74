//! The Slurm transport and executor core against the REAL loopback cluster
//! of `tests/cluster` (Slurm + sshd on 127.0.0.1). Nothing is mocked.
//!
//! Needs `python3 tests/cluster/cluster.py up` first; every test FAILS
//! (never skips) when `/tmp/slurmbook-cluster/cluster.json` (or
//! `$SLURMBOOK_CLUSTER_DIR/cluster.json`) is missing.
//!
//! Tests run one at a time (a shared lock): the cluster has 2 CPUs and
//! several tests measure timing.
//!
//! What does not depend on SSH runs twice (`over_both_transports!`, e.g.
//! `slurm_chain_...::ssh` and `::local`): over SSH ([`Remote`]) and with
//! local processes ([`transport::LocalHost`], a kernel on the submit host).
//! The SSH connection tests are SSH-only.

#[macro_use]
mod common;
use common::{cluster_facts, transport, unique, Via};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slurmbook_magics::events::{AssetState, Event, Stream};
use slurmbook_magics::exec::slurm::{
    cancel, submit_all, watch_jobs, watch_run, JobSpec, NoRunLog, OutputGate, Remote, RunLog,
    SlurmJobsResult, SshError, SshTarget, SubmitError, WatchJob, WatchRun,
};
use slurmbook_magics::run::DbRunLog;
use slurmbook_magics::transport::{self, Transport, TransportError};
use slurmbook_magics::{StateDb, Target};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    ssh_config: PathBuf,
    host: String,
    scratch: String,
    port: u64,
    identity: PathBuf,
}

fn cluster() -> Cluster {
    let v = cluster_facts();
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("cluster.json has no `{k}`"))
            .to_string()
    };
    Cluster {
        ssh_config: s("ssh_config").into(),
        host: s("host"),
        scratch: s("scratch"),
        port: v["port"].as_u64().expect("port"),
        identity: s("identity_file").into(),
    }
}

fn target(c: &Cluster) -> SshTarget {
    SshTarget {
        host: c.host.clone(),
        config_file: Some(c.ssh_config.clone()),
        ..SshTarget::default()
    }
}

/// [`common::sh_job`] on the `debug` partition.
fn job(asset: &str, after: &[&str], cmd: &str) -> JobSpec {
    let mut j = common::sh_job(asset, after, cmd);
    j.sbatch.partition = Some("debug".into());
    j
}

type Log = Arc<Mutex<Vec<(Instant, Event)>>>;

fn recorder() -> (Log, impl Fn(Event) + Send + Sync) {
    let log: Log = Arc::default();
    let l = log.clone();
    (log, move |e| l.lock().unwrap().push((Instant::now(), e)))
}

fn output_of(log: &Log, asset: &str, stream: Stream) -> String {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Output {
                asset: a,
                stream: s,
                text,
            } if a == asset && *s == stream => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn states_of(log: &Log, asset: &str) -> Vec<AssetState> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::State { asset: a, state } if a == asset => Some(state.clone()),
            _ => None,
        })
        .collect()
}

async fn run_dir(remote: &dyn Transport, name: &str) -> String {
    remote
        .expand_dir(&format!("$SCRATCH/slurmbook-tests/{}", unique(name)))
        .await
        .expect("expand $SCRATCH")
}

async fn watch(
    remote: &dyn Transport,
    dir: &str,
    jobs: &[WatchJob],
    emit: &(dyn Fn(Event) + Send + Sync),
    cancel: &AtomicBool,
    db: Option<(&StateDb, i64)>,
) -> SlurmJobsResult {
    let db_log = db.map(|(db, run)| DbRunLog::new(db, run));
    let log: &dyn RunLog = match &db_log {
        Some(l) => l,
        None => &NoRunLog,
    };
    let w = WatchRun {
        transport: remote,
        run_dir: dir,
        jobs,
        emit: &emit,
        cancel,
        log,
        gate: &OutputGate::new(),
    };
    tokio::time::timeout(Duration::from_secs(180), watch_run(w))
        .await
        .expect("watch finished within 3 minutes")
        .expect("watch succeeded")
}

async fn slurm_states(remote: &dyn Transport, ids: &[&str]) -> BTreeMap<String, String> {
    let out = remote
        .run(&[
            "squeue",
            "--noheader",
            "--states=all",
            &format!("--jobs={}", ids.join(",")),
            "--format=%i %T",
        ])
        .await
        .unwrap();
    out.stdout_text()
        .lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// SSH connections expected of `via` when SSH would open `ssh` (local: none).
fn connections(via: Via, ssh: u64) -> u64 {
    match via {
        Via::Ssh => ssh,
        Via::Local => 0,
    }
}

over_both_transports!(
    slurm_run_passes_arguments_verbatim_and_executes_nothing,
    slurm_expand_dir_uses_remote_variables_and_validates,
    slurm_upload_cas_sends_once,
    slurm_chain_runs_in_order_streams_live_and_uses_one_connection,
    slurm_failing_job_cancels_dependents_naming_the_upstream,
    slurm_cancel_flag_scancels_the_run,
    slurm_resume_from_saved_offsets_loses_and_repeats_nothing,
    slurm_injection_is_rejected_before_anything_is_sent,
    slurm_sbatch_failure_halfway_cancels_what_was_submitted,
    slurm_twenty_job_chain_costs_one_connection_and_one_submit_command,
);

async fn slurm_run_passes_arguments_verbatim_and_executes_nothing(via: Via) {
    let _g = SERIAL.lock().await;
    let c = cluster();
    let remote = transport(via);
    let remote = &*remote;
    let marker = format!("/tmp/{}", unique("sb-pwned"));
    let words = [
        "with space".to_string(),
        "it's \"quoted\"".to_string(),
        format!("$(touch {marker}-1)"),
        format!("`touch {marker}-2`"),
        format!("; touch {marker}-3"),
        "new\nline".to_string(),
        "$HOME ~ * ?".to_string(),
        String::new(),
    ];
    let mut argv = vec!["printf".to_string(), "<%s>\\n".to_string()];
    argv.extend(words.iter().cloned());
    let out = remote.run(&transport::words(&argv)).await.unwrap();
    assert!(out.success(), "{out:?}");
    let expect: String = words.iter().map(|w| format!("<{w}>\n")).collect();
    assert_eq!(out.stdout_text(), expect);
    for i in 1..=3 {
        let p = format!("{marker}-{i}");
        assert!(
            !Path::new(&p).exists(),
            "{p} was created: a word was executed"
        );
    }
    // Exit codes and stderr come back.
    let out = remote
        .run(&["sh", "-c", "echo err >&2; exit 7"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(7));
    assert_eq!(out.stderr_text(), "err\n");
    // A missing program: the remote shell's 127; locally, an error naming it.
    match (via, remote.run(&["slurmbook-no-such-command"]).await) {
        (Via::Ssh, Ok(out)) => assert_eq!(out.code, Some(127)),
        (Via::Local, Err(TransportError::NotOnPath { program, .. })) => {
            assert_eq!(program, "slurmbook-no-such-command")
        }
        (_, other) => panic!("{via:?}: {other:?}"),
    }
    let out = remote
        .run(&["sh", "-c", "echo before; kill -9 $$"])
        .await
        .unwrap();
    assert_eq!((out.code, out.stdout_text().as_str()), (None, "before\n"));
    // A script is data on stdin.
    let out = remote
        .run_script("x='a b'\nprintf '%s|' \"$x\" \"$SCRATCH\"\n")
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), format!("a b|{}|", c.scratch));
    assert!(matches!(
        remote.run(&["echo", "a\0b"]).await,
        Err(SshError::BadArgument(_))
    ));
    let st = remote.stats();
    assert_eq!(st.connections, connections(via, 1), "{st:?}");
    assert_eq!(st.commands, 5, "{st:?}");
}

async fn slurm_expand_dir_uses_remote_variables_and_validates(via: Via) {
    let _g = SERIAL.lock().await;
    let c = cluster();
    let remote = transport(via);
    let remote = &*remote;
    assert_eq!(
        remote.expand_dir("$SCRATCH/slurmbook").await.unwrap(),
        format!("{}/slurmbook", c.scratch)
    );
    assert_eq!(
        remote.expand_dir("${SCRATCH}/a//b/").await.unwrap(),
        format!("{}/a/b", c.scratch)
    );
    // The cluster's sshd logs in as root; locally, this process's HOME.
    let home = match via {
        Via::Ssh => "/root".to_string(),
        Via::Local => std::env::var("HOME")
            .unwrap()
            .trim_end_matches('/')
            .to_string(),
    };
    assert_eq!(remote.expand_dir("~/x").await.unwrap(), format!("{home}/x"));
    assert_eq!(remote.expand_dir("$HOME").await.unwrap(), home);
    assert_eq!(
        remote.expand_dir("rel/dir").await.unwrap(),
        format!("{home}/rel/dir")
    );
    assert_eq!(remote.expand_dir("/abs/p").await.unwrap(), "/abs/p");
    let commands = remote.stats().commands;
    match via {
        Via::Ssh => assert_eq!(commands, 2, "one printf per variable, cached"),
        Via::Local => assert_eq!(commands, 0, "read from this process's environment"),
    }
    for bad in [
        "$SCRATCH/a b",
        "$SCRATCH/$(id)",
        "$SCRATCH/`id`",
        "$PATH/x",
        "~root",
        "/a;b",
    ] {
        assert!(
            matches!(remote.expand_dir(bad).await, Err(SshError::BadPath { .. })),
            "{bad} accepted"
        );
    }
    assert_eq!(
        remote.stats().commands,
        commands,
        "bad paths are rejected locally"
    );
}

async fn slurm_upload_cas_sends_once(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let cache = remote
        .expand_dir(&format!("$SCRATCH/slurmbook-tests/{}", unique("cache")))
        .await
        .unwrap();
    let mut bytes = unique("payload").into_bytes();
    bytes.extend((0..200_000u32).map(|i| (i * 7 % 251) as u8));
    let (path, sent) = remote.upload_cas(&cache, &bytes, true).await.unwrap();
    assert_eq!(sent, bytes.len() as u64);
    assert!(path.starts_with(&cache));
    let (path2, sent2) = remote.upload_cas(&cache, &bytes, true).await.unwrap();
    assert_eq!(path2, path);
    assert_eq!(sent2, 0, "second upload sends nothing");
    let out = remote.run(&["sha256sum", &path]).await.unwrap();
    let hash = path.rsplit('/').next().unwrap();
    assert!(out.stdout_text().starts_with(hash), "{}", out.stdout_text());
    let out = remote.run(&["test", "-x", &path]).await.unwrap();
    assert!(out.success(), "executable bit set");
    // The user's alone: the file, and the cache directory created for it.
    let out = remote
        .run(&["stat", "-c", "%a", &path, &cache])
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "700\n700\n");
    let data = remote.upload_cas(&cache, b"data", false).await.unwrap().0;
    let out = remote.run(&["stat", "-c", "%a", &data]).await.unwrap();
    assert_eq!(out.stdout_text(), "600\n");
    remote.run(&["rm", &data]).await.unwrap();
    // No temporary file left behind: the cache holds the one file.
    let out = remote.run(&["ls", "-A", &cache]).await.unwrap();
    assert_eq!(out.stdout_text().trim(), hash);
    let st = remote.stats();
    assert_eq!(
        st.bytes_uploaded,
        bytes.len() as u64 + 4,
        "the payload and `data`"
    );
    assert_eq!(st.connections, connections(via, 1));
    assert!(remote.upload_cas("$SCRATCH/x", b"x", false).await.is_err());
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "slurmbook-test-other",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    key
}

/// The cluster's ssh config with some lines replaced.
fn config_with(c: &Cluster, dir: &Path, replace: &[(&str, String)]) -> PathBuf {
    let text = std::fs::read_to_string(&c.ssh_config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        match replace.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => out.push_str(&format!("    {k} {v}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let p = dir.join("ssh_config");
    std::fs::write(&p, out).unwrap();
    p
}

#[tokio::test]
async fn slurm_connection_errors_say_what_to_check() {
    let _g = SERIAL.lock().await;
    let c = cluster();
    let tmp = tempfile::tempdir().unwrap();

    let unknown = Remote::new(SshTarget {
        host: "slurmbook-no-such-host.invalid".into(),
        config_file: Some(c.ssh_config.clone()),
        ..SshTarget::default()
    });
    let e = unknown.connect().await.unwrap_err();
    assert!(matches!(e, SshError::UnknownHost { .. }), "{e}");
    assert!(e.to_string().contains("ssh config"), "{e}");

    let other_key = keygen(tmp.path(), "other_key");
    let cfg = config_with(
        &c,
        tmp.path(),
        &[("IdentityFile", other_key.display().to_string())],
    );
    let refused = Remote::new(SshTarget {
        config_file: Some(cfg),
        ..target(&c)
    });
    let e = refused.connect().await.unwrap_err();
    assert!(matches!(e, SshError::KeyRefused { .. }), "{e}");
    assert!(e.to_string().contains("authorized_keys"), "{e}");

    // A different host key pinned for the cluster's address: mismatch.
    let fake_host = keygen(tmp.path(), "fake_host");
    let pubkey = std::fs::read_to_string(fake_host.with_extension("pub")).unwrap();
    let kh = tmp.path().join("known_hosts_changed");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {}", c.port, pubkey)).unwrap();
    let cfg_dir = tmp.path().join("changed");
    std::fs::create_dir(&cfg_dir).unwrap();
    let cfg = config_with(
        &c,
        &cfg_dir,
        &[("UserKnownHostsFile", kh.display().to_string())],
    );
    let changed = Remote::new(SshTarget {
        config_file: Some(cfg),
        ..target(&c)
    });
    let e = changed.connect().await.unwrap_err();
    assert!(matches!(e, SshError::HostKeyChanged { .. }), "{e}");

    // No key known at all: strict checking refuses (never accept-new).
    let kh = tmp.path().join("known_hosts_empty");
    std::fs::write(&kh, "").unwrap();
    let cfg_dir = tmp.path().join("empty");
    std::fs::create_dir(&cfg_dir).unwrap();
    let cfg = config_with(
        &c,
        &cfg_dir,
        &[("UserKnownHostsFile", kh.display().to_string())],
    );
    let strict = Remote::new(SshTarget {
        config_file: Some(cfg),
        ..target(&c)
    });
    let e = strict.connect().await.unwrap_err();
    assert!(matches!(e, SshError::HostKeyUnknown { .. }), "{e}");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        "",
        "the key was not added"
    );

    // Overrides of the target are passed on: the right key by identity.
    let ok = Remote::new(SshTarget {
        identity: Some(c.identity.clone()),
        user: Some("root".into()),
        ..target(&c)
    });
    ok.connect().await.unwrap();
}

async fn slurm_chain_runs_in_order_streams_live_and_uses_one_connection(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let dir = run_dir(remote, "chain").await;
    let specs = vec![
        job(
            "first",
            &[],
            "echo start $(date +%s%N); for i in 1 2 3 4 5 6 7 8 9 10; do echo \"line $i $(date +%s%N)\"; sleep 0.2; done; echo end $(date +%s%N)",
        ),
        job(
            "second",
            &["first"],
            "echo start $(date +%s%N); echo to-stderr >&2; echo end $(date +%s%N)",
        ),
        job(
            "third",
            &["second"],
            "echo start $(date +%s%N); \
             printf '\\036SLURMBOOK {\"event\":\"metadata\",\"metadata\":{\"rows\":3}}\\n'; \
             printf '\\036SLURMBOOK {\"event\":\"materialized\",\"bytes\":42}\\n'; \
             echo end $(date +%s%N)",
        ),
    ];
    let before = remote.stats();
    let ids = submit_all(remote, &dir, "chain", &specs).await.unwrap();
    let after_submit = remote.stats();
    assert_eq!(
        ids.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["first", "second", "third"]
    );
    assert_eq!(
        after_submit.commands - before.commands,
        1,
        "submission is one round trip"
    );

    let (log, emit) = recorder();
    let jobs = watch_jobs(&specs, &ids);
    let never = AtomicBool::new(false);
    let result = watch(remote, &dir, &jobs, &emit, &never, None).await;
    // The tail ended with the run (no "did not finish" warning).
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    for j in &result.jobs {
        assert!(matches!(j.state, AssetState::Done { .. }), "{j:?}");
        assert_eq!(j.exit_code, Some(0));
        assert!(j.node.is_some());
    }
    // Order: each job starts after its upstream ended.
    let stamp = |asset: &str, word: &str| -> u128 {
        let out = output_of(&log, asset, Stream::Stdout);
        let line = out
            .lines()
            .find(|l| l.starts_with(word))
            .unwrap_or_else(|| panic!("{asset} printed no `{word}`: {out}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(stamp("second", "start") > stamp("first", "end"));
    assert!(stamp("third", "start") > stamp("second", "end"));
    // Complete output, in order, exactly once.
    let first = output_of(&log, "first", Stream::Stdout);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 12, "{first}");
    for (i, l) in lines[1..11].iter().enumerate() {
        assert!(l.starts_with(&format!("line {} ", i + 1)), "{first}");
    }
    assert_eq!(output_of(&log, "second", Stream::Stderr), "to-stderr\n");
    // Streamed live: the first line arrived well before the job ended.
    let events = log.lock().unwrap().clone();
    let first_line_at = events
        .iter()
        .find(|(_, e)| matches!(e, Event::Output { asset, .. } if asset == "first"))
        .map(|(t, _)| *t)
        .unwrap();
    let done_at = events
        .iter()
        .find(|(_, e)| matches!(e, Event::State { asset, state: AssetState::Done { .. } } if asset == "first"))
        .map(|(t, _)| *t)
        .unwrap();
    assert!(
        done_at.duration_since(first_line_at) > Duration::from_millis(1000),
        "first line only {:?} before the end",
        done_at.duration_since(first_line_at)
    );
    // Latency: each line's timestamp vs when its event arrived (same clock: loopback).
    let wall0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let inst0 = Instant::now();
    let mut lat = Vec::new();
    for (t, e) in &events {
        if let Event::Output { asset, text, .. } = e {
            if asset == "first" && text.starts_with("line ") {
                let printed: i128 = text.trim().rsplit(' ').next().unwrap().parse().unwrap();
                let arrived = wall0 - inst0.duration_since(*t).as_nanos() as i128;
                lat.push((arrived - printed) as f64 / 1e6);
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "streaming latency (ms): min {:.0} median {:.0} max {:.0}",
        lat[0],
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    assert!(lat[lat.len() / 2] < 1000.0, "median latency {lat:?}");
    // The bundle protocol is not output.
    let third = output_of(&log, "third", Stream::Stdout);
    assert!(!third.contains("SLURMBOOK"), "{third}");
    assert!(events.iter().any(|(_, e)| matches!(e,
        Event::Metadata { asset, metadata } if asset == "third" && metadata["rows"] == 3)));
    let t = result.job("third").unwrap();
    assert_eq!(t.materialized_bytes, Some(42));
    assert_eq!(t.metadata["rows"], 3);
    // States went queued/running -> done, each emitted once.
    let st = states_of(&log, "first");
    assert!(matches!(st.last(), Some(AssetState::Done { .. })), "{st:?}");
    assert_eq!(
        st.iter()
            .filter(|s| matches!(s, AssetState::Done { .. }))
            .count(),
        1
    );
    let stats = remote.stats();
    assert_eq!(
        stats.connections,
        connections(via, 1),
        "one ssh connection for submit + watch: {stats:?}"
    );
    assert_eq!(stats.reconnects, 0);
    eprintln!("chain of 3: {stats:?}");
}

async fn slurm_failing_job_cancels_dependents_naming_the_upstream(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let dir = run_dir(remote, "fail").await;
    let specs = vec![
        job(
            "source",
            &[],
            "echo working; echo 'thread main panicked: boom' >&2; \
             printf '\\036SLURMBOOK {\"event\":\"failed\",\"error\":\"value out of range\"}\\n'; exit 3",
        ),
        job("middle", &["source"], "echo never"),
        job("last", &["middle"], "echo never"),
        job("independent", &[], "echo fine"),
    ];
    let ids = submit_all(remote, &dir, "fail", &specs).await.unwrap();
    let (log, emit) = recorder();
    let never = AtomicBool::new(false);
    let result = watch(remote, &dir, &watch_jobs(&specs, &ids), &emit, &never, None).await;
    let source = result.job("source").unwrap();
    match &source.state {
        AssetState::Failed { error } => {
            assert!(
                error.starts_with("exit code 3: value out of range"),
                "{error}"
            );
            assert!(error.contains("thread main panicked: boom"), "{error}");
        }
        s => panic!("source: {s:?}"),
    }
    assert_eq!(source.exit_code, Some(3));
    assert!(source.stderr_tail.contains("boom"));
    assert_eq!(source.bundle_error.as_deref(), Some("value out of range"));
    for dependent in ["middle", "last"] {
        assert_eq!(
            result.job(dependent).unwrap().state,
            AssetState::Cancelled {
                because: Some("upstream source failed".into())
            },
            "{dependent}"
        );
    }
    assert!(matches!(
        result.job("independent").unwrap().state,
        AssetState::Done { .. }
    ));
    assert!(!result.cancelled);
    assert_eq!(output_of(&log, "middle", Stream::Stdout), "");
    assert_eq!(output_of(&log, "source", Stream::Stdout), "working\n");
}

async fn slurm_cancel_flag_scancels_the_run(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let dir = run_dir(remote, "cancel").await;
    let specs = vec![
        job("slow", &[], "echo started; sleep 120"),
        job("after_slow", &["slow"], "echo never"),
    ];
    let ids = submit_all(remote, &dir, "cancel", &specs).await.unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let (log, rec) = recorder();
    // Interrupt once the first job printed its line.
    let emit = move |e: Event| {
        if matches!(&e, Event::Output { asset, .. } if asset == "slow") {
            f.store(true, Ordering::SeqCst);
        }
        rec(e)
    };
    let t0 = Instant::now();
    let result = watch(remote, &dir, &watch_jobs(&specs, &ids), &emit, &flag, None).await;
    assert!(result.cancelled);
    assert!(t0.elapsed() < Duration::from_secs(60), "returned promptly");
    let id_list: Vec<&str> = ids.iter().map(|(_, i)| i.as_str()).collect();
    let states = slurm_states(remote, &id_list).await;
    for (asset, id) in &ids {
        assert_eq!(
            states.get(id).map(String::as_str),
            Some("CANCELLED"),
            "{asset}: {states:?}"
        );
        assert!(
            matches!(
                result.job(asset).unwrap().state,
                AssetState::Cancelled { .. }
            ),
            "{asset}: {:?}",
            result.job(asset).unwrap().state
        );
    }
    assert_eq!(output_of(&log, "slow", Stream::Stdout), "started\n");
    // Cancelling again (jobs finished) is fine.
    cancel(remote, &id_list).await.unwrap();
}

async fn slurm_resume_from_saved_offsets_loses_and_repeats_nothing(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let dir = run_dir(remote, "resume").await;
    // 30 lines over ~3 s on stdout, some on stderr, a partial line at the end.
    let specs = vec![job(
        "counter",
        &[],
        "for i in $(seq 1 30); do echo \"out $i\"; if [ $((i % 5)) = 0 ]; then echo \"err $i\" >&2; fi; sleep 0.1; done; printf 'no newline at end'",
    )];
    let ids = submit_all(remote, &dir, "resume", &specs).await.unwrap();
    let jobs = watch_jobs(&specs, &ids);
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open_file(tmp.path().join("state.db")).unwrap();
    let run = db
        .begin_run("counter", Target::Slurm, Some("cluster"))
        .unwrap();
    let never = AtomicBool::new(false);

    // First watcher: stopped (dropped) once some lines arrived.
    let (log1, emit1) = recorder();
    let lines = Arc::new(AtomicUsize::new(0));
    let l = lines.clone();
    let emit1 = move |e: Event| {
        if matches!(&e, Event::Output { .. }) {
            l.fetch_add(1, Ordering::SeqCst);
        }
        emit1(e)
    };
    {
        let w = WatchRun {
            transport: remote,
            run_dir: &dir,
            jobs: &jobs,
            emit: &emit1,
            cancel: &never,
            log: &DbRunLog::new(&db, run),
            gate: &OutputGate::new(),
        };
        let fut = watch_run(w);
        tokio::pin!(fut);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            tokio::select! {
                r = &mut fut => panic!("watch ended before it was stopped: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if lines.load(Ordering::SeqCst) >= 8 {
                break;
            }
            assert!(Instant::now() < deadline, "no output within 60 s");
        }
    } // the watch future is dropped here: offsets are saved
    let part1_out = output_of(&log1, "counter", Stream::Stdout);
    let part1_err = output_of(&log1, "counter", Stream::Stderr);
    let saved = db.offsets(run, "counter").unwrap().unwrap();
    assert_eq!(
        saved,
        (part1_out.len() as u64, part1_err.len() as u64),
        "offsets = bytes shown"
    );
    assert!(part1_out.starts_with("out 1\n"), "{part1_out}");

    // Second watcher (as after a kernel restart): continues from the db.
    let (log2, emit2) = recorder();
    let result = watch(remote, &dir, &jobs, &emit2, &never, Some((&db, run))).await;
    let part2_out = output_of(&log2, "counter", Stream::Stdout);
    let part2_err = output_of(&log2, "counter", Stream::Stderr);
    let mut expect_out: String = (1..=30).map(|i| format!("out {i}\n")).collect();
    expect_out.push_str("no newline at end");
    let expect_err: String = (1..=30)
        .filter(|i| i % 5 == 0)
        .map(|i| format!("err {i}\n"))
        .collect();
    assert_eq!(format!("{part1_out}{part2_out}"), expect_out);
    assert_eq!(format!("{part1_err}{part2_err}"), expect_err);
    assert!(
        !part2_out.is_empty(),
        "the job was still running when the first watcher stopped"
    );
    let j = result.job("counter").unwrap();
    assert_eq!(j.stdout_offset, expect_out.len() as u64);
    assert_eq!(
        db.offsets(run, "counter").unwrap().unwrap(),
        (expect_out.len() as u64, expect_err.len() as u64)
    );
    assert_eq!(db.run_jobs(run).unwrap()[0].state, "done");

    // A third watch of the finished run shows nothing again.
    let (log3, emit3) = recorder();
    watch(remote, &dir, &jobs, &emit3, &never, Some((&db, run))).await;
    assert_eq!(output_of(&log3, "counter", Stream::Stdout), "");
    assert_eq!(output_of(&log3, "counter", Stream::Stderr), "");
}

async fn slurm_injection_is_rejected_before_anything_is_sent(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let marker = format!("/tmp/{}", unique("sb-pwned"));
    let mut bad = job("a", &[], "true");
    bad.sbatch.partition = Some(format!("cpu; touch {marker}"));
    let e = submit_all(remote, "/tmp/slurmbook-cluster/scratch/x", "t", &[bad])
        .await
        .unwrap_err();
    assert!(matches!(e, SubmitError::Invalid(_)), "{e}");
    let mut bad = job("a", &[], "true");
    bad.sbatch.constraint = Some("x`touch /tmp/x`".into());
    assert!(submit_all(remote, "/tmp/x", "t", &[bad]).await.is_err());
    assert!(
        submit_all(remote, "/tmp/x", "t", &[job("a;touch", &[], "true")])
            .await
            .is_err()
    );
    assert!(
        submit_all(remote, "/tmp/x y", "t", &[job("a", &[], "true")])
            .await
            .is_err()
    );
    let st = remote.stats();
    assert_eq!(
        (st.connections, st.commands),
        (0, 0),
        "nothing was sent: {st:?}"
    );
    assert!(!Path::new(&marker).exists());

    // Quoted values with $(...) and backticks reach the job verbatim.
    let dir = run_dir(remote, "inject").await;
    let spec = JobSpec {
        asset: "verbatim".into(),
        sbatch: job("x", &[], "").sbatch,
        command: vec![
            "printf".into(),
            "<%s>\\n".into(),
            format!("$(touch {marker}-1)"),
            format!("`touch {marker}-2`"),
            "it's; $HOME".into(),
            "SLURMBOOK_EOF\nEOF".into(),
        ],
        after: vec![],
        env: None,
    };
    let ids = submit_all(remote, &dir, "inject", std::slice::from_ref(&spec))
        .await
        .unwrap();
    let (log, emit) = recorder();
    let never = AtomicBool::new(false);
    let r = watch(
        remote,
        &dir,
        &watch_jobs(&[spec], &ids),
        &emit,
        &never,
        None,
    )
    .await;
    assert!(r.all_done(), "{r:?}");
    assert_eq!(
        output_of(&log, "verbatim", Stream::Stdout),
        format!(
            "<$(touch {marker}-1)>\n<`touch {marker}-2`>\n<it's; $HOME>\n<SLURMBOOK_EOF\nEOF>\n"
        )
    );
    assert!(!Path::new(&format!("{marker}-1")).exists());
    assert!(!Path::new(&format!("{marker}-2")).exists());
}

async fn slurm_sbatch_failure_halfway_cancels_what_was_submitted(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let dir = run_dir(remote, "halfway").await;
    let mut broken = job("broken", &["ok"], "true");
    broken.sbatch.partition = Some("nosuchpartition".into());
    let specs = vec![
        job("ok", &[], "sleep 30"),
        broken,
        job("later", &["broken"], "true"),
    ];
    let e = submit_all(remote, &dir, "half", &specs).await.unwrap_err();
    let SubmitError::Sbatch {
        asset,
        stderr,
        cancelled,
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(asset, "broken");
    assert!(stderr.to_lowercase().contains("partition"), "{stderr}");
    assert_eq!(cancelled.len(), 1);
    let states = slurm_states(remote, &[cancelled[0].as_str()]).await;
    assert_eq!(
        states.get(&cancelled[0]).map(String::as_str),
        Some("CANCELLED"),
        "{states:?}"
    );
    match via {
        Via::Ssh => assert_eq!(remote.stats().commands, 3, "expand + submit + squeue"),
        Via::Local => assert_eq!(remote.stats().commands, 2, "submit + squeue"),
    }
}

#[tokio::test]
async fn slurm_killed_master_is_reestablished_mid_watch() {
    let _g = SERIAL.lock().await;
    let c = cluster();
    let remote = Remote::new(target(&c));
    let dir = run_dir(&remote, "master").await;
    let specs = vec![job(
        "ticker",
        &[],
        "for i in $(seq 1 25); do echo \"tick $i\"; sleep 0.2; done",
    )];
    let ids = submit_all(&remote, &dir, "master", &specs).await.unwrap();
    let ctl = remote.control_socket().await.expect("master open");
    let (log, rec) = recorder();
    let lines = Arc::new(AtomicUsize::new(0));
    let l = lines.clone();
    let emit = move |e: Event| {
        if matches!(&e, Event::Output { .. }) {
            l.fetch_add(1, Ordering::SeqCst);
        }
        rec(e)
    };
    let never = AtomicBool::new(false);
    let jobs = watch_jobs(&specs, &ids);
    let killer = async {
        while lines.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = Command::new("ssh")
            .arg("-S")
            .arg(&ctl)
            .args(["-O", "exit", "slurmbook-test"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines.load(Ordering::SeqCst)
    };
    let (result, killed_at) =
        tokio::join!(watch(&remote, &dir, &jobs, &emit, &never, None), killer);
    assert!(killed_at < 25, "killed mid-watch (after {killed_at} lines)");
    assert!(result.all_done(), "{result:?}");
    let expect: String = (1..=25).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(output_of(&log, "ticker", Stream::Stdout), expect);
    let st = remote.stats();
    assert_eq!(st.reconnects, 1, "{st:?}");
    assert_eq!(st.connections, 2, "{st:?}");
    assert_ne!(remote.control_socket().await.unwrap(), ctl);
}

async fn slurm_twenty_job_chain_costs_one_connection_and_one_submit_command(via: Via) {
    let _g = SERIAL.lock().await;
    let remote = transport(via);
    let remote = &*remote;
    let t0 = Instant::now();
    let dir = run_dir(remote, "chain20").await;
    let names: Vec<String> = (0..20).map(|i| format!("step_{i:02}")).collect();
    let specs: Vec<JobSpec> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let after: Vec<&str> = if i == 0 {
                vec![]
            } else {
                vec![names[i - 1].as_str()]
            };
            job(n, &after, &format!("echo {n}"))
        })
        .collect();
    let before = remote.stats();
    let t_submit = Instant::now();
    let ids = submit_all(remote, &dir, "c20", &specs).await.unwrap();
    let submit_time = t_submit.elapsed();
    let submit_cmds = remote.stats().commands - before.commands;
    assert_eq!(ids.len(), 20);
    assert!(submit_cmds < 10, "{submit_cmds}");
    assert_eq!(submit_cmds, 1);
    let (log, emit) = recorder();
    let never = AtomicBool::new(false);
    let r = watch(remote, &dir, &watch_jobs(&specs, &ids), &emit, &never, None).await;
    assert!(r.all_done(), "{r:?}");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    for n in &names {
        assert_eq!(output_of(&log, n, Stream::Stdout), format!("{n}\n"));
    }
    let st = remote.stats();
    assert_eq!(st.connections, connections(via, 1), "{st:?}");
    eprintln!(
        "20-job chain: submit {submit_cmds} command(s) in {submit_time:?}; total {st:?}; wall {:?}",
        t0.elapsed()
    );
}

fn master_pid(ctl: &Path) -> u32 {
    let out = Command::new("ssh")
        .arg("-S")
        .arg(ctl)
        .args(["-O", "check", "slurmbook-test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let pid = text
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok());
    pid.unwrap_or_else(|| panic!("no master pid in {text:?}"))
}

#[tokio::test]
async fn slurm_dead_master_is_replaced_for_commands_scripts_and_uploads() {
    let _g = SERIAL.lock().await;
    let c = cluster();
    let remote = Remote::new(target(&c));
    remote.connect().await.unwrap();
    let cache = remote
        .expand_dir("$SCRATCH/slurmbook-tests/cache")
        .await
        .unwrap();

    // SIGKILL: the control socket stays behind, connecting to it is refused.
    let ctl = remote.control_socket().await.unwrap();
    let pid = master_pid(&ctl);
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = remote.run(&["echo", "after kill"]).await.unwrap();
    assert_eq!(out.stdout_text(), "after kill\n");
    assert_eq!(remote.stats().reconnects, 1);

    // `ssh -O exit`: the master goes away cleanly; a script (not assumed
    // idempotent) is still run, since it had certainly not started.
    let ctl = remote.control_socket().await.unwrap();
    let st = Command::new("ssh")
        .arg("-S")
        .arg(&ctl)
        .args(["-O", "exit", "slurmbook-test"])
        .output()
        .unwrap();
    assert!(st.status.success());
    let out = remote.run_script("echo script ran\n").await.unwrap();
    assert_eq!(out.stdout_text(), "script ran\n");
    assert_eq!(remote.stats().reconnects, 2);

    let ctl = remote.control_socket().await.unwrap();
    let pid = master_pid(&ctl);
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let bytes = unique("after-kill").into_bytes();
    let (_, sent) = remote.upload_cas(&cache, &bytes, false).await.unwrap();
    assert_eq!(sent, bytes.len() as u64);
    let st = remote.stats();
    assert_eq!((st.connections, st.reconnects), (4, 3), "{st:?}");
}
