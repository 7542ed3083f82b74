//! Free identifiers of an asset body, found with `syn`.
//!
//! The body is parsed as the statements of a block (evcxr cells end with an
//! expression without `;`). The walk is scope-aware: `let` patterns bind for
//! the rest of the block (after their initializer, so `let x = x + 1` uses the
//! outer `x`), closure and fn parameters bind inside their body, `for`
//! patterns inside the loop, `match` / `if let` / `while let` patterns inside
//! their arm or branch, and items declared in a block bind in the whole block.
//!
//! Names inside macros are uses: macro arguments are parsed as
//! comma-separated expressions where possible (`vec![x; n]` too), format-like
//! macros contribute the implicit captures of their format string
//! (`"{x}"`, `"{x:?}"`, `"{x:>w$}"`), and unparsable token streams are
//! scanned for identifiers.
//!
//! Only single-segment expression paths are candidates: `a::b` is not the
//! variable `a`, `x.field` and `x.method()` use `x` only.

use std::collections::BTreeSet;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Block, Expr, Lit, Pat, Stmt, Token};
use thiserror::Error;

use crate::model::is_keyword;

/// A body that does not parse as Rust statements.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Rust syntax error at line {line}, column {column} of the body: {message}")]
pub struct InferError {
    /// 1-based line within the body.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub message: String,
}

/// Everything the project needs from one parse of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyAnalysis {
    /// Free identifiers (used but not bound in the body).
    pub free: BTreeSet<String>,
    /// Every identifier token in the body (types, paths, macros included),
    /// sorted, deduplicated and joined by spaces (one contiguous buffer):
    /// what it may refer to among the notebook's items. See [`BodyAnalysis::mentioned`].
    pub mentioned_joined: String,
    /// The body's token stream re-printed: whitespace and comments removed.
    pub normalized: String,
    /// sha256 of `normalized` (what code versions hash).
    pub digest: [u8; 32],
}

impl BodyAnalysis {
    /// Every identifier in the body, sorted and deduplicated.
    pub fn mentioned(&self) -> impl Iterator<Item = &str> {
        self.mentioned_joined.split(' ').filter(|s| !s.is_empty())
    }
}

/// The free identifiers of an asset body.
pub fn free_identifiers(body: &str) -> Result<BTreeSet<String>, InferError> {
    analyze_body(body).map(|a| a.free)
}

/// Parse `body` once and return its free identifiers, mentioned identifiers
/// and normalized source.
pub fn analyze_body(body: &str) -> Result<BodyAnalysis, InferError> {
    let tokens: TokenStream = body
        .parse()
        .map_err(|e: proc_macro2::LexError| position_error(body, e.span(), &e.to_string()))?;
    let normalized = tokens.to_string();
    let mut mentioned = Vec::new();
    collect_idents(&tokens, &mut mentioned);
    mentioned.sort_unstable();
    mentioned.dedup();
    let mentioned_joined = mentioned.join(" ");
    let stmts = Block::parse_within
        .parse2(tokens)
        .map_err(|e| position_error(body, e.span(), &e.to_string()))?;
    let mut walker = Walker::default();
    walker.stmts(&stmts);
    Ok(BodyAnalysis {
        free: walker.free,
        mentioned_joined,
        digest: crate::model::digest_of(&normalized),
        normalized,
    })
}

/// Every identifier token in a token stream (recursively; may repeat).
pub(crate) fn collect_idents(tokens: &TokenStream, out: &mut Vec<String>) {
    for tt in tokens.clone() {
        match tt {
            TokenTree::Ident(id) => out.push(id.unraw().to_string()),
            TokenTree::Group(g) => collect_idents(&g.stream(), out),
            _ => {}
        }
    }
}

fn position_error(body: &str, span: proc_macro2::Span, message: &str) -> InferError {
    let start = span.start();
    if start.line == 0 {
        // No location (end of input): point after the last character.
        let lines: Vec<&str> = body.lines().collect();
        return InferError {
            line: lines.len().max(1),
            column: lines.last().map_or(0, |l| l.chars().count()) + 1,
            message: message.to_string(),
        };
    }
    InferError {
        line: start.line,
        column: start.column + 1,
        message: message.to_string(),
    }
}

#[derive(Default)]
struct Walker {
    bound: Vec<String>,
    marks: Vec<usize>,
    free: BTreeSet<String>,
}

