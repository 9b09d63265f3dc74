//! The authorization of the MCP specification, as a client: where the
//! authorization server is (RFC 9728 protected resource metadata, from the
//! `WWW-Authenticate` challenge or the well-known URL; then RFC 8414 or
//! OpenID discovery), dynamic client registration (RFC 7591), the
//! authorization code flow with PKCE S256, a random `state` and the
//! `resource` parameter (RFC 8707), and the refresh grant.
//!
//! Every exchange goes through the caller's HTTP client (so the network
//! settings hold) with a timeout. Errors carry facts: the endpoint, the
//! status, and the server's `error` and `error_description`, shortened.

use std::time::{Duration, SystemTime};

use base64::Engine;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::credentials::{unix, StoredClient, StoredLogin, FORMAT};
use crate::text::shorten;

/// The longest body read from an authorization server.
const MAX_BODY: usize = 256 * 1024;
/// The client name sent at registration.
pub const CLIENT_NAME: &str = "bloomreach-vouchers-mcp";

/// What went wrong talking to the authorization server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthProblem {
    /// No protected resource metadata or authorization server metadata.
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
    /// The authorization server does not offer PKCE S256.
    NoPkce,
}

/// Which request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Registration,
    TokenExchange,
    Refresh,
}

impl OAuthProblem {
    /// The problem with every quoted text scrubbed of `quoter`'s secrets
    /// and cut short.
    pub fn scrubbed(self, quoter: &crate::backend::quote::Quoter) -> Self {
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
            Self::NoPkce => Self::NoPkce,
        }
    }

    /// Whether a refresh was refused for good (`invalid_grant`, or the
    /// client is gone): a new login is needed.
    pub fn refresh_refused(&self) -> bool {
        matches!(self, Self::Refused { error: Some(e), .. } if e == "invalid_grant" || e == "invalid_client" || e == "unauthorized_client")
            || matches!(
                self,
                Self::Refused {
                    status: 400 | 401,
                    error: None,
                    ..
                }
            )
    }
}

