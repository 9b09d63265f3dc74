//! One MCP session with Loomi Connect, on rmcp's client and its Streamable HTTP transport:
//! `server/discover` where Loomi speaks 2026-07-28, else `initialize`; JSON or event-stream
//! answers; the session id; a session Loomi dropped (HTTP 404) opened anew; bounded answers.
//!
//! [`Bearer`] puts the current access token on every request to the Loomi URL (the backend swaps
//! it after a refresh) and follows no redirect to another origin. What an exchange came to, when it
//! is not a result, comes back as a [`Fault`] for the backend to act on: a 401 (refresh), a 429
//! (wait), a redirect (never followed), and so on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use reqwest::Url;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientJsonRpcMessage,
    ClientRequest, Implementation, ListToolsRequest, PaginatedRequestParams, ProtocolVersion,
    ServerResult, Tool,
};
use rmcp::service::{PeerRequestOptions, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpClient,
    StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientServiceExt, RoleClient};
use serde_json::{Map, Value};

use crate::backend::network::failure::transport_failure;
use crate::backend::rest::parse_retry_after;
use crate::backend::{Secret, TransportFailure};

/// The largest answer read from Loomi (a page of 1,000 codes is about 150 KB): bounds what one
/// answer can cost in memory.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The most tools read from Loomi's `tools/list`, over all its pages.
pub const MAX_TOOLS: usize = 500;
/// The most `tools/list` pages read.
const MAX_TOOL_PAGES: usize = 10;

/// What an exchange with Loomi came to, when it is not a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 401; the `WWW-Authenticate` value.
    Unauthorized { challenge: Option<String> },
    /// HTTP 403 asking for more scopes.
    InsufficientScope { scope: Option<String> },
    /// The session is gone and could not be opened anew.
    SessionGone,
    /// HTTP 429, with the wait it asked for.
    RateLimited { retry_after: Option<Duration> },
    /// Another status.
    Status { status: u16, excerpt: String },
    /// A redirect, not followed.
    Redirect { location: String },
    /// A JSON-RPC error answer.
    JsonRpc { code: i64, message: String },
    /// The answer could not be read as JSON-RPC.
    Unreadable { detail: String, excerpt: String },
    /// No answer within the timeout.
    Timeout,
    /// The exchange broke.
    Transport {
        failure: TransportFailure,
        cause: Option<String>,
    },
    /// The answer is larger than [`MAX_ANSWER_BYTES`].
    TooLarge,
    /// The HTTP client could not be made, so nothing was sent.
    Setup { detail: String },
}

/// A redirect to another origin, refused (its `Location`).
#[derive(Debug)]
struct OtherOrigin(String);

impl std::fmt::Display for OtherOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect to another origin: {}", self.0)
    }
}

impl std::error::Error for OtherOrigin {}

/// A reqwest client for Loomi from `builder`: redirects followed within the Loomi origin only.
pub fn http_client(
    builder: reqwest::ClientBuilder,
    origin: &Url,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    builder
        .redirect(crate::backend::network::within_origin(origin, |a| {
            let to = a.url().to_string();
            a.error(OtherOrigin(to))
        }))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build()
        .map_err(|e| crate::backend::network::failure::innermost(&e))
}

/// The HTTP face of the session: Loomi's client and the token to send.
#[derive(Clone)]
pub struct Bearer {
    http: reqwest::Client,
    token: Arc<RwLock<Secret>>,
}

impl Bearer {
    pub fn new(http: reqwest::Client, token: Secret) -> Self {
        Self {
            http,
            token: Arc::new(RwLock::new(token)),
        }
    }

