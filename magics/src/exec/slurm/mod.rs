//! The Slurm executor core: SSH transport, submission of a whole subgraph
//! in one round trip, and following the run (output and states).
//!
//! Free of Jupyter types: progress is reported as [`crate::events::Event`]s.
//!
//! * [`ssh`]: [`Remote`], one lazily opened, multiplexed OpenSSH master per
//!   host (strict host key checking), quoted argv commands, scripts on
//!   stdin, content-addressed uploads, `$SCRATCH`/`$HOME`/`~` expansion,
//!   reconnect-once after the master died, counters ([`Remote::stats`]).
//! * [`submit`]: [`submit_all`], the whole subgraph in one round trip.
//! * [`watch`]: [`watch_run`], one `tail -F` for all output plus one batched
//!   `squeue` per poll; [`cancel`], one `scancel`.
//! * [`stream`]: splitting tail's output per file with exact byte offsets
//!   (how offsets map to `tail -c +N` is documented there).
//!
//! The futures need a tokio runtime (the `openssh` crate uses it). With a
//! state db, `watch_run`'s future borrows a `StateDb` (not `Sync`), so it
//! is not `Send`: run it with `block_on` or on a local set.
//!
//! ```text
//! let remote = Remote::new(SshTarget::new("login.hpc.example").with_env());
//! let run_dir = remote.expand_dir("$SCRATCH/slurmbook/runs/42").await?;
//! let (bin, _sent) = remote.upload_cas(&cache_dir, &binary, true).await?;
//! let ids = submit_all(&remote, &run_dir, "42", &specs).await?;
//! let result = watch_run(WatchRun { remote: &remote, run_dir: &run_dir,
//!     jobs: &watch_jobs(&specs, &ids), emit, cancel, db: Some((db, run_id)) }).await?;
//! ```

pub mod driver;
pub mod ssh;
pub mod stream;
pub mod submit;
pub mod watch;

pub use driver::{steps_file, submit_allocations, StepLine, StepStatus};
pub use ssh::{
    command_line, quote, Remote, RemoteOutput, RemoteStats, SshError, SshTarget, SSH_CONFIG_ENV,
};
pub use submit::{
    env_prelude, job_script, submit_all, submit_script, submit_script_with, JobEnv, JobSpec,
    SubmitError,
};
pub use watch::{
    cancel, freeze_output, watch_jobs, watch_run, JobOutcome, SlurmJobsResult, WatchError,
    WatchJob, WatchRun,
};
