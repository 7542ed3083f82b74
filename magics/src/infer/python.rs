//! Python bodies (`%%asset NAME --lang python`): free names, parsed with
//! `ruff_python_parser` (Ruff's parser, published on crates.io).
//!
//! The body runs as a module, top to bottom, so the module scope is
//! walked in order: a name loaded before any assignment to it is free
//! (`x = x + 1` loads the upstream `x`). Functions and lambdas run later:
//! a name they load that is neither their own (parameters, assignments,
//! imports; `global` declarations aside) nor assigned anywhere in the
//! module is free. Comprehensions and class bodies run where they are:
//! what they do not bind themselves is loaded in the enclosing scope at
//! that point. Imports, `def`, `class`, `except ... as`, `with ... as`,
//! `for` targets, walrus targets and `match` captures bind.

use std::collections::{BTreeSet, HashSet};

use ruff_python_ast::token::{Token, TokenKind};
use ruff_python_ast::visitor::{walk_expr, walk_pattern, walk_stmt, Visitor};
use ruff_python_ast::{
    Comprehension, ExceptHandler, Expr, ExprContext, Parameters, Pattern, Stmt, TypeParam,
};
use ruff_python_parser::parse_module;
use ruff_text_size::{Ranged, TextSize};

use super::{BodyAnalysis, InferError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Module,
    Function,
    Class,
    Comprehension,
}

#[derive(Debug)]
struct Scope {
    kind: Kind,
    bound: HashSet<String>,
    /// Loads of a function scope, resolved when it ends.
    loads: Vec<String>,
    globals: HashSet<String>,
    nonlocals: HashSet<String>,
}

impl Scope {
    fn new(kind: Kind) -> Scope {
        Scope {
            kind,
            bound: HashSet::new(),
            loads: Vec::new(),
            globals: HashSet::new(),
            nonlocals: HashSet::new(),
        }
    }
}

struct Walker {
    scopes: Vec<Scope>,
    free: BTreeSet<String>,
    /// Module names loaded by functions: free unless bound anywhere.
    deferred: Vec<String>,
    /// Every name the module binds (also from `global` in functions).
    module_bound: HashSet<String>,
}

impl Walker {
    fn current(&mut self) -> &mut Scope {
        self.scopes.last_mut().expect("the module scope")
    }

    fn push(&mut self, kind: Kind) {
        self.scopes.push(Scope::new(kind));
    }

    /// Ends the innermost scope; a function's unresolved loads go to the
    /// scopes around it (a class body is not one of them).
    fn pop(&mut self) {
        let scope = self.scopes.pop().expect("a nested scope");
        if scope.kind != Kind::Function {
            return;
        }
        for name in scope.loads {
            if scope.bound.contains(&name) && !scope.nonlocals.contains(&name) {
                continue;
            }
            if scope.globals.contains(&name) {
                self.deferred.push(name);
                continue;
            }
            self.load_later(name, self.scopes.len());
        }
    }

    /// A load from a function nested in the first `depth` scopes.
    fn load_later(&mut self, name: String, depth: usize) {
        for scope in self.scopes[..depth].iter_mut().rev() {
            match scope.kind {
                Kind::Class => continue,
                Kind::Comprehension if scope.bound.contains(&name) => return,
                Kind::Comprehension => continue,
                Kind::Function => {
                    scope.loads.push(name);
                    return;
                }
                Kind::Module => break,
            }
        }
        self.deferred.push(name);
    }

    /// A load at this point of the innermost scope.
    fn load(&mut self, name: &str) {
        self.load_at(name, self.scopes.len());
    }

    fn load_at(&mut self, name: &str, depth: usize) {
        let scope = &mut self.scopes[depth - 1];
        match scope.kind {
            Kind::Module => {
                if !scope.bound.contains(name) {
                    self.free.insert(name.to_string());
                }
            }
            Kind::Function => {
                scope.loads.push(name.to_string());
            }
            Kind::Class | Kind::Comprehension => {
                if !scope.bound.contains(name) {
                    self.load_at(name, depth - 1);
                }
            }
        }
    }

