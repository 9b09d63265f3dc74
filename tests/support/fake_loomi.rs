//! A fake Loomi Connect on loopback: an rmcp Streamable HTTP server with the
//! seed's voucher tools behind Bearer auth (401 with the RFC 9728 challenge),
//! and on the same origin a small authorization server: protected resource
//! and authorization server metadata, `/register` (RFC 7591), `/authorize`
//! that approves at once by redirecting to the callback (or denies), and
//! `/token` for both grants with PKCE, `redirect_uri` and `resource`
//! checked. Refresh tokens rotate. Faults can be injected: a 429, a
//! rate-limit tool error, a dropped session, an error result, `success:
//! false`, a missing field, a JSON-RPC error, revoked tokens.
//!
//! Tests play the browser with [`FakeLoomi::approve`], which follows an
//! authorization URL to the callback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Form, Query, State};
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{json, Value};

/// The project and pool the fake knows.
pub const LOOMI_PROJECT: &str = "proj-1";
pub const LOOMI_POOL: &str = "p1";

/// How a tool call is answered, once set.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolFault {
    None,
    /// `isError: true` with this text.
    IsError(String),
    /// `success: false` with this error.
    SuccessFalse(String),
    /// A pool without `total`.
    MissingField,
    /// A JSON-RPC error.
    JsonRpc(String),
}

/// One tool call as the fake saw it.
#[derive(Clone, Debug)]
pub struct SeenCall {
    pub at: Instant,
    pub name: String,
    pub arguments: Value,
}

#[derive(Default)]
pub struct LoomiState {
    pub base: String,
    /// Valid access tokens, with their expiry.
    pub access: HashMap<String, Instant>,
    /// Valid refresh tokens.
    pub refresh: HashMap<String, String>,
    codes: HashMap<String, (String, String, String, String)>,
    pub clients: HashMap<String, Vec<String>>,
    next: u64,
    pub expires_in: u64,
    pub deny: bool,
    pub status_declared: bool,
    pub search_only: bool,
    /// The catalog Bloomreach documents (October 2026): organizations
    /// before projects, `search_voucher_pools` paged (pools named by
    /// `_id`, the id argument `voucher_pool_id`), `list_voucher_codes` with
    /// `voucher_pool_id` and no `status`.
    pub documented: bool,
    /// How many pools the documented `search_voucher_pools` lists.
    pub pool_count: usize,
    /// Organizations beyond the documented two, for bounds.
    pub extra_organizations: usize,
    /// The documented search answers at most this many pools a page,
    /// whatever the count asked, and counts this many more than it has.
    pub search_page_cap: Option<usize>,
    pub search_overcount: usize,
    /// Rate-limit notices give the window (`(1 per 10 second)`) instead
    /// of a "Retry after".
    pub window_wording: bool,
    pub tool_rate_limits: u32,
    pub http_429s: u32,
    pub retry_after: u64,
    pub drop_sessions: u32,
    pub fault: Option<ToolFault>,
    /// Every MCP request is redirected here (another origin).
    pub redirect_to: Option<String>,
    /// Each tool call answers after this long.
    pub tool_delay: Duration,
    /// When set, `list_voucher_codes` pages through these codes (honouring
    /// `skip`, `count` and `status`) instead of its three.
    pub paged_codes: Option<Vec<Value>>,
    // What was seen.
    pub mcp_requests: u64,
    pub unauthorized: u64,
    pub calls: Vec<SeenCall>,
    pub token_forms: Vec<HashMap<String, String>>,
    pub authorize_queries: Vec<HashMap<String, String>>,
    pub registrations: Vec<Value>,
    pub bearer_seen: Vec<String>,
}

