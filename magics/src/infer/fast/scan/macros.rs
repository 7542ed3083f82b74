//! Macro calls, read as the syn walk reads them: comma-separated
//! expressions (with a format string's implicit captures and named
//! arguments) or `value; count`.

use super::{reserved, Bail, Cx, Floor, Scan, R};
use crate::infer::fast::lex::Kind;
use crate::infer::format::{format_captures, format_string_index};

/// The value of a string literal with only simple escapes (what the lexer lets through).
fn unescape(lit: &str) -> String {
    let inner = &lit[1..lit.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('0') => '\0',
            Some(other) => other,
            None => break,
        });
    }
    out
}

impl<'a> Scan<'a> {
    /// A macro's delimited body, as the syn walk reads it: comma-separated
    /// expressions (with a format string's implicit captures) or `x; n`.
    pub(super) fn macro_body(&mut self, name: &str) -> R {
        let Some(Kind::Open(d)) = self.kind(0) else {
            return Err(Bail);
        };
        let close = self.t[self.i].close as usize;
        let mut semis = 0;
        let mut j = self.i + 1;
        while j < close {
            match self.t[j].kind {
                Kind::Open(_) => j = self.t[j].close as usize,
                Kind::Punct(b';') => semis += 1,
                _ => {}
            }
            j += 1;
        }
        let fmt = format_string_index(name);
        self.group(d, |s| match semis {
            0 => s.macro_args(fmt),
            1 => {
                s.binary(Cx::default(), Floor::All)?;
                s.expect(b';')?;
                s.binary(Cx::default(), Floor::All)
            }
            _ => Err(Bail),
        })
    }

    pub(super) fn macro_args(&mut self, fmt: Option<usize>) -> R {
        let mut captures: Vec<String> = Vec::new();
        let mut named: Vec<&str> = Vec::new();
        let mut index = 0;
        while !self.at_end() {
            let lone = self.i + 1 == self.end || self.punct(1, b',');
            match fmt {
                Some(f) if index == f && self.kind(0) == Some(Kind::Str) && lone => {
                    captures = format_captures(&unescape(self.text(self.i)));
                    self.i += 1;
                }
                Some(f)
                    if index > f && self.kind(0) == Some(Kind::Ident) && self.single_eq_at(1) =>
                {
                    let w = self.text(self.i);
                    if reserved(w) {
                        return Err(Bail);
                    }
                    named.push(w);
                    self.i += 2;
                    self.binary(Cx::default(), Floor::All)?;
                }
                _ => self.binary(Cx::default(), Floor::All)?,
            }
            index += 1;
            if self.at_end() {
                break;
            }
            self.expect(b',')?;
        }
        for c in captures {
            if !named.contains(&c.as_str()) {
                self.use_name(&c);
            }
        }
        Ok(())
    }
}
