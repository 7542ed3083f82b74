//! One call from a notebook file to everything planning needs: specs,
//! items, `:dep` lines, the graph and code versions.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use thiserror::Error;

use crate::cache::PlanCache;
use crate::env_lock::EnvDigests;
use crate::graph::{AssetGraph, GraphError, SelectionError, StateAtom};
use crate::infer::{BodyAnalysis, InferError};
use crate::items::{DepLine, Item, ItemIndex, ItemsError};
use crate::model::{AssetSpec, CellRef, CheckSpec, Lang};
use crate::notebook::{Notebook, NotebookContents, NotebookError, SessionOverrides};
use crate::state::{AssetRow, Materialization, StateDb, StateError};
use crate::syntax::selection::Selection;
use crate::version::{freshness, Freshness, Versions};

/// Names from Rust's prelude that are neither assets nor notebook items.
const PRELUDE: &[&str] = &[
    "Some",
    "None",
    "Ok",
    "Err",
    "drop",
    "Box",
    "Vec",
    "String",
    "Option",
    "Result",
    "Default",
    "Iterator",
    "IntoIterator",
    "From",
    "Into",
    "ToString",
    "ToOwned",
    "Clone",
    "Copy",
    "Send",
    "Sync",
    "Sized",
    "Fn",
    "FnMut",
    "FnOnce",
    "std",
    "core",
    "alloc",
];