impl LoomiState {
    /// Fresh tokens for `client`, as the token endpoint gives them.
    pub fn mint(&mut self, client: &str) -> Value {
        self.next += 1;
        let access = format!("loomi-at-{}-{}", self.next, fastrand::u64(..));
        let refresh = format!("loomi-rt-{}-{}", self.next, fastrand::u64(..));
        self.access.insert(
            access.clone(),
            Instant::now() + Duration::from_secs(self.expires_in),
        );
        self.refresh.insert(refresh.clone(), client.to_owned());
        json!({"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in, "refresh_token": refresh})
    }

    /// Every token stops working (a revoked login).
    pub fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }

    /// Every access token expires now (refresh tokens stay valid).
    pub fn expire_access(&mut self) {
        for at in self.access.values_mut() {
            *at = Instant::now() - Duration::from_secs(1);
        }
    }
}

pub type Shared = Arc<Mutex<LoomiState>>;

pub struct FakeLoomi {
    pub addr: SocketAddr,
    pub state: Shared,
}

impl FakeLoomi {
    pub async fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(LoomiState {
            expires_in: 3600,
            status_declared: true,
            retry_after: 1,
            pool_count: 3,
            ..LoomiState::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        state.lock().unwrap().base = format!("http://{addr}");
        let handler_state = Arc::clone(&state);
        let mcp = StreamableHttpService::new(
            move || {
                Ok(FakeTools {
                    state: Arc::clone(&handler_state),
                })
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_json_response(true),
        );
        let guarded =
            Router::new()
                .nest_service("/mcp", mcp)
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&state),
                    bearer,
                ));
        let app = Router::new()
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(resource_metadata),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(server_metadata),
            )
            .route("/register", post(register))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(Arc::clone(&state))
            .merge(guarded);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut LoomiState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Plays the browser: opens `authorization_url`, follows the fake's
    /// redirect to the callback, and returns the callback page's status
    /// and text.
    /// The address the browser is sent to after the fake approves, without
    /// going there (the browser of a login made from a remote shell).
    pub async fn redirect_of(authorization_url: &str) -> String {
        let http = crate::support::http_client()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let first = http.get(authorization_url).send().await.unwrap();
        assert_eq!(first.status(), 302, "the fake approves with a redirect");
        first.headers()["location"].to_str().unwrap().to_owned()
    }

    pub async fn approve(authorization_url: &str) -> (u16, String) {
        let location = Self::redirect_of(authorization_url).await;
        let http = crate::support::http_client().no_proxy().build().unwrap();
        let page = http.get(&location).send().await.unwrap();
        let status = page.status().as_u16();
        (status, page.text().await.unwrap())
    }
}

