//! Python and bash assets in the kernel: run by the project's local
//! environment (`.pixi/envs/<env>`, else `pixi run`, else `python3` /
//! `bash` on PATH), upstream values read from the local value store, the
//! value written there. Output streams line by line as the asset's events.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use slurmbook_pack::PixiProject;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{out_dir_for, shell_value, PYTHON_RUNNER};
use crate::config::Settings;
use crate::events::{Emit, Event, Stream};
use crate::exec::job_env::env_name;
use crate::exec::slurm::protocol::{parse_bundle_line, BundleEvent, ProtocolLine, PROTOCOL_PREFIX};
use crate::model::{AssetSpec, Lang, Target};
use crate::project::Project;
use crate::state::StateDb;
use crate::store::ValueStore;

/// How the kernel starts an interpreter of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The program and the arguments before the runner's own.
    pub argv: Vec<String>,
    /// The environment's prefix (put first on PATH, as CONDA_PREFIX).
    pub prefix: Option<PathBuf>,
    /// What `%config` says about it.
    pub describe: String,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The interpreter of `lang` (`python` or `bash`) for environment `env` of
/// `pixi`: the project's installed environment `.pixi/envs/<env>`, else
/// `pixi run` when pixi is installed, else the program on PATH.
pub fn interpreter(pixi: Option<&PixiProject>, env: Option<&str>, lang: Lang) -> Interpreter {
    let (tool, fallback) = match lang {
        Lang::Bash => ("bash", "bash"),
        _ => ("python", "python3"),
    };
    if let (Some(p), Some(env)) = (pixi, env) {
        let prefix = p.root.join(".pixi").join("envs").join(env);
        let python = prefix.join("bin").join("python");
        let installed = if lang == Lang::Bash {
            prefix.join("conda-meta").is_dir()
        } else {
            python.is_file()
        };
        if installed {
            let program = match lang {
                Lang::Bash => "bash".to_string(),
                _ => python.display().to_string(),
            };
            return Interpreter {
                argv: vec![program],
                describe: format!(
                    "{tool} of {} (the project's environment `{env}`)",
                    prefix.display()
                ),
                prefix: Some(prefix),
            };
        }
        if let Some(pixi_exe) = on_path("pixi") {
            return Interpreter {
                argv: vec![
                    pixi_exe.display().to_string(),
                    "run".into(),
                    "--manifest-path".into(),
                    p.manifest.display().to_string(),
                    "--environment".into(),
                    env.to_string(),
                    tool.into(),
                ],
                prefix: None,
                describe: format!(
                    "`pixi run --environment {env} {tool}` ({} is not installed yet)",
                    prefix.display()
                ),
            };
        }
    }
    let why = match (pixi, env) {
        (None, _) => "no pixi project",
        (Some(_), None) => "env = \"none\"",
        (Some(_), Some(_)) => "the project's environment is not installed and pixi is not on PATH",
    };
    Interpreter {
        argv: vec![fallback.to_string()],
        prefix: None,
        describe: format!("`{fallback}` on PATH ({why})"),
    }
}

/// The `%config` lines saying how the kernel runs Python and bash assets.
pub fn describe(dir: &Path, settings: &Settings) -> String {
    let pixi = PixiProject::find(dir);
    let env = env_name(settings, None);
    format!(
        "kernel python = {}\nkernel bash   = {}\n",
        interpreter(pixi.as_ref(), env.as_deref(), Lang::Python).describe,
        interpreter(pixi.as_ref(), env.as_deref(), Lang::Bash).describe
    )
}

/// Everything a Python or bash asset needs to run in the kernel.
pub struct LocalForeign<'a> {
    pub project: &'a Project,
    pub settings: &'a Settings,
    pub db: &'a StateDb,
    pub store: &'a ValueStore,
    pub emit: &'a dyn Emit,
    pub cancel: &'a AtomicBool,
}

