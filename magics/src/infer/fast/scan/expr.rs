//! Expressions: operators, atoms, closures, control flow, paths, struct
//! literals and macro calls (read as the syn walk reads them).

use super::{path_keyword, reserved, Bail, Cx, Floor, Scan, R};
use crate::infer::fast::lex::Kind;

enum Op {
    None,
    Cast,
    Assign(usize),
    Range(usize),
    Lazy(usize),
    Compare(usize),
    Other(usize),
}

impl<'a> Scan<'a> {
    // ---- expressions ----

    pub(super) fn binary(&mut self, cx: Cx, floor: Floor) -> R {
        if self.operand(cx)? {
            return Ok(());
        }
        self.binary_rest(cx, floor)
    }

    /// The binary operator at the current token, as syn's `BinOp` and
    /// assignment, range and cast checks read it (multi-character operators
    /// are joint puncts).
    fn peek_op(&self) -> Op {
        let c = match self.kind(0) {
            Some(Kind::Punct(c)) => c,
            Some(Kind::Ident) if self.text(self.i) == "as" => return Op::Cast,
            _ => return Op::None,
        };
        let joined = |k: usize| match self.kind(k) {
            Some(Kind::Punct(n)) if self.t[self.i + k - 1].joint => n,
            _ => 0,
        };
        let next = joined(1);
        let third = if next == 0 { 0 } else { joined(2) };
        match (c, next) {
            (b'<', b'<') | (b'>', b'>') if third == b'=' => Op::Assign(3),
            (b'.', b'.') => match third {
                b'.' => Op::None,
                b'=' => Op::Range(3),
                _ => Op::Range(2),
            },
            (b'=', b'>') | (b'-', b'>') | (b':', _) => Op::None,
            (b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'&' | b'|', b'=') => Op::Assign(2),
            (b'&', b'&') | (b'|', b'|') => Op::Lazy(2),
            (b'=' | b'!' | b'<' | b'>', b'=') => Op::Compare(2),
            (b'<', b'<') | (b'>', b'>') => Op::Other(2),
            (b'=', _) => Op::Assign(1),
            (b'<' | b'>', _) => Op::Compare(1),
            (b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'&' | b'|', _) => Op::Other(1),
            _ => Op::None,
        }
    }

    pub(super) fn binary_rest(&mut self, cx: Cx, floor: Floor) -> R {
        let mut comparing = false;
        loop {
            match self.peek_op() {
                Op::None => return Ok(()),
                Op::Cast => {
                    self.i += 1;
                    self.cast_type()?;
                    continue;
                }
                Op::Assign(n) => {
                    if floor != Floor::All {
                        return Ok(());
                    }
                    self.i += n;
                    comparing = false;
                }
                Op::Range(n) => {
                    if floor != Floor::All {
                        return Ok(());
                    }
                    self.i += n;
                    if n == 3 || self.value_follows(cx)? {
                        self.binary(Cx { cond: false, ..cx }, Floor::AboveRange)?;
                    }
                    return Ok(()); // a range is no binary operand
                }
                Op::Lazy(n) => {
                    if floor == Floor::AboveCompare {
                        return Ok(());
                    }
                    self.i += n;
                    comparing = false;
                }
                Op::Compare(n) => {
                    if comparing {
                        return Err(Bail); // syn: comparisons cannot be chained
                    }
                    comparing = true;
                    self.i += n;
                }
                Op::Other(n) => self.i += n,
            }
            if self.operand(cx)? {
                return Ok(());
            }
        }
    }

    /// Whether an expression follows (`return`, `break`, range ends).
    pub(super) fn value_follows(&self, cx: Cx) -> R<bool> {
        Ok(match self.kind(0) {
            None | Some(Kind::Punct(b',' | b';')) => false,
            Some(Kind::Open(b'{')) if cx.no_struct => return Err(Bail),
            Some(Kind::Open(_) | Kind::Str | Kind::Char | Kind::Num) => true,
            Some(Kind::Ident) => {
                let w = self.ident_at(0).unwrap_or("");
                let starts = matches!(
                    w,
                    "if" | "match"
                        | "loop"
                        | "while"
                        | "for"
                        | "unsafe"
                        | "move"
                        | "return"
                        | "break"
                        | "continue"
                        | "true"
                        | "false"
                ) || path_keyword(w);
                if reserved(w) && !starts {
                    return Err(Bail);
                }
                true
            }
            Some(Kind::Punct(b'-' | b'!' | b'*' | b'&' | b'|')) => true,
            Some(Kind::Punct(b':')) if self.op(b"::") => true,
            _ => return Err(Bail),
        })
    }

