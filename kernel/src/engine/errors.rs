//! evcxr errors rendered as one Jupyter error: compile errors merged, with the
//! offending lines of the cell underlined.

use super::ErrorInfo;
use evcxr::{CompilationError, Error};

const RED: &str = "\u{1b}[0;31m";
const BOLD: &str = "\u{1b}[1m";
const RESET: &str = "\u{1b}[0m";

pub fn from_evcxr(error: &Error, code: &str) -> ErrorInfo {
    match error {
        Error::CompilationErrors(errors) => compilation(errors, code),
        Error::TypeRedefinedVariablesLost(vars) => ErrorInfo::new(
            "VariablesLost",
            format!(
                "a type was redefined, so these variables were lost: {}",
                vars.join(", ")
            ),
        ),
        Error::SubprocessTerminated(message) => ErrorInfo::new(
            "ProcessTerminated",
            format!(
                "{}; the Rust session was restarted and its variables were lost",
                message.trim()
            ),
        ),
        Error::Message(message) => ErrorInfo::new("Error", message.trim()),
    }
}

fn compilation(errors: &[CompilationError], code: &str) -> ErrorInfo {
    let lines: Vec<&str> = code.lines().collect();
    let mut traceback = Vec::new();
    for error in errors {
        let head = match error.code() {
            Some(c) => format!("{}[{c}]", error.level()),
            None => error.level().to_owned(),
        };
        traceback.push(format!(
            "{RED}{BOLD}{head}{RESET}{BOLD}: {}{RESET}",
            error.message()
        ));
        // Each source line once, with one caret row per label on it (as rustc does).
        let mut shown_line = None;
        for spanned in error.spanned_messages() {
            if let Some(span) = spanned.span {
                let number = span.start_line;
                let source = lines.get(number.saturating_sub(1)).copied().unwrap_or("");
                let width = if span.end_line == span.start_line {
                    span.end_column.saturating_sub(span.start_column).max(1)
                } else {
                    source.len().saturating_sub(span.start_column - 1).max(1)
                };
                if shown_line != Some(number) {
                    traceback.push(format!("{number:>4} | {source}"));
                    shown_line = Some(number);
                }
                traceback.push(format!(
                    "     | {}{RED}{}{RESET} {}",
                    " ".repeat(span.start_column.saturating_sub(1)),
                    "^".repeat(width),
                    spanned.label
                ));
            } else if !spanned.label.is_empty() {
                traceback.push(format!("     = {}", spanned.label));
            }
        }
        for help in error.help() {
            traceback.push(format!("     = help: {help}"));
        }
        if let Some(hint) = error.evcxr_extra_hint() {
            traceback.push(format!("     = hint: {hint}"));
        }
    }
    let evalue = errors
        .iter()
        .map(|e| e.message())
        .collect::<Vec<_>>()
        .join("; ");
    ErrorInfo {
        ename: "CompilationError".into(),
        evalue,
        traceback,
    }
}
