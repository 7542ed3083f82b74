//! Executors: run a [`crate::plan::Plan`] and report [`crate::events::Event`]s.
//! They know nothing of Jupyter. [`usage`]: what the assets used, recorded
//! and reported by both.

pub mod cluster;
pub mod job_env;
pub mod local;
pub mod remote_build;
pub mod slurm;
pub mod usage;
