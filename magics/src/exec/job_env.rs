//! The environment Slurm jobs run in: the notebook project's pixi
//! environment, packed for the cluster's platform ([`slurmbook_pack`]),
//! uploaded content-addressed with the `slurmbook-env` tool and unpacked over
//! SSH before submission (each job re-runs the idempotent unpack and
//! activates it: see [`crate::exec::slurm::JobEnv`]).
//! Without a pixi project (or with `env = "none"`) jobs run in the
//! cluster's own environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use slurmbook_pack::{PackError, PixiProject, DEFAULT_ENVIRONMENT, READY_MARKER};

use crate::config::Settings;
use crate::exec::slurm::JobEnv;
use crate::project::Project;
use crate::transport::{Transport, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("packing the pixi environment `{env}` for {platform}: {source}")]
    Pack {
        env: String,
        platform: String,
        source: Box<PackError>,
    },
    #[error("the environment tool `slurmbook-env` was not found beside {beside} nor on PATH; build it (cargo build -p slurmbook-pack) or set env = \"none\"")]
    NoTool { beside: String },
    #[error("the environment tool is built for {local}, the cluster runs {remote}: install a slurmbook-env built for {remote} as `slurmbook-env-{remote}` beside slurmbook or on PATH, or set env = \"none\"")]
    ToolPlatform { local: String, remote: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unpacking the environment `{env}` into {prefix} on the cluster failed: {detail}")]
    Unpack {
        env: String,
        prefix: String,
        detail: String,
    },
    #[error(transparent)]
    Ssh(#[from] TransportError),
}

/// One environment made ready for the run's jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEnv {
    pub name: String,
    pub key: String,
    pub job_env: JobEnv,
    /// Whether the cluster had it unpacked already (nothing packed or sent).
    pub cached: bool,
    /// Bytes sent for it (archive and tool; 0 when cached).
    pub bytes_sent: u64,
}

/// The notebook project's pixi project, if any.
pub fn pixi_project(project: &Project) -> Option<PixiProject> {
    let dir = project.notebook_path.as_deref()?.parent()?;
    PixiProject::find(dir)
}

/// The environment name an asset's job runs in (`None`: the cluster's own).
pub fn env_name(settings: &Settings, asset_env: Option<&str>) -> Option<String> {
    let name = asset_env.or(settings.env()).unwrap_or(DEFAULT_ENVIRONMENT);
    (name != "none").then(|| name.to_string())
}

/// Where the environment with cache key `key` is unpacked on the cluster:
/// `<remote_dir>/envs/<key>`.
pub fn remote_prefix(base: &str, key: &str) -> String {
    format!("{base}/envs/{key}")
}

/// The marker of a completely unpacked prefix.
pub fn ready_marker(prefix: &str) -> String {
    format!("{prefix}/{READY_MARKER}")
}

/// Where environments are packed on this machine (archives
/// `slurmbook-env-<key>.tar`, kept for the next run).
pub fn local_archive_dir() -> PathBuf {
    crate::bundle::build_root().join("envs")
}

/// The environment jobs of a notebook in `dir` run in, as far as it is
/// known without the cluster (for `%config` and `slurmbook env status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvStatus {
    /// The pixi project found from `dir` upwards.
    pub pixi: Option<PixiProject>,
    /// The environment name (`None`: `env = "none"`).
    pub env: Option<String>,
    /// The platform the key is for.
    pub platform: String,
    /// The cache key, or why there is none (e.g. no lock file).
    pub key: Result<String, String>,
    /// The archive packed on this machine for the key, and its size.
    pub local_archive: Option<(PathBuf, u64)>,
}

impl EnvStatus {
    /// Computed locally: finds the pixi project and hashes its lock.
    pub fn of(dir: &Path, settings: &Settings, platform: &str) -> EnvStatus {
        let pixi = PixiProject::find(dir);
        let env = env_name(settings, None);
        let key = match (&pixi, &env) {
            (Some(p), Some(e)) => p.cache_key(e, platform).map_err(|e| e.to_string()),
            (None, _) => Err("no pixi project".into()),
            (_, None) => Err("env = \"none\"".into()),
        };
        let local_archive = key.as_ref().ok().and_then(|k| {
            let path = local_archive_dir().join(format!("slurmbook-env-{k}.tar"));
            let size = std::fs::metadata(&path).ok()?.len();
            Some((path, size))
        });
        EnvStatus {
            pixi,
            env,
            platform: platform.to_string(),
            key,
            local_archive,
        }
    }

