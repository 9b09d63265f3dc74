//! One MCP session with Loomi Connect over Streamable HTTP, as a client:
//! JSON-RPC requests POSTed with the bearer token, the session id and the
//! negotiated protocol version, each answered as JSON or as an SSE stream
//! that carries the response among other messages. Only what this backend
//! needs: `initialize`, `notifications/initialized`, `tools/list` and
//! `tools/call`.
//!
//! HTTP faults come back as facts ([`Fault`]) for the backend to act on: a
//! 401 (refresh), a 404 on the session (open anew), a 429 (wait), a
//! redirect (never followed to another origin).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use crate::backend::network::failure::transport_failure;
use crate::backend::rest::parse_retry_after;
use crate::backend::TransportFailure;
use crate::config::Secret;

/// The protocol version asked for in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The largest answer read from Loomi.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// What an exchange with Loomi came to, when it is not a JSON-RPC result.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 401; the `WWW-Authenticate` value, if any.
    Unauthorized { challenge: Option<String> },
    /// HTTP 404 while a session was in use: the session is gone.
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

/// An open session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: Option<String>,
    pub protocol_version: String,
}

/// The HTTP face of Loomi: the endpoint, the client and the timeout.
#[derive(Clone)]
pub struct Endpoint {
    pub url: Url,
    pub http: reqwest::Client,
    pub timeout: Duration,
}

impl Endpoint {
    /// `initialize`, then `notifications/initialized`.
    pub async fn open(&self, token: &Secret) -> Result<Session, Fault> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": crate::SERVER_NAME, "version": crate::SERVER_VERSION},
        });
        let (result, session_id) = self
            .exchange(token, None, "initialize", Some(params), 1)
            .await?;
        let protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(PROTOCOL_VERSION)
            .to_owned();
        let session = Session {
            id: session_id,
            protocol_version,
        };
        self.notify(token, &session, "notifications/initialized")
            .await?;
        Ok(session)
    }

    /// A request in `session`; its `result`.
    pub async fn request(
        &self,
        token: &Secret,
        session: &Session,
        method: &str,
        params: Value,
        id: u64,
    ) -> Result<Value, Fault> {
        self.exchange(token, Some(session), method, Some(params), id)
            .await
            .map(|(result, _)| result)
    }

    async fn notify(&self, token: &Secret, session: &Session, method: &str) -> Result<(), Fault> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let request = self.post(token, Some(session), &body);
        let response = self.send(request, true).await?;
        // 202 Accepted is the answer; anything successful will do.
        drop(response);
        Ok(())
    }

    fn post(
        &self,
        token: &Secret,
        session: Option<&Session>,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        auth.set_sensitive(true);
        let mut request = self
            .http
            .post(self.url.clone())
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header(VERSION_HEADER, &session.protocol_version);
            if let Some(id) = &session.id {
                request = request.header(SESSION_HEADER, id);
            }
        }
        request
    }

    /// Sends `request`; the response when its status is a success. The
    /// timeout covers the reading of an error's body too.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        in_session: bool,
    ) -> Result<reqwest::Response, Fault> {
        match tokio::time::timeout(self.timeout, self.send_within(request, in_session)).await {
            Ok(r) => r,
            Err(_) => Err(Fault::Timeout),
        }
    }

    async fn send_within(
        &self,
        request: reqwest::RequestBuilder,
        in_session: bool,
    ) -> Result<reqwest::Response, Fault> {
        let response = match request.send().await {
            Err(e) => {
                let (failure, cause) = transport_failure(&e);
                return Err(Fault::Transport { failure, cause });
            }
            Ok(r) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        Err(match status {
            StatusCode::UNAUTHORIZED => Fault::Unauthorized {
                challenge: headers
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            StatusCode::NOT_FOUND if in_session => Fault::SessionGone,
            StatusCode::TOO_MANY_REQUESTS => Fault::RateLimited {
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
            },
            s if s.is_redirection() => Fault::Redirect {
                location: headers
                    .get(LOCATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
            },
            s => {
                let body = read_capped(response, 4096).await.unwrap_or_default();
                // A JSON-RPC error in an error status is still that error.
                if let Some(fault) = jsonrpc_error(&body) {
                    return Err(fault);
                }
                Fault::Status {
                    status: s.as_u16(),
                    excerpt: excerpt(&body),
                }
            }
        })
    }

    async fn exchange(
        &self,
        token: &Secret,
        session: Option<&Session>,
        method: &str,
        params: Option<Value>,
        id: u64,
    ) -> Result<(Value, Option<String>), Fault> {
        let mut body = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(params) = params {
            body["params"] = params;
        }
        let request = self.post(token, session, &body);
        let read = async {
            let response = self.send(request, session.is_some()).await?;
            let session_id = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| session.and_then(|s| s.id.clone()));
            let is_sse = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
            let (message, body) = if is_sse {
                read_sse(response, id).await?
            } else {
                let body = read_capped(response, MAX_ANSWER_BYTES).await?;
                let message =
                    serde_json::from_slice::<Value>(&body).map_err(|e| Fault::Unreadable {
                        detail: format!("not JSON ({e})"),
                        excerpt: excerpt(&body),
                    })?;
                (message, body)
            };
            Ok((result_of(message, &body)?, session_id))
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(Fault::Timeout),
        }
    }
}

/// The start of a body, long enough that a secret in it is still whole: it
/// is scrubbed, then cut short, where it is quoted.
fn excerpt(body: &[u8]) -> String {
    let start = &body[..body.len().min(EXCERPT_BYTES)];
    crate::text::one_line(&String::from_utf8_lossy(start))
}

/// How much of a body an excerpt keeps before it is scrubbed and cut.
const EXCERPT_BYTES: usize = 4096;

/// Reads an event stream until the event that answers `id`, and no
/// further: a server may keep the stream open after it.
async fn read_sse(mut response: reqwest::Response, id: u64) -> Result<(Value, Vec<u8>), Fault> {
    let mut events = SseEvents::default();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if events.buf.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Fault::TooLarge);
                }
                events.buf.extend_from_slice(&chunk);
                while let Some(data) = events.next_data(false) {
                    if let Some(message) = answer_to(&data, id) {
                        return Ok((message, events.buf));
                    }
                }
            }
            Ok(None) => {
                while let Some(data) = events.next_data(true) {
                    if let Some(message) = answer_to(&data, id) {
                        return Ok((message, events.buf));
                    }
                }
                return Err(Fault::Unreadable {
                    detail: "the event stream ended without the response".to_owned(),
                    excerpt: excerpt(&events.buf),
                });
            }
            Err(e) => {
                let (failure, cause) = transport_failure(&e);
                return Err(Fault::Transport { failure, cause });
            }
        }
    }
}

