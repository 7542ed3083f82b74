//! What the `notify` command (the `notify` key of the freshness policies)
//! is told when an asset of a tick's run fails: run on the side that ticks
//! (on the cluster for a schedule, whose host-less profile carries the
//! key). The command is never run by a shell and none of our text goes
//! into its argv: what happened is in its environment (`SLURMBOOK_ASSET`,
//! `SLURMBOOK_FRESHNESS` = `failed`, `SLURMBOOK_DETAIL`, `SLURMBOOK_RUN`,
//! `SLURMBOOK_NOTEBOOK`); `policy::notify::spawn_env` starts it. Overdue
//! assets are notified by the freshness policy check every tick makes.

/// What a notification of a failed scheduled materialization says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub asset: String,
    /// `failed` (a scheduled run's asset failed).
    pub state: &'static str,
    pub detail: String,
    pub run: Option<i64>,
    pub notebook: Option<String>,
}

impl Notice {
    /// The environment variables the command gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SLURMBOOK_ASSET", self.asset.clone()),
            ("SLURMBOOK_FRESHNESS", self.state.to_string()),
            ("SLURMBOOK_DETAIL", self.detail.clone()),
        ];
        if let Some(run) = self.run {
            env.push(("SLURMBOOK_RUN", run.to_string()));
        }
        if let Some(nb) = &self.notebook {
            env.push(("SLURMBOOK_NOTEBOOK", nb.clone()));
        }
        env
    }
}
