//! slurmbook's Jupyter kernel: the wire protocol, the channels, the evcxr
//! engine and the command line. The asset model lives in `slurmbook-magics`.

pub mod channels;
pub mod cli;
pub mod engine;
pub mod env_cli;
pub mod handlers;
pub mod headless;
pub mod install;
pub mod parent;
pub mod protocol;
pub mod render;
pub mod server;
pub mod session;
pub mod status_cli;
pub mod terminal;
pub mod tick_cli;
pub mod tooling_cli;
pub mod usage_cli;
pub mod wire;
