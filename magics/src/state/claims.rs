//! Claims on the steps a run computes, so that two runs of one notebook
//! (two kernels, a kernel and `slurmbook run`, a tick) never compute the
//! same asset version on the same target at once.
//!
//! A claim is an exclusive lock on
//! `.slurmbook/locks/claim-<target>-<asset>-<version>.lock`, held by the
//! process of the run that computes the step for as long as the run goes
//! on; the file says which run holds it ([`ClaimHolder`]). The OS drops the
//! lock however the process ends (SIGKILL included), so a claim of a dead
//! run is void by construction: nothing to expire, nothing to clean up.
//!
//! A run claims all its steps at once or none ([`StateDb::claim_steps`]):
//! the claims of one round are taken under `locks/claims.lock`, and a run
//! that finds one of its steps held claims nothing and waits holding
//! nothing, so two runs can never wait for each other.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Materialization, StateDb, StateError};
use crate::model::{RunId, Target};

/// Who holds a claim: written into the claim's file, shown to a run that
/// waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimHolder {
    pub run: RunId,
    pub pid: u32,
    /// The process: `slurmbook run`, `slurmbook kernel`, ...
    pub process: String,
}

impl ClaimHolder {
    /// This process, running `run`.
    pub fn this_process(run: RunId) -> ClaimHolder {
        let mut args = std::env::args();
        let program = args
            .next()
            .map(|p| {
                Path::new(&p)
                    .file_name()
                    .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "slurmbook".into());
        let process = match args.next().filter(|a| !a.starts_with('-')) {
            Some(command) => format!("{program} {command}"),
            None => program,
        };
        ClaimHolder {
            run,
            pid: std::process::id(),
            process,
        }
    }
}

/// A step to claim: an asset, the version the run computes and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepKey<'a> {
    pub asset: &'a str,
    pub version: &'a str,
    pub target: Target,
}

/// A held claim; dropping it releases it.
#[derive(Debug)]
pub struct StepClaim {
    asset: String,
    path: PathBuf,
    _file: File,
}

impl StepClaim {
    pub fn asset(&self) -> &str {
        &self.asset
    }
}

impl Drop for StepClaim {
    fn drop(&mut self) {
        // Removed while still locked: whoever opened the old file sees, once
        // it has the lock, that the path is no longer that file (see `try_claim`).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A step another live run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStep {
    pub asset: String,
    /// `None` when its file could not be read yet (being written).
    pub holder: Option<ClaimHolder>,
}

/// How a claim round ended.
#[derive(Debug)]
pub enum Claimed {
    /// Every step is this run's now.
    All(Vec<StepClaim>),
    /// These steps are held by other live runs; none was claimed.
    Held(Vec<HeldStep>),
}

fn locks_dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("locks")
}

/// The claim file of a step. Asset names are identifiers; a version that
/// is not plain text is hashed.
fn claim_path(db: &Path, step: StepKey<'_>) -> PathBuf {
    let target = step.target;
    let plain = |s: &str| {
        !s.is_empty() && s.len() <= 80 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let name = if plain(step.asset) && plain(step.version) {
        format!("claim-{target}-{}-{}.lock", step.asset, step.version)
    } else {
        let digest = Sha256::digest(format!("{}\0{}", step.asset, step.version));
        format!("claim-{target}-{}.lock", hex::encode(&digest[..16]))
    };
    locks_dir(db).join(name)
}

/// Tries to lock the claim file at `path`: the claim, or who holds it.
fn try_claim(path: &Path, asset: &str) -> Result<Result<StepClaim, HeldStep>, std::io::Error> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
                return Ok(Err(HeldStep {
                    asset: asset.to_owned(),
                    holder,
                }));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // The holder released and removed it between our open and lock:
        // this file is no longer the claim; open the path again.
        let same = std::fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .ok()
            .zip(file.metadata().ok().map(|m| (m.dev(), m.ino())))
            .is_some_and(|(a, b)| a == b);
        if same {
            return Ok(Ok(StepClaim {
                asset: asset.to_owned(),
                path: path.to_path_buf(),
                _file: file,
            }));
        }
    }
}

