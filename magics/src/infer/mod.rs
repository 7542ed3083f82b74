//! Body analysis: an asset body's free identifiers, mentioned identifiers
//! and normalized text. Common bodies go through `fast` (a hand-written
//! lexer and walk, no syn); the others through syn and `free`, with the
//! same results.
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

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::Block;
use thiserror::Error;

mod fast;
mod format;
mod free;
pub mod python;
pub mod shell;

pub use format::format_captures;
pub use python::python_free_names;
pub use shell::shell_free_names;

use crate::model::Lang;

/// A body that does not parse (as Rust statements, or as a Python module).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{language} syntax error at line {line}, column {column} of the body: {message}")]
pub struct InferError {
    /// `Rust` or `Python`.
    pub language: &'static str,
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
/// and normalized source. Common bodies take a fast path without syn;
/// the others (and every error) go through syn, with the same results.
pub fn analyze_body(body: &str) -> Result<BodyAnalysis, InferError> {
    match fast::analyze(body) {
        Some(analysis) => Ok(analysis),
        None => analyze_with_syn(body),
    }
}

/// [`analyze_body`] for a body in `lang`: Python and bash bodies have
/// their own parsers; their free names are dependency candidates and they
/// mention no Rust items.
pub fn analyze_source(lang: Lang, body: &str) -> Result<BodyAnalysis, InferError> {
    match lang {
        Lang::Rust => analyze_body(body),
        Lang::Python => python::analyze_python(body),
        Lang::Bash => Ok(shell::analyze_shell(body)),
    }
}

/// Text without trailing whitespace and blank lines (the normalized form
/// of Python and bash bodies, after their comments are gone).
pub(crate) fn normalize_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`analyze_body`] with syn only.
pub(crate) fn analyze_with_syn(body: &str) -> Result<BodyAnalysis, InferError> {
    let tokens: TokenStream = body
        .parse()
        .map_err(|e: proc_macro2::LexError| position_error(body, e.span(), &e.to_string()))?;
    let normalized = tokens.to_string();
    let mut mentioned = Vec::new();
    crate::names::collect_idents(&tokens, &mut mentioned);
    mentioned.sort_unstable();
    mentioned.dedup();
    let mentioned_joined = mentioned.join(" ");
    let stmts = Block::parse_within
        .parse2(tokens)
        .map_err(|e| position_error(body, e.span(), &e.to_string()))?;
    Ok(BodyAnalysis {
        free: free::free_in(&stmts),
        mentioned_joined,
        digest: crate::model::digest_of(&normalized),
        normalized,
    })
}

fn position_error(body: &str, span: proc_macro2::Span, message: &str) -> InferError {
    let start = span.start();
    if start.line == 0 {
        // No location (end of input): point after the last character.
        let lines: Vec<&str> = body.lines().collect();
        return InferError {
            language: "Rust",
            line: lines.len().max(1),
            column: lines.last().map_or(0, |l| l.chars().count()) + 1,
            message: message.to_string(),
        };
    }
    InferError {
        language: "Rust",
        line: start.line,
        column: start.column + 1,
        message: message.to_string(),
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
