//! The Slurm executor core: submission of a whole subgraph in one round
//! trip, and following the run (output and states), over a
//! [`crate::transport::Transport`].
//!
//! Free of Jupyter types: progress is reported as events (the `events`
//! module's `Event`).
//!
//! * [`submit`]: [`submit_all`], the whole subgraph in one round trip;
//!   [`group`] and [`driver`]: several assets as `srun` steps of one
//!   allocation; [`task_bundle`]: several partitions per array task.
//! * [`jobs`]: [`WatchJob`], a submitted job as the watcher follows it.
//! * [`watch`]: [`watch_run`], one `tail -F` for all output plus one
//!   batched `squeue` per poll; it runs the parts below.
//! * [`follow`]: the tail over the transport; [`stream`]: splitting its
//!   output per file with exact byte offsets (how offsets map to
//!   `tail -c +N` is documented there).
//! * [`tracker`]: the pure job-state tracker (Slurm states to asset
//!   states, poll back-off, cancel grace, vanished jobs).
//! * [`cli`]: the `squeue`/`scontrol`/`sacct`/`scancel` commands and their
//!   parsed output; [`cancel`], one `scancel`.
//! * [`protocol`]: the jobs' typed protocol events (`\u{1e}SLURMBOOK`
//!   lines, `.steps` lines).
//! * [`accounting`]: `sacct`'s usage lines (clusters with accounting);
//!   [`reasons`]: why a pending job waits, as the status table says it;
//!   [`node_fail`]: what Slurm says of the node a job lost (requeued or
//!   `NODE_FAIL`), and the marker where a requeued job's next attempt starts.
//! * [`run_log`]: [`RunLog`], where a watch's progress is recorded;
//!   [`gate`]: [`OutputGate`], output and its offsets as one step.
//!
//! The futures need a tokio runtime. `watch_run`'s future borrows the
//! [`RunLog`], which need not be `Sync` (a state database is not), so it is
//! not `Send`: run it with `block_on` or on a local set.
//!
//! ```text
//! let remote = Remote::new(SshTarget::new("login.hpc.example").with_env());
//! let run_dir = remote.expand_dir("$SCRATCH/slurmbook/runs/42").await?;
//! let (bin, _sent) = remote.upload_cas(&cache_dir, &binary, true).await?;
//! let ids = submit_all(&remote, &run_dir, "42", &specs).await?;
//! let gate = OutputGate::new();
//! let result = watch_run(WatchRun { transport: &remote, run_dir: &run_dir,
//!     jobs: &watch_jobs(&specs, &ids), emit, cancel, log: &NoRunLog, gate: &gate }).await?;
//! ```

pub mod accounting;
pub mod array;
pub mod cli;
pub mod driver;
pub mod follow;
pub mod gate;
pub mod jobs;
pub mod node_fail;
pub mod protocol;
pub mod reasons;
pub mod run_log;
pub mod stream;
pub mod submit;
pub mod task_bundle;
pub mod tracker;
pub mod watch;

pub use cli::cancel;
pub use driver::{submit_allocations, submit_allocations_with, AllocationExtras};
pub use gate::OutputGate;
pub use jobs::{ArrayTask, WatchJob};
pub use protocol::{steps_file, BundleEvent, JobUsage, StepLine, StepStatus};
pub use run_log::{NoRunLog, RunLog, RunLogError};
pub use submit::{
    env_prelude, job_script, submit_all, submit_script, submit_script_ext, submit_script_with,
    JobEnv, JobSpec, SubmitError, SubmitExtras,
};
pub use watch::{watch_jobs, watch_run, JobOutcome, SlurmJobsResult, WatchError, WatchRun};

// The transport, under the names it had when it lived here.
pub use crate::transport::{
    command_line, quote, CommandOutput as RemoteOutput, Remote, SshTarget,
    TransportError as SshError, TransportStats as RemoteStats, SSH_CONFIG_ENV,
};
