//! The upward face: the MCP server and its tools. Knows MCP; knows nothing
//! of HTTP.
//!
//! Each tool lives in a file of its own (name, title, description, input,
//! record, handler) and is listed once, in [`TOOLS`]. [`VoucherServer::call`]
//! is the single way a tool runs, used by MCP's `tools/call` and by the
//! `call` subcommand alike: the tool reads its arguments, asks the
//! [`Backend`], and wraps the answer, or the error worded by [`words`], in
//! the envelope.

pub mod args;
pub mod envelope;
mod memory;
mod read_ahead;
pub mod schema;
pub mod words;

pub mod find_voucher_codes;
pub mod get_voucher_pool;
pub mod get_voucher_pool_stats;
pub mod list_projects;
pub mod list_voucher_codes;
pub mod list_voucher_pools;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, Implementation,
    InitializeRequestParams, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use schemars::JsonSchema;

use crate::backend::{Backend, RetryNotice, RetryObserver};
use crate::config::ProjectEntry;
use args::RawArgs;
use envelope::ToolOutcome;
use schema::schema_for;
use tokio_util::sync::CancellationToken;

/// One tool: how it is listed and how it runs. Made by [`tool!`] from a
/// tool's module, which holds `NAME`, `TITLE`, `description()`, the
/// arguments it takes (`ARGS`), its `Output` type and `call`.
pub struct ToolSpec {
    pub name: &'static str,
    /// The definition `tools/list` gives.
    pub definition: fn() -> Tool,
    /// Runs the tool on raw arguments.
    pub run: for<'a> fn(&'a CallContext<'a>, &'a RawArgs) -> ToolFuture<'a>,
}

/// What a tool's handler returns.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolOutcome> + Send + 'a>>;

/// The [`ToolSpec`] of a tool's module.
macro_rules! tool {
    ($module:ident) => {
        ToolSpec {
            name: $module::NAME,
            definition: || {
                read_only_tool::<$module::Output>(
                    $module::NAME,
                    $module::TITLE,
                    $module::description(),
                    $module::ARGS,
                )
            },
            run: |context, args| {
                Box::pin(envelope::checked(
                    args,
                    $module::ARGS,
                    $module::call(context, args),
                ))
            },
        }
    };
}

/// Every tool, in the order a workflow uses them. Adding a tool is one file
/// and one line here.
pub const TOOLS: &[ToolSpec] = &[
    tool!(list_projects),
    tool!(list_voucher_pools),
    tool!(get_voucher_pool),
    tool!(list_voucher_codes),
    tool!(get_voucher_pool_stats),
    tool!(find_voucher_codes),
];

/// What a tool's handler may use while it runs.
pub struct CallContext<'a> {
    pub backend: &'a Backend,
    /// The projects `list_projects` shows.
    pub projects: &'a [ProjectEntry],
    /// Hears about each retry while the call waits on the backend.
    pub on_retry: RetryObserver<'a>,
    /// Hears how far a scan has come, after each page; the call goes on
    /// once the notice is sent, so it reaches the client before the answer.
    pub on_progress: &'a (dyn Fn(ScanProgress) -> Notified + Send + Sync),
    /// What the question tools read lately.
    pub memory: &'a memory::Memory,
}

/// A progress notice on its way.
pub type Notified = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How far a scan has come: codes examined, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanProgress {
    pub examined: u64,
    pub total: Option<u64>,
}

/// A read-only tool's definition: its annotations, its title, the schema
/// of the arguments it takes and that of its output `O`.
pub fn read_only_tool<O: JsonSchema>(
    name: &'static str,
    title: &'static str,
    description: impl Into<String>,
    args: &[&dyn args::Declared],
) -> Tool {
    Tool::new(name, description.into(), args::input_schema(args))
        .with_title(title)
        .with_raw_output_schema(schema_for::<O>())
        .with_annotations(
            ToolAnnotations::with_title(title)
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(true),
        )
}

/// How long a client may keep the tool list: a day (it never changes
/// while the process runs).
const TOOLS_TTL_MS: u64 = 24 * 3600 * 1000;

/// The names of every tool, in table order.
pub fn tool_names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

/// The MCP server: the tools over a [`Backend`]. Cheap to clone.
#[derive(Clone)]
pub struct VoucherServer {
    inner: Arc<State>,
}

struct State {
    backend: Backend,
    /// Cancelled when the session is ending: calls in flight give up.
    ending: CancellationToken,
    projects: Vec<ProjectEntry>,
    tools: Vec<Tool>,
    instructions: String,
    memory: memory::Memory,
}

