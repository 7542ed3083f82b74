//! The fast path against syn: whenever it answers, it answers exactly as
//! the syn path does (free identifiers, mentioned identifiers, normalized
//! text, digest); and it answers for the common bodies.

use super::analyze;
use crate::infer::analyze_with_syn;

/// Bodies the fast path must handle (and agree with syn on).
const COMMON: &[&str] = &[
    "",
    "temperatures.len() as f64",
    "let n = temperatures.len() as f64;\n(temperatures.iter().sum::<f64>() / n, n)",
    "(0..1_000_000).map(|i| (i as f64).sin()).collect::<Vec<f64>>()",
    "// combine upstreams\nlet base = a1.iter().sum::<usize>() + a7.iter().sum::<usize>();\nlet scaled: Vec<usize> = (0..base % 100).map(|x| x * 2 + helper_3(x)).collect();\nlet stats = Stats3 { n: scaled.len(), total: scaled.iter().sum() };\nprintln!(\"{} values, mean {:.2}, base {base}\", stats.n, stats.mean());\nscaled",
    "let a = 1; a + b",
    "let x = x + 1; x",
    "let (a, b) = pair; let P { x, y: z } = p; a + b + x + z",
    "let [first, .., last] = arr; first + last",
    "{ let a = 1; a }; a",
    "let a = { let b = c; b }; a + b",
    "loop { let t = 1; break t; }",
    "unsafe { raw_ptr.read() }",
    "data.iter().map(|x| x * factor).sum::<f64>()",
    "let f = |(a, b): (u8, u8), c| a + b + c + d; f((1, 2), 3)",
    "let f = move || x; f()",
    "for (i, v) in items.iter().enumerate() { total += i * v; }",
    "for x in xs {} x",
    "match value { Some(inner) if inner > limit => inner, Some(_) | None => other }",
    "if let Some(v) = maybe { v } else { v }",
    "if let Some(a) = x && let Some(b) = a.get(0) { a.len() + b } else { 0 }",
    "while let Some(top) = stack.pop() { seen.push(top); }",
    "println!(\"{}\", x)",
    "format!(\"{} {}\", a, b.len())",
    "vec![x, y]",
    "vec![x; n]",
    "assert!(ok, \"failed: {}\", why); 1",
    "assert_eq!(left, right); 1",
    "let t = 1; println!(\"{}\", t)",
    "println!(\"{:?}\", xs.iter().map(|q| q + 1).collect::<Vec<_>>())",
    "println!(\"{x}\")",
    "format!(\"{x:?} and {y:#?}\")",
    "format!(\"{x:>w$} {:.prec$}\", 1.0)",
    "format!(\"{{x}} {0} {}\", a)",
    "format!(\"{x}\", x = other)",
    "let x = 1; println!(\"{x}\")",
    "write!(f, \"{val}\")",
    "panic!(\"bad {why}\")",
    "a::b(c)",
    "x.field + y.method(z)",
    "::std::mem::drop(v)",
    "Point { x, y: other }",
    "self_val.0",
    "helper::<u8>(n)",
    "let mut v = Vec::new(); v.push(1); v",
    "let m: HashMap<String, Vec<u8>> = HashMap::new(); m",
    "if a < b && c >= d { -x } else if !y { *z } else { &w }",
    "match n { 0 => \"zero\", 1 | 2 => \"small\", _ => \"big\" }",
    "let Some(q) = opt else { panic!(\"{q}\") }; q",
    "let s = String::from(\"a\\n\\\"b\\\"\"); s + &t",
    "x == 'a' || x=='b'",
    "let r = &mut buf[..n]; r.len()",
    "let v: [u8; 4] = [0; 4]; v[i..]",
    "(a, b,).0 .. c",
    "Some(x?).map(|y| y.to_string()).unwrap_or_default()",
    "let total: f64 = rows.iter().filter(|r| r.ok).map(|r| r.value).sum(); total / rows.len() as f64",
    "matches!(x, Foo::Bar)",
    "{ }",
    "if x { } else { }",
    "x = y; z += 1; w",
    "return a;",
    "for i in 0..n { if i % 2 == 0 { continue; } acc.push(i); } acc",
    "let s = S { a: 1, ..base }; s",
    "data.chunks(4).map(|c| c.iter().copied().max().unwrap_or(0)).collect::<Vec<_>>()",
];

