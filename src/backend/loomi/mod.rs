//! Loomi Connect, Bloomreach's hosted MCP server, as a backend: the voucher
//! tools of the seed served from live data behind the user's Bloomreach
//! login.
//!
//! Nothing happens at start. The first call reads the stored login
//! ([`credentials`]), refreshes it when it has expired ([`oauth::Auth`]),
//! opens the MCP session on rmcp's client ([`session`]) and lists Loomi's
//! tools once; later calls reuse both. Each tool call is paced to Loomi's
//! rate limit ([`pacing`]), a 429 or a "Too many requests" tool error is
//! waited out, a 401 is answered by one refresh, a session that will not
//! reopen is opened anew once. Without a usable login the call starts one
//! ([`oauth`], [`callback`]) and fails with the authorization URL; the next
//! call after the callback works.

pub mod callback;
pub mod credentials;
pub mod oauth;
pub mod pacing;
pub mod session;
mod tools;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use super::error::LoginProblem;
pub use credentials::{CredentialsFile, StoreProblem, StoredLogin};
pub use oauth::{ClientIdentity, OAuthProblem};
pub use tools::{Choice, ToolSet};

use self::callback::{Callback, LOGIN_WAIT};
use self::oauth::{Auth, Authorization, KnownClient, LoginSetup, OAuthHttp, TokenProblem};
use self::pacing::{Limits, Pacer};
use self::session::{Bearer, Fault, Session};
use self::tools::{payload, ToolAnswer};
use super::error::{AnswerProblem, BackendError, LoginReason, Service};
use super::model::{
    Bounded, Capped, Code, CodesPage, CodesQuery, Pool, PoolRef, PoolSummary, Reply, SkipCheck,
    MAX_CODES_PER_PAGE, MAX_POOLS, MAX_PROJECTS,
};
use super::network::failure::unreachable;
use super::network::Network;
use super::notice::{RetryNotice, RetryObserver, RetryReason};
use super::quote::Quoter;
use super::Id;
use crate::backend::{ProjectEntry, Secret};

/// Rate-limit retries of one call, and the longest wait taken.
pub const MAX_RETRIES: u32 = 3;
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(15);
/// The most sign-ins one `login` makes (the first, a step-up to more
/// scopes, a move to another authorization server).
pub const MAX_SIGN_INS: u32 = 3;

/// Everything the backend needs.
#[derive(Clone, Debug)]
pub struct LoomiOptions {
    pub url: Url,
    pub identity: ClientIdentity,
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
    http: OnceLock<Result<Clients, String>>,
    session: tokio::sync::Mutex<Option<Arc<Opened>>>,
    /// A login started by a call, waiting for its callback.
    pending: tokio::sync::Mutex<Option<Pending>>,
    pacer: Pacer,
    /// An access token refused for good: while the file still holds it, no
    /// request is made with it.
    refused: std::sync::Mutex<Option<String>>,
    /// Calls take their pacing turns in the order they came (a fair lock,
    /// held from a call's start until its turn is reserved).
    arrival: tokio::sync::Mutex<()>,
}

/// The HTTP clients, made by the first call.
struct Clients {
    mcp: reqwest::Client,
    auth: Arc<Auth>,
    oauth: OAuthHttp,
}

/// An open session and Loomi's tools.
struct Opened {
    session: Session,
    tools: ToolSet,
}

/// Addresses a person pastes (the browser's last address, for a login
/// whose browser cannot reach this machine), and what hears why a pasted
/// line was not taken.
pub type Pasted<'a> = (
    &'a tokio::sync::Mutex<tokio::sync::mpsc::Receiver<String>>,
    &'a (dyn Fn(&str) + Sync),
);

/// The most organizations whose projects are listed (one paced call each).
const MAX_ORGANIZATIONS: usize = 100;
/// The most pages of pools read for one list (one paced call each).
const MAX_POOL_PAGES: usize = 200;

/// What `doctor` reports of the session.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    pub protocol: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub tools: ToolSet,
}