    /// Sends `token` from the next request on.
    pub fn set(&self, token: Secret) {
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    fn current(&self) -> Option<String> {
        let token = self.token.read().unwrap_or_else(|e| e.into_inner());
        let token = token.expose();
        // A token that cannot be a header value is not sent at all.
        let usable = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        usable.then(|| token.to_owned())
    }
}

type HttpError = StreamableHttpError<reqwest::Error>;

impl StreamableHttpClient for Bearer {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.post_message_with_response_limits(uri, message, session_id, None, headers, limits())
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.http
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                self.current(),
                headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        self.http
            .delete_session(uri, session_id, self.current(), headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>, HttpError> {
        self.http
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                self.current(),
                headers,
                MAX_ANSWER_BYTES,
            )
            .await
    }
}

fn limits() -> StreamableHttpResponseLimits {
    let mut limits = StreamableHttpResponseLimits::default();
    limits.max_sse_event_size = MAX_ANSWER_BYTES;
    limits.max_json_response_size = MAX_ANSWER_BYTES;
    limits.max_error_response_size = MAX_ERROR_BODY;
    limits
}

/// The most of an HTTP error body the MCP client reads (its words are quoted from it).
pub const MAX_ERROR_BODY: usize = 4096;

/// An open session: the running client, its token, and what Loomi is.
pub struct Session {
    pub service: RunningService<RoleClient, ClientConfig>,
    pub bearer: Bearer,
    pub timeout: Duration,
}

impl Session {
    /// Opens a session at `url` with `bearer`'s token.
    pub async fn open(url: &Url, bearer: Bearer, timeout: Duration) -> Result<Self, Fault> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
        config.max_json_response_size = MAX_ANSWER_BYTES;
        config.max_sse_event_size = MAX_ANSWER_BYTES;
        config.max_error_response_size = MAX_ERROR_BODY;
        config.reinit_on_expired_session = true;
        let transport = StreamableHttpClientTransport::with_client(bearer.clone(), config);
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(crate::SERVER_NAME, crate::SERVER_VERSION),
        );
        let lifecycle = rmcp::service::ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        let opening = info.serve_with_lifecycle(transport, lifecycle);
        let service = tokio::time::timeout(timeout, opening)
            .await
            .map_err(|_| Fault::Timeout)?
            .map_err(|e| init_fault(&e))?;
        Ok(Self {
            service,
            bearer,
            timeout,
        })
    }

    async fn request(&self, request: ClientRequest) -> Result<ServerResult, Fault> {
        let handle = self
            .service
            .send_request_with_option(request, PeerRequestOptions::with_timeout(self.timeout))
            .await
            .map_err(|e| fault(&e))?;
        // Dropped before its answer (the caller cancelled): cancelled upstream.
        let mut guard = CancelOnDrop(Some((handle.peer.clone(), handle.id.clone())));
        let result = handle.await_response().await;
        guard.0 = None;
        result.map_err(|e| fault(&e))
    }

    /// Loomi's tools, page after page (bounded).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, Fault> {
        let mut tools = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_TOOL_PAGES {
            let params = PaginatedRequestParams::default().with_cursor(cursor);
            let request = ClientRequest::ListToolsRequest(ListToolsRequest::with_param(params));
            let ServerResult::ListToolsResult(page) = self.request(request).await? else {
                return Err(unreadable("tools/list answered something else"));
            };
            tools.extend(page.tools);
            tools.truncate(MAX_TOOLS);
            cursor = page.next_cursor;
            if cursor.is_none() || tools.len() >= MAX_TOOLS {
                break;
            }
        }
        Ok(tools)
    }

    /// Calls the tool `name` with `args`; the result as JSON.
    pub async fn call_tool(&self, name: &str, args: Map<String, Value>) -> Result<Value, Fault> {
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        match self.request(request).await? {
            ServerResult::CallToolResult(r) => serde_json::to_value(r).map_err(unreadable),
            _ => Err(unreadable("tools/call answered something else")),
        }
    }

    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

struct CancelOnDrop(Option<(rmcp::Peer<RoleClient>, rmcp::model::RequestId)>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some((peer, id)) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let params = rmcp::model::CancelledNotificationParam::new(
                        Some(id),
                        Some("cancelled by the client".to_owned()),
                    );
                    let _ = peer.notify_cancelled(params).await;
                });
            }
        }
    }
}

fn init_fault(error: &rmcp::service::ClientInitializeError) -> Fault {
    use rmcp::service::ClientInitializeError as E;
    match error {
        E::TransportError { error, .. } => transport_fault(error.error.as_ref()),
        E::JsonRpcError(e) => json_rpc(e),
        other => unreadable(other),
    }
}