    /// Prefix operators, an atom and its postfix operators; whether the
    /// operand took the rest of the expression (closures, `return x`...).
    pub(super) fn operand(&mut self, cx: Cx) -> R<bool> {
        loop {
            match self.kind(0) {
                Some(Kind::Punct(b'-' | b'!' | b'*')) => self.i += 1,
                Some(Kind::Punct(b'&')) => {
                    self.i += 1;
                    if self.ident_at(0) == Some("raw")
                        && matches!(self.ident_at(1), Some("const" | "mut"))
                    {
                        return Err(Bail);
                    }
                    if self.ident_at(0) == Some("mut") {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
        if self.atom(cx)? {
            return Ok(true);
        }
        self.postfix()?;
        Ok(false)
    }

    pub(super) fn atom(&mut self, cx: Cx) -> R<bool> {
        let plain = Cx::default();
        match self.kind(0).ok_or(Bail)? {
            Kind::Str | Kind::Char | Kind::Num => self.i += 1,
            Kind::Open(b'(') => self.group(b'(', |s| s.comma_exprs())?,
            Kind::Open(b'[') => self.group(b'[', |s| {
                if s.at_end() {
                    return Ok(());
                }
                s.binary(plain, Floor::All)?;
                if s.punct(0, b';') {
                    s.i += 1;
                    return s.binary(plain, Floor::All);
                }
                if s.at_end() {
                    return Ok(());
                }
                s.expect(b',')?;
                s.comma_exprs()
            })?,
            Kind::Open(_) => self.block()?,
            Kind::Punct(b'|') => {
                self.closure(cx)?;
                return Ok(true);
            }
            Kind::Punct(b'.') if self.op(b"..") => {
                let closed = self.op(b"..=");
                self.i += if closed { 3 } else { 2 };
                if closed || self.value_follows(cx)? {
                    self.binary(Cx { cond: false, ..cx }, Floor::AboveRange)?;
                }
                return Ok(true);
            }
            Kind::Punct(b':') if self.op(b"::") => self.path_expr(cx)?,
            Kind::Ident => return self.ident_atom(cx),
            _ => return Err(Bail),
        }
        Ok(false)
    }

    pub(super) fn ident_atom(&mut self, cx: Cx) -> R<bool> {
        let w = self.text(self.i);
        let inner = Cx { cond: false, ..cx };
        match w {
            "true" | "false" | "continue" => self.i += 1,
            "if" => {
                self.i += 1;
                self.if_rest()?;
            }
            "match" => {
                self.i += 1;
                self.match_rest()?;
            }
            "while" => {
                self.i += 1;
                self.push();
                self.binary(
                    Cx {
                        no_struct: true,
                        cond: true,
                    },
                    Floor::All,
                )?;
                self.block()?;
                self.pop();
            }
            "for" => {
                self.i += 1;
                let mut names = Vec::new();
                self.pat_multi(&mut names)?;
                if self.ident_at(0) != Some("in") {
                    return Err(Bail);
                }
                self.i += 1;
                self.binary(
                    Cx {
                        no_struct: true,
                        cond: false,
                    },
                    Floor::All,
                )?;
                self.push();
                self.bind_all(names);
                self.block()?;
                self.pop();
            }
            "loop" | "unsafe" => {
                self.i += 1;
                self.block()?;
            }
            "move" => {
                self.i += 1;
                if !self.punct(0, b'|') {
                    return Err(Bail);
                }
                self.closure(cx)?;
                return Ok(true);
            }
            "return" | "break" => {
                self.i += 1;
                if self.value_follows(cx)? {
                    // syn parses the value as a full expression, struct
                    // literals allowed even in a condition.
                    self.binary(Cx::default(), Floor::All)?;
                    return Ok(true);
                }
            }
            "let" if cx.cond => {
                self.i += 1;
                let mut names = Vec::new();
                self.pat_multi(&mut names)?;
                if !self.single_eq_at(0) {
                    return Err(Bail);
                }
                self.i += 1;
                self.binary(inner, Floor::AboveCompare)?;
                self.bind_all(names);
            }
            w if reserved(w) && !path_keyword(w) => return Err(Bail),
            _ => self.path_expr(cx)?,
        }
        Ok(false)
    }

    /// `if` consumed: condition, block, `else` chain.
    pub(super) fn if_rest(&mut self) -> R {
        self.push();
        self.binary(
            Cx {
                no_struct: true,
                cond: true,
            },
            Floor::All,
        )?;
        self.block()?;
        self.pop();
        if self.ident_at(0) == Some("else") {
            self.i += 1;
            if self.ident_at(0) == Some("if") {
                self.i += 1;
                return self.if_rest();
            }
            self.block()?;
        }
        Ok(())
    }

    /// `match` consumed: scrutinee and arms.
    pub(super) fn match_rest(&mut self) -> R {
        self.binary(
            Cx {
                no_struct: true,
                cond: false,
            },
            Floor::All,
        )?;
        self.group(b'{', |s| {
            while !s.at_end() {
                s.push();
                let mut names = Vec::new();
                s.pat_multi(&mut names)?;
                s.bind_all(names);
                if s.ident_at(0) == Some("if") {
                    s.i += 1;
                    s.binary(Cx::default(), Floor::All)?;
                }
                if !s.op(b"=>") {
                    return Err(Bail);
                }
                s.i += 2;
                let ended = s.early_expr(Cx::default())?;
                s.pop();
                if s.at_end() {
                    break;
                }
                if s.punct(0, b',') {
                    s.i += 1;
                } else if !ended {
                    return Err(Bail);
                }
            }
            Ok(())
        })
    }

    /// `[move] |PARAMS| BODY` at the `|`.
    pub(super) fn closure(&mut self, cx: Cx) -> R {
        let mut names = Vec::new();
        if self.op(b"||") {
            self.i += 2;
        } else {
            self.expect(b'|')?;
            while !self.punct(0, b'|') {
                self.pat_single(&mut names, false)?;
                if self.punct(0, b':') && !self.op(b"::") {
                    self.i += 1;
                    self.ty()?;
                }
                if !self.punct(0, b'|') {
                    self.expect(b',')?;
                }
            }
            self.i += 1;
        }
        if self.op(b"->") {
            return Err(Bail);
        }
        self.push();
        self.bind_all(names);
        self.binary(Cx { cond: false, ..cx }, Floor::All)?;
        self.pop();
        Ok(())
    }

    pub(super) fn comma_exprs(&mut self) -> R {
        while !self.at_end() {
            self.binary(Cx::default(), Floor::All)?;
            if self.at_end() {
                break;
            }
            self.expect(b',')?;
        }
        Ok(())
    }

    pub(super) fn postfix(&mut self) -> R {
        loop {
            if self.punct(0, b'?') {
                self.i += 1;
            } else if self.punct(0, b'.') && !self.op(b"..") {
                self.i += 1;
                match self.kind(0) {
                    Some(Kind::Ident) if !reserved(self.text(self.i)) => {
                        self.i += 1;
                        let turbofish = self.op(b"::");
                        if turbofish {
                            if !self.punct(2, b'<') {
                                return Err(Bail);
                            }
                            self.i += 2;
                            self.generic_args()?;
                        }
                        if self.kind(0) == Some(Kind::Open(b'(')) {
                            self.group(b'(', |s| s.comma_exprs())?;
                        } else if turbofish {
                            return Err(Bail);
                        }
                    }
                    Some(Kind::Num) if self.text(self.i).bytes().all(|c| c.is_ascii_digit()) => {
                        self.i += 1
                    }
                    _ => return Err(Bail),
                }
            } else {
                match self.kind(0) {
                    Some(Kind::Open(b'(')) => self.group(b'(', |s| s.comma_exprs())?,
                    Some(Kind::Open(b'[')) => {
                        self.group(b'[', |s| s.binary(Cx::default(), Floor::All))?
                    }
                    _ => return Ok(()),
                }
            }
        }
    }

    /// A path expression, macro call or struct literal.
    pub(super) fn path_expr(&mut self, cx: Cx) -> R {
        let leading = self.op(b"::");
        if leading {
            self.i += 2;
        }
        let (mut segments, mut generic) = (0, false);
        let first = self.ident_at(0).ok_or(Bail)?;
        let mut last;
        loop {
            let w = self.ident_at(0).ok_or(Bail)?;
            if reserved(w) && !(segments == 0 && path_keyword(w)) {
                return Err(Bail);
            }
            last = w;
            segments += 1;
            self.i += 1;
            if !self.op(b"::") {
                break;
            }
            if self.punct(2, b'<') {
                self.i += 2;
                self.generic_args()?;
                generic = true;
                if !(self.op(b"::") && self.ident_at(2).is_some()) {
                    break;
                }
            } else if self.ident_at(2).is_none() {
                return Err(Bail);
            }
            self.i += 2;
        }
        if self.punct(0, b'!') && !self.op(b"!=") {
            if generic {
                return Err(Bail);
            }
            self.i += 1;
            return self.macro_body(last);
        }
        if !cx.no_struct && self.kind(0) == Some(Kind::Open(b'{')) {
            return self.group(b'{', |s| s.struct_fields());
        }
        if segments == 1 && !leading {
            self.use_name(first);
        }
        Ok(())
    }

    pub(super) fn struct_fields(&mut self) -> R {
        while !self.at_end() {
            if self.op(b"..") {
                self.i += 2;
                if self.at_end() {
                    return Err(Bail);
                }
                return self.binary(Cx::default(), Floor::All);
            }
            let w = self.ident_at(0).ok_or(Bail)?;
            if reserved(w) {
                return Err(Bail);
            }
            if self.punct(1, b':') && !self.op_at(1, b"::") {
                self.i += 2;
                self.binary(Cx::default(), Floor::All)?;
            } else {
                self.use_name(w);
                self.i += 1;
            }
            if self.at_end() {
                break;
            }
            self.expect(b',')?;
        }
        Ok(())
    }
}
