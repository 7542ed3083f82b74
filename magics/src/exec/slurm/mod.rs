//! The Slurm executor core: SSH transport, submission of a whole subgraph
//! in one round trip, and following the run (output and states).
//!
//! Free of Jupyter types: progress is reported as [`crate::events::Event`]s.
//!
//! ```text
//! let remote = Remote::new(SshTarget::new("login.hpc.example").with_env());
//! let run_dir = remote.expand_dir("$SCRATCH/slurmbook/runs/42").await?;
//! let (bin, _sent) = remote.upload_cas(&cache_dir, &binary, true).await?;
//! let ids = submit_all(&remote, &run_dir, "42", &specs).await?;
//! let result = watch_run(WatchRun { remote: &remote, run_dir: &run_dir,
//!     jobs: &watch_jobs(&specs, &ids), emit, cancel, db: Some((db, run_id)) }).await?;
//! ```

pub mod ssh;
pub mod stream;
pub mod submit;
pub mod watch;

pub use ssh::{
    command_line, quote, Remote, RemoteOutput, RemoteStats, SshError, SshTarget, SSH_CONFIG_ENV,
};
pub use submit::{
    check_sbatch_option, job_script, submit_all, submit_script, JobSpec, SubmitError,
    SBATCH_OPTIONS,
};
pub use watch::{
    cancel, watch_jobs, watch_run, JobOutcome, SlurmJobsResult, WatchError, WatchJob, WatchRun,
};
