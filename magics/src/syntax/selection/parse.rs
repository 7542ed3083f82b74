//! Parsing a selection (grammar in the parent module): a lexer, a
//! recursive-descent parser, and the atoms. Errors give the column and what
//! was expected there.

use thiserror::Error;

use super::{Layers, Selection};
use crate::model::{is_identifier, is_simple_name};

const SELECTION_FORMS: &str =
    "a selection is NAME, +NAME, NAME+, N+NAME, NAME+N, *, stale, overdue, warn, \
group:G, tag:K=V or tag:K, combined with `,`, and, or, not and parentheses";

/// A selection that does not parse: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected {expected} at column {column}, found {found} ({SELECTION_FORMS})")]
pub struct SelectionParseError {
    /// 1-based column (in the text given to the parser, offset by its start column).
    pub column: usize,
    pub expected: String,
    /// What was there instead (quoted), or `end of selection`.
    pub found: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Word(String),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
}

fn lex(text: &str, first_column: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = first_column + i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            _ => {
                let start = i;
                let mut in_brackets = false;
                while i < chars.len()
                    && (in_brackets || !chars[i].is_whitespace() && !"(),".contains(chars[i]))
                {
                    // `sim[3,7]`: commas inside brackets belong to the word.
                    match chars[i] {
                        '[' => in_brackets = true,
                        ']' => in_brackets = false,
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Word(chars[start..i].iter().collect()),
                    column,
                });
                continue;
            }
        };
        i += 1;
        out.push(Token { tok, column });
    }
    out.push(Token {
        tok: Tok::End,
        column: first_column + chars.len(),
    });
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Word(w) => format!("`{w}`"),
        Tok::End => "end of selection".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(x) if x == w)
    }

    fn error(&self, expected: &str) -> SelectionParseError {
        let t = self.peek();
        SelectionParseError {
            column: t.column,
            expected: expected.to_string(),
            found: describe(&t.tok),
        }
    }

    fn union(&mut self) -> Result<Selection, SelectionParseError> {
        let mut items = vec![self.or()?];
        while self.peek().tok == Tok::Comma {
            self.pos += 1;
            items.push(self.or()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Selection::Union(items)
        })
    }

    fn or(&mut self) -> Result<Selection, SelectionParseError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            left = Selection::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Selection, SelectionParseError> {
        let mut left = self.not()?;
        while self.is_word("and") {
            self.pos += 1;
            left = Selection::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Selection, SelectionParseError> {
        if self.is_word("not") {
            self.pos += 1;
            return Ok(Selection::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Selection, SelectionParseError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::LParen => {
                self.pos += 1;
                let inner = self.union()?;
                if self.peek().tok != Tok::RParen {
                    return Err(self.error("`)` (or `,`, `and`, `or`)"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::Word(ref w) if !matches!(w.as_str(), "and" | "or") => {
                let sel = atom(w, token.column)?;
                self.pos += 1;
                Ok(sel)
            }
            _ => Err(self.error("an asset name")),
        }
    }
}

fn err_at(column: usize, expected: &str, found: &str) -> SelectionParseError {
    SelectionParseError {
        column,
        expected: expected.to_string(),
        found: if found.is_empty() {
            "end of word".to_string()
        } else {
            format!("`{found}`")
        },
    }
}

/// `name[KEYS]`: partitions of one asset. The keys are checked against the
/// asset's when planning; here only their characters.
fn partitions_atom(
    word: &str,
    open: usize,
    column: usize,
) -> Result<Selection, SelectionParseError> {
    let name = &word[..open];
    if !is_identifier(name) {
        return Err(err_at(column, "an asset name before `[`", name));
    }
    let keys_column = column + name.chars().count() + 1;
    let Some(keys) = word[open + 1..].strip_suffix(']') else {
        return Err(err_at(
            keys_column,
            "partition keys closed by `]` (as in sim[3,7,10..20])",
            &word[open + 1..],
        ));
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-=,".contains(c);
    if keys.is_empty() || !keys.chars().all(ok) {
        return Err(err_at(
            keys_column,
            "partition keys (KEY, A..B or A..=B, separated by `,`)",
            keys,
        ));
    }
    Ok(Selection::Partitions {
        name: name.to_string(),
        keys: keys.to_string(),
    })
}

/// Parse one word (no whitespace, parentheses or commas in it).
fn atom(word: &str, column: usize) -> Result<Selection, SelectionParseError> {
    match word {
        "*" => return Ok(Selection::All),
        "stale" => return Ok(Selection::Stale),
        "overdue" => return Ok(Selection::Overdue),
        "warn" => return Ok(Selection::Warn),
        _ => {}
    }
    if let Some(group) = word.strip_prefix("group:") {
        if !is_simple_name(group) {
            return Err(err_at(
                column + 6,
                "a group name (letters, digits, `_`, `.`, `-`)",
                group,
            ));
        }
        return Ok(Selection::Group(group.to_string()));
    }
    if let Some(tag) = word.strip_prefix("tag:") {
        let (key, value) = match tag.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tag, None),
        };
        if !is_simple_name(key) {
            return Err(err_at(
                column + 4,
                "a tag key (letters, digits, `_`, `.`, `-`)",
                key,
            ));
        }
        if let Some(v) = value {
            let ok = v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-:/@+".contains(c));
            if v.is_empty() || !ok || v.starts_with('-') {
                return Err(err_at(
                    column + 5 + key.chars().count(),
                    "a tag value (letters, digits, `_ . - : / @ +`)",
                    v,
                ));
            }
        }
        return Ok(Selection::Tag {
            key: key.to_string(),
            value: value.map(str::to_string),
        });
    }
    if let Some(open) = word.find('[') {
        return partitions_atom(word, open, column);
    }
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        (start < *i).then(|| chars[start..*i].iter().collect::<String>())
    };
    let rest = |i: usize| chars[i..].iter().collect::<String>();
    let layers = |n: String, col: usize| {
        n.parse::<usize>()
            .map(Layers::N)
            .map_err(|_| err_at(col, "a number of layers", &n))
    };
    // Upstream part: `+` or `N+`.
    let lead = digits(&mut i);
    let upstream = match (lead, chars.get(i)) {
        (Some(n), Some('+')) => {
            i += 1;
            Some(layers(n, column)?)
        }
        (Some(_), _) => return Err(err_at(column + i, "`+` after a number of layers", &rest(i))),
        (None, Some('+')) => {
            i += 1;
            Some(Layers::All)
        }
        (None, _) => None,
    };
    let name_start = i;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    let name: String = chars[name_start..i].iter().collect();
    if name.is_empty() || !is_identifier(&name) {
        let found = if name.is_empty() {
            rest(name_start)
        } else {
            name
        };
        return Err(err_at(column + name_start, "an asset name", &found));
    }
    let downstream = if chars.get(i) == Some(&'+') {
        i += 1;
        let at = i;
        match digits(&mut i) {
            Some(n) => Some(layers(n, column + at)?),
            None => Some(Layers::All),
        }
    } else {
        None
    };
    if i < chars.len() {
        let expected = if downstream.is_some() {
            "a number of layers or the end of the selection term"
        } else {
            "`+` or the end of the asset name"
        };
        return Err(err_at(column + i, expected, &rest(i)));
    }
    Ok(Selection::Asset {
        name,
        upstream,
        downstream,
    })
}

/// Parse a selection; columns in errors are 1-based.
pub fn parse_selection(text: &str) -> Result<Selection, SelectionParseError> {
    parse_selection_at(text, 1)
}

/// Parse a selection that starts at `first_column` of a longer line.
pub fn parse_selection_at(
    text: &str,
    first_column: usize,
) -> Result<Selection, SelectionParseError> {
    let mut p = Parser {
        tokens: lex(text, first_column),
        pos: 0,
    };
    let sel = p.union()?;
    if p.peek().tok != Tok::End {
        return Err(p.error("`,`, `and`, `or` or the end of the selection"));
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Selection {
        parse_selection(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn asset(name: &str, up: Option<Layers>, down: Option<Layers>) -> Selection {
        Selection::Asset {
            name: name.into(),
            upstream: up,
            downstream: down,
        }
    }

    #[test]
    fn freshness_atoms_compose() {
        let p = |s: &str| parse_selection(s).unwrap();
        assert_eq!(p("overdue"), Selection::Overdue);
        assert_eq!(p("warn"), Selection::Warn);
        assert_eq!(
            p("stale or overdue"),
            Selection::Or(Box::new(Selection::Stale), Box::new(Selection::Overdue))
        );
        assert_eq!(
            p("(warn, overdue) and not stale").to_string(),
            "(warn, overdue) and not stale"
        );
    }

    #[test]
    fn every_atom_form() {
        assert_eq!(p("summary"), asset("summary", None, None));
        assert_eq!(p("+summary"), asset("summary", Some(Layers::All), None));
        assert_eq!(p("summary+"), asset("summary", None, Some(Layers::All)));
        assert_eq!(p("2+summary"), asset("summary", Some(Layers::N(2)), None));
        assert_eq!(p("summary+3"), asset("summary", None, Some(Layers::N(3))));
        assert_eq!(
            p("+summary+"),
            asset("summary", Some(Layers::All), Some(Layers::All))
        );
        assert_eq!(
            p("1+s+12"),
            asset("s", Some(Layers::N(1)), Some(Layers::N(12)))
        );
        assert_eq!(p("*"), Selection::All);
        assert_eq!(p("stale"), Selection::Stale);
        assert_eq!(p("group:etl"), Selection::Group("etl".into()));
        assert_eq!(
            p("tag:team=geo"),
            Selection::Tag {
                key: "team".into(),
                value: Some("geo".into())
            }
        );
        assert_eq!(
            p("tag:team"),
            Selection::Tag {
                key: "team".into(),
                value: None
            }
        );
        assert_eq!(p("  ( a )  "), asset("a", None, None));
    }

    #[test]
    fn precedence_comma_or_and_not() {
        // not binds tighter than and, and tighter than or, or tighter than `,`.
        let s = p("a or b and not c, d");
        assert_eq!(
            s,
            Selection::Union(vec![
                Selection::Or(
                    Box::new(Selection::asset("a")),
                    Box::new(Selection::And(
                        Box::new(Selection::asset("b")),
                        Box::new(Selection::Not(Box::new(Selection::asset("c"))))
                    ))
                ),
                Selection::asset("d"),
            ])
        );
        let s = p("(a or b) and not (c, d)");
        assert_eq!(
            s,
            Selection::And(
                Box::new(Selection::Or(
                    Box::new(Selection::asset("a")),
                    Box::new(Selection::asset("b"))
                )),
                Box::new(Selection::Not(Box::new(Selection::Union(vec![
                    Selection::asset("c"),
                    Selection::asset("d")
                ]))))
            )
        );
        // and/or are left-associative
        assert_eq!(
            p("a and b and c"),
            Selection::And(
                Box::new(Selection::And(
                    Box::new(Selection::asset("a")),
                    Box::new(Selection::asset("b"))
                )),
                Box::new(Selection::asset("c"))
            )
        );
        assert_eq!(
            p("not not a"),
            Selection::Not(Box::new(Selection::Not(Box::new(Selection::asset("a")))))
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a",
            "+a+",
            "2+a, b+1",
            "(a or b) and not (c, d)",
            "a or b and c",
            "not (a and b)",
            "group:g and tag:k=v or tag:x",
            "* and not stale",
            "a and (b or c)",
            "(a, b) or c",
        ] {
            let sel = p(s);
            let text = sel.to_string();
            assert_eq!(p(&text), sel, "{s} -> {text}");
        }
        assert_eq!(
            p("(a or b) and not (c,d)").to_string(),
            "(a or b) and not (c, d)"
        );
    }

    #[test]
    fn errors_say_column_and_expectation() {
        let e = parse_selection("a and ,").unwrap_err();
        assert_eq!(e.column, 7);
        assert!(
            e.to_string()
                .starts_with("expected an asset name at column 7"),
            "{e}"
        );

        let e = parse_selection("").unwrap_err();
        assert_eq!((e.column, e.found.as_str()), (1, "end of selection"));
        let e = parse_selection("(a or b").unwrap_err();
        assert_eq!(e.column, 8);
        assert!(e.expected.contains("`)`"), "{e}");
        let e = parse_selection("a b").unwrap_err();
        assert_eq!(e.column, 3);
        assert_eq!(e.found, "`b`");
        let e = parse_selection("+").unwrap_err();
        assert_eq!((e.column, e.expected.as_str()), (2, "an asset name"));
        let e = parse_selection("x, 3a").unwrap_err();
        assert_eq!(e.column, 5);
        assert!(e.expected.contains("`+`"), "{e}");
        let e = parse_selection("a+x").unwrap_err();
        assert_eq!(e.column, 3);
        let e = parse_selection("a-b").unwrap_err();
        assert_eq!(e.column, 2);
        let e = parse_selection("group:").unwrap_err();
        assert_eq!(e.column, 7);
        let e = parse_selection("tag:k=$x").unwrap_err();
        assert_eq!(e.column, 7);
        let e = parse_selection("a or").unwrap_err();
        assert_eq!((e.column, e.found.as_str()), (5, "end of selection"));
        let e = parse_selection("a )").unwrap_err();
        assert_eq!(e.column, 3);
        let e = parse_selection("+fn").unwrap_err();
        assert_eq!(e.column, 2);
        let e = parse_selection_at("a and", 13).unwrap_err();
        assert_eq!(e.column, 18);
    }

    #[test]
    fn asset_names_lists_mentions() {
        assert_eq!(
            p("a, +b and not c+, group:g").asset_names(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn partitions_of_an_asset() {
        let sel = p("sim[3,7,10..20]");
        assert_eq!(
            sel,
            Selection::Partitions {
                name: "sim".into(),
                keys: "3,7,10..20".into()
            }
        );
        assert_eq!(sel.to_string(), "sim[3,7,10..20]");
        let sel = p("sim[a-1], report");
        assert_eq!(sel.partition_picks(), [("sim", "a-1")]);
        assert_eq!(sel.asset_names(), ["sim", "report"]);
        assert_eq!(p(&sel.to_string()), sel);
        for bad in ["sim[", "sim[]", "sim[a;b]", "1x[3]", "sim[3]x"] {
            assert!(parse_selection(bad).is_err(), "{bad}");
        }
        let e = parse_selection("sim[3;rm]").unwrap_err();
        assert_eq!(e.column, 5, "{e}");
    }
}