/// A login a call started: waiting for its callback, or one that could
/// not start (kept a while, so that calls arriving meanwhile share it
/// instead of each trying discovery again).
enum Pending {
    Waiting {
        url: String,
        done: Arc<AtomicBool>,
    },
    Failed {
        at: std::time::Instant,
        problem: Box<LoginProblem>,
    },
}

/// How long a login that could not start is answered as is.
const FAILED_LOGIN_KEPT: Duration = Duration::from_secs(30);

/// The seed's envelope Loomi answered a call with, and the quoter that
/// scrubs the login's secrets out of anything quoted from it.
struct Answered {
    envelope: Value,
    quoter: Quoter,
}

/// A login ready for a person: the URL to open, and what finishes it.
pub struct PreparedLogin {
    pub authorization_url: Url,
    authorization: Authorization,
    callback: Arc<Callback>,
}

impl PreparedLogin {
    /// Waits for the callback (up to `wait`) and exchanges its code.
    pub async fn finish(self, wait: Duration) -> Result<StoredLogin, LoginProblem> {
        let granted = self
            .callback
            .code(&self.authorization.state, wait)
            .await
            .map_err(LoginProblem::Callback)?;
        self.authorization
            .finish(&granted.code, granted.iss.as_deref())
            .await
            .map_err(|(p, _)| LoginProblem::OAuth(p))
    }
}

/// What `login` found once signed in.
pub struct SignedIn {
    pub tools: ToolSet,
}

