//! The upward face: the MCP server and its tools. Knows MCP; knows nothing
//! of HTTP.
//!
//! [`VoucherServer::call`] is the single way a tool runs, used by MCP's
//! `tools/call` and by the `call` subcommand alike: read the arguments, ask
//! the [`Source`], wrap the answer (or the error, turned into words here)
//! in the envelope.

pub mod args;
pub mod catalog;
pub mod envelope;
pub mod records;
pub mod schema;

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, Implementation,
    InitializeRequestParams, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::bloomreach::{CodesQuery, RetryNotice};
use crate::config::ProjectEntry;
use crate::source::Source;
use crate::stdio::StdinClosed;
use args::RawArgs;
use catalog::{GET_VOUCHER_POOL, LIST_PROJECTS, LIST_VOUCHER_CODES, LIST_VOUCHER_POOLS};
use envelope::{CodesEnvelope, PoolEnvelope, PoolsEnvelope, ProjectsEnvelope, ToolOutcome};
use records::{ProjectRecord, VoucherCode, VoucherPool, VoucherPoolSummary};

/// The MCP server: the tools over a [`Source`]. Cheap to clone.
#[derive(Clone)]
pub struct VoucherServer {
    inner: Arc<State>,
}

struct State {
    source: Source,
    stdin_closed: StdinClosed,
    projects: Vec<ProjectEntry>,
    tools: Vec<Tool>,
    instructions: String,
}

impl VoucherServer {
    /// A server over `source`, listing `projects` in `list_projects`.
    pub fn new(source: Source, projects: Vec<ProjectEntry>) -> Self {
        Self::with_stdin_signal(source, projects, StdinClosed::never())
    }

    /// A server that gives up on calls in flight shortly after stdin
    /// closes (see [`crate::stdio`]).
    pub fn with_stdin_signal(
        source: Source,
        projects: Vec<ProjectEntry>,
        stdin_closed: StdinClosed,
    ) -> Self {
        let instructions = instructions(&projects, &source);
        Self {
            inner: Arc::new(State {
                source,
                stdin_closed,
                projects,
                tools: catalog::tools(),
                instructions,
            }),
        }
    }

    /// The tool definitions, as `tools/list` gives them.
    pub fn tools(&self) -> &[Tool] {
        &self.inner.tools
    }

    /// Runs one tool. `None` when there is no tool of that name. `on_retry`
    /// hears about each retry while the call waits on the API.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<RawArgs>,
        on_retry: &(dyn Fn(&RetryNotice) + Send + Sync),
    ) -> Option<ToolOutcome> {
        let args = arguments.unwrap_or_default();
        let source = &self.inner.source;
        let outcome = match name {
            LIST_PROJECTS => ToolOutcome::new(&ProjectsEnvelope::ok(
                self.inner
                    .projects
                    .iter()
                    .map(ProjectRecord::from)
                    .collect(),
            )),
            LIST_VOUCHER_POOLS => ToolOutcome::new(&match args::project_id(&args) {
                Err(e) => PoolsEnvelope::failed(Vec::new(), e.to_string()),
                Ok(project_id) => match source.list_pools(&project_id, on_retry).await {
                    Ok(pools) => {
                        PoolsEnvelope::ok(pools.into_iter().map(VoucherPoolSummary::from).collect())
                    }
                    Err(e) => PoolsEnvelope::failed(Vec::new(), e.to_string()),
                },
            }),
            GET_VOUCHER_POOL => ToolOutcome::new(&match args::pool_args(&args) {
                Err(e) => PoolEnvelope::failed(None, e.to_string()),
                Ok(a) => match source.get_pool(&a.project_id, &a.pool_id, on_retry).await {
                    Ok(pool) => PoolEnvelope::ok(Some(VoucherPool::from(pool))),
                    Err(e) => PoolEnvelope::failed(None, e.to_string()),
                },
            }),
            LIST_VOUCHER_CODES => ToolOutcome::new(&self.list_codes(&args, on_retry).await),
            _ => return None,
        };
        Some(outcome)
    }

    async fn list_codes(
        &self,
        args: &RawArgs,
        on_retry: &(dyn Fn(&RetryNotice) + Send + Sync),
    ) -> CodesEnvelope {
        let (asked, checked) = args::codes_args(args);
        let failed = |error: String| CodesEnvelope {
            success: false,
            data: Vec::new(),
            matched: None,
            matched_limited: None,
            skip: asked.skip,
            limit: asked.count,
            error: Some(error),
        };
        let a = match checked {
            Ok(a) => a,
            Err(e) => return failed(e.to_string()),
        };
        let query = CodesQuery {
            project_id: &a.project_id,
            pool_id: &a.pool_id,
            skip: a.skip,
            count: a.count,
            status: a.status,
        };
        match self.inner.source.list_codes(&query, on_retry).await {
            Ok(page) => CodesEnvelope {
                success: true,
                data: page.codes.into_iter().map(VoucherCode::from).collect(),
                matched: page.matched,
                matched_limited: page.matched_limited,
                skip: i64::try_from(page.skip).unwrap_or(i64::MAX),
                limit: i64::try_from(page.limit).unwrap_or(i64::MAX),
                error: None,
            },
            Err(e) => failed(e.to_string()),
        }
    }
}

