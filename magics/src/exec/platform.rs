//! Conda platform names (`linux-64`, `osx-arm64`, ...) of this machine and
//! of a cluster (`uname -sm` there).

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
