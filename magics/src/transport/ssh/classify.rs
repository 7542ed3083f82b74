//! Turning what `ssh` and the `openssh` crate said into a helpful
//! [`TransportError`], and short renderings of commands and error chains
//! for messages.

use super::super::error::TransportError;
use super::target::SshTarget;

/// A command line shortened to its first line (at most 120 bytes).
pub(super) fn abbreviate(line: &str) -> String {
    let first = line.lines().next().unwrap_or("");
    if first.len() > 120 || line.contains('\n') {
        let mut end = first.len().min(120);
        while !first.is_char_boundary(end) {
            end -= 1;
        }
        format!("{} ...", &first[..end])
    } else {
        first.to_string()
    }
}

/// An error and its sources, each once.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Turn what `ssh` said when connecting into a helpful error.
pub(crate) fn classify_ssh_message(target: &SshTarget, detail: &str) -> TransportError {
    let host = target.host.clone();
    let detail = detail.trim().to_string();
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || detail.contains("Host key for ") && detail.contains("has changed")
    {
        TransportError::HostKeyChanged { host, detail }
    } else if detail.contains("Host key verification failed")
        || detail.contains("No ED25519 host key is known")
        || detail.contains("host key is known for")
    {
        TransportError::HostKeyUnknown { host, detail }
    } else if detail.contains("Permission denied") {
        TransportError::KeyRefused { host, detail }
    } else if detail.contains("Could not resolve hostname")
        || detail.contains("Name or service not known")
        || detail.contains("nodename nor servname")
    {
        TransportError::UnknownHost {
            host,
            config: target.config_text(),
            detail,
        }
    } else if detail.contains("Connection refused")
        || detail.contains("timed out")
        || detail.contains("No route to host")
        || detail.contains("Network is unreachable")
    {
        TransportError::Unreachable {
            host,
            config: target.config_text(),
            detail,
        }
    } else {
        TransportError::Connect { host, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_classified() {
        let t = SshTarget::new("h");
        let c = |s: &str| classify_ssh_message(&t, s);
        assert!(matches!(
            c("ssh: Could not resolve hostname h: Name or service not known"),
            TransportError::UnknownHost { .. }
        ));
        assert!(matches!(
            c("root@127.0.0.1: Permission denied (publickey)."),
            TransportError::KeyRefused { .. }
        ));
        assert!(matches!(
            c("@@@\nWARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\nHost key verification failed."),
            TransportError::HostKeyChanged { .. }
        ));
        assert!(matches!(
            c("No ED25519 host key is known for [127.0.0.1]:5 and you have requested strict checking.\nHost key verification failed."),
            TransportError::HostKeyUnknown { .. }
        ));
        assert!(matches!(
            c("ssh: connect to host 127.0.0.1 port 1: Connection refused"),
            TransportError::Unreachable { .. }
        ));
    }
}
