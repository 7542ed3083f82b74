//! Patterns (only the names they bind matter) and types (checked; they
//! hold no uses, since array lengths must be literals here).

use super::{path_keyword, reserved, Bail, Scan, R};
use crate::infer::fast::lex::Kind;

impl<'a> Scan<'a> {
    // ---- patterns: only their bindings matter ----

    pub(super) fn pat_multi(&mut self, names: &mut Vec<&'a str>) -> R {
        if self.punct(0, b'|') && !self.op(b"||") {
            self.i += 1;
        }
        loop {
            self.pat_single(names, false)?;
            if !self.punct(0, b'|') || self.op(b"||") {
                return Ok(());
            }
            self.i += 1;
        }
    }

    pub(super) fn no_range(&self) -> R {
        if self.op(b"..") {
            return Err(Bail);
        }
        Ok(())
    }

    pub(super) fn pat_single(&mut self, names: &mut Vec<&'a str>, in_seq: bool) -> R {
        match self.kind(0).ok_or(Bail)? {
            Kind::Ident => {
                let w = self.text(self.i);
                match w {
                    "_" => self.i += 1,
                    "true" | "false" => {
                        self.i += 1;
                        self.no_range()?;
                    }
                    "ref" | "mut" => {
                        self.i += 1;
                        if w == "ref" && self.ident_at(0) == Some("mut") {
                            self.i += 1;
                        }
                        let n = self.ident_at(0).ok_or(Bail)?;
                        if reserved(n) {
                            return Err(Bail);
                        }
                        self.i += 1;
                        names.push(n);
                        self.subpattern(names)?;
                    }
                    w if reserved(w) => return Err(Bail),
                    _ => {
                        let pathlike = self.op_at(1, b"::")
                            || self.punct(1, b'!')
                            || matches!(self.kind(1), Some(Kind::Open(b'(' | b'{')))
                            || self.op_at(1, b"..");
                        if pathlike {
                            return self.pat_path(names);
                        }
                        self.i += 1;
                        names.push(w);
                        self.subpattern(names)?;
                    }
                }
            }
            Kind::Punct(b':') if self.op(b"::") => return self.pat_path(names),
            Kind::Str | Kind::Char | Kind::Num => {
                self.i += 1;
                self.no_range()?;
            }
            Kind::Punct(b'-') if self.kind(1) == Some(Kind::Num) => {
                self.i += 2;
                self.no_range()?;
            }
            Kind::Punct(b'&') if !self.op(b"&&") => {
                self.i += 1;
                if self.ident_at(0) == Some("mut") {
                    self.i += 1;
                }
                return self.pat_single(names, false);
            }
            Kind::Open(d @ (b'(' | b'[')) => return self.group(d, |s| s.pat_seq(names)),
            Kind::Punct(b'.')
                if in_seq
                    && self.op(b"..")
                    && !self.op(b"..=")
                    && !self.op(b"...")
                    && (self.i + 2 == self.end || self.punct(2, b',')) =>
            {
                self.i += 2
            }
            _ => return Err(Bail),
        }
        Ok(())
    }

    pub(super) fn subpattern(&mut self, names: &mut Vec<&'a str>) -> R {
        if self.punct(0, b'@') {
            self.i += 1;
            self.pat_single(names, false)?;
        }
        self.no_range()
    }

    /// Elements of a tuple, slice or tuple-struct pattern.
    pub(super) fn pat_seq(&mut self, names: &mut Vec<&'a str>) -> R {
        while !self.at_end() {
            if self.op(b"..") && !self.op(b"..=") && !self.op(b"...") {
                self.pat_single(names, true)?;
            } else {
                self.pat_multi(names)?;
            }
            if self.at_end() {
                break;
            }
            self.expect(b',')?;
        }
        Ok(())
    }

    pub(super) fn pat_path(&mut self, names: &mut Vec<&'a str>) -> R {
        if self.op(b"::") {
            self.i += 2;
        }
        loop {
            let w = self.ident_at(0).ok_or(Bail)?;
            if reserved(w) {
                return Err(Bail);
            }
            self.i += 1;
            if !self.op(b"::") {
                break;
            }
            if self.ident_at(2).is_none() {
                return Err(Bail);
            }
            self.i += 2;
        }
        match self.kind(0) {
            Some(Kind::Open(b'(')) => self.group(b'(', |s| s.pat_seq(names)),
            Some(Kind::Open(b'{')) => self.group(b'{', |s| s.field_pats(names)),
            _ if self.punct(0, b'!') || self.op(b"..") => Err(Bail),
            _ => Ok(()), // a path pattern binds nothing
        }
    }

