//! `%log NAME [--run RUN] [--stderr] [--tail N]`: the whole output of an
//! asset's Slurm job, copied from the cluster into `.slurmbook/logs/`; the
//! cell shows where it is and its last lines (a cell shows at most
//! [`crate::render::OUTPUT_LIMIT`] of a job's output while it runs).

use super::errors::run_error;
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;
use slurmbook_magics::events::Stream;
use slurmbook_magics::run::logs::last_lines;
use slurmbook_magics::syntax::magic::LogArgs;

/// Lines shown without `--tail`.
const DEFAULT_TAIL: u32 = 20;

impl RustKernel {
    pub(super) async fn log_magic(
        &mut self,
        args: LogArgs,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let stream = if args.stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let log = self
            .workspace
            .job_log(&args.name, args.run, stream)
            .await
            .map_err(|e| run_error(&format!("%log {}", args.name), e))?;
        let text = std::fs::read(&log.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let tail = args.tail.unwrap_or(DEFAULT_TAIL) as usize;
        let shown = last_lines(&text, tail);
        let which = if args.stderr { "stderr" } else { "output" };
        let path = log
            .path
            .strip_prefix(self.workspace.dir())
            .unwrap_or(&log.path);
        out.stream(
            "stdout",
            &format!(
                "{which} of {} in run {}: {} byte(s), copied to {} (from {}); its last {} line(s):\n",
                log.asset,
                log.run,
                log.bytes,
                path.display(),
                log.remote,
                shown.lines().count(),
            ),
        );
        if !shown.is_empty() {
            let mut shown = shown.to_string();
            if !shown.ends_with('\n') {
                shown.push('\n');
            }
            out.stream("stdout", &shown);
        }
        Ok(CellResult::none())
    }
}
