//! The one request path to the Bloomreach API.
//!
//! Every endpoint goes through [`BloomreachClient::get`]: build the URL from
//! percent-encoded segments, send with Basic auth, retry what is worth
//! retrying, read the body under a size cap, decode. The three public
//! methods differ only in their path segments, query and decoded type.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, Subject};
use super::model::{Code, CodeStatus, CodesPage, Pool, PoolSummary, Reply};
use crate::config::Credentials;

/// The largest answer body read, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error answer is read to quote from it.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Same-origin redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// The longest quote taken from an answer.
const MAX_QUOTE_CHARS: usize = 300;

/// Characters left as they are in a path segment: RFC 3986 "unreserved".
/// Everything else, `/`, `%`, `?`, `#` and spaces included, is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// When and how often to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further one, with jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited out; a longer one ends the call.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1-based): exponential, with
    /// jitter between half and all of it.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Everything the client needs to be built.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub base_url: Url,
    pub credentials: Credentials,
    /// Time allowed for one attempt, from sending to the last byte.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub max_body_bytes: usize,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

impl ClientOptions {
    pub fn new(base_url: Url, credentials: Credentials, timeout: Duration) -> Self {
        Self {
            base_url,
            credentials,
            timeout,
            retry: RetryPolicy::default(),
            max_body_bytes: MAX_BODY_BYTES,
            user_agent: crate::USER_AGENT.to_owned(),
        }
    }
}

/// Why the client is about to wait and try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryReason {
    RateLimited,
    Status(u16),
    Connection,
}

/// Told to an observer before each retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryNotice {
    /// Which retry this is, from 1.
    pub retry: u32,
    pub max_retries: u32,
    pub wait: Duration,
    pub reason: RetryReason,
}

impl std::fmt::Display for RetryNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match &self.reason {
            RetryReason::RateLimited => "Bloomreach is rate limiting (HTTP 429)".to_owned(),
            RetryReason::Status(s) => format!("Bloomreach answered HTTP {s}"),
            RetryReason::Connection => "the connection to Bloomreach failed".to_owned(),
        };
        write!(
            f,
            "{why}; waiting {:.1} s before retry {} of {}",
            self.wait.as_secs_f64(),
            self.retry,
            self.max_retries
        )
    }
}

/// Something that wants to hear about retries (for progress notifications).
pub type RetryObserver<'a> = &'a (dyn Fn(&RetryNotice) + Send + Sync);

/// What to ask for on the codes endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodesQuery<'a> {
    pub project_id: &'a str,
    pub pool_id: &'a str,
    pub skip: u64,
    pub count: u64,
    pub status: Option<CodeStatus>,
}

/// A client of the Bloomreach voucher endpoints. Cheap to clone; clones
/// share one connection pool.
#[derive(Clone)]
pub struct BloomreachClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The base URL as text, without a trailing slash.
    base: String,
    /// `host[:port]` of the base URL, for messages.
    host: String,
    timeout: Duration,
    retry: RetryPolicy,
    max_body_bytes: usize,
    /// Strings never to be quoted back: the secret and the encoded header value.
    redactions: Vec<String>,
}

impl std::fmt::Debug for BloomreachClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BloomreachClient")
            .field("base", &self.inner.base)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// The result of one attempt.
enum Attempt {
    Body(Vec<u8>),
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Vec<u8>,
    },
    Redirect {
        location: String,
    },
    RedirectLoop,
    TooLarge,
    Transport(reqwest::Error),
}

