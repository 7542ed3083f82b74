//! The line protocol between the evcxr child process (the `child_io`
//! forwarders) and the kernel's output pumps (`pumps`). A leaf module: both
//! sides import it, it imports neither. evcxr forwards every
//! line of its child's stdout and stderr that it does not consume itself; the
//! child marks a few lines so the kernel can tell rich content, panics,
//! partial lines and the end of a cell's stderr apart from plain text.

/// Prefix of a line carrying one rich display (a JSON object of mime bundles).
pub const DISPLAY: &str = "\u{2}SLURMBOOK_DISPLAY ";
/// A line saying user code panicked (sent just before evcxr's own notice).
pub const PANIC: &str = "\u{2}SLURMBOOK_PANIC";
/// Suffix of a line that had no newline in the user's output.
pub const NO_NEWLINE: char = '\u{1}';
/// Line written on stderr after everything the cell wrote to stderr.
pub const STDERR_SYNC: &str = "\u{3}SLURMBOOK_STDERR_SYNC";

/// evcxr's own markers, which must always start a line for evcxr to see them.
pub const EVCXR_COMPLETE: &str = "EVCXR_EXECUTION_COMPLETE";
pub const EVCXR_PANIC: &str = "EVCXR_PANIC_NOTIFICATION";
pub const EVCXR_BEGIN: &str = "EVCXR_BEGIN_CONTENT ";
pub const EVCXR_END: &str = "EVCXR_END_CONTENT";
pub const EVCXR_INPUT: &str = "EVCXR_INPUT_REQUEST";

/// Where in `line` (after its start) an evcxr marker begins, if one does:
/// user output without a trailing newline glues itself to the next marker.
pub fn glued_marker(line: &str) -> Option<usize> {
    for marker in [EVCXR_COMPLETE, EVCXR_PANIC] {
        if line.len() > marker.len() && line.ends_with(marker) {
            return Some(line.len() - marker.len());
        }
    }
    for marker in [EVCXR_BEGIN, EVCXR_INPUT] {
        if let Some(pos) = line.rfind(marker) {
            if pos > 0 {
                return Some(pos);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_markers_glued_to_partial_output() {
        assert_eq!(glued_marker("abcEVCXR_EXECUTION_COMPLETE"), Some(3));
        assert_eq!(glued_marker("EVCXR_EXECUTION_COMPLETE"), None);
        assert_eq!(glued_marker("x EVCXR_BEGIN_CONTENT text/html"), Some(2));
        assert_eq!(glued_marker("plain text"), None);
    }
}
