//! The upward face: the MCP server and its tools. Knows MCP; knows nothing
//! of HTTP. [`VoucherServer::call`] is the single way a tool runs, for MCP's
//! `tools/call` and the `call` subcommand alike.

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
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, ErrorCode,
    Implementation, InitializeRequestParams, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};

use crate::backend::{Backend, RetryNotice, RetryObserver};
use crate::config::ProjectEntry;
use args::RawArgs;
use envelope::{checked, ToolOutcome};
use tokio_util::sync::CancellationToken;

/// One tool: how `tools/list` shows it and how it runs on raw arguments.
pub struct ToolSpec {
    pub name: &'static str,
    pub definition: fn() -> Tool,
    pub run: for<'a> fn(&'a CallContext<'a>, &'a RawArgs) -> ToolFuture<'a>,
}

pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolOutcome> + Send + 'a>>;

/// The [`ToolSpec`] of a tool's module (`NAME`, `TITLE`, `description()`,
/// `ARGS`, `Output`, `call`); every tool is read-only.
macro_rules! tool {
    ($module:ident) => {
        ToolSpec {
            name: $module::NAME,
            definition: || {
                Tool::new(
                    $module::NAME,
                    $module::description(),
                    args::input_schema($module::ARGS),
                )
                .with_title($module::TITLE)
                .with_raw_output_schema(schema::schema_for::<$module::Output>())
                .with_annotations(
                    ToolAnnotations::with_title($module::TITLE)
                        .read_only(true)
                        .destructive(false)
                        .idempotent(true)
                        .open_world(true),
                )
            },
            run: |context, args| {
                Box::pin(checked(args, $module::ARGS, $module::call(context, args)))
            },
        }
    };
}

/// Every tool, in the order a workflow uses them.
pub const TOOLS: &[ToolSpec] = &[
    tool!(list_projects),
    tool!(list_voucher_pools),
    tool!(get_voucher_pool),
    tool!(list_voucher_codes),
    tool!(get_voucher_pool_stats),
    tool!(find_voucher_codes),
];

pub struct CallContext<'a> {
    pub backend: &'a Backend,
    /// The projects `list_projects` shows.
    pub projects: &'a [ProjectEntry],
    pub on_retry: RetryObserver<'a>,
    /// Hears how far a scan has come, after each page; the call goes on
    /// once the notice is sent, so it reaches the client before the answer.
    pub on_progress: &'a (dyn Fn(ScanProgress) -> Notified + Send + Sync),
    pub memory: &'a memory::Memory,
}

pub type Notified = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How far a scan has come: codes examined, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanProgress {
    pub examined: u64,
    pub total: Option<u64>,
}

/// How long a client may keep the tool list: a day (it never changes while the process runs).
const TOOLS_TTL_MS: u64 = 24 * 3600 * 1000;

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

    /// A server whose calls in flight give up once `ending` is cancelled.
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
        Self {
            inner: Arc::new(State {
                instructions: instructions(&projects, &backend),
                backend,
                ending,
                projects,
                tools: TOOLS.iter().map(|t| (t.definition)()).collect(),
                memory: memory::Memory::default(),
            }),
        }
    }

    pub fn tools(&self) -> &[Tool] {
        &self.inner.tools
    }

    /// Runs one tool; `None` when there is no tool of that name.
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

    /// [`VoucherServer::call`], with `on_progress` told how far a scan has come.
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
    token: Option<ProgressToken>,
    peer: Peer<RoleServer>,
    scanned: Mutex<Option<ScanProgress>>,
    /// The progress last sent: MCP requires progress to increase, so a wait told after a page
    /// says a little more than the page did.
    last: Mutex<Option<f64>>,
}

impl Progress {
    fn retry(&self, notice: &RetryNotice) {
        let (progress, total) = match *self.scanned.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(scan) => (scan.examined as f64, scan.total.map(|t| t as f64)),
            None => (
                f64::from(notice.retry),
                Some(f64::from(notice.max_retries + 1)),
            ),
        };
        tokio::spawn(self.notice(progress, total, words::retry_notice(notice)));
    }

    fn scan(&self, scan: ScanProgress) -> Notified {
        *self.scanned.lock().unwrap_or_else(|p| p.into_inner()) = Some(scan);
        let total = scan.total.map(|t| t as f64);
        self.notice(scan.examined as f64, total, words::scan_progress(&scan))
    }

    fn notice(&self, progress: f64, total: Option<f64>, message: String) -> Notified {
        let Some(token) = self.token.clone() else {
            return Box::pin(std::future::ready(()));
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let progress = last
            .filter(|&before| progress <= before)
            .map_or(progress, |b| b + 0.001);
        *last = Some(progress);
        drop(last);
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
        let server = Implementation::new(crate::SERVER_NAME, crate::SERVER_VERSION);
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(server)
            .with_instructions(self.inner.instructions.clone())
    }

    /// Answers `initialize` without touching the session's negotiated state: a repeated
    /// `initialize` on a live session changes nothing for the requests after it.
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

    /// Under 2026-07-28, the list says it may be cached: the tools never change while running.
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
        if version.is_some_and(|v| v >= ProtocolVersion::V_2026_07_28) {
            return Ok(result
                .with_ttl_ms(TOOLS_TTL_MS)
                .with_cache_scope(CacheScope::Public));
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
        let method = request.method.as_str();
        Err(match method {
            "tools/call" => McpError::invalid_params(
                "tools/call needs params {name: string, arguments: object}",
                None,
            ),
            "tools/list" | "initialize" | "ping" => McpError::invalid_params(
                format!("{method} was sent with params of the wrong shape"),
                None,
            ),
            _ => McpError::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
                None,
            ),
        })
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
        // A name from the client is logged escaped and short: a newline or
        // an escape sequence in it must not forge a log line.
        let tool = shown_name(&request.name);
        let progress = Progress {
            token: context.meta.get_progress_token(),
            peer: context.peer.clone(),
            scanned: Mutex::new(None),
            last: Mutex::new(None),
        };
        let on_retry = |notice: &RetryNotice| progress.retry(notice);
        let on_progress = |scan: ScanProgress| progress.scan(scan);
        let outcome = tokio::select! {
            outcome = self.call_reporting(&request.name, request.arguments, &on_retry, &on_progress) => outcome,
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
            let names = tool_names().join(", ");
            let message = format!("unknown tool {tool}; this server has {names}");
            return Err(McpError::invalid_params(message, None));
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
