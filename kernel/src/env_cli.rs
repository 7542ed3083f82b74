//! `slurmbook env status NOTEBOOK [--profile P]`: the pixi environment a
//! notebook's Slurm jobs run in, its cache key, whether it is packed on this
//! machine and whether the cluster has it unpacked (over SSH, or on this
//! machine for a profile without `host`: `uname -sm` unless `platform` is
//! configured, then one `test -e`).

use anyhow::{Context, Result};
use slurmbook_magics::exec::cluster;
use slurmbook_magics::exec::job_env::{self, EnvStatus};
use slurmbook_magics::run::Workspace;

use std::path::PathBuf;
use std::process::ExitCode;

pub fn status(notebook: PathBuf, profile: Option<String>) -> Result<ExitCode> {
    let path = std::path::absolute(&notebook)?;
    anyhow::ensure!(path.is_file(), "no notebook at {}", path.display());
    let workspace = Workspace::for_notebook(path);
    let settings = workspace.settings(profile.as_deref())?;
    let dir = workspace.dir();
    // Nothing to ask the cluster when jobs do not use a packed environment.
    let local = EnvStatus::of(&dir, &settings, &cluster::local_platform());
    let Some(pixi) = local.pixi.as_ref().filter(|_| local.packed()) else {
        print!("{}", local.render());
        return Ok(ExitCode::SUCCESS);
    };
    println!("project:       {}", pixi.manifest.display());
    println!("environment:   {}", local.env.as_deref().unwrap_or("none"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let target = cluster::transport_target(&settings);
    let remote = target.open();
    let result = runtime.block_on(async {
        let platform = match settings.platform() {
            Some(p) => (p.to_string(), "configured"),
            None => {
                let out = remote.run(&["uname", "-sm"]).await?;
                let text = out.stdout_text();
                let mut parts = text.split_whitespace();
                let platform = cluster::platform_name(
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                (platform, "the cluster's")
            }
        };
        let status = EnvStatus::of(&dir, &settings, &platform.0);
        println!("platform:      {} ({})", platform.0, platform.1);
        let key = match &status.key {
            Ok(key) => key.clone(),
            Err(e) => {
                println!("cache key:     none: {e}");
                return Ok(false);
            }
        };
        println!("cache key:     {key}");
        match &status.local_archive {
            Some((path, size)) => {
                println!("local archive: {} ({size} bytes)", path.display())
            }
            None => println!("local archive: not packed on this machine"),
        }
        println!("transport:     {}", target.describe());
        let base = remote.expand_dir(settings.remote_dir()).await?;
        let prefix = job_env::remote_prefix(&base, &key);
        let ready = remote
            .run(&["test", "-e", &job_env::ready_marker(&prefix)])
            .await?
            .success();
        match ready {
            true => println!("cluster:       unpacked at {prefix}"),
            false => {
                println!("cluster:       not unpacked (the next Slurm run uploads it to {prefix})")
            }
        }
        anyhow::Ok(true)
    });
    runtime.block_on(remote.close());
    let ok = result.context("asking the cluster")?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
