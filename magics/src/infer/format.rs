//! Format strings: which macros take one, and the identifiers a format
//! string captures implicitly (`"{x}"`, `"{x:>w$}"`).

/// Index of the format string among a format-like macro's arguments.
pub(crate) fn format_string_index(macro_name: &str) -> Option<usize> {
    match macro_name {
        "print" | "println" | "eprint" | "eprintln" | "format" | "format_args" | "panic"
        | "unreachable" | "todo" | "unimplemented" | "info" | "warn" | "error" | "debug"
        | "trace" | "bail" | "anyhow" => Some(0),
        "write" | "writeln" | "assert" | "debug_assert" | "ensure" => Some(1),
        "assert_eq" | "assert_ne" | "debug_assert_eq" | "debug_assert_ne" => Some(2),
        _ => None,
    }
}

/// Identifiers captured implicitly by a format string: `{x}`, `{x:?}`, and
/// width/precision arguments such as `{:>w$}` or `{:.p$}`.
pub fn format_captures(fmt: &str) -> Vec<String> {
    let is_ident = |s: &str| {
        s.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
            && s != "_"
    };
    let mut out = Vec::new();
    let mut chars = fmt.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
            }
            '{' => {
                let start = i + 1;
                let mut end = fmt.len();
                for (j, d) in chars.by_ref() {
                    if d == '}' {
                        end = j;
                        break;
                    }
                }
                let inner = &fmt[start.min(fmt.len())..end];
                let (arg, spec) = inner.split_once(':').unwrap_or((inner, ""));
                let arg = arg.trim();
                if is_ident(arg) {
                    out.push(arg.to_string());
                }
                // `name$` inside the spec (width or precision).
                let bytes: Vec<char> = spec.chars().collect();
                let mut k = 0;
                while k < bytes.len() {
                    if bytes[k].is_alphabetic() || bytes[k] == '_' {
                        let s = k;
                        while k < bytes.len() && (bytes[k].is_alphanumeric() || bytes[k] == '_') {
                            k += 1;
                        }
                        if bytes.get(k) == Some(&'$') {
                            let name: String = bytes[s..k].iter().collect();
                            if is_ident(&name) {
                                out.push(name);
                            }
                        }
                    } else {
                        k += 1;
                    }
                }
            }
            _ => {}
        }
    }
    out
}
