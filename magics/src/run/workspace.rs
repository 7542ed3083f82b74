//! [`Workspace`]: what a kernel session or a CLI command works on — which
//! notebook (and where that came from), the cells run in this session, the
//! state database and value store beside the notebook, the effective
//! configuration, what the in-kernel executor set up in the Rust session,
//! and the cluster connection. The run service ([`super`]) acts on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::PlanCache;
use crate::config::{ConfigError, ConfigFile, Settings};
use crate::exec::cluster;
use crate::exec::local::Prepared;
use crate::notebook::{Notebook, NotebookError};
use crate::project::{load_project_cached, Project, ProjectError};
use crate::state::{StateDb, StateError};
use crate::store::ValueStore;
use crate::transport::{Transport, TransportTarget};
use crate::SessionOverrides;

/// Where the notebook path came from (shown by `%config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotebookSource {
    /// `JPY_SESSION_NAME`, set by jupyter_server / JupyterLab.
    Environment,
    /// `%config notebook=PATH`.
    Config,
    /// The headless CLI's argument.
    CommandLine,
}

impl NotebookSource {
    /// How `%config` names it.
    pub fn describe(self) -> &'static str {
        match self {
            NotebookSource::Environment => "JPY_SESSION_NAME",
            NotebookSource::Config => "%config",
            NotebookSource::CommandLine => "command line",
        }
    }
}

/// A notebook the workspace cannot attach to.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("resolving {path}: {source}")]
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Notebook(#[from] NotebookError),
}

pub struct Workspace {
    notebook: Option<(PathBuf, NotebookSource)>,
    /// Cells executed in this session, over the saved notebook.
    pub overrides: SessionOverrides,
    /// What the in-kernel executor set up in the Rust session.
    pub prepared: Prepared,
    db: Option<(PathBuf, StateDb)>,
    /// Parsed cells, so re-planning re-parses only what changed.
    cache: PlanCache,
    /// `%config KEY=VALUE` settings of this session (validated).
    pub config: BTreeMap<String, String>,
    /// The way to the cluster (one multiplexed SSH master, or this
    /// machine), opened lazily and reused while the target stays the same.
    connection: Option<(TransportTarget, Arc<dyn Transport>)>,
    /// A job binary built ahead of time for this notebook (a schedule's
    /// tick on the cluster: see `exec::prebuilt`).
    pub prebuilt: Option<crate::exec::prebuilt::JobBinary>,
    /// `notify` commands started and not waited for (see `run::policy`).
    pub(super) notifications: Vec<std::thread::JoinHandle<()>>,
}

impl Workspace {
    fn new(notebook: Option<(PathBuf, NotebookSource)>) -> Workspace {
        Workspace {
            notebook,
            overrides: SessionOverrides::new(),
            prepared: Prepared::default(),
            db: None,
            cache: PlanCache::default(),
            config: BTreeMap::new(),
            connection: None,
            prebuilt: None,
            notifications: Vec::new(),
        }
    }

    /// Attached to the notebook named by `JPY_SESSION_NAME`, if it can be found.
    pub fn from_env() -> Workspace {
        let notebook = std::env::var_os("JPY_SESSION_NAME")
            .and_then(|name| resolve_session_name(Path::new(&name)))
            .map(|p| (p, NotebookSource::Environment));
        if let Some((path, _)) = &notebook {
            tracing::info!(notebook = %path.display(), "attached to notebook");
        }
        Workspace::new(notebook)
    }

    /// Attached to `path` (the headless CLI).
    pub fn for_notebook(path: PathBuf) -> Workspace {
        Workspace::new(Some((path, NotebookSource::CommandLine)))
    }

    pub fn notebook(&self) -> Option<(&Path, NotebookSource)> {
        self.notebook.as_ref().map(|(p, s)| (p.as_path(), *s))
    }

