//! Configuration: `slurmbook.toml` (found from the notebook's directory
//! upwards) with `[profiles.NAME]` tables, overridden by `SLURMBOOK_*`
//! environment variables and by `%config KEY=VALUE`. Every value is validated
//! when it is read, and each effective value remembers where it came from.

use crate::model::Target;
use crate::syntax::args::Word;
use crate::syntax::options::parse_asset_options;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "slurmbook.toml";

/// Every setting: name and what it means.
pub const KEYS: &[(&str, &str)] = &[
    (
        "profile",
        "the active profile (a [profiles.NAME] table of slurmbook.toml)",
    ),
    (
        "target",
        "where assets run by default: local (in the kernel) or slurm",
    ),
    ("host", "the cluster's SSH host (any ~/.ssh/config alias)"),
    ("user", "SSH user"),
    ("port", "SSH port"),
    ("identity", "SSH private key file"),
    (
        "ssh_config",
        "an ssh_config file to use instead of ~/.ssh/config",
    ),
    (
        "remote_dir",
        "slurmbook's directory on the cluster ($HOME and $SCRATCH are expanded there)",
    ),
    ("partition", "default sbatch --partition"),
    ("time", "default sbatch --time"),
    ("cpus", "default sbatch --cpus-per-task"),
    ("mem", "default sbatch --mem"),
    ("gpus", "default GPUs (sbatch --gres=gpu:N)"),
    ("nodes", "default sbatch --nodes"),
    ("ntasks", "default sbatch --ntasks"),
    ("account", "default sbatch --account"),
    ("qos", "default sbatch --qos"),
    ("constraint", "default sbatch --constraint"),
    (
        "env",
        "the pixi environment jobs run in (from the notebook project's pixi.lock); none: the cluster's own",
    ),
    (
        "platform",
        "the cluster's conda platform (e.g. linux-64), when it should not be detected",
    ),
    (
        "build",
        "where the job binary is built: auto (here when this machine's platform is the cluster's, else on the cluster), local or remote",
    ),
    (
        "jobs",
        "Slurm jobs of a run: grouped (compatible assets share one allocation, the default) or per-asset",
    ),
];

