//! `slurmbook schedule install|list|remove`: ticks on the cluster, with the
//! laptop closed. `install` uploads (content-addressed, as job binaries
//! go) the notebook snapshot and a `slurmbook` for the cluster's platform,
//! writes a schedule directory `<remote_dir>/schedules/<id>/` (the
//! snapshot, a `slurmbook.toml` with a host-less copy of the profile,
//! `tick.sh`, `schedule.json`, and `job-binary.json` naming the job binary
//! of the assets with conditions, built at install (`exec::prebuilt`) so
//! the ticks need no Rust toolchain; the state database
//! `.slurmbook/state.db` grows there), and adds a block to the user's
//! `scrontab` that runs
//! `tick.sh` at the cadence. Where scrontab is off (`ScronParameters`) it
//! says so; `--fallback` installs a job that resubmits itself with
//! `--begin` instead. Installing again replaces the snapshot and the entry.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auto::schedule::{self as text, Every, TickScript};
use crate::config::Settings;
use crate::exec::cluster::ClusterError;
use crate::exec::connect::{local_platform, platform_name};
use crate::exec::job_env::find_tool;
use crate::exec::prebuilt::{prebuild, JOB_BINARY_FILE};
use crate::model::Target;
use crate::state::STATE_DIR;
use crate::transport::{check_abs_path, is_safe_path, quote, Transport, TransportError};

use super::{RunError, Workspace};

/// Why a schedule could not be installed, listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Usage(String),
    #[error("scrontab is not usable on {location}: {detail}. The cluster's slurm.conf must have `ScronParameters=enable` (ask its admins); meanwhile `slurmbook schedule install --fallback` installs a job that resubmits itself with --begin instead")]
    NoScrontab { location: String, detail: String },
    #[error("on the cluster: {0}")]
    Remote(String),
}

impl From<RunError> for ScheduleError {
    fn from(e: RunError) -> ScheduleError {
        ScheduleError::Run(Box::new(e))
    }
}

impl ScheduleError {
    /// Bad input (exit status 2) rather than a failure.
    pub fn is_usage(&self) -> bool {
        match self {
            ScheduleError::Usage(_) | ScheduleError::NoScrontab { .. } => true,
            ScheduleError::Run(e) => matches!(
                e.kind(),
                super::RunErrorKind::Usage | super::RunErrorKind::Asset
            ),
            _ => false,
        }
    }
}

/// How the ticks are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Scrontab,
    /// A job resubmitting itself with `--begin` (scrontab is off).
    Fallback,
}

/// A schedule as `schedule.json` (on the cluster) and the notebook's
/// `.slurmbook/schedules.json` record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub profile: String,
    /// The notebook it was installed from (this machine's path).
    pub notebook: String,
    pub every: String,
    pub method: Method,
    /// The schedule directory on the cluster (its state is `.slurmbook/state.db` there).
    pub dir: String,
    pub installed_at: String,
    /// Whether its scrontab entry or fallback job is there (`list`).
    #[serde(default)]
    pub active: bool,
}

/// What `install` did.
pub struct Installed {
    pub schedule: Schedule,
    /// Bytes sent (0 when the cluster had everything).
    pub bytes_sent: u64,
}

/// The `slurmbook` for the cluster's `platform`: this program when the
/// platforms match, else `slurmbook-<platform>` beside it or on PATH.
fn slurmbook_for(platform: &str) -> Result<PathBuf, ScheduleError> {
    if let Ok(path) = find_tool(&format!("slurmbook-{platform}")) {
        return Ok(path);
    }
    if platform == local_platform() {
        return std::env::current_exe()
            .map_err(|e| ScheduleError::Usage(format!("cannot find this program: {e}")));
    }
    Err(ScheduleError::Usage(format!(
        "the cluster runs {platform}, this machine {}: install a slurmbook built for {platform} as `slurmbook-{platform}` beside slurmbook or on PATH",
        local_platform()
    )))
}