    fn bind(&mut self, name: &str) {
        let depth = self.scopes.len();
        self.bind_at(name, depth);
    }

    fn bind_at(&mut self, name: &str, depth: usize) {
        let scope = &mut self.scopes[depth - 1];
        if scope.kind == Kind::Function && scope.globals.contains(name) {
            self.module_bound.insert(name.to_string());
            return;
        }
        if scope.kind == Kind::Module {
            self.module_bound.insert(name.to_string());
        }
        scope.bound.insert(name.to_string());
    }

    /// Defaults and annotations are evaluated where the function is defined.
    fn parameter_defaults(&mut self, parameters: &Parameters) {
        for p in parameters.iter_non_variadic_params() {
            if let Some(default) = p.default() {
                self.visit_expr(default);
            }
        }
        for p in parameters.iter() {
            if let Some(annotation) = p.annotation() {
                self.visit_annotation(annotation);
            }
        }
    }

    fn bind_parameters(&mut self, parameters: &Parameters) {
        for p in parameters.iter() {
            self.bind(p.name().as_str());
        }
    }

    fn type_params(&mut self, params: Option<&ruff_python_ast::TypeParams>) {
        for p in params.into_iter().flat_map(|p| p.iter()) {
            let name = match p {
                TypeParam::TypeVar(t) => &t.name,
                TypeParam::ParamSpec(t) => &t.name,
                TypeParam::TypeVarTuple(t) => &t.name,
            };
            self.bind(name.as_str());
        }
    }

    /// The first iterable runs in the enclosing scope, the rest in the
    /// comprehension's own.
    fn comprehension(&mut self, generators: &[Comprehension], results: &[&Expr]) {
        let Some(first) = generators.first() else {
            return;
        };
        self.visit_expr(&first.iter);
        self.push(Kind::Comprehension);
        for (i, g) in generators.iter().enumerate() {
            if i > 0 {
                self.visit_expr(&g.iter);
            }
            self.visit_expr(&g.target);
            for cond in &g.ifs {
                self.visit_expr(cond);
            }
        }
        for e in results {
            self.visit_expr(e);
        }
        self.pop();
    }
}

