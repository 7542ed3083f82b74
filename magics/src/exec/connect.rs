//! Where a cluster run goes: the transport of the effective configuration
//! (SSH to `host`, or this machine) and conda platform names.

use crate::config::Settings;
use crate::transport::{SshTarget, TransportTarget};

/// How the effective configuration reaches Slurm: SSH to `host`, or, in a
/// profile without one, this machine (a kernel on a submit host).
pub fn transport_target(settings: &Settings) -> TransportTarget {
    match ssh_target(settings) {
        Some(target) => TransportTarget::Ssh(target),
        None => TransportTarget::Local {
            profile: settings.profile.clone(),
        },
    }
}

/// The SSH target of the effective configuration; none without `host`.
pub fn ssh_target(settings: &Settings) -> Option<SshTarget> {
    let host = settings.host()?;
    let mut target = SshTarget::new(host);
    target.user = settings.user().map(str::to_owned);
    target.port = settings.port();
    target.identity = settings.identity().map(Into::into);
    target.config_file = settings.ssh_config().map(Into::into);
    Some(target.with_env())
}

/// `linux-64`-style name of this machine's platform.
pub fn local_platform() -> String {
    platform_name(std::env::consts::OS, std::env::consts::ARCH)
}

/// The conda platform name of an OS and architecture as `uname -sm` or Rust
/// name them (`linux-64`, `osx-arm64`, ...).
pub fn platform_name(os: &str, arch: &str) -> String {
    let os = match os.to_ascii_lowercase().as_str() {
        "linux" => "linux",
        "macos" | "darwin" => "osx",
        other => return format!("{other}-{arch}"),
    };
    let arch = match arch {
        "x86_64" | "amd64" => "64",
        "aarch64" | "arm64" => {
            if os == "osx" {
                "arm64"
            } else {
                "aarch64"
            }
        }
        other => other,
    };
    format!("{os}-{arch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_follow_conda() {
        assert_eq!(platform_name("Linux", "x86_64"), "linux-64");
        assert_eq!(platform_name("Linux", "aarch64"), "linux-aarch64");
        assert_eq!(platform_name("macos", "aarch64"), "osx-arm64");
        assert_eq!(
            local_platform(),
            platform_name(std::env::consts::OS, std::env::consts::ARCH)
        );
    }
}