impl LoomiClient {
    pub fn new(options: LoomiOptions) -> Self {
        let host = super::network::host_port(&options.url);
        let pacer = Pacer::new(options.limits);
        Self {
            inner: Arc::new(Inner {
                options,
                host,
                http: OnceLock::new(),
                session: tokio::sync::Mutex::new(None),
                pending: tokio::sync::Mutex::new(None),
                pacer,
                refused: std::sync::Mutex::new(None),
                arrival: tokio::sync::Mutex::new(()),
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

    fn clients(&self) -> Result<&Clients, String> {
        let inner = &*self.inner;
        inner
            .http
            .get_or_init(|| {
                let o = &inner.options;
                let builder = || o.network.client_builder().user_agent(crate::USER_AGENT);
                let mcp = session::http_client(builder(), &o.url, o.timeout)?;
                let oauth = OAuthHttp::new(builder, o.timeout)?;
                let auth = Arc::new(Auth::new(
                    o.url.clone(),
                    o.file.clone(),
                    oauth.clone(),
                    o.timeout,
                ));
                Ok(Clients { mcp, auth, oauth })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn setup(&self) -> Result<LoginSetup, LoginProblem> {
        let clients = self.clients().map_err(LoginProblem::Setup)?;
        Ok(LoginSetup {
            url: self.inner.options.url.clone(),
            identity: self.inner.options.identity.clone(),
            file: self.inner.options.file.clone(),
            http: clients.oauth.clone(),
        })
    }

    // ---- logging in ------------------------------------------------------

    /// Discovery, the client and the authorization URL, with the loopback
    /// callback bound (on `port`, or a free one).
    pub async fn prepare_login(&self, port: Option<u16>) -> Result<PreparedLogin, LoginProblem> {
        let setup = self.setup()?;
        let callback = Arc::new(Callback::bind(port).await.map_err(LoginProblem::Callback)?);
        let authorization = oauth::authorize(&setup, &callback.redirect_uri, None, &[], None)
            .await
            .map_err(LoginProblem::OAuth)?;
        Ok(PreparedLogin {
            authorization_url: authorization.url.clone(),
            authorization,
            callback,
        })
    }

    /// The whole login of a person at a terminal: sign in (`show` hands
    /// each authorization URL to the person), store the login, then check
    /// it by listing Loomi's tools and calling one that reads. A 403 asking
    /// for more scopes, or a 401 after the move to another authorization
    /// server, is answered by a new sign-in (scopes joined; registered
    /// again where the issuer changed), at most [`MAX_SIGN_INS`] in all.
    pub async fn sign_in(
        &self,
        port: Option<u16>,
        wait: Duration,
        show: &(dyn Fn(&Url) + Sync),
        pasted: Option<Pasted<'_>>,
    ) -> Result<SignedIn, LoginProblem> {
        let setup = self.setup()?;
        let callback = Callback::bind(port).await.map_err(LoginProblem::Callback)?;
        let mut challenge: Option<String> = None;
        let mut scopes: Vec<String> = Vec::new();
        let mut known: Option<KnownClient> = None;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let authorization = oauth::authorize(
                &setup,
                &callback.redirect_uri,
                challenge.as_deref(),
                &scopes,
                known.as_ref(),
            )
            .await
            .map_err(LoginProblem::OAuth)?;
            show(&authorization.url);
            let granted = callback
                .code_or_pasted(&authorization.state, wait, pasted)
                .await
                .map_err(LoginProblem::Callback)?;
            known = Some(authorization.client.clone());
            let asked = authorization.scopes.clone();
            let login = authorization
                .finish(&granted.code, granted.iss.as_deref())
                .await
                .map_err(|(p, _)| LoginProblem::OAuth(p))?;
            self.forget_session().await;
            *self.refused_token() = None;
            let token = login.bearer().unwrap_or_else(|| Secret::new(String::new()));
            match self.check(token).await {
                Ok(tools) => return Ok(SignedIn { tools }),
                Err(Fault::InsufficientScope { scope }) if tries < MAX_SIGN_INS => {
                    let mut joined = asked;
                    for s in scope.as_deref().unwrap_or("").split_whitespace() {
                        if !joined.iter().any(|j| j == s) {
                            joined.push(s.to_owned());
                        }
                    }
                    scopes = joined;
                }
                Err(Fault::Unauthorized { challenge: c }) if tries < MAX_SIGN_INS => {
                    // The resource now names another authorization server:
                    // discover again from its challenge.
                    challenge = c;
                    scopes = Vec::new();
                }
                Err(Fault::InsufficientScope { scope }) => {
                    return Err(LoginProblem::OAuth(OAuthProblem::StepUp {
                        scope: scope.unwrap_or_default(),
                        tries,
                    }))
                }
                Err(fault) => {
                    let quoter = Quoter::new(login.secrets());
                    return Err(LoginProblem::Check(self.fault_error(fault, &quoter, 0)));
                }
            }
        }
    }

    /// Opens a session with `token`, lists the tools and calls one that
    /// reads.
    async fn check(&self, token: Secret) -> Result<ToolSet, Fault> {
        let clients = self.clients().map_err(|detail| Fault::Setup { detail })?;
        let bearer = Bearer::new(clients.mcp.clone(), token);
        let session =
            Session::open(&self.inner.options.url, bearer, self.inner.options.timeout).await?;
        let listed = session.list_tools().await;
        let result = match listed {
            Ok(listed) => {
                let tools = ToolSet::from_listed(&to_values(&listed));
                match tools.probe_tool() {
                    Some(probe) => session.call_tool(probe, Map::new()).await.map(|_| tools),
                    None => Ok(tools),
                }
            }
            Err(f) => Err(f),
        };
        session.close().await;
        result
    }

    fn refused_token(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn forget_session(&self) {
        let old = self.inner.session.lock().await.take();
        if let Some(old) = old.and_then(|o| Arc::try_unwrap(o).ok()) {
            old.session.close().await;
        }
    }

    /// Remembers `token` as refused for good and drops the session opened
    /// with it.
    async fn forget(&self, token: &str) {
        *self.refused_token() = Some(token.to_owned());
        self.forget_session().await;
    }

    /// The failure of a call that needs a login: starts one (or reuses the
    /// one pending) and names its URL.
    async fn login_required(&self, reason: LoginReason) -> BackendError {
        let mut pending = self.inner.pending.lock().await;
        match pending.as_ref() {
            Some(Pending::Waiting { url, done }) if !done.load(Ordering::SeqCst) => {
                return BackendError::LoginRequired {
                    reason,
                    authorization_url: Some(url.clone()),
                    problem: None,
                };
            }
            Some(Pending::Failed { at, problem }) if at.elapsed() < FAILED_LOGIN_KEPT => {
                return BackendError::LoginRequired {
                    reason,
                    authorization_url: None,
                    problem: Some(problem.clone()),
                };
            }
            _ => {}
        }
        match self.prepare_login(None).await {
            Ok(prepared) => {
                let url = prepared.authorization_url.to_string();
                let done = Arc::new(AtomicBool::new(false));
                *pending = Some(Pending::Waiting {
                    url: url.clone(),
                    done: Arc::clone(&done),
                });
                let client = self.clone();
                tokio::spawn(async move {
                    match prepared.finish(LOGIN_WAIT).await {
                        Ok(_) => {
                            *client.refused_token() = None;
                            client.forget_session().await;
                            tracing::info!("logged in to Loomi Connect");
                        }
                        Err(problem) => tracing::warn!(
                            ?problem,
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
            Err(problem) => {
                let problem = Box::new(problem);
                *pending = Some(Pending::Failed {
                    at: std::time::Instant::now(),
                    problem: problem.clone(),
                });
                BackendError::LoginRequired {
                    reason,
                    authorization_url: None,
                    problem: Some(problem),
                }
            }
        }
    }

    /// The login to use now: the stored one, refreshed when it expired or
    /// its token was refused.
    async fn login(&self, refused: Option<&str>) -> Result<StoredLogin, BackendError> {
        let clients = self
            .clients()
            .map_err(|detail| BackendError::ClientSetup { detail })?;
        let remembered = self.refused_token().clone();
        let refused = refused.map(str::to_owned).or(remembered);
        match clients.auth.login(refused.as_deref()).await {
            Ok(login) => Ok(login),
            Err(TokenProblem::NoLogin) => Err(self.login_required(LoginReason::NotLoggedIn).await),
            Err(TokenProblem::OtherUrl) => Err(self.login_required(LoginReason::OtherUrl).await),
            Err(TokenProblem::Refused) => {
                if let Some(t) = &refused {
                    self.forget(t).await;
                }
                Err(self.login_required(LoginReason::Refused).await)
            }
            Err(TokenProblem::Refresh(problem)) => Err(BackendError::LoomiAuth {
                problem: Box::new(problem),
            }),
            Err(TokenProblem::Store(p)) => Err(store_error(&p)),
        }
    }

    // ---- the session -------------------------------------------------------

    async fn opened(&self, token: Secret) -> Result<Arc<Opened>, Fault> {
        let mut slot = self.inner.session.lock().await;
        if let Some(opened) = slot.as_ref() {
            opened.session.bearer.set(token);
            return Ok(Arc::clone(opened));
        }
        let clients = self.clients().map_err(|detail| Fault::Setup { detail })?;
        let bearer = Bearer::new(clients.mcp.clone(), token);
        let session =
            Session::open(&self.inner.options.url, bearer, self.inner.options.timeout).await?;
        let listed = session.list_tools().await?;
        let opened = Arc::new(Opened {
            session,
            tools: ToolSet::from_listed(&to_values(&listed)),
        });
        *slot = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// What Loomi said of itself when the session opened: the protocol
    /// version, and its name and version where it gave them (for `doctor`).
    pub async fn server_facts(&self) -> Result<ServerFacts, BackendError> {
        self.with_session(|opened| {
            let info = opened.session.service.peer_info();
            Ok(ServerFacts {
                protocol: info
                    .as_ref()
                    .map(|i| i.protocol_version.to_string())
                    .unwrap_or_default(),
                name: info
                    .as_ref()
                    .and_then(|i| i.server_info.as_ref())
                    .map(|s| crate::text::escape_controls(&crate::text::shorten(&s.name, 100))),
                version: info
                    .as_ref()
                    .and_then(|i| i.server_info.as_ref())
                    .map(|s| crate::text::escape_controls(&crate::text::shorten(&s.version, 50))),
                tools: opened.tools.clone(),
            })
        })
        .await
    }

    /// What a session fault leads to: once a refresh after a 401, once a
    /// new session after a lost one (`None`: try again), a login needed
    /// after a second 401; any other fault is handed back.
    async fn recover(
        &self,
        fault: Fault,
        token: &Secret,
        login: &mut StoredLogin,
        (refreshed, reopened): (&mut bool, &mut bool),
    ) -> Result<Option<Fault>, BackendError> {
        match fault {
            Fault::Unauthorized { .. } if !*refreshed => {
                *refreshed = true;
                *login = self.login(Some(token.expose())).await?;
            }
            Fault::Unauthorized { .. } => {
                self.forget(token.expose()).await;
                return Err(self.login_required(LoginReason::Refused).await);
            }
            Fault::SessionGone if !*reopened => {
                *reopened = true;
                self.forget_session().await;
            }
            fault => return Ok(Some(fault)),
        }
        Ok(None)
    }

    /// Runs `then` on the open session, with one refresh after a 401 and
    /// one new session after a lost one.
    async fn with_session<T>(
        &self,
        then: impl Fn(&Opened) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut login = self.login(None).await?;
        let (mut refreshed, mut reopened) = (false, false);
        loop {
            let token = login.bearer().unwrap_or_else(|| Secret::new(String::new()));
            match self.opened(token.clone()).await {
                Ok(opened) => return then(&opened),
                Err(fault) => {
                    let tries = (&mut refreshed, &mut reopened);
                    if let Some(fault) = self.recover(fault, &token, &mut login, tries).await? {
                        return Err(self.fault_error(fault, &Quoter::new(login.secrets()), 0));
                    }
                }
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
        let deadline = self.deadline();
        match tokio::time::timeout(deadline, self.call_tool_once(pick, observer)).await {
            Ok(answered) => answered,
            Err(_) => Err(BackendError::Deadline {
                host: self.inner.host.clone(),
                deadline,
            }),
        }
    }

    /// The longest a tool call may take in all (its turn, a refresh, a new
    /// session, rate-limit waits and the exchange): four timeouts, and at
    /// least two minutes.
    pub fn deadline(&self) -> Duration {
        (self.inner.options.timeout * 4).max(Duration::from_secs(120))
    }

    async fn call_tool_once(
        &self,
        pick: impl Fn(&ToolSet) -> Result<(String, Map<String, Value>), BackendError>,
        observer: RetryObserver<'_>,
    ) -> Result<Answered, BackendError> {
        let mut arrival = Some(self.inner.arrival.lock().await);
        let mut login = self.login(None).await?;
        let (mut refreshed, mut reopened, mut retries) = (false, false, 0u32);
        loop {
            let token = login.bearer().unwrap_or_else(|| Secret::new(String::new()));
            let quoter = Quoter::new(login.secrets());
            let answered = match self.opened(token.clone()).await {
                Ok(opened) => {
                    let (name, arguments) = pick(&opened.tools)?;
                    self.paced(arrival.take(), observer).await;
                    opened.session.call_tool(&name, arguments).await
                }
                Err(fault) => Err(fault),
            };
            let wait = match answered {
                Ok(result) => match payload(result) {
                    ToolAnswer::Envelope(value) => {
                        if value.get("success") == Some(&Value::Bool(false)) {
                            return Err(BackendError::Failed {
                                service: Service::Loomi,
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
                        return Err(BackendError::Failed {
                            service: Service::Loomi,
                            message: quoter.quote(&message, 300),
                        })
                    }
                    ToolAnswer::Unreadable { problem, excerpt } => {
                        return Err(BackendError::Unexpected {
                            service: Service::Loomi,
                            problem,
                            excerpt: Some(quoter.quote(&excerpt, 200)),
                        })
                    }
                },
                Err(fault) => {
                    let tries = (&mut refreshed, &mut reopened);
                    match self.recover(fault, &token, &mut login, tries).await? {
                        None => continue,
                        Some(Fault::RateLimited { retry_after }) => retry_after,
                        Some(fault) => return Err(self.fault_error(fault, &quoter, retries)),
                    }
                }
            };
            // Rate limited: wait it out, within bounds.
            if let Some(w) = wait.filter(|w| *w > MAX_RETRY_WAIT) {
                return Err(BackendError::wait_too_long(429, w));
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

    /// Waits for this call's turn under the rate limit (in arrival order:
    /// `arrival`, the lock held since the call came, is let go once the
    /// call is in the line), telling why when the wait is over a second.
    async fn paced(
        &self,
        arrival: Option<tokio::sync::MutexGuard<'_, ()>>,
        observer: RetryObserver<'_>,
    ) {
        let wait = self.inner.pacer.expected_wait();
        if wait > Duration::from_secs(1) {
            observer(&RetryNotice {
                retry: 0,
                max_retries: 0,
                wait,
                reason: RetryReason::Paced,
            });
        }
        let turn = self.inner.pacer.turn().await;
        drop(arrival);
        turn.start().await;
    }

    fn fault_error(&self, fault: Fault, quoter: &Quoter, retries: u32) -> BackendError {
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
                unreachable(proxy, host, failure, cause, retries)
            }
            Fault::Redirect { location } => BackendError::Redirect {
                service: Service::Loomi,
                host: host.clone(),
                location: quoter.quote(&location, 120),
            },
            Fault::JsonRpc { code, message } => BackendError::Failed {
                service: Service::Loomi,
                message: quoter.quote(&format!("JSON-RPC error {code}: {message}"), 300),
            },
            Fault::Unreadable { detail, excerpt } => BackendError::Unexpected {
                service: Service::Loomi,
                problem: AnswerProblem::MissingField {
                    detail: quoter.quote(&detail, 150),
                },
                excerpt: Some(quoter.quote_capped(&excerpt, session::MAX_ERROR_BODY, 200)),
            },
            Fault::Status { status, excerpt } => BackendError::Status {
                service: Service::Loomi,
                status,
                excerpt: Some(quoter.quote_capped(&excerpt, session::MAX_ERROR_BODY, 200))
                    .filter(|e| !e.is_empty()),
            },
            Fault::Setup { detail } => BackendError::ClientSetup { detail },
            Fault::TooLarge => BackendError::BodyTooLarge {
                limit: session::MAX_ANSWER_BYTES,
            },
            Fault::RateLimited { retry_after } => BackendError::RateLimited {
                retries,
                retry_after,
            },
            Fault::SessionGone => BackendError::Status {
                service: Service::Loomi,
                status: 404,
                excerpt: Some("the session was dropped again".to_owned()),
            },
            Fault::InsufficientScope { scope } => BackendError::Status {
                service: Service::Loomi,
                status: 403,
                excerpt: Some(match scope {
                    Some(s) => quoter.quote(
                        &format!("insufficient_scope: the login lacks the scope {s}"),
                        200,
                    ),
                    None => "insufficient_scope: the login lacks a scope".to_owned(),
                }),
            },
            Fault::Unauthorized { .. } => BackendError::Status {
                service: Service::Loomi,
                status: 401,
                excerpt: None,
            },
        }
    }

    fn decode<D: DeserializeOwned>(&self, answered: Answered) -> Result<Reply<D>, BackendError> {
        let Answered { envelope, quoter } = answered;
        // Read in place: the excerpt is made only when it is needed.
        let excerpt = |v: &Value| Some(quoter.quote(&v.to_string(), 200));
        let reply = Reply::<D>::deserialize(&envelope).map_err(|e| {
            let detail = e.to_string();
            crate::backend::model::bound_error(&detail).unwrap_or_else(|| {
                BackendError::Unexpected {
                    service: Service::Loomi,
                    problem: AnswerProblem::MissingField {
                        detail: quoter.quote(&detail, 150),
                    },
                    excerpt: excerpt(&envelope),
                }
            })
        })?;
        if reply.data.is_none() {
            return Err(BackendError::Unexpected {
                service: Service::Loomi,
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
        let Answered { envelope, quoter } = self.pool_records(project_id, None, observer).await?;
        let envelope = Answered {
            envelope: tools::with_ids(envelope),
            quoter,
        };
        let reply: Reply<Bounded<PoolSummary, MAX_POOLS>> = self.decode(envelope)?;
        Ok(reply.data.unwrap_or_default().0)
    }

    /// Pool records of the project, as one envelope. With `one`, and a
    /// pool tool that declares an id argument: that pool, asked by id.
    /// Otherwise every pool: the pools tool called without an id, page
    /// after page where it declares paging, until a page comes back short
    /// or the records reach the count it gave; more than [`MAX_POOLS`] is a
    /// failure that names the bound. What the tools declare is read inside
    /// each call, so that calls keep their arrival order.
    async fn pool_records(
        &self,
        project_id: &Id,
        one: Option<&Id>,
        observer: RetryObserver<'_>,
    ) -> Result<Answered, BackendError> {
        // How the last call was made: by id, or a page of the list.
        let plan: std::sync::Mutex<Option<(bool, Option<tools::Paging>)>> = Default::default();
        let too_many = BackendError::TooMany {
            what: "voucher pools in the project",
            bound: MAX_POOLS,
        };
        let mut records: Vec<Value> = Vec::new();
        let mut repeats = SkipCheck::default();
        let mut pages = 0usize;
        loop {
            let offset = records.len() as u64;
            let Answered {
                mut envelope,
                quoter,
            } = self
                .call_tool(
                    |tools| {
                        let mut args = Map::new();
                        args.insert("project_id".into(), project_id.as_str().into());
                        if let Some(pool_id) = one {
                            let (tool, pool_arg) = tools.pool_tool()?;
                            if let Some(pool_arg) = pool_arg {
                                tools.takes(&tool, "project_id")?;
                                tools.requires_only(&tool, &["project_id", &pool_arg])?;
                                args.insert(pool_arg, pool_id.as_str().into());
                                *plan.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some((true, None));
                                return Ok((tool, args));
                            }
                        }
                        let tool = tools.pools_tool()?;
                        tools.takes(&tool, "project_id")?;
                        let paging = tools.paging(&tool);
                        let mut known = vec!["project_id"];
                        if let Some(p) = &paging {
                            known.extend([p.skip.as_str(), p.count.as_str()]);
                            args.insert(p.skip.clone(), offset.into());
                            args.insert(p.count.clone(), p.size.into());
                        }
                        tools.requires_only(&tool, &known)?;
                        *plan.lock().unwrap_or_else(|p| p.into_inner()) = Some((false, paging));
                        Ok((tool, args))
                    },
                    observer,
                )
                .await?;
            let (by_id, paging) = plan
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or((true, None));
            if by_id {
                return Ok(Answered { envelope, quoter });
            }
            let counted = ["matched", "total"]
                .iter()
                .find_map(|k| envelope.get(*k).and_then(Value::as_u64));
            let page = match envelope.get_mut("data").map(Value::take) {
                Some(Value::Array(page)) => page,
                // Not a list: decoded (and refused) as it is.
                other => {
                    if let Some(other) = other {
                        envelope["data"] = other;
                    }
                    return Ok(Answered { envelope, quoter });
                }
            };
            let Some(paging) = paging else {
                if page.len() > MAX_POOLS {
                    return Err(too_many);
                }
                envelope["data"] = Value::Array(page);
                return Ok(Answered { envelope, quoter });
            };
            repeats.page(offset, offset > 0, page.first().and_then(tools::record_id))?;
            let short = (page.len() as u64) < paging.size;
            let empty = page.is_empty();
            records.extend(page);
            pages += 1;
            if records.len() > MAX_POOLS {
                return Err(too_many);
            }
            // A short page is the end where Loomi gives no count, or the
            // count is reached; where it counts more, the next page is
            // asked (a server may answer fewer than asked), and an empty
            // one is a failure, never part of the list as a success.
            let reached = counted.is_some_and(|c| records.len() as u64 >= c);
            if reached || (short && counted.is_none()) {
                envelope["data"] = Value::Array(records);
                return Ok(Answered { envelope, quoter });
            }
            if let (true, Some(matched)) = (empty, counted) {
                return Err(BackendError::RanOut {
                    what: "voucher pools in the project",
                    read: records.len() as u64,
                    matched,
                });
            }
            if pages >= MAX_POOL_PAGES {
                return Err(BackendError::TooMany {
                    what: "pages of voucher pools (one paced call each)",
                    bound: MAX_POOL_PAGES,
                });
            }
        }
    }

    pub async fn get_pool(
        &self,
        pool: PoolRef<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        let answered = self
            .pool_records(pool.project_id, Some(pool.pool_id), observer)
            .await?;
        // `search_voucher_pools` may answer a list: the pool is the one
        // with the id asked for.
        let Answered { envelope, quoter } = answered;
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
        reply.pool(Service::Loomi, pool.project_id)
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
                    let (tool, pool_arg) = tools.codes_tool()?;
                    args.insert("project_id".into(), query.project_id.as_str().into());
                    args.insert(pool_arg, query.pool_id.as_str().into());
                    args.insert("skip".into(), query.skip.into());
                    args.insert("count".into(), query.count.into());
                    if let Some(status) = query.status {
                        args.insert("status".into(), status.as_str().into());
                    }
                    Ok((tool, args))
                },
                observer,
            )
            .await?;
        let reply: Reply<Capped<Code, MAX_CODES_PER_PAGE>> = self.decode(envelope)?;
        Ok(CodesPage::from_reply(reply, query))
    }

    /// The projects the login can see: Loomi's `list_projects`, once, or
    /// for each organization of `list_cloud_organizations` in its order
    /// where it requires one; each project once, the first seen kept.
    pub async fn list_projects(
        &self,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<ProjectEntry>, BackendError> {
        let decided: std::sync::Mutex<Option<tools::ProjectsPlan>> = Default::default();
        let first = self
            .call_tool(
                |tools| {
                    let plan = tools.projects_plan()?;
                    let tool = match &plan {
                        tools::ProjectsPlan::Direct { tool } => tool.clone(),
                        tools::ProjectsPlan::ByOrganization { organizations, .. } => {
                            organizations.clone()
                        }
                    };
                    *decided.lock().unwrap_or_else(|p| p.into_inner()) = Some(plan);
                    Ok((tool, Map::new()))
                },
                observer,
            )
            .await?;
        let records = |answered: Answered| {
            let reply: Reply<Bounded<Value, MAX_PROJECTS>> = self.decode(answered)?;
            Ok::<_, BackendError>(reply.data.unwrap_or_default().0)
        };
        let mut found: Vec<ProjectEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut keep = |listed: &[Value], organization: Option<&str>| {
            for entry in listed
                .iter()
                .filter_map(|r| tools::project_entry(r, organization))
            {
                if seen.insert(entry.id.clone()) {
                    found.push(entry);
                }
            }
        };
        let plan = decided.lock().unwrap_or_else(|p| p.into_inner()).take();
        match plan {
            Some(tools::ProjectsPlan::ByOrganization {
                projects, argument, ..
            }) => {
                let organizations = records(first)?;
                // One paced call each: a list past the bound would keep a
                // person waiting for minutes; it is said instead.
                if organizations.len() > MAX_ORGANIZATIONS {
                    return Err(BackendError::TooMany {
                        what: "organizations to list the projects of, one call each",
                        bound: MAX_ORGANIZATIONS,
                    });
                }
                for (id, name) in organizations.iter().filter_map(tools::organization) {
                    let mut args = Map::new();
                    args.insert(argument.clone(), id.into());
                    let answered = self
                        .call_tool(|_| Ok((projects.clone(), args.clone())), observer)
                        .await?;
                    keep(&records(answered)?, Some(&name));
                }
            }
            _ => keep(&records(first)?, None),
        }
        Ok(found)
    }

    /// Whether Loomi's `list_voucher_codes` takes `status`.
    pub async fn filters_by_status(&self) -> Result<bool, BackendError> {
        self.with_session(|opened| Ok(opened.tools.codes_take_status()))
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
        StoreProblem::Locked { path, waited } => BackendError::CredentialsFile {
            path: path.display().to_string(),
            detail: format!(
                "another process held its lock for over {} s",
                waited.as_secs()
            ),
        },
    }
}

/// rmcp's tools as the JSON `tools/list` carried.
fn to_values(tools: &[rmcp::model::Tool]) -> Vec<Value> {
    tools
        .iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect()
}
