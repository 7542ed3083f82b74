//! Content of the Jupyter messages the kernel handles: typed requests (parsed
//! leniently, with the protocol's defaults) and builders for replies that
//! validate against the message-spec schemas (no `null` where an object is
//! expected).

use serde::Deserialize;
use serde_json::{json, Map, Value};

pub type MimeBundle = Map<String, Value>;

#[derive(Debug, Clone, Deserialize)]
pub struct ExecuteRequest {
    pub code: String,
    #[serde(default)]
    pub silent: bool,
    #[serde(default = "yes")]
    pub store_history: bool,
    #[serde(default)]
    pub user_expressions: Option<Map<String, Value>>,
    #[serde(default)]
    pub allow_stdin: bool,
    #[serde(default = "yes")]
    pub stop_on_error: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct CodeAtCursor {
    pub code: String,
    /// Position in Unicode code points, as the protocol (5.2+) specifies.
    #[serde(default)]
    pub cursor_pos: Option<usize>,
    #[serde(default)]
    pub detail_level: u8,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IsCompleteRequest {
    pub code: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    pub output: bool,
    #[serde(default)]
    pub raw: bool,
    #[serde(default = "tail")]
    pub hist_access_type: String,
    #[serde(default)]
    pub session: Option<i64>,
    #[serde(default)]
    pub start: Option<i64>,
    #[serde(default)]
    pub stop: Option<i64>,
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub unique: bool,
}

fn tail() -> String {
    "tail".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownRequest {
    #[serde(default)]
    pub restart: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommOpen {
    pub comm_id: String,
    #[serde(default)]
    pub target_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommInfoRequest {
    #[serde(default)]
    pub target_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputReply {
    #[serde(default)]
    pub value: String,
}

/// Converts a cursor position in code points into a byte offset into `code`.
pub fn char_to_byte(code: &str, chars: usize) -> usize {
    code.char_indices()
        .nth(chars)
        .map(|(i, _)| i)
        .unwrap_or(code.len())
}

/// Converts a byte offset into `code` into a position in code points.
pub fn byte_to_char(code: &str, byte: usize) -> usize {
    code[..byte.min(code.len())].chars().count()
}

pub fn kernel_info_reply() -> Value {
    json!({
        "status": "ok",
        "protocol_version": crate::wire::message::PROTOCOL_VERSION,
        "implementation": "slurmbook",
        "implementation_version": env!("CARGO_PKG_VERSION"),
        "language_info": {
            "name": "Rust",
            "version": rustc_version(),
            "mimetype": "text/rust",
            "file_extension": ".rs",
            "pygments_lexer": "rust",
            "codemirror_mode": "rust",
        },
        "banner": format!(
            "slurmbook {} — Rust in Jupyter (evcxr 0.22), with notebook assets that run \
             in the kernel or as Slurm jobs. Type %help for the magics.",
            env!("CARGO_PKG_VERSION")
        ),
        "debugger": false,
        "help_links": [
            {"text": "slurmbook magics (%help)", "url": "https://github.com/slurmbook/slurmbook#magics"},
            {"text": "Rust standard library", "url": "https://doc.rust-lang.org/std/"},
            {"text": "evcxr commands", "url": "https://github.com/evcxr/evcxr/blob/main/COMMON.md"},
        ],
    })
}

fn rustc_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            std::process::Command::new("rustc")
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
                .unwrap_or_else(|| "unknown".into())
        })
        .clone()
}

pub fn status(state: &str) -> Value {
    json!({ "execution_state": state })
}

pub fn stream(name: &str, text: &str) -> Value {
    json!({ "name": name, "text": text })
}

pub fn display_data(data: MimeBundle, display_id: Option<&str>) -> Value {
    let mut content = json!({ "data": data, "metadata": {} });
    if let Some(id) = display_id {
        content["transient"] = json!({ "display_id": id });
    }
    content
}

pub fn update_display_data(data: MimeBundle, display_id: &str) -> Value {
    json!({ "data": data, "metadata": {}, "transient": { "display_id": display_id } })
}

pub fn execute_result(count: u32, data: MimeBundle) -> Value {
    json!({ "execution_count": count, "data": data, "metadata": {} })
}

pub fn error_content(ename: &str, evalue: &str, traceback: &[String]) -> Value {
    json!({ "ename": ename, "evalue": evalue, "traceback": traceback })
}

pub fn text_bundle(text: &str) -> MimeBundle {
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(text.to_owned()));
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_conversions_use_code_points() {
        let code = "let é = 1; é";
        let byte = char_to_byte(code, 12);
        assert_eq!(&code[byte..], "");
        assert_eq!(char_to_byte(code, 5), "let é".len());
        assert_eq!(byte_to_char(code, "let é".len()), 5);
        assert_eq!(char_to_byte(code, 100), code.len());
    }

    #[test]
    fn requests_take_protocol_defaults() {
        let req: ExecuteRequest = serde_json::from_value(json!({"code": "1"})).unwrap();
        assert!(req.store_history && req.stop_on_error && !req.silent);
        let hist: HistoryRequest =
            serde_json::from_value(json!({"hist_access_type": "search", "pattern": "a*"})).unwrap();
        assert_eq!(hist.n, None);
        assert!(!hist.unique);
    }

    #[test]
    fn display_without_id_has_no_null_transient() {
        let c = display_data(text_bundle("x"), None);
        assert!(c.get("transient").is_none());
        let c = display_data(text_bundle("x"), Some("d1"));
        assert_eq!(c["transient"]["display_id"], "d1");
    }
}