/// Bodies outside the subset or with errors: the fast path may answer only
/// if it agrees with syn.
const EDGES: &[&str] = &[
    "let v @ 1..=5 = n else { return }; v",
    "fn helper(v: &[f64]) -> f64 { v[0] + w } helper(&data)",
    "let r = twice(2); fn twice(n: u8) -> u8 { n * 2 } r",
    "struct S; impl S { fn get(&self) -> u8 { self.0 + k } } S",
    "use std::collections::HashMap; HashMap::<u8, u8>::new()",
    "matches!(x, 1..=5 | 7)",
    "my_dsl!(select a.field from table where b != c)",
    "m!(std::f64::consts::PI, key: value, inner!(z) ; ;)",
    "json!({\"a\": x, \"b\": Point { q: 1 }})",
    "<T as Default>::default()",
    "r#foo + 1",
    "let a = 1;\nlet b = ;\nb",
    "let a = (1,\n2",
    "let a =",
    "a < b < c",
    "a == b == c",
    "a..b..c",
    "x as usize < y",
    "let x = 1 let y = 2",
    "println!(\"a\") println!(\"b\")",
    "if x == S { a } else { b }",
    "match x { S { a } => a }",
    "'outer: loop { break 'outer; }",
    "/// doc\nx",
    "x /* c */ + y // d",
    "x.await",
    "async { x }",
    "|x| -> u8 { x }",
    "let x = match a { _ => 1 } else { return };",
    "0x1f + 1e3 + 1.5e-3 + b'a' as u32",
    "\"\\u{7b}x}\"",
    "println!(\"\\u{7b}x}\")",
    "x.0.1",
    "1.max(2)",
    "&raw const x",
    "_ = f()",
    "x = || y = z",
    "if let x = y { x }",
    "{ a } - b",
    "match a { _ => {} - 1 }",
    "let r = a..; r",
    "let r = ..=b; r",
    "for x in 0.. { }",
    "vec![1, 2, 3].len()",
    "m!{ a } . b",
    "m!{ a } b",
    "union.x",
    "default.y",
    "let x: impl Fn() = y;",
    "let x: Vec<u8>= y; x",
    "a &&b || &c",
    "a & &b",
    "let Foo(x, ..) = y; x",
    "let Foo { x, .. } = y; x",
    "let &(ref a, mut b) = y; a + b",
    "x?.y?",
    "f(a)(b)[c]",
    "(a)",
    "[a, b][c]",
    "[]",
    "()",
    "return",
    "break",
    "while x { break }",
    "if x { 1 } else { 2 } + 3",
    "let y = if x { 1 } else { 2 } + 3; y",
    "x!= y",
    "x! = y",
    "é + 1",
    "\"é\" + x",
    "a\r\nb",
    "let mut a = 1; a += b; a -= c; a *= d; a /= e; a %= f; a ^= g; a &= h; a |= i; a <<= j; a >>= k; a",
    "a<<b>>c & d | e ^ f",
    "a<-b",
    "x--1",
    "x = y..=z",
    "!a == b",
    "a<=b && c>=d || e!=f",
    "a.. =b",
    "a ... b",
    "a => b",
    "a -> b",
    "a::b::<c>::d",
    "a: b",
    "x & &y && z",
    "v.iter().map(|x| x as f64 * 2.0).sum::<f64>() / n as f64",
];

fn check(body: &str) -> bool {
    let syn = analyze_with_syn(body);
    match analyze(body) {
        Some(fast) => {
            assert_eq!(
                Ok(&fast),
                syn.as_ref(),
                "fast path differs from syn on {body:?}"
            );
            true
        }
        None => false,
    }
}

