//! The session's input history, answering `history_request` (tail, range,
//! search with glob patterns, `unique` and `n`).

use crate::protocol::HistoryRequest;
use serde_json::{json, Value};

/// This kernel process's history session number.
pub const SESSION: i64 = 1;

#[derive(Debug, Clone)]
struct Entry {
    line: i64,
    input: String,
    output: Option<String>,
}

#[derive(Debug, Default)]
pub struct History {
    entries: Vec<Entry>,
}

impl History {
    pub fn push(&mut self, line: u32, input: &str, output: Option<String>) {
        self.entries.push(Entry {
            line: line as i64,
            input: input.to_owned(),
            output,
        });
    }

    pub fn reply(&self, req: &HistoryRequest) -> Value {
        let selected: Vec<&Entry> = match req.hist_access_type.as_str() {
            "range" => {
                let session = req.session.unwrap_or(SESSION);
                // Negative sessions count back from the current one; we only have this one.
                if session != SESSION && session != 0 {
                    Vec::new()
                } else {
                    let start = req.start.unwrap_or(1);
                    let stop = req.stop.unwrap_or(i64::MAX);
                    self.entries
                        .iter()
                        .filter(|e| e.line >= start && e.line < stop)
                        .collect()
                }
            }
            "search" => {
                let pattern = req.pattern.as_deref().unwrap_or("*");
                let matching = self.entries.iter().filter(|e| glob(pattern, &e.input));
                last_n(dedupe(matching.collect(), req.unique), req.n)
            }
            _ => last_n(
                dedupe(self.entries.iter().collect(), req.unique),
                Some(req.n.unwrap_or(10)),
            ),
        };
        let history: Vec<Value> = selected
            .into_iter()
            .map(|e| {
                if req.output {
                    json!([SESSION, e.line, [e.input, e.output]])
                } else {
                    json!([SESSION, e.line, e.input])
                }
            })
            .collect();
        json!({ "status": "ok", "history": history })
    }
}

/// Keeps the latest occurrence of each input, in order.
fn dedupe(entries: Vec<&Entry>, unique: bool) -> Vec<&Entry> {
    if !unique {
        return entries;
    }
    let mut out: Vec<&Entry> = Vec::new();
    for e in entries.into_iter().rev() {
        if !out.iter().any(|o| o.input == e.input) {
            out.push(e);
        }
    }
    out.reverse();
    out
}

fn last_n(entries: Vec<&Entry>, n: Option<usize>) -> Vec<&Entry> {
    match n {
        Some(n) if n < entries.len() => entries[entries.len() - n..].to_vec(),
        _ => entries,
    }
}

/// Shell-style glob: `*` any run, `?` one character (as SQLite's GLOB, which
/// IPython's history search uses).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> HistoryRequest {
        serde_json::from_value(v).unwrap()
    }

    fn sample() -> History {
        let mut h = History::default();
        h.push(1, "1 + 2", Some("3".into()));
        h.push(2, "let x = 1;", None);
        h.push(3, "1 + 2", Some("3".into()));
        h
    }

    #[test]
    fn tail_range_and_search() {
        let h = sample();
        let r = h.reply(&req(
            json!({"hist_access_type": "tail", "n": 2, "output": false, "raw": true}),
        ));
        assert_eq!(r["history"], json!([[1, 2, "let x = 1;"], [1, 3, "1 + 2"]]));
        let r = h.reply(&req(json!({"hist_access_type": "range", "session": 1, "start": 2, "stop": 3, "output": true, "raw": true})));
        assert_eq!(r["history"], json!([[1, 2, ["let x = 1;", null]]]));
        let r = h.reply(&req(
            json!({"hist_access_type": "search", "pattern": "1 *", "output": false, "raw": true}),
        ));
        assert_eq!(r["history"].as_array().unwrap().len(), 2);
        let r = h.reply(&req(json!({"hist_access_type": "search", "pattern": "1 *", "unique": true, "output": false, "raw": true})));
        assert_eq!(r["history"], json!([[1, 3, "1 + 2"]]));
        let r = h.reply(&req(json!({"hist_access_type": "search", "pattern": "*", "n": 1, "output": false, "raw": true})));
        assert_eq!(r["history"], json!([[1, 3, "1 + 2"]]));
    }

    #[test]
    fn glob_matches_like_sqlite() {
        assert!(glob("1*", "1 + 2"));
        assert!(glob("*x*", "let x = 1;"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(!glob("x", "let x"));
        assert!(
            glob("a *", "a * 10"),
            "a literal * in the text still matches the wildcard"
        );
    }
}
