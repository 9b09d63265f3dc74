//! Loomi Connect, Bloomreach's hosted MCP server, as a backend: the voucher
//! tools of the seed served from live data behind the user's Bloomreach
//! login.
//!
//! Nothing happens at start. The first call reads the stored login
//! ([`credentials`]), refreshes it when it has expired, opens the MCP
//! session ([`session`]) and lists Loomi's tools once; later calls reuse
//! both. Each tool call is paced to Loomi's rate limit ([`pacing`]), a 429
//! or a "Too many requests" tool error is waited out, a 401 is answered by
//! one refresh, a dropped session is opened anew once. Without a usable
//! login the call starts one ([`oauth`], [`callback`]) and fails with the
//! authorization URL; the next call after the callback works.

pub mod callback;
pub mod credentials;
pub mod oauth;
pub mod pacing;
pub mod session;
mod tools;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub use credentials::{CredentialsFile, StoreProblem, StoredLogin};
pub use oauth::OAuthProblem;
pub use tools::ToolSet;

use self::callback::{Callback, CallbackProblem, LOGIN_WAIT};
use self::oauth::{AuthServer, OAuthHttp, Pkce};
use self::pacing::{Limits, Pacer};
use self::session::{Endpoint, Fault, Session};
use self::tools::{payload, ToolAnswer};
use super::error::{AnswerProblem, BackendError, LoginReason, ProxyFailure};
use super::model::{
    Capped, Code, CodesPage, CodesQuery, Pool, PoolRef, PoolSummary, Reply, MAX_CODES_PER_PAGE,
    MAX_POOLS,
};
use super::network::failure::proxy_failure;
use super::network::Network;
use super::notice::{RetryNotice, RetryObserver, RetryReason};
use super::quote::Quoter;
use super::Id;
use crate::config::{ProjectEntry, Secret};

/// Rate-limit retries of one call, and the longest wait taken.
pub const MAX_RETRIES: u32 = 3;
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// Everything the backend needs.
#[derive(Clone, Debug)]
pub struct LoomiOptions {
    pub url: Url,
    pub client_id: Option<String>,
    pub file: CredentialsFile,
    /// Bounds each HTTP exchange.
    pub timeout: Duration,
    pub network: Network,
    pub limits: Limits,
}

/// A client of Loomi Connect. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct LoomiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LoomiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoomiClient")
            .field("url", &self.inner.options.url.as_str())
            .finish_non_exhaustive()
    }
}

struct Inner {
    options: LoomiOptions,
    /// `host[:port]` of the URL, for messages.
    host: String,
    http: OnceLock<Result<reqwest::Client, String>>,
    /// The login in use; its lock also keeps refreshes one at a time.
    login: tokio::sync::Mutex<Option<StoredLogin>>,
    session: tokio::sync::Mutex<Option<Arc<Opened>>>,
    /// A login started by a call, waiting for its callback.
    pending: tokio::sync::Mutex<Option<Pending>>,
    pacer: Pacer,
    next_id: AtomicU64,
    /// An access token refused for good: while the file still holds it, no
    /// request is made with it.
    refused: std::sync::Mutex<Option<String>>,
}

/// An open session and Loomi's tools.
struct Opened {
    session: Session,
    tools: ToolSet,
}

struct Pending {
    url: String,
    done: Arc<AtomicBool>,
}

/// The seed's envelope Loomi answered a call with, and the quoter that
/// scrubs the login's secrets out of anything quoted from it.
struct Answered {
    envelope: Value,
    quoter: Quoter,
}

/// Why a login could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginProblem {
    OAuth(OAuthProblem),
    Callback(CallbackProblem),
    Store(StoreProblem),
    /// The HTTP client could not be made.
    Setup(String),
    /// The new login could not list Loomi's tools.
    Check(BackendError),
}

/// A login ready for a person: the URL to open, and what finishes it.
pub struct PreparedLogin {
    pub authorization_url: Url,
    callback: Callback,
    pkce: Pkce,
    server: AuthServer,
    client: credentials::StoredClient,
    http: OAuthHttp,
    mcp_url: String,
}

