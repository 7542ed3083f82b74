//! Python and bash assets (`--lang python|bash`): run by an interpreter of
//! the asset's environment, with upstream values as JSON.
//!
//! * Python: [`PYTHON_RUNNER`] runs the body as a module with each
//!   upstream bound as a variable of its name (JSON-decoded) and writes the
//!   value of the final expression as JSON; `print` goes to the asset's
//!   output; an exception is the asset's failure (its traceback on stderr).
//! * bash: `bash -euo pipefail BODY` with each upstream in an environment
//!   variable of its name ([`shell_value`]) and `$OUT` a fresh directory
//!   (`<asset>-<version>.d` beside the value, so content-addressed by
//!   version); the value is that directory's path.
//!
//! The body is always a file and values are files or environment
//! variables: nothing is interpolated into a shell. In the kernel,
//! [`local`] runs them; in Slurm jobs, the job binary does the same
//! (the bundle), with the packed environment activated.

pub mod bind;
pub mod job;
pub mod local;

/// The Python runner (`python runner.py ASSET CODE OUTPUT [NAME=FILE]...`).
pub const PYTHON_RUNNER: &str = include_str!("runner.py");

/// An upstream value (JSON text) as a bash asset sees it: a string as is
/// (a directory value is its path), anything else as JSON.
pub fn shell_value(json: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from_utf8_lossy(json).trim().to_string(),
    }
}

/// The directory a bash asset's `$OUT` is, beside its value file
/// `<asset>-<version>.json`: `<asset>-<version>.d`.
pub fn out_dir_for(value_file: &str) -> String {
    format!(
        "{}.d",
        value_file.strip_suffix(".json").unwrap_or(value_file)
    )
}

/// The error of a Rust consumer whose Python or bash upstream's value does
/// not decode into the type that upstream states.
pub fn decode_error(upstream: &str, lang: &str, ty: &str, consumer: &str, detail: &str) -> String {
    format!(
        "the value of `{upstream}` (a {lang} asset) does not decode into `{ty}`, the type it states for Rust (`%%asset {upstream}: TYPE --lang {lang}`), so `{consumer}` cannot use it: {detail}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_values_are_strings_as_is_and_json_otherwise() {
        assert_eq!(shell_value(br#""/scratch/x.d""#), "/scratch/x.d");
        assert_eq!(shell_value(b"[1, 2]"), "[1, 2]");
        assert_eq!(shell_value(b"{\"a\":1}\n"), "{\"a\":1}");
        assert_eq!(out_dir_for("/v/raw-abc.json"), "/v/raw-abc.d");
        let e = decode_error("raw", "python", "Vec<i64>", "summary", "invalid type");
        assert!(e.contains("`raw`") && e.contains("`summary`") && e.contains("`Vec<i64>`"));
    }
}
