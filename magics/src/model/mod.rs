//! The types every other module shares, with no dependency on the rest of
//! the crate (model modules import only each other): cells and asset specs,
//! targets, Slurm resources, per-asset options, run ids and statuses,
//! identifiers and digests. Everything here is plain data and its
//! validation; no I/O.

pub mod auto;
pub mod cell;
pub mod digest;
pub mod ident;
pub mod lang;
pub mod options;
pub mod partition;
pub mod resources;
pub mod run;
pub mod target;
pub mod usage;
pub mod window;

pub use auto::AutoCondition;
pub use cell::{AssetSpec, CellRef, CheckSpec};
pub use digest::digest_of;
pub use ident::{is_identifier, is_keyword, is_simple_name};
pub use lang::Lang;
pub use options::spec::{OptionInfo, Options};
pub use options::AssetOptions;
pub use partition::{PartitionError, PartitionSpec, PerTask};
pub use resources::{Gpus, MemSize, MemUnit, SlurmTime};
pub use run::{MaterializationId, MaterializationStatus, RunId, RunStatus};
pub use target::{JobGrouping, Target};
pub use usage::{Hint, Requested, Usage, UsageSource};
pub use window::{CronSchedule, Window};