impl<'a> Visitor<'a> for Walker {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                for d in &f.decorator_list {
                    self.visit_decorator(d);
                }
                self.parameter_defaults(&f.parameters);
                if let Some(returns) = &f.returns {
                    self.visit_annotation(returns);
                }
                self.bind(f.name.as_str());
                self.push(Kind::Function);
                self.type_params(f.type_params.as_deref());
                self.bind_parameters(&f.parameters);
                self.visit_body(&f.body);
                self.pop();
            }
            Stmt::ClassDef(c) => {
                for d in &c.decorator_list {
                    self.visit_decorator(d);
                }
                if let Some(arguments) = &c.arguments {
                    self.visit_arguments(arguments);
                }
                self.push(Kind::Class);
                self.type_params(c.type_params.as_deref());
                self.visit_body(&c.body);
                self.pop();
                self.bind(c.name.as_str());
            }
            Stmt::Import(i) => {
                for alias in &i.names {
                    let name = match &alias.asname {
                        Some(asname) => asname.as_str(),
                        None => alias.name.as_str().split('.').next().unwrap_or(""),
                    };
                    self.bind(name);
                }
            }
            Stmt::ImportFrom(i) => {
                for alias in &i.names {
                    let name = alias.asname.as_ref().unwrap_or(&alias.name);
                    if name.as_str() != "*" {
                        self.bind(name.as_str());
                    }
                }
            }
            Stmt::Global(g) => {
                for name in &g.names {
                    self.current().globals.insert(name.to_string());
                }
            }
            Stmt::Nonlocal(n) => {
                for name in &n.names {
                    self.current().nonlocals.insert(name.to_string());
                }
            }
            Stmt::AugAssign(a) => {
                self.visit_expr(&a.value);
                match &*a.target {
                    Expr::Name(n) => {
                        self.load(n.id.as_str());
                        self.bind(n.id.as_str());
                    }
                    target => self.visit_expr(target),
                }
            }
            Stmt::TypeAlias(t) => {
                self.visit_expr(&t.name);
                self.push(Kind::Function);
                self.type_params(t.type_params.as_deref());
                self.visit_expr(&t.value);
                self.pop();
            }
            _ => walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) => match n.ctx {
                ExprContext::Load | ExprContext::Del => self.load(n.id.as_str()),
                ExprContext::Store => self.bind(n.id.as_str()),
                ExprContext::Invalid => {}
            },
            Expr::Lambda(l) => {
                if let Some(parameters) = &l.parameters {
                    self.parameter_defaults(parameters);
                }
                self.push(Kind::Function);
                if let Some(parameters) = &l.parameters {
                    self.bind_parameters(parameters);
                }
                self.visit_expr(&l.body);
                self.pop();
            }
            Expr::ListComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::SetComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::Generator(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::DictComp(c) => {
                let mut results: Vec<&Expr> = c.key.iter().map(|k| &**k).collect();
                results.push(&c.value);
                self.comprehension(&c.generators, &results);
            }
            Expr::Named(n) => {
                self.visit_expr(&n.value);
                if let Expr::Name(target) = &*n.target {
                    // The target belongs to the scope around the comprehensions.
                    let depth = self
                        .scopes
                        .iter()
                        .rposition(|s| s.kind != Kind::Comprehension)
                        .map_or(1, |i| i + 1);
                    self.bind_at(target.id.as_str(), depth);
                }
            }
            _ => walk_expr(self, expr),
        }
    }

    fn visit_except_handler(&mut self, handler: &'a ExceptHandler) {
        let ExceptHandler::ExceptHandler(h) = handler;
        if let Some(ty) = &h.type_ {
            self.visit_expr(ty);
        }
        if let Some(name) = &h.name {
            self.bind(name.as_str());
        }
        self.visit_body(&h.body);
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        walk_pattern(self, pattern);
        let name = match pattern {
            Pattern::MatchAs(p) => p.name.as_ref(),
            Pattern::MatchStar(p) => p.name.as_ref(),
            Pattern::MatchMapping(p) => p.rest.as_ref(),
            _ => None,
        };
        if let Some(name) = name {
            self.bind(name.as_str());
        }
    }
}