async fn bearer(State(state): State<Shared>, request: Request<Body>, next: Next) -> Response {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let has_session = request.headers().contains_key("mcp-session-id");
    {
        let mut s = state.lock().unwrap();
        s.mcp_requests += 1;
        if let Some(t) = &presented {
            s.bearer_seen.push(t.clone());
        }
        let valid = presented
            .as_ref()
            .and_then(|t| s.access.get(t))
            .is_some_and(|at| *at > Instant::now());
        if !valid {
            s.unauthorized += 1;
            let challenge = format!(
                "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"{}",
                s.base,
                if presented.is_some() {
                    ", error=\"invalid_token\""
                } else {
                    ""
                }
            );
            return (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", challenge)],
                "unauthorized",
            )
                .into_response();
        }
        if let Some(target) = &s.redirect_to {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", target.clone())],
                "moved",
            )
                .into_response();
        }
        if has_session && s.drop_sessions > 0 {
            s.drop_sessions -= 1;
            return (StatusCode::NOT_FOUND, "session not found").into_response();
        }
        // A tool call: in a session (2025-11-25), or named by its
        // `Mcp-Method` header (2026-07-28, no session).
        let tool_call = request
            .headers()
            .get("mcp-method")
            .is_some_and(|m| m.as_bytes() == b"tools/call");
        if (has_session || tool_call) && s.http_429s > 0 {
            s.http_429s -= 1;
            let wait = s.retry_after.to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", wait)],
                "slow down",
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn resource_metadata(State(state): State<Shared>) -> Json<Value> {
    let base = state.lock().unwrap().base.clone();
    Json(
        json!({"resource": format!("{base}/mcp"), "authorization_servers": [base], "scopes_supported": ["vouchers:read"]}),
    )
}

async fn server_metadata(State(state): State<Shared>) -> Json<Value> {
    let base = state.lock().unwrap().base.clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn register(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut s = state.lock().unwrap();
    s.registrations.push(body.clone());
    s.next += 1;
    let id = format!("client-{}", s.next);
    let redirects = body["redirect_uris"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    s.clients.insert(id.clone(), redirects);
    (
        StatusCode::CREATED,
        // RFC 7591 3.2.1: the registered metadata, echoed.
        Json(json!({
            "client_id": id,
            "token_endpoint_auth_method": "none",
            "redirect_uris": body["redirect_uris"],
            "grant_types": body["grant_types"],
            "client_name": body["client_name"],
        })),
    )
        .into_response()
}

async fn authorize(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    s.authorize_queries.push(q.clone());
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let state_param = q.get("state").cloned().unwrap_or_default();
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("resource") == Some(&format!("{}/mcp", s.base))
        && redirect.starts_with("http://127.0.0.1:");
    let location = if s.deny || !ok {
        format!(
            "{redirect}?error=access_denied&error_description=The+user+said+no&state={state_param}"
        )
    } else {
        s.next += 1;
        let code = format!("code-{}", s.next);
        s.codes.insert(
            code.clone(),
            (
                q.get("client_id").cloned().unwrap_or_default(),
                q.get("code_challenge").cloned().unwrap_or_default(),
                redirect.clone(),
                q.get("resource").cloned().unwrap_or_default(),
            ),
        );
        format!("{redirect}?code={code}&state={state_param}")
    };
    (StatusCode::FOUND, [("location", location)]).into_response()
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    s.token_forms.push(form.clone());
    let refuse = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    let resource = format!("{}/mcp", s.base);
    if form.get("resource") != Some(&resource) {
        return refuse("invalid_target", "resource is not this server");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((client, challenge, redirect, _)) =
                form.get("code").and_then(|c| s.codes.remove(c))
            else {
                return refuse("invalid_grant", "unknown code");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
            if computed != challenge {
                return refuse("invalid_grant", "PKCE verification failed");
            }
            if form.get("redirect_uri") != Some(&redirect) || form.get("client_id") != Some(&client)
            {
                return refuse("invalid_grant", "client or redirect differs");
            }
            Json(s.mint(&client)).into_response()
        }
        Some("refresh_token") => {
            let Some(client) = form.get("refresh_token").and_then(|r| s.refresh.remove(r)) else {
                return refuse("invalid_grant", "refresh token revoked");
            };
            Json(s.mint(&client)).into_response()
        }
        _ => refuse("unsupported_grant_type", "no"),
    }
}

/// The tools behind the fake's MCP endpoint.
#[derive(Clone)]
struct FakeTools {
    state: Shared,
}

fn tool(name: &str, properties: Value, required: &[&str]) -> Tool {
    serde_json::from_value(json!({
        "name": name,
        "description": format!("fake {name}"),
        "inputSchema": {"type": "object", "properties": properties, "required": required},
    }))
    .unwrap()
}

fn result(value: Value) -> CallToolResult {
    serde_json::from_value(value).unwrap()
}

fn envelope(data: Value, extra: Value) -> CallToolResult {
    let mut env = json!({"success": true, "data": data, "error": null});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            env[k] = v;
        }
    }
    result(json!({
        "content": [{"type": "text", "text": env.to_string()}],
        "structuredContent": env,
    }))
}

fn pools() -> Value {
    json!([
        {"id": LOOMI_POOL, "name": "SUMMER20", "total": 1000, "available": 742, "created": 1717000000},
        {"id": "p2", "name": "WINTER", "total": 10, "available": 0}
    ])
}

fn codes() -> Value {
    json!([
        {"code": "SUM-0001", "status": "assigned", "assigned_time": 1718000000.5, "redeemed_time": null},
        {"code": "SUM-0002", "status": "available", "assigned_time": null, "redeemed_time": null},
        {"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000, "redeemed_time": 1718086400.25}
    ])
}

impl ServerHandler for FakeTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let s = self.state.lock().unwrap();
        if s.documented {
            return Ok(ListToolsResult::with_all_items(documented_tools()));
        }
        let project = json!({"type": "string"});
        let mut codes_props = json!({"project_id": project, "pool_id": project, "skip": {"type": "integer"}, "count": {"type": "integer"}});
        if s.status_declared {
            codes_props["status"] = json!({"type": "string"});
        }
        let mut tools = vec![
            tool("list_projects", json!({}), &[]),
            tool(
                "list_voucher_codes",
                codes_props,
                &["project_id", "pool_id"],
            ),
            tool("send_campaign", json!({}), &[]),
        ];
        if s.search_only {
            tools.push(tool(
                "search_voucher_pools",
                json!({"project_id": project, "id": project}),
                &["project_id"],
            ));
        } else {
            tools.push(tool(
                "list_voucher_pools",
                json!({"project_id": project}),
                &["project_id"],
            ));
            tools.push(tool(
                "get_voucher_pool",
                json!({"project_id": project, "pool_id": project}),
                &["project_id", "pool_id"],
            ));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        let name = request.name.to_string();
        let fault = {
            let mut s = self.state.lock().unwrap();
            s.calls.push(SeenCall {
                at: Instant::now(),
                name: name.clone(),
                arguments: arguments.clone(),
            });
            if s.tool_rate_limits > 0 {
                s.tool_rate_limits -= 1;
                let wait = s.retry_after;
                let text = if s.window_wording {
                    format!("Too many requests (1 per {wait} second)")
                } else {
                    format!("Too many requests. Retry after ~{wait} second(s).")
                };
                return Ok(result(json!({
                    "isError": true,
                    "content": [{"type": "text", "text": text}]
                }))
                .into());
            }
            let documented = (s.documented && s.fault.is_none()).then(|| {
                documented_call(
                    &name,
                    &arguments,
                    (s.pool_count, s.search_page_cap, s.search_overcount),
                    s.extra_organizations,
                    s.paged_codes.as_deref(),
                )
            });
            (
                s.fault.clone().unwrap_or(ToolFault::None),
                s.tool_delay,
                s.paged_codes.clone(),
                s.status_declared,
                documented,
            )
        };
        let (fault, delay, paged_codes, status_declared, documented) = fault;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(answer) = documented {
            return Ok(answer.into());
        }
        match fault {
            ToolFault::IsError(text) => {
                return Ok(result(
                    json!({"isError": true, "content": [{"type": "text", "text": text}]}),
                )
                .into())
            }
            ToolFault::SuccessFalse(text) => {
                let env = json!({"success": false, "data": [], "error": text});
                return Ok(result(json!({"content": [{"type": "text", "text": env.to_string()}], "structuredContent": env})).into());
            }
            ToolFault::JsonRpc(text) => return Err(McpError::internal_error(text, None)),
            ToolFault::MissingField => {
                return Ok(envelope(
                    json!([{"id": "p1", "name": "SUMMER20", "available": 1}]),
                    json!({}),
                )
                .into())
            }
            ToolFault::None => {}
        }
        let arg = |k: &str| arguments.get(k).cloned().unwrap_or(Value::Null);
        let answer = match name.as_str() {
            "list_projects" => envelope(
                json!([{"project_id": LOOMI_PROJECT, "name": "Main store"}, {"id": "proj-2", "name": "Outlet"}]),
                json!({}),
            ),
            "list_voucher_pools" => envelope(pools(), json!({})),
            "search_voucher_pools" if arg("id").is_null() => envelope(pools(), json!({})),
            "search_voucher_pools" => {
                let found: Vec<Value> = pools()
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["id"] == arg("id"))
                    .map(|p| {
                        let mut p = p.clone();
                        p["used_by"] = json!([{"type": "campaign", "id": "c9"}]);
                        p
                    })
                    .collect();
                envelope(Value::Array(found), json!({}))
            }
            "get_voucher_pool" => {
                let mut pool = pools()[0].clone();
                pool["company_id"] = json!(LOOMI_PROJECT);
                pool["used_by"] = json!([{"type": "campaign", "id": "c9"}]);
                envelope(pool, json!({}))
            }
            "list_voucher_codes" if paged_codes.is_some() => {
                let status = arg("status");
                let kept: Vec<&Value> = paged_codes
                    .iter()
                    .flatten()
                    .filter(|c| status.is_null() || c["status"] == status)
                    .collect();
                let skip = arg("skip").as_u64().unwrap_or(0) as usize;
                let count = arg("count").as_u64().unwrap_or(20) as usize;
                let page: Vec<Value> = kept
                    .iter()
                    .skip(skip)
                    .take(count)
                    .map(|c| (*c).clone())
                    .collect();
                envelope(
                    Value::Array(page),
                    json!({"matched": kept.len(), "matched_limited": false, "skip": skip, "limit": count}),
                )
            }
            "list_voucher_codes" => {
                let status = arg("status");
                let all = codes();
                let kept: Vec<Value> = all
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| status.is_null() || c["status"] == status)
                    .cloned()
                    .collect();
                let matched = match status.as_str() {
                    // Without a status argument, the three codes are all.
                    _ if !status_declared => 3,
                    Some("assigned") => 253,
                    Some("redeemed") => 120,
                    Some(_) => 742,
                    None => 1000,
                };
                let count = arg("count").as_u64().unwrap_or(20) as usize;
                let page: Vec<Value> = kept.into_iter().take(count).collect();
                envelope(
                    Value::Array(page),
                    json!({"matched": matched, "matched_limited": false, "skip": arg("skip"), "limit": arg("count")}),
                )
            }
            _ => result(
                json!({"isError": true, "content": [{"type": "text", "text": "unknown tool"}]}),
            ),
        };
        Ok(answer.into())
    }
}

