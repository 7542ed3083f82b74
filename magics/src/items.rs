//! The notebook's item code: `use`, `fn`, `struct`, `enum`, `impl`, `trait`,
//! `mod`, `type`, `const`, `static` and `macro_rules!` items of plain cells,
//! kept as their original source text, and evcxr `:dep` lines.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use proc_macro2::TokenStream;
use quote::ToTokens;
use serde::{Deserialize, Serialize};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{Block, Stmt};
use thiserror::Error;

use crate::model::CellRef;
use crate::names::{collect_idents, use_tree_names};

/// What kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Use,
    ExternCrate,
    Fn,
    Struct,
    Enum,
    Union,
    Impl,
    Trait,
    Mod,
    Type,
    Const,
    Static,
    MacroRules,
}

/// One item of a plain cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub kind: ItemKind,
    /// Names the item defines (`use a::{b, c as d}` defines `b` and `d`).
    pub names: Vec<String>,
    /// For `impl` blocks: the self type's and the trait's names; the impl
    /// goes wherever those go.
    pub attached_to: Vec<String>,
    /// For `use ...::*`: defines names we cannot know, so it always goes along.
    pub glob: bool,
    /// The item exactly as written in the cell (attributes and doc comments included).
    pub source: String,
    /// The item's token stream re-printed (no comments, canonical spacing).
    pub normalized: String,
    /// Every identifier in the item: what else it may refer to.
    pub mentions: BTreeSet<String>,
    pub cell: CellRef,
    /// The 0-based line of the item's first line in its cell.
    #[serde(default)]
    pub line: usize,
}

/// An evcxr `:dep name = spec` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepLine {
    /// The crate name.
    pub name: String,
    /// The spec as written: `"1"` or `{ version = "1", features = ["x"] }`.
    pub spec: String,
    /// The spec parsed and re-printed canonically (for code versions).
    pub normalized: String,
    pub cell: CellRef,
}

impl DepLine {
    /// The spec as a TOML value (a version string or a table).
    pub fn spec_value(&self) -> toml::Value {
        parse_dep_spec(&self.name, &self.spec).expect("validated when the line was parsed")
    }

    /// The line as evcxr takes it.
    pub fn to_line(&self) -> String {
        format!(":dep {} = {}", self.name, self.spec)
    }
}

/// Items and `:dep` lines of one piece of plain Rust code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellItems {
    pub items: Vec<Item>,
    pub deps: Vec<DepLine>,
}

/// Why a plain cell's items could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ItemsError {
    #[error("{cell}, line {line}, column {column}: Rust syntax error: {message}")]
    Syntax {
        cell: CellRef,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{cell}, line {line}: bad `:dep` line `{text}`: {message} (expected `:dep NAME = \"VERSION\"` or `:dep NAME = {{ version = \"...\", features = [...] }}`)")]
    BadDep {
        cell: CellRef,
        line: usize,
        text: String,
        message: String,
    },
}

fn parse_dep_spec(name: &str, spec: &str) -> Result<toml::Value, String> {
    let doc = format!("{name} = {spec}");
    let mut table: toml::Table = doc
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let value = table.remove(name).ok_or("missing value")?;
    match &value {
        toml::Value::String(_) | toml::Value::Table(_) => Ok(value),
        _ => Err("the spec must be a version string or a table".to_string()),
    }
}

/// Parse a `:dep` line (the text after `:dep`).
fn parse_dep_line(
    rest: &str,
    cell: &CellRef,
    line: usize,
    text: &str,
) -> Result<DepLine, ItemsError> {
    let bad = |message: &str| ItemsError::BadDep {
        cell: cell.clone(),
        line,
        text: text.to_string(),
        message: message.to_string(),
    };
    let (name, spec) = rest.split_once('=').ok_or_else(|| bad("missing `=`"))?;
    let name = name.trim();
    let spec = spec.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || name.starts_with('-')
    {
        return Err(bad(
            "the crate name may contain letters, digits, `_` and `-`",
        ));
    }
    let value = parse_dep_spec(name, spec).map_err(|m| bad(&m))?;
    Ok(DepLine {
        name: name.to_string(),
        spec: spec.to_string(),
        normalized: format!(
            "{name}={}",
            serde_json::to_string(&value).unwrap_or_default()
        ),
        cell: cell.clone(),
    })
}