const SBATCH_KEYS: &[&str] = &[
    "partition",
    "time",
    "cpus",
    "mem",
    "gpus",
    "nodes",
    "ntasks",
    "account",
    "qos",
    "constraint",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File { path: PathBuf, profile: String },
    Env(String),
    Magic,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File { path, profile } => write!(f, "{} [profiles.{profile}]", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Magic => write!(f, "%config"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{0}`; valid settings: {valid}", valid = valid_keys())]
    UnknownKey(String),
    #[error("invalid {key} `{value}`: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown profile `{name}`; profiles: {known}")]
    UnknownProfile { name: String, known: String },
}

/// `slurmbook.toml`, parsed (values still as text, validated when resolved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFile {
    pub path: Option<PathBuf>,
    /// The top-level `profile = "..."`, if any.
    pub default_profile: Option<String>,
    pub profiles: BTreeMap<String, BTreeMap<String, String>>,
}

impl ConfigFile {
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
        let file_err = |reason: String| ConfigError::File {
            path: path
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(FILE_NAME)),
            reason,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
        let mut file = ConfigFile {
            path: path.map(Path::to_path_buf),
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
                            validate(&k, &text)
                                .map_err(|e| file_err(format!("[profiles.{name}] {e}")))?;
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
    KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn charset(value: &str, ok: impl Fn(char) -> bool) -> bool {
    !value.is_empty() && !value.starts_with('-') && value.chars().all(ok)
}

/// Validates one setting (these values end up in SSH and sbatch command lines).
pub fn validate(key: &str, value: &str) -> Result<(), ConfigError> {
    match key {
        "profile" => charset(value, |c| c.is_ascii_alphanumeric() || "_-".contains(c))
            .then_some(())
            .ok_or_else(|| invalid(key, value, "letters, digits, _ and - only")),
        "target" => value
            .parse::<Target>()
            .map(|_| ())
            .map_err(|e| invalid(key, value, e)),
        "env" | "platform" => charset(value, |c| c.is_ascii_alphanumeric() || "_-".contains(c))
            .then_some(())
            .ok_or_else(|| invalid(key, value, "letters, digits, _ and - only")),
        "build" => matches!(value, "auto" | "local" | "remote")
            .then_some(())
            .ok_or_else(|| invalid(key, value, "auto, local or remote")),
        "jobs" => matches!(value, "grouped" | "per-asset")
            .then_some(())
            .ok_or_else(|| invalid(key, value, "grouped or per-asset")),
        "host" => charset(value, |c| {
            c.is_ascii_alphanumeric() || "_.-@:[]".contains(c)
        })
        .then_some(())
        .ok_or_else(|| {
            invalid(
                key,
                value,
                "an SSH host or alias: letters, digits and _.-@:[] only",
            )
        }),
        "user" => charset(value, |c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            .then_some(())
            .ok_or_else(|| invalid(key, value, "letters, digits and _.- only")),
        "port" => value
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(|_| ())
            .ok_or_else(|| invalid(key, value, "a port number 1-65535")),
        "identity" | "ssh_config" => (!value.is_empty() && !value.contains('\n'))
            .then_some(())
            .ok_or_else(|| invalid(key, value, "a file path")),
        "remote_dir" => {
            let rest = value
                .strip_prefix("$HOME")
                .or_else(|| value.strip_prefix("$SCRATCH"))
                .or_else(|| value.strip_prefix('~'))
                .unwrap_or(value);
            (!value.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)))
            .then_some(())
            .ok_or_else(|| {
                invalid(
                    key,
                    value,
                    "a path of letters, digits and _./- that may start with $HOME, $SCRATCH or ~",
                )
            })
        }
        k if SBATCH_KEYS.contains(&k) => {
            let word = Word {
                text: format!("--{k}={value}"),
                column: 0,
            };
            parse_asset_options(&[word])
                .map(|_| ())
                .map_err(|e| invalid(key, value, e.to_string()))
        }
        other => Err(ConfigError::UnknownKey(other.to_string())),
    }
}

/// The effective configuration, each value with where it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub profile: String,
    values: BTreeMap<String, (String, Source)>,
    pub file: Option<PathBuf>,
}

/// Environment variable of a key: `SLURMBOOK_REMOTE_DIR` for `remote_dir`.
pub fn env_var(key: &str) -> String {
    format!("SLURMBOOK_{}", key.to_ascii_uppercase())
}

impl Settings {
    /// Resolves the configuration: defaults < file profile < environment < `%config`.
    /// The profile is chosen by `%config profile=`, `SLURMBOOK_PROFILE`, the
    /// `requested` one (e.g. `%materialize --profile`), the file's `profile`, else `local`.
    pub fn resolve(
        file: &ConfigFile,
        requested: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let profile = overrides
            .get("profile")
            .cloned()
            .or_else(|| env(&env_var("profile")))
            .or_else(|| requested.map(str::to_owned))
            .or_else(|| file.default_profile.clone())
            .unwrap_or_else(|| "local".into());
        validate("profile", &profile)?;
        let mut values: BTreeMap<String, (String, Source)> = BTreeMap::new();
        values.insert("target".into(), ("local".into(), Source::Default));
        values.insert(
            "remote_dir".into(),
            ("$HOME/slurmbook".into(), Source::Default),
        );
        values.insert("build".into(), ("auto".into(), Source::Default));
        match file.profiles.get(&profile) {
            Some(table) => {
                for (k, v) in table {
                    let source = Source::File {
                        path: file
                            .path
                            .clone()
                            .unwrap_or_else(|| PathBuf::from(FILE_NAME)),
                        profile: profile.clone(),
                    };
                    values.insert(k.clone(), (v.clone(), source));
                }
            }
            None if profile == "local" => {}
            None if profile == "cluster" && file.profiles.is_empty() => {}
            None => {
                return Err(ConfigError::UnknownProfile {
                    name: profile,
                    known: std::iter::once("local".to_string())
                        .chain(file.profiles.keys().cloned())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
        if profile == "local" && !file.profiles.contains_key("local") {
            values.insert("target".into(), ("local".into(), Source::Default));
        }
        for (key, _) in KEYS {
            if *key == "profile" {
                continue;
            }
            let var = env_var(key);
            if let Some(v) = env(&var) {
                validate(key, &v)?;
                values.insert((*key).to_string(), (v, Source::Env(var)));
            }
        }
        for (k, v) in overrides {
            if k == "profile" {
                continue;
            }
            validate(k, v)?;
            values.insert(k.clone(), (v.clone(), Source::Magic));
        }
        Ok(Settings {
            profile,
            values,
            file: file.path.clone(),
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }

    pub fn target(&self) -> Target {
        self.get("target")
            .and_then(|t| t.parse().ok())
            .unwrap_or(Target::Local)
    }

    /// Default sbatch options as `%%asset` options text (`--partition=debug ...`),
    /// to be overridden by each asset's own options.
    pub fn sbatch_defaults(&self) -> crate::model::AssetOptions {
        let words: Vec<Word> = SBATCH_KEYS
            .iter()
            .filter_map(|k| {
                self.get(k).map(|v| Word {
                    text: format!("--{k}={v}"),
                    column: 0,
                })
            })
            .collect();
        parse_asset_options(&words).unwrap_or_default()
    }

    /// `key = value    (source)` lines, for `%config` alone.
    pub fn render(&self) -> String {
        let mut out = format!("profile    = {}\n", self.profile);
        for (key, _) in KEYS.iter().skip(1) {
            if let Some((value, source)) = self.values.get(*key) {
                out.push_str(&format!("{key:<10} = {value:<28} ({source})\n"));
            }
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
}
