//! `list_projects`: the projects this server is set up to read. Bloomreach API keys belong to a
//! project and no endpoint lists projects for a key, so the list comes from configuration (or
//! the demo data), not the API; on Loomi Connect, from its own `list_projects` unless configured.

use schemars::JsonSchema;
use serde::Serialize;

use super::envelope::Envelope;
use super::{CallContext, RawArgs};
use crate::config::ProjectEntry;

pub const NAME: &str = "list_projects";
pub const TITLE: &str = "List configured Bloomreach projects";

pub fn description() -> &'static str {
    "List the Bloomreach projects this server is set up to read. Each entry's `id` is the project token that every \
other tool takes as `project_id`. Start here when you do not know the project. The list comes from the server's \
configuration (or, when the server reads through Loomi Connect, from the projects the user's login can see, with \
their organization and workspace). When it fails because the server is not set up, tell the user what the error says \
to do."
}

pub const ARGS: &[&dyn super::args::Declared] = &[];

/// A project this server is configured for.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ProjectRecord {
    /// The project token; pass it as `project_id` to the other tools.
    pub id: String,
    /// A display name for the project.
    pub name: String,
    /// The name of the organization the project belongs to, where the backend says (Loomi Connect); null otherwise.
    pub organization: Option<String>,
    /// The name of the project's workspace, where the backend says (Loomi Connect); null otherwise.
    pub workspace: Option<String>,
}

pub type Output = Envelope<Vec<ProjectRecord>>;

pub async fn call(context: &CallContext<'_>, _args: &RawArgs) -> Output {
    // With no way in, or a setting that cannot work, the configured projects would lead nowhere.
    if let Some(e) = context.backend.unusable() {
        return Output::of(Err(e.into()));
    }
    if context.projects.is_empty() {
        let listed = context.backend.list_projects(context.on_retry).await;
        return Output::of(listed.map(|p| records(&p)).map_err(Into::into));
    }
    Output::of(Ok(records(context.projects)))
}

fn records(projects: &[ProjectEntry]) -> Vec<ProjectRecord> {
    projects.iter().map(ProjectRecord::from).collect()
}

impl From<&ProjectEntry> for ProjectRecord {
    fn from(p: &ProjectEntry) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            organization: p.organization.clone(),
            workspace: p.workspace.clone(),
        }
    }
}