fn has_glob(tree: &syn::UseTree) -> bool {
    match tree {
        syn::UseTree::Path(p) => has_glob(&p.tree),
        syn::UseTree::Glob(_) => true,
        syn::UseTree::Group(g) => g.items.iter().any(has_glob),
        _ => false,
    }
}

fn last_ident(path: &syn::Path) -> Option<String> {
    path.segments.last().map(|s| s.ident.unraw().to_string())
}

fn describe(item: &syn::Item) -> Option<(ItemKind, Vec<String>, Vec<String>, bool)> {
    let one = |i: &syn::Ident| vec![i.unraw().to_string()];
    Some(match item {
        syn::Item::Use(u) => {
            let mut names = Vec::new();
            use_tree_names(&u.tree, &mut names);
            (ItemKind::Use, names, vec![], has_glob(&u.tree))
        }
        syn::Item::ExternCrate(e) => {
            let name = e.rename.as_ref().map_or(&e.ident, |(_, r)| r);
            (ItemKind::ExternCrate, one(name), vec![], false)
        }
        syn::Item::Fn(f) => (ItemKind::Fn, one(&f.sig.ident), vec![], false),
        syn::Item::Struct(s) => (ItemKind::Struct, one(&s.ident), vec![], false),
        syn::Item::Enum(e) => (ItemKind::Enum, one(&e.ident), vec![], false),
        syn::Item::Union(u) => (ItemKind::Union, one(&u.ident), vec![], false),
        syn::Item::Trait(t) => (ItemKind::Trait, one(&t.ident), vec![], false),
        syn::Item::Mod(m) => (ItemKind::Mod, one(&m.ident), vec![], false),
        syn::Item::Type(t) => (ItemKind::Type, one(&t.ident), vec![], false),
        syn::Item::Const(c) => (ItemKind::Const, one(&c.ident), vec![], false),
        syn::Item::Static(s) => (ItemKind::Static, one(&s.ident), vec![], false),
        syn::Item::Macro(m) if m.mac.path.is_ident("macro_rules") => (
            ItemKind::MacroRules,
            m.ident.iter().map(|i| i.to_string()).collect(),
            vec![],
            false,
        ),
        syn::Item::Impl(i) => {
            let mut attached = Vec::new();
            let mut ty = &*i.self_ty;
            while let syn::Type::Reference(r) = ty {
                ty = &r.elem;
            }
            if let syn::Type::Path(p) = ty {
                attached.extend(last_ident(&p.path));
            }
            if let Some((_, trait_path, _)) = &i.trait_ {
                attached.extend(last_ident(trait_path));
            }
            (ItemKind::Impl, vec![], attached, false)
        }
        _ => return None,
    })
}

/// Extract the items and `:dep` lines of a piece of plain Rust code (one
/// run of a plain cell; `first_line` is its 0-based line in the cell).
/// Statements that are not items are ignored; other evcxr `:` commands too.
pub fn extract_items(
    code: &str,
    cell: &CellRef,
    first_line: usize,
) -> Result<CellItems, ItemsError> {
    let mut out = CellItems::default();
    // Blank out evcxr commands, keeping byte offsets.
    let mut cleaned = String::with_capacity(code.len());
    let mut has_rust = false;
    for (i, line) in code.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        if let Some(cmd) = content.strip_prefix(':') {
            if let Some(rest) = cmd
                .strip_prefix("dep")
                .filter(|r| r.starts_with(char::is_whitespace))
            {
                out.deps
                    .push(parse_dep_line(rest, cell, first_line + i + 1, content)?);
            }
            cleaned.extend(std::iter::repeat_n(' ', content.len()));
            cleaned.push_str(&line[content.len()..]);
        } else {
            has_rust |= !content.trim().is_empty();
            cleaned.push_str(line);
        }
    }
    if !has_rust {
        return Ok(out);
    }
    let syntax = |line: usize, column: usize, message: String| ItemsError::Syntax {
        cell: cell.clone(),
        line: first_line + line.max(1),
        column: column + 1,
        message,
    };
    let tokens: TokenStream = cleaned.parse().map_err(|e: proc_macro2::LexError| {
        let at = e.span().start();
        syntax(at.line, at.column, e.to_string())
    })?;
    let stmts = Block::parse_within.parse2(tokens).map_err(|e| {
        let at = e.span().start();
        syntax(at.line, at.column, e.to_string())
    })?;
    for stmt in stmts {
        let Stmt::Item(item) = stmt else { continue };
        let Some((kind, names, attached_to, glob)) = describe(&item) else {
            continue;
        };
        let tokens = item.to_token_stream();
        let normalized = tokens.to_string();
        let source = cleaned
            .get(byte_range(&tokens))
            .filter(|s| !s.is_empty())
            .map_or_else(|| normalized.clone(), str::to_string);
        let mut mentions = Vec::new();
        collect_idents(&tokens, &mut mentions);
        let line = tokens
            .clone()
            .into_iter()
            .next()
            .map_or(1, |tt| tt.span().start().line);
        out.items.push(Item {
            kind,
            names,
            attached_to,
            glob,
            source,
            normalized,
            mentions: mentions.into_iter().collect(),
            cell: cell.clone(),
            line: first_line + line.saturating_sub(1),
        });
    }
    Ok(out)
}

