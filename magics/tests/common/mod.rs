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
