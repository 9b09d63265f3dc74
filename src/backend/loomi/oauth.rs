//! The authorization of the MCP specification, as a client, on rmcp's
//! `AuthorizationManager`: discovery (RFC 9728 protected resource metadata
//! with its `resource` checked against the MCP URL, RFC 8414 or OpenID
//! metadata with its `issuer` checked, the 2025-03-26 fallbacks), the client
//! (a preset one, a client ID metadata document, or dynamic registration),
//! the authorization code flow with PKCE S256, `state`, `resource` as
//! published and the RFC 9207 `iss` check, and the refresh grant. That
//! security code is the MCP project's own, tested against the official
//! conformance suite; this module wraps it:
//!
//! - [`OAuthHttp`] carries every OAuth request: the network settings (CA
//!   file, proxies), a timeout, a bounded body, and `https://` only
//!   (`http://` to a loopback host excepted), so no code, verifier, secret
//!   or token crosses the network in clear;
//! - [`authorize`] and [`Authorization::finish`]: one sign-in;
//! - [`Auth`]: the token a serving process sends, refreshed under the
//!   credentials file's lock after re-reading the file.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth2::HttpResponse;
use reqwest::Url;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, OAuthClientConfig, OAuthHttpClient,
    OAuthHttpClientError, OAuthHttpRedirectPolicy, OAuthHttpRequest, StoredCredentials,
};

pub use crate::backend::error::{OAuthProblem, Step};

use super::credentials::{CredentialsFile, FileStore, StoreProblem, StoredLogin, FORMAT};
use crate::backend::quote::Quoter;
use crate::backend::Secret;

/// The client name sent at registration.
pub const CLIENT_NAME: &str = "bloomreach-vouchers-mcp";
/// The longest body read from an authorization server.
const MAX_BODY: usize = 256 * 1024;
/// The most redirects an OAuth request follows.
const MAX_REDIRECTS: usize = 5;

impl OAuthProblem {
    /// The problem with every quoted text scrubbed of `quoter`'s secrets
    /// and cut short.
    pub fn scrubbed(self, quoter: &Quoter) -> Self {
        let quote = |t: String| quoter.quote(&t, 200);
        match self {
            Self::Refused {
                step,
                status,
                error,
                description,
            } => Self::Refused {
                step,
                status,
                error: error.map(quote),
                description: description.map(quote),
            },
            Self::Exchange { step, detail } => Self::Exchange {
                step,
                detail: quote(detail),
            },
            Self::Discovery { detail } => Self::Discovery {
                detail: quote(detail),
            },
            Self::Insecure { url } => Self::Insecure { url: quote(url) },
            Self::Issuer { expected, received } => Self::Issuer {
                expected: quote(expected),
                received: received.map(quote),
            },
            Self::StepUp { scope, tries } => Self::StepUp {
                scope: quote(scope),
                tries,
            },
            Self::NoPkce => Self::NoPkce,
        }
    }

    /// The facts of an rmcp error met at `step`.
    pub fn from_auth(step: Step, error: AuthError) -> Self {
        match error {
            AuthError::PkceUnsupported => Self::NoPkce,
            AuthError::AuthorizationServerMismatch {
                expected_issuer,
                received_issuer,
            } => Self::Issuer {
                expected: expected_issuer,
                received: Some(received_issuer),
            },
            AuthError::AuthorizationServerMissingIssuer { expected_issuer } => Self::Issuer {
                expected: expected_issuer,
                received: None,
            },
            AuthError::TokenRefreshRejected(detail) => Self::Refused {
                step: Step::Refresh,
                status: 400,
                error: Some("invalid_grant".to_owned()),
                description: Some(detail),
            },
            e @ (AuthError::RegistrationFailed(_)
            | AuthError::TokenExchangeFailed(_)
            | AuthError::TokenRefreshFailed(_)
            | AuthError::CredentialStoreError(_)) => Self::Exchange {
                step,
                detail: e.to_string(),
            },
            other => Self::Discovery {
                detail: other.to_string(),
            },
        }
    }
}

