//! Loomi Connect, Bloomreach's hosted MCP server, as a backend: the voucher tools of the seed
//! served from live data behind the user's Bloomreach login.
//!
//! Nothing happens at start. The first call reads the stored login ([`credentials`]), refreshes
//! it when it has expired ([`oauth::Auth`]), opens the MCP session on rmcp's client ([`session`])
//! and lists Loomi's tools once; later calls reuse both. Each tool call is paced to Loomi's rate
//! limit ([`pacing`]), a 429 or a "Too many requests" tool error is waited out, a 401 is answered
//! by one refresh, a session that will not reopen is opened anew once. Without a usable login the
//! call starts one ([`oauth`], [`callback`]) and fails with the authorization URL; the next call
//! after the callback works.

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
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{Map, Value};
use tokio::sync::{mpsc::Receiver, Mutex, MutexGuard};

pub use super::error::LoginProblem;
pub use credentials::{CredentialsFile, StoreProblem, StoredLogin};
pub use oauth::{ClientIdentity, OAuthProblem};
pub use tools::{Choice, ToolSet};

use self::callback::{Callback, LOGIN_WAIT};
use self::oauth::{Auth, Authorization, KnownClient, LoginSetup, OAuthHttp, TokenProblem};
use self::pacing::{Limits, Pacer};
use self::session::{Bearer, Fault, Session};
use self::tools::{payload, ProjectsPlan, ToolAnswer};
use super::error::{AnswerProblem, BackendError, LoginReason, Service};
use super::model::{
    Bounded, Capped, Code, CodesPage, CodesQuery, Pool, PoolRef, PoolSummary, Reply, SkipCheck,
    MAX_CODES_PER_PAGE, MAX_POOLS, MAX_PROJECTS,
};
use super::network::{failure::unreachable, Network};
use super::notice::{RetryNotice, RetryObserver, RetryReason};
use super::quote::Quoter;
use super::{Id, ProjectEntry, Secret};

/// Rate-limit retries of one call, and the longest wait taken.
pub const MAX_RETRIES: u32 = 3;
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(15);
/// The most sign-ins one `login` makes (the first, a step-up to more scopes, a move to another
/// authorization server).
pub const MAX_SIGN_INS: u32 = 3;

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
    session: Mutex<Option<Arc<Opened>>>,
    pending: Mutex<Option<Pending>>,
    pacer: Pacer,
    /// An access token refused for good: no request is made with it while the file holds it.
    refused: std::sync::Mutex<Option<String>>,
    /// Calls take their pacing turns in arrival order (a fair lock, held from a call's start
    /// until its turn is reserved).
    arrival: Mutex<()>,
}

/// The HTTP clients, made by the first call.
struct Clients {
    mcp: reqwest::Client,
    auth: Arc<Auth>,
    oauth: OAuthHttp,
}

struct Opened {
    session: Session,
    tools: ToolSet,
}

/// Addresses a person pastes (the browser's last address, for a login whose browser cannot reach
/// this machine), and what hears why a pasted line was not taken.
pub type Pasted<'a> = (&'a Mutex<Receiver<String>>, &'a (dyn Fn(&str) + Sync));

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

/// A login a call started: waiting for its callback, or one that could not start (kept a while,
/// so that calls arriving meanwhile share it instead of each trying discovery again): the URL and
/// whether its login ended, or when it failed and why.
enum Pending {
    Waiting(String, Arc<AtomicBool>),
    Failed(std::time::Instant, Box<LoginProblem>),
}

/// How long a login that could not start is answered as is.
const FAILED_LOGIN_KEPT: Duration = Duration::from_secs(30);

/// The seed's envelope Loomi answered a call with, and the quoter that scrubs the login's secrets
/// out of anything quoted from it.
struct Answered {
    envelope: Value,
    quoter: Quoter,
}