/// What a failed request came to.
pub fn fault(error: &ServiceError) -> Fault {
    match error {
        ServiceError::McpError(e) => json_rpc(e),
        ServiceError::Timeout { .. } => Fault::Timeout,
        ServiceError::TransportSend(e) => transport_fault(e.error.as_ref()),
        ServiceError::TransportClosed | ServiceError::Cancelled { .. } => Fault::SessionGone,
        other => unreadable(other),
    }
}

fn json_rpc(e: &rmcp::ErrorData) -> Fault {
    Fault::JsonRpc {
        code: i64::from(e.code.0),
        message: e.message.to_string(),
    }
}

fn unreadable(detail: impl ToString) -> Fault {
    Fault::Unreadable {
        detail: detail.to_string(),
        excerpt: String::new(),
    }
}

/// An error and its sources, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

fn transport_fault(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Fault {
    let found = chain(error).find_map(http_fault);
    found.unwrap_or_else(|| unreadable(error))
}

fn http_fault(e: &(dyn std::error::Error + 'static)) -> Option<Fault> {
    if let Some(a) = e.downcast_ref::<AuthRequiredError>() {
        return Some(Fault::Unauthorized {
            challenge: Some(a.www_authenticate_header.clone()),
        });
    }
    if let Some(s) = e.downcast_ref::<InsufficientScopeError>() {
        return Some(Fault::InsufficientScope {
            scope: s.required_scope.clone(),
        });
    }
    if let Some(s) = e.downcast_ref::<HttpStatusError>() {
        return Some(status_fault(s));
    }
    if let Some(r) = e.downcast_ref::<OtherOrigin>() {
        return Some(Fault::Redirect {
            location: r.0.clone(),
        });
    }
    if let Some(e) = e.downcast_ref::<reqwest::Error>() {
        return Some(reqwest_fault(e));
    }
    // The errors the transport wraps are read as if met on their own.
    match e.downcast_ref::<HttpError>()? {
        StreamableHttpError::AuthRequired(a) => http_fault(a),
        StreamableHttpError::InsufficientScope(s) => http_fault(s),
        StreamableHttpError::HttpStatus(s) => http_fault(s),
        StreamableHttpError::Client(e) => http_fault(e),
        StreamableHttpError::ResponseBodyTooLarge { .. } => Some(Fault::TooLarge),
        StreamableHttpError::SessionExpired
        | StreamableHttpError::SessionRecoveryTimeout
        | StreamableHttpError::TransportChannelClosed => Some(Fault::SessionGone),
        StreamableHttpError::UnexpectedServerResponse(text) => Some(unexpected(text)),
        other => Some(unreadable(other)),
    }
}

fn status_fault(s: &HttpStatusError) -> Fault {
    if s.status == 429 {
        let wait = s.retry_after.as_deref();
        let retry_after = wait.and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        return Fault::RateLimited { retry_after };
    }
    Fault::Status {
        status: s.status,
        excerpt: String::new(),
    }
}

/// rmcp words a refused answer as `HTTP <status>: <body>`; the status is kept as a fact.
fn unexpected(text: &str) -> Fault {
    let rest = text.trim_start_matches("HTTP ");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u16>() {
        Ok(status) if (100..600).contains(&status) && digits.len() == 3 => Fault::Status {
            status,
            excerpt: rest[3..].trim_start_matches([':', ' ']).to_owned(),
        },
        _ => Fault::Unreadable {
            detail: "the answer is not JSON-RPC".to_owned(),
            excerpt: text.to_string(),
        },
    }
}

fn reqwest_fault(e: &reqwest::Error) -> Fault {
    if let Some(r) = chain(e).find_map(|e| e.downcast_ref::<OtherOrigin>()) {
        return Fault::Redirect {
            location: r.0.clone(),
        };
    }
    if e.is_timeout() {
        return Fault::Timeout;
    }
    let (failure, cause) = transport_failure(e);
    Fault::Transport { failure, cause }
}