/// Whether `url` may carry OAuth traffic: `https://`, or `http://` to a
/// loopback host (a local fake, a local gateway).
pub fn secure_enough(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => is_loopback(url),
        _ => false,
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn check_secure(url: &str) -> Result<(), OAuthProblem> {
    match Url::parse(url) {
        Ok(u) if secure_enough(&u) => Ok(()),
        _ => Err(OAuthProblem::Insecure {
            url: crate::text::shorten(&crate::text::one_line(url), 200),
        }),
    }
}

/// Every endpoint the metadata names must be secure enough before any is
/// reached, opened or printed.
fn check_metadata(metadata: &AuthorizationMetadata) -> Result<(), OAuthProblem> {
    check_secure(&metadata.authorization_endpoint)?;
    check_secure(&metadata.token_endpoint)?;
    if let Some(r) = &metadata.registration_endpoint {
        check_secure(r)?;
    }
    match &metadata.code_challenge_methods_supported {
        Some(methods) if !methods.iter().any(|m| m == "S256") => Err(OAuthProblem::NoPkce),
        _ => Ok(()),
    }
}

/// A request URL that is not secure enough, refused before it is sent.
#[derive(Debug)]
struct InsecureUrl(String);

impl std::fmt::Display for InsecureUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not https:// (refused)", self.0)
    }
}

impl std::error::Error for InsecureUrl {}

/// The HTTP client of every OAuth request (see the module's doc).
#[derive(Clone)]
pub struct OAuthHttp {
    follow: reqwest::Client,
    stop: reqwest::Client,
    timeout: Duration,
}

impl OAuthHttp {
    /// Two clients from `builder` (the network settings): one that follows
    /// secure redirects, one that follows none.
    pub fn new(
        builder: impl Fn() -> reqwest::ClientBuilder,
        timeout: Duration,
    ) -> Result<Self, String> {
        let follow = builder()
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if secure_enough(attempt.url()) {
                    attempt.follow()
                } else {
                    let url = attempt.url().to_string();
                    attempt.error(InsecureUrl(url))
                }
            }))
            .connect_timeout(timeout)
            .build()
            .map_err(|e| crate::backend::network::failure::innermost(&e))?;
        let stop = builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .build()
            .map_err(|e| crate::backend::network::failure::innermost(&e))?;
        Ok(Self {
            follow,
            stop,
            timeout,
        })
    }

    async fn send(&self, request: OAuthHttpRequest) -> Result<HttpResponse, OAuthHttpClientError> {
        let url = Url::parse(&request.request.uri().to_string())?;
        if !secure_enough(&url) {
            return Err(Box::new(InsecureUrl(url.to_string())));
        }
        let client = match request.redirect_policy {
            OAuthHttpRedirectPolicy::Stop => &self.stop,
            _ => &self.follow,
        };
        let request = reqwest::Request::try_from(request.request)?;
        let exchange = async {
            let mut response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err::<HttpResponse, OAuthHttpClientError>(
                        format!("the answer is larger than {} KiB", MAX_BODY / 1024).into(),
                    );
                }
                body.extend_from_slice(&chunk);
            }
            Ok(answer.body(body)?)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs()).into()),
        }
    }
}

