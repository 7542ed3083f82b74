//! [`TransportError`]: what can go wrong reaching the cluster. Connection
//! errors say what happened and what to check.

use thiserror::Error;

use super::ssh::target::SSH_CONFIG_ENV;

/// Errors of a [`super::Transport`] (formerly `SshError`: the SSH
/// transport's connection errors are the first variants).
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("ssh: unknown host `{host}`: it is neither a resolvable name nor a `Host` alias in {config}. Check the spelling, the ssh config (or ${SSH_CONFIG_ENV}) and DNS/VPN.\n{detail}")]
    UnknownHost {
        host: String,
        config: String,
        detail: String,
    },
    #[error("ssh: `{host}` refused the key (Permission denied (publickey)). Check that your public key is in ~/.ssh/authorized_keys on the cluster, that the right IdentityFile is used (`ssh -v {host}` shows which keys are offered) and that your agent holds it (`ssh-add -l`).\n{detail}")]
    KeyRefused { host: String, detail: String },
    #[error("ssh: the host key of `{host}` has CHANGED (REMOTE HOST IDENTIFICATION HAS CHANGED), so slurmbook refuses to connect. If the cluster's admins announced a new host key, verify its fingerprint and remove the old entry with `ssh-keygen -R <hostname>`; otherwise someone may be intercepting the connection.\n{detail}")]
    HostKeyChanged { host: String, detail: String },
    #[error("ssh: the host key of `{host}` could not be verified (Host key verification failed): it is not in your known_hosts and strict host key checking is on. Connect once with `ssh {host}` in a terminal, check the fingerprint against the one your cluster publishes, and accept it.\n{detail}")]
    HostKeyUnknown { host: String, detail: String },
    #[error("ssh: cannot reach `{host}`: {detail}. Check the network or VPN, the host name and port in {config}.")]
    Unreachable {
        host: String,
        config: String,
        detail: String,
    },
    #[error("ssh: connecting to `{host}` failed: {detail}")]
    Connect { host: String, detail: String },
    #[error("ssh: the connection to `{host}` was lost{retried}: {detail}")]
    Disconnected {
        host: String,
        retried: &'static str,
        detail: String,
    },
    #[error("running `{command}` on `{host}` failed: {detail}")]
    Command {
        host: String,
        command: String,
        detail: String,
    },
    #[error("`{program}` is not on this machine's PATH: profile `{profile}` has no `host`, so Slurm commands run here. Run the kernel on a Slurm submit host, or set `host = ...` (slurmbook.toml, SLURMBOOK_HOST or %config host=...) to submit over SSH")]
    NotOnPath { program: String, profile: String },
    #[error("running `{command}` on this machine failed: {detail}")]
    Local { command: String, detail: String },
    #[error("invalid remote path `{path}`: {why}")]
    BadPath { path: String, why: String },
    #[error("invalid argument for a remote command: {0}")]
    BadArgument(String),
    #[error("upload to `{path}` on `{host}` failed: {detail}")]
    Upload {
        host: String,
        path: String,
        detail: String,
    },
}

impl TransportError {
    /// A failure that may pass (the connection, or one command): worth
    /// trying again later rather than giving up on a run.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Disconnected { .. }
                | TransportError::Unreachable { .. }
                | TransportError::Connect { .. }
                | TransportError::Command { .. }
        )
    }
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;