/// The documented catalog's tools.
fn documented_tools() -> Vec<Tool> {
    let text = json!({"type": "string"});
    vec![
        tool("list_cloud_organizations", json!({}), &[]),
        tool(
            "list_projects",
            json!({"cloud_organization_id": text, "workspace_id": text}),
            &["cloud_organization_id"],
        ),
        tool(
            "search_voucher_pools",
            json!({"project_id": text, "voucher_pool_id": text,
                   "skip": {"type": "integer", "minimum": 0},
                   "count": {"type": "integer", "minimum": 1, "maximum": 50}}),
            &["project_id"],
        ),
        tool(
            "list_voucher_codes",
            json!({"project_id": text, "voucher_pool_id": text,
                   "skip": {"type": "integer"}, "count": {"type": "integer", "maximum": 1000}}),
            &["project_id", "voucher_pool_id"],
        ),
        tool(
            "create_voucher_pool",
            json!({"project_id": text}),
            &["project_id"],
        ),
    ]
}

/// The documented catalog's pools: the first is SUMMER20 (`p1`).
pub fn documented_pools(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| match i {
            0 => json!({"_id": LOOMI_POOL, "name": "SUMMER20", "total": 1000, "available": 742}),
            _ => json!({"_id": format!("pool-{i}"), "name": format!("POOL{i}"), "total": 10, "available": i % 10}),
        })
        .collect()
}

