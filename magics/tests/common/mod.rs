//! What the loopback-cluster tests share: the cluster's facts and unique names.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// `cluster.json` of the running test cluster (`$SLURMBOOK_CLUSTER_DIR`,
/// else /tmp/slurmbook-cluster). Panics when it is not up: these tests never skip.
pub fn cluster_facts() -> serde_json::Value {
    let dir =
        std::env::var("SLURMBOOK_CLUSTER_DIR").unwrap_or_else(|_| "/tmp/slurmbook-cluster".into());
    let path = Path::new(&dir).join("cluster.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the test cluster is not up ({}: {e}). Start it with `python3 tests/cluster/cluster.py up` \
             (see tests/cluster/README.md); these tests never skip.",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("cluster.json is JSON")
}

/// `name-<pid>-<nanoseconds>`: a name no other test run uses.
pub fn unique(name: &str) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{t}", std::process::id())
}

/// The two ways a cluster test reaches the loopback cluster: SSH (a laptop)
/// or local processes (a kernel on the submit host, a profile without `host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Via {
    Ssh,
    Local,
}

/// [`SshTarget`] of the cluster (its ssh config and host alias).
#[allow(dead_code)]
pub fn ssh_target() -> slurmbook_magics::transport::SshTarget {
    let v = cluster_facts();
    slurmbook_magics::transport::SshTarget {
        host: v["host"].as_str().expect("host").into(),
        config_file: Some(v["ssh_config"].as_str().expect("ssh_config").into()),
        ..Default::default()
    }
}

/// A [`LocalHost`](slurmbook_magics::transport::LocalHost) for the cluster:
/// this process gets the cluster's `remote_env` (`SLURM_CONF`, `SCRATCH`),
/// what a submit host's users have, before the transport is made. The
/// tests that call it hold their file's `SERIAL` lock, and every value set
/// is the same, so no thread reads the environment while it changes.
#[allow(dead_code)]
pub fn local_host() -> slurmbook_magics::transport::LocalHost {
    let v = cluster_facts();
    let env = v["remote_env"]
        .as_object()
        .expect("cluster.json has remote_env");
    for (key, value) in env {
        let value = value.as_str().expect("remote_env values are strings");
        if std::env::var(key).ok().as_deref() != Some(value) {
            std::env::set_var(key, value);
        }
    }
    slurmbook_magics::transport::LocalHost::new("cluster")
}

/// The transport of `via`.
#[allow(dead_code)]
pub fn transport(via: Via) -> Box<dyn slurmbook_magics::transport::Transport> {
    match via {
        Via::Ssh => Box::new(slurmbook_magics::transport::Remote::new(ssh_target())),
        Via::Local => Box::new(local_host()),
    }
}

/// `over_both_transports!(a, b)`: for each `async fn a(via: Via)` of the
/// file, the tests `a::ssh` and `a::local` (one body, two transports).
macro_rules! over_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn ssh() {
                super::$name(super::common::Via::Ssh).await
            }
            #[tokio::test]
            async fn local() {
                super::$name(super::common::Via::Local).await
            }
        }
    )*};
}

/// A job running `sh -c CMD` after the assets `after`, asking for one CPU,
/// 100 MB and 5 minutes (what the loopback cluster's tests submit).
#[allow(dead_code)]
pub fn sh_job(asset: &str, after: &[&str], cmd: &str) -> slurmbook_magics::exec::slurm::JobSpec {
    slurmbook_magics::exec::slurm::JobSpec {
        asset: asset.into(),
        sbatch: slurmbook_magics::plan::SbatchRequest {
            time: Some("00:05:00".parse().unwrap()),
            cpus_per_task: Some(1),
            mem: Some("100M".parse().unwrap()),
            ..Default::default()
        },
        command: vec!["sh".into(), "-c".into(), cmd.into()],
        after: after.iter().map(|s| s.to_string()).collect(),
        env: None,
    }
}
