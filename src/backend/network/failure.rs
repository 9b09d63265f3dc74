//! What a failed HTTP exchange says about where it broke: the TLS
//! handshake, the certificate, the connection, the proxy, the answer. Made
//! from reqwest's error chain, for every backend.

use super::proxy::ProxyServer;
use crate::backend::error::{ProxyFailure, TransportFailure};

/// The innermost cause of an error, in words.
pub fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// What failed, from the innermost cause of a transport error; the cause
/// is `None` when it says no more than the error itself.
pub fn transport_failure(error: &reqwest::Error) -> (TransportFailure, Option<String>) {
    let cause = innermost(error);
    let lower = cause.to_ascii_lowercase();
    let failure = if lower.contains("certificate") || lower.contains("unknownissuer") {
        TransportFailure::Certificate
    } else if lower.contains("tls") || lower.contains("handshake") {
        TransportFailure::Tls
    } else if error.is_builder()
        || lower.contains("message head is too large")
        || (lower.starts_with("invalid ") && lower.contains("parsed"))
        || lower.contains("unexpected message")
    {
        TransportFailure::Malformed
    } else if error.is_connect() {
        TransportFailure::Connect
    } else if error.is_body() || error.is_decode() {
        TransportFailure::BodyBroken
    } else {
        TransportFailure::Other
    };
    let cause = (cause != error.to_string()).then_some(cause);
    (failure, cause)
}

/// How a proxy failed, when a connection through `proxy` could not be made.
/// `None` when the fault is not the proxy's (a TLS failure behind the
/// tunnel, a broken answer).
pub fn proxy_failure(
    proxy: Option<&ProxyServer>,
    failure: TransportFailure,
    cause: Option<&str>,
) -> Option<ProxyFailure> {
    proxy?;
    if failure != TransportFailure::Connect {
        return None;
    }
    let lower = cause.unwrap_or("").to_ascii_lowercase();
    Some(if lower.contains("proxy authorization required") {
        ProxyFailure::AuthRequired
    } else if lower.contains("tunnel error: unsuccessful") {
        ProxyFailure::RefusedTunnel
    } else if lower.contains("tunnel error") {
        ProxyFailure::Broken
    } else {
        ProxyFailure::Unreachable
    })
}
