//! Memo of the content-determined, expensive steps of planning: cell
//! declarations, body analyses and plain cells' items, keyed by the source
//! text, so re-planning after an edit re-parses only what changed (each
//! pass keeps only the entries the notebook still uses); and the last
//! pass's derived graph, item references and versions ([`Derivation`]).
//!
//! The parsing itself runs on short-lived worker threads (in parallel for
//! big notebooks): proc-macro2 keeps a per-thread map of every source it
//! lexed, and a worker's map is freed when it exits, so a long kernel
//! session does not accumulate them.

use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, Mutex};

use crate::decl::{declare, plain_items, CellDecl, DeclError};
use crate::derived::{Derivation, Derived};
use crate::graph::GraphError;
use crate::infer::{analyze_body, BodyAnalysis, InferError};
use crate::items::{CellItems, DepLine, Item, ItemsError};
use crate::model::{AssetSpec, CellRef, CheckSpec};
use crate::workers::par_map;

#[derive(Default)]
struct Inner {
    decls: HashMap<String, Arc<CellDecl>>,
    bodies: HashMap<String, Arc<BodyAnalysis>>,
    items: HashMap<String, Arc<CellItems>>,
    derivation: Derivation,
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
        let mut old = std::mem::take(&mut self.lock().decls);
        let mut new: HashMap<String, Arc<CellDecl>> =
            HashMap::with_capacity_and_hasher(cells.len(), Default::default());
        let mut out: Vec<Option<Result<CellDecl, DeclError>>> = Vec::with_capacity(cells.len());
        let mut misses: Vec<(usize, &CellRef, &str)> = Vec::new();
        for (i, (cell, src)) in cells.iter().enumerate() {
            if let Some((key, hit)) = old.remove_entry(*src) {
                out.push(Some(Ok(hit.relabel(cell))));
                new.insert(key, hit);
            } else if let Some(hit) = new.get(*src) {
                out.push(Some(Ok(hit.relabel(cell))));
            } else {
                misses.push((i, cell, src));
                out.push(None);
            }
        }
        // Type annotations are parsed with syn: do it on workers too.
        let computed = par_map(&misses, |(_, cell, src)| declare(cell, src));
        for ((i, _, src), result) in misses.into_iter().zip(computed) {
            if let Ok(decl) = &result {
                new.insert(src.to_string(), Arc::new(decl.clone()));
            }
            out[i] = Some(result);
        }
        self.lock().decls = new;
        out.into_iter()
            .map(|r| r.expect("every cell declared"))
            .collect()
    }

    /// Analyse bodies (cached ones are not parsed again); the cache then
    /// holds exactly these bodies.
    pub(crate) fn analyze_bodies(
        &self,
        bodies: &[&str],
    ) -> Vec<Result<Arc<BodyAnalysis>, InferError>> {
        let mut old = std::mem::take(&mut self.lock().bodies);
        let mut out: Vec<Option<Result<Arc<BodyAnalysis>, InferError>>> =
            Vec::with_capacity(bodies.len());
        let mut new: HashMap<String, Arc<BodyAnalysis>> =
            HashMap::with_capacity_and_hasher(bodies.len(), Default::default());
        let mut misses: Vec<(usize, &str)> = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            if let Some((key, hit)) = old.remove_entry(*body) {
                new.insert(key, hit.clone());
                out.push(Some(Ok(hit)));
                continue;
            }
            match new.get(*body).cloned() {
                Some(hit) => out.push(Some(Ok(hit))),
                None => {
                    misses.push((i, body));
                    out.push(None);
                }
            }
        }
        let computed = par_map(&misses, |(_, body)| analyze_body(body).map(Arc::new));
        for ((i, body), result) in misses.into_iter().zip(computed) {
            if let Ok(a) = &result {
                new.insert(body.to_string(), a.clone());
            }
            out[i] = Some(result);
        }
        self.lock().bodies = new;
        out.into_iter()
            .map(|r| r.expect("every body analysed"))
            .collect()
    }

    /// Items of plain cells (cached ones are not parsed again); the cache
    /// then holds exactly these cells.
    pub(crate) fn cell_items(
        &self,
        cells: &[(&CellRef, &str)],
    ) -> Vec<Result<CellItems, ItemsError>> {
        let mut old = std::mem::take(&mut self.lock().items);
        let mut new: HashMap<String, Arc<CellItems>> =
            HashMap::with_capacity_and_hasher(cells.len(), Default::default());
        let mut out: Vec<Option<Result<CellItems, ItemsError>>> = Vec::with_capacity(cells.len());
        let mut misses: Vec<(usize, &CellRef, &str)> = Vec::new();
        for (i, (cell, src)) in cells.iter().enumerate() {
            match old.remove(*src).or_else(|| new.get(*src).cloned()) {
                Some(hit) => {
                    out.push(Some(Ok(relabel(&hit, cell))));
                    new.insert(src.to_string(), hit);
                }
                None => {
                    misses.push((i, cell, src));
                    out.push(None);
                }
            }
        }
        let computed = par_map(&misses, |(_, cell, src)| plain_items(cell, src));
        for ((i, _, src), result) in misses.into_iter().zip(computed) {
            if let Ok(items) = &result {
                new.insert(src.to_string(), Arc::new(items.clone()));
            }
            out[i] = Some(result);
        }
        self.lock().items = new;
        out.into_iter()
            .map(|r| r.expect("every cell read"))
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
    ) -> Result<Derived, GraphError> {
        self.lock()
            .derivation
            .derive(assets, checks, items, deps, analyses)
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
