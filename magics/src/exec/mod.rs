//! Executors: run a [`crate::plan::Plan`] and report [`crate::events::Event`]s.
//! They know nothing of Jupyter.

pub mod cluster;
pub mod foreign;
pub mod job_env;
pub mod local;
pub mod remote_build;
pub mod session;
pub mod slurm;
