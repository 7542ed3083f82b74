//! slurmbook's asset model, with no Jupyter types: cell and magic syntax,
//! notebook reading, dependency inference, the asset graph and selections,
//! code versions and staleness, the state database and the value store.
//!
//! The usual entry point is [`load_project`]: read + parse + infer + graph +
//! versions in one call; then [`Project::staleness`] against a [`StateDb`].

pub mod auto;
pub mod bundle;
pub mod cache;
pub mod config;
pub(crate) mod decl;
pub(crate) mod derived;
pub mod draw;
pub mod env_lock;
pub mod events;
pub mod exec;
pub mod graph;
pub mod infer;
pub mod items;
pub mod model;
pub(crate) mod names;
pub mod notebook;
pub mod partitions;
pub mod plan;
pub mod policy;
pub mod private_fs;
pub mod project;
pub mod run;
pub mod state;
pub mod store;
pub mod syntax;
pub mod tooling;
pub mod transport;
pub mod usage;
pub mod version;
pub mod views;
pub(crate) mod workers;

pub use cache::PlanCache;
pub use graph::{AssetGraph, AssetNode, EdgeKind, GraphError, SelectionError};
pub use infer::{analyze_body, free_identifiers, BodyAnalysis, InferError};
pub use items::{DepLine, Item, ItemKind, ItemsError};
pub use model::{
    AssetOptions, AssetSpec, CellRef, CheckSpec, Gpus, JobGrouping, MaterializationStatus, MemSize,
    RunId, RunStatus, SlurmTime, Target,
};
pub use notebook::{Notebook, NotebookContents, NotebookError, SessionOverrides};
pub use project::{load_project, load_project_cached, Project, ProjectError};
pub use state::{
    AssetRow, Materialization, ResultRecord, Run, RunJob, StartRecord, StateDb, StateError,
};
pub use store::{StoreError, ValueStore};
pub use syntax::magic::{magic_names, LineMagic, MagicError, MaterializeArgs};
pub use syntax::selection::{parse_selection, Layers, Selection, SelectionParseError};
pub use syntax::{parse_cell, Cell, CellError, Segment};
pub use version::{AssetVersion, Freshness, Reason, Versions};