/// Removes the claim files nobody holds (left by processes that were
/// killed: their locks went with them, their files stayed). Each is
/// removed while locked, so a run claiming it meanwhile sees that its file
/// is gone and opens the path again (see [`try_claim`]).
pub(super) fn sweep_abandoned(db: &Path) {
    let Ok(entries) = std::fs::read_dir(locks_dir(db)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("claim-") && name.ends_with(".lock")) {
            continue;
        }
        let path = entry.path();
        if let Ok(file) = OpenOptions::new().write(true).open(&path) {
            if file.try_lock().is_ok() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl StateDb {
    /// Claims every step of `steps` for `holder`'s run, or none
    /// (see the module docs): [`Claimed::Held`] names the steps other live
    /// runs hold.
    pub fn claim_steps(
        &self,
        holder: &ClaimHolder,
        steps: &[StepKey<'_>],
    ) -> Result<Claimed, StateError> {
        let dir = locks_dir(&self.path);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let round = dir.join("claims.lock");
        let guard = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&round)
            .map_err(io(&round))?;
        // Held only for the few file operations of one round.
        guard.lock().map_err(io(&round))?;
        let mut claims = Vec::new();
        let mut held = Vec::new();
        for step in steps {
            let path = claim_path(&self.path, *step);
            match try_claim(&path, step.asset).map_err(io(&path))? {
                Ok(claim) => claims.push(claim),
                Err(h) => held.push(h),
            }
        }
        if !held.is_empty() {
            return Ok(Claimed::Held(held));
        }
        let text = serde_json::to_string(holder).expect("a claim holder serializes");
        for claim in &mut claims {
            let path = claim.path.clone();
            let file = &mut claim._file;
            file.set_len(0)
                .and_then(|()| file.write_all(text.as_bytes()))
                .and_then(|()| file.flush())
                .map_err(io(&path))?;
        }
        Ok(Claimed::All(claims))
    }

    /// The last success of `asset` (what freshness and the downstream
    /// steps read) when it is at `version` on `target` and by another run
    /// than `run`: by one of `from` (runs this run waited for), or by any
    /// run when `any_run`.
    pub fn success_elsewhere(
        &self,
        asset: &str,
        version: &str,
        target: Target,
        run: RunId,
        from: &[RunId],
        any_run: bool,
    ) -> Result<Option<Materialization>, StateError> {
        Ok(self.last_success(asset)?.filter(|m| {
            m.version == version
                && m.target == target
                && m.run_id != Some(run)
                && (any_run || m.run_id.is_some_and(|r| from.contains(&r)))
        }))
    }

    /// Slurm jobs other runs submitted for `asset` at `version` whose end
    /// nobody recorded (still `running` in the database): their run's
    /// process ended while they ran on (a kernel killed or restarted). By
    /// run, with the job id.
    pub fn unfollowed_jobs(
        &self,
        asset: &str,
        version: &str,
        run: RunId,
    ) -> Result<Vec<(RunId, String)>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, job_id FROM materializations
             WHERE asset = ?1 AND version = ?2 AND target = 'slurm' AND status = 'running'
               AND partition IS NULL AND job_id IS NOT NULL AND run_id IS NOT NULL
               AND run_id IS NOT ?3
             ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![asset, version, run], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The Slurm job of the newest materialization of `asset` by `run`.
    pub fn job_of(&self, run: RunId, asset: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT job_id FROM materializations WHERE run_id = ?1 AND asset = ?2
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![run, asset], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(asset: &'a str, version: &'a str) -> StepKey<'a> {
        StepKey {
            asset,
            version,
            target: Target::Local,
        }
    }

    #[test]
    fn a_run_claims_all_its_steps_or_none_and_a_released_claim_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let other = StateDb::open(dir.path()).unwrap();
        let first = ClaimHolder {
            run: 1,
            pid: 11,
            process: "slurmbook run".into(),
        };
        let second = ClaimHolder {
            run: 2,
            pid: 22,
            process: "slurmbook kernel".into(),
        };
        let Claimed::All(mine) = db
            .claim_steps(&first, &[key("x", "v1"), key("y", "v1")])
            .unwrap()
        else {
            panic!("the first claim must succeed");
        };
        assert_eq!(mine.len(), 2);
        // y is held: z is not claimed either.
        match other
            .claim_steps(&second, &[key("z", "v1"), key("y", "v1")])
            .unwrap()
        {
            Claimed::Held(held) => assert_eq!(
                held,
                [HeldStep {
                    asset: "y".into(),
                    holder: Some(first.clone())
                }]
            ),
            Claimed::All(_) => panic!("y is held by run 1"),
        }
        // Another version, or the other target, is another step.
        for (target, version) in [(Target::Local, "v2"), (Target::Slurm, "v1")] {
            assert!(matches!(
                other
                    .claim_steps(
                        &second,
                        &[StepKey {
                            target,
                            ..key("y", version)
                        }]
                    )
                    .unwrap(),
                Claimed::All(_)
            ));
        }
        drop(mine);
        let Claimed::All(theirs) = other
            .claim_steps(&second, &[key("z", "v1"), key("y", "v1")])
            .unwrap()
        else {
            panic!("released claims are free");
        };
        assert_eq!(theirs[1].asset(), "y");
        assert!(matches!(
            db.claim_steps(&first, &[key("z", "v1")]).unwrap(),
            Claimed::Held(_)
        ));
    }

    #[test]
    fn claim_files_nobody_holds_are_swept_and_held_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let holder = ClaimHolder {
            run: 1,
            pid: 11,
            process: "slurmbook run".into(),
        };
        let Claimed::All(held) = db.claim_steps(&holder, &[key("x", "v1")]).unwrap() else {
            panic!("free");
        };
        // A killed process's claim: its file left, its lock gone.
        let left = claim_path(db.path(), key("y", "v1"));
        std::fs::write(&left, "{}").unwrap();
        sweep_abandoned(db.path());
        assert!(!left.exists());
        assert!(held[0].path.exists());
        assert!(matches!(
            db.claim_steps(&holder, &[key("x", "v1")]).unwrap(),
            Claimed::Held(_)
        ));
    }

    #[test]
    fn only_the_last_success_at_the_version_by_another_run_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let run = db.begin_run("x", Target::Local, None).unwrap();
        let ups = std::collections::BTreeMap::new();
        let ok = |version: &str| {
            let id = db
                .record_start(&super::super::StartRecord {
                    run_id: Some(run),
                    asset: "x",
                    version,
                    own_hash: "h",
                    upstream_versions: &ups,
                    target: Target::Local,
                    job_id: None,
                    node: None,
                })
                .unwrap();
            db.record_result(id, &super::super::ResultRecord::default())
                .unwrap();
        };
        ok("v1");
        ok("v2");
        let found = |version: &str, target, me, from: &[RunId], any| {
            db.success_elsewhere("x", version, target, me, from, any)
                .unwrap()
                .map(|m| m.version)
        };
        // v1 was materialized, but the last success is v2's.
        assert_eq!(found("v1", Target::Local, run + 1, &[], true), None);
        assert_eq!(
            found("v2", Target::Local, run + 1, &[], true).as_deref(),
            Some("v2")
        );
        assert_eq!(found("v2", Target::Slurm, run + 1, &[], true), None);
        // --force: only a run waited for counts; never this run itself.
        assert_eq!(found("v2", Target::Local, run + 1, &[], false), None);
        assert_eq!(
            found("v2", Target::Local, run + 1, &[run], false).as_deref(),
            Some("v2")
        );
        assert_eq!(found("v2", Target::Local, run, &[run], true), None);
    }

    #[test]
    fn versions_that_are_not_plain_text_are_hashed_into_the_file_name() {
        let path = claim_path(
            Path::new("/n/.slurmbook/state.db"),
            StepKey {
                target: Target::Slurm,
                ..key("x", "../../etc/passwd")
            },
        );
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("claim-slurm-") && !name.contains(".."),
            "{name}"
        );
        assert_eq!(path.parent().unwrap(), Path::new("/n/.slurmbook/locks"));
    }
}