impl OAuthHttp {
    /// The `WWW-Authenticate` challenge the MCP endpoint answers a request
    /// without a token with (a `tools/list`, which every protected server
    /// refuses): where its resource metadata is and which scopes it wants.
    async fn challenge(&self, url: &Url) -> Option<String> {
        let body = r#"{"jsonrpc":"2.0","id":0,"method":"tools/list","params":{}}"#;
        let request = self
            .stop
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .body(body);
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .ok()?
            .ok()?;
        if !matches!(response.status().as_u16(), 401 | 403) {
            return None;
        }
        response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl OAuthHttpClient for OAuthHttp {
    fn execute(
        &self,
        request: OAuthHttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, OAuthHttpClientError>> + Send + '_>> {
        Box::pin(self.send(request))
    }
}

/// Who the client is.
#[derive(Clone, Debug, Default)]
pub struct ClientIdentity {
    /// A client registered in advance.
    pub client_id: Option<String>,
    /// Its secret, for a confidential client.
    pub client_secret: Option<Secret>,
    /// An `https://` client ID metadata document, used as the client id
    /// where the authorization server supports it.
    pub client_metadata_url: Option<String>,
}

/// What a sign-in needs.
#[derive(Clone)]
pub struct LoginSetup {
    pub url: Url,
    pub identity: ClientIdentity,
    pub file: CredentialsFile,
    pub http: OAuthHttp,
}

/// A client a previous sign-in of the same run used, and the issuer it
/// belongs to: reused when the issuer is the same, never elsewhere.
#[derive(Clone, Debug)]
pub struct KnownClient {
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// One sign-in under way: the URL to open, and what finishes it.
pub struct Authorization {
    manager: AuthorizationManager,
    store: FileStore,
    pub url: Url,
    pub state: String,
    pub client: KnownClient,
    pub scopes: Vec<String>,
}

/// Discovery, the client and the authorization URL. `challenge` is the
/// `WWW-Authenticate` value that asked for it, if any; `scopes` the scopes
/// to ask for (empty: as the metadata suggests); `known` a client already
/// registered with the same authorization server.
pub async fn authorize(
    setup: &LoginSetup,
    redirect_uri: &str,
    challenge: Option<&str>,
    scopes: &[String],
    known: Option<&KnownClient>,
) -> Result<Authorization, OAuthProblem> {
    let discovery = |e: AuthError| OAuthProblem::Discovery {
        detail: e.to_string(),
    };
    let mut manager = AuthorizationManager::new_with_oauth_http_client(
        setup.url.as_str(),
        Arc::new(setup.http.clone()),
    )
    .await
    .map_err(discovery)?;
    let probed = match challenge {
        Some(_) => None,
        None if secure_enough(&setup.url) => setup.http.challenge(&setup.url).await,
        None => None,
    };
    let resolution = manager
        .resolve_metadata_from_challenge(challenge.or(probed.as_deref()))
        .await
        .map_err(|e| OAuthProblem::from_auth(Step::Registration, e))?;
    let metadata = resolution.metadata;
    check_metadata(&metadata)?;
    // Published metadata must say it offers S256 (PKCE); only the
    // endpoints a 2025-03-26 server implies, with no metadata, are taken
    // on trust.
    if resolution.source.is_discovered() && metadata.code_challenge_methods_supported.is_none() {
        return Err(OAuthProblem::NoPkce);
    }
    manager.set_metadata(metadata.clone());
    let store = FileStore::new(
        setup.file.clone(),
        StoredLogin {
            format: FORMAT,
            mcp_url: setup.url.as_str().to_owned(),
            metadata: metadata.clone(),
            redirect_uri: redirect_uri.to_owned(),
            client_secret: None,
            credentials: StoredCredentials::new(String::new(), None, Vec::new(), None),
        },
    );
    manager.set_credential_store(store.clone());
    // The scopes the resource's challenge or metadata asks for, else those
    // the authorization server lists; none where nobody names any.
    let mut scopes = if scopes.is_empty() {
        let initial = manager.select_initial_scopes(&[]).await;
        if initial.is_empty() {
            manager.select_scopes(None, &[])
        } else {
            initial
        }
    } else {
        scopes.to_vec()
    };
    if !scopes.is_empty()
        && !scopes.iter().any(|s| s == "offline_access")
        && metadata
            .scopes_supported
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == "offline_access"))
    {
        scopes.push("offline_access".to_owned());
    }
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let cimd = metadata
        .additional_fields
        .get("client_id_metadata_document_supported")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let identity = &setup.identity;
    let config = if let Some(id) = &identity.client_id {
        let mut config = OAuthClientConfig::new(id.clone(), redirect_uri);
        if let Some(secret) = &identity.client_secret {
            config = config.with_client_secret(secret.expose());
        }
        config
    } else if let Some(k) = known.filter(|k| k.issuer == metadata.issuer) {
        let mut config = OAuthClientConfig::new(k.client_id.clone(), redirect_uri);
        if let Some(secret) = &k.client_secret {
            config = config.with_client_secret(secret.clone());
        }
        config
    } else if let Some(url) = identity.client_metadata_url.as_ref().filter(|_| cimd) {
        OAuthClientConfig::new(url.clone(), redirect_uri)
    } else {
        manager
            .register_client(CLIENT_NAME, redirect_uri, &scope_refs)
            .await
            .map_err(|e| OAuthProblem::from_auth(Step::Registration, e))?
    };
    let config = config.with_scopes(scopes.clone());
    let client = KnownClient {
        issuer: metadata.issuer.clone(),
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.clone(),
    };
    store.set_client_secret(client.client_secret.clone());
    manager
        .configure_client(config)
        .map_err(|e| OAuthProblem::from_auth(Step::Registration, e))?;
    let url = manager
        .get_authorization_url(&scope_refs)
        .await
        .map_err(|e| OAuthProblem::from_auth(Step::Registration, e))?;
    check_secure(&url)?;
    let url = Url::parse(&url).map_err(|e| OAuthProblem::Discovery {
        detail: e.to_string(),
    })?;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Ok(Authorization {
        manager,
        store,
        url,
        state,
        client,
        scopes,
    })
}

impl Authorization {
    /// Exchanges the callback's code (the `iss` it carried checked against
    /// the issuer, RFC 9207) and stores the login; the login stored.
    pub async fn finish(
        self,
        code: &str,
        iss: Option<&str>,
    ) -> Result<StoredLogin, (OAuthProblem, Quoter)> {
        let quoter = Quoter::new(self.client.client_secret.clone());
        let fail = |e: AuthError| {
            (
                OAuthProblem::from_auth(Step::TokenExchange, e).scrubbed(&quoter),
                quoter.clone(),
            )
        };
        self.manager
            .exchange_code_for_token_with_issuer(code, &self.state, iss)
            .await
            .map_err(fail)?;
        match self.store.current() {
            Ok(Some(login)) => Ok(login),
            Ok(None) => Err(fail(AuthError::CredentialStoreError(
                "the login was not found after it was stored".to_owned(),
            ))),
            Err(p) => Err(fail(AuthError::CredentialStoreError(store_detail(&p)))),
        }
    }
}

fn store_detail(p: &StoreProblem) -> String {
    match p {
        StoreProblem::Io { detail, .. } | StoreProblem::Unreadable { detail, .. } => detail.clone(),
        StoreProblem::Locked { waited, .. } => {
            format!("its lock was held for over {} s", waited.as_secs())
        }
    }
}

/// Why no token can be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// No login for this URL is stored.
    NoLogin,
    /// The stored login is for another URL.
    OtherUrl,
    /// The login expired and cannot be renewed, or its renewal was refused.
    Refused,
    /// The renewal failed for another reason (worth trying again).
    Refresh(OAuthProblem),
    /// The credentials file could not be used.
    Store(StoreProblem),
}

