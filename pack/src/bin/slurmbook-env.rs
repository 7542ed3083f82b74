//! `slurmbook-env`: slurmbook's environment tool, run on cluster nodes.
//!
//! ```text
//! slurmbook-env unpack --archive ENV.tar --prefix REMOTE_DIR/envs/KEY
//! slurmbook-env pack [--dir DIR] [--environment default] --platform linux-64 --out-dir OUT
//! slurmbook-env key  [--dir DIR] [--environment default] --platform linux-64
//! ```
//!
//! `unpack` prints one line: `unpacked N packages into P` or
//! `already unpacked: P`, then exits 0; any failure exits 1 with the error
//! on stderr. Logs go to stderr (`RUST_LOG`, default `info`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slurmbook_pack::{pack, unpack, PixiProject, DEFAULT_ENVIRONMENT};

#[derive(Parser)]
#[command(
    name = "slurmbook-env",
    version,
    about = "Pack and unpack slurmbook environments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Unpack an environment archive into a prefix, once (a no-op when ready).
    Unpack {
        /// The archive made by `pack`.
        #[arg(long)]
        archive: PathBuf,
        /// The prefix, e.g. REMOTE_DIR/envs/KEY.
        #[arg(long)]
        prefix: PathBuf,
    },
    /// Pack an environment of the pixi project found from --dir upwards.
    Pack {
        /// Where to start looking for pixi.toml.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The pixi environment.
        #[arg(long, default_value = DEFAULT_ENVIRONMENT)]
        environment: String,
        /// The target platform, e.g. linux-64.
        #[arg(long)]
        platform: String,
        /// Where to write the archive.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Print the cache key of an environment.
    Key {
        /// Where to start looking for pixi.toml.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The pixi environment.
        #[arg(long, default_value = DEFAULT_ENVIRONMENT)]
        environment: String,
        /// The target platform, e.g. linux-64.
        #[arg(long)]
        platform: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse().command) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("slurmbook-env: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<String, String> {
    let project = |dir: &PathBuf| {
        PixiProject::find(dir).ok_or_else(|| format!("no pixi.toml in {} or above", dir.display()))
    };
    match command {
        Command::Unpack { archive, prefix } => {
            let report = unpack(&archive, &prefix).map_err(|e| e.to_string())?;
            Ok(if report.already {
                format!("already unpacked: {}", report.prefix.display())
            } else {
                format!(
                    "unpacked {} packages into {}",
                    report.packages,
                    report.prefix.display()
                )
            })
        }
        Command::Pack {
            dir,
            environment,
            platform,
            out_dir,
        } => {
            let report = pack(&project(&dir)?, &environment, &platform, &out_dir)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{} ({} bytes, {} packages, key {}, {:?}{})",
                report.archive.display(),
                report.bytes,
                report.packages,
                report.key,
                report.packed_with,
                if report.reused { ", reused" } else { "" }
            ))
        }
        Command::Key {
            dir,
            environment,
            platform,
        } => project(&dir)?
            .cache_key(&environment, &platform)
            .map_err(|e| e.to_string()),
    }
}
