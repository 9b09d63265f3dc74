//! The MCP authorization, as a client, on rmcp's `AuthorizationManager`,
//! whose code (discovery with the `resource` and `issuer` checks, the
//! client, PKCE S256, `state`, the RFC 9207 `iss` check, the grants) is the
//! MCP project's own, tested against the official conformance suite. Ours:
//! [`OAuthHttp`] carries every OAuth request `https://` only (loopback
//! `http://` excepted), so no code, verifier, secret or token crosses the
//! network in clear; [`authorize`] and [`Authorization::finish`] are one
//! sign-in; [`Auth`] refreshes under the credentials file's lock after
//! re-reading the file.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth2::HttpResponse;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::Url;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, OAuthClientConfig, OAuthHttpClient, OAuthHttpClientError,
    OAuthHttpRedirectPolicy, OAuthHttpRequest, StoredCredentials,
};

pub use crate::backend::error::{OAuthProblem, Step};

use super::credentials::FORMAT;
use super::credentials::{store_detail, CredentialsFile, FileStore, StoreProblem, StoredLogin};
use crate::backend::quote::Quoter;
use crate::backend::Secret;

pub const CLIENT_NAME: &str = "bloomreach-vouchers-mcp";
const MAX_BODY: usize = 256 * 1024;
const MAX_REDIRECTS: usize = 5;

impl OAuthProblem {
    /// The problem with every quote scrubbed of `quoter`'s secrets and cut short.
    pub fn scrubbed(mut self, quoter: &Quoter) -> Self {
        let quote = |t: &mut String| *t = quoter.quote(t, 200);
        match &mut self {
            Self::Refused {
                error, description, ..
            } => error.iter_mut().chain(description).for_each(quote),
            Self::Exchange { detail, .. } | Self::Discovery { detail } => quote(detail),
            Self::Insecure { url } | Self::StepUp { scope: url, .. } => quote(url),
            Self::Issuer { expected, received } => {
                quote(expected);
                received.iter_mut().for_each(quote);
            }
            Self::NoPkce => {}
        }
        self
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
            other => discovery(other),
        }
    }
}

