//! `complete_request` and `inspect_request`: magics and their arguments
//! first (from the magics' declarations, `syntax::complete`), then evcxr
//! (rust-analyzer), then the session's variables.

use super::RustKernel;
use crate::protocol::{byte_to_char, char_to_byte, text_bundle, CodeAtCursor};
use serde_json::{json, Value};
use slurmbook_magics::syntax::complete::{self, Completion};
use slurmbook_magics::syntax::magic;

impl RustKernel {
    pub(super) async fn complete_at(&mut self, req: CodeAtCursor) -> Value {
        let code = &req.code;
        let cursor = char_to_byte(code, req.cursor_pos.unwrap_or_else(|| code.chars().count()));
        let line_start = code[..cursor].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = &code[line_start..cursor];
        let (matches, start) = match complete::complete_line(line) {
            Some(Completion::Words { start, words }) => (words, line_start + start),
            Some(Completion::Assets { start }) => {
                let prefix = &line[start..];
                let names = match self.project() {
                    Ok(p) => p
                        .assets
                        .iter()
                        .map(|a| a.name.clone())
                        .filter(|n| n.starts_with(prefix))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                (names, line_start + start)
            }
            None => {
                let c = self.engine.complete(code, cursor).await;
                let mut matches = c.matches;
                let word_start = ident_start(code, cursor);
                let prefix = &code[word_start..cursor];
                if matches.is_empty() && !prefix.is_empty() {
                    for (name, _) in self.engine.variables().await {
                        if name.starts_with(prefix) && !matches.contains(&name) {
                            matches.push(name);
                        }
                    }
                    return reply(code, matches, word_start, cursor);
                }
                return reply(code, matches, c.start.min(cursor), c.end.max(cursor));
            }
        };
        reply(code, matches, start, cursor)
    }

    pub(super) async fn inspect_at(&mut self, req: CodeAtCursor) -> Value {
        let code = &req.code;
        let cursor = char_to_byte(code, req.cursor_pos.unwrap_or_else(|| code.chars().count()));
        let start = ident_start(code, cursor);
        let end = ident_end(code, cursor);
        let word = &code[start..end];
        let is_magic = start > 0 && code[..start].ends_with('%');
        let asset = if is_magic {
            None
        } else {
            self.describe_asset(word)
        };
        let data = if is_magic {
            magic::help_text(word).map(|t| text_bundle(&t))
        } else if let Some(text) = asset {
            Some(text_bundle(&text))
        } else {
            match self.engine.inspect(code, end).await {
                Some(data) => Some(data),
                None => self
                    .engine
                    .variables()
                    .await
                    .into_iter()
                    .find(|(name, _)| name == word)
                    .map(|(name, ty)| text_bundle(&format!("{name}: {ty}"))),
            }
        };
        match data {
            Some(data) => json!({ "status": "ok", "found": true, "data": data, "metadata": {} }),
            None => json!({ "status": "ok", "found": false, "data": {}, "metadata": {} }),
        }
    }
}

fn reply(code: &str, matches: Vec<String>, start: usize, end: usize) -> Value {
    json!({
        "status": "ok",
        "matches": matches,
        "cursor_start": byte_to_char(code, start),
        "cursor_end": byte_to_char(code, end),
        "metadata": {},
    })
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident_start(code: &str, cursor: usize) -> usize {
    code[..cursor]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident(*c))
        .last()
        .map(|(i, _)| i)
        .unwrap_or(cursor)
}

fn ident_end(code: &str, cursor: usize) -> usize {
    code[cursor..]
        .char_indices()
        .find(|(_, c)| !is_ident(*c))
        .map(|(i, _)| cursor + i)
        .unwrap_or(code.len())
}