impl BloomreachClient {
    /// Builds the client and its connection pool.
    pub fn new(options: ClientOptions) -> Result<Self, reqwest::Error> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            options.credentials.key_id,
            options.credentials.secret.expose()
        ));
        let mut auth = HeaderValue::from_str(&format!("Basic {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));

        let origin = options.base_url.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if same_origin(attempt.url(), &origin) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .default_headers(headers)
            .redirect(redirect)
            .connect_timeout(options.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;

        let base = options.base_url.as_str().trim_end_matches('/').to_owned();
        let host = match (options.base_url.host_str(), options.base_url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => base.clone(),
        };
        let mut redactions = vec![token];
        let secret = options.credentials.secret.expose();
        if !secret.is_empty() {
            redactions.push(secret.to_owned());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                host,
                timeout: options.timeout,
                retry: options.retry,
                max_body_bytes: options.max_body_bytes,
                redactions,
            }),
        })
    }

    /// `GET /data/v2/projects/{project_id}/vouchers/pools`
    pub async fn list_pools(
        &self,
        project_id: &str,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, ApiError> {
        let subject = Subject::Project {
            project_id: project_id.to_owned(),
        };
        let url = self.endpoint_url(&[project_id], &[])?;
        let reply: Reply<Vec<PoolSummary>> = self.get(url, &subject, observer).await?;
        Ok(reply.data.unwrap_or_default())
    }

    /// `GET /data/v2/projects/{project_id}/vouchers/pools/{pool_id}`
    pub async fn get_pool(
        &self,
        project_id: &str,
        pool_id: &str,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, ApiError> {
        let subject = pool_subject(project_id, pool_id);
        let url = self.endpoint_url(&[project_id, pool_id], &[])?;
        let reply: Reply<Pool> = self.get(url, &subject, observer).await?;
        let mut pool = reply.data.ok_or_else(missing_data)?;
        if pool.company_id.is_none() {
            pool.company_id = Some(project_id.to_owned());
        }
        Ok(pool)
    }

    /// `GET /data/v2/projects/{project_id}/vouchers/pools/{pool_id}/codes?skip=&count=[&status=]`
    pub async fn list_codes(
        &self,
        query: &CodesQuery<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, ApiError> {
        let subject = pool_subject(query.project_id, query.pool_id);
        let skip = query.skip.to_string();
        let count = query.count.to_string();
        let mut params = vec![("skip", skip.as_str()), ("count", count.as_str())];
        if let Some(status) = query.status {
            params.push(("status", status.as_str()));
        }
        let url = self.endpoint_url(&[query.project_id, query.pool_id, "codes"], &params)?;
        let reply: Reply<Vec<Code>> = self.get(url, &subject, observer).await?;
        Ok(CodesPage {
            codes: reply.data.unwrap_or_default(),
            matched: reply.matched,
            matched_limited: reply.matched_limited,
            skip: reply.skip.unwrap_or(query.skip),
            limit: reply.limit.unwrap_or(query.count),
        })
    }

    /// Builds `{base}/data/v2/projects/{p}/vouchers/pools[/{pool}[/codes]]`
    /// with each id encoded as exactly one path segment.
    ///
    /// `ids` is the project id, then optionally the pool id, then optionally
    /// the literal `codes`.
    pub fn endpoint_url(&self, ids: &[&str], query: &[(&str, &str)]) -> Result<Url, ApiError> {
        let mut path = String::with_capacity(self.inner.base.len() + 96);
        path.push_str(&self.inner.base);
        path.push_str("/data/v2/projects/");
        let (project, rest) = ids.split_first().expect("a project id");
        push_segment(&mut path, project)?;
        path.push_str("/vouchers/pools");
        for segment in rest {
            path.push('/');
            push_segment(&mut path, segment)?;
        }
        for (i, (key, value)) in query.iter().enumerate() {
            path.push(if i == 0 { '?' } else { '&' });
            path.push_str(key);
            path.push('=');
            path.extend(utf8_percent_encode(value, SEGMENT));
        }
        Url::parse(&path).map_err(|e| ApiError::Unexpected {
            reason: format!("could not build the request URL ({e})"),
            excerpt: None,
        })
    }

    /// The one request path: send, retry, read, decode.
    async fn get<D: DeserializeOwned>(
        &self,
        url: Url,
        subject: &Subject,
        observer: RetryObserver<'_>,
    ) -> Result<Reply<D>, ApiError> {
        let inner = &*self.inner;
        let policy = inner.retry;
        let mut retries = 0u32;
        loop {
            let attempt = tokio::time::timeout(inner.timeout, self.attempt(&url)).await;
            let attempt = match attempt {
                Ok(a) => a,
                Err(_) => {
                    return Err(ApiError::Timeout {
                        host: inner.host.clone(),
                        timeout: inner.timeout,
                    })
                }
            };
            let (reason, retry_after) = match attempt {
                Attempt::Body(bytes) => return self.decode(&bytes),
                Attempt::TooLarge => {
                    return Err(ApiError::BodyTooLarge {
                        limit: inner.max_body_bytes,
                    })
                }
                Attempt::Redirect { location } => {
                    return Err(ApiError::Redirect {
                        host: inner.host.clone(),
                        location,
                    })
                }
                Attempt::RedirectLoop => {
                    return Err(ApiError::RedirectLoop {
                        host: inner.host.clone(),
                        max: MAX_REDIRECTS,
                    })
                }
                Attempt::Status {
                    status,
                    retry_after,
                    body,
                } => {
                    if is_retryable(status) {
                        if let Some(wait) = retry_after.filter(|w| *w > policy.max_retry_after) {
                            return Err(ApiError::RetryAfterTooLong {
                                status: status.as_u16(),
                                wait,
                                until: SystemTime::now() + wait,
                            });
                        }
                    }
                    if !is_retryable(status) || retries >= policy.max_retries {
                        return Err(self.status_error(
                            status,
                            retry_after,
                            &body,
                            subject,
                            retries,
                        ));
                    }
                    let reason = if status == StatusCode::TOO_MANY_REQUESTS {
                        RetryReason::RateLimited
                    } else {
                        RetryReason::Status(status.as_u16())
                    };
                    (reason, retry_after.filter(|w| *w <= policy.max_retry_after))
                }
                Attempt::Transport(error) => {
                    if retries >= policy.max_retries {
                        return Err(ApiError::Connection {
                            host: inner.host.clone(),
                            detail: self.scrub(&transport_detail(&error)),
                            retries,
                        });
                    }
                    tracing::debug!(error = %self.scrub(&transport_detail(&error)), "request failed; will retry");
                    (RetryReason::Connection, None)
                }
            };
            retries += 1;
            let wait = retry_after.unwrap_or_else(|| policy.backoff(retries));
            let notice = RetryNotice {
                retry: retries,
                max_retries: policy.max_retries,
                wait,
                reason,
            };
            tracing::warn!("{notice}");
            observer(&notice);
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: send the request and read the answer.
    async fn attempt(&self, url: &Url) -> Attempt {
        let inner = &*self.inner;
        let response = match inner.http.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) if e.is_redirect() => return Attempt::RedirectLoop,
            Err(e) => return Attempt::Transport(e),
        };
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| shorten(l, 120))
                .unwrap_or_else(|| "no location given".to_owned());
            return Attempt::Redirect { location };
        }
        if status.is_success() {
            return match read_capped(response, inner.max_body_bytes).await {
                Ok(body) => Attempt::Body(body),
                Err(ReadError::TooLarge) => Attempt::TooLarge,
                Err(ReadError::Transport(e)) => Attempt::Transport(e),
            };
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = read_prefix(response, MAX_ERROR_BODY_BYTES).await;
        Attempt::Status {
            status,
            retry_after,
            body,
        }
    }

    /// Decodes a 200 answer, turning `success: false` and malformed bodies
    /// into errors.
    fn decode<D: DeserializeOwned>(&self, bytes: &[u8]) -> Result<Reply<D>, ApiError> {
        match serde_json::from_slice::<Reply<D>>(bytes) {
            Ok(reply) if reply.success == Some(false) => Err(ApiError::Api {
                message: self
                    .api_message(reply.error.as_ref(), reply.errors.as_ref())
                    .unwrap_or_else(|| "the API reported a failure and gave no reason".to_owned()),
            }),
            Ok(reply) if reply.data.is_none() => Err(missing_data()),
            Ok(reply) => Ok(reply),
            Err(error) => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) if value.get("success") == Some(&Value::Bool(false)) => {
                    Err(ApiError::Api {
                        message: self
                            .api_message(value.get("error"), value.get("errors"))
                            .unwrap_or_else(|| {
                                "the API reported a failure and gave no reason".to_owned()
                            }),
                    })
                }
                Ok(_) => Err(ApiError::Unexpected {
                    reason: format!(
                        "a required field is missing or has the wrong type ({})",
                        self.quote(&strip_position(&error.to_string()), 150)
                    ),
                    excerpt: Some(self.excerpt(bytes)),
                }),
                Err(_) => Err(ApiError::Unexpected {
                    reason: "the answer is not JSON".to_owned(),
                    excerpt: Some(self.excerpt(bytes)),
                }),
            },
        }
    }

    /// Turns a non-success status into the error the contract asks for.
    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        subject: &Subject,
        retries: u32,
    ) -> ApiError {
        let message = self.body_message(body);
        match status.as_u16() {
            400 => ApiError::Rejected { message },
            401 => ApiError::Unauthorized { message },
            403 => ApiError::Forbidden { message },
            404 => ApiError::NotFound {
                subject: subject.clone(),
                message,
            },
            429 => ApiError::RateLimited {
                retries,
                retry_after,
            },
            500 | 502 | 503 | 504 => ApiError::Server {
                status: status.as_u16(),
                retries,
                excerpt: message,
            },
            other => ApiError::Status {
                status: other,
                excerpt: message,
            },
        }
    }

    /// The API's own words from an error body: its message fields when the
    /// body is JSON, a short excerpt otherwise.
    fn body_message(&self, body: &[u8]) -> Option<String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => self
                .api_message(value.get("error"), value.get("errors"))
                .or_else(|| self.api_message(value.get("message"), value.get("description")))
                .or_else(|| Some(self.excerpt(body))),
            Err(_) => Some(self.excerpt(body)),
        }
    }

    /// Collects the text of `error`/`errors` in any of the shapes the API uses.
    fn api_message(&self, error: Option<&Value>, errors: Option<&Value>) -> Option<String> {
        let mut parts = Vec::new();
        for value in [error, errors].into_iter().flatten() {
            collect_text(value, &mut parts);
        }
        parts.dedup();
        if parts.is_empty() {
            None
        } else {
            Some(self.quote(&parts.join("; "), MAX_QUOTE_CHARS))
        }
    }

    /// A short, single-line, credential-free excerpt of a body.
    fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY_BYTES)]);
        let text = if looks_like_html(&text) {
            html_text(&text)
        } else {
            text.into_owned()
        };
        self.quote(&text, 200)
    }

    /// Text from the API made fit to quote: credentials removed first,
    /// then folded onto one line and cut to `max` characters.
    fn quote(&self, text: &str, max: usize) -> String {
        let scrubbed = self.scrub(text);
        let flat = scrubbed
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        shorten(&flat, max)
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.inner.redactions {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }
}