/// Why a Python or bash asset failed: one line, and the detail (its
/// traceback or the end of its stderr).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignFailure {
    pub message: String,
    pub detail: String,
}

fn failure(message: impl Into<String>) -> ForeignFailure {
    let message = message.into();
    ForeignFailure {
        detail: message.clone(),
        message,
    }
}

/// The stored JSON value of each upstream `spec` reads (its data and
/// `--deps` upstreams alike): the newest successful materialization's file.
fn upstream_files(
    ctx: &LocalForeign<'_>,
    spec: &AssetSpec,
) -> Result<Vec<(String, PathBuf)>, ForeignFailure> {
    let mut out = Vec::new();
    for (up, _) in ctx.project.graph.dependencies(&spec.name) {
        let last = ctx
            .db
            .last_success(up)
            .map_err(|e| failure(e.to_string()))?
            .ok_or_else(|| failure(format!("upstream `{up}` has no value")))?;
        let path = last.value_path.as_deref().map(PathBuf::from);
        match path {
            Some(p) if last.target == Target::Local && p.is_file() => out.push((up.to_string(), p)),
            Some(p) if last.target == Target::Slurm => {
                return Err(failure(format!(
                    "upstream `{up}`'s value is on the cluster ({}): `%load {up}` does not bring it here as a file; materialize `{up}` in the kernel too, or run `{}` with --target slurm",
                    p.display(),
                    spec.name
                )))
            }
            Some(p) => {
                return Err(failure(format!(
                    "upstream `{up}`'s stored value {} is missing",
                    p.display()
                )))
            }
            None => {
                return Err(failure(format!(
                    "upstream `{up}`'s value was not stored as JSON (a Rust value crosses to {} as JSON: its type must implement serde's Serialize)",
                    spec.lang()
                )))
            }
        }
    }
    Ok(out)
}

fn io_failure(what: &str, path: &Path, e: std::io::Error) -> ForeignFailure {
    failure(format!("{what} {}: {e}", path.display()))
}

/// Runs a Python or bash asset in the kernel; returns its value's file in
/// the store and the metadata it reported.
pub async fn run(
    ctx: &LocalForeign<'_>,
    spec: &AssetSpec,
    version: &str,
) -> Result<(PathBuf, serde_json::Value), ForeignFailure> {
    let name = spec.name.as_str();
    let lang = spec.lang();
    let store = ctx.store;
    std::fs::create_dir_all(store.dir()).map_err(|e| io_failure("creating", store.dir(), e))?;
    let inputs = upstream_files(ctx, spec)?;
    let value = store
        .path_for(name, version, "json")
        .map_err(|e| failure(e.to_string()))?;
    let ext = if lang == Lang::Bash { "sh" } else { "py" };
    let code = store.dir().join(format!(".{name}-{version}.{ext}"));
    std::fs::write(&code, &spec.body).map_err(|e| io_failure("writing", &code, e))?;
    let pixi = crate::exec::job_env::pixi_project(ctx.project);
    let env = env_name(ctx.settings, spec.options.env.as_deref());
    let interp = interpreter(pixi.as_ref(), env.as_deref(), lang);
    let mut argv = interp.argv.clone();
    let mut command_env: Vec<(String, String)> = Vec::new();
    let out_dir = PathBuf::from(out_dir_for(&value.display().to_string()));
    match lang {
        Lang::Bash => {
            if out_dir.exists() {
                std::fs::remove_dir_all(&out_dir)
                    .map_err(|e| io_failure("removing", &out_dir, e))?;
            }
            std::fs::create_dir_all(&out_dir).map_err(|e| io_failure("creating", &out_dir, e))?;
            argv.extend(["-euo".into(), "pipefail".into(), code.display().to_string()]);
            for (up, path) in &inputs {
                let bytes = std::fs::read(path).map_err(|e| io_failure("reading", path, e))?;
                command_env.push((up.clone(), shell_value(&bytes)));
            }
            command_env.push(("OUT".into(), out_dir.display().to_string()));
        }
        _ => {
            let runner = store.dir().join(".slurmbook-runner.py");
            if std::fs::read_to_string(&runner).ok().as_deref() != Some(PYTHON_RUNNER) {
                std::fs::write(&runner, PYTHON_RUNNER)
                    .map_err(|e| io_failure("writing", &runner, e))?;
            }
            argv.extend([
                runner.display().to_string(),
                name.to_string(),
                code.display().to_string(),
                value.display().to_string(),
            ]);
            argv.extend(
                inputs
                    .iter()
                    .map(|(up, path)| format!("{up}={}", path.display())),
            );
        }
    }
    let result = spawn(ctx, name, &argv, &interp, &command_env).await;
    let _ = std::fs::remove_file(&code);
    let metadata = result?;
    if lang == Lang::Bash {
        let json = serde_json::to_vec(&out_dir.display().to_string()).expect("a path is JSON");
        store
            .write_bytes(name, version, "json", &json)
            .map_err(|e| failure(e.to_string()))?;
    }
    if !value.is_file() {
        return Err(failure(format!("{lang} did not write the value of {name}")));
    }
    Ok((value, metadata))
}

