//! The scope-aware walk over the fast lexer's tokens: the same free
//! identifiers as the syn walk (`super::super::free`), for the statements,
//! expressions, patterns and types it knows; `Bail` for anything else, and
//! for anything syn would reject, so the caller falls back to syn.

use std::collections::BTreeSet;

use super::lex::{Kind, Tok};
use crate::model::is_keyword;

mod expr;
mod macros;
mod pat;

/// Leaving the subset (or a syntax error): syn decides.
pub(super) struct Bail;

pub(super) type R<T = ()> = Result<T, Bail>;

/// Words syn never takes as an identifier, and `gen`.
pub(super) fn reserved(w: &str) -> bool {
    matches!(
        w,
        "_" | "abstract"
            | "as"
            | "async"
            | "await"
            | "become"
            | "box"
            | "break"
            | "const"
            | "continue"
            | "crate"
            | "do"
            | "dyn"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "final"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "macro"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "override"
            | "priv"
            | "pub"
            | "ref"
            | "return"
            | "Self"
            | "self"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "try"
            | "type"
            | "typeof"
            | "unsafe"
            | "unsized"
            | "use"
            | "virtual"
            | "where"
            | "while"
            | "yield"
            | "gen"
    )
}

/// Words that may start a path.
pub(super) fn path_keyword(w: &str) -> bool {
    matches!(w, "self" | "Self" | "super" | "crate")
}

/// Expression context: struct literals allowed, `let` allowed (conditions).
#[derive(Clone, Copy, Default)]
pub(super) struct Cx {
    pub(super) no_struct: bool,
    pub(super) cond: bool,
}

/// Which binary operators an expression may still take.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Floor {
    All,
    /// A `let` scrutinee: comparisons and tighter.
    AboveCompare,
    /// A range's end: everything but ranges and assignments.
    AboveRange,
}

struct Scan<'a> {
    src: &'a str,
    t: &'a [Tok],
    i: usize,
    end: usize,
    bound: Vec<&'a str>,
    marks: Vec<usize>,
    free: BTreeSet<String>,
}

/// Free identifiers of a body's tokens, or `None` outside the subset.
pub(super) fn free_identifiers(src: &str, toks: &[Tok]) -> Option<BTreeSet<String>> {
    let mut s = Scan {
        src,
        t: toks,
        i: 0,
        end: toks.len(),
        bound: Vec::new(),
        marks: Vec::new(),
        free: BTreeSet::new(),
    };
    s.stmts().ok()?;
    Some(s.free)
}

impl<'a> Scan<'a> {
    // ---- tokens ----

    pub(super) fn kind(&self, k: usize) -> Option<Kind> {
        let j = self.i + k;
        (j < self.end).then(|| self.t[j].kind)
    }

    pub(super) fn at_end(&self) -> bool {
        self.i >= self.end
    }