impl Walker {
    fn push(&mut self) {
        self.marks.push(self.bound.len());
    }

    fn pop(&mut self) {
        let mark = self.marks.pop().unwrap_or(0);
        self.bound.truncate(mark);
    }

    fn bind(&mut self, name: String) {
        self.bound.push(name);
    }

    fn use_name(&mut self, name: &str) {
        if is_keyword(name) || self.bound.iter().rev().any(|b| b == name) {
            return;
        }
        if !self.free.contains(name) {
            self.free.insert(name.to_string());
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        self.push();
        for stmt in stmts {
            if let Stmt::Item(item) = stmt {
                self.bind_item(item);
            }
        }
        for stmt in stmts {
            match stmt {
                Stmt::Local(local) => self.visit_local(local),
                Stmt::Item(item) => self.visit_item(item),
                Stmt::Expr(expr, _) => self.visit_expr(expr),
                Stmt::Macro(m) => self.visit_macro(&m.mac),
            }
        }
        self.pop();
    }

    /// Names an item declares in the value namespace (or as a type, which
    /// can shadow as a constructor).
    fn bind_item(&mut self, item: &syn::Item) {
        let name = match item {
            syn::Item::Fn(f) => Some(&f.sig.ident),
            syn::Item::Const(c) => Some(&c.ident),
            syn::Item::Static(s) => Some(&s.ident),
            syn::Item::Struct(s) => Some(&s.ident),
            syn::Item::Enum(e) => Some(&e.ident),
            syn::Item::Union(u) => Some(&u.ident),
            syn::Item::Mod(m) => Some(&m.ident),
            syn::Item::Type(t) => Some(&t.ident),
            syn::Item::Trait(t) => Some(&t.ident),
            syn::Item::Use(u) => {
                let mut names = Vec::new();
                crate::items::use_tree_names(&u.tree, &mut names);
                for n in names {
                    self.bind(n);
                }
                None
            }
            _ => None,
        };
        if let Some(ident) = name {
            self.bind(ident.unraw().to_string());
        }
    }

    fn bind_pat(&mut self, pat: &Pat) {
        match pat {
            Pat::Ident(p) => {
                self.bind(p.ident.unraw().to_string());
                if let Some((_, sub)) = &p.subpat {
                    self.bind_pat(sub);
                }
            }
            Pat::Tuple(t) => t.elems.iter().for_each(|p| self.bind_pat(p)),
            Pat::TupleStruct(t) => t.elems.iter().for_each(|p| self.bind_pat(p)),
            Pat::Struct(s) => s.fields.iter().for_each(|f| self.bind_pat(&f.pat)),
            Pat::Slice(s) => s.elems.iter().for_each(|p| self.bind_pat(p)),
            Pat::Reference(r) => self.bind_pat(&r.pat),
            Pat::Or(o) => o.cases.iter().for_each(|p| self.bind_pat(p)),
            Pat::Type(t) => self.bind_pat(&t.pat),
            Pat::Paren(p) => self.bind_pat(&p.pat),
            _ => {}
        }
    }

    fn bind_fn_inputs<'a>(&mut self, inputs: impl IntoIterator<Item = &'a syn::FnArg>) {
        for input in inputs {
            match input {
                syn::FnArg::Typed(t) => self.bind_pat(&t.pat),
                syn::FnArg::Receiver(_) => self.bind("self".to_string()),
            }
        }
    }