impl VoucherServer {
    /// A server over `backend`, listing `projects` in `list_projects` (or,
    /// where none are given, the projects the backend knows by itself).
    pub fn new(backend: Backend, projects: Vec<ProjectEntry>) -> Self {
        Self::with_ending(backend, projects, CancellationToken::new())
    }

    /// A server whose calls in flight give up once `ending` is cancelled
    /// (the session is ending).
    pub fn with_ending(
        backend: Backend,
        projects: Vec<ProjectEntry>,
        ending: CancellationToken,
    ) -> Self {
        let projects = if projects.is_empty() {
            backend.own_projects()
        } else {
            projects
        };
        let instructions = instructions(&projects, &backend);
        Self {
            inner: Arc::new(State {
                backend,
                ending,
                projects,
                tools: TOOLS.iter().map(|t| (t.definition)()).collect(),
                instructions,
                memory: memory::Memory::default(),
            }),
        }
    }

    /// The tool definitions, as `tools/list` gives them.
    pub fn tools(&self) -> &[Tool] {
        &self.inner.tools
    }

    /// Runs one tool. `None` when there is no tool of that name. `on_retry`
    /// hears about each retry while the call waits on the backend; each
    /// retry is also logged.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<RawArgs>,
        on_retry: &(dyn Fn(&RetryNotice) + Send + Sync),
    ) -> Option<ToolOutcome> {
        self.call_reporting(name, arguments, on_retry, &|_| {
            Box::pin(std::future::ready(()))
        })
        .await
    }

    /// [`VoucherServer::call`], with `on_progress` hearing how far a scan
    /// has come after each page.
    pub async fn call_reporting(
        &self,
        name: &str,
        arguments: Option<RawArgs>,
        on_retry: &(dyn Fn(&RetryNotice) + Send + Sync),
        on_progress: &(dyn Fn(ScanProgress) -> Notified + Send + Sync),
    ) -> Option<ToolOutcome> {
        let spec = TOOLS.iter().find(|t| t.name == name)?;
        let args = arguments.unwrap_or_default();
        let observer = |notice: &RetryNotice| {
            tracing::warn!("{}", words::retry_notice(notice));
            on_retry(notice);
        };
        let context = CallContext {
            backend: &self.inner.backend,
            projects: &self.inner.projects,
            on_retry: &observer,
            on_progress,
            memory: &self.inner.memory,
        };
        Some((spec.run)(&context, &args).await)
    }
}

/// Progress notifications for one call, when the client sent a progress
/// token. Retries count 1, 2, 3 of 4 until a scan has reported; after that
/// they repeat the scan's count, so progress never goes back.
struct Progress {
    token: Option<rmcp::model::ProgressToken>,
    peer: rmcp::Peer<RoleServer>,
    scanned: std::sync::Mutex<Option<ScanProgress>>,
    /// The progress last sent: each notice must say more (MCP requires
    /// progress to increase), so a wait told after a page says a little
    /// more than the page did.
    last: std::sync::Mutex<Option<f64>>,
}

impl Progress {
    fn new(token: Option<rmcp::model::ProgressToken>, peer: rmcp::Peer<RoleServer>) -> Self {
        Self {
            token,
            peer,
            scanned: std::sync::Mutex::new(None),
            last: std::sync::Mutex::new(None),
        }
    }

    fn retry(&self, notice: &RetryNotice) {
        let scanned = *self.scanned.lock().unwrap_or_else(|p| p.into_inner());
        let (progress, total) = match scanned {
            Some(scan) => (scan.examined as f64, scan.total.map(|t| t as f64)),
            None => (
                f64::from(notice.retry),
                Some(f64::from(notice.max_retries + 1)),
            ),
        };
        self.send(progress, total, words::retry_notice(notice));
    }

    fn scan(&self, scan: ScanProgress) -> Notified {
        *self.scanned.lock().unwrap_or_else(|p| p.into_inner()) = Some(scan);
        self.notice(
            scan.examined as f64,
            scan.total.map(|t| t as f64),
            words::scan_progress(&scan),
        )
    }

    fn send(&self, progress: f64, total: Option<f64>, message: String) {
        tokio::spawn(self.notice(progress, total, message));
    }

    fn notice(&self, progress: f64, total: Option<f64>, message: String) -> Notified {
        let Some(token) = self.token.clone() else {
            return Box::pin(std::future::ready(()));
        };
        let progress = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let next = match *last {
                Some(before) if progress <= before => before + 0.001,
                _ => progress,
            };
            *last = Some(next);
            next
        };
        let mut param = ProgressNotificationParam::new(token, progress).with_message(message);
        if let Some(total) = total {
            param = param.with_total(total);
        }
        let peer = self.peer.clone();
        Box::pin(async move {
            let _ = peer.notify_progress(param).await;
        })
    }
}