/// A call to the documented catalog, answered as Loomi documents it.
fn documented_call(
    name: &str,
    arguments: &Value,
    (pool_count, page_cap, overcount): (usize, Option<usize>, usize),
    extra_organizations: usize,
    paged: Option<&[Value]>,
) -> CallToolResult {
    let arg = |k: &str| arguments.get(k).cloned().unwrap_or(Value::Null);
    let refuse = |text: String| {
        result(json!({"isError": true, "content": [{"type": "text", "text": text}]}))
    };
    let project = |id: &str, name: &str, workspace: &str| json!({"id": id, "name": name, "category": "ecommerce", "workspace_id": format!("w-{workspace}"), "workspace_name": workspace});
    match name {
        "list_cloud_organizations" => {
            let mut organizations = vec![
                json!({"id": "org-1", "name": "Brand A", "admin_panel_url": "https://example.invalid/a", "enabled_modules": ["vouchers"]}),
                json!({"id": "org-2", "name": "Brand B", "admin_panel_url": "https://example.invalid/b", "enabled_modules": []}),
            ];
            organizations.extend(
                (0..extra_organizations)
                    .map(|i| json!({"id": format!("org-x{i}"), "name": format!("Extra {i}")})),
            );
            envelope(Value::Array(organizations), json!({}))
        }
        "list_projects" => match arg("cloud_organization_id").as_str() {
            Some("org-1") => envelope(
                json!([
                    project(LOOMI_PROJECT, "Main store", "EU"),
                    project("proj-2", "Outlet", "EU")
                ]),
                json!({}),
            ),
            Some("org-2") => envelope(
                json!([
                    project("proj-3", "Main store", "US"),
                    project("proj-2", "Outlet", "EU")
                ]),
                json!({}),
            ),
            _ => refuse("cloud_organization_id is required".into()),
        },
        "search_voucher_pools" => {
            if arg("project_id") != json!(LOOMI_PROJECT) {
                return envelope(json!([]), json!({"matched": 0}));
            }
            let pools = documented_pools(pool_count);
            if let Some(id) = arg("voucher_pool_id").as_str() {
                let found: Vec<Value> = pools.into_iter().filter(|p| p["_id"] == id).collect();
                return envelope(Value::Array(found), json!({}));
            }
            let skip = arg("skip").as_u64().unwrap_or(0) as usize;
            let count = arg("count").as_u64().unwrap_or(10) as usize;
            if count > 50 {
                return refuse("count must be at most 50".into());
            }
            let count = page_cap.map_or(count, |cap| count.min(cap));
            let page: Vec<Value> = pools.iter().skip(skip).take(count).cloned().collect();
            envelope(
                Value::Array(page),
                json!({"matched": pools.len() + overcount}),
            )
        }
        "list_voucher_codes" => {
            if arguments.get("status").is_some() {
                return refuse("unknown argument status".into());
            }
            if arg("voucher_pool_id").is_null() {
                return refuse("voucher_pool_id is required".into());
            }
            let all: Vec<Value> = match paged {
                Some(codes) => codes.to_vec(),
                None => codes().as_array().unwrap().clone(),
            };
            let skip = arg("skip").as_u64().unwrap_or(0) as usize;
            let count = arg("count").as_u64().unwrap_or(20) as usize;
            let page: Vec<Value> = all.iter().skip(skip).take(count).cloned().collect();
            envelope(
                Value::Array(page),
                json!({"matched": all.len(), "matched_limited": false, "skip": skip, "limit": count}),
            )
        }
        _ => refuse(format!("unknown tool {name}")),
    }
}