impl PreparedLogin {
    /// Waits for the callback (up to `wait`) and exchanges its code.
    pub async fn finish(self, wait: Duration) -> Result<StoredLogin, LoginProblem> {
        let redirect_uri = self.client.redirect_uri.clone();
        let code = self
            .callback
            .code(&self.pkce.state, wait)
            .await
            .map_err(LoginProblem::Callback)?;
        let quoter = Quoter::new(self.client.client_secret.clone());
        oauth::exchange_code(
            &self.http,
            &self.server,
            &self.client,
            &code,
            &self.pkce.verifier,
            &redirect_uri,
            &self.mcp_url,
        )
        .await
        .map_err(|p| LoginProblem::OAuth(p.scrubbed(&quoter)))
    }
}

impl LoomiClient {
    pub fn new(options: LoomiOptions) -> Self {
        let host = match (options.url.host_str(), options.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => options.url.to_string(),
        };
        let pacer = Pacer::new(options.limits);
        Self {
            inner: Arc::new(Inner {
                options,
                host,
                http: OnceLock::new(),
                login: tokio::sync::Mutex::new(None),
                session: tokio::sync::Mutex::new(None),
                pending: tokio::sync::Mutex::new(None),
                pacer,
                next_id: AtomicU64::new(1),
                refused: std::sync::Mutex::new(None),
            }),
        }
    }

    pub fn url(&self) -> &Url {
        &self.inner.options.url
    }

    pub fn host(&self) -> &str {
        &self.inner.host
    }