/// The host-less copy of the profile: the cluster ticks with Slurm on
/// itself. Values were validated when the settings were resolved.
fn hostless_toml(settings: &Settings, remote_dir: &str) -> String {
    let mut table = toml::Table::new();
    table.insert("target".into(), "slurm".into());
    table.insert("remote_dir".into(), remote_dir.into());
    let skip = [
        "profile",
        "target",
        "host",
        "user",
        "port",
        "identity",
        "ssh_config",
        "remote_dir",
    ];
    for key in crate::config::keys().filter(|k| !skip.contains(&k.name)) {
        if let (Some(v), Some(src)) = (settings.get(key.name), settings.source(key.name)) {
            if *src != crate::config::Source::Default {
                table.insert(key.name.into(), v.into());
            }
        }
    }
    let mut doc = toml::Table::new();
    doc.insert("profile".into(), settings.profile.clone().into());
    let mut profiles = toml::Table::new();
    profiles.insert(settings.profile.clone(), table.into());
    doc.insert("profiles".into(), profiles.into());
    format!(
        "# Written by slurmbook schedule install: profile `{}` without host (Slurm runs here).\n{}",
        settings.profile,
        toml::to_string(&doc).expect("a table serializes")
    )
}

/// The sbatch options of the tick job itself: where and how long it runs.
fn tick_options(settings: &Settings) -> Vec<(&'static str, String)> {
    settings
        .sbatch_defaults()
        .sbatch_args()
        .into_iter()
        .filter(|(name, _)| ["partition", "time", "account", "qos"].contains(name))
        .collect()
}

/// Runs a script that must succeed on the cluster.
async fn remote_ok(t: &dyn Transport, script: &str) -> Result<String, ScheduleError> {
    let out = t.run_script(script).await?;
    if !out.success() {
        return Err(ScheduleError::Remote(
            format!("{}{}", out.stdout_text(), out.stderr_text())
                .trim()
                .to_string(),
        ));
    }
    Ok(out.stdout_text())
}

