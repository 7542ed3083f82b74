//! The connection file a Jupyter client writes for the kernel.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::Path;

/// `Debug` leaves the key out: it is a secret and must never reach a log.
#[derive(Clone, Deserialize)]
pub struct ConnectionInfo {
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default = "default_ip")]
    pub ip: String,
    pub shell_port: u16,
    pub iopub_port: u16,
    pub stdin_port: u16,
    pub control_port: u16,
    pub hb_port: u16,
    #[serde(default)]
    pub key: String,
    #[serde(default = "default_scheme")]
    pub signature_scheme: String,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("transport", &self.transport)
            .field("ip", &self.ip)
            .field("shell_port", &self.shell_port)
            .field("iopub_port", &self.iopub_port)
            .field("stdin_port", &self.stdin_port)
            .field("control_port", &self.control_port)
            .field("hb_port", &self.hb_port)
            .field(
                "key",
                &if self.key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("signature_scheme", &self.signature_scheme)
            .finish()
    }
}

fn default_transport() -> String {
    "tcp".into()
}
fn default_ip() -> String {
    "127.0.0.1".into()
}
fn default_scheme() -> String {
    "hmac-sha256".into()
}

impl ConnectionInfo {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading connection file {}", path.display()))?;
        let info: ConnectionInfo = serde_json::from_str(&text)
            .with_context(|| format!("parsing connection file {}", path.display()))?;
        if info.transport != "tcp" {
            bail!(
                "unsupported transport {:?}: only tcp is supported",
                info.transport
            );
        }
        if !info.key.is_empty() && info.signature_scheme != "hmac-sha256" {
            bail!(
                "unsupported signature scheme {:?}: only hmac-sha256 is supported",
                info.signature_scheme
            );
        }
        Ok(info)
    }

    pub fn endpoint(&self, port: u16) -> String {
        format!("{}://{}:{}", self.transport, self.ip, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_jupyter_client_connection_file() {
        let dir = std::env::temp_dir().join(format!("sb-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kernel.json");
        std::fs::write(
            &path,
            r#"{"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
               "hb_port": 5, "ip": "127.0.0.1", "key": "abc", "transport": "tcp",
               "signature_scheme": "hmac-sha256", "kernel_name": "slurmbook"}"#,
        )
        .unwrap();
        let info = ConnectionInfo::from_file(&path).unwrap();
        assert_eq!(info.endpoint(info.iopub_port), "tcp://127.0.0.1:2");
        assert_eq!(info.key, "abc");
        let shown = format!("{info:?}");
        assert!(
            !shown.contains("abc") && shown.contains("<redacted>"),
            "{shown}"
        );
        std::fs::write(&path, r#"{"shell_port": 1}"#).unwrap();
        assert!(ConnectionInfo::from_file(&path).is_err());
    }
}