    /// Attaches to another notebook (`%config notebook=PATH`); it must exist
    /// and be a notebook.
    pub fn set_notebook(&mut self, path: &Path) -> Result<PathBuf, AttachError> {
        let path = std::path::absolute(path).map_err(|source| AttachError::Resolve {
            path: path.to_path_buf(),
            source,
        })?;
        Notebook::from_path(&path)?;
        self.notebook = Some((path.clone(), NotebookSource::Config));
        self.db = None;
        Ok(path)
    }

    /// The directory holding `.slurmbook/` (the notebook's, else the cwd).
    pub fn dir(&self) -> PathBuf {
        self.notebook
            .as_ref()
            .and_then(|(p, _)| p.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    /// Reads and analyses the notebook with the session's cells merged over it.
    pub fn project(&self) -> Result<Project, ProjectError> {
        self.project_with(&self.overrides)
    }

    pub fn project_with(&self, overrides: &SessionOverrides) -> Result<Project, ProjectError> {
        // Versions include the lock digest of each asset's environment,
        // whose default is the configuration's `env`.
        let env = self
            .settings(None)
            .ok()
            .and_then(|s| s.env().map(str::to_string));
        self.cache.set_default_env(env);
        match &self.notebook {
            Some((path, _)) => load_project_cached(path, overrides, &self.cache),
            None => Project::from_notebook(
                &Notebook {
                    path: None,
                    cells: Vec::new(),
                },
                overrides,
            ),
        }
    }

    /// The state database beside the notebook (opened once; opened again
    /// when its file was replaced, and written back first from the open
    /// connection when it was deleted meanwhile, e.g. during a run).
    pub fn db(&mut self) -> Result<&StateDb, StateError> {
        let dir = self.dir();
        if let Some((d, db)) = &self.db {
            if *d == dir && db.is_replaced() {
                if db.restore_if_deleted()? {
                    tracing::warn!(
                        "{} was deleted while in use; re-created it from this process's open copy",
                        db.path().display()
                    );
                }
                self.db = None;
            }
        }
        if self.db.as_ref().map(|(d, _)| d != &dir).unwrap_or(true) {
            let db = StateDb::open(&dir)?;
            // Local runs of a process that was killed: interrupted, not running.
            if let Err(e) = db.close_interrupted_runs() {
                tracing::warn!("closing interrupted runs: {e}");
            }
            self.db = Some((dir, db));
        }
        Ok(&self.db.as_ref().expect("just opened").1)
    }

    /// The effective configuration: the site's slurmbook.toml < the
    /// notebook's < SLURMBOOK_* < %config.
    pub fn settings(&self, profile: Option<&str>) -> Result<Settings, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        let file = ConfigFile::load(&self.dir(), &env)?;
        Settings::resolve(&file, profile, &env, &self.config)
    }

    pub fn store(&self) -> ValueStore {
        ValueStore::new(self.dir())
    }

    /// The way to the cluster of `settings` (reused while the target is the
    /// same): SSH to its `host`, or this machine when it has none.
    pub fn transport(&mut self, settings: &Settings) -> Arc<dyn Transport> {
        let target = cluster::transport_target(settings);
        if let Some((t, transport)) = &self.connection {
            if *t == target {
                return transport.clone();
            }
        }
        let transport = target.open();
        self.connection = Some((target, transport.clone()));
        transport
    }

    /// The open cluster connection, if any (for its statistics).
    pub fn open_transport(&self) -> Option<Arc<dyn Transport>> {
        self.connection.as_ref().map(|(_, r)| r.clone())
    }

    /// Closes the cluster connection (the CLI, before it exits).
    pub async fn close(&mut self) {
        if let Some((_, remote)) = self.connection.take() {
            remote.close().await;
        }
    }
}

/// jupyter_server passes the notebook's path relative to its root, and starts
/// the kernel in the notebook's directory.
fn resolve_session_name(name: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let candidates = [
        name.to_path_buf(),
        cwd.join(name),
        cwd.join(name.file_name()?),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file() && p.extension().is_some_and(|e| e == "ipynb"))
        .and_then(|p| std::path::absolute(p).ok())
}
