//! `slurmbook install` / `uninstall`: the kernelspec from `kernelspec/`,
//! written where Jupyter looks for kernels.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub const KERNEL_NAME: &str = "slurmbook";

const KERNEL_JSON: &str = include_str!("../../kernelspec/kernel.json");
const FILES: &[(&str, &[u8])] = &[
    (
        "logo-32x32.png",
        include_bytes!("../../kernelspec/logo-32x32.png"),
    ),
    (
        "logo-64x64.png",
        include_bytes!("../../kernelspec/logo-64x64.png"),
    ),
    (
        "logo-svg.svg",
        include_bytes!("../../kernelspec/logo-svg.svg"),
    ),
];

/// Where to install: mirrors `jupyter kernelspec install` flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(multiple = false)]
pub struct Location {
    /// Install for the current user (the default).
    #[arg(long)]
    pub user: bool,
    /// Install into the Python environment Jupyter runs in (sys.prefix).
    #[arg(long)]
    pub sys_prefix: bool,
    /// Install under PREFIX/share/jupyter/kernels.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<PathBuf>,
}

impl Location {
    pub fn kernels_dir(&self) -> Result<PathBuf> {
        if let Some(prefix) = &self.prefix {
            return Ok(prefix.join("share/jupyter/kernels"));
        }
        if self.sys_prefix {
            return Ok(sys_prefix()?.join("share/jupyter/kernels"));
        }
        user_kernels_dir()
    }
}

fn user_kernels_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR") {
        return Ok(PathBuf::from(dir).join("kernels"));
    }
    let base = if cfg!(target_os = "macos") {
        dirs::home_dir().map(|h| h.join("Library/Jupyter"))
    } else {
        dirs::data_dir().map(|d| d.join("jupyter"))
    };
    Ok(base
        .context("cannot find the user's data directory")?
        .join("kernels"))
}

fn sys_prefix() -> Result<PathBuf> {
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(dir) = std::env::var_os(var) {
            return Ok(PathBuf::from(dir));
        }
    }
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .context("running python3 to find sys.prefix (or set VIRTUAL_ENV / use --prefix)")?;
    if !output.status.success() {
        bail!("python3 could not tell its sys.prefix");
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// The kernel.json for this binary.
pub fn kernel_json(executable: &Path) -> Result<String> {
    let mut spec: serde_json::Value =
        serde_json::from_str(KERNEL_JSON).context("kernelspec/kernel.json")?;
    spec["argv"][0] = serde_json::Value::String(executable.display().to_string());
    Ok(serde_json::to_string_pretty(&spec)?)
}

pub fn install(location: &Location) -> Result<PathBuf> {
    let dir = location.kernels_dir()?.join(KERNEL_NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("finding the slurmbook executable")?;
    std::fs::write(dir.join("kernel.json"), kernel_json(&exe)?)
        .with_context(|| format!("writing {}", dir.join("kernel.json").display()))?;
    for (name, bytes) in FILES {
        std::fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))?;
    }
    Ok(dir)
}

pub fn uninstall(location: &Location) -> Result<Option<PathBuf>> {
    let dir = location.kernels_dir()?.join(KERNEL_NAME);
    if !dir.exists() {
        return Ok(None);
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_into_prefix_and_uninstalls() {
        let prefix = std::env::temp_dir().join(format!("sb-install-{}", std::process::id()));
        let loc = Location {
            prefix: Some(prefix.clone()),
            ..Default::default()
        };
        let dir = install(&loc).unwrap();
        assert_eq!(dir, prefix.join("share/jupyter/kernels/slurmbook"));
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap())
                .unwrap();
        assert_eq!(spec["display_name"], "Rust (slurmbook)");
        assert_eq!(spec["interrupt_mode"], "message");
        assert!(spec["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "{connection_file}"));
        assert!(dir.join("logo-64x64.png").exists());
        assert_eq!(uninstall(&loc).unwrap(), Some(dir.clone()));
        assert!(!dir.exists());
        std::fs::remove_dir_all(prefix).ok();
    }
}
