//! What a failed HTTP exchange says about where it broke: the TLS
//! handshake, the certificate, the connection, the proxy, the answer. Made
//! from reqwest's error chain, for every backend.

use super::proxy::ProxyServer;
use crate::backend::error::{BackendError, ProxyFailure, TransportFailure};

type Error = dyn std::error::Error + 'static;

/// An error and its causes, outermost first.
fn chain(error: &Error) -> impl Iterator<Item = &Error> {
    std::iter::successors(Some(error), |e| e.source())
}

/// The innermost cause of an error, in words.
pub fn innermost(error: &Error) -> String {
    chain(error)
        .last()
        .map_or_else(String::new, |e| e.to_string())
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
        || is_framing(&lower)
    {
        TransportFailure::Malformed
    } else if error.is_connect() {
        TransportFailure::Connect
    } else if error.is_body() || error.is_decode() {
        TransportFailure::BodyBroken
    } else {
        TransportFailure::Other
    };
    (failure, (cause != error.to_string()).then_some(cause))
}

/// Whether a cause (in lower case) says the answer's framing is not HTTP:
/// a chunk size or chunk line that cannot be read. The same request would
/// meet it again.
fn is_framing(lower: &str) -> bool {
    lower.contains("chunk size") || lower.contains("invalid chunk")
}

/// Whether a body could not be decoded, or was framed so that it cannot
/// be read: a fault the same request would meet again (a corrupt gzip,
/// deflate or brotli stream, wherever the corruption sits; a chunk size
/// that is not hex). A connection that broke or ended early is not one.
pub fn is_undecodable(error: &Error) -> bool {
    // A TLS fault during the body (an alert, a bad record) is the
    // connection's, not the answer's: worth another try.
    if chain(error).any(|e| e.is::<rustls::Error>()) {
        return false;
    }
    for e in chain(error) {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                InvalidData | InvalidInput => return true,
                ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe | TimedOut => {
                    return false
                }
                _ => {}
            }
        }
        let lower = e.to_string().to_ascii_lowercase();
        if is_framing(&lower)
            || [
                "decompress",
                "corrupt",
                "invalid deflate",
                "invalid gzip",
                "brotli",
            ]
            .iter()
            .any(|w| lower.contains(w))
        {
            return true;
        }
    }
    false
}

/// The failure of a connection to `host`, named as the proxy's where it
/// went through `proxy` and the fault is the proxy's.
pub fn unreachable(
    proxy: Option<&ProxyServer>,
    host: String,
    failure: TransportFailure,
    cause: Option<String>,
    retries: u32,
) -> BackendError {
    match (proxy, proxy_failure(proxy, failure, cause.as_deref())) {
        (Some(p), Some(how)) => BackendError::Proxy {
            proxy: p.shown().to_owned(),
            variable: p.variable(),
            host,
            failure: how,
            cause: cause.filter(|_| how != ProxyFailure::AuthRequired),
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

/// How a proxy failed, when a connection through `proxy` could not be made.
/// `None` when the fault is not the proxy's (a TLS failure behind the
/// tunnel, a broken answer).
pub fn proxy_failure(
    proxy: Option<&ProxyServer>,
    failure: TransportFailure,
    cause: Option<&str>,
) -> Option<ProxyFailure> {
    proxy.filter(|_| failure == TransportFailure::Connect)?;
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