/// The tokens of a serving process: read from the file when needed, and
/// refreshed with rmcp's refresh grant, one refresh at a time across the
/// processes sharing the file (its lock is held, and the file read again,
/// before refreshing).
pub struct Auth {
    pub url: Url,
    pub file: CredentialsFile,
    pub http: OAuthHttp,
    /// Bounds the wait for another process's lock.
    pub timeout: Duration,
    refreshing: tokio::sync::Mutex<()>,
}

impl Auth {
    pub fn new(url: Url, file: CredentialsFile, http: OAuthHttp, timeout: Duration) -> Self {
        Self {
            url,
            file,
            http,
            timeout,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// `work` on the credentials file, off the runtime's threads.
    async fn on_file<T: Send + 'static>(
        &self,
        work: impl FnOnce(CredentialsFile) -> Result<T, StoreProblem> + Send + 'static,
    ) -> Result<T, TokenProblem> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || work(file))
            .await
            .map_err(|e| {
                TokenProblem::Store(StoreProblem::Io {
                    path: self.file.path().to_owned(),
                    detail: e.to_string(),
                })
            })?
            .map_err(TokenProblem::Store)
    }

    async fn read(&self) -> Result<Option<StoredLogin>, TokenProblem> {
        self.on_file(|file| file.load()).await
    }

    /// The stored login for this URL, refreshed when its access token has
    /// expired or is `refused` (a token the MCP endpoint turned away).
    pub async fn login(&self, refused: Option<&str>) -> Result<StoredLogin, TokenProblem> {
        let usable = |l: &StoredLogin| {
            !l.is_expired(SystemTime::now()) && l.access_token().is_some_and(|t| Some(t) != refused)
        };
        let stored = match self.read().await? {
            None => return Err(TokenProblem::NoLogin),
            Some(l) if l.mcp_url != self.url.as_str() => return Err(TokenProblem::OtherUrl),
            Some(l) => l,
        };
        if usable(&stored) {
            return Ok(stored);
        }
        let _one_here = self.refreshing.lock().await;
        let wait = self.timeout;
        let _lock = self.on_file(move |file| file.lock(wait)).await?;
        // Another process (or call) may have refreshed meanwhile.
        let stored = match self.read().await? {
            None => return Err(TokenProblem::NoLogin),
            Some(l) if l.mcp_url != self.url.as_str() => return Err(TokenProblem::OtherUrl),
            Some(l) if usable(&l) => return Ok(l),
            Some(l) => l,
        };
        if stored.refresh_token().is_none() {
            return Err(TokenProblem::Refused);
        }
        let store = FileStore::new(self.file.clone(), stored.clone());
        let mut manager = AuthorizationManager::new_with_oauth_http_client(
            self.url.as_str(),
            Arc::new(self.http.clone()),
        )
        .await
        .map_err(|e| TokenProblem::Refresh(OAuthProblem::from_auth(Step::Refresh, e)))?;
        manager.set_credential_store(store.clone());
        manager.set_metadata(stored.metadata.clone());
        let mut config = OAuthClientConfig::new(stored.client_id(), stored.redirect_uri.clone());
        if let Some(secret) = &stored.client_secret {
            config = config.with_client_secret(secret.clone());
        }
        manager
            .configure_client(config)
            .map_err(|e| TokenProblem::Refresh(OAuthProblem::from_auth(Step::Refresh, e)))?;
        match manager.refresh_token().await {
            Ok(_) => match self.read().await? {
                Some(l) if l.mcp_url == self.url.as_str() && l.access_token().is_some() => {
                    tracing::debug!("Loomi Connect token refreshed");
                    Ok(l)
                }
                _ => Err(TokenProblem::NoLogin),
            },
            Err(AuthError::TokenRefreshRejected(_) | AuthError::AuthorizationRequired) => {
                // Another process may hold a newer login by now.
                match self.read().await? {
                    Some(l) if l.mcp_url == self.url.as_str() && usable(&l) => Ok(l),
                    _ => Err(TokenProblem::Refused),
                }
            }
            Err(e) => Err(TokenProblem::Refresh(
                OAuthProblem::from_auth(Step::Refresh, e).scrubbed(&Quoter::new(stored.secrets())),
            )),
        }
    }
}
