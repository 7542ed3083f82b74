//! What the notebook's pixi lock file pins for each environment, as the
//! digest code versions include (`env:<name>`, see [`crate::version`]).
//! Lock files are parsed once per content (a process-wide memo keyed by
//! the bytes' hash), so re-planning costs one read and one hash.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use slurmbook_pack::{PixiProject, DEFAULT_ENVIRONMENT};

use crate::version::ENV_PREFIX;

/// The environment digests of one notebook's project, and the environment
/// an asset without `--env` runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvDigests {
    /// `env` of the configuration (`None`: `default`; `"none"`: no environment).
    default_env: Option<String>,
    /// Environment name -> digest (empty without a pixi project or lock).
    digests: BTreeMap<String, String>,
}

/// Lock file bytes' sha256 -> environment name -> digest.
type Memo = Mutex<HashMap<[u8; 32], BTreeMap<String, String>>>;

fn memo() -> &'static Memo {
    static MEMO: OnceLock<Memo> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

impl EnvDigests {
    /// No environments: versions do not include one.
    pub fn none() -> EnvDigests {
        EnvDigests::default()
    }

    /// The digests of the pixi project found from `dir` upwards (none
    /// without a project or a readable lock: jobs then fail with the
    /// reason when they need the environment).
    pub fn of(dir: &Path, default_env: Option<&str>) -> EnvDigests {
        let digests = PixiProject::find(dir)
            .and_then(|p| {
                let bytes = std::fs::read(&p.lock).ok()?;
                let key: [u8; 32] = Sha256::digest(&bytes).into();
                let mut memo = memo().lock().unwrap_or_else(|e| e.into_inner());
                if let Some(d) = memo.get(&key) {
                    return Some(d.clone());
                }
                let d = slurmbook_pack::environment_digests_of(&p.lock, &bytes).ok()?;
                if memo.len() > 16 {
                    memo.clear();
                }
                memo.insert(key, d.clone());
                Some(d)
            })
            .unwrap_or_default();
        EnvDigests {
            default_env: default_env.map(str::to_string),
            digests,
        }
    }

    /// The `env:<name>` entry of an asset with `--env asset_env` (`None`
    /// when it runs in no environment, or the lock does not have it).
    pub fn entry(&self, asset_env: Option<&str>) -> Option<(String, String)> {
        let name = asset_env
            .or(self.default_env.as_deref())
            .unwrap_or(DEFAULT_ENVIRONMENT);
        if name == "none" {
            return None;
        }
        let digest = self.digests.get(name)?;
        Some((format!("{ENV_PREFIX}{name}"), digest.clone()))
    }
}
