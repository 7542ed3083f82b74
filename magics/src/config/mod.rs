//! Configuration: a site-wide `slurmbook.toml` (`/etc/slurmbook/slurmbook.toml`,
//! or the file `SLURMBOOK_SITE_CONFIG` names), then the user's `slurmbook.toml`
//! (found from the notebook's directory upwards), both with `[profiles.NAME]`
//! tables, overridden by `SLURMBOOK_*` environment variables and by
//! `%config KEY=VALUE`. Every key is declared
//! once, typed (`keys::Keys`, and the sbatch defaults from `AssetOptions`);
//! every value is parsed when it is read, a bad one is an error naming the
//! key, the value and where it came from, and each effective value
//! remembers its source.

pub mod keys;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{AssetOptions, OptionInfo, Options};
pub use keys::{Build, Keys};

pub const FILE_NAME: &str = "slurmbook.toml";

/// The site-wide configuration, read before the user's `slurmbook.toml`.
pub const SITE_FILE: &str = "/etc/slurmbook/slurmbook.toml";

/// Names the site-wide configuration file instead of [`SITE_FILE`] (empty:
/// no site configuration).
pub const SITE_FILE_VAR: &str = "SLURMBOOK_SITE_CONFIG";

/// Every configuration key, in `%config` order: [`Keys`], then the sbatch
/// defaults (the `%%asset` options that set an `sbatch` option).
pub fn keys() -> impl Iterator<Item = &'static OptionInfo> {
    Keys::OPTIONS
        .iter()
        .chain(AssetOptions::OPTIONS.iter().filter(|o| o.sbatch.is_some()))
}