    /// Whether jobs run in a packed environment at all.
    pub fn packed(&self) -> bool {
        self.pixi.is_some() && self.env.is_some()
    }

    /// One or two lines for `%config`.
    pub fn render(&self) -> String {
        let (pixi, env) = match (&self.pixi, &self.env) {
            (None, _) => {
                return "jobs env   = no pixi project: jobs run in the cluster's own environment\n"
                    .into()
            }
            (Some(p), None) => {
                return format!(
                    "jobs env   = none (env = \"none\"): jobs run in the cluster's own environment, not {}\n",
                    p.manifest.display()
                )
            }
            (Some(p), Some(e)) => (p, e),
        };
        let mut out = format!(
            "jobs env   = pixi environment `{env}` of {} for {}\n",
            pixi.manifest.display(),
            self.platform
        );
        match (&self.key, &self.local_archive) {
            (Ok(key), Some((_, size))) => out.push_str(&format!(
                "env key    = {key} (packed locally, {size} bytes)\n"
            )),
            (Ok(key), None) => out.push_str(&format!(
                "env key    = {key} (not packed locally yet: the next Slurm run packs it)\n"
            )),
            (Err(e), _) => out.push_str(&format!("env key    = none: {e}\n")),
        }
        out
    }
}

/// Everything [`prepare`] needs.
pub struct EnvRequest<'a> {
    pub pixi: &'a PixiProject,
    /// Environment names the selected assets use.
    pub names: Vec<String>,
    /// The cluster's conda platform (`linux-64`, ...).
    pub platform: &'a str,
    /// This machine's platform.
    pub local_platform: &'a str,
    /// The expanded `remote_dir`.
    pub base: &'a str,
    /// Where archives are made locally.
    pub out_dir: &'a Path,
    pub repack: bool,
}

/// Pack (unless the cluster has it) and upload each environment; returns
/// them by name. Nothing is submitted if one fails.
pub async fn prepare(
    remote: &dyn Transport,
    req: EnvRequest<'_>,
) -> Result<BTreeMap<String, PreparedEnv>, EnvError> {
    let mut out = BTreeMap::new();
    let mut tool: Option<(String, u64)> = None;
    for name in req.names {
        let pack_error = |source| EnvError::Pack {
            env: name.clone(),
            platform: req.platform.to_string(),
            source: Box::new(source),
        };
        let key = req
            .pixi
            .cache_key(&name, req.platform)
            .map_err(pack_error)?;
        let prefix = remote_prefix(req.base, &key);
        if req.repack {
            // Packed and unpacked afresh: the old prefix goes (jobs still
            // using it keep their open files), the local archive too.
            remote.run(&["rm", "-rf", &prefix]).await?;
            let _ = std::fs::remove_file(req.out_dir.join(format!("slurmbook-env-{key}.tar")));
        }
        let ready = !req.repack
            && remote
                .run(&["test", "-e", &ready_marker(&prefix)])
                .await?
                .success();
        let (tool_path, tool_sent) = match &tool {
            Some(t) => (t.0.clone(), 0),
            None => {
                let t = upload_tool(remote, req.base, req.platform, req.local_platform).await?;
                tool = Some(t.clone());
                t
            }
        };
        let mut sent = tool_sent;
        let archive = if ready {
            format!("{prefix}.tar")
        } else {
            let report = slurmbook_pack::pack(req.pixi, &name, req.platform, req.out_dir)
                .map_err(pack_error)?;
            tracing::info!(env = %name, key = %key, bytes = report.bytes, packages = report.packages, "environment packed");
            let bytes = std::fs::read(&report.archive).map_err(|source| EnvError::Io {
                path: report.archive.clone(),
                source,
            })?;
            let (path, n) = remote
                .upload_cas(&format!("{}/cache", req.base), &bytes, false)
                .await?;
            sent += n;
            // Unpacked here, once, before anything is submitted: a broken
            // archive is an error now, not a failed job. (Each job still
            // runs the idempotent unpack, in case the prefix went away.)
            let unpacked = remote
                .run(&[
                    &tool_path,
                    "unpack",
                    "--archive",
                    &path,
                    "--prefix",
                    &prefix,
                ])
                .await?;
            if !unpacked.success() {
                return Err(EnvError::Unpack {
                    env: name.clone(),
                    prefix: prefix.clone(),
                    detail: unpacked.stderr_text().trim().to_string(),
                });
            }
            tracing::info!(env = %name, prefix = %prefix, "{}", unpacked.stdout_text().trim());
            path
        };
        out.insert(
            name.clone(),
            PreparedEnv {
                name,
                key,
                job_env: JobEnv {
                    tool: tool_path,
                    archive,
                    prefix,
                },
                cached: ready,
                bytes_sent: sent,
            },
        );
    }
    Ok(out)
}

