//! What the notebook's schedules did on the cluster, brought home on
//! demand (`%runs`, `%assets`, `%load`, `slurmbook schedule list`): each
//! schedule's state database is fetched over the profile's transport into
//! `.slurmbook/remote/<profile>-<id>.db` (with its WAL, so a copy taken
//! while a tick writes is consistent) and its finished runs are imported
//! into the local state database ([`StateDb::import_runs`]): `%runs` lists
//! them with their trigger, a newer scheduled materialization is the
//! asset's latest (fresh only while its code version matches), and `%load`
//! fetches its value from the cluster over the run's profile.

use std::path::Path;

use crate::state::{StateDb, STATE_DIR};

use super::schedule::ScheduleError;
use super::{RunError, Workspace};

impl Workspace {
    /// Imports what every schedule of this notebook did since the last
    /// call; returns the number of runs imported. A schedule that cannot
    /// be reached is skipped with a warning in the result.
    pub async fn sync_schedules(&mut self) -> (usize, Vec<String>) {
        let schedules = match self.schedules() {
            Ok(s) => s,
            Err(e) => return (0, vec![e.to_string()]),
        };
        let mut imported = 0;
        let mut warnings = Vec::new();
        for s in schedules {
            match self.sync_schedule(&s.profile, &s.id, &s.dir).await {
                Ok(n) => imported += n,
                Err(e) => warnings.push(format!(
                    "the state of schedule {} on profile {} was not fetched: {e}",
                    s.id, s.profile
                )),
            }
        }
        (imported, warnings)
    }

    async fn sync_schedule(
        &mut self,
        profile: &str,
        id: &str,
        dir: &str,
    ) -> Result<usize, ScheduleError> {
        let settings = self.settings(Some(profile)).map_err(RunError::from)?;
        let t = self.transport(&settings);
        let remote_db = format!("{dir}/{STATE_DIR}/state.db");
        let bytes = match t.fetch(&remote_db).await {
            Ok(b) => b,
            // No tick has written state yet.
            Err(_) if !exists(t.as_ref(), &remote_db).await => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let wal = t.fetch(&format!("{remote_db}-wal")).await.ok();
        let local_dir = self.dir().join(STATE_DIR).join("remote");
        let io = |e: std::io::Error| ScheduleError::Usage(format!("{}: {e}", local_dir.display()));
        std::fs::create_dir_all(&local_dir).map_err(io)?;
        let copy = local_dir.join(format!("{profile}-{id}.db"));
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&copy, suffix));
        }
        std::fs::write(&copy, bytes).map_err(io)?;
        if let Some(wal) = wal {
            std::fs::write(with_suffix(&copy, "-wal"), wal).map_err(io)?;
        }
        let remote = StateDb::open_file(&copy).map_err(RunError::from)?;
        let db = self.db().map_err(RunError::from)?;
        Ok(db
            .import_runs(
                &remote,
                &format!("{profile}/{id}"),
                profile,
                &format!("scheduled on {profile}: "),
            )
            .map_err(RunError::from)?)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

async fn exists(t: &dyn crate::transport::Transport, path: &str) -> bool {
    t.run(&["test", "-e", path])
        .await
        .map(|o| o.success())
        .unwrap_or(true)
}
