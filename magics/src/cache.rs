//! Memo of the content-determined, expensive steps of planning: cell
//! declarations, body analyses and plain cells' items, keyed by the source
//! text, so re-planning after an edit re-parses only what changed (each
//! pass keeps only the entries the notebook still uses); and the last
//! pass's derived graph, item references and versions (`derived::Derivation`).
//!
//! The parsing itself runs on short-lived worker threads (in parallel for
//! big notebooks): proc-macro2 keeps a per-thread map of every source it
//! lexed, and a worker's map is freed when it exits, so a long kernel
//! session does not accumulate them.

use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

use crate::decl::{declare, plain_items, CellDecl, DeclError};
use crate::derived::{Derivation, Derived};
use crate::env_lock::EnvDigests;
use crate::graph::GraphError;
use crate::infer::{analyze_source, BodyAnalysis, InferError};
use crate::items::{CellItems, DepLine, Item, ItemsError};
use crate::model::{AssetSpec, CellRef, CheckSpec, Lang};
use crate::workers::par_map;

/// Above this many inputs not found at their last position, the others are
/// looked up by text (cells were inserted or moved); below, they are
/// computed again, which is cheaper than hashing every input.
const MAX_POSITIONAL_MISSES: usize = 16;

/// Results by input text, in the last pass's input order (`None`: an error,
/// not cached): an edit leaves the other inputs where they were, so they
/// are found by one comparison each, without hashing.
struct Memo<V> {
    entries: Vec<Option<(Box<str>, V)>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo {
            entries: Vec::new(),
        }
    }
}

impl<V: Clone> Memo<V> {
    fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// The value for each of `texts`: cached, or computed by `compute`
    /// (given the indices of the misses, it returns their results in
    /// order). Afterwards the memo holds exactly these texts' values.
    fn pass<E>(
        &mut self,
        texts: &[&str],
        compute: impl FnOnce(&[usize]) -> Vec<Result<V, E>>,
    ) -> Vec<Result<V, E>> {
        let mut old = std::mem::take(&mut self.entries);
        let mut found: Vec<Option<(Box<str>, V)>> = Vec::with_capacity(texts.len());
        let mut misses = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match old.get_mut(i) {
                Some(slot) if slot.as_ref().is_some_and(|(k, _)| **k == **text) => {
                    found.push(slot.take())
                }
                _ => {
                    found.push(None);
                    misses.push(i);
                }
            }
        }
        if misses.len() > MAX_POSITIONAL_MISSES {
            let by_text: FxHashMap<&str, &V> =
                old.iter().flatten().map(|(k, v)| (&**k, v)).collect();
            misses.retain(|&i| match by_text.get(texts[i]) {
                Some(v) => {
                    found[i] = Some((texts[i].into(), (*v).clone()));
                    false
                }
                None => true,
            });
        }
        let mut computed = compute(&misses).into_iter();
        let mut out = Vec::with_capacity(texts.len());
        self.entries = Vec::with_capacity(texts.len());
        for (text, hit) in texts.iter().zip(found) {
            let result = match hit {
                Some((key, value)) => {
                    self.entries.push(Some((key, value.clone())));
                    Ok(value)
                }
                None => {
                    let result = computed.next().expect("one result per miss");
                    let entry = result.as_ref().ok().map(|v| ((*text).into(), v.clone()));
                    self.entries.push(entry);
                    result
                }
            };
            out.push(result);
        }
        out
    }
}

#[derive(Default)]
struct Inner {
    decls: Memo<Arc<CellDecl>>,
    bodies: Memo<Arc<BodyAnalysis>>,
    items: Memo<Arc<CellItems>>,
    derivation: Derivation,
    default_env: Option<String>,
}

/// Reusable across planning passes (hold one per kernel session).
#[derive(Default)]
pub struct PlanCache {
    inner: Mutex<Inner>,
}

impl PlanCache {
    pub fn new() -> PlanCache {
        PlanCache::default()
    }