/// Starts the interpreter, streams its output as events of `asset`, and
/// waits (killing it when the run is cancelled).
async fn spawn(
    ctx: &LocalForeign<'_>,
    asset: &str,
    argv: &[String],
    interp: &Interpreter,
    vars: &[(String, String)],
) -> Result<serde_json::Value, ForeignFailure> {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    if let Some(prefix) = &interp.prefix {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![prefix.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            command.env("PATH", joined);
        }
        command.env("CONDA_PREFIX", prefix);
    }
    for (k, v) in vars {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .map_err(|e| failure(format!("starting `{}`: {e}", argv[0])))?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let (mut out_open, mut err_open) = (true, true);
    let mut metadata = serde_json::json!({});
    let mut reported: Option<String> = None;
    let mut tail: Vec<String> = Vec::new();
    let emit = |stream, text: String| {
        ctx.emit.emit(Event::Output {
            asset: asset.to_string(),
            stream,
            text: text + "\n",
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while out_open || err_open {
        tokio::select! {
            line = stdout.next_line(), if out_open => match line {
                Ok(Some(line)) => match line.as_bytes().strip_prefix(PROTOCOL_PREFIX) {
                    Some(json) => match parse_bundle_line(&String::from_utf8_lossy(json)) {
                        ProtocolLine::Event(BundleEvent::Metadata { metadata: m }) => {
                            if let (Some(all), Some(new)) = (metadata.as_object_mut(), m.as_object()) {
                                all.extend(new.clone());
                            }
                            ctx.emit.emit(Event::Metadata { asset: asset.to_string(), metadata: m });
                        }
                        ProtocolLine::Event(BundleEvent::Failed { error }) => reported = Some(error),
                        _ => emit(Stream::Stdout, line),
                    },
                    None => emit(Stream::Stdout, line),
                },
                _ => out_open = false,
            },
            line = stderr.next_line(), if err_open => match line {
                Ok(Some(line)) => {
                    tail.push(line.clone());
                    if tail.len() > 40 {
                        tail.remove(0);
                    }
                    emit(Stream::Stderr, line);
                }
                _ => err_open = false,
            },
            _ = tick.tick() => {
                if ctx.cancel.load(Ordering::SeqCst) {
                    let _ = child.kill().await;
                }
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| failure(format!("waiting for `{}`: {e}", argv[0])))?;
    if status.success() {
        return Ok(metadata);
    }
    let code = status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
    let message = reported.unwrap_or_else(|| {
        tail.last()
            .cloned()
            .unwrap_or_else(|| format!("exited with {code}"))
    });
    Err(ForeignFailure {
        message,
        detail: tail.join("\n"),
    })
}
