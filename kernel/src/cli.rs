//! The `slurmbook` command line: the kernel itself, kernelspec installation,
//! headless runs of notebooks, and their freshness status.

use crate::install::{self, Location};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "slurmbook",
    version,
    about = "A Jupyter kernel for Rust whose notebook cells are assets, run in the kernel or as Slurm jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the kernel (Jupyter starts this from kernel.json).
    Kernel {
        /// The connection file written by the Jupyter client.
        #[arg(long, short = 'f')]
        connection_file: PathBuf,
    },
    /// Install the kernelspec named `slurmbook`.
    Install {
        #[command(flatten)]
        location: Location,
    },
    /// Remove the kernelspec named `slurmbook`.
    Uninstall {
        #[command(flatten)]
        location: Location,
    },
    /// Materialize a notebook's assets without Jupyter (like `%materialize`).
    Run {
        /// The notebook (.ipynb).
        notebook: PathBuf,
        /// Which assets (selection syntax: `+name`, `name+`, `group:G`, `stale`, ...); all by default.
        #[arg(long, short = 's')]
        select: Option<String>,
        /// Also run assets that are fresh.
        #[arg(long)]
        force: bool,
        /// Profile from slurmbook.toml.
        #[arg(long)]
        profile: Option<String>,
        /// Where to run, overriding profiles and assets.
        #[arg(long, value_enum)]
        target: Option<TargetArg>,
        /// Show the plan only.
        #[arg(long)]
        dry_run: bool,
        /// Pack the jobs' pixi environment afresh and unpack it again on the cluster.
        #[arg(long)]
        repack: bool,
        /// Slurm jobs: grouped (compatible assets share an allocation; the
        /// default) or per-asset.
        #[arg(long, value_enum)]
        jobs: Option<JobsArg>,
    },
    /// The pixi environment a notebook's Slurm jobs run in.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Follow a Slurm run again (the newest in progress by default), from where its output stopped.
    Attach {
        /// The notebook (.ipynb) whose run it is.
        notebook: PathBuf,
        /// The run's id (see `%runs`).
        #[arg(long)]
        run: Option<i64>,
    },
    /// Cancel a Slurm run's jobs (the newest in progress by default).
    Cancel {
        notebook: PathBuf,
        #[arg(long)]
        run: Option<i64>,
    },
    /// Freshness policies: each asset's PASS, WARN, FAIL or UNKNOWN now;
    /// exits 3 when an asset FAILs (0 otherwise), and runs `notify` for new FAILs.
    Status {
        /// The notebook (.ipynb).
        notebook: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Format every Rust cell with rustfmt (magic lines untouched); with
    /// --check, change nothing and exit 1 when a cell would change.
    Fmt {
        /// The notebooks (.ipynb).
        #[arg(required = true)]
        notebooks: Vec<PathBuf>,
        #[arg(long)]
        check: bool,
    },
    /// Run clippy on the notebook's code, each diagnostic named by cell and line.
    Lint {
        notebook: PathBuf,
        /// Exit 1 when there is any warning.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Run the notebook's %%check cells (and #[test] functions) as `cargo test`.
    Test {
        notebook: PathBuf,
        /// Check the stored values of fresh assets instead of computing them.
        #[arg(long)]
        stored: bool,
    },
    /// Write the notebook as a standalone Cargo project (a library with one
    /// function per asset, a binary, the checks as tests).
    Export {
        notebook: PathBuf,
        /// The project's directory (files slurmbook did not generate are kept).
        #[arg(long)]
        to: PathBuf,
    },
    /// Print a notebook's asset graph.
    Graph {
        notebook: PathBuf,
        #[arg(long, short = 's')]
        select: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: crate::headless::GraphFormat,
    },
}

#[derive(Subcommand)]
enum EnvCommand {
    /// Project, environment, platform, cache key, local archive, and whether the cluster has it.
    Status {
        /// The notebook (.ipynb).
        notebook: PathBuf,
        /// Profile from slurmbook.toml.
        #[arg(long)]
        profile: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum JobsArg {
    Grouped,
    PerAsset,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TargetArg {
    Local,
    Slurm,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("slurmbook: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Kernel { connection_file } => {
            init_logging();
            // evcxr's warm-up takes seconds: it starts first, while the
            // process is still single-threaded (the work directory is set
            // through the environment), before the sockets are bound.
            crate::engine::workdir::prepare_process();
            let engine = crate::engine::Engine::start();
            let conn = crate::wire::ConnectionInfo::from_file(&connection_file)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::server::serve(conn, engine))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { location } => {
            let dir = install::install(&location)?;
            println!(
                "Installed kernelspec {} in {}",
                install::KERNEL_NAME,
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            notebook,
            select,
            force,
            profile,
            target,
            dry_run,
            repack,
            jobs,
        } => {
            init_cli_logging();
            // Before any thread starts; evcxr starts later, if assets run locally.
            crate::engine::workdir::prepare_process();
            crate::headless::run(crate::headless::RunOptions {
                notebook,
                select,
                force,
                profile,
                target: target.map(|t| match t {
                    TargetArg::Local => slurmbook_magics::Target::Local,
                    TargetArg::Slurm => slurmbook_magics::Target::Slurm,
                }),
                dry_run,
                repack,
                jobs: jobs.map(|j| match j {
                    JobsArg::Grouped => slurmbook_magics::JobGrouping::Grouped,
                    JobsArg::PerAsset => slurmbook_magics::JobGrouping::PerAsset,
                }),
            })
        }
        Command::Env {
            command: EnvCommand::Status { notebook, profile },
        } => {
            init_cli_logging();
            crate::env_cli::status(notebook, profile)
        }
        Command::Attach { notebook, run } => {
            init_cli_logging();
            crate::headless::attach(notebook, run, false)
        }
        Command::Cancel { notebook, run } => {
            init_cli_logging();
            crate::headless::attach(notebook, run, true)
        }
        Command::Graph {
            notebook,
            select,
            format,
        } => {
            init_cli_logging();
            crate::headless::graph(notebook, select, format)
        }
        Command::Status { notebook, json } => {
            init_cli_logging();
            crate::status_cli::status(notebook, json)
        }
        Command::Fmt { notebooks, check } => {
            init_cli_logging();
            crate::tooling_cli::fmt(notebooks, check)
        }
        Command::Lint {
            notebook,
            deny_warnings,
        } => {
            init_cli_logging();
            crate::tooling_cli::lint(notebook, deny_warnings)
        }
        Command::Test { notebook, stored } => {
            init_cli_logging();
            crate::tooling_cli::test(notebook, stored)
        }
        Command::Export { notebook, to } => {
            init_cli_logging();
            crate::tooling_cli::export(notebook, to)
        }
        Command::Uninstall { location } => {
            match install::uninstall(&location)? {
                Some(dir) => println!("Removed {}", dir.display()),
                None => println!(
                    "No kernelspec {} found in {}",
                    install::KERNEL_NAME,
                    location.kernels_dir()?.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Headless commands log warnings only, unless `SLURMBOOK_LOG` says otherwise.
fn init_cli_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("SLURMBOOK_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The kernel's log goes to stderr (Jupyter's server log) or to
/// `SLURMBOOK_LOG_FILE`; the level comes from `SLURMBOOK_LOG` (default info).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SLURMBOOK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,slurmbook_kernel=info,slurmbook_magics=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match std::env::var_os("SLURMBOOK_LOG_FILE").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    }) {
        Some(file) => builder.with_writer(std::sync::Mutex::new(file)).init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}