#[test]
fn common_bodies_take_the_fast_path_and_agree_with_syn() {
    for body in COMMON {
        assert!(check(body), "not on the fast path: {body:?}");
    }
}

#[test]
fn edge_bodies_agree_with_syn_when_the_fast_path_answers() {
    for body in EDGES {
        check(body);
    }
}

#[test]
fn every_prefix_and_suffix_agrees_with_syn() {
    // Truncated bodies hit unbalanced groups, missing operands, dangling
    // operators: the fast path must never accept what syn rejects.
    for body in COMMON.iter().chain(EDGES) {
        for (i, _) in body.char_indices() {
            check(&body[..i]);
            check(&body[i..]);
        }
    }
}

/// Random bodies from Rust fragments, with balanced groups: most do not
/// parse, some do; the fast path must agree with syn whenever it answers.
/// `FUZZ_SEED`, `FUZZ_ROUNDS` and `FUZZ_LEN` (fragments per body) run a
/// longer search.
#[test]
fn random_bodies_agree_with_syn() {
    const FRAGMENTS: &[&str] = &[
        "a", "b", "x", "v", "S", "Some", "None", "1", "2.5", "0u8", "\"s{a}\"", "'c'", "true", "+",
        "-", "*", "/", "%", "==", "!=", "<", ">", "<=", "&&", "||", "=", "+=", "..", "..=", ",",
        ";", ".", "?", "!", "&", "|", "||", "|x|", "move", "let", "mut", "ref", "if", "else",
        "match", "=>", "for", "in", "while", "loop", "break", "continue", "return", "as", "u8",
        "::", ":", "_", "@", "vec!", "println!", "format!", "len()", ".0", "fn", "use", "'a", "#",
        "x.y", "f(a)", "S { a }", "|a, b|",
    ];
    let mut state: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % bound as u64) as usize
    };
    let fuzz_len: usize = std::env::var("FUZZ_LEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut answered = 0;
    let rounds: usize = std::env::var("FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    for _ in 0..rounds {
        let mut body = String::new();
        let mut closers: Vec<&str> = Vec::new();
        for _ in 0..1 + next(fuzz_len) {
            match next(10) {
                0 => {
                    let (open, close) = [("(", ")"), ("[", "]"), ("{ ", " }")][next(3)];
                    body.push_str(open);
                    closers.push(close);
                }
                1 if !closers.is_empty() => body.push_str(closers.pop().unwrap_or("")),
                _ => body.push_str(FRAGMENTS[next(FRAGMENTS.len())]),
            }
            body.push(' ');
        }
        while let Some(close) = closers.pop() {
            body.push_str(close);
        }
        if check(&body) {
            answered += 1;
        }
    }
    eprintln!("answered {answered}");
    assert!(
        answered > 100,
        "the fast path answered only {answered} times"
    );
}