/// The user's current scrontab (empty when none), or why scrontab cannot be used.
async fn current_scrontab(t: &dyn Transport) -> Result<String, ScheduleError> {
    let out = match t.run(&["scrontab", "-l"]).await {
        Ok(out) => out,
        Err(TransportError::NotOnPath { .. }) => {
            return Err(ScheduleError::NoScrontab {
                location: t.location().to_string(),
                detail: "there is no `scrontab` command".into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let err = format!("{}{}", out.stdout_text(), out.stderr_text());
    if out.success() {
        Ok(out.stdout_text())
    } else if err.contains("no crontab") {
        Ok(String::new())
    } else if out.code == Some(127) || err.contains("not found") {
        Err(ScheduleError::NoScrontab {
            location: t.location().to_string(),
            detail: "there is no `scrontab` command".into(),
        })
    } else {
        Err(ScheduleError::NoScrontab {
            location: t.location().to_string(),
            detail: err
                .trim()
                .trim_start_matches("scrontab: fatal: ")
                .to_string(),
        })
    }
}

/// Puts `crontab` in place as the user's scrontab (`scrontab -r` when empty).
async fn write_scrontab(
    t: &dyn Transport,
    cache: &str,
    crontab: &str,
) -> Result<(), ScheduleError> {
    if crontab.trim().is_empty() {
        let out = t.run_once(&["scrontab", "-r"]).await?;
        let text = format!("{}{}", out.stdout_text(), out.stderr_text());
        if !out.success() && !text.contains("no crontab") {
            return Err(ScheduleError::Remote(out.stderr_text()));
        }
        return Ok(());
    }
    let (path, _) = t.upload_cas(cache, crontab.as_bytes(), false).await?;
    let out = t.run_once(&["scrontab", &path]).await?;
    if !out.success() {
        return Err(ScheduleError::Remote(format!(
            "scrontab refused the entry: {}{}",
            out.stdout_text(),
            out.stderr_text()
        )));
    }
    Ok(())
}

/// `SLURM_CONF` and `PATH` of the cluster session (scrontab jobs get a
/// login environment without them), each kept only when it is a plain path.
async fn session_env(t: &dyn Transport) -> Result<Vec<(&'static str, String)>, ScheduleError> {
    let out = remote_ok(t, "printf '%s\\n' \"${SLURM_CONF:-}\" \"${PATH:-}\"\n").await?;
    let mut lines = out.lines();
    let conf = lines.next().unwrap_or("").to_string();
    let path: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(':')
        .filter(|p| p.starts_with('/') && is_safe_path(p))
        .collect();
    let mut env = Vec::new();
    if check_abs_path(&conf).is_ok() {
        env.push(("SLURM_CONF", conf));
    }
    if !path.is_empty() {
        env.push(("PATH", path.join(":")));
    }
    Ok(env)
}

impl Workspace {
    /// The notebook, its profile's settings (a Slurm profile) and the
    /// schedule's id and directory on the cluster.
    async fn schedule_target(
        &mut self,
        profile: &str,
    ) -> Result<(PathBuf, Settings, String, String, String), ScheduleError> {
        let notebook = self
            .notebook()
            .map(|(p, _)| p.to_path_buf())
            .ok_or_else(|| ScheduleError::Usage("no notebook".into()))?;
        let settings = self.settings(Some(profile)).map_err(RunError::from)?;
        if settings.target() != Target::Slurm {
            return Err(ScheduleError::Usage(format!(
                "profile `{profile}` does not run on Slurm (target = \"slurm\" is needed to schedule on a cluster)"
            )));
        }
        let t = self.transport(&settings);
        let base = t.expand_dir(settings.remote_dir()).await?;
        let id = text::schedule_id(&notebook, profile);
        let dir = format!("{base}/schedules/{id}");
        check_abs_path(&dir)?;
        Ok((notebook, settings, base, id, dir))
    }

    /// `schedule install`: see the module documentation.
    pub async fn schedule_install(
        &mut self,
        profile: &str,
        every: Every,
        fallback: bool,
    ) -> Result<Installed, ScheduleError> {
        let project = self.project().map_err(RunError::from)?;
        if crate::auto::conditions(&project).is_empty() {
            return Err(ScheduleError::Usage(
                "no asset has an automation condition (`%%asset NAME --auto eager`, `--auto on-missing` or `--auto \"on-cron 0 9 * * *\"`): a schedule would never run anything".into(),
            ));
        }
        let (notebook, settings, base, id, dir) = self.schedule_target(profile).await?;
        let t = self.transport(&settings);
        let t = t.as_ref();
        // Where scrontab cannot be used, nothing is uploaded.
        let crontab = if fallback {
            None
        } else {
            Some(current_scrontab(t).await?)
        };
        let cache = format!("{base}/cache");
        let uname = t.run(&["uname", "-sm"]).await?.stdout_text();
        let mut words = uname.split_whitespace();
        let platform = platform_name(words.next().unwrap_or(""), words.next().unwrap_or(""));
        let exe = slurmbook_for(&platform)?;
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| ScheduleError::Usage(format!("reading {}: {e}", p.display())))
        };
        let mut sent = 0;
        let (binary, n) = t.upload_cas(&cache, &read(&exe)?, true).await?;
        sent += n;
        let nb_bytes = read(&notebook)?;
        let (snapshot, n) = t.upload_cas(&cache, &nb_bytes, false).await?;
        sent += n;
        // The job binary of the assets with conditions, built where cargo
        // is, so the cluster's ticks need no Rust toolchain.
        let auto_assets: Vec<String> = crate::auto::conditions(&project)
            .into_iter()
            .map(|(a, _)| a.to_string())
            .collect();
        let (job, n) = prebuild(&project, &auto_assets, &settings, t, &nb_bytes)
            .await
            .map_err(|e| RunError::from(ClusterError::from(e)))?;
        sent += n;
        let (job_json, n) = t
            .upload_cas(
                &cache,
                serde_json::to_string_pretty(&job)
                    .expect("a job binary serializes")
                    .as_bytes(),
                false,
            )
            .await?;
        sent += n;
        let (toml, n) = t
            .upload_cas(&cache, hostless_toml(&settings, &base).as_bytes(), false)
            .await?;
        sent += n;
        let nb_remote = format!("{dir}/notebook.ipynb");
        let env = session_env(t).await?;
        let script = TickScript {
            dir: &dir,
            binary: &binary,
            notebook: &nb_remote,
            profile,
            env: &env,
        }
        .text()
        .map_err(ScheduleError::Remote)?;
        let (tick_sh, n) = t.upload_cas(&cache, script.as_bytes(), false).await?;
        sent += n;
        let schedule = Schedule {
            id: id.clone(),
            profile: profile.to_string(),
            notebook: notebook.display().to_string(),
            every: every.to_string(),
            method: if fallback {
                Method::Fallback
            } else {
                Method::Scrontab
            },
            dir: dir.clone(),
            installed_at: chrono::Utc::now().to_rfc3339(),
            active: true,
        };
        let json = serde_json::to_string_pretty(&schedule).expect("a schedule serializes");
        let (meta, n) = t.upload_cas(&cache, json.as_bytes(), false).await?;
        sent += n;
        let options = tick_options(&settings);
        let mut place: Vec<(String, &str, &str)> = vec![
            (snapshot, "notebook.ipynb", "600"),
            (toml, "slurmbook.toml", "600"),
            (tick_sh, "tick.sh", "700"),
            (meta, "schedule.json", "600"),
            (job_json, JOB_BINARY_FILE, "600"),
        ];
        let fallback_text;
        if fallback {
            fallback_text =
                text::fallback_script(&dir, &id, every, &options).map_err(ScheduleError::Remote)?;
            let (f, n) = t
                .upload_cas(&cache, fallback_text.as_bytes(), false)
                .await?;
            sent += n;
            place.push((f, "fallback.sh", "700"));
        }
        let mut sh = format!("set -e\nmkdir -p {dir}/{STATE_DIR}\n");
        for (src, name, mode) in &place {
            check_abs_path(src)?;
            sh.push_str(&format!(
                "cp {src} {dir}/{name}.tmp\nchmod {mode} {dir}/{name}.tmp\nmv -f {dir}/{name}.tmp {dir}/{name}\n"
            ));
        }
        remote_ok(t, &sh).await?;
        match crontab {
            Some(current) => {
                let new =
                    text::with_block(&current, &id, every, &format!("{dir}/tick.sh"), &options)
                        .map_err(ScheduleError::Remote)?;
                write_scrontab(t, &cache, &new).await?;
            }
            None => {
                let name = text::job_name(&id);
                let mut submit = format!(
                    "set -e\ntouch {dir}/enabled\nscancel --state=PENDING --name={name} || true\nsbatch --parsable --job-name={name} --output={dir}/fallback.log --open-mode=append"
                );
                for (opt, value) in &options {
                    submit.push_str(&format!(" --{opt}={}", quote(value)));
                }
                submit.push_str(&format!(" {dir}/fallback.sh\n"));
                remote_ok(t, &submit).await?;
            }
        }
        self.remember_schedule(&schedule)?;
        Ok(Installed {
            schedule,
            bytes_sent: sent,
        })
    }

    /// `schedule remove`: the scrontab entry (or the fallback chain) goes;
    /// the schedule directory and its state stay (for `%runs` and `%load`).
    /// Returns whether there was anything to remove.
    pub async fn schedule_remove(&mut self, profile: &str) -> Result<bool, ScheduleError> {
        let (_, settings, base, id, dir) = self.schedule_target(profile).await?;
        let t = self.transport(&settings);
        let t = t.as_ref();
        let mut removed = false;
        match current_scrontab(t).await {
            Ok(current) if text::has_block(&current, &id) => {
                write_scrontab(
                    t,
                    &format!("{base}/cache"),
                    &text::without_block(&current, &id),
                )
                .await?;
                removed = true;
            }
            Ok(_) | Err(ScheduleError::NoScrontab { .. }) => {}
            Err(e) => return Err(e),
        }
        let name = text::job_name(&id);
        let out = remote_ok(
            t,
            &format!(
                "if [ -f {dir}/enabled ]; then rm -f {dir}/enabled; echo chain; fi\nscancel --state=PENDING --name={name} || true\n"
            ),
        )
        .await?;
        removed |= out.contains("chain");
        if let Some(mut s) = self.schedules()?.into_iter().find(|s| s.id == id) {
            s.active = false;
            self.remember_schedule(&s)?;
        }
        Ok(removed)
    }

    /// `schedule list`: every schedule under the profile's `remote_dir`,
    /// with whether its entry (or fallback job) is there.
    pub async fn schedule_list(&mut self, profile: &str) -> Result<Vec<Schedule>, ScheduleError> {
        let settings = self.settings(Some(profile)).map_err(RunError::from)?;
        let t = self.transport(&settings);
        let t = t.as_ref();
        let base = t.expand_dir(settings.remote_dir()).await?;
        let crontab = current_scrontab(t).await.unwrap_or_default();
        let out = remote_ok(
            t,
            &format!(
                "for f in {base}/schedules/*/schedule.json; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true\n"
            ),
        )
        .await?;
        let queued = t
            .run(&["squeue", "-h", "-o", "%j"])
            .await
            .map(|o| o.stdout_text())
            .unwrap_or_default();
        let mut list = Vec::new();
        for doc in serde_json::Deserializer::from_str(&out).into_iter::<Schedule>() {
            let Ok(mut s) = doc else { continue };
            s.active = match s.method {
                Method::Scrontab => text::has_block(&crontab, &s.id),
                Method::Fallback => queued.lines().any(|l| l.trim() == text::job_name(&s.id)),
            };
            list.push(s);
        }
        Ok(list)
    }

    /// The schedules installed from this notebook (`.slurmbook/schedules.json`).
    pub fn schedules(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let path = self.dir().join(STATE_DIR).join("schedules.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| ScheduleError::Usage(format!("{}: {e}", path.display()))),
            Err(_) => Ok(Vec::new()),
        }
    }

    fn remember_schedule(&self, schedule: &Schedule) -> Result<(), ScheduleError> {
        let mut all = self.schedules()?;
        all.retain(|s| s.id != schedule.id);
        all.push(schedule.clone());
        let dir = self.dir().join(STATE_DIR);
        let io = |e: std::io::Error| ScheduleError::Usage(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let tmp = dir.join("schedules.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&all).expect("serializes"),
        )
        .map_err(io)?;
        std::fs::rename(&tmp, dir.join("schedules.json")).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    fn resolve(text: &str, profile: &str) -> Settings {
        let file = ConfigFile::parse(text, None).unwrap();
        Settings::resolve(&file, Some(profile), &|_| None, &Default::default()).unwrap()
    }

    #[test]
    fn the_hostless_profile_keeps_notify_and_resources_and_drops_the_way_in() {
        let here = resolve(
            "[profiles.hpc]\ntarget = \"slurm\"\nhost = \"login.example\"\nuser = \"me\"\n\
             partition = \"debug\"\nnotify = \"mail-me --urgent\"\n",
            "hpc",
        );
        let text = hostless_toml(&here, "/scratch/me/slurmbook");
        let there = resolve(&text, "hpc");
        assert_eq!(there.host(), None, "{text}");
        assert_eq!(there.user(), None, "{text}");
        assert_eq!(there.target(), Target::Slurm);
        assert_eq!(there.remote_dir(), "/scratch/me/slurmbook");
        assert_eq!(there.notify(), Some("mail-me --urgent"), "{text}");
        assert_eq!(there.get("partition"), Some("debug"), "{text}");
    }
}
