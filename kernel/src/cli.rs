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
    /// Evaluate every automation condition (`--auto`) once and materialize
    /// what they select in one run (exit 0 ran or nothing to do, 1 a
    /// materialization failed, 2 bad input). Made for cron and scrontab.
    Tick {
        /// The notebook (.ipynb).
        notebook: PathBuf,
        /// Profile from slurmbook.toml.
        #[arg(long)]
        profile: Option<String>,
        /// Show what the conditions select; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Evaluate at this time (RFC 3339) instead of now.
        #[arg(long, hide = true)]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Ticks on the cluster with the laptop closed: scrontab (or a job
    /// resubmitting itself) runs `slurmbook tick` there.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
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
    /// List a notebook's runs; with a run id, what each asset used (wall
    /// time, queue wait, CPU, peak memory, hints) and the run's timeline.
    Runs {
        notebook: PathBuf,
        /// The run's id.
        run: Option<i64>,
        /// Print the timeline as SVG instead.
        #[arg(long, requires = "run")]
        svg: bool,
    },
    /// An asset's last materializations: version, code change, job,
    /// duration, peak memory, metadata.
    History {
        notebook: PathBuf,
        /// The asset.
        name: String,
        /// Print the plots (duration, peak memory, numeric metadata) as SVG.
        #[arg(long)]
        svg: bool,
    },
    /// Print the whole output of an asset's Slurm job (`%log NAME`), fetched
    /// from its run directory; a copy stays in .slurmbook/logs/.
    Log {
        notebook: PathBuf,
        /// The asset.
        name: String,
        /// The asset's job in this run (default: its latest materialization).
        #[arg(long)]
        run: Option<i64>,
        /// The job's stderr instead of its stdout.
        #[arg(long)]
        stderr: bool,
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
enum ScheduleCommand {
    /// Upload the notebook and slurmbook, and add a scrontab entry that ticks (idempotent).
    Install {
        notebook: PathBuf,
        /// The Slurm profile (slurmbook.toml) of the cluster.
        #[arg(long)]
        profile: String,
        /// Cadence: 1m, 5m, 15m, 30m, 1h, 2h, 6h, 12h, 1d.
        #[arg(long, default_value = "15m")]
        every: String,
        /// Where scrontab is disabled: a job that resubmits itself with --begin.
        #[arg(long)]
        fallback: bool,
    },
    /// The schedules on the cluster of a profile, and whether each is active.
    List {
        /// A notebook (its slurmbook.toml is used); the current directory's otherwise.
        notebook: Option<PathBuf>,
        #[arg(long)]
        profile: String,
    },
    /// Remove a notebook's scrontab entry (or fallback job); its state stays on the cluster.
    Remove {
        notebook: PathBuf,
        #[arg(long)]
        profile: String,
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
        Command::Tick {
            notebook,
            profile,
            dry_run,
            now,
        } => {
            init_cli_logging();
            crate::tick_cli::tick(notebook, profile, dry_run, now)
        }
        Command::Schedule { command } => {
            init_cli_logging();
            match command {
                ScheduleCommand::Install {
                    notebook,
                    profile,
                    every,
                    fallback,
                } => crate::tick_cli::install(notebook, profile, every, fallback),
                ScheduleCommand::List { notebook, profile } => {
                    crate::tick_cli::list(notebook, profile)
                }
                ScheduleCommand::Remove { notebook, profile } => {
                    crate::tick_cli::remove(notebook, profile)
                }
            }
        }
        Command::Runs { notebook, run, svg } => {
            init_cli_logging();
            crate::usage_cli::runs(notebook, run, svg)
        }
        Command::History {
            notebook,
            name,
            svg,
        } => {
            init_cli_logging();
            crate::usage_cli::history(notebook, name, svg)
        }
        Command::Log {
            notebook,
            name,
            run,
            stderr,
        } => {
            init_cli_logging();
            crate::usage_cli::log(notebook, name, run, stderr)
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