impl FakeLoomi {
    /// Writes a login for this fake to `path`, as `login` would leave it,
    /// with fresh tokens the fake accepts (for the bench and for tests that
    /// need no login flow).
    pub fn issue_login(&self, path: &std::path::Path) {
        use bloomreach_vouchers_mcp::backend::loomi::credentials::{unix, StoredLogin, FORMAT};
        use bloomreach_vouchers_mcp::backend::loomi::CredentialsFile;
        let (tokens, base) = self.with(|s| {
            s.clients.insert("client-issued".into(), vec![]);
            (s.mint("client-issued"), s.base.clone())
        });
        let now = unix(std::time::SystemTime::now());
        let login: StoredLogin = serde_json::from_value(json!({
            "format": FORMAT,
            "mcp_url": self.mcp_url(),
            "metadata": {
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "registration_endpoint": format!("{base}/register"),
                "code_challenge_methods_supported": ["S256"]
            },
            "redirect_uri": "http://127.0.0.1:1/callback",
            "credentials": {
                "client_id": "client-issued",
                "token_response": tokens,
                "granted_scopes": [],
                "token_received_at": now,
                "issuer": base
            }
        }))
        .expect("a stored login");
        CredentialsFile::new(path.to_owned(), false)
            .save(&login)
            .expect("write the login");
    }
}