/// The keys as `%help config` lists them.
pub fn keys_help() -> String {
    let line = |o: &OptionInfo| {
        let left = format!("{}={}", o.name, o.value.unwrap_or("true|false"));
        let default = o
            .default
            .map(|d| format!(" (default: {d})"))
            .unwrap_or_default();
        format!("    {left:<28} {}{default}\n", o.help)
    };
    let mut s = String::from(
        "  keys (site slurmbook.toml, then the notebook's slurmbook.toml [profiles.NAME], then environment SLURMBOOK_KEY, then %config KEY=VALUE):\n",
    );
    s.extend(Keys::OPTIONS.iter().map(line));
    s.push_str("  sbatch defaults (an asset's own options override them):\n");
    s.extend(keys().skip(Keys::OPTIONS.len()).map(line));
    s
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// `slurmbook.toml`: a `[profiles.NAME]` table, or (`profile: None`) the top level.
    File {
        path: PathBuf,
        profile: Option<String>,
    },
    /// The site-wide `slurmbook.toml` ([`SITE_FILE`]): a `[profiles.NAME]`
    /// table, or (`profile: None`) the top level.
    Site {
        path: PathBuf,
        profile: Option<String>,
    },
    /// An environment variable (`SLURMBOOK_PORT`).
    Env(String),
    /// `%config KEY=VALUE`.
    Magic,
    /// The profile a command asked for (`%materialize --profile`, `--profile`).
    Requested,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File {
                path,
                profile: Some(profile),
            } => write!(f, "{} [profiles.{profile}]", path.display()),
            Source::File {
                path,
                profile: None,
            } => write!(f, "{}", path.display()),
            Source::Site {
                path,
                profile: Some(profile),
            } => write!(f, "site {} [profiles.{profile}]", path.display()),
            Source::Site {
                path,
                profile: None,
            } => write!(f, "site {}", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Magic => write!(f, "%config"),
            Source::Requested => write!(f, "--profile"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{0}`; valid settings: {valid}", valid = valid_keys())]
    UnknownKey(String),
    #[error("invalid {key} `{value}` (from {origin}): expected {expected}")]
    Invalid {
        key: String,
        value: String,
        origin: Box<Source>,
        expected: String,
    },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown profile `{name}`; profiles: {known}")]
    UnknownProfile { name: String, known: String },
}

/// `slurmbook.toml`, parsed (values kept as text; each was checked against
/// its key's declaration, and is parsed again when resolved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFile {
    pub path: Option<PathBuf>,
    /// The top-level `profile = "..."`, if any.
    pub default_profile: Option<String>,
    pub profiles: BTreeMap<String, BTreeMap<String, String>>,
    /// This is the site-wide file ([`SITE_FILE`]).
    pub is_site: bool,
    /// The site-wide file, read before this one: its values are overridden
    /// key by key (a profile of the same name here extends the site's).
    pub site: Option<Box<ConfigFile>>,
}

impl ConfigFile {
    /// The configuration of a notebook in `dir`: the site-wide file (see
    /// [`ConfigFile::site_path`]) under the nearest `slurmbook.toml` from
    /// `dir` upwards.
    pub fn load(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConfigFile, ConfigError> {
        let site = match ConfigFile::site_path(env) {
            Some(path) => Some(ConfigFile::read_site(&path)?),
            None => None,
        };
        Ok(ConfigFile::find(dir)?.with_site(site))
    }

    /// The site-wide file to read: the one `SLURMBOOK_SITE_CONFIG` names
    /// (none when it is empty), else [`SITE_FILE`] when it exists.
    pub fn site_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
        match env(SITE_FILE_VAR) {
            Some(named) if named.is_empty() => None,
            Some(named) => Some(PathBuf::from(named)),
            None => Some(PathBuf::from(SITE_FILE)).filter(|p| p.is_file()),
        }
    }

    /// Reads a site-wide file: its values' source is [`Source::Site`].
    pub fn read_site(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: format!("the site configuration: {e}"),
        })?;
        ConfigFile::parse_layer(&text, Some(path), true)
    }

    /// This file over `site`.
    pub fn with_site(self, site: Option<ConfigFile>) -> ConfigFile {
        ConfigFile {
            site: site.map(Box::new),
            ..self
        }
    }

    /// The site-wide file (if any), then this one.
    fn layers(&self) -> impl Iterator<Item = &ConfigFile> {
        self.site
            .as_deref()
            .into_iter()
            .chain(std::iter::once(self))
    }

    /// Where a value of this file (of `profile`'s table, or the top level) comes from.
    fn origin(&self, profile: Option<&str>) -> Source {
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(FILE_NAME));
        let profile = profile.map(str::to_owned);
        if self.is_site {
            Source::Site { path, profile }
        } else {
            Source::File { path, profile }
        }
    }

    /// The nearest `slurmbook.toml` from `dir` upwards (an empty config if none).
    pub fn find(dir: &Path) -> Result<ConfigFile, ConfigError> {
        for d in dir.ancestors() {
            let candidate = d.join(FILE_NAME);
            if candidate.is_file() {
                return ConfigFile::read(&candidate);
            }
        }
        Ok(ConfigFile::default())
    }

    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        ConfigFile::parse(&text, Some(path))
    }

    pub fn parse(text: &str, path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse_layer(text, path, false)
    }

    fn parse_layer(
        text: &str,
        path: Option<&Path>,
        is_site: bool,
    ) -> Result<ConfigFile, ConfigError> {
        let shown_path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(FILE_NAME));
        let file_err = |reason: String| ConfigError::File {
            path: shown_path.clone(),
            reason,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
        let mut file = ConfigFile {
            path: path.map(Path::to_path_buf),
            is_site,
            ..ConfigFile::default()
        };
        for (key, value) in doc {
            match (key.as_str(), value) {
                ("profile", toml::Value::String(p)) => file.default_profile = Some(p),
                ("profiles", toml::Value::Table(profiles)) => {
                    for (name, table) in profiles {
                        let toml::Value::Table(table) = table else {
                            return Err(file_err(format!("[profiles.{name}] must be a table")));
                        };
                        let origin = file.origin(Some(&name));
                        let mut values = BTreeMap::new();
                        for (k, v) in table {
                            let text = match v {
                                toml::Value::String(s) => s,
                                toml::Value::Integer(i) => i.to_string(),
                                toml::Value::Boolean(b) => b.to_string(),
                                other => {
                                    return Err(file_err(format!(
                                        "[profiles.{name}] {k}: unsupported value {other}"
                                    )))
                                }
                            };
                            if k == "profile" {
                                return Err(file_err(format!(
                                    "[profiles.{name}] cannot choose the profile: set `profile` at the top level"
                                )));
                            }
                            Settings::default().set(&k, &text, origin.clone()).map_err(
                                |e| match e {
                                    ConfigError::UnknownKey(_) => {
                                        file_err(format!("[profiles.{name}] {e}"))
                                    }
                                    other => other,
                                },
                            )?;
                            values.insert(k, text);
                        }
                        file.profiles.insert(name, values);
                    }
                }
                (other, _) => {
                    return Err(file_err(format!(
                        "unknown top-level key `{other}` (expected `profile` or [profiles.NAME])"
                    )))
                }
            }
        }
        Ok(file)
    }
}

fn valid_keys() -> String {
    keys().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// Checks one `%config KEY=VALUE` setting against its key's declaration
/// (these values end up in SSH and sbatch command lines).
pub fn validate(key: &str, value: &str) -> Result<(), ConfigError> {
    Settings::default().set(key, value, Source::Magic)
}

/// The effective configuration: every key typed (read them with the
/// accessors of the same name: `settings.host()`, `settings.port()`, ...),
/// each set value with its text and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The active profile (the same as `profile()`).
    pub profile: String,
    pub file: Option<PathBuf>,
    /// The site-wide `slurmbook.toml` read before `file`, if any.
    pub site_file: Option<PathBuf>,
    keys: Keys,
    sbatch: AssetOptions,
    /// The text each key was given as, and its source.
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Default for Settings {
    /// Every key at its declared default.
    fn default() -> Settings {
        let keys = Keys::default();
        Settings {
            profile: keys.profile.clone(),
            file: None,
            site_file: None,
            keys,
            sbatch: AssetOptions::default(),
            values: self::keys()
                .filter_map(|o| Some((o.name, (o.default?.to_string(), Source::Default))))
                .collect(),
        }
    }
}

/// Environment variable of a key: `SLURMBOOK_REMOTE_DIR` for `remote_dir`.
pub fn env_var(key: &str) -> String {
    format!("SLURMBOOK_{}", key.to_ascii_uppercase())
}

impl Settings {
    /// Resolves the configuration: defaults < site file profile < file
    /// profile < environment < `%config`. The profile is chosen by
    /// `%config profile=`, `SLURMBOOK_PROFILE`, the `requested` one (e.g.
    /// `%materialize --profile`), the file's `profile`, the site file's,
    /// else `local`.
    pub fn resolve(
        file: &ConfigFile,
        requested: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let profile_var = env_var("profile");
        let (profile, origin) = overrides
            .get("profile")
            .map(|p| (p.clone(), Source::Magic))
            .or_else(|| env(&profile_var).map(|p| (p, Source::Env(profile_var.clone()))))
            .or_else(|| requested.map(|p| (p.to_owned(), Source::Requested)))
            .or_else(|| {
                file.layers()
                    .filter_map(|layer| Some((layer.default_profile.clone()?, layer.origin(None))))
                    .last()
            })
            .unwrap_or_else(|| ("local".into(), Source::Default));
        let mut settings = Settings {
            file: file.path.clone(),
            site_file: file.site.as_ref().and_then(|s| s.path.clone()),
            ..Settings::default()
        };
        settings.set("profile", &profile, origin)?;
        settings.profile = settings.keys.profile.clone();
        let mut found = false;
        for layer in file.layers() {
            if let Some(table) = layer.profiles.get(&profile) {
                found = true;
                let origin = layer.origin(Some(&profile));
                for (k, v) in table {
                    settings.set(k, v, origin.clone())?;
                }
            }
        }
        // `local` needs no table; nor does `cluster` while no file has any.
        let no_profiles = file.layers().all(|l| l.profiles.is_empty());
        if !found && profile != "local" && !(profile == "cluster" && no_profiles) {
            let mut known = vec!["local".to_string()];
            for name in file.layers().flat_map(|l| l.profiles.keys()) {
                if !known.contains(name) {
                    known.push(name.clone());
                }
            }
            return Err(ConfigError::UnknownProfile {
                name: profile,
                known: known.join(", "),
            });
        }
        for key in keys().filter(|k| k.name != "profile") {
            let var = env_var(key.name);
            if let Some(v) = env(&var) {
                settings.set(key.name, &v, Source::Env(var))?;
            }
        }
        for (k, v) in overrides.iter().filter(|(k, _)| *k != "profile") {
            settings.set(k, v, Source::Magic)?;
        }
        Ok(settings)
    }

    /// Parses `value` into `key` (typed), remembering its text and `origin`.
    fn set(&mut self, key: &str, value: &str, origin: Source) -> Result<(), ConfigError> {
        let info = keys()
            .find(|k| k.name == key)
            .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
        let parsed = if Keys::info(key).is_some() {
            self.keys.apply(key, Some(value))
        } else {
            self.sbatch.apply(key, Some(value))
        };
        parsed.map_err(|expected| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            origin: Box::new(origin.clone()),
            expected,
        })?;
        self.values.insert(info.name, (value.to_string(), origin));
        Ok(())
    }

    /// The text `key`'s effective value was given as (for display: code
    /// reads the typed accessors).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }

    /// The profile's sbatch options, to be overridden by each asset's own.
    pub fn sbatch_defaults(&self) -> AssetOptions {
        self.sbatch.clone()
    }

    /// `key = value    (source)` lines, for `%config` alone.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for key in keys() {
            if let Some((value, source)) = self.values.get(key.name) {
                out.push_str(&format!("{:<10} = {value:<28} ({source})\n", key.name));
            }
        }
        match &self.site_file {
            Some(p) => out.push_str(&format!("site config: {}\n", p.display())),
            None => out.push_str(&format!(
                "site config: none ({SITE_FILE}, or the file {SITE_FILE_VAR} names)\n"
            )),
        }
        match &self.file {
            Some(p) => out.push_str(&format!("config file: {}\n", p.display())),
            None => out.push_str(&format!("config file: none ({FILE_NAME} is looked for from the notebook's directory upwards)\n")),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Target;

    const TOML: &str = r#"
profile = "cluster"
[profiles.cluster]
target = "slurm"
host = "login.hpc.example"
remote_dir = "$SCRATCH/slurmbook"
partition = "cpu"
time = "00:30:00"
"#;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn file_then_env_then_magic() {
        let file = ConfigFile::parse(TOML, Some(Path::new("/x/slurmbook.toml"))).unwrap();
        let s = Settings::resolve(&file, None, &none, &BTreeMap::new()).unwrap();
        assert_eq!(s.profile, "cluster");
        assert_eq!(s.target(), Target::Slurm);
        assert_eq!(s.get("host"), Some("login.hpc.example"));
        assert!(matches!(s.source("host"), Some(Source::File { .. })));
        let env = |k: &str| (k == "SLURMBOOK_PARTITION").then(|| "long".to_string());
        let mut magic = BTreeMap::new();
        magic.insert("time".to_string(), "01:00:00".to_string());
        let s = Settings::resolve(&file, None, &env, &magic).unwrap();
        assert_eq!(s.get("partition"), Some("long"));
        assert_eq!(
            s.source("partition"),
            Some(&Source::Env("SLURMBOOK_PARTITION".into()))
        );
        assert_eq!(s.get("time"), Some("01:00:00"));
        assert_eq!(s.source("time"), Some(&Source::Magic));
        assert!(s.render().contains("(environment SLURMBOOK_PARTITION)"));
        assert_eq!(s.sbatch_defaults().partition.as_deref(), Some("long"));
    }

    #[test]
    fn default_is_local_and_unknown_profiles_are_errors() {
        let s = Settings::resolve(&ConfigFile::default(), None, &none, &BTreeMap::new()).unwrap();
        assert_eq!(s.profile, "local");
        assert_eq!(s.target(), Target::Local);
        let file = ConfigFile::parse(TOML, None).unwrap();
        let err = Settings::resolve(&file, Some("nope"), &none, &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("profiles: local, cluster"),
            "{err}"
        );
    }

    #[test]
    fn injection_and_bad_values_are_rejected() {
        for (k, v) in [
            ("partition", "cpu; touch /tmp/pwned"),
            ("host", "host -oProxyCommand=evil"),
            ("host", "-oProxyCommand=x"),
            ("remote_dir", "$HOME/$(rm -rf ~)"),
            ("remote_dir", "/tmp/a b"),
            ("time", "soon"),
            ("port", "70000"),
            ("user", "root;id"),
            ("target", "cloud"),
        ] {
            assert!(validate(k, v).is_err(), "{k}={v} accepted");
        }
        assert!(matches!(
            validate("colour", "red"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert!(validate("remote_dir", "$SCRATCH/slurmbook").is_ok());
        assert!(validate("host", "slurmbook-test").is_ok());
        let bad = "[profiles.c]\npartition = \"a;b\"\n";
        assert!(ConfigFile::parse(bad, None).is_err());
        let nested = "[profiles.c]\nprofile = \"d\"\n";
        assert!(ConfigFile::parse(nested, None).is_err());
    }

    #[test]
    fn finds_the_file_upwards() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        let nested = dir.join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(dir.join(FILE_NAME), TOML).unwrap();
        let file = ConfigFile::find(&nested).unwrap();
        assert_eq!(file.path, Some(dir.join(FILE_NAME)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Resolves `file` with one environment variable set.
    fn with_env(file: &ConfigFile, var: &str, value: &str) -> Result<Settings, ConfigError> {
        let env = |k: &str| (k == var).then(|| value.to_string());
        Settings::resolve(file, None, &env, &BTreeMap::new())
    }

    #[test]
    fn a_bad_value_names_key_value_and_source() {
        let path = Path::new("/x/slurmbook.toml");
        let err = ConfigFile::parse("[profiles.c]\nport = \"ssh\"\n", Some(path)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid port `ssh` (from /x/slurmbook.toml [profiles.c]): expected a port number 1-65535"
        );
        let err = ConfigFile::parse("[profiles.c]\ntime = 0\n", Some(path)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, origin, .. }
                if key == "time" && matches!(&**origin, Source::File { profile: Some(p), .. } if p == "c")),
            "{err}"
        );

        let file = ConfigFile::parse(TOML, Some(path)).unwrap();
        let err = with_env(&file, "SLURMBOOK_PORT", "70000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid port `70000` (from environment SLURMBOOK_PORT): expected a port number 1-65535"
        );
        let err = with_env(&file, "SLURMBOOK_MEM", "4GB").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid mem `4GB` (from environment SLURMBOOK_MEM)"),
            "{err}"
        );

        let mut magic = BTreeMap::new();
        magic.insert("build".to_string(), "cloud".to_string());
        let err = Settings::resolve(&file, None, &none, &magic).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid build `cloud` (from %config): expected `auto`, `local` or `remote`"
        );
        let err = validate("jobs", "some").unwrap_err();
        assert!(err.to_string().contains("(from %config)"), "{err}");

        let err = Settings::resolve(&file, Some("a;b"), &none, &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid profile `a;b` (from --profile)"),
            "{err}"
        );
        let top = ConfigFile::parse("profile = \"a b\"\n", Some(path)).unwrap();
        let err = Settings::resolve(&top, None, &none, &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("(from /x/slurmbook.toml)"),
            "{err}"
        );
    }

    #[test]
    fn values_are_typed_with_declared_defaults() {
        let s = Settings::default();
        assert_eq!(s.profile(), "local");
        assert_eq!(s.remote_dir(), "$HOME/slurmbook");
        assert_eq!(s.build(), Build::Auto);
        assert_eq!((s.port(), s.host(), s.jobs()), (None, None, None));
        assert_eq!(s.source("remote_dir"), Some(&Source::Default));
        let toml = "[profiles.c]\nport = 2222\nidentity = \"/k/id\"\nbuild = \"remote\"\n\
                    jobs = \"per-asset\"\ncpus = 4\ngpus = \"a100:2\"\nrequeue = false\n";
        let file = ConfigFile::parse(toml, None).unwrap();
        let s = Settings::resolve(&file, Some("c"), &none, &BTreeMap::new()).unwrap();
        assert_eq!(s.port(), Some(2222));
        assert_eq!(s.identity(), Some(Path::new("/k/id")));
        assert_eq!(s.build(), Build::Remote);
        assert_eq!(s.jobs(), Some(crate::model::JobGrouping::PerAsset));
        assert_eq!(
            s.sbatch_defaults().sbatch_args(),
            [
                ("cpus-per-task", "4".to_string()),
                ("gres", "gpu:a100:2".to_string()),
                ("requeue", "false".to_string())
            ]
        );
        assert_eq!(s.sbatch_defaults().requeue, Some(false));
        assert!(s.render().contains("port       = 2222"), "{}", s.render());
    }

    const SITE: &str = r#"
profile = "hub"
[profiles.hub]
target = "slurm"
remote_dir = "$SCRATCH/slurmbook"
partition = "cpu"
time = "00:30:00"
[profiles.gpu]
target = "slurm"
partition = "gpu"
"#;

    fn site() -> ConfigFile {
        ConfigFile::parse_layer(SITE, Some(Path::new("/etc/slurmbook/slurmbook.toml")), true)
            .unwrap()
    }

    #[test]
    fn the_site_file_comes_first_then_the_users_then_env_then_magic() {
        let site_path = Path::new("/etc/slurmbook/slurmbook.toml");
        let user_path = Path::new("/home/u/slurmbook.toml");
        // Alone, the site file chooses the profile and sets its keys.
        let only_site = ConfigFile::default().with_site(Some(site()));
        let s = Settings::resolve(&only_site, None, &none, &BTreeMap::new()).unwrap();
        assert_eq!((s.profile(), s.target()), ("hub", Target::Slurm));
        assert_eq!(
            s.source("profile"),
            Some(&Source::Site {
                path: site_path.into(),
                profile: None
            })
        );
        assert_eq!(
            s.source("partition"),
            Some(&Source::Site {
                path: site_path.into(),
                profile: Some("hub".into())
            })
        );
        assert!(
            s.render()
                .contains("site /etc/slurmbook/slurmbook.toml [profiles.hub]"),
            "{}",
            s.render()
        );
        assert!(s
            .render()
            .contains("site config: /etc/slurmbook/slurmbook.toml\n"));

        // The user's file overrides key by key, in a profile of the same name.
        let user = ConfigFile::parse("[profiles.hub]\ntime = \"02:00:00\"\n", Some(user_path))
            .unwrap()
            .with_site(Some(site()));
        let env = |k: &str| (k == "SLURMBOOK_PARTITION").then(|| "long".to_string());
        let mut magic = BTreeMap::new();
        magic.insert("cpus".to_string(), "8".to_string());
        let s = Settings::resolve(&user, None, &env, &magic).unwrap();
        assert_eq!(s.profile(), "hub");
        assert_eq!(s.get("time"), Some("02:00:00"));
        assert_eq!(
            s.source("time"),
            Some(&Source::File {
                path: user_path.into(),
                profile: Some("hub".into())
            })
        );
        assert_eq!(s.get("remote_dir"), Some("$SCRATCH/slurmbook"));
        assert!(matches!(s.source("remote_dir"), Some(Source::Site { .. })));
        assert_eq!(s.get("partition"), Some("long"));
        assert_eq!(
            s.source("partition"),
            Some(&Source::Env("SLURMBOOK_PARTITION".into()))
        );
        assert_eq!(s.source("cpus"), Some(&Source::Magic));
        assert_eq!(s.site_file.as_deref(), Some(site_path));
        assert_eq!(s.file.as_deref(), Some(user_path));
        let shown = s.render();
        assert!(
            shown.contains("(/home/u/slurmbook.toml [profiles.hub])")
                && shown.contains("(site /etc/slurmbook/slurmbook.toml [profiles.hub])")
                && shown.contains("(environment SLURMBOOK_PARTITION)")
                && shown.contains("(%config)"),
            "{shown}"
        );
    }

    #[test]
    fn the_users_profile_choice_wins_and_profiles_are_the_union() {
        let toml = "profile = \"mine\"\n[profiles.mine]\ntarget = \"slurm\"\n";
        let user = ConfigFile::parse(toml, Some(Path::new("/u/slurmbook.toml")))
            .unwrap()
            .with_site(Some(site()));
        let s = Settings::resolve(&user, None, &none, &BTreeMap::new()).unwrap();
        assert_eq!(s.profile(), "mine");
        assert!(matches!(s.source("profile"), Some(Source::File { .. })));
        // A site profile the user's file does not have.
        let s = Settings::resolve(&user, Some("gpu"), &none, &BTreeMap::new()).unwrap();
        assert_eq!(s.get("partition"), Some("gpu"));
        assert!(matches!(s.source("partition"), Some(Source::Site { .. })));
        let err = Settings::resolve(&user, Some("nope"), &none, &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("profiles: local, gpu, hub, mine"),
            "{err}"
        );
        // With a site file that has profiles, `cluster` is no longer implied.
        let err = Settings::resolve(&user, Some("cluster"), &none, &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownProfile { .. }), "{err}");
    }

    #[test]
    fn a_bad_site_value_names_the_site_file() {
        let err = ConfigFile::parse_layer(
            "[profiles.hub]\npartition = \"a;b\"\n",
            Some(Path::new("/etc/slurmbook/slurmbook.toml")),
            true,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(from site /etc/slurmbook/slurmbook.toml [profiles.hub])"),
            "{err}"
        );
    }

    #[test]
    fn the_site_file_is_found_by_its_variable_or_its_place() {
        let dir = std::env::temp_dir().join(format!("sb-site-{}", std::process::id()));
        let notebooks = dir.join("home/nb");
        std::fs::create_dir_all(&notebooks).unwrap();
        let site_file = dir.join("site.toml");
        std::fs::write(&site_file, SITE).unwrap();
        std::fs::write(
            dir.join("home").join(FILE_NAME),
            "[profiles.hub]\npartition = \"long\"\n",
        )
        .unwrap();
        let named = site_file.display().to_string();
        let env = |k: &str| (k == SITE_FILE_VAR).then(|| named.clone());
        let file = ConfigFile::load(&notebooks, &env).unwrap();
        assert_eq!(file.path, Some(dir.join("home").join(FILE_NAME)));
        assert_eq!(file.site.as_ref().unwrap().path, Some(site_file.clone()));
        assert!(file.site.as_ref().unwrap().is_site && !file.is_site);
        let s = Settings::resolve(&file, None, &env, &BTreeMap::new()).unwrap();
        assert_eq!((s.profile(), s.get("partition")), ("hub", Some("long")));

        // Empty: no site file. Unset: the system-wide one when it exists.
        let empty = |k: &str| (k == SITE_FILE_VAR).then(String::new);
        assert_eq!(ConfigFile::site_path(&empty), None);
        assert_eq!(
            ConfigFile::site_path(&none),
            Some(PathBuf::from(SITE_FILE)).filter(|p| p.is_file())
        );
        let file = ConfigFile::load(&notebooks, &empty).unwrap();
        assert!(file.site.is_none());

        // A named file that is missing is an error naming it.
        let missing = dir.join("missing.toml").display().to_string();
        let env = |k: &str| (k == SITE_FILE_VAR).then(|| missing.clone());
        let err = ConfigFile::load(&notebooks, &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("missing.toml: the site configuration"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
