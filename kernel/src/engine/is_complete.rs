//! Is a cell ready to run? A real scan of Rust's brackets, strings (plain,
//! byte, raw with any number of `#`), char literals versus lifetimes, and
//! comments (line, nested block).

#[derive(Debug, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    /// More input is expected; the indent for the next line.
    Incomplete(String),
    /// No continuation can make this valid (e.g. a mismatched bracket).
    Invalid,
}

pub fn check(code: &str) -> Completeness {
    let trimmed = code.trim_start();
    if trimmed.starts_with('%') {
        return Completeness::Complete;
    }
    let chars: Vec<char> = code.chars().collect();
    let mut stack: Vec<char> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    if i + 1 >= chars.len() {
                        return incomplete(stack.len() + 1);
                    }
                    if chars[i] == '/' && chars[i + 1] == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars[i + 1] == '/' {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            '"' => match skip_string(&chars, i + 1) {
                Some(end) => i = end,
                None => return incomplete(stack.len()),
            },
            'r' | 'b' | 'c' if starts_raw_or_prefixed(&chars, i) => {
                let mut j = i + 1;
                if chars[i] == 'b' || chars[i] == 'c' {
                    if chars.get(j) == Some(&'\'') {
                        match skip_char(&chars, j + 1) {
                            Some(end) => {
                                i = end;
                                continue;
                            }
                            None => return Completeness::Invalid,
                        }
                    }
                    if chars.get(j) == Some(&'"') {
                        match skip_string(&chars, j + 1) {
                            Some(end) => {
                                i = end;
                                continue;
                            }
                            None => return incomplete(stack.len()),
                        }
                    }
                    j += 1; // the 'r' of br"..." / cr"..."
                }
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                // chars[j] == '"'
                j += 1;
                loop {
                    if j >= chars.len() {
                        return incomplete(stack.len());
                    }
                    if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                        i = j + 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                continue;
            }
            '\'' => {
                if let Some(end) = skip_char(&chars, i + 1) {
                    i = end;
                    continue;
                }
                // A lifetime or label: skip the quote only.
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Completeness::Invalid;
                }
            }
            c if c.is_alphanumeric() || c == '_' => {
                // Skip the rest of an identifier so `br` inside `abr"` is not a prefix.
                while i + 1 < chars.len() && (chars[i + 1].is_alphanumeric() || chars[i + 1] == '_')
                {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if !stack.is_empty() {
        return incomplete(stack.len());
    }
    if ends_expecting_more(code) {
        return incomplete(1);
    }
    Completeness::Complete
}

fn incomplete(depth: usize) -> Completeness {
    Completeness::Incomplete("    ".repeat(depth.max(1)))
}

/// Skips a string body starting after its opening quote; returns the index
/// after the closing quote.
fn skip_string(chars: &[char], mut i: usize) -> Option<usize> {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Skips a char literal body starting after `'`; None if it is a lifetime.
fn skip_char(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i)? {
        '\\' => {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' && j - i < 12 {
                j += 1;
            }
            (chars.get(j) == Some(&'\'')).then_some(j + 1)
        }
        _ => (chars.get(i + 1) == Some(&'\'')).then_some(i + 2),
    }
}

fn starts_raw_or_prefixed(chars: &[char], i: usize) -> bool {
    let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    if prev_ident {
        return false;
    }
    let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
    let raw_at = |j: usize| {
        let mut j = j;
        while chars.get(j) == Some(&'#') {
            j += 1;
        }
        chars.get(j) == Some(&'"')
    };
    match chars[i] {
        'r' => raw_at(i + 1),
        'b' | 'c' => {
            rest.starts_with("b'")
                || rest.starts_with("b\"")
                || rest.starts_with("c\"")
                || ((rest.starts_with("br") || rest.starts_with("cr")) && raw_at(i + 2))
        }
        _ => false,
    }
}

fn ends_expecting_more(code: &str) -> bool {
    let last = code
        .lines()
        .map(|l| match l.find("//") {
            Some(p) => &l[..p],
            None => l,
        })
        .map(str::trim_end)
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("");
    [
        "=", "+", "-", "*", "/", "&&", "||", "->", "=>", ".", ",", "|",
    ]
    .iter()
    .any(|op| last.ends_with(op))
        && !last.ends_with("..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Completeness::*;

    #[test]
    fn complete_code() {
        for code in [
            "1 + 2",
            "let x = vec![1, 2, 3];",
            "fn f() -> i32 { 1 }",
            "let s = \"a { b\";",
            "let c = '{';",
            "fn f<'a>(x: &'a str) -> &'a str { x }",
            "let r = r#\"raw \" { \"#;",
            "let b = b'}';",
            "// a comment with {\nlet x = 1;",
            "/* nested /* { */ */ 1",
            "%materialize *",
            "let x = 0..;",
        ] {
            assert_eq!(check(code), Complete, "{code:?}");
        }
    }

    #[test]
    fn incomplete_code_with_indent() {
        assert_eq!(check("fn f() {"), Incomplete("    ".into()));
        assert_eq!(check("fn f() {\n    if x {"), Incomplete("        ".into()));
        assert!(matches!(check("let s = \"open"), Incomplete(_)));
        assert!(matches!(check("let r = r##\"open\"#"), Incomplete(_)));
        assert!(matches!(check("/* open"), Incomplete(_)));
        assert!(matches!(check("let x ="), Incomplete(_)));
        assert!(matches!(check("foo(1,"), Incomplete(_)));
    }

    #[test]
    fn invalid_code() {
        assert_eq!(check("fn f() { )"), Invalid);
        assert_eq!(check("}"), Invalid);
        assert_eq!(check("let v = [1, 2);"), Invalid);
    }
}