    pub(super) fn text(&self, j: usize) -> &'a str {
        &self.src[self.t[j].start as usize..self.t[j].end as usize]
    }

    pub(super) fn ident_at(&self, k: usize) -> Option<&'a str> {
        (self.kind(k) == Some(Kind::Ident)).then(|| self.text(self.i + k))
    }

    pub(super) fn punct(&self, k: usize, c: u8) -> bool {
        self.kind(k) == Some(Kind::Punct(c))
    }

    /// The puncts of `op` at `k`, joint but for the last.
    pub(super) fn op_at(&self, k: usize, op: &[u8]) -> bool {
        op.iter().enumerate().all(|(n, &c)| {
            self.punct(k + n, c) && (n + 1 == op.len() || self.t[self.i + k + n].joint)
        })
    }

    pub(super) fn op(&self, op: &[u8]) -> bool {
        self.op_at(0, op)
    }

    /// A lone `=` (not `==` nor `=>`) at `k`.
    pub(super) fn single_eq_at(&self, k: usize) -> bool {
        self.punct(k, b'=') && !self.op_at(k, b"==") && !self.op_at(k, b"=>")
    }

    pub(super) fn expect(&mut self, c: u8) -> R {
        if !self.punct(0, c) {
            return Err(Bail);
        }
        self.i += 1;
        Ok(())
    }

    /// Run `f` inside the group opened at the current token; it must consume it all.
    pub(super) fn group<T>(&mut self, d: u8, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.kind(0) != Some(Kind::Open(d)) {
            return Err(Bail);
        }
        let close = self.t[self.i].close as usize;
        let outer = self.end;
        self.i += 1;
        self.end = close;
        let out = f(self)?;
        if self.i != close {
            return Err(Bail);
        }
        self.i = close + 1;
        self.end = outer;
        Ok(out)
    }

    // ---- scopes (as the syn walk keeps them) ----

    pub(super) fn push(&mut self) {
        self.marks.push(self.bound.len());
    }

    pub(super) fn pop(&mut self) {
        let mark = self.marks.pop().unwrap_or(0);
        self.bound.truncate(mark);
    }

    pub(super) fn bind_all(&mut self, names: Vec<&'a str>) {
        self.bound.extend(names);
    }

    pub(super) fn use_name(&mut self, name: &str) {
        if self.bound.iter().rev().any(|b| *b == name)
            || self.free.contains(name)
            || is_keyword(name)
        {
            return;
        }
        self.free.insert(name.to_string());
    }

    // ---- statements ----

    pub(super) fn stmts(&mut self) -> R {
        self.push();
        while !self.at_end() {
            if self.punct(0, b';') {
                self.i += 1;
                continue;
            }
            let needs_semi = self.stmt()?;
            if self.at_end() {
                break;
            }
            if self.punct(0, b';') {
                self.i += 1;
            } else if needs_semi {
                return Err(Bail);
            }
        }
        self.pop();
        Ok(())
    }

    /// One statement; whether a `;` must follow unless it is the last.
    pub(super) fn stmt(&mut self) -> R<bool> {
        if let Some(w) = self.ident_at(0) {
            let next = self.ident_at(1);
            let item = match w {
                "let" => {
                    self.i += 1;
                    self.local()?;
                    return Ok(false);
                }
                "pub" | "extern" | "use" | "static" | "const" | "async" | "fn" | "mod" | "type"
                | "struct" | "enum" | "trait" | "impl" | "macro" => true,
                "crate" => !self.op_at(1, b"::"),
                "unsafe" => self.kind(1) != Some(Kind::Open(b'{')),
                "union" => next.is_some(),
                "auto" => next == Some("trait"),
                "default" => matches!(next, Some("unsafe" | "impl")),
                _ => false,
            };
            if item {
                return Err(Bail);
            }
        }
        if let Some((k, name)) = self.mod_path_len() {
            if self.punct(k, b'!') && !self.op_at(k, b"!=") {
                match self.kind(k + 1) {
                    Some(Kind::Ident) => return Err(Bail), // an item macro
                    Some(Kind::Open(b'{')) => {
                        let after = self.t[self.i + k + 1].close as usize + 1 - self.i;
                        let more = (self.punct(after, b'.') && !self.op_at(after, b".."))
                            || self.punct(after, b'?');
                        if !more {
                            self.i += k + 1;
                            self.macro_body(name)?;
                            return Ok(false);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(!self.early_expr(Cx::default())?)
    }

    /// Length and last segment of a path without generics at the current token.
    pub(super) fn mod_path_len(&self) -> Option<(usize, &'a str)> {
        let mut k = if self.op(b"::") { 2 } else { 0 };
        loop {
            let w = self.ident_at(k)?;
            if reserved(w) && !path_keyword(w) {
                return None;
            }
            k += 1;
            if self.op_at(k, b"::") && self.ident_at(k + 2).is_some() {
                k += 2;
                continue;
            }
            return Some((k, w));
        }
    }

    /// `let PAT [: TYPE] [= EXPR [else BLOCK]];` (`let` consumed).
    pub(super) fn local(&mut self) -> R {
        let mut names = Vec::new();
        self.pat_single(&mut names, false)?;
        if self.punct(0, b':') && !self.op(b"::") {
            self.i += 1;
            self.ty()?;
        }
        if self.single_eq_at(0) {
            self.i += 1;
            self.binary(Cx::default(), Floor::All)?;
            if self.ident_at(0) == Some("else") {
                let prev = &self.t[self.i - 1];
                if prev.kind == Kind::Close && self.src.as_bytes()[prev.start as usize] == b'}' {
                    return Err(Bail); // syn rejects `}` before `else`
                }
                self.i += 1;
                self.block()?;
            }
        }
        self.expect(b';')?;
        self.bind_all(names);
        Ok(())
    }

    pub(super) fn block(&mut self) -> R {
        self.group(b'{', |s| s.stmts())
    }

    pub(super) fn block_like_start(&self) -> bool {
        matches!(
            self.ident_at(0),
            Some("if" | "match" | "while" | "for" | "loop")
        ) || self.kind(0) == Some(Kind::Open(b'{'))
            || (self.ident_at(0) == Some("unsafe") && self.kind(1) == Some(Kind::Open(b'{')))
    }

    /// An expression at the start of a statement or match arm: a block-like
    /// one ends there unless `.` or `?` follows. Whether it ended so.
    pub(super) fn early_expr(&mut self, cx: Cx) -> R<bool> {
        if !self.block_like_start() {
            self.binary(cx, Floor::All)?;
            return Ok(false);
        }
        self.atom(cx)?;
        if (self.punct(0, b'.') && !self.op(b"..")) || self.punct(0, b'?') {
            self.postfix()?;
            self.binary_rest(cx, Floor::All)?;
            return Ok(false);
        }
        Ok(true)
    }
}