/// The JSON-RPC message in `data` when it answers `id`.
fn answer_to(data: &str, id: u64) -> Option<Value> {
    serde_json::from_str::<Value>(data).ok().filter(|m| {
        m.get("id").and_then(Value::as_u64) == Some(id)
            && (m.get("result").is_some() || m.get("error").is_some())
    })
}

/// The events of a stream read so far: complete lines are consumed from
/// `pos`; the `data` of the event being read is kept across chunks.
#[derive(Default)]
struct SseEvents {
    buf: Vec<u8>,
    pos: usize,
    data: String,
    has_data: bool,
}

impl SseEvents {
    /// The data of the next complete event; at the end of the stream
    /// (`ended`), the event left unterminated counts too.
    fn next_data(&mut self, ended: bool) -> Option<String> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                if ended && !rest.is_empty() {
                    let line = String::from_utf8_lossy(rest).into_owned();
                    self.pos = self.buf.len();
                    self.take_line(&line);
                }
                if ended && self.has_data {
                    return Some(self.finish());
                }
                return None;
            };
            let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
            self.pos += nl + 1;
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if self.has_data {
                    return Some(self.finish());
                }
                continue;
            }
            let line = line.to_owned();
            self.take_line(&line);
        }
    }

    fn take_line(&mut self, line: &str) {
        if let Some(value) = line.strip_prefix("data:") {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
            self.has_data = true;
        }
    }

    fn finish(&mut self) -> String {
        self.has_data = false;
        std::mem::take(&mut self.data)
    }
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Fault> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(Fault::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                let (failure, cause) = transport_failure(&e);
                return Err(Fault::Transport { failure, cause });
            }
        }
    }
}

fn jsonrpc_error(body: &[u8]) -> Option<Fault> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("error").map(error_fault)
}

/// The fault of a JSON-RPC `error` object.
fn error_fault(error: &Value) -> Fault {
    Fault::JsonRpc {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

fn result_of(message: Value, body: &[u8]) -> Result<Value, Fault> {
    if let Some(error) = message.get("error") {
        return Err(error_fault(error));
    }
    match message {
        Value::Object(mut m) => m.remove("result").ok_or_else(|| Fault::Unreadable {
            detail: "the answer has no result".to_owned(),
            excerpt: excerpt(body),
        }),
        _ => Err(Fault::Unreadable {
            detail: "the answer is not a JSON-RPC message".to_owned(),
            excerpt: excerpt(body),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse_response(body: &[u8], id: u64) -> Option<Value> {
        let mut events = SseEvents::default();
        // Fed in small pieces, as a network hands them over.
        for piece in body.chunks(7) {
            events.buf.extend_from_slice(piece);
            while let Some(data) = events.next_data(false) {
                if let Some(m) = answer_to(&data, id) {
                    return Some(m);
                }
            }
        }
        while let Some(data) = events.next_data(true) {
            if let Some(m) = answer_to(&data, id) {
                return Some(m);
            }
        }
        None
    }

    #[test]
    fn sse_bodies_give_the_response_among_other_messages() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\n data: \"result\":{\"ok\":true}}\n\n";
        // A data line continued over two `data:` fields.
        let body2 = b": keep-alive\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":7,\"result\":{\"ok\":true}}\r\n\r\n: more to come";
        assert!(sse_response(body, 7).is_none());
        assert_eq!(
            sse_response(body2, 7).unwrap(),
            json!({"jsonrpc": "2.0", "id": 7, "result": {"ok": true}})
        );
        let body3 =
            b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"bad\"}}";
        assert_eq!(
            result_of(sse_response(body3, 7).unwrap(), body3),
            Err(Fault::JsonRpc {
                code: -32602,
                message: "bad".into()
            })
        );
    }
}
