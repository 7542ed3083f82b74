//! The fast path of body analysis: a hand-written lexer and a walk of the
//! common subset of Rust statements, with no syn and no proc-macro2. It
//! gives exactly what the syn path gives, or `None` (then syn decides):
//! anything it does not fully understand, and anything that does not parse,
//! leaves the subset. Kept by hand because syn's general parser allocates a
//! full syntax tree, which made body analysis 94 % of planning.

mod lex;
mod scan;
#[cfg(test)]
mod tests;

use super::BodyAnalysis;

/// Analyse `body` without syn, if it stays in the subset.
pub(super) fn analyze(body: &str) -> Option<BodyAnalysis> {
    let toks = lex::lex(body)?;
    let free = scan::free_identifiers(body, &toks)?;
    let normalized = lex::normalized(body, &toks);
    let mut mentioned: Vec<&str> = toks
        .iter()
        .filter(|t| t.kind == lex::Kind::Ident)
        .map(|t| &body[t.start as usize..t.end as usize])
        .collect();
    mentioned.sort_unstable();
    mentioned.dedup();
    Some(BodyAnalysis {
        free,
        mentioned_joined: mentioned.join(" "),
        digest: crate::model::digest_of(&normalized),
        normalized,
    })
}