/// The authorization server, as discovery found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthServer {
    pub issuer: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    /// Scopes to ask for (from the challenge or the resource metadata).
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct ResourceMetadata {
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct ServerMetadata {
    #[serde(default)]
    issuer: Option<String>,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    registration_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// An HTTP client with a timeout for each exchange.
#[derive(Clone)]
pub struct OAuthHttp {
    pub http: reqwest::Client,
    pub timeout: Duration,
}

impl OAuthHttp {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), String> {
        let exchange = async {
            let mut response = request.send().await.map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(format!("the answer is larger than {} KiB", MAX_BODY / 1024));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Option<Value>, String> {
        let (status, body) = self
            .send(self.http.get(url).header(ACCEPT, "application/json"))
            .await?;
        if !(200..300).contains(&status) {
            return Ok(None);
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("{url} did not answer JSON ({e})"))
    }
}

fn describe(e: &reqwest::Error) -> String {
    crate::backend::network::failure::innermost(e)
}

/// The `resource_metadata` and `scope` of a `WWW-Authenticate: Bearer`
/// challenge.
pub fn parse_challenge(header: &str) -> (Option<String>, Option<String>) {
    let param = |name: &str| -> Option<String> {
        let lower = header.to_ascii_lowercase();
        let at = lower.find(&format!("{name}="))?;
        let rest = &header[at + name.len() + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.split('"').next()?.to_owned()
        } else {
            rest.split([',', ' ']).next()?.to_owned()
        };
        (!value.is_empty()).then_some(value)
    };
    (param("resource_metadata"), param("scope"))
}

/// Finds the authorization server of `mcp_url`.
pub async fn discover(http: &OAuthHttp, mcp_url: &Url) -> Result<AuthServer, OAuthProblem> {
    let problem = |detail: String| OAuthProblem::Discovery { detail };
    // An unauthenticated request, to read the challenge.
    let probe = http
        .http
        .post(mcp_url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#);
    let (mut metadata_url, mut scope) = (None, None);
    let sent = tokio::time::timeout(http.timeout, probe.send()).await;
    if let Ok(Ok(response)) = sent {
        if let Some(header) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
        {
            (metadata_url, scope) = parse_challenge(header);
        }
    } else if let Ok(Err(e)) = sent {
        return Err(problem(format!(
            "{} could not be reached ({})",
            host_of(mcp_url),
            describe(&e)
        )));
    }
    let mut candidates = Vec::new();
    if let Some(url) = metadata_url {
        candidates.push(url);
    }
    candidates.extend(well_known(mcp_url, "oauth-protected-resource", true));
    let mut resource = None;
    for url in &candidates {
        if let Ok(Some(value)) = http.get_json(url).await {
            if let Ok(m) = serde_json::from_value::<ResourceMetadata>(value) {
                if !m.authorization_servers.is_empty() {
                    resource = Some(m);
                    break;
                }
            }
        }
    }
    let resource = resource.ok_or_else(|| {
        problem(format!(
            "{} names no authorization server (no protected resource metadata, RFC 9728)",
            host_of(mcp_url)
        ))
    })?;
    let issuer = &resource.authorization_servers[0];
    let issuer_url = Url::parse(issuer).map_err(|e| {
        problem(format!(
            "the authorization server {issuer:?} is not a URL ({e})"
        ))
    })?;
    let mut urls = well_known(&issuer_url, "oauth-authorization-server", false);
    urls.extend(well_known(&issuer_url, "openid-configuration", false));
    if !issuer_url.path().trim_matches('/').is_empty() {
        urls.push(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ));
    }
    for url in urls {
        let Ok(Some(value)) = http.get_json(&url).await else {
            continue;
        };
        let Ok(m) = serde_json::from_value::<ServerMetadata>(value) else {
            continue;
        };
        if let Some(methods) = &m.code_challenge_methods_supported {
            if !methods.iter().any(|x| x == "S256") {
                return Err(OAuthProblem::NoPkce);
            }
        }
        let scopes = match scope {
            Some(s) => s.split(' ').map(str::to_owned).collect(),
            None => resource.scopes_supported.clone(),
        };
        return Ok(AuthServer {
            issuer: m.issuer,
            authorization_endpoint: m.authorization_endpoint,
            token_endpoint: m.token_endpoint,
            registration_endpoint: m.registration_endpoint,
            scopes,
        });
    }
    Err(problem(format!(
        "the authorization server {issuer} has no metadata (RFC 8414 or OpenID discovery)"
    )))
}

/// The well-known URLs of `name` for `base`: with the path inserted after
/// the well-known segment, then (for a resource) at the root.
fn well_known(base: &Url, name: &str, root_fallback: bool) -> Vec<String> {
    let origin = base.origin().ascii_serialization();
    let path = base.path().trim_end_matches('/');
    let mut urls = Vec::new();
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/{name}{path}"));
        if root_fallback {
            urls.push(format!("{origin}/.well-known/{name}"));
        }
    } else {
        urls.push(format!("{origin}/.well-known/{name}"));
    }
    urls
}

fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => url.to_string(),
    }
}

/// Registers this program as a public client with `redirect_uri`.
pub async fn register(
    http: &OAuthHttp,
    server: &AuthServer,
    redirect_uri: &str,
) -> Result<StoredClient, OAuthProblem> {
    let endpoint = server.registration_endpoint.as_deref().ok_or_else(|| {
        OAuthProblem::Discovery {
            detail: "the authorization server offers no client registration (RFC 7591); set BLOOMREACH_LOOMI_CLIENT_ID to a client registered in advance".to_owned(),
        }
    })?;
    let mut body = serde_json::json!({
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    });
    if !server.scopes.is_empty() {
        body["scope"] = Value::String(server.scopes.join(" "));
    }
    let request = http
        .http
        .post(endpoint)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let (status, bytes) = http
        .send(request)
        .await
        .map_err(|detail| OAuthProblem::Exchange {
            step: Step::Registration,
            detail,
        })?;
    let value = answer(Step::Registration, status, &bytes)?;
    let client_id =
        value
            .get("client_id")
            .and_then(Value::as_str)
            .ok_or(OAuthProblem::Exchange {
                step: Step::Registration,
                detail: "the answer has no client_id".to_owned(),
            })?;
    Ok(StoredClient {
        client_id: client_id.to_owned(),
        client_secret: value
            .get("client_secret")
            .and_then(Value::as_str)
            .map(str::to_owned),
        registered: true,
        redirect_uri: redirect_uri.to_owned(),
        basic_auth: value
            .get("token_endpoint_auth_method")
            .and_then(Value::as_str)
            == Some("client_secret_basic"),
    })
}