/// A tool name as logs and errors show it: as it is for a tool of this
/// server, else quoted, escaped and at most 100 characters.
pub fn shown_name(name: &str) -> String {
    if TOOLS.iter().any(|t| t.name == name) {
        name.to_owned()
    } else {
        crate::text::shorten(&format!("{name:?}"), 100)
    }
}

/// The workflow, told to the assistant at the start of a session.
fn instructions(projects: &[ProjectEntry], backend: &Backend) -> String {
    let mut text = format!(
        "Read-only access to Bloomreach voucher pools and voucher codes. Workflow: \
         list_projects gives the project tokens (use one as project_id); \
         list_voucher_pools(project_id) lists the pools with how many codes each holds and how many are still available; \
         get_voucher_pool(project_id, pool_id) shows one pool and the campaigns that use it; \
         get_voucher_pool_stats(project_id, pool_id) counts a pool's codes by status (available, assigned, \
         redeemed) in one call; \
         find_voucher_codes(project_id, pool_id, code, code_prefix, status, assigned_after, assigned_before, \
         redeemed_after, redeemed_before) finds the codes that match in one call (\"is ABC-123 still valid?\", \
         \"which were redeemed yesterday?\"; times are RFC 3339 or Unix seconds, _after inclusive, _before exclusive), \
         resuming from next_skip when complete is false; \
         list_voucher_codes(project_id, pool_id, skip, count, status) pages through the codes themselves \
         (at most {} per page; pages above about 300 codes are large, so prefer the two tools above for counts \
         and searches). \
         Every tool answers {{success, data, error}}; when success is false, error says what to fix.",
        args::COUNT.max
    );
    if let Some(e) = backend.unusable() {
        text.push_str(&format!(
            " SETUP IS INCOMPLETE, so every tool answers this error until the user changes the setting and restarts \
             the server; tell the user what it says: {}",
            words::backend_error(&e)
        ));
        return text;
    }
    match projects.first() {
        Some(p) => text.push_str(&format!(" The default project is {:?} ({}).", p.id, p.name)),
        None if backend.lists_projects() => text.push_str(
            " Call list_projects first: it lists the projects the user's Bloomreach login can see.",
        ),
        None => text.push_str(
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

    /// Under 2026-07-28, the list says it may be cached: the tools never
    /// change while the process runs.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let result = ListToolsResult::with_all_items(self.inner.tools.clone());
        let version = context
            .meta
            .protocol_version()
            .or_else(|| context.peer.peer_info().map(|i| i.protocol_version.clone()));
        if version.is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28) {
            return Ok(result
                .with_ttl_ms(TOOLS_TTL_MS)
                .with_cache_scope(rmcp::model::CacheScope::Public));
        }
        Ok(result)
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
        // A name from the client is logged escaped and short: a newline or
        // an escape sequence in it must not forge a log line.
        let tool = shown_name(&name);
        let progress = Progress::new(context.meta.get_progress_token(), context.peer.clone());
        let on_retry = |notice: &RetryNotice| progress.retry(notice);
        let on_progress = |scan: ScanProgress| progress.scan(scan);
        let outcome = tokio::select! {
            outcome = self.call_reporting(&name, request.arguments, &on_retry, &on_progress) => outcome,
            _ = context.ct.cancelled() => {
                tracing::info!(tool = %tool, outcome = "cancelled", duration_ms = started.elapsed().as_millis() as u64, "tool call");
                return Err(McpError::internal_error("the call was cancelled", None));
            }
            _ = self.inner.ending.cancelled() => {
                tracing::info!(tool = %tool, outcome = "abandoned: stdin closed", duration_ms = started.elapsed().as_millis() as u64, "tool call");
                return Err(McpError::internal_error("the client closed the session", None));
            }
        };
        let Some(outcome) = outcome else {
            tracing::info!(tool = %tool, outcome = "unknown tool", "tool call");
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {tool}; this server has {}",
                    tool_names().join(", ")
                ),
                None,
            ));
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match outcome.error() {
            None => tracing::info!(tool = %tool, outcome = "ok", duration_ms, "tool call"),
            Some(error) => {
                tracing::info!(tool = %tool, outcome = "error", duration_ms, error, "tool call")
            }
        }
        Ok(outcome.into_call_result().into())
    }
}
