//! What can go wrong when talking to the Bloomreach API.
//!
//! Each variant is made where the fault is seen (in the client) and carries
//! the facts a person needs; its `Display` is the sentence the assistant
//! shows. Quoted API text is already shortened and scrubbed of credentials
//! by the time it lands here.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::config::env;

/// The thing a request was about, named in "not found" messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Project { project_id: String },
    Pool { project_id: String, pool_id: String },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Project { project_id } => write!(
                f,
                "Project {project_id:?} was not found; check the project token (list_projects shows the configured ones)"
            ),
            Subject::Pool {
                project_id,
                pool_id,
            } => write!(
                f,
                "Voucher pool {pool_id:?} was not found in project {project_id:?}; list_voucher_pools shows the pool ids of a project"
            ),
        }
    }
}

/// A failed call to the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "No Bloomreach API key is configured: set {} and {} in the server's environment (or pass --api-key-id and --api-secret), then restart the server",
        env::KEY_ID,
        env::SECRET
    )]
    NotConfigured,

    #[error("Bloomreach rejected the request as invalid (HTTP 400){}", quoted(.message))]
    Rejected { message: Option<String> },

    #[error(
        "Bloomreach refused the credentials (HTTP 401{}); check {} and {}: the key must exist, have private access and belong to the project",
        quoted(.message),
        env::KEY_ID,
        env::SECRET
    )]
    Unauthorized { message: Option<String> },

    #[error("Permission denied by Bloomreach (HTTP 403){}; the API key needs read access to vouchers in this project", quoted(.message))]
    Forbidden { message: Option<String> },

    #[error("{subject} (HTTP 404{})", quoted(.message))]
    NotFound {
        subject: Subject,
        message: Option<String>,
    },

    #[error("The Bloomreach API is rate limiting requests (HTTP 429, still limited after {retries} retries); {}", retry_hint(*.retry_after))]
    RateLimited {
        retries: u32,
        retry_after: Option<Duration>,
    },

    #[error(
        "The Bloomreach API {} and asked to wait {} s, longer than this server waits; try again after {}",
        busy(*.status),
        .wait.as_secs(),
        httpdate::fmt_http_date(*.until)
    )]
    RetryAfterTooLong {
        status: u16,
        wait: Duration,
        until: SystemTime,
    },

    #[error("The Bloomreach API failed with HTTP {status} (still failing after {retries} retries){}", quoted(.excerpt))]
    Server {
        status: u16,
        retries: u32,
        excerpt: Option<String>,
    },

    #[error("The Bloomreach API answered with unexpected HTTP status {status}{}", quoted(.excerpt))]
    Status {
        status: u16,
        excerpt: Option<String>,
    },

    #[error("The Bloomreach API redirected to another host ({location}); the redirect was not followed so that credentials stay with {host}. Check {}", env::BASE_URL)]
    Redirect { host: String, location: String },

    #[error(
        "The Bloomreach API at {host} redirected in a loop (more than {max} redirects); check {}",
        env::BASE_URL
    )]
    RedirectLoop { host: String, max: usize },

    #[error("Bloomreach could not complete the request: {message}")]
    Api { message: String },

    #[error("The Bloomreach API answered unexpectedly: {reason}{}", quoted(.excerpt))]
    Unexpected {
        reason: String,
        excerpt: Option<String>,
    },

    #[error("The Bloomreach API answer is larger than {} MiB, the most this server reads; ask for fewer records (a smaller count)", .limit / (1024 * 1024))]
    BodyTooLarge { limit: usize },

    #[error("The request to the Bloomreach API at {host} timed out: no complete answer within {} s (the {} setting)", .timeout.as_secs(), env::TIMEOUT)]
    Timeout { host: String, timeout: Duration },

    #[error("Could not reach the Bloomreach API at {host}: {detail}{}", after_retries(*.retries))]
    Connection {
        host: String,
        detail: String,
        retries: u32,
    },
}

fn quoted(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

fn busy(status: u16) -> String {
    if status == 429 {
        "is rate limiting requests (HTTP 429)".to_owned()
    } else {
        format!("is unavailable (HTTP {status})")
    }
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) if d.as_secs() > 0 => format!("try again in {} s", d.as_secs()),
        _ => "try again in a minute".to_owned(),
    }
}

fn after_retries(retries: u32) -> String {
    if retries == 0 {
        String::new()
    } else {
        format!(" (after {retries} retries)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_configured_names_both_settings() {
        let text = ApiError::NotConfigured.to_string();
        assert!(text.contains("BLOOMREACH_API_KEY_ID"), "{text}");
        assert!(text.contains("BLOOMREACH_API_SECRET"), "{text}");
    }

    #[test]
    fn not_found_names_the_ids() {
        let e = ApiError::NotFound {
            subject: Subject::Pool {
                project_id: "proj".into(),
                pool_id: "pool-9".into(),
            },
            message: Some("pool not found".into()),
        };
        assert_eq!(
            e.to_string(),
            "Voucher pool \"pool-9\" was not found in project \"proj\"; list_voucher_pools shows the pool ids of a project (HTTP 404: pool not found)"
        );
    }

    #[test]
    fn rate_limit_and_long_wait_say_when_to_retry() {
        let e = ApiError::RateLimited {
            retries: 3,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(e.to_string(), "The Bloomreach API is rate limiting requests (HTTP 429, still limited after 3 retries); try again in 2 s");
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = ApiError::RetryAfterTooLong {
            status: 429,
            wait: Duration::from_secs(120),
            until,
        };
        assert_eq!(e.to_string(), "The Bloomreach API is rate limiting requests (HTTP 429) and asked to wait 120 s, longer than this server waits; try again after Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
