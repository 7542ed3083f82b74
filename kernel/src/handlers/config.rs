//! `%config [KEY=VALUE ...]`: shows the effective configuration (and the
//! job environment), or changes it for this session. Every setting is
//! validated before any is applied.

use super::errors::magic_error;
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;

impl RustKernel {
    pub(super) fn config_magic(
        &mut self,
        settings: Vec<(String, String)>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        // Validate everything before applying anything.
        for (key, value) in &settings {
            if key == "notebook" {
                if !std::path::Path::new(value).is_file() {
                    return Err(magic_error(format!(
                        "%config notebook: no notebook at {value}"
                    )));
                }
                continue;
            }
            slurmbook_magics::config::validate(key, value).map_err(|e| {
                let also = match e {
                    slurmbook_magics::config::ConfigError::UnknownKey(_) => ", notebook",
                    _ => "",
                };
                magic_error(format!("%config: {e}{also}"))
            })?;
        }
        let mut candidate = self.workspace.config.clone();
        for (key, value) in &settings {
            if key != "notebook" {
                candidate.insert(key.clone(), value.clone());
            }
        }
        let before = std::mem::replace(&mut self.workspace.config, candidate);
        if let Err(e) = self.workspace.settings(None) {
            self.workspace.config = before;
            return Err(magic_error(format!("%config: {e}")));
        }
        for (key, value) in &settings {
            if key == "notebook" {
                let path = self
                    .workspace
                    .set_notebook(std::path::Path::new(value))
                    .map_err(|e| magic_error(format!("%config notebook: {e}")))?;
                out.stream("stdout", &format!("notebook = {}\n", path.display()));
            } else {
                out.stream("stdout", &format!("{key} = {value}\n"));
            }
        }
        if settings.is_empty() {
            let notebook = match self.workspace.notebook() {
                Some((path, source)) => {
                    format!("notebook   = {}    ({})\n", path.display(), source.describe())
                }
                None => "notebook   = (none: JupyterLab sets JPY_SESSION_NAME, or use %config notebook=PATH)\n".into(),
            };
            let settings = self
                .workspace
                .settings(None)
                .map_err(|e| magic_error(format!("%config: {e}")))?;
            let platform = settings
                .platform()
                .map(str::to_owned)
                .unwrap_or_else(slurmbook_magics::exec::cluster::local_platform);
            let env = slurmbook_magics::exec::job_env::EnvStatus::of(
                &self.workspace.dir(),
                &settings,
                &platform,
            );
            let transport = slurmbook_magics::exec::cluster::transport_target(&settings);
            out.stream(
                "stdout",
                &format!(
                    "{notebook}state      = {}\n{}transport: {} (Slurm runs)\n{}{}",
                    self.workspace.dir().join(".slurmbook/state.db").display(),
                    settings.render(),
                    transport.describe(),
                    env.render(),
                    slurmbook_magics::exec::foreign::local::describe(
                        &self.workspace.dir(),
                        &settings
                    )
                ),
            );
        }
        Ok(CellResult::none())
    }
}