/// Upload `slurmbook-env` (found beside this program or on PATH),
/// content-addressed; returns its remote path and the bytes sent.
async fn upload_tool(
    remote: &dyn Transport,
    base: &str,
    platform: &str,
    local_platform: &str,
) -> Result<(String, u64), EnvError> {
    let path = tool_for(platform, local_platform, find_tool)?;
    let bytes = std::fs::read(&path).map_err(|source| EnvError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(remote
        .upload_cas(&format!("{base}/cache"), &bytes, true)
        .await?)
}

/// The `slurmbook-env` for the cluster's `platform`: `slurmbook-env-<platform>`
/// (a build for it, installed beside slurmbook or on PATH), or this
/// machine's own `slurmbook-env` when the platforms match.
fn tool_for(
    platform: &str,
    local_platform: &str,
    find: impl Fn(&str) -> Result<PathBuf, EnvError>,
) -> Result<PathBuf, EnvError> {
    match find(&format!("slurmbook-env-{platform}")) {
        Ok(path) => Ok(path),
        Err(_) if platform == local_platform => find("slurmbook-env"),
        Err(_) => Err(EnvError::ToolPlatform {
            local: local_platform.to_string(),
            remote: platform.to_string(),
        }),
    }
}

/// The program `name` beside the running program (cargo puts both in one
/// target directory), else on PATH.
pub fn find_tool(name: &str) -> Result<PathBuf, EnvError> {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_deref()
        .and_then(Path::parent)
        .map(|d| {
            // Test binaries live in target/debug/deps.
            let up = d.parent().filter(|_| d.ends_with("deps"));
            [Some(d.join(name)), up.map(|u| u.join(name))]
        })
        .into_iter()
        .flatten()
        .flatten();
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| EnvError::NoTool {
            beside: exe
                .map(|e| e.display().to_string())
                .unwrap_or_else(|| "slurmbook".into()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_is_the_clusters_platforms_build_or_our_own() {
        let have = |names: &'static [&'static str]| {
            move |name: &str| {
                if names.contains(&name) {
                    Ok(PathBuf::from(format!("/bin/{name}")))
                } else {
                    Err(EnvError::NoTool { beside: "x".into() })
                }
            }
        };
        let ours = have(&["slurmbook-env"]);
        assert_eq!(
            tool_for("linux-64", "linux-64", ours).unwrap(),
            PathBuf::from("/bin/slurmbook-env")
        );
        let e = tool_for("linux-aarch64", "osx-arm64", ours).unwrap_err();
        assert!(
            e.to_string().contains("`slurmbook-env-linux-aarch64`"),
            "{e}"
        );
        let both = have(&["slurmbook-env", "slurmbook-env-linux-aarch64"]);
        assert_eq!(
            tool_for("linux-aarch64", "osx-arm64", both).unwrap(),
            PathBuf::from("/bin/slurmbook-env-linux-aarch64")
        );
        assert!(matches!(
            tool_for("linux-64", "linux-64", have(&[])),
            Err(EnvError::NoTool { .. })
        ));
    }

    #[test]
    fn env_names_come_from_the_asset_then_the_settings() {
        let s = Settings::default();
        assert_eq!(env_name(&s, None).as_deref(), Some("default"));
        assert_eq!(env_name(&s, Some("gpu")).as_deref(), Some("gpu"));
        assert_eq!(env_name(&s, Some("none")), None);
    }

    #[test]
    fn status_without_a_pixi_project_says_the_cluster_environment() {
        let dir = tempfile::tempdir().unwrap();
        let status = EnvStatus::of(dir.path(), &Settings::default(), "linux-64");
        assert!(!status.packed());
        assert!(status.key.is_err());
        assert_eq!(
            status.render(),
            "jobs env   = no pixi project: jobs run in the cluster's own environment\n"
        );
        std::fs::write(dir.path().join("pixi.toml"), "[workspace]\n").unwrap();
        let status = EnvStatus::of(dir.path(), &Settings::default(), "linux-64");
        assert!(status.packed());
        let text = status.render();
        assert!(text.contains("pixi environment `default` of"), "{text}");
        assert!(
            text.contains("env key    = none: no lock file at"),
            "{text}"
        );
    }
}