fn pool_subject(project_id: &str, pool_id: &str) -> Subject {
    Subject::Pool {
        project_id: project_id.to_owned(),
        pool_id: pool_id.to_owned(),
    }
}

fn missing_data() -> ApiError {
    ApiError::Unexpected {
        reason: "the answer has no data field".to_owned(),
        excerpt: None,
    }
}

fn push_segment(path: &mut String, segment: &str) -> Result<(), ApiError> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(ApiError::Unexpected {
            reason: format!("{segment:?} cannot be used as an id in a URL path"),
            excerpt: None,
        });
    }
    path.extend(utf8_percent_encode(segment, SEGMENT));
    Ok(())
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(1e9)));
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the whole body, giving up as soon as it passes `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads up to `cap` bytes of an error body; what cannot be read is left out.
async fn read_prefix(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

/// What failed, in words, from the innermost cause of a transport error.
fn transport_detail(error: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let cause = innermost.to_string();
    let lower = cause.to_ascii_lowercase();
    let what =
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            "the TLS handshake failed"
        } else if error.is_connect() {
            "the connection could not be made"
        } else if error.is_body() || error.is_decode() {
            "the connection broke while the answer was being read"
        } else {
            "the request failed"
        };
    if cause == error.to_string() {
        what.to_owned()
    } else {
        format!("{what} ({cause})")
    }
}

fn collect_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

fn looks_like_html(text: &str) -> bool {
    let head = text.trim_start();
    head.starts_with('<')
        && head
            .get(..64)
            .unwrap_or(head)
            .to_ascii_lowercase()
            .contains("html")
        || head.to_ascii_lowercase().starts_with("<!doctype")
}

/// The visible text of an HTML page, title first.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    let mut skip_content = false;
    for ch in html.chars() {
        match ch {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let name = tag
                    .trim_start_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if name == "script" || name == "style" {
                    skip_content = !tag.starts_with('/');
                }
                out.push(' ');
            }
            _ if in_tag => tag.push(ch),
            _ if !skip_content => out.push(ch),
            _ => {}
        }
    }
    out
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn client(base: &str) -> BloomreachClient {
        BloomreachClient::new(ClientOptions::new(
            Url::parse(base).unwrap(),
            Credentials {
                key_id: "kid".into(),
                secret: Secret::new("topsecret"),
            },
            Duration::from_secs(5),
        ))
        .unwrap()
    }

    #[test]
    fn urls_keep_the_prefix_and_encode_each_id_as_one_segment() {
        let c = client("https://gateway.example.com/bloomreach/");
        assert_eq!(
            c.endpoint_url(&["proj"], &[]).unwrap().as_str(),
            "https://gateway.example.com/bloomreach/data/v2/projects/proj/vouchers/pools"
        );
        assert_eq!(
            c.endpoint_url(&["p 1", "../x", "codes"], &[("skip", "0"), ("count", "20")])
                .unwrap()
                .as_str(),
            "https://gateway.example.com/bloomreach/data/v2/projects/p%201/vouchers/pools/..%2Fx/codes?skip=0&count=20"
        );
        assert_eq!(
            c.endpoint_url(&["a/b?c#d%2F", "é\r\n"], &[])
                .unwrap()
                .path(),
            "/bloomreach/data/v2/projects/a%2Fb%3Fc%23d%252F/vouchers/pools/%C3%A9%0D%0A"
        );
    }

    #[test]
    fn dot_segments_are_refused() {
        let c = client("https://api.exponea.com");
        assert!(c.endpoint_url(&[".."], &[]).is_err());
        assert!(c.endpoint_url(&["p", "."], &[]).is_err());
        assert_eq!(
            c.endpoint_url(&["...", "p.v2"], &[]).unwrap().path(),
            "/data/v2/projects/.../vouchers/pools/p.v2"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-4", now), None);
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy::default();
        for retry in 1..=6 {
            let full = (p.base_delay * (1 << (retry - 1))).min(p.max_delay);
            let d = p.backoff(retry);
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn api_messages_are_read_from_every_shape() {
        let c = client("https://api.exponea.com");
        let m = |body: &str| c.body_message(body.as_bytes());
        assert_eq!(
            m(r#"{"success": false, "error": "access key not found"}"#).as_deref(),
            Some("access key not found")
        );
        assert_eq!(
            m(r#"{"success": false, "errors": ["not authorized to read vouchers"]}"#).as_deref(),
            Some("not authorized to read vouchers")
        );
        assert_eq!(
            m(r#"{"errors": {"code": 404, "description": "pool does not exist"}}"#).as_deref(),
            Some("pool does not exist")
        );
        assert_eq!(
            m(r#"{"success": false, "errors": {"_global": ["bad skip"]}}"#).as_deref(),
            Some("bad skip")
        );
        assert_eq!(m("").as_deref(), None);
        assert_eq!(
            m("<html><head><title>502 Bad Gateway</title><style>p{}</style></head><body><h1>Bad   Gateway</h1></body></html>").as_deref(),
            Some("502 Bad Gateway Bad Gateway")
        );
    }

    #[test]
    fn quotes_are_short_and_scrubbed() {
        let c = client("https://api.exponea.com");
        let long = format!(
            r#"{{"error": "{} topsecret a2lkOnRvcHNlY3JldA=="}}"#,
            "x".repeat(1000)
        );
        let m = c.body_message(long.as_bytes()).unwrap();
        assert!(m.chars().count() <= MAX_QUOTE_CHARS + 1);
        let m = c
            .body_message(br#"{"error": "bad header Basic a2lkOnRvcHNlY3JldA== for topsecret"}"#)
            .unwrap();
        assert_eq!(m, "bad header Basic [redacted] for [redacted]");
    }

    #[test]
    fn decode_turns_success_false_and_junk_into_errors() {
        let c = client("https://api.exponea.com");
        let e = c
            .decode::<Vec<PoolSummary>>(
                br#"{"success": false, "errors": {"_global": ["project is locked"]}}"#,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Bloomreach could not complete the request: project is locked"
        );
        let e = c
            .decode::<Vec<PoolSummary>>(b"<html>oops</html>")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The Bloomreach API answered unexpectedly: the answer is not JSON: oops"
        );
        let e = c
            .decode::<Vec<PoolSummary>>(br#"{"success": true, "data": [{"id": "p"}]}"#)
            .unwrap_err();
        assert!(
            e.to_string().starts_with("The Bloomreach API answered unexpectedly: a required field is missing or has the wrong type (missing field `name`)"),
            "{e}"
        );
        let e = c
            .decode::<Vec<PoolSummary>>(br#"{"success": true}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The Bloomreach API answered unexpectedly: the answer has no data field"
        );
    }

    #[test]
    fn shorten_marks_the_cut() {
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("ééé", 2), "éé…");
    }
}
