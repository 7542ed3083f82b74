//! `%assets`, `%graph` and inspecting an asset's name: views of the project
//! and the state database (built in `slurmbook_magics::views`), as
//! `display_data`.

use super::errors::run_error;
use super::execute::CellResult;
use super::render::CellOutput;
use super::RustKernel;
use crate::engine::ErrorInfo;
use crate::protocol::MimeBundle;
use crate::render::table_bundle;
use serde_json::Value;
use slurmbook_magics::draw::graph;
use slurmbook_magics::usage::views::add_last_usage_column;
use slurmbook_magics::views;
use slurmbook_magics::{Project, Selection};

impl RustKernel {
    pub(super) fn project(&self) -> Result<Project, ErrorInfo> {
        self.workspace
            .project()
            .map_err(|e| ErrorInfo::new("AssetError", e.to_string()))
    }

    /// What inspecting an asset's name shows: deps, state, last materialization.
    pub(super) fn describe_asset(&mut self, name: &str) -> Option<String> {
        let project = self.project().ok()?;
        project.asset(name)?;
        let snap = self.workspace.snapshot(&project).ok()?;
        views::describe_asset(&project, &snap, name)
    }

    pub(super) fn assets_magic(&mut self, out: &CellOutput<'_>) -> Result<CellResult, ErrorInfo> {
        let project = self.project()?;
        let snap = self
            .workspace
            .snapshot(&project)
            .map_err(|e| run_error("%assets", e))?;
        let mut table = views::assets_table(&project, &snap);
        let usage = self
            .workspace
            .last_usage()
            .map_err(|e| run_error("%assets", e))?;
        if !usage.is_empty() {
            add_last_usage_column(&mut table, &usage);
        }
        out.display(table_bundle(&table), None);
        Ok(CellResult::none())
    }

    pub(super) fn graph_magic(
        &mut self,
        selection: Option<Selection>,
        out: &CellOutput<'_>,
    ) -> Result<CellResult, ErrorInfo> {
        let project = self.project()?;
        let snap = self
            .workspace
            .snapshot(&project)
            .map_err(|e| run_error("%graph", e))?;
        let names = match &selection {
            Some(sel) => Some(
                snap.select(&project, sel)
                    .map_err(|e| super::errors::magic_error(format!("%graph: {e}")))?,
            ),
            None => None,
        };
        let (nodes, edges) = views::graph_parts(&project, names.as_deref(), &snap);
        let mut data = MimeBundle::new();
        data.insert(
            "text/vnd.mermaid".into(),
            Value::String(graph::mermaid(&nodes, &edges)),
        );
        data.insert(
            "image/svg+xml".into(),
            Value::String(graph::svg(&nodes, &edges)),
        );
        data.insert(
            "text/plain".into(),
            Value::String(graph::text(&nodes, &edges)),
        );
        out.display(data, None);
        Ok(CellResult::none())
    }
}