/// Why a project could not be loaded.
#[derive(Debug, Error)]
pub enum ProjectError {
    #[error(transparent)]
    Notebook(#[from] NotebookError),
    #[error("asset `{asset}` ({cell}): {source}")]
    Body {
        asset: String,
        cell: CellRef,
        source: InferError,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// A notebook's assets, analysed: the input of planning.
#[derive(Debug, Clone)]
pub struct Project {
    pub notebook_path: Option<PathBuf>,
    /// Assets in notebook order (session-only assets last).
    pub assets: Vec<AssetSpec>,
    pub checks: Vec<CheckSpec>,
    /// Items of the plain cells, in notebook order.
    pub items: Vec<Item>,
    pub deps: Vec<DepLine>,
    pub graph: AssetGraph,
    pub versions: Versions,
    /// Plain cells whose items could not be read.
    pub warnings: Vec<ItemsError>,
    analyses: Vec<Arc<BodyAnalysis>>,
    item_refs: Vec<Arc<[usize]>>,
    by_name: Arc<FxHashMap<String, usize>>,
    item_index: Arc<ItemIndex>,
}

/// Read the notebook at `notebook_path`, merge the session's executed
/// cells over it, and infer, build the graph and compute versions.
pub fn load_project(
    notebook_path: impl AsRef<Path>,
    overrides: &SessionOverrides,
) -> Result<Project, ProjectError> {
    load_project_cached(notebook_path, overrides, &PlanCache::new())
}

/// [`load_project`] reusing a cache of parsed bodies and items from earlier
/// calls: only cells that changed are parsed again. Keep one per session.
pub fn load_project_cached(
    notebook_path: impl AsRef<Path>,
    overrides: &SessionOverrides,
    cache: &PlanCache,
) -> Result<Project, ProjectError> {
    let nb = Notebook::from_path(notebook_path)?;
    Project::from_notebook_cached(&nb, overrides, cache)
}

impl Project {
    /// Analyse an already read notebook.
    pub fn from_notebook(
        nb: &Notebook,
        overrides: &SessionOverrides,
    ) -> Result<Project, ProjectError> {
        Self::from_notebook_cached(nb, overrides, &PlanCache::new())
    }

    /// Analyse an already read notebook, reusing a cache.
    pub fn from_notebook_cached(
        nb: &Notebook,
        overrides: &SessionOverrides,
        cache: &PlanCache,
    ) -> Result<Project, ProjectError> {
        let mut contents = nb.contents_with(cache)?;
        contents.apply_overrides(overrides);
        let envs = match nb.path.as_deref().and_then(Path::parent) {
            Some(dir) => EnvDigests::of(dir, cache.default_env().as_deref()),
            None => EnvDigests::none(),
        };
        let mut p = Self::from_contents_in(contents, cache, &envs)?;
        p.notebook_path = nb.path.clone();
        Ok(p)
    }

    /// Analyse specs and items directly.
    pub fn from_contents(contents: NotebookContents) -> Result<Project, ProjectError> {
        Self::from_contents_cached(contents, &PlanCache::new())
    }

    /// Analyse specs and items, reusing a cache of parsed bodies (no pixi
    /// environment: versions include none).
    pub fn from_contents_cached(
        contents: NotebookContents,
        cache: &PlanCache,
    ) -> Result<Project, ProjectError> {
        Self::from_contents_in(contents, cache, &EnvDigests::none())
    }

    /// Analyse specs and items whose environments' lock digests are `envs`.
    pub fn from_contents_in(
        contents: NotebookContents,
        cache: &PlanCache,
        envs: &EnvDigests,
    ) -> Result<Project, ProjectError> {
        let NotebookContents {
            assets,
            checks,
            items,
            deps,
            warnings,
        } = contents;
        let mut analyses: Vec<Arc<BodyAnalysis>> = Vec::with_capacity(assets.len());
        let bodies: Vec<(Lang, &str)> =
            assets.iter().map(|a| (a.lang(), a.body.as_str())).collect();
        for (a, result) in assets.iter().zip(cache.analyze_sources(&bodies)) {
            let analysis = result.map_err(|source| ProjectError::Body {
                asset: a.name.clone(),
                cell: a.cell.clone(),
                source,
            })?;
            analyses.push(analysis);
        }
        let derived = cache.derive(&assets, &checks, &items, &deps, &analyses, envs)?;
        Ok(Project {
            notebook_path: None,
            assets,
            checks,
            items,
            deps,
            graph: derived.graph,
            versions: derived.versions,
            warnings,
            analyses,
            item_refs: derived.item_refs,
            by_name: derived.by_name,
            item_index: derived.item_index,
        })
    }

    pub fn asset(&self, name: &str) -> Option<&AssetSpec> {
        self.by_name.get(name).map(|&i| &self.assets[i])
    }

    /// Checks attached to `asset`.
    pub fn checks_of<'a>(&'a self, asset: &'a str) -> impl Iterator<Item = &'a CheckSpec> + 'a {
        self.checks.iter().filter(move |c| c.asset == asset)
    }

    /// The free identifiers of an asset's body.
    pub fn free_identifiers(&self, asset: &str) -> Option<&BTreeSet<String>> {
        self.by_name.get(asset).map(|&i| &self.analyses[i].free)
    }

    /// Free identifiers of an asset that are neither assets, notebook items
    /// nor prelude names: session variables a Slurm job would not have.
    /// (Python and bash bodies see no session: their other free names are
    /// their own business, builtins and the environment's.)
    pub fn unresolved(&self, asset: &str) -> Vec<&str> {
        if self.asset(asset).is_some_and(|a| a.lang().is_foreign()) {
            return Vec::new();
        }
        // A partitioned asset's body has its partition in scope.
        let partitioned = self
            .asset(asset)
            .is_some_and(|a| a.options.partitioning().is_some());
        self.free_identifiers(asset)
            .map(|free| {
                free.iter()
                    .map(String::as_str)
                    .filter(|n| !(partitioned && ["partition", "partition_index"].contains(n)))
                    .filter(|n| {
                        !self.by_name.contains_key(*n)
                            && !self.item_index.defines(n)
                            && !PRELUDE.contains(n)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The notebook items an asset refers to (transitively), in notebook order.
    pub fn items_for(&self, asset: &str) -> Vec<&Item> {
        self.by_name
            .get(asset)
            .map(|&i| self.item_refs[i].iter().map(|&r| &self.items[r]).collect())
            .unwrap_or_default()
    }

    /// Freshness of every asset against the last successful materializations.
    pub fn freshness(
        &self,
        last_successes: &HashMap<String, Materialization>,
    ) -> HashMap<String, Freshness> {
        let mut out = HashMap::with_capacity(self.assets.len());
        for (i, a) in self.assets.iter().enumerate() {
            let f = freshness(
                self.versions.at(i),
                last_successes.get(&a.name).map(Materialization::recorded),
            );
            out.insert(a.name.clone(), f);
        }
        out
    }

    /// Freshness of every asset, reading the state database once.
    pub fn staleness(&self, db: &StateDb) -> Result<HashMap<String, Freshness>, StateError> {
        Ok(self.freshness(&db.last_successes()?))
    }

    /// Evaluate a selection (`stale` = not fresh), in topological order.
    pub fn select(
        &self,
        selection: &Selection,
        freshness: &HashMap<String, Freshness>,
    ) -> Result<Vec<String>, SelectionError> {
        self.graph.select(selection, |n| {
            freshness.get(n).is_none_or(|f| !f.is_fresh())
        })
    }

    /// Evaluate a selection whose state atoms (`stale`, `overdue`, `warn`)
    /// `is` answers, in topological order.
    pub fn select_states(
        &self,
        selection: &Selection,
        is: impl Fn(StateAtom, &str) -> bool,
    ) -> Result<Vec<String>, SelectionError> {
        self.graph.select_states(selection, is)
    }

    /// Rows for [`StateDb::sync_assets`].
    pub fn asset_rows(&self) -> Vec<AssetRow> {
        self.assets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let v = self.versions.at(i);
                AssetRow {
                    name: a.name.clone(),
                    version: v.version.clone(),
                    own_hash: v.own_hash.clone(),
                    cell: a.cell.clone(),
                }
            })
            .collect()
    }
}