/// The workflow, told to the assistant at the start of a session.
fn instructions(projects: &[ProjectEntry], source: &Source) -> String {
    let mut text = String::from(
        "Read-only access to Bloomreach voucher pools and voucher codes. Workflow: \
         list_projects gives the project tokens (use one as project_id); \
         list_voucher_pools(project_id) lists the pools with how many codes each holds and how many are still available; \
         get_voucher_pool(project_id, pool_id) shows one pool and the campaigns that use it; \
         list_voucher_codes(project_id, pool_id, skip, count, status) pages through the codes \
         (status: available, assigned or redeemed; `matched` is the number of matching codes in all). \
         To count or find codes of one status, filter with status and page with skip/count (at most 1000 per page). \
         Every tool answers {success, data, error}; when success is false, error says what to fix.",
    );
    match (projects.first(), source) {
        (Some(p), _) => text.push_str(&format!(" The default project is {:?} ({}).", p.id, p.name)),
        (None, Source::Demo(_)) => text.push_str(&format!(
            " This server runs on built-in demo data: use project_id {:?}.",
            crate::demo::PROJECT_ID
        )),
        (None, _) => text.push_str(
            " No project is configured: ask the user for their Bloomreach project token.",
        ),
    }
    text
}

impl ServerHandler for VoucherServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                crate::SERVER_NAME,
                crate::SERVER_VERSION,
            ))
            .with_instructions(self.inner.instructions.clone())
    }

    /// Answers `initialize` without touching the session's negotiated
    /// state: a repeated `initialize` on a live session changes nothing for
    /// the requests after it.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let result = self.negotiate_initialize(&request)?;
        if context.peer.peer_info().is_none() {
            let mut info = request;
            info.protocol_version = result.protocol_version.clone();
            context.peer.set_peer_info(info);
        }
        Ok(result)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.inner.tools.clone()))
    }

    /// A request for a known method whose params did not fit its shape
    /// (say, `tools/call` with `arguments` that is not an object) arrives
    /// here; it gets -32602 invalid params rather than -32601.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        match request.method.as_str() {
            "tools/call" => Err(McpError::invalid_params(
                "tools/call needs params {name: string, arguments: object}",
                None,
            )),
            "tools/list" | "initialize" | "ping" => Err(McpError::invalid_params(
                format!("{} was sent with params of the wrong shape", request.method),
                None,
            )),
            other => Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: {other}"),
                None,
            )),
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        let name = request.name.clone();
        let progress_token = context.meta.get_progress_token();
        let peer = context.peer.clone();
        let on_retry = move |notice: &RetryNotice| {
            if let Some(token) = progress_token.clone() {
                let peer = peer.clone();
                let param = ProgressNotificationParam::new(token, f64::from(notice.retry))
                    .with_total(f64::from(notice.max_retries + 1))
                    .with_message(notice.to_string());
                tokio::spawn(async move {
                    let _ = peer.notify_progress(param).await;
                });
            }
        };
        let outcome = tokio::select! {
            outcome = self.call(&name, request.arguments, &on_retry) => outcome,
            _ = context.ct.cancelled() => {
                tracing::info!(tool = %name, outcome = "cancelled", duration_ms = started.elapsed().as_millis() as u64, "tool call");
                return Err(McpError::internal_error("the call was cancelled", None));
            }
            _ = self.inner.stdin_closed.then_grace() => {
                tracing::info!(tool = %name, outcome = "abandoned: stdin closed", duration_ms = started.elapsed().as_millis() as u64, "tool call");
                return Err(McpError::internal_error("the client closed the session", None));
            }
        };
        let Some(outcome) = outcome else {
            tracing::info!(tool = %name, outcome = "unknown tool", "tool call");
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {name:?}; this server has {}",
                    catalog::TOOL_NAMES.join(", ")
                ),
                None,
            ));
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match outcome.error() {
            None => tracing::info!(tool = %name, outcome = "ok", duration_ms, "tool call"),
            Some(error) => {
                tracing::info!(tool = %name, outcome = "error", duration_ms, error, "tool call")
            }
        }
        Ok(outcome.into_call_result().into())
    }
}
