//! What can go wrong when a backend is asked for voucher data.
//!
//! Each variant is made where the fault is seen and carries the facts a person needs (status,
//! subject, retries, a short quote); it holds no sentence. The tools turn it into words with advice
//! (`tools/words.rs`), which is where tool names and setting names are known. Quoted upstream text
//! is already shortened and scrubbed of credentials by the time it lands here.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::id::Id;

/// The thing a request was about, named in "not found" messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Project { project_id: Id },
    Pool { project_id: Id, pool_id: Id },
}

/// Why an answer could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerProblem {
    /// The body is not JSON.
    NotJson,
    /// The body is JSON, but a required field is missing or has the wrong
    /// type; `detail` is the decoder's short, scrubbed account.
    MissingField { detail: String },
    /// The body has no `data`.
    NoData,
    /// The body could not be decoded (a corrupt compressed body).
    Undecodable { detail: String },
    /// The answer is not well-formed HTTP (a head too large, a bad header).
    Malformed { detail: String },
}

/// Which part of an exchange broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    /// The server's certificate is not trusted (or not valid for it):
    /// trying again would fail the same way.
    Certificate,
    Tls,
    Connect,
    BodyBroken,
    /// The answer is not well-formed HTTP, or no request could be built:
    /// trying again would fail the same way.
    Malformed,
    Other,
}

/// How a proxy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFailure {
    Unreachable,
    /// The proxy refused to open a tunnel to the host (or could not).
    RefusedTunnel,
    /// The proxy wants credentials (HTTP 407): not retried.
    AuthRequired,
    /// The proxy answered something that is not a tunnel.
    Broken,
}

/// Which service answered: the REST API or Loomi Connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Api,
    Loomi,
}

/// Why a login is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginReason {
    NotLoggedIn,
    /// The stored one is for another Loomi URL.
    OtherUrl,
    /// The refresh was refused, or the token was refused after one.
    Refused,
}

/// A failed call to a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// No way in is configured.
    NotConfigured,
    /// A setting cannot work; the words say which and what to do.
    Setup { words: String },
    /// This backend cannot filter codes by status.
    CannotFilterByStatus,
    /// A page filtered by `status` did not say how many codes match.
    NoCount { status: &'static str },
    /// HTTP 400.
    Rejected { message: Option<String> },
    /// HTTP 401.
    Unauthorized { message: Option<String> },
    /// HTTP 403.
    Forbidden { message: Option<String> },
    /// HTTP 404.
    NotFound {
        subject: Subject,
        message: Option<String>,
    },
    /// HTTP 429, still after `retries` retries.
    RateLimited {
        retries: u32,
        retry_after: Option<Duration>,
    },
    /// A retryable status asked for a longer wait than the server waits.
    RetryAfterTooLong {
        status: u16,
        wait: Duration,
        until: SystemTime,
    },
    /// HTTP 500, 502, 503 or 504, still after `retries` retries.
    Server {
        status: u16,
        retries: u32,
        excerpt: Option<String>,
    },
    /// Any other status that is not a success.
    Status {
        service: Service,
        status: u16,
        excerpt: Option<String>,
    },
    /// A redirect to another origin, not followed.
    Redirect {
        service: Service,
        host: String,
        location: String,
    },
    /// Same-origin redirects without end.
    RedirectLoop { host: String, max: usize },
    /// The answer said `success: false` (or, from Loomi Connect, `isError`
    /// or a JSON-RPC error), quoted short and scrubbed.
    Failed { service: Service, message: String },
    /// The request URL could not be made from the base URL.
    BadUrl { detail: String },
    /// The answer could not be used.
    Unexpected {
        service: Service,
        problem: AnswerProblem,
        excerpt: Option<String>,
    },
    /// The answer is larger than the most read.
    BodyTooLarge { limit: usize },
    /// No complete answer in time.
    Timeout { host: String, timeout: Duration },
    /// The connection failed, still after `retries` retries.
    Connection {
        host: String,
        failure: TransportFailure,
        /// The innermost cause, scrubbed, where it says more than `failure`.
        cause: Option<String>,
        retries: u32,
    },
    /// The proxy requests go through failed, still after `retries` retries.
    Proxy {
        /// `host:port` of the proxy.
        proxy: String,
        /// The variable that set it.
        variable: &'static str,
        /// The host the tunnel was for.
        host: String,
        failure: ProxyFailure,
        cause: Option<String>,
        retries: u32,
    },
    /// The HTTP client could not be made.
    ClientSetup { detail: String },
    /// Loomi Connect needs a login; the URL of the one started, or why none could be.
    LoginRequired {
        reason: LoginReason,
        authorization_url: Option<String>,
        problem: Option<Box<LoginProblem>>,
    },
    /// Loomi Connect's tool does not declare an argument this server must send.
    LoomiArgument { tool: String, argument: String },
    /// The page asked for at `skip` began with the same code as the page
    /// before: the API seems to ignore `skip`.
    SkipIgnored { skip: u64 },
    /// The pages ran out after `read` records (`what`: "codes", "voucher pools") while the answer
    /// counted `matched`: what they hold would be a wrong answer.
    RanOut {
        what: &'static str,
        read: u64,
        matched: u64,
    },
    /// A list holds more than this server reads (`what`: "pools", …):
    /// answered as a failure, never as part of the list.
    TooMany { what: &'static str, bound: usize },
    /// A Loomi Connect call took longer than its deadline in all.
    Deadline { host: String, deadline: Duration },
    /// Loomi Connect does not offer this tool.
    LoomiToolMissing { tool: String },
    /// The authorization server failed (not a refusal of the login).
    LoomiAuth { problem: Box<OAuthProblem> },
    /// The credentials file could not be read or written.
    CredentialsFile { path: String, detail: String },
}

impl BackendError {
    /// A wait of `wait` asked with `status`, longer than this server waits.
    pub fn wait_too_long(status: u16, wait: Duration) -> Self {
        Self::RetryAfterTooLong {
            status,
            wait,
            until: SystemTime::now()
                .checked_add(wait)
                .unwrap_or_else(SystemTime::now),
        }
    }
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

/// What went wrong talking to the authorization server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthProblem {
    /// No usable protected resource or authorization server metadata.
    Discovery { detail: String },
    /// The server refused a request: its `error` and `error_description`.
    Refused {
        step: Step,
        status: u16,
        error: Option<String>,
        description: Option<String>,
    },
    /// The exchange itself failed (connection, timeout, unreadable answer).
    Exchange { step: Step, detail: String },
    /// The authorization server does not offer PKCE with S256.
    NoPkce,
    /// An endpoint is not `https://` (nor `http://` to a loopback host).
    Insecure { url: String },
    /// The authorization response or the metadata named another issuer.
    Issuer {
        expected: String,
        received: Option<String>,
    },
    /// The resource kept asking for more scopes after this many sign-ins.
    StepUp { scope: String, tries: u32 },
}

/// Which request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Registration,
    TokenExchange,
    Refresh,
}

/// How a wait for the callback ended without a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackProblem {
    /// The authorization server sent `error` (and maybe a description).
    Denied {
        error: String,
        description: Option<String>,
    },
    /// Nothing came in time.
    TimedOut,
    /// The listener failed.
    Io { detail: String },
}

/// Why the file could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreProblem {
    /// It could not be read, written or removed.
    Io { path: PathBuf, detail: String },
    /// It is not a login this version understands.
    Unreadable { path: PathBuf, detail: String },
    /// Another process held its lock longer than the wait allowed.
    Locked { path: PathBuf, waited: Duration },
}