    fn macro_args(&mut self, args: &Punctuated<Expr, Token![,]>, fmt_index: Option<usize>) {
        let mut captures = Vec::new();
        let mut named: Vec<String> = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if let Some(f) = fmt_index {
                if i == f {
                    if let Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(s), ..
                    }) = arg
                    {
                        captures = format_captures(&s.value());
                        continue;
                    }
                }
                if i > f {
                    if let Expr::Assign(a) = arg {
                        if let Some(name) = single_ident(&a.left) {
                            named.push(name);
                            self.visit_expr(&a.right);
                            continue;
                        }
                    }
                }
            }
            self.visit_expr(arg);
        }
        for c in captures {
            if !named.contains(&c) {
                self.use_name(&c);
            }
        }
    }

    /// Fallback for macro bodies that are not expressions: every identifier
    /// that is not a field/method name, a path prefix or suffix, a label
    /// (`name:`) or a macro name is a use.
    fn scan_tokens(&mut self, tokens: TokenStream, format_like: bool) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let punct = |i: usize| match tts.get(i) {
            Some(TokenTree::Punct(p)) => Some((p.as_char(), p.spacing())),
            _ => None,
        };
        for (i, tt) in tts.iter().enumerate() {
            match tt {
                TokenTree::Group(g) => self.scan_tokens(g.stream(), format_like),
                TokenTree::Ident(id) => {
                    let prev = i.checked_sub(1).and_then(punct);
                    let prev_is_path_sep = matches!(prev, Some((':', _)))
                        && matches!(
                            i.checked_sub(2).and_then(punct),
                            Some((':', Spacing::Joint))
                        );
                    if matches!(prev, Some(('.', _))) || prev_is_path_sep {
                        continue;
                    }
                    match punct(i + 1) {
                        Some((':', _)) => continue,
                        Some(('!', Spacing::Joint)) if matches!(punct(i + 2), Some(('=', _))) => {}
                        Some(('!', _)) => continue,
                        _ => {}
                    }
                    if matches!(tts.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace)
                        && id.to_string().starts_with(char::is_uppercase)
                    {
                        continue; // a struct literal's type name
                    }
                    self.use_name(&id.unraw().to_string());
                }
                TokenTree::Literal(lit) if format_like => {
                    if let Ok(s) =
                        syn::parse2::<syn::LitStr>(TokenTree::Literal(lit.clone()).into())
                    {
                        for c in format_captures(&s.value()) {
                            self.use_name(&c);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn single_ident(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) => single_ident_path(p),
        _ => None,
    }
}

fn single_ident_path(p: &syn::ExprPath) -> Option<String> {
    if p.qself.is_none() && p.path.leading_colon.is_none() && p.path.segments.len() == 1 {
        Some(p.path.segments[0].ident.unraw().to_string())
    } else {
        None
    }
}

/// Index of the format string among a format-like macro's arguments.
fn format_string_index(macro_name: &str) -> Option<usize> {
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

impl<'ast> Visit<'ast> for Walker {
    fn visit_block(&mut self, b: &'ast Block) {
        self.stmts(&b.stmts);
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.bind_pat(&local.pat);
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.push();
        for input in &c.inputs {
            self.bind_pat(input);
        }
        self.visit_expr(&c.body);
        self.pop();
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.push();
        self.bind_pat(&f.pat);
        self.visit_block(&f.body);
        self.pop();
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.push();
        self.bind_pat(&arm.pat);
        if let Some((_, guard)) = &arm.guard {
            self.visit_expr(guard);
        }
        self.visit_expr(&arm.body);
        self.pop();
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        self.push();
        self.visit_expr(&e.cond);
        self.visit_block(&e.then_branch);
        self.pop();
        if let Some((_, else_branch)) = &e.else_branch {
            self.visit_expr(else_branch);
        }
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.push();
        self.visit_expr(&e.cond);
        self.visit_block(&e.body);
        self.pop();
    }

    fn visit_expr_let(&mut self, e: &'ast syn::ExprLet) {
        self.visit_expr(&e.expr);
        self.bind_pat(&e.pat);
    }

    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if let Some(name) = single_ident_path(p) {
            self.use_name(&name);
        }
    }

    fn visit_pat(&mut self, _: &'ast Pat) {
        // Patterns bind (see bind_pat); constants in patterns are not assets.
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.push();
        self.bind_fn_inputs(&f.sig.inputs);
        self.visit_block(&f.block);
        self.pop();
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.push();
        self.bind_fn_inputs(&f.sig.inputs);
        self.visit_block(&f.block);
        self.pop();
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.push();
            self.bind_fn_inputs(&f.sig.inputs);
            self.visit_block(block);
            self.pop();
        }
    }

    fn visit_item_macro(&mut self, _: &'ast syn::ItemMacro) {
        // `macro_rules!` definitions: their bodies are templates, not uses.
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let name = m
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let fmt_index = format_string_index(&name);
        if let Ok(args) = m.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            self.macro_args(&args, fmt_index);
            return;
        }
        let repeat = |input: ParseStream| -> syn::Result<(Expr, Expr)> {
            let value: Expr = input.parse()?;
            input.parse::<Token![;]>()?;
            let count: Expr = input.parse()?;
            Ok((value, count))
        };
        if let Ok((value, count)) = m.parse_body_with(repeat) {
            self.visit_expr(&value);
            self.visit_expr(&count);
            return;
        }
        if let Ok(stmts) = m.parse_body_with(Block::parse_within) {
            self.stmts(&stmts);
            return;
        }
        self.scan_tokens(m.tokens.clone(), fmt_index.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(body: &str) -> Vec<String> {
        free_identifiers(body)
            .unwrap_or_else(|e| panic!("{body}: {e}"))
            .into_iter()
            .collect()
    }

    #[test]
    fn final_expression_and_simple_uses() {
        assert_eq!(free("temperatures.len() as f64"), ["temperatures"]);
        assert_eq!(
            free("let n = temperatures.len() as f64;\n(temperatures.iter().sum::<f64>() / n, n)"),
            ["temperatures"]
        );
        assert!(free("(0..1_000_000).map(|i| (i as f64).sin()).collect::<Vec<f64>>()").is_empty());
    }

    #[test]
    fn let_shadowing() {
        // `let` binds for the rest of the block only.
        assert_eq!(free("let a = 1; a + b"), ["b"]);
        // the initializer sees the outer `x`
        assert_eq!(free("let x = x + 1; x"), ["x"]);
        assert!(free("let x = 1; let x = x + 1; x").is_empty());
        // use before the shadowing let counts
        assert_eq!(free("let y = raw.len(); let raw = 5; raw + y"), ["raw"]);
        // tuple and struct patterns
        assert_eq!(
            free("let (a, b) = pair; let P { x, y: z } = p; a + b + x + z"),
            ["p", "pair"]
        );
        assert_eq!(free("let [first, .., last] = arr; first + last"), ["arr"]);
        assert_eq!(free("let v @ 1..=5 = n else { return }; v"), ["n"]);
        // let-else: the else block does not see the binding
        assert_eq!(
            free("let Some(q) = opt else { panic!(\"{q}\") }; q"),
            ["opt", "q"]
        );
    }

    #[test]
    fn nested_blocks_scope() {
        assert_eq!(free("{ let a = 1; a }; a"), ["a"]);
        assert_eq!(free("let a = { let b = c; b }; a + b"), ["b", "c"]);
        assert_eq!(free("loop { let t = 1; break t; }"), Vec::<String>::new());
        assert_eq!(free("unsafe { raw_ptr.read() }"), ["raw_ptr"]);
    }

    #[test]
    fn closures_and_fns() {
        assert_eq!(
            free("data.iter().map(|x| x * factor).sum::<f64>()"),
            ["data", "factor"]
        );
        assert_eq!(
            free("let f = |(a, b): (u8, u8), c| a + b + c + d; f((1, 2), 3)"),
            ["d"]
        );
        assert_eq!(free("let f = move || x; f()"), ["x"]);
        assert_eq!(
            free("fn helper(v: &[f64]) -> f64 { v[0] + w } helper(&data)"),
            ["data", "w"]
        );
        // the nested fn's name is bound in the whole block (items are)
        assert_eq!(
            free("let r = twice(2); fn twice(n: u8) -> u8 { n * 2 } r"),
            Vec::<String>::new()
        );
        assert_eq!(
            free("struct S; impl S { fn get(&self) -> u8 { self.0 + k } } S"),
            ["k"]
        );
        assert!(free("use std::collections::HashMap; HashMap::<u8, u8>::new()").is_empty());
    }

    #[test]
    fn control_flow_patterns() {
        assert_eq!(
            free("for (i, v) in items.iter().enumerate() { total += i * v; }"),
            ["items", "total"]
        );
        assert_eq!(free("for x in xs {} x"), ["x", "xs"]);
        assert_eq!(
            free("match value { Some(inner) if inner > limit => inner, Some(_) | None => other }"),
            ["limit", "other", "value"]
        );
        assert_eq!(
            free("if let Some(v) = maybe { v } else { v }"),
            ["maybe", "v"]
        );
        assert_eq!(
            free("if let Some(a) = x && let Some(b) = a.get(0) { a.len() + b } else { 0 }"),
            ["x"]
        );
        assert_eq!(
            free("while let Some(top) = stack.pop() { seen.push(top); }"),
            ["seen", "stack"]
        );
    }

    #[test]
    fn macros_are_uses() {
        assert_eq!(free("println!(\"{}\", x)"), ["x"]);
        assert_eq!(free("format!(\"{} {}\", a, b.len())"), ["a", "b"]);
        assert_eq!(free("vec![x, y]"), ["x", "y"]);
        assert_eq!(free("vec![x; n]"), ["n", "x"]);
        assert_eq!(free("assert!(ok, \"failed: {}\", why); 1"), ["ok", "why"]);
        assert_eq!(free("assert_eq!(left, right); 1"), ["left", "right"]);
        assert_eq!(
            free(
                "use std::fmt::Write; let mut s = String::new(); write!(s, \"{}\", v).unwrap(); s"
            ),
            ["v"]
        );
        assert_eq!(free("let t = 1; println!(\"{}\", t)"), Vec::<String>::new());
        // closures inside macros keep their scoping
        assert_eq!(
            free("println!(\"{:?}\", xs.iter().map(|q| q + 1).collect::<Vec<_>>())"),
            ["xs"]
        );
    }

    #[test]
    fn inline_format_captures() {
        assert_eq!(free("println!(\"{x}\")"), ["x"]);
        assert_eq!(free("format!(\"{x:?} and {y:#?}\")"), ["x", "y"]);
        assert_eq!(
            free("format!(\"{x:>w$} {:.prec$}\", 1.0)"),
            ["prec", "w", "x"]
        );
        assert_eq!(free("format!(\"{{x}} {0} {}\", a)"), ["a"]);
        // named arguments are not captures, their values are uses
        assert_eq!(free("format!(\"{x}\", x = other)"), ["other"]);
        // locally bound captures are not free
        assert_eq!(free("let x = 1; println!(\"{x}\")"), Vec::<String>::new());
        assert_eq!(free("write!(f, \"{val}\")"), ["f", "val"]);
        assert_eq!(free("panic!(\"bad {why}\")"), ["why"]);
        assert_eq!(
            format_captures("{a} {b:>width$.p$} {0} {:?} {{c}} {_}"),
            ["a", "b", "width", "p"]
        );
    }

    #[test]
    fn unparsable_macro_tokens_are_scanned() {
        assert_eq!(free("matches!(x, 1..=5 | 7)"), ["x"]);
        assert_eq!(
            free("my_dsl!(select a.field from table where b != c)"),
            ["a", "b", "c", "from", "select", "table"]
        );
        // path pieces, labels and macro names are not uses
        assert_eq!(
            free("m!(std::f64::consts::PI, key: value, inner!(z) ; ;)"),
            ["value", "z"]
        );
        assert_eq!(free("json!({\"a\": x, \"b\": Point { q: 1 }})"), ["x"]);
    }

    #[test]
    fn paths_methods_and_fields_are_not_names() {
        assert_eq!(free("a::b(c)"), ["c"]);
        assert_eq!(free("x.field + y.method(z)"), ["x", "y", "z"]);
        assert_eq!(free("::std::mem::drop(v)"), ["v"]);
        assert_eq!(free("<T as Default>::default()"), Vec::<String>::new());
        assert_eq!(free("Point { x, y: other }"), ["other", "x"]);
        assert_eq!(free("self_val.0"), ["self_val"]);
        assert_eq!(free("helper::<u8>(n)"), ["helper", "n"]);
        assert_eq!(free("r#foo + 1"), ["foo"]);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = free_identifiers("let a = 1;\nlet b = ;\nb").unwrap_err();
        assert_eq!((e.line, e.column), (2, 9), "{e}");
        assert!(e.to_string().contains("line 2, column 9"), "{e}");
        let e = free_identifiers("let a = (1,\n2").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let e = free_identifiers("let a =").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(e.column >= 1);
    }

    #[test]
    fn normalization_ignores_layout_and_comments() {
        let a = analyze_body("let x = 1; // one\nx + 2").unwrap();
        let b = analyze_body("let   x=1;\n/* block */ x+2\n").unwrap();
        assert_eq!(a.normalized, b.normalized);
        let c = analyze_body("let x = 1; x + 3").unwrap();
        assert_ne!(a.normalized, c.normalized);
        assert!(a.mentioned().any(|m| m == "x"));
    }
}