/// Random well-formed bodies from a small grammar of the subset (nested
/// closures, matches, lets, loops, macros, struct literals and patterns):
/// the fast path must answer for most and agree with syn on all.
/// `FUZZ_SEED` and `FUZZ_ROUNDS` run a longer search.
#[test]
fn generated_bodies_agree_with_syn() {
    struct Gen(u64);
    impl Gen {
        fn pick(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % bound as u64) as usize
        }
        fn name(&mut self) -> &'static str {
            ["a", "b", "x", "y", "n", "acc", "Some", "None", "S"][self.pick(9)]
        }
        fn pat(&mut self, depth: usize) -> String {
            match if depth == 0 {
                self.pick(3)
            } else {
                self.pick(8)
            } {
                0 | 1 => self.name().to_string(),
                2 => "_".to_string(),
                3 => format!("({}, {})", self.pat(depth - 1), self.pat(depth - 1)),
                4 => format!("Some({})", self.pat(depth - 1)),
                5 => format!("P {{ {}, y: {} }}", self.name(), self.pat(depth - 1)),
                6 => format!("&{}", self.pat(depth - 1)),
                _ => format!("[{}, ..]", self.pat(depth - 1)),
            }
        }
        fn expr(&mut self, depth: usize) -> String {
            let leaf = depth == 0;
            match if leaf { self.pick(4) } else { self.pick(22) } {
                0 | 1 => self.name().to_string(),
                2 => "1".to_string(),
                3 => "\"t{x}\"".to_string(),
                4 => format!("{} + {}", self.expr(depth - 1), self.expr(depth - 1)),
                5 => format!("{}.len()", self.expr(depth - 1)),
                6 => format!("f({}, {})", self.expr(depth - 1), self.expr(depth - 1)),
                7 => format!("|{}| {}", self.pat(1), self.expr(depth - 1)),
                8 => format!("move || {}", self.expr(depth - 1)),
                9 => format!(
                    "if {} {{ {} }} else {{ {} }}",
                    self.expr(depth - 1),
                    self.body(depth - 1),
                    self.expr(depth - 1)
                ),
                10 => format!(
                    "if let {} = {} {{ {} }}",
                    self.pat(1),
                    self.expr(depth - 1),
                    self.body(depth - 1)
                ),
                11 => format!(
                    "match {} {{ {} => {}, {} if {} => {{ {} }} _ => {} }}",
                    self.expr(depth - 1),
                    self.pat(2),
                    self.expr(depth - 1),
                    self.pat(1),
                    self.expr(depth - 1),
                    self.body(depth - 1),
                    self.expr(depth - 1)
                ),
                12 => format!("{{ {} }}", self.body(depth - 1)),
                13 => format!("println!(\"{{}} {{x}}\", {})", self.expr(depth - 1)),
                14 => format!("vec![{}; {}]", self.expr(depth - 1), self.expr(depth - 1)),
                15 => format!("S {{ a: {}, b }}", self.expr(depth - 1)),
                16 => format!(
                    "for {} in {} {{ {} }}",
                    self.pat(1),
                    self.expr(depth - 1),
                    self.body(depth - 1)
                ),
                17 => format!(
                    "({} as f64, {})",
                    self.expr(depth - 1),
                    self.expr(depth - 1)
                ),
                18 => format!("{}..={}", self.expr(depth - 1), self.expr(depth - 1)),
                19 => format!(
                    "{}?.map(|v| v * {})",
                    self.expr(depth - 1),
                    self.expr(depth - 1)
                ),
                20 => format!("x.iter().map({}).sum::<u8>()", self.expr(depth - 1)),
                _ => format!(
                    "!{} && {} < {}",
                    self.expr(depth - 1),
                    self.expr(depth - 1),
                    self.expr(0)
                ),
            }
        }
        fn stmt(&mut self, depth: usize) -> String {
            match self.pick(5) {
                0 => format!("let {} = {};", self.pat(2), self.expr(depth)),
                1 => format!("let {}: u8 = {};", self.name(), self.expr(depth)),
                2 => format!(
                    "let Some({}) = {} else {{ return {} }};",
                    self.name(),
                    self.expr(depth),
                    self.expr(0)
                ),
                3 => format!("{} += {};", self.name(), self.expr(depth)),
                _ => format!("{};", self.expr(depth)),
            }
        }
        fn body(&mut self, depth: usize) -> String {
            let mut out = String::new();
            for _ in 0..self.pick(3) {
                out += &self.stmt(depth);
                out.push(' ');
            }
            out + &self.expr(depth)
        }
    }
    let mut gen = Gen(std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7));
    let mut answered = 0;
    let rounds: usize = std::env::var("FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    for _ in 0..rounds {
        let body = gen.body(3);
        if check(&body) {
            answered += 1;
        }
    }
    eprintln!("answered {answered} of {rounds}");
    assert!(
        answered * 2 > rounds,
        "the fast path answered only {answered} of {rounds}"
    );
}