/// The JSON of a successful answer, or the server's refusal.
fn answer(step: Step, status: u16, bytes: &[u8]) -> Result<Value, OAuthProblem> {
    let value: Option<Value> = serde_json::from_slice(bytes).ok();
    if (200..300).contains(&status) {
        return value.ok_or(OAuthProblem::Exchange {
            step,
            detail: format!("the answer (HTTP {status}) is not JSON"),
        });
    }
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(|s| crate::text::one_line(&shorten(s, 2048)))
    };
    Err(OAuthProblem::Refused {
        step,
        status,
        error: field("error"),
        description: field("error_description"),
    })
}

/// A PKCE pair and a `state`, from the system's secure random source.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
    pub state: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = random_token(32);
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        Self {
            challenge: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
            verifier,
            state: random_token(16),
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// `bytes` random bytes, base64url without padding.
fn random_token(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The authorization URL a person opens.
pub fn authorization_url(
    server: &AuthServer,
    client: &StoredClient,
    pkce: &Pkce,
    redirect_uri: &str,
    resource: &str,
) -> Result<Url, OAuthProblem> {
    let mut url =
        Url::parse(&server.authorization_endpoint).map_err(|e| OAuthProblem::Discovery {
            detail: format!("the authorization endpoint is not a URL ({e})"),
        })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &pkce.state)
            .append_pair("resource", resource);
        if !server.scopes.is_empty() {
            q.append_pair("scope", &server.scopes.join(" "));
        }
    }
    Ok(url)
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Seconds; some servers send it as a string.
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenAnswer {
    fn lifetime(&self) -> Option<f64> {
        match self.expires_in.as_ref()? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s >= 0.0)
    }
}

/// Exchanges an authorization code for tokens.
#[allow(clippy::too_many_arguments)]
pub async fn exchange_code(
    http: &OAuthHttp,
    server: &AuthServer,
    client: &StoredClient,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    mcp_url: &str,
) -> Result<StoredLogin, OAuthProblem> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client.client_id.as_str()),
        ("code_verifier", verifier),
        ("resource", mcp_url),
    ];
    let tokens = token_request(
        http,
        &server.token_endpoint,
        &mut form,
        client,
        Step::TokenExchange,
    )
    .await?;
    Ok(login_from(tokens, server, client, mcp_url, None))
}

/// Refreshes `login`'s tokens; the new login keeps what the answer left out
/// (a refresh token that was not rotated).
pub async fn refresh(http: &OAuthHttp, login: &StoredLogin) -> Result<StoredLogin, OAuthProblem> {
    let Some(refresh_token) = &login.refresh_token else {
        return Err(OAuthProblem::Refused {
            step: Step::Refresh,
            status: 400,
            error: Some("invalid_grant".to_owned()),
            description: Some("no refresh token was stored".to_owned()),
        });
    };
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", login.client.client_id.as_str()),
        ("resource", login.resource.as_str()),
    ];
    let tokens = token_request(
        http,
        &login.token_endpoint,
        &mut form,
        &login.client,
        Step::Refresh,
    )
    .await?;
    let server = AuthServer {
        issuer: login.issuer.clone(),
        authorization_endpoint: String::new(),
        token_endpoint: login.token_endpoint.clone(),
        registration_endpoint: None,
        scopes: Vec::new(),
    };
    Ok(login_from(
        tokens,
        &server,
        &login.client,
        &login.resource,
        login.refresh_token.clone(),
    ))
}

