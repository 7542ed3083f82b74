//! Names: Rust identifiers (asset, check and dependency names), Rust
//! keywords, and the simple names Slurm and pixi accept (partitions,
//! accounts, groups, environments, profiles). Validated strictly because
//! names end up in remote commands and generated code.

/// Rust's strict and reserved keywords (2021 edition), which cannot name assets.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Whether `s` is a Rust keyword.
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// An ASCII Rust identifier that is not a keyword and not `_`: what asset,
/// check and dependency names must be.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s != "_"
        && s.len() <= 128
        && !is_keyword(s)
}

/// A non-empty word of at most 256 characters, not starting with `-`,
/// whose every character passes `ok`.
pub fn valid_chars(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.starts_with('-') && s.chars().all(ok)
}

/// A decimal integer >= 1 of at most 9 digits.
pub fn positive_int(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n >= 1)
}

/// A character of a Slurm name (partition, account, QOS) or a pixi environment.
pub fn slurm_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

/// A name as a Slurm partition, account or QOS, a group or a pixi environment.
pub fn is_simple_name(s: &str) -> bool {
    valid_chars(s, slurm_name_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "_a", "temperatures", "x1", "A_B"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "_", "1a", "a-b", "fn", "self", "é", "a b", "r#x"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
