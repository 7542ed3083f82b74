//! The configuration keys, each declared once with its type, value form,
//! help, parser and default ([`Keys`]); with them the typed accessors of
//! [`Settings`] (`settings.port()`, `settings.remote_dir()`, ...). The
//! sbatch defaults are not declared here: they are the `%%asset` options
//! that map to an `sbatch` option (see `AssetOptions`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::Settings;
use crate::model::options::spec::declare_options;
use crate::model::options::values::{self, word};
use crate::model::{JobGrouping, Target};

/// Where the job binary is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Here when this machine's platform is the cluster's, else on the cluster.
    Auto,
    Local,
    Remote,
}

impl Build {
    pub fn as_str(self) -> &'static str {
        match self {
            Build::Auto => "auto",
            Build::Local => "local",
            Build::Remote => "remote",
        }
    }
}

impl FromStr for Build {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Build::Auto),
            "local" => Ok(Build::Local),
            "remote" => Ok(Build::Remote),
            _ => Err("`auto`, `local` or `remote`".to_string()),
        }
    }
}

fn host(v: &str) -> Result<String, String> {
    word(
        v,
        |c| c.is_ascii_alphanumeric() || "_.-@:[]".contains(c),
        "an SSH host or alias: letters, digits and _.-@:[] only",
    )
}

fn user(v: &str) -> Result<String, String> {
    word(
        v,
        |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
        "a user name: letters, digits and _.- only",
    )
}

fn port(v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|p| *p > 0 && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| "a port number 1-65535".to_string())
}

fn path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err("a file path".to_string());
    }
    Ok(PathBuf::from(v))
}

fn remote_dir(v: &str) -> Result<String, String> {
    // A variable is expanded only as a whole first component (`~root`,
    // `$HOMEx` are not); a leading `-` would read as an option.
    let rest = ["${HOME}", "$HOME", "${SCRATCH}", "$SCRATCH", "~"]
        .iter()
        .find_map(|p| {
            v.strip_prefix(p)
                .filter(|r| r.is_empty() || r.starts_with('/'))
        })
        .unwrap_or(v);
    if !v.is_empty()
        && !v.starts_with('-')
        && (rest == v || rest.is_empty() || rest.starts_with('/'))
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
    {
        Ok(v.to_string())
    } else {
        Err(
            "a path of letters, digits and _./- that may start with $HOME/, $SCRATCH/ or ~/"
                .to_string(),
        )
    }
}

/// A pixi environment name, or a conda platform.
fn env_word(v: &str) -> Result<String, String> {
    word(
        v,
        |c| c.is_ascii_alphanumeric() || "_-".contains(c),
        "letters, digits, _ and - only",
    )
}

/// A command for `notify`: it must split into argv (it is never run by a shell).
fn command(v: &str) -> Result<String, String> {
    crate::policy::notify::argv(v).map(|_| v.to_string())
}

/// A Rust edition (for `slurmbook fmt`, `lint`, `test` and `export`).
fn edition(v: &str) -> Result<String, String> {
    match v {
        "2015" | "2018" | "2021" | "2024" => Ok(v.to_string()),
        _ => Err("a Rust edition: 2015, 2018, 2021 or 2024".to_string()),
    }
}

/// A key's value as [`Settings`] hands it out: borrowed, or copied when small.
pub trait View {
    type Out<'a>
    where
        Self: 'a;
    fn view(&self) -> Self::Out<'_>;
}

impl View for String {
    type Out<'a> = &'a str;
    fn view(&self) -> &str {
        self
    }
}

impl View for Option<String> {
    type Out<'a> = Option<&'a str>;
    fn view(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl View for Option<PathBuf> {
    type Out<'a> = Option<&'a Path>;
    fn view(&self) -> Option<&Path> {
        self.as_deref()
    }
}

macro_rules! view_by_copy {
    ($($t:ty),*) => {$(
        impl View for $t {
            type Out<'a> = $t;
            fn view(&self) -> $t {
                *self
            }
        }
    )*};
}
view_by_copy!(Target, Build, Option<u16>, Option<JobGrouping>);

/// Declares [`Keys`] (with [`declare_options!`]) and an accessor on
/// [`Settings`] for each key, of the same name.
macro_rules! config_keys {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( pub $field:ident : $fty:ty = $kind:ident ( $($spec:tt)* ) ),* $(,)?
        }
    ) => {
        declare_options! {
            $(#[$meta])*
            pub struct $name {
                $( pub $field: $fty = $kind($($spec)*) ),*
            }
        }

        impl Settings {
            $(
                #[doc = concat!("The effective `", stringify!($field), "`.")]
                pub fn $field(&self) -> <$fty as View>::Out<'_> {
                    View::view(&self.keys.$field)
                }
            )*
        }
    };
}

config_keys! {
    /// The configuration keys besides the sbatch defaults, typed.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Keys {
        pub profile: String = value("profile", "NAME",
            "the active profile (a [profiles.NAME] table of slurmbook.toml)",
            values::profile, default "local"),
        pub target: Target = value("target", "local|slurm",
            "where assets run by default: local (in the kernel) or slurm",
            values::target, default "local"),
        pub host: Option<String> = option("host", "HOST",
            "the cluster's SSH host (any ~/.ssh/config alias)", host),
        pub user: Option<String> = option("user", "USER", "SSH user", user),
        pub port: Option<u16> = option("port", "PORT", "SSH port", port),
        pub identity: Option<PathBuf> = option("identity", "FILE", "SSH private key file", path),
        pub ssh_config: Option<PathBuf> = option("ssh_config", "FILE",
            "an ssh_config file to use instead of ~/.ssh/config", path),
        pub remote_dir: String = value("remote_dir", "DIR",
            "slurmbook's directory on the cluster ($HOME and $SCRATCH are expanded there)",
            remote_dir, default "$HOME/slurmbook"),
        pub env: Option<String> = option("env", "ENV",
            "the pixi environment jobs run in (from the notebook project's pixi.lock); none: the cluster's own",
            env_word),
        pub platform: Option<String> = option("platform", "PLATFORM",
            "the cluster's conda platform (e.g. linux-64), when it should not be detected",
            env_word),
        pub build: Build = value("build", "auto|local|remote",
            "where the job binary is built: auto (here when this machine's platform is the cluster's, else on the cluster), local or remote",
            str::parse, default "auto"),
        pub jobs: Option<JobGrouping> = option("jobs", "grouped|per-asset",
            "Slurm jobs of a run: grouped (compatible assets share one allocation, the default) or per-asset",
            values::jobs),
        pub notify: Option<String> = option("notify", "COMMAND",
            "run when an asset newly fails its freshness policy (split into argv, no shell); SLURMBOOK_ASSET, SLURMBOOK_FRESHNESS, SLURMBOOK_AGE_S in its environment",
            command),
        pub edition: String = value("edition", "EDITION",
            "the Rust edition of the notebook's code (rustfmt in `slurmbook fmt`; the crate of lint, test and export)",
            edition, default "2021"),
    }
}