/// A token request; a client secret goes as HTTP Basic where the client
/// was registered so, else in the form.
async fn token_request<'a>(
    http: &OAuthHttp,
    endpoint: &str,
    form: &mut Vec<(&'a str, &'a str)>,
    client: &'a StoredClient,
    step: Step,
) -> Result<TokenAnswer, OAuthProblem> {
    let mut request = http.http.post(endpoint).header(ACCEPT, "application/json");
    match &client.client_secret {
        Some(secret) if client.basic_auth => {
            request = request.basic_auth(&client.client_id, Some(secret));
        }
        Some(secret) => form.push(("client_secret", secret.as_str())),
        None => {}
    }
    let request = request.form(&*form);
    let (status, bytes) = http
        .send(request)
        .await
        .map_err(|detail| OAuthProblem::Exchange { step, detail })?;
    let value = answer(step, status, &bytes)?;
    serde_json::from_value(value).map_err(|e| OAuthProblem::Exchange {
        step,
        detail: format!("the token answer cannot be read ({e})"),
    })
}

fn login_from(
    tokens: TokenAnswer,
    server: &AuthServer,
    client: &StoredClient,
    mcp_url: &str,
    previous_refresh: Option<String>,
) -> StoredLogin {
    let now = unix(SystemTime::now());
    let lifetime = tokens.lifetime();
    StoredLogin {
        format: FORMAT,
        mcp_url: mcp_url.to_owned(),
        issuer: server.issuer.clone(),
        token_endpoint: server.token_endpoint.clone(),
        resource: mcp_url.to_owned(),
        client: client.clone(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token.or(previous_refresh),
        expires_at: lifetime.map(|s| now.saturating_add(s.min(1e9) as u64)),
        scope: tokens.scope,
        obtained_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_give_the_metadata_url_and_scope() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="x", resource_metadata="https://a.example/.well-known/oauth-protected-resource/mcp", scope="vouchers:read mcp""#
            ),
            (
                Some("https://a.example/.well-known/oauth-protected-resource/mcp".to_owned()),
                Some("vouchers:read mcp".to_owned())
            )
        );
        assert_eq!(
            parse_challenge("Bearer resource_metadata=https://b.example/prm"),
            (Some("https://b.example/prm".to_owned()), None)
        );
        assert_eq!(parse_challenge("Bearer"), (None, None));
    }

    #[test]
    fn well_known_urls_insert_the_path() {
        let url = Url::parse("https://eu.connect.loomi.ai/mcp").unwrap();
        assert_eq!(
            well_known(&url, "oauth-protected-resource", true),
            [
                "https://eu.connect.loomi.ai/.well-known/oauth-protected-resource/mcp",
                "https://eu.connect.loomi.ai/.well-known/oauth-protected-resource"
            ]
        );
        let issuer = Url::parse("https://auth.example").unwrap();
        assert_eq!(
            well_known(&issuer, "oauth-authorization-server", false),
            ["https://auth.example/.well-known/oauth-authorization-server"]
        );
    }

    #[test]
    fn pkce_is_s256_of_a_random_verifier() {
        let a = Pkce::new();
        let b = Pkce::new();
        assert_ne!(a.verifier, b.verifier);
        assert_ne!(a.state, b.state);
        assert_eq!(a.verifier.len(), 43);
        let digest = ring::digest::digest(&ring::digest::SHA256, a.verifier.as_bytes());
        assert_eq!(
            a.challenge,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        );
    }

    #[test]
    fn a_lifetime_may_come_as_a_number_or_a_string() {
        let read = |v: Value| {
            serde_json::from_value::<TokenAnswer>(
                serde_json::json!({"access_token": "a", "expires_in": v}),
            )
            .unwrap()
            .lifetime()
        };
        assert_eq!(read(serde_json::json!(3600)), Some(3600.0));
        assert_eq!(read(serde_json::json!("120")), Some(120.0));
        assert_eq!(read(serde_json::json!(-5)), None);
        assert_eq!(read(serde_json::json!(null)), None);
    }

    #[test]
    fn refusals_read_error_and_description() {
        let e = answer(
            Step::Refresh,
            400,
            br#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#,
        )
        .unwrap_err();
        assert!(e.refresh_refused());
        assert_eq!(
            e,
            OAuthProblem::Refused {
                step: Step::Refresh,
                status: 400,
                error: Some("invalid_grant".into()),
                description: Some("refresh token revoked".into())
            }
        );
    }
}
