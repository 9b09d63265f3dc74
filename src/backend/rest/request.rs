//! The one request path of the REST backend: send, retry what is worth
//! retrying, read the body under a size cap, decode. Every endpoint goes
//! through [`RestClient::get`]; they differ only in their [`Endpoint`] and
//! the type decoded.

use std::time::{Duration, SystemTime};

use reqwest::header::{LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::endpoint::Endpoint;
use super::retry::{is_retryable, parse_retry_after};
use super::RestClient;
use crate::backend::error::{
    AnswerProblem, BackendError, ProxyFailure, Service, Subject, TransportFailure,
};
use crate::backend::model::{bound_error, Reply};
use crate::backend::network::failure::{
    innermost, is_undecodable, proxy_failure, transport_failure, unreachable,
};
use crate::backend::network::MAX_REDIRECTS;
use crate::backend::notice::{RetryNotice, RetryObserver, RetryReason};
use crate::backend::quote::{strip_position, MAX_ERROR_BODY_BYTES};

/// The result of one attempt that may be worth another.
enum Attempt {
    Body(Vec<u8>),
    /// A status that is not success, its `Retry-After`, the start of its body.
    Status(StatusCode, Option<Duration>, Vec<u8>),
    Transport(reqwest::Error),
}

fn unexpected(problem: AnswerProblem, excerpt: Option<String>) -> BackendError {
    BackendError::Unexpected {
        service: Service::Api,
        problem,
        excerpt,
    }
}

impl RestClient {
    /// Sends `endpoint`'s request until it succeeds or fails for good.
    pub(super) async fn get<D: DeserializeOwned>(
        &self,
        endpoint: &Endpoint<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Reply<D>, BackendError> {
        let inner = &*self.inner;
        let url = endpoint
            .url(&inner.base)
            .map_err(|detail| BackendError::BadUrl { detail })?;
        let policy = inner.retry;
        let mut retries = 0u32;
        loop {
            // At most MAX_CONNECTIONS requests are on the wire at once; the
            // others queue here, before their timeout starts.
            let permit = inner.connections.acquire().await;
            let attempt = tokio::time::timeout(inner.timeout, self.attempt(&url)).await;
            drop(permit);
            let Ok(attempt) = attempt else {
                return Err(BackendError::Timeout {
                    host: inner.host.clone(),
                    timeout: inner.timeout,
                });
            };
            let (reason, retry_after) = match attempt? {
                Attempt::Body(bytes) => return self.decode(&bytes),
                Attempt::Status(status, retry_after, body) => {
                    let retryable = is_retryable(status);
                    if let Some(wait) =
                        retry_after.filter(|w| retryable && *w > policy.max_retry_after)
                    {
                        return Err(BackendError::wait_too_long(status.as_u16(), wait));
                    }
                    if !retryable || retries >= policy.max_retries {
                        let subject = endpoint.subject();
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
                    (reason, retry_after)
                }
                Attempt::Transport(error) => {
                    let (failure, cause) = transport_failure(&error);
                    if failure == TransportFailure::Malformed {
                        let detail = cause
                            .map(|c| inner.quoter.quote(&c, 150))
                            .unwrap_or_default();
                        return Err(unexpected(AnswerProblem::Malformed { detail }, None));
                    }
                    let cause = cause.map(|c| inner.quoter.scrub(&c));
                    let proxy = self.proxy();
                    let through = proxy_failure(proxy, failure, cause.as_deref());
                    let permanent = failure == TransportFailure::Certificate
                        || through == Some(ProxyFailure::AuthRequired);
                    if retries >= policy.max_retries || permanent {
                        let host = inner.host.clone();
                        return Err(unreachable(proxy, host, failure, cause, retries));
                    }
                    tracing::debug!(
                        ?failure,
                        cause = cause.as_deref().unwrap_or(""),
                        "request failed; will retry"
                    );
                    (RetryReason::Connection, None)
                }
            };
            retries += 1;
            // A Retry-After of 0 or of a past date still waits the backoff:
            // a rate-limiting API is never asked again at once.
            let backoff = policy.backoff(retries);
            let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
            observer(&RetryNotice {
                retry: retries,
                max_retries: policy.max_retries,
                wait,
                reason,
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: send the request and read the answer. The error is a
    /// fault no retry can mend: the client could not be made, a redirect
    /// loop or one that leaves, a body too large or that cannot be decoded.
    async fn attempt(&self, url: &Url) -> Result<Attempt, BackendError> {
        let inner = &*self.inner;
        let response = match self.http()?.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) if e.is_redirect() => {
                return Err(BackendError::RedirectLoop {
                    host: inner.host.clone(),
                    max: MAX_REDIRECTS,
                })
            }
            Err(e) => return Ok(Attempt::Transport(e)),
        };
        let status = response.status();
        let location = response.headers().get(LOCATION);
        if let Some(location) =
            location.filter(|_| status.is_redirection() && status != StatusCode::NOT_MODIFIED)
        {
            // Same-origin redirects were followed already: this one leaves.
            let location = String::from_utf8_lossy(location.as_bytes());
            return Err(BackendError::Redirect {
                service: Service::Api,
                host: inner.host.clone(),
                location: inner.quoter.quote(&location, 120),
            });
        }
        if status.is_success() {
            return match read_capped(response, inner.max_body_bytes).await {
                Ok(body) => Ok(Attempt::Body(body)),
                Err(None) => Err(BackendError::BodyTooLarge {
                    limit: inner.max_body_bytes,
                }),
                // A corrupt compressed body: trying again cannot mend it.
                Err(Some(e)) if is_undecodable(&e) => {
                    let detail = inner.quoter.quote(&innermost(&e), 150);
                    Err(unexpected(AnswerProblem::Undecodable { detail }, None))
                }
                Err(Some(e)) => Ok(Attempt::Transport(e)),
            };
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // A little more than is quoted, so that a secret cut by the end of
        // what is read is still whole when it is scrubbed.
        let body = read_prefix(response, MAX_ERROR_BODY_BYTES + inner.quoter.margin()).await;
        Ok(Attempt::Status(status, retry_after, body))
    }

    /// Decodes a 200 answer, turning `success: false` and malformed bodies
    /// into errors.
    pub(super) fn decode<D: DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<Reply<D>, BackendError> {
        let quoter = &self.inner.quoter;
        let refused = |error: Option<&Value>, errors: Option<&Value>| BackendError::Failed {
            service: Service::Api,
            message: quoter
                .api_message(error, errors)
                .unwrap_or_else(|| "the API reported a failure and gave no reason".to_owned()),
        };
        // Checked as UTF-8 once, the body is read as text: far quicker than
        // a check of each string apart, on pages of a thousand codes. A body
        // that is not UTF-8 is read as bytes, which fails as it always has.
        let read = match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str::<Reply<D>>(text),
            Err(_) => serde_json::from_slice::<Reply<D>>(bytes),
        };
        match read {
            Ok(reply) if reply.success == Some(false) => {
                Err(refused(reply.error.as_ref(), reply.errors.as_ref()))
            }
            Ok(reply) if reply.data.is_none() => Err(unexpected(AnswerProblem::NoData, None)),
            Ok(reply) => Ok(reply),
            Err(error) => Err(match serde_json::from_slice::<Value>(bytes) {
                Ok(value) if value.get("success") == Some(&Value::Bool(false)) => {
                    refused(value.get("error"), value.get("errors"))
                }
                Ok(_) => bound_error(&error.to_string()).unwrap_or_else(|| {
                    let detail = quoter.quote(strip_position(&error.to_string()), 150);
                    unexpected(
                        AnswerProblem::MissingField { detail },
                        Some(quoter.excerpt(bytes)),
                    )
                }),
                Err(_) => unexpected(AnswerProblem::NotJson, Some(quoter.excerpt(bytes))),
            }),
        }
    }

    /// Turns a non-success status into the error the contract asks for.
    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        subject: Subject,
        retries: u32,
    ) -> BackendError {
        let message = self.inner.quoter.body_message(body);
        match status.as_u16() {
            400 => BackendError::Rejected { message },
            401 => BackendError::Unauthorized { message },
            403 => BackendError::Forbidden { message },
            404 => BackendError::NotFound { subject, message },
            429 => BackendError::RateLimited {
                retries,
                retry_after,
            },
            status @ (500 | 502 | 503 | 504) => BackendError::Server {
                status,
                retries,
                excerpt: message,
            },
            status => BackendError::Status {
                service: Service::Api,
                status,
                excerpt: message,
            },
        }
    }
}

/// Reads the whole body, giving up as soon as it passes `cap` bytes: then
/// the error is `None`, else the transport's.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, Option<reqwest::Error>> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > cap as u64) {
        return Err(None);
    }
    let mut body = Vec::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Err(None);
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