/// 1-based line and column of a byte offset.
fn position(src: &str, offset: TextSize) -> (usize, usize) {
    let offset = usize::from(offset).min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The free names of a Python body, or its first syntax error.
pub fn python_free_names(src: &str) -> Result<BTreeSet<String>, InferError> {
    analyze_python(src).map(|a| a.free)
}

/// [`BodyAnalysis`] of a Python body: its free names; the normalized text
/// is the source without comments, trailing whitespace and blank lines
/// (indentation is Python's syntax, so it stays).
pub fn analyze_python(src: &str) -> Result<BodyAnalysis, InferError> {
    let parsed = parse_module(src).map_err(|e| {
        let (line, column) = position(src, e.location.start());
        InferError {
            language: "Python",
            line,
            column,
            message: e.error.to_string(),
        }
    })?;
    let mut walker = Walker {
        scopes: vec![Scope::new(Kind::Module)],
        free: BTreeSet::new(),
        deferred: Vec::new(),
        module_bound: HashSet::new(),
    };
    walker.visit_body(&parsed.syntax().body);
    for name in std::mem::take(&mut walker.deferred) {
        if !walker.module_bound.contains(&name) {
            walker.free.insert(name);
        }
    }
    let comments: Vec<&Token> = parsed
        .tokens()
        .iter()
        .filter(|t| t.kind() == TokenKind::Comment)
        .collect();
    let mut text = String::with_capacity(src.len());
    let mut last = 0usize;
    for c in comments {
        text.push_str(&src[last..usize::from(c.start())]);
        last = usize::from(c.end());
    }
    text.push_str(&src[last..]);
    let normalized = super::normalize_lines(&text);
    Ok(BodyAnalysis {
        free: walker.free,
        mentioned_joined: String::new(),
        digest: crate::model::digest_of(&normalized),
        normalized,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(src: &str) -> Vec<String> {
        python_free_names(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .into_iter()
            .collect()
    }

    #[test]
    fn module_code_runs_in_order() {
        assert_eq!(free("[x * 2 for x in raw]"), ["raw"]);
        assert_eq!(
            free("total = sum(raw)\ntotal / len(raw)"),
            ["len", "raw", "sum"]
        );
        assert_eq!(free("raw = raw + [1]\nraw"), ["raw"]);
        assert!(free("raw = [1]\nraw").is_empty());
        assert_eq!(free("n += 1"), ["n"]);
        assert_eq!(free("if (m := size) > 3:\n    print(m)"), ["print", "size"]);
    }

    #[test]
    fn imports_defs_and_handlers_bind() {
        assert_eq!(
            free("import numpy as np\nimport os.path\nfrom json import dumps as d\nnp.array(raw), os.sep, d(1)"),
            ["raw"]
        );
        assert_eq!(
            free("try:\n    x = int(text)\nexcept ValueError as e:\n    x = str(e)\nx"),
            ["ValueError", "int", "str", "text"]
        );
        assert_eq!(
            free("with open(path) as f:\n    data = f.read()\nfor i, line in enumerate(data):\n    print(i, line)"),
            ["enumerate", "open", "path", "print"]
        );
        assert_eq!(
            free("match cmd:\n    case [first, *rest]:\n        first\n    case {'k': v, **others}:\n        v, others\n    case Point(x=px) as p:\n        px, p"),
            ["Point", "cmd"]
        );
    }

    #[test]
    fn functions_see_the_whole_module() {
        assert_eq!(
            free("def f(a, b=default):\n    return a + b + scale + later\nlater = 1\nf(raw)"),
            ["default", "raw", "scale"]
        );
        assert_eq!(
            free("def outer():\n    k = 1\n    def inner():\n        return k + up\n    return inner\nouter()"),
            ["up"]
        );
        assert_eq!(free("f = lambda x, y=base: x + y + z\nf(1)"), ["base", "z"]);
        assert_eq!(
            free("def g():\n    global acc\n    acc = 1\ng()\nacc"),
            ["acc"],
            "read before g() bound it: the global assignment runs later"
        );
        assert_eq!(
            free("class C(Base):\n    k = 2\n    def m(self):\n        return self.k + k\nC"),
            ["Base", "k"]
        );
        assert_eq!(
            free("{k: v for k, v in pairs.items() if v > limit}"),
            ["limit", "pairs"]
        );
        assert_eq!(free("[y for x in xs for y in x]"), ["xs"]);
    }

    #[test]
    fn syntax_errors_have_positions_and_say_python() {
        let e = python_free_names("x = 1\ny = (\n").unwrap_err();
        assert_eq!(e.language, "Python");
        assert!(e.line >= 2, "{e}");
        assert!(
            e.to_string().starts_with("Python syntax error at line"),
            "{e}"
        );
        let e = python_free_names("def f(:\n    pass").unwrap_err();
        assert_eq!((e.line, e.column), (1, 7), "{e}");
    }

    #[test]
    fn comments_and_blank_lines_do_not_change_the_digest() {
        let a = analyze_python("x = raw  # the input\n\nx * 2\n").unwrap();
        let b = analyze_python("# scaled\nx = raw\nx * 2").unwrap();
        assert_eq!(a.normalized, b.normalized);
        assert_eq!(a.digest, b.digest);
        let c = analyze_python("x = raw\nx * 3").unwrap();
        assert_ne!(a.digest, c.digest);
        let s = analyze_python("s = '# not a comment'\ns").unwrap();
        assert!(s.normalized.contains("# not a comment"));
    }
}