    /// Number of cached body analyses and item cells.
    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.bodies.len(), inner.items.len())
    }

    /// Number of cached cell declarations.
    pub fn cells(&self) -> usize {
        self.lock().decls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declarations of code cells (headers parsed, bodies split); the
    /// cache then holds exactly these cells. Errors are not cached.
    pub(crate) fn declare_all(
        &self,
        cells: &[(&CellRef, &str)],
    ) -> Vec<Result<CellDecl, DeclError>> {
        let mut memo = std::mem::take(&mut self.lock().decls);
        let texts: Vec<&str> = cells.iter().map(|(_, src)| *src).collect();
        // Type annotations are parsed with syn: on workers too.
        let got = memo.pass(&texts, |misses| {
            par_map(misses, |&i| declare(cells[i].0, cells[i].1).map(Arc::new))
        });
        self.lock().decls = memo;
        got.into_iter()
            .zip(cells)
            .map(|(r, (cell, _))| r.map(|d| d.relabel(cell)))
            .collect()
    }

    /// Analyse bodies (cached ones are not analysed again); the cache then
    /// holds exactly these bodies.
    #[cfg(test)]
    pub(crate) fn analyze_bodies(
        &self,
        bodies: &[&str],
    ) -> Vec<Result<Arc<BodyAnalysis>, InferError>> {
        let langs: Vec<(Lang, &str)> = bodies.iter().map(|b| (Lang::Rust, *b)).collect();
        self.analyze_sources(&langs)
    }

    /// Analyse bodies of any language ([`analyze_source`]); Rust bodies
    /// share their entries with [`PlanCache::analyze_bodies`]'s.
    pub(crate) fn analyze_sources(
        &self,
        bodies: &[(Lang, &str)],
    ) -> Vec<Result<Arc<BodyAnalysis>, InferError>> {
        // A Python body and a Rust body of the same text differ: the key
        // of a foreign body starts with a NUL and its language.
        let keys: Vec<std::borrow::Cow<'_, str>> = bodies
            .iter()
            .map(|(lang, body)| match lang {
                Lang::Rust => std::borrow::Cow::Borrowed(*body),
                other => std::borrow::Cow::Owned(format!("\0{other}\0{body}")),
            })
            .collect();
        let texts: Vec<&str> = keys.iter().map(|k| &**k).collect();
        let mut memo = std::mem::take(&mut self.lock().bodies);
        let got = memo.pass(&texts, |misses| {
            par_map(misses, |&i| {
                analyze_source(bodies[i].0, bodies[i].1).map(Arc::new)
            })
        });
        self.lock().bodies = memo;
        got
    }

    /// Items of plain cells (cached ones are not parsed again); the cache
    /// then holds exactly these cells.
    pub(crate) fn cell_items(
        &self,
        cells: &[(&CellRef, &str)],
    ) -> Vec<Result<CellItems, ItemsError>> {
        let mut memo = std::mem::take(&mut self.lock().items);
        let texts: Vec<&str> = cells.iter().map(|(_, src)| *src).collect();
        let got = memo.pass(&texts, |misses| {
            par_map(misses, |&i| {
                plain_items(cells[i].0, cells[i].1).map(Arc::new)
            })
        });
        self.lock().items = memo;
        got.into_iter()
            .zip(cells)
            .map(|(r, (cell, _))| r.map(|items| relabel(&items, cell)))
            .collect()
    }

    /// The graph, item references and versions of analysed specs, reusing
    /// the last pass's where their inputs did not change.
    pub(crate) fn derive(
        &self,
        assets: &[AssetSpec],
        checks: &[CheckSpec],
        items: &[Item],
        deps: &[DepLine],
        analyses: &[Arc<BodyAnalysis>],
        envs: &EnvDigests,
    ) -> Result<Derived, GraphError> {
        self.lock()
            .derivation
            .derive(assets, checks, items, deps, analyses, envs)
    }

    /// The environment of assets without `--env` (the configuration's
    /// `env`; `None`: `default`), for the environment entries of versions.
    pub fn set_default_env(&self, env: Option<String>) {
        self.lock().default_env = env;
    }

    pub(crate) fn default_env(&self) -> Option<String> {
        self.lock().default_env.clone()
    }
}

/// Cached items carry the cell they were first read from.
fn relabel(items: &CellItems, cell: &CellRef) -> CellItems {
    let mut out = items.clone();
    for i in &mut out.items {
        i.cell = cell.clone();
    }
    for d in &mut out.deps {
        d.cell = cell.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cached_and_evicted() {
        let cache = PlanCache::new();
        let first = cache.analyze_bodies(&["a + 1", "b + 2"]);
        let again = cache.analyze_bodies(&["a + 1", "c"]);
        let (a1, a2) = (first[0].as_ref().unwrap(), again[0].as_ref().unwrap());
        assert!(Arc::ptr_eq(a1, a2), "a cached body is not parsed again");
        assert_eq!(
            cache.len().0,
            2,
            "`b + 2` is no longer used and was dropped"
        );
        let errs = cache.analyze_bodies(&["let = ;"]);
        assert!(errs[0].is_err());
        assert_eq!(cache.len().0, 0, "errors are not cached");
    }

    #[test]
    fn moved_inputs_are_found_by_text() {
        let cache = PlanCache::new();
        let bodies: Vec<String> = (0..40).map(|i| format!("a{i} + 1")).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let first = cache.analyze_bodies(&refs);
        // A body inserted in front moves all the others.
        let mut moved = vec!["new + 1"];
        moved.extend(&refs);
        let again = cache.analyze_bodies(&moved);
        for (a, b) in first.iter().zip(&again[1..]) {
            assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
        }
        assert_eq!(cache.len().0, 41);
        // One edit in place: the others are found where they were.
        moved[7] = "edited + 2";
        let third = cache.analyze_bodies(&moved);
        assert!(Arc::ptr_eq(
            third[8].as_ref().unwrap(),
            again[8].as_ref().unwrap()
        ));
        assert_eq!(third[7].as_ref().unwrap().free.len(), 1);
        assert_eq!(cache.len().0, 41);
    }

    #[test]
    fn items_are_relabelled_with_their_cell() {
        let cache = PlanCache::new();
        let c1 = CellRef::saved(1, Some("x".into()));
        let c2 = CellRef::saved(5, None);
        let got = cache.cell_items(&[(&c1, "fn f() {}"), (&c2, "fn f() {}")]);
        assert_eq!(got[0].as_ref().unwrap().items[0].cell, c1);
        assert_eq!(got[1].as_ref().unwrap().items[0].cell, c2);
        let again = cache.cell_items(&[(&c2, "fn f() {}")]);
        assert_eq!(again[0].as_ref().unwrap().items[0].cell, c2);
        assert_eq!(cache.len().1, 1);
    }
}
