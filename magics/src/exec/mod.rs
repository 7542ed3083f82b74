//! Executors: run a [`crate::plan::Plan`] and report [`crate::events::Event`]s.
//! They know nothing of Jupyter.

pub mod cluster;
pub mod job_env;
pub mod local;
pub mod prebuilt;
pub mod remote_build;
pub mod slurm;
