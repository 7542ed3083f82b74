//! Rich content from evcxr: mime bundles whose JSON types are decoded, and the
//! special mime type that asks the frontend to clear the cell's output.

use super::Output;
use crate::protocol::MimeBundle;
use serde_json::Value;

/// Printing a display of this type clears the cell's output, e.g.
/// `println!("EVCXR_BEGIN_CONTENT {CLEAR_OUTPUT_MIME}\n{{\"wait\":true}}\nEVCXR_END_CONTENT")`.
pub const CLEAR_OUTPUT_MIME: &str = "application/vnd.slurmbook.clear-output+json";

/// A bundle whose values are the raw text evcxr received.
pub fn bundle<I: IntoIterator<Item = (String, String)>>(raw: I) -> MimeBundle {
    raw.into_iter()
        .map(|(mime, text)| {
            let value = if is_json_mime(&mime) {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            } else {
                Value::String(text)
            };
            (mime, value)
        })
        .collect()
}

fn is_json_mime(mime: &str) -> bool {
    mime == "application/json" || mime.ends_with("+json")
}

pub fn display_output(raw: serde_json::Map<String, Value>) -> Output {
    let raw = raw.into_iter().map(|(mime, v)| {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        (mime, text)
    });
    content_output(raw)
}

/// Takes a clear-output request out of a bundle: the request (if there was
/// one) and what else the bundle holds.
pub fn split_clear(mut data: MimeBundle) -> (Option<Output>, MimeBundle) {
    let clear = data.remove(CLEAR_OUTPUT_MIME).map(|c| Output::ClearOutput {
        wait: c.get("wait").and_then(Value::as_bool).unwrap_or(false),
    });
    (clear, data)
}

/// Content evcxr handed over (as it printed it, or collected at the end of
/// the cell): a display, or the request to clear the output. Every path
/// from evcxr's content to messages goes through here.
pub fn content_output<I: IntoIterator<Item = (String, String)>>(raw: I) -> Output {
    let data = bundle(raw);
    if let Some(clear) = data.get(CLEAR_OUTPUT_MIME) {
        let wait = clear.get("wait").and_then(Value::as_bool).unwrap_or(false);
        return Output::ClearOutput { wait };
    }
    Output::Display(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_mimes_are_decoded_and_clear_output_recognised() {
        let b = bundle([("application/json".to_string(), "{\"a\":1}".to_string())]);
        assert_eq!(b["application/json"]["a"], 1);
        let mut raw = serde_json::Map::new();
        raw.insert(
            CLEAR_OUTPUT_MIME.into(),
            Value::String("{\"wait\":true}".into()),
        );
        assert!(matches!(
            display_output(raw),
            Output::ClearOutput { wait: true }
        ));
        let mut raw = serde_json::Map::new();
        raw.insert("text/html".into(), Value::String("<b>x</b>".into()));
        assert!(matches!(display_output(raw), Output::Display(_)));
        let collected = [(
            CLEAR_OUTPUT_MIME.to_string(),
            "{\"wait\": false}".to_string(),
        )];
        assert!(matches!(
            content_output(collected),
            Output::ClearOutput { wait: false }
        ));
    }
}
