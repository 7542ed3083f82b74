//! The schema: version 1 tables and the migrations to versions 2 to 6.

pub(super) const SCHEMA_V1: &str = "
CREATE TABLE assets (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    own_hash TEXT NOT NULL,
    cell_index INTEGER,
    cell_id TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    selection TEXT NOT NULL,
    target TEXT NOT NULL,
    profile TEXT,
    status TEXT NOT NULL
);
CREATE TABLE materializations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset TEXT NOT NULL,
    version TEXT NOT NULL,
    own_hash TEXT NOT NULL,
    upstream_versions TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    job_id TEXT,
    node TEXT,
    metadata TEXT NOT NULL DEFAULT 'null',
    value_path TEXT,
    error TEXT
);
CREATE INDEX materializations_by_asset ON materializations(asset, status, id);
CREATE INDEX materializations_by_run ON materializations(run_id, id);
CREATE TABLE run_jobs (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    asset TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    stdout_offset INTEGER NOT NULL DEFAULT 0,
    stderr_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, asset)
);
";

/// Version 2: how to follow a Slurm run again (`%attach`), as JSON.
pub(super) const SCHEMA_V2: &str = "ALTER TABLE runs ADD COLUMN remote TEXT;";

/// Version 3: each asset's last evaluated freshness policy state (for
/// `notify`). `IF NOT EXISTS`: safe to renumber when migrations merge.
pub(super) const SCHEMA_V3: &str = "CREATE TABLE IF NOT EXISTS policy_states (
    asset TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    materialization_id INTEGER,
    since TEXT NOT NULL,
    evaluated_at TEXT NOT NULL
);";

/// Version 4: resource usage and timeline of each materialization (one row
/// per materialization that reported any; typed columns, so tables and
/// hints can query them).
pub(super) const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS usage (
    materialization_id INTEGER PRIMARY KEY REFERENCES materializations(id),
    source TEXT,
    allocation TEXT,
    submitted_at TEXT,
    job_started_at TEXT,
    started_at TEXT,
    ended_at TEXT,
    queue_ms INTEGER,
    wall_ms INTEGER,
    cpu_ms INTEGER,
    max_rss_bytes INTEGER,
    cpus INTEGER,
    nodes INTEGER,
    gpus INTEGER,
    gpu_util_pct REAL,
    gpu_mem_bytes INTEGER,
    req_cpus INTEGER,
    req_mem_bytes INTEGER,
    req_time_s INTEGER,
    req_gpus INTEGER,
    req_nodes INTEGER
);
";

/// Version 5: automation (`slurmbook tick`): what triggered a run, and each
/// asset a tick requested (its claim: a second tick sees it in progress),
/// and the runs imported from a schedule's state on the cluster.
/// `IF NOT EXISTS` throughout, so the migration may be renumbered when
/// migrations of other branches merge.
pub(super) const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS run_triggers (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    trigger TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS auto_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    asset TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS auto_requests_by_asset ON auto_requests(asset, requested_at);
CREATE TABLE IF NOT EXISTS imported_runs (
    source TEXT NOT NULL,
    remote_id INTEGER NOT NULL,
    local_id INTEGER NOT NULL REFERENCES runs(id),
    PRIMARY KEY (source, remote_id)
);
";

/// Version 6: partitioned assets (sweeps). A partition's attempt is a row
/// of `materializations` with its key in `partition` (and its partition
/// version in `version`); `NULL` is an asset's own row (not partitioned,
/// or the whole partitioned asset). `IF NOT EXISTS` for the index: the
/// migration may be renumbered when migrations of other branches merge.
pub(super) const SCHEMA_V6: &str = "
ALTER TABLE materializations ADD COLUMN partition TEXT;
CREATE INDEX IF NOT EXISTS materializations_by_partition ON materializations(asset, partition, id);
";