    pub(super) fn field_pats(&mut self, names: &mut Vec<&'a str>) -> R {
        while !self.at_end() {
            if self.op(b"..") {
                self.i += 2;
                return if self.at_end() { Ok(()) } else { Err(Bail) };
            }
            let mut modified = false;
            if self.ident_at(0) == Some("ref") {
                self.i += 1;
                modified = true;
            }
            if self.ident_at(0) == Some("mut") {
                self.i += 1;
                modified = true;
            }
            let w = self.ident_at(0).ok_or(Bail)?;
            if reserved(w) {
                return Err(Bail);
            }
            if !modified && self.punct(1, b':') && !self.op_at(1, b"::") {
                self.i += 2;
                self.pat_multi(names)?;
            } else {
                self.i += 1;
                names.push(w);
            }
            if self.at_end() {
                break;
            }
            self.expect(b',')?;
        }
        Ok(())
    }

    // ---- types: checked, never uses (array lengths must be literals) ----

    pub(super) fn ty(&mut self) -> R {
        match self.kind(0).ok_or(Bail)? {
            Kind::Ident if self.text(self.i) == "_" => {
                self.i += 1;
                Ok(())
            }
            Kind::Ident => self.type_path(),
            Kind::Punct(b':') if self.op(b"::") => self.type_path(),
            Kind::Open(b'(') => self.group(b'(', |s| {
                while !s.at_end() {
                    s.ty()?;
                    if s.at_end() {
                        break;
                    }
                    s.expect(b',')?;
                }
                Ok(())
            }),
            Kind::Open(b'[') => self.group(b'[', |s| {
                s.ty()?;
                if s.punct(0, b';') {
                    s.i += 1;
                    if s.kind(0) != Some(Kind::Num) {
                        return Err(Bail);
                    }
                    s.i += 1;
                }
                Ok(())
            }),
            Kind::Punct(b'&') if !self.op(b"&&") => {
                self.i += 1;
                if self.ident_at(0) == Some("mut") {
                    self.i += 1;
                }
                self.ty()
            }
            _ => Err(Bail),
        }
    }

    pub(super) fn type_path(&mut self) -> R {
        if self.op(b"::") {
            self.i += 2;
        }
        loop {
            let w = self.ident_at(0).ok_or(Bail)?;
            if reserved(w) && !path_keyword(w) {
                return Err(Bail);
            }
            self.i += 1;
            if self.op(b"::") && self.punct(2, b'<') {
                self.i += 2;
                self.generic_args()?;
            } else if self.punct(0, b'<') && !self.op(b"<=") {
                self.generic_args()?;
            }
            if self.kind(0) == Some(Kind::Open(b'(')) {
                return Err(Bail); // `Fn(A) -> B`
            }
            if !(self.op(b"::") && self.ident_at(2).is_some()) {
                return Ok(());
            }
            self.i += 2;
        }
    }

    /// `<...>` at the `<`: types, literal constants, `Name = Type`.
    pub(super) fn generic_args(&mut self) -> R {
        self.expect(b'<')?;
        loop {
            if self.punct(0, b'>') {
                self.i += 1;
                return Ok(());
            }
            if self.kind(0) == Some(Kind::Num) {
                self.i += 1;
            } else if self.kind(0) == Some(Kind::Ident) && self.single_eq_at(1) {
                self.i += 2;
                self.ty()?;
            } else {
                self.ty()?;
            }
            if !self.punct(0, b'>') {
                self.expect(b',')?;
            }
        }
    }

    /// The type after `as`: a plain path.
    pub(super) fn cast_type(&mut self) -> R {
        loop {
            let w = self.ident_at(0).ok_or(Bail)?;
            if reserved(w) {
                return Err(Bail);
            }
            self.i += 1;
            if !(self.op(b"::") && self.ident_at(2).is_some()) {
                break;
            }
            self.i += 2;
        }
        if self.punct(0, b'<') || self.op(b"::") || self.kind(0) == Some(Kind::Open(b'(')) {
            return Err(Bail);
        }
        Ok(())
    }
}
