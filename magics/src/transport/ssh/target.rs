//! Where the SSH transport connects: [`SshTarget`] (an `ssh` destination
//! plus overrides of the ssh config), and the connection's fixed settings.

use std::path::PathBuf;
use std::time::Duration;

/// Environment variable naming an ssh config file to use instead of
/// `~/.ssh/config` (see [`SshTarget::with_env`]).
pub const SSH_CONFIG_ENV: &str = "SLURMBOOK_SSH_CONFIG";

/// How long connecting (TCP + authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where to connect. `host` is anything `ssh` accepts as a destination,
/// typically a `~/.ssh/config` alias; the other fields override the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshTarget {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
}

impl SshTarget {
    pub fn new(host: impl Into<String>) -> SshTarget {
        SshTarget {
            host: host.into(),
            ..SshTarget::default()
        }
    }

    /// Uses `$SLURMBOOK_SSH_CONFIG` as the config file when none is set.
    pub fn with_env(mut self) -> SshTarget {
        if self.config_file.is_none() {
            if let Some(p) = std::env::var_os(SSH_CONFIG_ENV).filter(|p| !p.is_empty()) {
                self.config_file = Some(PathBuf::from(p));
            }
        }
        self
    }

    /// The ssh config in effect, for messages.
    pub(crate) fn config_text(&self) -> String {
        match &self.config_file {
            Some(p) => p.display().to_string(),
            None => "~/.ssh/config".to_string(),
        }
    }
}