impl Answered {
    /// The envelope, or the failure it reports (`success: false`).
    fn ok(self) -> Result<Self, BackendError> {
        let Self { envelope, quoter } = &self;
        if envelope.get("success") != Some(&Value::Bool(false)) {
            return Ok(self);
        }
        let message = quoter.api_message(envelope.get("error"), envelope.get("errors"));
        let none = "Loomi Connect reported a failure and gave no reason";
        Err(fail(message.unwrap_or_else(|| none.to_owned())))
    }
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
        let (authorization, callback) = (self.authorization, self.callback);
        let granted = callback.code(&authorization.state, wait).await;
        let granted = granted.map_err(LoginProblem::Callback)?;
        let login = authorization
            .finish(&granted.code, granted.iss.as_deref())
            .await;
        login.map_err(|(p, _)| LoginProblem::OAuth(p))
    }
}

pub struct SignedIn {
    pub tools: ToolSet,
}

impl LoomiClient {
    pub fn new(options: LoomiOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                host: super::network::host_port(&options.url),
                pacer: Pacer::new(options.limits),
                options,
                http: OnceLock::new(),
                session: Mutex::new(None),
                pending: Mutex::new(None),
                refused: std::sync::Mutex::new(None),
                arrival: Mutex::new(()),
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
        let made = self.inner.http.get_or_init(|| {
            let o = &self.inner.options;
            let builder = || o.network.client_builder().user_agent(crate::USER_AGENT);
            let mcp = session::http_client(builder(), &o.url, o.timeout)?;
            let oauth = OAuthHttp::new(builder, o.timeout)?;
            let auth = Auth::new(o.url.clone(), o.file.clone(), oauth.clone(), o.timeout);
            let auth = Arc::new(auth);
            Ok(Clients { mcp, auth, oauth })
        });
        made.as_ref().map_err(Clone::clone)
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

    /// Discovery, the client and the authorization URL, with the loopback callback bound (on
    /// `port`, or a free one).
    pub async fn prepare_login(&self, port: Option<u16>) -> Result<PreparedLogin, LoginProblem> {
        let setup = self.setup()?;
        let callback = Arc::new(Callback::bind(port).await.map_err(LoginProblem::Callback)?);
        let authorization = oauth::authorize(&setup, &callback.redirect_uri, None, &[], None).await;
        let authorization = authorization.map_err(LoginProblem::OAuth)?;
        Ok(PreparedLogin {
            authorization_url: authorization.url.clone(),
            authorization,
            callback,
        })
    }

    /// The whole login of a person at a terminal: sign in (`show` hands each authorization URL to
    /// the person), store the login, then check it by listing Loomi's tools and calling one that
    /// reads. A 403 asking for more scopes, or a 401 after the move to another authorization
    /// server, is answered by a new sign-in (scopes joined; registered again where the issuer
    /// changed), at most [`MAX_SIGN_INS`] in all.
    pub async fn sign_in(
        &self,
        port: Option<u16>,
        wait: Duration,
        show: &(dyn Fn(&Url) + Sync),
        pasted: Option<Pasted<'_>>,
    ) -> Result<SignedIn, LoginProblem> {
        let setup = self.setup()?;
        let callback = Callback::bind(port).await.map_err(LoginProblem::Callback)?;
        let uri = &callback.redirect_uri;
        let (mut challenge, mut known): (Option<String>, Option<KnownClient>) = (None, None);
        let (mut scopes, mut tries) = (Vec::<String>::new(), 0u32);
        loop {
            tries += 1;
            let auth = oauth::authorize(&setup, uri, challenge.as_deref(), &scopes, known.as_ref());
            let auth = auth.await.map_err(LoginProblem::OAuth)?;
            show(&auth.url);
            let granted = callback.code_or_pasted(&auth.state, wait, pasted).await;
            let granted = granted.map_err(LoginProblem::Callback)?;
            known = Some(auth.client.clone());
            let asked = auth.scopes.clone();
            let login = auth.finish(&granted.code, granted.iss.as_deref()).await;
            let login = login.map_err(|(p, _)| LoginProblem::OAuth(p))?;
            self.forget_session().await;
            *locked(&self.inner.refused) = None;
            match self.check(bearer(&login)).await {
                Ok(tools) => return Ok(SignedIn { tools }),
                Err(Fault::InsufficientScope { scope }) if tries < MAX_SIGN_INS => {
                    scopes = asked;
                    for s in scope.as_deref().unwrap_or("").split_whitespace() {
                        if !scopes.iter().any(|j| j == s) {
                            scopes.push(s.to_owned());
                        }
                    }
                }
                Err(Fault::Unauthorized { challenge: c }) if tries < MAX_SIGN_INS => {
                    // Another authorization server now: discover again from its challenge.
                    challenge = c;
                    scopes = Vec::new();
                }
                Err(Fault::InsufficientScope { scope }) => {
                    let scope = scope.unwrap_or_default();
                    return Err(LoginProblem::OAuth(OAuthProblem::StepUp { scope, tries }));
                }
                Err(fault) => {
                    let quoter = Quoter::new(login.secrets());
                    return Err(LoginProblem::Check(self.fault_error(fault, &quoter, 0)));
                }
            }
        }
    }

    /// Opens a session with `token`, lists the tools and calls one that reads.
    async fn check(&self, token: Secret) -> Result<ToolSet, Fault> {
        let session = self.open_session(token).await?;
        let result = async {
            let tools = tool_set(&session.list_tools().await?);
            if let Some(probe) = tools.probe_tool() {
                session.call_tool(probe, Map::new()).await?;
            }
            Ok::<_, Fault>(tools)
        }
        .await;
        session.close().await;
        result
    }

    async fn open_session(&self, token: Secret) -> Result<Session, Fault> {
        let clients = self.clients().map_err(|detail| Fault::Setup { detail })?;
        let bearer = Bearer::new(clients.mcp.clone(), token);
        Session::open(&self.inner.options.url, bearer, self.inner.options.timeout).await
    }

    async fn forget_session(&self) {
        let old = self.inner.session.lock().await.take();
        if let Some(old) = old.and_then(|o| Arc::try_unwrap(o).ok()) {
            old.session.close().await;
        }
    }

    /// Remembers `token` as refused for good and drops the session opened with it.
    async fn forget(&self, token: &str) {
        *locked(&self.inner.refused) = Some(token.to_owned());
        self.forget_session().await;
    }

    /// The failure of a call that needs a login: names the URL of the one pending.
    async fn login_required(&self, reason: LoginReason) -> BackendError {
        let (authorization_url, problem) = self.pending_login().await;
        BackendError::LoginRequired {
            reason,
            authorization_url,
            problem,
        }
    }

    /// The URL of the login pending (started here when none is), or why none could start.
    async fn pending_login(&self) -> (Option<String>, Option<Box<LoginProblem>>) {
        let mut pending = self.inner.pending.lock().await;
        match pending.as_ref() {
            Some(Pending::Waiting(url, done)) if !done.load(Ordering::SeqCst) => {
                return (Some(url.clone()), None);
            }
            Some(Pending::Failed(at, problem)) if at.elapsed() < FAILED_LOGIN_KEPT => {
                return (None, Some(problem.clone()));
            }
            _ => {}
        }
        match self.prepare_login(None).await {
            Ok(prepared) => {
                let url = prepared.authorization_url.to_string();
                let done = Arc::new(AtomicBool::new(false));
                *pending = Some(Pending::Waiting(url.clone(), Arc::clone(&done)));
                let client = self.clone();
                tokio::spawn(async move {
                    match prepared.finish(LOGIN_WAIT).await {
                        Ok(_) => {
                            *locked(&client.inner.refused) = None;
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
                (Some(url), None)
            }
            Err(problem) => {
                let problem = Box::new(problem);
                *pending = Some(Pending::Failed(std::time::Instant::now(), problem.clone()));
                (None, Some(problem))
            }
        }
    }

    /// The login to use now: the stored one, refreshed when it expired or its token was refused.
    async fn login(&self, refused: Option<&str>) -> Result<StoredLogin, BackendError> {
        let clients = self
            .clients()
            .map_err(|detail| BackendError::ClientSetup { detail })?;
        let remembered = locked(&self.inner.refused).clone();
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

    async fn opened(&self, token: Secret) -> Result<Arc<Opened>, Fault> {
        let mut slot = self.inner.session.lock().await;
        if let Some(opened) = slot.as_ref() {
            opened.session.bearer.set(token);
            return Ok(Arc::clone(opened));
        }
        let session = self.open_session(token).await?;
        let tools = tool_set(&session.list_tools().await?);
        let opened = Arc::new(Opened { session, tools });
        *slot = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// What Loomi said of itself when the session opened: the protocol version, and its name and
    /// version where it gave them (for `doctor`).
    pub async fn server_facts(&self) -> Result<ServerFacts, BackendError> {
        self.with_session(|opened| {
            let info = opened.session.service.peer_info();
            let server = info.as_ref().and_then(|i| i.server_info.as_ref());
            let short = |s: &str, n| crate::text::escape_controls(&crate::text::shorten(s, n));
            let protocol = info.as_ref().map(|i| i.protocol_version.to_string());
            Ok(ServerFacts {
                protocol: protocol.unwrap_or_default(),
                name: server.map(|s| short(&s.name, 100)),
                version: server.map(|s| short(&s.version, 50)),
                tools: opened.tools.clone(),
            })
        })
        .await
    }

    /// What a session fault leads to: once a refresh after a 401, once a new session after a lost
    /// one (`None`: try again), a login needed after a second 401; any other fault is handed back.
    async fn recover(
        &self,
        fault: Fault,
        token: &Secret,
        login: &mut StoredLogin,
        (refreshed, reopened): &mut (bool, bool),
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

    /// Runs `then` on the open session, with one refresh after a 401 and one new session after a
    /// lost one.
    async fn with_session<T>(
        &self,
        then: impl Fn(&Opened) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut login = self.login(None).await?;
        let mut tries = (false, false);
        loop {
            let token = bearer(&login);
            let fault = match self.opened(token.clone()).await {
                Ok(opened) => return then(&opened),
                Err(fault) => fault,
            };
            if let Some(fault) = self.recover(fault, &token, &mut login, &mut tries).await? {
                return Err(self.fault_error(fault, &Quoter::new(login.secrets()), 0));
            }
        }
    }

    /// Calls the Loomi tool `pick` names, with its arguments; the seed envelope it answered.
    async fn call_tool(
        &self,
        pick: impl Fn(&ToolSet) -> Result<(String, Map<String, Value>), BackendError>,
        observer: RetryObserver<'_>,
    ) -> Result<Answered, BackendError> {
        let deadline = self.deadline();
        let timed = tokio::time::timeout(deadline, self.call_tool_once(pick, observer)).await;
        let host = self.inner.host.clone();
        timed.unwrap_or(Err(BackendError::Deadline { host, deadline }))
    }

    /// The longest a tool call may take in all (its turn, a refresh, a new session, rate-limit
    /// waits and the exchange): four timeouts, and at least two minutes.
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
        let (mut tries, mut retries) = ((false, false), 0u32);
        loop {
            let token = bearer(&login);
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
                    ToolAnswer::Envelope(envelope) => return Answered { envelope, quoter }.ok(),
                    ToolAnswer::RateLimited { wait } => wait,
                    ToolAnswer::Failed { message } => {
                        return Err(fail(quoter.quote(&message, 300)))
                    }
                    ToolAnswer::Unreadable { problem, excerpt } => {
                        return Err(unexpected(problem, Some(quoter.quote(&excerpt, 200))))
                    }
                },
                Err(fault) => match self.recover(fault, &token, &mut login, &mut tries).await? {
                    None => continue,
                    Some(Fault::RateLimited { retry_after }) => retry_after,
                    Some(fault) => return Err(self.fault_error(fault, &quoter, retries)),
                },
            };
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
            let wait = wait.unwrap_or(Duration::from_secs(1));
            let wait = wait.max(Duration::from_millis(100));
            observer(&RetryNotice {
                retry: retries,
                max_retries: MAX_RETRIES,
                wait,
                reason: RetryReason::RateLimited,
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for this call's turn under the rate limit (in arrival order: `arrival`, the lock held
    /// since the call came, is let go once the call is in the line), telling why when the wait is
    /// over a second.
    async fn paced(&self, arrival: Option<MutexGuard<'_, ()>>, observer: RetryObserver<'_>) {
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
        let (host, timeout) = (self.inner.host.clone(), self.inner.options.timeout);
        let quoted = |excerpt: &str| quoter.quote_capped(excerpt, session::MAX_ERROR_BODY, 200);
        match fault {
            Fault::Timeout => BackendError::Timeout { host, timeout },
            Fault::Transport { failure, cause } => {
                let cause = cause.map(|c| quoter.scrub(&c));
                let proxy = self.inner.options.network.proxy_for(self.url());
                unreachable(proxy, host, failure, cause, retries)
            }
            Fault::Redirect { location } => BackendError::Redirect {
                service: Service::Loomi,
                host,
                location: quoter.quote(&location, 120),
            },
            Fault::JsonRpc { code, message } => {
                fail(quoter.quote(&format!("JSON-RPC error {code}: {message}"), 300))
            }
            Fault::Unreadable { detail, excerpt } => {
                unexpected(missing_field(quoter, &detail), Some(quoted(&excerpt)))
            }
            Fault::Status { status, excerpt } => {
                loomi_status(status, Some(quoted(&excerpt)).filter(|e| !e.is_empty()))
            }
            Fault::Setup { detail } => BackendError::ClientSetup { detail },
            Fault::TooLarge => BackendError::BodyTooLarge {
                limit: session::MAX_ANSWER_BYTES,
            },
            Fault::RateLimited { retry_after } => BackendError::RateLimited {
                retries,
                retry_after,
            },
            Fault::SessionGone => loomi_status(404, Some("the session was dropped again".into())),
            Fault::InsufficientScope { scope: Some(s) } => {
                let lacks = format!("insufficient_scope: the login lacks the scope {s}");
                loomi_status(403, Some(quoter.quote(&lacks, 200)))
            }
            Fault::InsufficientScope { scope: None } => loomi_status(
                403,
                Some("insufficient_scope: the login lacks a scope".into()),
            ),
            Fault::Unauthorized { .. } => loomi_status(401, None),
        }
    }

    fn decode<D: DeserializeOwned>(&self, answered: Answered) -> Result<Reply<D>, BackendError> {
        let Answered { envelope, quoter } = answered;
        // Read in place: the excerpt is made only when it is needed.
        let excerpt = |v: &Value| Some(quoter.quote(&v.to_string(), 200));
        let reply = Reply::<D>::deserialize(&envelope).map_err(|e| {
            let detail = e.to_string();
            crate::backend::model::bound_error(&detail)
                .unwrap_or_else(|| unexpected(missing_field(&quoter, &detail), excerpt(&envelope)))
        })?;
        if reply.data.is_none() {
            return Err(unexpected(AnswerProblem::NoData, excerpt(&envelope)));
        }
        Ok(reply)
    }

    pub async fn list_pools(
        &self,
        project_id: &Id,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, BackendError> {
        let mut answered = self.pool_records(project_id, None, observer).await?;
        answered.envelope = tools::with_ids(answered.envelope.take());
        let reply: Reply<Bounded<PoolSummary, MAX_POOLS>> = self.decode(answered)?;
        Ok(reply.data.unwrap_or_default().0)
    }

    /// Pool records of the project, as one envelope. With `one`, and a pool tool that declares an
    /// id argument: that pool, asked by id. Otherwise every pool: the pools tool called without an
    /// id, page after page where it declares paging, until a page comes back short or the records
    /// reach the count it gave; more than [`MAX_POOLS`] is a failure that names the bound. What the
    /// tools declare is read inside each call, so that calls keep their arrival order.
    async fn pool_records(
        &self,
        project_id: &Id,
        one: Option<&Id>,
        observer: RetryObserver<'_>,
    ) -> Result<Answered, BackendError> {
        // How the last call was made: by id, or a page of the list.
        let plan: std::sync::Mutex<Option<(bool, Option<tools::Paging>)>> = Default::default();
        let too_many_pools = too_many("voucher pools in the project", MAX_POOLS);
        let (mut records, mut repeats, mut pages) = (Vec::new(), SkipCheck::default(), 0usize);
        loop {
            let offset = records.len() as u64;
            let pick = |tools: &ToolSet| -> Result<_, BackendError> {
                let mut args = Map::new();
                args.insert("project_id".into(), project_id.as_str().into());
                if let Some(pool_id) = one {
                    let (tool, pool_arg) = tools.pool_tool()?;
                    if let Some(pool_arg) = pool_arg {
                        tools.takes(&tool, "project_id")?;
                        tools.requires_only(&tool, &["project_id", &pool_arg])?;
                        args.insert(pool_arg, pool_id.as_str().into());
                        *locked(&plan) = Some((true, None));
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
                *locked(&plan) = Some((false, paging));
                Ok((tool, args))
            };
            let mut answered = self.call_tool(pick, observer).await?;
            let (by_id, paging) = locked(&plan).clone().unwrap_or((true, None));
            if by_id {
                return Ok(answered);
            }
            let envelope = &mut answered.envelope;
            let counted = envelope["matched"].as_u64().or(envelope["total"].as_u64());
            let page = match envelope.get_mut("data") {
                Some(Value::Array(page)) => std::mem::take(page),
                // Not a list: decoded (and refused) as it is.
                _ => return Ok(answered),
            };
            let Some(paging) = paging else {
                if page.len() > MAX_POOLS {
                    return Err(too_many_pools);
                }
                envelope["data"] = Value::Array(page);
                return Ok(answered);
            };
            repeats.page(offset, offset > 0, page.first().and_then(tools::record_id))?;
            let (short, empty) = ((page.len() as u64) < paging.size, page.is_empty());
            records.extend(page);
            pages += 1;
            if records.len() > MAX_POOLS {
                return Err(too_many_pools);
            }
            // A short page is the end where Loomi gives no count, or the count is reached; where it
            // counts more, the next page is asked (a server may answer fewer than asked), and an
            // empty one is a failure, never part of the list as a success.
            let reached = counted.is_some_and(|c| records.len() as u64 >= c);
            if reached || (short && counted.is_none()) {
                envelope["data"] = Value::Array(records);
                return Ok(answered);
            }
            if let (true, Some(matched)) = (empty, counted) {
                return Err(BackendError::RanOut {
                    what: "voucher pools in the project",
                    read: records.len() as u64,
                    matched,
                });
            }
            if pages >= MAX_POOL_PAGES {
                let what = "pages of voucher pools (one paced call each)";
                return Err(too_many(what, MAX_POOL_PAGES));
            }
        }
    }

    pub async fn get_pool(
        &self,
        pool: PoolRef<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        let answered = self.pool_records(pool.project_id, Some(pool.pool_id), observer);
        let Answered { envelope, quoter } = answered.await?;
        // `search_voucher_pools` may answer a list: the pool is the one with the id asked for.
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
        let pick = |tools: &ToolSet| -> Result<_, BackendError> {
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
        };
        let envelope = self.call_tool(pick, observer).await?;
        let reply: Reply<Capped<Code, MAX_CODES_PER_PAGE>> = self.decode(envelope)?;
        Ok(CodesPage::from_reply(reply, query))
    }

    /// The projects the login can see: Loomi's `list_projects`, once, or for each organization of
    /// `list_cloud_organizations` in its order where it requires one; each project once, the first
    /// seen kept.
    pub async fn list_projects(
        &self,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<ProjectEntry>, BackendError> {
        let decided: std::sync::Mutex<Option<ProjectsPlan>> = Default::default();
        let pick = |tools: &ToolSet| -> Result<_, BackendError> {
            let plan = tools.projects_plan()?;
            let tool = match &plan {
                ProjectsPlan::Direct { tool } => tool.clone(),
                ProjectsPlan::ByOrganization { organizations, .. } => organizations.clone(),
            };
            *locked(&decided) = Some(plan);
            Ok((tool, Map::new()))
        };
        let first = self.call_tool(pick, observer).await?;
        let records = |answered: Answered| {
            let reply: Reply<Bounded<Value, MAX_PROJECTS>> = self.decode(answered)?;
            Ok::<_, BackendError>(reply.data.unwrap_or_default().0)
        };
        let (mut found, mut seen) = (Vec::<ProjectEntry>::new(), std::collections::HashSet::new());
        let mut keep = |listed: &[Value], organization: Option<&str>| {
            for record in listed {
                let entry = tools::project_entry(record, organization);
                found.extend(entry.filter(|e| seen.insert(e.id.clone())));
            }
        };
        let plan = locked(&decided).take();
        match plan {
            Some(ProjectsPlan::ByOrganization {
                projects, argument, ..
            }) => {
                let organizations = records(first)?;
                // One paced call each: a list past the bound would keep a
                // person waiting for minutes; it is said instead.
                if organizations.len() > MAX_ORGANIZATIONS {
                    let what = "organizations to list the projects of, one call each";
                    return Err(too_many(what, MAX_ORGANIZATIONS));
                }
                for (id, name) in organizations.iter().filter_map(tools::organization) {
                    let args = Map::from_iter([(argument.clone(), Value::from(id))]);
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
        self.with_session(|o| Ok(o.tools.codes_take_status())).await
    }
}

fn store_error(problem: &StoreProblem) -> BackendError {
    let (path, detail) = match problem {
        StoreProblem::Io { path, detail } | StoreProblem::Unreadable { path, detail } => {
            (path, detail.clone())
        }
        StoreProblem::Locked { path, waited } => {
            let secs = waited.as_secs();
            let detail = format!("another process held its lock for over {secs} s");
            (path, detail)
        }
    };
    let path = path.display().to_string();
    BackendError::CredentialsFile { path, detail }
}

/// Loomi's tools, read from the JSON `tools/list` carried.
fn tool_set(tools: &[rmcp::model::Tool]) -> ToolSet {
    let listed: Vec<Value> = tools.iter().flat_map(serde_json::to_value).collect();
    ToolSet::from_listed(&listed)
}

/// The login's access token; none is sent as an empty one.
fn bearer(login: &StoredLogin) -> Secret {
    login.bearer().unwrap_or_else(|| Secret::new(String::new()))
}

fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn too_many(what: &'static str, bound: usize) -> BackendError {
    BackendError::TooMany { what, bound }
}

fn fail(message: String) -> BackendError {
    BackendError::Failed {
        service: Service::Loomi,
        message,
    }
}

fn unexpected(problem: AnswerProblem, excerpt: Option<String>) -> BackendError {
    BackendError::Unexpected {
        service: Service::Loomi,
        problem,
        excerpt,
    }
}

fn missing_field(quoter: &Quoter, detail: &str) -> AnswerProblem {
    let detail = quoter.quote(detail, 150);
    AnswerProblem::MissingField { detail }
}

fn loomi_status(status: u16, excerpt: Option<String>) -> BackendError {
    BackendError::Status {
        service: Service::Loomi,
        status,
        excerpt,
    }
}
