//! The scope-aware walk of a parsed body that finds its free identifiers
//! (see the parent module for the rules).

use std::collections::BTreeSet;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Block, Expr, Lit, Pat, Stmt, Token};

use crate::model::is_keyword;

use super::format::{format_captures, format_string_index};

/// Free identifiers of parsed statements.
pub(super) fn free_in(stmts: &[Stmt]) -> BTreeSet<String> {
    let mut walker = Walker::default();
    walker.stmts(stmts);
    walker.free
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
                crate::names::use_tree_names(&u.tree, &mut names);
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
