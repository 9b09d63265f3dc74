//! The Bloomreach Engagement REST API as a backend: HTTP Basic auth, one
//! connection pool, no redirect to another origin, and one request path
//! ([`request`]) that every endpoint ([`endpoint`]) goes through.

mod endpoint;
mod request;
mod retry;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::Url;

pub use endpoint::Endpoint;
pub use retry::{parse_retry_after, RetryPolicy};

use super::error::{BackendError, Service};
use super::id::Id;
use super::model::{
    Bounded, Capped, Code, CodesPage, CodesQuery, Pool, PoolRef, PoolSummary, Reply,
    MAX_CODES_PER_PAGE, MAX_POOLS,
};
use super::network::Network;
use super::notice::RetryObserver;
use super::quote::Quoter;
use crate::backend::Credentials;

/// The largest answer body read, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The most requests on the wire at once (so the most connections open);
/// further calls queue for a free one.
pub const MAX_CONNECTIONS: usize = 50;

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
    pub network: Network,
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
            network: Network::default(),
        }
    }
}

/// A client of the Bloomreach voucher endpoints. Cheap to clone; clones
/// share one connection pool.
#[derive(Clone)]
pub struct RestClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// Made by the first request: reading the system's certificate store
    /// is not paid by a process that never calls out.
    http: OnceLock<Result<reqwest::Client, String>>,
    headers: HeaderMap,
    /// Redirects are followed only within it.
    origin: Url,
    user_agent: String,
    network: Network,
    /// The base URL as text, without a trailing slash.
    base: String,
    /// `host[:port]` of the base URL, for messages.
    host: String,
    timeout: Duration,
    retry: RetryPolicy,
    max_body_bytes: usize,
    /// Takes the secret and the encoded header value out of every quote.
    quoter: Quoter,
    connections: tokio::sync::Semaphore,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.inner.base)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// Sets the client up; its connection pool is made by the first request.
    pub fn new(options: ClientOptions) -> Self {
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
        Self {
            inner: Arc::new(Inner {
                http: OnceLock::new(),
                headers,
                base: options.base_url.as_str().trim_end_matches('/').to_owned(),
                host: super::network::host_port(&options.base_url),
                origin: options.base_url,
                user_agent: options.user_agent,
                network: options.network,
                timeout: options.timeout,
                retry: options.retry,
                max_body_bytes: options.max_body_bytes,
                quoter: Quoter::new([token, options.credentials.secret.expose().to_owned()]),
                connections: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
            }),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, BackendError> {
        let inner = &*self.inner;
        inner
            .http
            .get_or_init(|| inner.client().map_err(|e| inner.quoter.scrub(&e)))
            .as_ref()
            .map_err(|detail| BackendError::ClientSetup {
                detail: detail.clone(),
            })
    }

    /// The proxy requests to the API go through, if any.
    fn proxy(&self) -> Option<&super::network::ProxyServer> {
        self.inner.network.proxy_for(&self.inner.origin)
    }

    /// `GET /data/v2/projects/{project_id}/vouchers/pools`
    pub async fn list_pools(
        &self,
        project_id: &Id,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, BackendError> {
        let reply: Reply<Bounded<PoolSummary, MAX_POOLS>> =
            self.get(&Endpoint::Pools { project_id }, observer).await?;
        Ok(reply.data.unwrap_or_default().0)
    }

    /// `GET /data/v2/projects/{project_id}/vouchers/pools/{pool_id}`
    pub async fn get_pool(
        &self,
        pool: PoolRef<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        let reply: Reply<Pool> = self.get(&Endpoint::Pool(pool), observer).await?;
        reply.pool(Service::Api, pool.project_id)
    }

    /// `GET /data/v2/projects/{project_id}/vouchers/pools/{pool_id}/codes?skip=&count=[&status=]`
    pub async fn list_codes(
        &self,
        query: &CodesQuery<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, BackendError> {
        let reply: Reply<Capped<Code, MAX_CODES_PER_PAGE>> =
            self.get(&Endpoint::Codes(query), observer).await?;
        Ok(CodesPage::from_reply(reply, query))
    }
}

impl Inner {
    fn client(&self) -> Result<reqwest::Client, String> {
        // A redirect elsewhere is answered as itself, and named.
        let redirect = super::network::within_origin(&self.origin, |a| a.stop());
        self.network
            .client_builder()
            .user_agent(self.user_agent.clone())
            .default_headers(self.headers.clone())
            .redirect(redirect)
            .connect_timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(MAX_CONNECTIONS)
            .build()
            .map_err(|e| super::network::failure::innermost(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::AnswerProblem;
    use crate::backend::Secret;

    fn client() -> RestClient {
        RestClient::new(ClientOptions::new(
            Url::parse("https://api.exponea.com").unwrap(),
            Credentials {
                key_id: "kid".into(),
                secret: Secret::new("topsecret"),
            },
            Duration::from_secs(5),
        ))
    }

    #[test]
    fn decode_turns_success_false_and_junk_into_errors() {
        let c = client();
        let e = c
            .decode::<Vec<PoolSummary>>(
                br#"{"success": false, "errors": {"_global": ["project is locked"]}}"#,
            )
            .unwrap_err();
        assert_eq!(
            e,
            BackendError::Failed {
                service: Service::Api,
                message: "project is locked".into()
            }
        );
        let e = c
            .decode::<Vec<PoolSummary>>(b"<html>oops</html>")
            .unwrap_err();
        assert_eq!(
            e,
            BackendError::Unexpected {
                service: Service::Api,
                problem: AnswerProblem::NotJson,
                excerpt: Some("oops".into())
            }
        );
        let e = c
            .decode::<Vec<PoolSummary>>(br#"{"success": true, "data": [{"id": "p"}]}"#)
            .unwrap_err();
        let BackendError::Unexpected {
            service: Service::Api,
            problem: AnswerProblem::MissingField { detail },
            ..
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(detail, "missing field `name`");
        let e = c
            .decode::<Vec<PoolSummary>>(br#"{"success": true}"#)
            .unwrap_err();
        assert_eq!(
            e,
            BackendError::Unexpected {
                service: Service::Api,
                problem: AnswerProblem::NoData,
                excerpt: None
            }
        );
    }
}