    pub fn credentials_file(&self) -> &CredentialsFile {
        &self.inner.options.file
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        let inner = &*self.inner;
        inner
            .http
            .get_or_init(|| {
                let origin = inner.options.url.clone();
                // Same-origin redirects only: the bearer token never leaves
                // for another host.
                let redirect = reqwest::redirect::Policy::custom(move |attempt| {
                    let url = attempt.url();
                    if attempt.previous().len() > 5 {
                        attempt.error("too many redirects")
                    } else if url.scheme() == origin.scheme()
                        && url.host_str() == origin.host_str()
                        && url.port_or_known_default() == origin.port_or_known_default()
                    {
                        attempt.follow()
                    } else {
                        attempt.stop()
                    }
                });
                inner
                    .options
                    .network
                    .client_builder()
                    .user_agent(crate::USER_AGENT)
                    .redirect(redirect)
                    .connect_timeout(inner.options.timeout)
                    .build()
                    .map_err(|e| super::network::failure::innermost(&e))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loomi's endpoint; the error is why the HTTP client cannot be made.
    fn endpoint(&self) -> Result<Endpoint, String> {
        let http = self.http()?;
        Ok(Endpoint {
            url: self.inner.options.url.clone(),
            http: http.clone(),
            timeout: self.inner.options.timeout,
        })
    }

    fn oauth_http(&self) -> Result<OAuthHttp, LoginProblem> {
        Ok(OAuthHttp {
            http: self.http().map_err(LoginProblem::Setup)?.clone(),
            timeout: self.inner.options.timeout,
        })
    }

    // ---- logging in ------------------------------------------------------

    /// Discovery, registration (unless a client id is set) and the
    /// authorization URL, with the loopback callback bound.
    pub async fn prepare_login(&self) -> Result<PreparedLogin, LoginProblem> {
        let http = self.oauth_http()?;
        let url = &self.inner.options.url;
        let server = oauth::discover(&http, url)
            .await
            .map_err(LoginProblem::OAuth)?;
        let callback = Callback::bind().await.map_err(LoginProblem::Callback)?;
        let client = match &self.inner.options.client_id {
            Some(id) => credentials::StoredClient {
                client_id: id.clone(),
                client_secret: None,
                registered: false,
                redirect_uri: callback.redirect_uri.clone(),
                basic_auth: false,
            },
            None => oauth::register(&http, &server, &callback.redirect_uri)
                .await
                .map_err(LoginProblem::OAuth)?,
        };
        let pkce = Pkce::new();
        let authorization_url =
            oauth::authorization_url(&server, &client, &pkce, &client.redirect_uri, url.as_str())
                .map_err(LoginProblem::OAuth)?;
        Ok(PreparedLogin {
            authorization_url,
            callback,
            pkce,
            server,
            client,
            http,
            mcp_url: url.as_str().to_owned(),
        })
    }

    /// Stores a new login (atomically, under the file's lock) and uses it
    /// from the next call on.
    pub async fn store_login(&self, login: StoredLogin) -> Result<(), LoginProblem> {
        let file = self.inner.options.file.clone();
        let saved = login.clone();
        tokio::task::spawn_blocking(move || {
            let _lock = file.lock()?;
            file.save(&saved)
        })
        .await
        .map_err(|e| LoginProblem::Setup(e.to_string()))?
        .map_err(LoginProblem::Store)?;
        *self.inner.login.lock().await = Some(login);
        *self.inner.session.lock().await = None;
        *self.refused_token() = None;
        Ok(())
    }

    fn refused_token(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `token` as refused for good and drops the session opened
    /// with it (the login lock may be held by the caller).
    async fn forget(&self, token: &str) {
        *self.refused_token() = Some(token.to_owned());
        *self.inner.session.lock().await = None;
    }

    /// `token` was refused after a refresh, or its refresh was refused:
    /// forget it and the session, and start a login.
    async fn refused(&self, token: &str) -> BackendError {
        self.forget(token).await;
        {
            let mut cached = self.inner.login.lock().await;
            if cached.as_ref().is_some_and(|l| l.access_token == token) {
                *cached = None;
            }
        }
        self.login_required(LoginReason::Refused).await
    }

    /// The failure of a call that needs a login: starts one (or reuses the
    /// one pending) and names its URL.
    async fn login_required(&self, reason: LoginReason) -> BackendError {
        let mut pending = self.inner.pending.lock().await;
        if let Some(p) = pending.as_ref() {
            if !p.done.load(Ordering::SeqCst) {
                return BackendError::LoginRequired {
                    reason,
                    authorization_url: Some(p.url.clone()),
                    problem: None,
                };
            }
        }
        match self.prepare_login().await {
            Ok(prepared) => {
                let url = prepared.authorization_url.to_string();
                let done = Arc::new(AtomicBool::new(false));
                *pending = Some(Pending {
                    url: url.clone(),
                    done: Arc::clone(&done),
                });
                let client = self.clone();
                tokio::spawn(async move {
                    match prepared.finish(LOGIN_WAIT).await {
                        Ok(login) => match client.store_login(login).await {
                            Ok(()) => tracing::info!("logged in to Loomi Connect"),
                            Err(e) => tracing::warn!(
                                problem = %crate::tools::words::login_problem(&e),
                                "the new login could not be stored"
                            ),
                        },
                        Err(e) => tracing::warn!(
                            problem = %crate::tools::words::login_problem(&e),
                            "the login started by a tool call ended without a login"
                        ),
                    }
                    done.store(true, Ordering::SeqCst);
                });
                BackendError::LoginRequired {
                    reason,
                    authorization_url: Some(url),
                    problem: None,
                }
            }
            Err(problem) => BackendError::LoginRequired {
                reason,
                authorization_url: None,
                problem: Some(Box::new(problem)),
            },
        }
    }

    /// The login to use now: the stored one, refreshed when it expired.
    async fn login(&self) -> Result<StoredLogin, BackendError> {
        let mut cached = self.inner.login.lock().await;
        if cached.is_none() {
            *cached = self.load()?;
        }
        let refused = self.refused_token().clone();
        let current = match cached.as_ref() {
            None => {
                drop(cached);
                return Err(self.login_required(LoginReason::NotLoggedIn).await);
            }
            Some(l) if l.mcp_url != self.inner.options.url.as_str() => {
                // Read again next time: a login for this URL may come.
                *cached = None;
                drop(cached);
                return Err(self.login_required(LoginReason::OtherUrl).await);
            }
            Some(l) if refused.as_deref() == Some(l.access_token.as_str()) => {
                *cached = None;
                drop(cached);
                return Err(self.login_required(LoginReason::Refused).await);
            }
            Some(l) => l.clone(),
        };
        if !current.is_expired(SystemTime::now()) {
            return Ok(current);
        }
        self.refresh_locked(&mut cached, &current.access_token)
            .await
    }

    fn load(&self) -> Result<Option<StoredLogin>, BackendError> {
        self.inner.options.file.load().map_err(|p| store_error(&p))
    }

    /// After a 401: refresh, unless another process already did.
    async fn refresh_after_refusal(
        &self,
        refused_token: &str,
    ) -> Result<StoredLogin, BackendError> {
        let mut cached = self.inner.login.lock().await;
        if let Some(l) = cached.as_ref() {
            if l.access_token != refused_token && !l.is_expired(SystemTime::now()) {
                return Ok(l.clone());
            }
        }
        self.refresh_locked(&mut cached, refused_token).await
    }

    /// Refreshes under the file's lock. Another process sharing the file
    /// may have refreshed first: its newer token is taken instead, before
    /// refreshing and after a refused refresh.
    async fn refresh_locked(
        &self,
        cached: &mut Option<StoredLogin>,
        stale_token: &str,
    ) -> Result<StoredLogin, BackendError> {
        let file = self.inner.options.file.clone();
        let lock = tokio::task::spawn_blocking(move || file.lock())
            .await
            .map_err(|e| BackendError::ClientSetup {
                detail: e.to_string(),
            })?
            .map_err(|p| store_error(&p))?;
        let url = self.inner.options.url.as_str();
        let newer = |stored: &Option<StoredLogin>, than: &str| -> Option<StoredLogin> {
            stored
                .as_ref()
                .filter(|l| {
                    l.mcp_url == url && l.access_token != than && !l.is_expired(SystemTime::now())
                })
                .cloned()
        };
        let on_disk = self.load()?;
        if let Some(l) = newer(&on_disk, stale_token) {
            *cached = Some(l.clone());
            return Ok(l);
        }
        // The file is where every login lives: gone, it was logged out.
        let Some(current) = on_disk else {
            drop(lock);
            *cached = None;
            return Err(self.login_required(LoginReason::NotLoggedIn).await);
        };
        let http = self.oauth_http().map_err(|p| match p {
            LoginProblem::Setup(detail) => BackendError::ClientSetup { detail },
            other => BackendError::LoginRequired {
                reason: LoginReason::Refused,
                authorization_url: None,
                problem: Some(Box::new(other)),
            },
        })?;
        match oauth::refresh(&http, &current).await {
            Ok(new) => {
                self.inner
                    .options
                    .file
                    .save(&new)
                    .map_err(|p| store_error(&p))?;
                tracing::debug!("Loomi Connect token refreshed");
                *cached = Some(new.clone());
                Ok(new)
            }
            Err(problem) if problem.refresh_refused() => {
                if let Some(l) = newer(&self.load()?, stale_token) {
                    *cached = Some(l.clone());
                    return Ok(l);
                }
                drop(lock);
                *cached = None;
                self.forget(&current.access_token).await;
                Err(self.login_required(LoginReason::Refused).await)
            }
            Err(problem) => Err(BackendError::LoomiAuth {
                problem: Box::new(problem.scrubbed(&self.quoter(&current))),
            }),
        }
    }

    // ---- the session -------------------------------------------------------

    async fn opened(&self, token: &Secret) -> Result<Arc<Opened>, Fault> {
        let mut slot = self.inner.session.lock().await;
        if let Some(opened) = slot.as_ref() {
            return Ok(Arc::clone(opened));
        }
        let endpoint = self.endpoint().map_err(|detail| Fault::Setup { detail })?;
        let session = endpoint.open(token).await?;
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            let result = endpoint
                .request(token, &session, "tools/list", params, id)
                .await?;
            if let Some(tools) = result.get("tools").and_then(Value::as_array) {
                listed.extend(tools.iter().cloned());
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let opened = Arc::new(Opened {
            session,
            tools: ToolSet::from_listed(&listed),
        });
        *slot = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// Loomi's tools, opening the session if needed (for `login`'s check).
    /// Refused by Loomi, this starts no login: it says so.
    pub async fn tool_set(&self) -> Result<ToolSet, BackendError> {
        self.with_session(false, |opened| Ok(opened.tools.clone()))
            .await
    }

    /// Runs `then` on the open session, with one refresh after a 401 and
    /// one new session after a 404.
    /// `start_login` says whether a refusal starts a login (a tool call)
    /// or is only reported (the check at the end of `login`).
    async fn with_session<T>(
        &self,
        start_login: bool,
        then: impl Fn(&Opened) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut login = self.login().await?;
        let mut refreshed = false;
        loop {
            match self.opened(&login.access_token()).await {
                Ok(opened) => return then(&opened),
                Err(Fault::Unauthorized { .. }) if !refreshed => {
                    refreshed = true;
                    login = self.refresh_after_refusal(&login.access_token).await?;
                }
                Err(Fault::Unauthorized { .. }) if !start_login => {
                    return Err(BackendError::LoomiStatus {
                        status: 401,
                        excerpt: Some("Loomi Connect refused the new login's token".to_owned()),
                    })
                }
                Err(Fault::Unauthorized { .. }) => {
                    return Err(self.refused(&login.access_token).await)
                }
                Err(fault) => return Err(self.fault_error(fault, &login, 0)),
            }
        }
    }

    /// Calls Loomi's tool `name` with `arguments`; the seed envelope it
    /// answered.
    async fn call_tool(
        &self,
        pick: impl Fn(&ToolSet) -> Result<(String, Map<String, Value>), BackendError>,
        observer: RetryObserver<'_>,
    ) -> Result<Answered, BackendError> {
        let mut login = self.login().await?;
        let (mut refreshed, mut reopened, mut retries) = (false, false, 0u32);
        loop {
            let token = login.access_token();
            let (answered, opened) = match self.opened(&token).await {
                Ok(opened) => {
                    let (name, arguments) = pick(&opened.tools)?;
                    self.paced(observer).await;
                    let endpoint = self
                        .endpoint()
                        .map_err(|detail| BackendError::ClientSetup { detail })?;
                    let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                    let params = json!({"name": name, "arguments": Value::Object(arguments)});
                    let answered = endpoint
                        .request(&token, &opened.session, "tools/call", params, id)
                        .await;
                    (answered, Some(opened))
                }
                Err(fault) => (Err(fault), None),
            };
            let wait = match answered {
                Ok(result) => match payload(result) {
                    ToolAnswer::Envelope(value) => {
                        let quoter = self.quoter(&login);
                        if value.get("success") == Some(&Value::Bool(false)) {
                            return Err(BackendError::LoomiFailed {
                                message: quoter
                                    .api_message(value.get("error"), value.get("errors"))
                                    .unwrap_or_else(|| {
                                        "Loomi Connect reported a failure and gave no reason"
                                            .to_owned()
                                    }),
                            });
                        }
                        return Ok(Answered {
                            envelope: value,
                            quoter,
                        });
                    }
                    ToolAnswer::RateLimited { wait } => wait,
                    ToolAnswer::Failed { message } => {
                        return Err(BackendError::LoomiFailed {
                            message: self.quoter(&login).quote(&message, 300),
                        })
                    }
                    ToolAnswer::Unreadable { problem, excerpt } => {
                        return Err(BackendError::LoomiUnexpected {
                            problem,
                            excerpt: Some(self.quoter(&login).quote(&excerpt, 200)),
                        })
                    }
                },
                Err(Fault::Unauthorized { .. }) if !refreshed => {
                    refreshed = true;
                    login = self.refresh_after_refusal(&login.access_token).await?;
                    continue;
                }
                Err(Fault::Unauthorized { .. }) => {
                    return Err(self.refused(&login.access_token).await)
                }
                Err(Fault::SessionGone) if !reopened => {
                    reopened = true;
                    let mut slot = self.inner.session.lock().await;
                    let same = |o: &Arc<Opened>| opened.as_ref().is_some_and(|x| Arc::ptr_eq(x, o));
                    if slot.as_ref().is_some_and(same) {
                        *slot = None;
                    }
                    continue;
                }
                Err(Fault::RateLimited { retry_after }) => retry_after,
                Err(fault) => return Err(self.fault_error(fault, &login, retries)),
            };
            // Rate limited: wait it out, within bounds.
            if let Some(w) = wait.filter(|w| *w > MAX_RETRY_WAIT) {
                return Err(BackendError::RetryAfterTooLong {
                    status: 429,
                    wait: w,
                    until: SystemTime::now()
                        .checked_add(w)
                        .unwrap_or_else(SystemTime::now),
                });
            }
            if retries >= MAX_RETRIES {
                return Err(BackendError::RateLimited {
                    retries,
                    retry_after: wait,
                });
            }
            retries += 1;
            let wait = wait
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(100));
            observer(&RetryNotice {
                retry: retries,
                max_retries: MAX_RETRIES,
                wait,
                reason: RetryReason::RateLimited,
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for this call's turn under the rate limit, telling why when
    /// the wait is longer than a second.
    async fn paced(&self, observer: RetryObserver<'_>) {
        let at = self.inner.pacer.reserve();
        let wait = at.saturating_duration_since(tokio::time::Instant::now());
        if wait > Duration::from_secs(1) {
            observer(&RetryNotice {
                retry: 0,
                max_retries: 0,
                wait,
                reason: RetryReason::Paced,
            });
        }
        // A slot already due is taken at once: a timer would round up to
        // the next millisecond.
        if !wait.is_zero() {
            tokio::time::sleep_until(at).await;
        }
    }

    fn quoter(&self, login: &StoredLogin) -> Quoter {
        Quoter::new(login.secrets())
    }

    fn fault_error(&self, fault: Fault, login: &StoredLogin, retries: u32) -> BackendError {
        let quoter = self.quoter(login);
        let host = self.inner.host.clone();
        match fault {
            Fault::Timeout => BackendError::Timeout {
                host,
                timeout: self.inner.options.timeout,
            },
            Fault::Transport { failure, cause } => {
                let cause = cause.map(|c| quoter.scrub(&c));
                let proxy = self
                    .inner
                    .options
                    .network
                    .proxy_for(&self.inner.options.url);
                match (proxy, proxy_failure(proxy, failure, cause.as_deref())) {
                    (Some(p), Some(how)) => BackendError::Proxy {
                        proxy: p.shown().to_owned(),
                        variable: p.variable(),
                        host,
                        failure: how,
                        cause: if how == ProxyFailure::AuthRequired {
                            None
                        } else {
                            cause
                        },
                        retries,
                    },
                    _ => BackendError::Connection {
                        host,
                        failure,
                        cause,
                        retries,
                    },
                }
            }
            Fault::Redirect { location } => BackendError::LoomiRedirect {
                location: quoter.quote(&location, 120),
            },
            Fault::JsonRpc { code, message } => BackendError::LoomiFailed {
                message: quoter.quote(&format!("JSON-RPC error {code}: {message}"), 300),
            },
            Fault::Unreadable { detail, excerpt } => BackendError::LoomiUnexpected {
                problem: AnswerProblem::MissingField {
                    detail: quoter.quote(&detail, 150),
                },
                excerpt: Some(quoter.quote(&excerpt, 200)),
            },
            Fault::Status { status, excerpt } => BackendError::LoomiStatus {
                status,
                excerpt: Some(quoter.quote(&excerpt, 200)).filter(|e| !e.is_empty()),
            },
            Fault::Setup { detail } => BackendError::ClientSetup { detail },
            Fault::TooLarge => BackendError::BodyTooLarge {
                limit: session::MAX_ANSWER_BYTES,
            },
            Fault::RateLimited { retry_after } => BackendError::RateLimited {
                retries,
                retry_after,
            },
            Fault::SessionGone => BackendError::LoomiStatus {
                status: 404,
                excerpt: Some("the session was dropped again".to_owned()),
            },
            Fault::Unauthorized { .. } => BackendError::LoomiStatus {
                status: 401,
                excerpt: None,
            },
        }
    }

    fn decode<D: DeserializeOwned>(&self, answered: Answered) -> Result<Reply<D>, BackendError> {
        let Answered { envelope, quoter } = answered;
        // Read in place: the excerpt is made only when it is needed.
        let excerpt = |v: &Value| Some(quoter.quote(&v.to_string(), 200));
        let reply =
            Reply::<D>::deserialize(&envelope).map_err(|e| BackendError::LoomiUnexpected {
                problem: AnswerProblem::MissingField {
                    detail: quoter.quote(&e.to_string(), 150),
                },
                excerpt: excerpt(&envelope),
            })?;
        if reply.data.is_none() {
            return Err(BackendError::LoomiUnexpected {
                problem: AnswerProblem::NoData,
                excerpt: excerpt(&envelope),
            });
        }
        Ok(reply)
    }

    // ---- what the tools ask for -------------------------------------------

    pub async fn list_pools(
        &self,
        project_id: &Id,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, BackendError> {
        let envelope = self
            .call_tool(
                |tools| {
                    let mut args = Map::new();
                    args.insert("project_id".into(), project_id.as_str().into());
                    Ok((tools.pools_tool()?, args))
                },
                observer,
            )
            .await?;
        let reply: Reply<Capped<PoolSummary, MAX_POOLS>> = self.decode(envelope)?;
        Ok(reply.data.unwrap_or_default().0)
    }

    pub async fn get_pool(
        &self,
        pool: PoolRef<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        let envelope = self
            .call_tool(
                |tools| {
                    let (name, pool_arg) = tools.pool_tool()?;
                    let mut args = Map::new();
                    args.insert("project_id".into(), pool.project_id.as_str().into());
                    args.insert(pool_arg, pool.pool_id.as_str().into());
                    Ok((name, args))
                },
                observer,
            )
            .await?;
        // `search_voucher_pools` may answer a list: the pool is the one
        // with the id asked for.
        let Answered { envelope, quoter } = envelope;
        let envelope = tools::one_pool(envelope, pool.pool_id.as_str()).ok_or_else(|| {
            BackendError::NotFound {
                subject: super::Subject::Pool {
                    project_id: pool.project_id.clone(),
                    pool_id: pool.pool_id.clone(),
                },
                message: None,
            }
        })?;
        let reply: Reply<Pool> = self.decode(Answered { envelope, quoter })?;
        let found = reply.data.ok_or(BackendError::LoomiUnexpected {
            problem: AnswerProblem::NoData,
            excerpt: None,
        })?;
        Ok(found.of_project(pool.project_id))
    }

    pub async fn list_codes(
        &self,
        query: &CodesQuery<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, BackendError> {
        let envelope = self
            .call_tool(
                |tools| {
                    if query.status.is_some() && !tools.codes_take_status() {
                        return Err(BackendError::CannotFilterByStatus);
                    }
                    let mut args = Map::new();
                    args.insert("project_id".into(), query.project_id.as_str().into());
                    args.insert("pool_id".into(), query.pool_id.as_str().into());
                    args.insert("skip".into(), query.skip.into());
                    args.insert("count".into(), query.count.into());
                    if let Some(status) = query.status {
                        args.insert("status".into(), status.as_str().into());
                    }
                    Ok((tools.codes_tool()?, args))
                },
                observer,
            )
            .await?;
        let reply: Reply<Capped<Code, MAX_CODES_PER_PAGE>> = self.decode(envelope)?;
        Ok(CodesPage::from_reply(reply, query))
    }

    /// Loomi's `list_projects`.
    pub async fn list_projects(
        &self,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<ProjectEntry>, BackendError> {
        let envelope = self
            .call_tool(|tools| Ok((tools.projects_tool()?, Map::new())), observer)
            .await?;
        let reply: Reply<Vec<Value>> = self.decode(envelope)?;
        Ok(reply
            .data
            .unwrap_or_default()
            .iter()
            .filter_map(tools::project_entry)
            .collect())
    }

    /// Whether Loomi's `list_voucher_codes` takes `status`.
    pub async fn filters_by_status(&self) -> Result<bool, BackendError> {
        self.with_session(true, |opened| Ok(opened.tools.codes_take_status()))
            .await
    }
}

fn store_error(problem: &StoreProblem) -> BackendError {
    match problem {
        StoreProblem::Io { path, detail } | StoreProblem::Unreadable { path, detail } => {
            BackendError::CredentialsFile {
                path: path.display().to_string(),
                detail: detail.clone(),
            }
        }
    }
}
