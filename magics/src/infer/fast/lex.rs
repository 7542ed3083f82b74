//! A lexer for the common subset of Rust tokens, producing exactly what
//! proc-macro2 produces for them: the same tokens, the same `Joint` /
//! `Alone` spacing, so the same normalized text. Anything outside the subset
//! (doc comments, lifetimes, raw or byte strings, unusual escapes or
//! numbers, non-ASCII outside literals and comments, `\r`) gives `None`.

/// A token. Groups are flat: an `Open` records the index of its `Close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    Punct(u8),
    Str,
    Char,
    Num,
    Open(u8),
    Close,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Tok {
    pub kind: Kind,
    pub start: u32,
    pub end: u32,
    /// For a punct: the next character is a punct too (proc-macro2's `Joint`).
    pub joint: bool,
    /// For `Open`: the index of the matching `Close`.
    pub close: u32,
}

/// proc-macro2's punct characters (`~!@#$%^&*-=+|;:,<.>/?'`), where a `/`
/// does not start a comment.
fn is_punct_at(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(b'/') => !matches!(b.get(i + 1), Some(b'/' | b'*')),
        Some(
            b'~' | b'!' | b'@' | b'#' | b'$' | b'%' | b'^' | b'&' | b'*' | b'-' | b'=' | b'+'
            | b'|' | b';' | b':' | b',' | b'<' | b'.' | b'>' | b'?' | b'\'',
        ) => true,
        _ => false,
    }
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn ident_continue(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Tokens of `src`, or `None` if it leaves the subset (or does not lex).
pub(super) fn lex(src: &str) -> Option<Vec<Tok>> {
    let b = src.as_bytes();
    if b.contains(&b'\r') || src.len() >= u32::MAX as usize {
        return None;
    }
    let mut toks: Vec<Tok> = Vec::with_capacity(src.len() / 3);
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    let tok = |kind, start: usize, end: usize| Tok {
        kind,
        start: start as u32,
        end: end as u32,
        joint: false,
        close: 0,
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | 0x0b | 0x0c => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                if matches!(b.get(i + 2), Some(b'!'))
                    || (b.get(i + 2) == Some(&b'/') && b.get(i + 3) != Some(&b'/'))
                {
                    return None; // doc comment: an attribute for proc-macro2
                }
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let doc = matches!(b.get(i + 2), Some(b'!'))
                    || (b.get(i + 2) == Some(&b'*') && !matches!(b.get(i + 3), Some(b'*' | b'/')));
                if doc || src[i..].starts_with("/*ERROR*/") {
                    return None;
                }
                let mut depth = 0usize;
                loop {
                    match (b.get(i), b.get(i + 1)) {
                        (Some(b'/'), Some(b'*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some(b'*'), Some(b'/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(_), _) => i += 1,
                        (None, _) => return None,
                    }
                }
            }
            b'(' | b'[' | b'{' => {
                open.push(toks.len());
                toks.push(tok(Kind::Open(c), i, i + 1));
                i += 1;
            }
            b')' | b']' | b'}' => {
                let o = open.pop()?;
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if toks[o].kind != Kind::Open(want) {
                    return None;
                }
                toks[o].close = toks.len() as u32;
                toks.push(tok(Kind::Close, i, i + 1));
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            if !matches!(
                                b.get(i + 1),
                                Some(b'n' | b't' | b'r' | b'0' | b'\\' | b'"' | b'\'')
                            ) {
                                return None;
                            }
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
                i += 1;
                if b.get(i).is_some_and(|&c| ident_start(c) || c >= 0x80) {
                    return None; // suffix
                }
                toks.push(tok(Kind::Str, start, i));
            }
            b'\'' => {
                // Only plain character literals: lifetimes and labels leave the subset.
                let start = i;
                let len = match (b.get(i + 1), b.get(i + 2), b.get(i + 3)) {
                    (
                        Some(b'\\'),
                        Some(b'n' | b't' | b'r' | b'0' | b'\\' | b'"' | b'\''),
                        Some(b'\''),
                    ) => 4,
                    (Some(&c), Some(b'\''), _)
                        if (0x20..0x7f).contains(&c) && c != b'\\' && c != b'\'' =>
                    {
                        3
                    }
                    _ => return None,
                };
                i += len;
                if b.get(i).is_some_and(|&c| ident_continue(c) || c >= 0x80) {
                    return None;
                }
                toks.push(tok(Kind::Char, start, i));
            }
            b'0'..=b'9' => {
                let start = i;
                if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'o' | b'b')) {
                    return None;
                }
                while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    match b.get(i + 1) {
                        Some(b'.') => {}
                        Some(d) if d.is_ascii_digit() => {
                            i += 1;
                            while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
                                i += 1;
                            }
                            if b.get(i) == Some(&b'.') {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    return None;
                }
                while b.get(i).is_some_and(|&c| ident_continue(c)) {
                    i += 1;
                }
                if b.get(i).is_some_and(|&c| c >= 0x80) {
                    return None;
                }
                toks.push(tok(Kind::Num, start, i));
            }
            c if ident_start(c) => {
                let start = i;
                while b.get(i).is_some_and(|&c| ident_continue(c)) {
                    i += 1;
                }
                if matches!(b.get(i), Some(b'"' | b'\'' | b'#'))
                    || b.get(i).is_some_and(|&c| c >= 0x80)
                {
                    return None; // raw or byte literals, raw identifiers
                }
                toks.push(tok(Kind::Ident, start, i));
            }
            c if is_punct_at(b, i) && c != b'\'' => {
                let mut t = tok(Kind::Punct(c), i, i + 1);
                t.joint = is_punct_at(b, i + 1);
                toks.push(t);
                i += 1;
            }
            _ => return None,
        }
    }
    open.is_empty().then_some(toks)
}

/// The token stream re-printed as proc-macro2's `Display` prints it.
pub(super) fn normalized(src: &str, toks: &[Tok]) -> String {
    let mut out = String::with_capacity(src.len());
    // (first token of its level, previous token was a joint punct, delimiter)
    let mut stack: Vec<u8> = Vec::new();
    let mut first = true;
    let mut joint = false;
    for t in toks {
        if t.kind == Kind::Close {
            let d = stack.pop().unwrap_or(b'(');
            if d == b'{' && !first {
                out.push(' ');
            }
            out.push(match d {
                b'(' => ')',
                b'[' => ']',
                _ => '}',
            });
            first = false;
            joint = false;
            continue;
        }
        if !first && !joint {
            out.push(' ');
        }
        first = false;
        joint = false;
        match t.kind {
            Kind::Open(d) => {
                out.push_str(match d {
                    b'(' => "(",
                    b'[' => "[",
                    _ => "{ ",
                });
                stack.push(d);
                first = true;
            }
            Kind::Punct(c) => {
                out.push(c as char);
                joint = t.joint;
            }
            _ => out.push_str(&src[t.start as usize..t.end as usize]),
        }
    }
    out
}