/// The source bytes from the first token to the end of the last (what
/// `Spanned::span` gives, without printing the item a second time).
fn byte_range(tokens: &TokenStream) -> std::ops::Range<usize> {
    let mut spans = tokens.clone().into_iter().map(|tt| tt.span());
    let Some(first) = spans.next() else {
        return 0..0;
    };
    let last = spans.last().unwrap_or(first);
    first.byte_range().start..last.byte_range().end
}

/// Lookup from names to the items that define them, to find which items a
/// body refers to (transitively through the items' own identifiers).
#[derive(Debug, Clone, Default)]
pub struct ItemIndex {
    by_name: FxHashMap<String, Vec<usize>>,
    impls_of: FxHashMap<String, Vec<usize>>,
    always: Vec<usize>,
    /// Per item: itself and every item it reaches, sorted.
    closures: Vec<Vec<usize>>,
}

impl ItemIndex {
    pub fn new(items: &[Item]) -> ItemIndex {
        let mut index = ItemIndex::default();
        for (i, item) in items.iter().enumerate() {
            for n in &item.names {
                index.by_name.entry(n.clone()).or_default().push(i);
            }
            for n in &item.attached_to {
                index.impls_of.entry(n.clone()).or_default().push(i);
            }
            if item.glob {
                index.always.push(i);
            }
        }
        index.closures = (0..items.len())
            .map(|i| {
                let mut seen = vec![false; items.len()];
                let mut stack = vec![i];
                seen[i] = true;
                while let Some(j) = stack.pop() {
                    for m in &items[j].mentions {
                        for &k in index.direct(m) {
                            if !seen[k] {
                                seen[k] = true;
                                stack.push(k);
                            }
                        }
                    }
                    if items[j].kind != ItemKind::Impl {
                        for n in &items[j].names {
                            for &k in index.impls_of.get(n).map_or(&[][..], Vec::as_slice) {
                                if !seen[k] {
                                    seen[k] = true;
                                    stack.push(k);
                                }
                            }
                        }
                    }
                }
                (0..items.len()).filter(|&k| seen[k]).collect()
            })
            .collect();
        index
    }