/// Whether `url` may carry OAuth traffic: `https://`, or `http://` to a
/// loopback host (a local fake, a local gateway).
pub fn secure_enough(url: &Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", host) => host.is_some(),
        ("http", Some(url::Host::Domain(d))) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
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

fn discovery(e: impl ToString) -> OAuthProblem {
    OAuthProblem::Discovery {
        detail: e.to_string(),
    }
}

/// The error for a request URL that is not secure enough, refused before it is sent.
fn insecure(url: impl std::fmt::Display) -> String {
    format!("{url} is not https:// (refused)")
}

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
        let build = |policy| {
            let client = builder().redirect(policy).connect_timeout(timeout).build();
            client.map_err(|e| crate::backend::network::failure::innermost(&e))
        };
        Ok(Self {
            follow: build(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if secure_enough(attempt.url()) {
                    attempt.follow()
                } else {
                    let error = insecure(attempt.url());
                    attempt.error(error)
                }
            }))?,
            stop: build(reqwest::redirect::Policy::none())?,
            timeout,
        })
    }

    async fn manager(&self, url: &Url) -> Result<AuthorizationManager, AuthError> {
        AuthorizationManager::new_with_oauth_http_client(url.as_str(), Arc::new(self.clone())).await
    }

    async fn send(&self, request: OAuthHttpRequest) -> Result<HttpResponse, OAuthHttpClientError> {
        let url = Url::parse(&request.request.uri().to_string())?;
        if !secure_enough(&url) {
            return Err(insecure(url).into());
        }
        let stop = matches!(request.redirect_policy, OAuthHttpRedirectPolicy::Stop);
        let client = if stop { &self.stop } else { &self.follow };
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
                    return Err(format!("the answer is larger than {} KiB", MAX_BODY / 1024).into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, OAuthHttpClientError>(answer.body(body)?)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs()).into()),
        }
    }

    /// The `WWW-Authenticate` challenge the MCP endpoint answers a request
    /// without a token with (a `tools/list`, which every protected server
    /// refuses): where its resource metadata is and which scopes it wants.
    async fn challenge(&self, url: &Url) -> Option<String> {
        let body = r#"{"jsonrpc":"2.0","id":0,"method":"tools/list","params":{}}"#;
        let request = self
            .stop
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body);
        let sent = tokio::time::timeout(self.timeout, request.send()).await;
        let response = sent.ok()?.ok()?;
        if !matches!(response.status().as_u16(), 401 | 403) {
            return None;
        }
        let value = response.headers().get(WWW_AUTHENTICATE)?;
        value.to_str().ok().map(str::to_owned)
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
    let registration = |e: AuthError| OAuthProblem::from_auth(Step::Registration, e);
    let mut manager = setup.http.manager(&setup.url).await.map_err(discovery)?;
    let probed = match challenge {
        None if secure_enough(&setup.url) => setup.http.challenge(&setup.url).await,
        _ => None,
    };
    let resolution = manager
        .resolve_metadata_from_challenge(challenge.or(probed.as_deref()))
        .await
        .map_err(registration)?;
    let metadata = resolution.metadata;
    // Every endpoint the metadata names must be secure enough before any is
    // reached, opened or printed.
    let endpoints = [&metadata.authorization_endpoint, &metadata.token_endpoint];
    for url in endpoints.into_iter().chain(&metadata.registration_endpoint) {
        check_secure(url)?;
    }
    // Published metadata must say it offers S256 (PKCE); only the
    // endpoints a 2025-03-26 server implies, with no metadata, are taken
    // on trust.
    match &metadata.code_challenge_methods_supported {
        Some(methods) if methods.iter().any(|m| m == "S256") => {}
        None if !resolution.source.is_discovered() => {}
        _ => return Err(OAuthProblem::NoPkce),
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
    let mut scopes = scopes.to_vec();
    if scopes.is_empty() {
        scopes = manager.select_initial_scopes(&[]).await;
        if scopes.is_empty() {
            scopes = manager.select_scopes(None, &[]);
        }
    }
    let offline = |s: &[String]| s.iter().any(|s| s == "offline_access");
    if !scopes.is_empty()
        && !offline(&scopes)
        && metadata.scopes_supported.as_deref().is_some_and(offline)
    {
        scopes.push("offline_access".to_owned());
    }
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let cimd = metadata
        .additional_fields
        .get("client_id_metadata_document_supported");
    let cimd = cimd.and_then(serde_json::Value::as_bool).unwrap_or(false);
    let identity = &setup.identity;
    let config = if let Some(id) = &identity.client_id {
        let secret = identity.client_secret.as_ref().map(Secret::expose);
        client_config(id, secret, redirect_uri)
    } else if let Some(k) = known.filter(|k| k.issuer == metadata.issuer) {
        client_config(&k.client_id, k.client_secret.as_deref(), redirect_uri)
    } else if let Some(url) = identity.client_metadata_url.as_ref().filter(|_| cimd) {
        OAuthClientConfig::new(url.clone(), redirect_uri)
    } else {
        manager
            .register_client(CLIENT_NAME, redirect_uri, &scope_refs)
            .await
            .map_err(registration)?
    };
    let config = config.with_scopes(scopes.clone());
    let client = KnownClient {
        issuer: metadata.issuer.clone(),
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.clone(),
    };
    store.set_client_secret(client.client_secret.clone());
    manager.configure_client(config).map_err(registration)?;
    let url = manager
        .get_authorization_url(&scope_refs)
        .await
        .map_err(registration)?;
    check_secure(&url)?;
    let url = Url::parse(&url).map_err(discovery)?;
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
            let problem = OAuthProblem::from_auth(Step::TokenExchange, e);
            (problem.scrubbed(&quoter), quoter.clone())
        };
        self.manager
            .exchange_code_for_token_with_issuer(code, &self.state, iss)
            .await
            .map_err(fail)?;
        let detail = match self.store.current() {
            Ok(Some(login)) => return Ok(login),
            Ok(None) => "the login was not found after it was stored".to_owned(),
            Err(p) => store_detail(p, "its"),
        };
        Err(fail(AuthError::CredentialStoreError(detail)))
    }
}

fn client_config(id: &str, secret: Option<&str>, redirect_uri: &str) -> OAuthClientConfig {
    let config = OAuthClientConfig::new(id, redirect_uri);
    match secret {
        Some(secret) => config.with_client_secret(secret),
        None => config,
    }
}

/// Why no token can be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    NoLogin,
    /// The stored login is for another URL.
    OtherUrl,
    /// The login expired and cannot be renewed, or its renewal was refused.
    Refused,
    /// The renewal failed for another reason (worth trying again).
    Refresh(OAuthProblem),
    Store(StoreProblem),
}

/// The tokens of a serving process: read from the file when needed, and
/// refreshed with rmcp's refresh grant, one refresh at a time across the
/// processes sharing the file (its lock held, the file read again first).
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
            .map_err(|e| TokenProblem::Store(self.file.io(e)))?
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
        match self.read().await? {
            None => return Err(TokenProblem::NoLogin),
            Some(l) if l.mcp_url != self.url.as_str() => return Err(TokenProblem::OtherUrl),
            Some(l) if usable(&l) => return Ok(l),
            Some(_) => {}
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
        let fail = |e: AuthError| TokenProblem::Refresh(OAuthProblem::from_auth(Step::Refresh, e));
        let mut manager = self.http.manager(&self.url).await.map_err(fail)?;
        manager.set_credential_store(FileStore::new(self.file.clone(), stored.clone()));
        manager.set_metadata(stored.metadata.clone());
        let secret = stored.client_secret.as_deref();
        let config = client_config(stored.client_id(), secret, &stored.redirect_uri);
        manager.configure_client(config).map_err(fail)?;
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
