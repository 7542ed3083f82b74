//! The kernel's side of assets: which notebook it is attached to, the cells
//! run in this session, the state database beside the notebook, and what was
//! set up in the Rust session. Executing magics lives in `handlers/`; the
//! asset model itself in `slurmbook-magics`.

pub mod session;
pub mod views;

use anyhow::{Context, Result};
use slurmbook_magics::cache::PlanCache;
use slurmbook_magics::config::{ConfigError, ConfigFile, Settings};
use slurmbook_magics::exec::local::Prepared;
use slurmbook_magics::notebook::Notebook;
use slurmbook_magics::{Project, SessionOverrides, StateDb, ValueStore};
use std::path::{Path, PathBuf};

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

pub struct AssetWorkspace {
    notebook: Option<(PathBuf, NotebookSource)>,
    pub overrides: SessionOverrides,
    pub prepared: Prepared,
    db: Option<(PathBuf, StateDb)>,
    /// Parsed cells, so re-planning re-parses only what changed.
    cache: PlanCache,
    /// `%config KEY=VALUE` settings of this session (validated).
    pub config: std::collections::BTreeMap<String, String>,
}

impl AssetWorkspace {
    /// Attached to the notebook named by `JPY_SESSION_NAME`, if it can be found.
    pub fn from_env() -> AssetWorkspace {
        let notebook = std::env::var_os("JPY_SESSION_NAME")
            .and_then(|name| resolve_session_name(Path::new(&name)))
            .map(|p| (p, NotebookSource::Environment));
        if let Some((path, _)) = &notebook {
            tracing::info!(notebook = %path.display(), "attached to notebook");
        }
        AssetWorkspace {
            notebook,
            overrides: SessionOverrides::new(),
            prepared: Prepared::default(),
            db: None,
            cache: PlanCache::default(),
            config: Default::default(),
        }
    }

    pub fn for_notebook(path: PathBuf) -> AssetWorkspace {
        AssetWorkspace {
            notebook: Some((path, NotebookSource::CommandLine)),
            overrides: SessionOverrides::new(),
            prepared: Prepared::default(),
            db: None,
            cache: PlanCache::default(),
            config: Default::default(),
        }
    }

    pub fn notebook(&self) -> Option<(&Path, NotebookSource)> {
        self.notebook.as_ref().map(|(p, s)| (p.as_path(), *s))
    }

    /// Attaches to another notebook (`%config notebook=PATH`); it must exist.
    pub fn set_notebook(&mut self, path: &Path) -> Result<PathBuf> {
        let path =
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
        Notebook::from_path(&path)
            .with_context(|| format!("reading notebook {}", path.display()))?;
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
    pub fn project(&self) -> Result<Project, slurmbook_magics::ProjectError> {
        self.project_with(&self.overrides)
    }

    pub fn project_with(
        &self,
        overrides: &SessionOverrides,
    ) -> Result<Project, slurmbook_magics::ProjectError> {
        match &self.notebook {
            Some((path, _)) => slurmbook_magics::load_project_cached(path, overrides, &self.cache),
            None => Project::from_notebook(
                &Notebook {
                    path: None,
                    cells: Vec::new(),
                },
                overrides,
            ),
        }
    }

    /// The state database beside the notebook (opened once).
    pub fn db(&mut self) -> Result<&StateDb> {
        let dir = self.dir();
        if self.db.as_ref().map(|(d, _)| d != &dir).unwrap_or(true) {
            let db = StateDb::open(&dir)
                .with_context(|| format!("opening the state database in {}", dir.display()))?;
            self.db = Some((dir, db));
        }
        Ok(&self.db.as_ref().expect("just opened").1)
    }

    /// The effective configuration: slurmbook.toml < SLURMBOOK_* < %config.
    pub fn settings(&self, profile: Option<&str>) -> Result<Settings, ConfigError> {
        let file = ConfigFile::find(&self.dir())?;
        Settings::resolve(&file, profile, &|k| std::env::var(k).ok(), &self.config)
    }

    pub fn store(&self) -> ValueStore {
        ValueStore::new(self.dir())
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