    fn direct(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether some item defines `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The items (indices, sorted) a body mentioning `names` refers to,
    /// transitively, plus glob `use`s.
    pub fn referenced<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
        let mut out: Vec<usize> = self.always.clone();
        for name in names {
            for &i in self.direct(name) {
                out.extend_from_slice(&self.closures[i]);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell() -> CellRef {
        CellRef {
            index: 2,
            id: Some("c2".into()),
        }
    }

    #[test]
    fn items_with_original_source_and_names() {
        let code = "use std::collections::{HashMap, BTreeMap as Tree, self};\n\
                    /// Doubles.\nfn double(x: f64) -> f64 {\n    // keep me\n    x * 2.0\n}\n\
                    let session_only = 5;\n\
                    struct P { x: f64 }\nimpl P { fn norm(&self) -> f64 { double(self.x) } }\n\
                    enum E { A }\ntrait T {}\nmod m { pub fn f() {} }\ntype Alias = Vec<u8>;\n\
                    const LIMIT: usize = 3;\nstatic NAME: &str = \"n\";\n\
                    macro_rules! sq { ($e:expr) => { $e * $e }; }\nuse rayon::prelude::*;\nsession_only";
        let got = extract_items(code, &cell(), 0).unwrap();
        let kinds: Vec<ItemKind> = got.items.iter().map(|i| i.kind).collect();
        use ItemKind::*;
        assert_eq!(
            kinds,
            [Use, Fn, Struct, Impl, Enum, Trait, Mod, Type, Const, Static, MacroRules, Use]
        );
        assert_eq!(got.items[0].names, ["HashMap", "Tree", "collections"]);
        let f = &got.items[1];
        assert_eq!(f.names, ["double"]);
        assert!(
            f.source.starts_with("/// Doubles.\nfn double"),
            "{}",
            f.source
        );
        assert!(
            f.source.contains("// keep me") && f.source.ends_with('}'),
            "{}",
            f.source
        );
        assert!(!f.normalized.contains("keep me"));
        assert_eq!(got.items[3].attached_to, ["P"]);
        assert!(got.items[3].mentions.contains("double"));
        assert_eq!(got.items[10].names, ["sq"]);
        assert!(got.items[11].glob);
        assert_eq!(got.items[1].cell, cell());
    }

    #[test]
    fn dep_lines() {
        let code = ":dep serde = { version = \"1\", features = [\"derive\"] }\n:dep rand = \"0.8\"\n:vars\nfn f() {}";
        let got = extract_items(code, &cell(), 4).unwrap();
        assert_eq!(got.deps.len(), 2);
        assert_eq!(got.deps[0].name, "serde");
        assert_eq!(
            got.deps[0].spec,
            "{ version = \"1\", features = [\"derive\"] }"
        );
        assert_eq!(got.deps[1].spec_value(), toml::Value::String("0.8".into()));
        assert_eq!(got.deps[1].to_line(), ":dep rand = \"0.8\"");
        let a = extract_items(":dep x = {version=\"1\"}", &cell(), 0).unwrap();
        let b = extract_items(":dep x = { version = \"1\" }", &cell(), 0).unwrap();
        assert_eq!(a.deps[0].normalized, b.deps[0].normalized);
        assert_eq!(got.items.len(), 1);
        assert_eq!(got.items[0].source, "fn f() {}");

        let e = extract_items("fn a() {}\n:dep bad", &cell(), 4).unwrap_err();
        assert!(matches!(e, ItemsError::BadDep { line: 6, .. }), "{e}");
        let e = extract_items(":dep x = [1]", &cell(), 0).unwrap_err();
        assert!(e.to_string().contains("version string or a table"), "{e}");
        let e = extract_items(":dep x; rm = \"1\"", &cell(), 0).unwrap_err();
        assert!(matches!(e, ItemsError::BadDep { .. }), "{e}");
    }

    #[test]
    fn syntax_error_position() {
        let e = extract_items("fn a() {}\nfn b( {}", &cell(), 3).unwrap_err();
        let ItemsError::Syntax { line, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(line, 5);
    }

    #[test]
    fn index_follows_references_transitively() {
        let code = "fn a() -> u8 { b() }\nfn b() -> u8 { 1 }\nfn c() {}\nstruct S;\nimpl S { fn g(&self) -> u8 { a() } }\nuse x::*;";
        let items = extract_items(code, &cell(), 0).unwrap().items;
        let index = ItemIndex::new(&items);
        let names = |v: Vec<usize>| -> Vec<String> {
            v.into_iter()
                .map(|i| {
                    items[i]
                        .names
                        .first()
                        .cloned()
                        .unwrap_or_else(|| format!("{:?}", items[i].kind))
                })
                .collect()
        };
        assert_eq!(names(index.referenced(["a"])), ["a", "b", "Use"]);
        assert_eq!(
            names(index.referenced(["S"])),
            ["a", "b", "S", "Impl", "Use"]
        );
        assert_eq!(names(index.referenced(["zzz"])), ["Use"]);
        assert!(index.defines("c") && !index.defines("g"));
    }
}
