//! The REST backend against real local HTTP fakes, one module per
//! behaviour.
//!
//! Most cases use a `wiremock` server. The few that need control over the
//! bytes on the socket (a body that stalls, a connection reset mid-body, a
//! chunked body without `Content-Length`, the exact request line) use the
//! raw TCP fake of `tests/support`.
//!
//! Backoff delays are a few milliseconds so that retries cost nothing; only
//! the `Retry-After` and timeout cases take about a second each.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bloomreach_vouchers_mcp::backend::rest::{Endpoint, RetryPolicy};
use bloomreach_vouchers_mcp::backend::{
    BackendError, ClientOptions, Code, CodeStatus, CodesPage, CodesQuery, Id, Pool, PoolRef,
    PoolSummary, RestClient, RetryNotice, RetryObserver, RetryReason, Subject,
};
use bloomreach_vouchers_mcp::tools::words;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use support::rest::{rest_options, REST_BASIC_TOKEN as BASIC_TOKEN, REST_SECRET as SECRET};

const POOLS: &str = "/data/v2/projects/proj/vouchers/pools";
const POOL: &str = "/data/v2/projects/proj/vouchers/pools/p1";
const CODES: &str = "/data/v2/projects/proj/vouchers/pools/p1/codes";

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Options with fast backoff (5..20 ms), the default retry count and
/// `Retry-After` ceiling, and a 5 s per-attempt timeout.
fn options(base: &str) -> ClientOptions {
    rest_options(
        base,
        RetryPolicy {
            max_retries: 3,
            base_delay: ms(5),
            max_delay: ms(20),
            max_retry_after: Duration::from_secs(10),
        },
    )
}

/// The REST client, called with plain strings as ids.
struct Client(RestClient);

/// A codes query with plain strings as ids.
struct Codes<'a> {
    project_id: &'a str,
    pool_id: &'a str,
    skip: u64,
    count: u64,
    status: Option<CodeStatus>,
}

fn id(text: &str) -> Id {
    Id::new(text).expect("a valid id")
}

impl Client {
    /// The error of listing the pools of `proj`, which must fail.
    async fn pools_err(&self) -> BackendError {
        self.list_pools("proj", &quiet).await.unwrap_err()
    }

    /// The error of getting pool `p1` of `proj`, which must fail.
    async fn pool_err(&self) -> BackendError {
        self.get_pool("proj", "p1", &quiet).await.unwrap_err()
    }

    /// The error of the first 20 codes of `p1`, which must fail.
    async fn codes_err(&self) -> BackendError {
        self.list_codes(&codes_query(0, 20, None), &quiet)
            .await
            .unwrap_err()
    }

    async fn list_pools(
        &self,
        project_id: &str,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, BackendError> {
        self.0.list_pools(&id(project_id), observer).await
    }

    async fn get_pool(
        &self,
        project_id: &str,
        pool_id: &str,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        self.0
            .get_pool(
                PoolRef {
                    project_id: &id(project_id),
                    pool_id: &id(pool_id),
                },
                observer,
            )
            .await
    }

    async fn list_codes(
        &self,
        query: &Codes<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, BackendError> {
        let (project_id, pool_id) = (id(query.project_id), id(query.pool_id));
        let query = CodesQuery {
            project_id: &project_id,
            pool_id: &pool_id,
            skip: query.skip,
            count: query.count,
            status: query.status,
        };
        self.0.list_codes(&query, observer).await
    }
}

fn client_with(options: ClientOptions) -> Client {
    Client(RestClient::new(options))
}

fn client(base: &str) -> Client {
    client_with(options(base))
}

/// The sentence a person reads for `e`.
fn text(e: &BackendError) -> String {
    words::backend_error(e)
}

fn quiet(_: &RetryNotice) {}

/// Collects every retry notice.
#[derive(Default)]
struct Notices(Mutex<Vec<RetryNotice>>);

impl Notices {
    fn observe(&self, notice: &RetryNotice) {
        self.0.lock().unwrap().push(notice.clone());
    }

    fn reasons(&self) -> Vec<(u32, RetryReason)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|n| {
                assert_eq!(n.max_retries, 3, "{n:?}");
                (n.retry, n.reason.clone())
            })
            .collect()
    }

    fn all(&self) -> Vec<RetryNotice> {
        self.0.lock().unwrap().clone()
    }
}

/// Fails the test instead of hanging when a call does not end.
async fn guard<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), future)
        .await
        .expect("the call hung")
}

async fn received(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().unwrap())
}

fn codes_query(skip: u64, count: u64, status: Option<CodeStatus>) -> Codes<'static> {
    Codes {
        project_id: "proj",
        pool_id: "p1",
        skip,
        count,
        status,
    }
}

async fn mount(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn mount_once(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .up_to_n_times(1)
        .mount(server)
        .await;
}

fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn pools_body() -> Value {
    json!({
        "success": true,
        "data": [
            {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
             "created": 1717000000, "labels": {"team": "crm"}},
            {"id": "p2", "name": "WINTER", "total": 50.0, "available": 0, "archived": true}
        ],
        "took_ms": 12,
        "meta": {"request_id": "r-1"}
    })
}

fn summer20() -> PoolSummary {
    PoolSummary {
        id: "p1".into(),
        name: "SUMMER20".into(),
        total: 1000,
        available: 742,
    }
}

fn pool_body() -> Value {
    json!({
        "success": true,
        "data": {
            "id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
            "company_id": "proj",
            "used_by": [{"type": "campaign", "id": "c9", "name": "Summer", "extra": [1, 2]}],
            "created_by": "someone@example.com"
        },
        "took_ms": 3
    })
}

fn codes_body() -> Value {
    json!({
        "success": true,
        "data": [
            {"code": "SUM-0001", "status": "assigned", "assigned_time": 1718000000.5,
             "redeemed_time": null, "customer_ids": {"registered": "x"}},
            {"code": "SUM-0002", "status": "available"},
            {"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000,
             "redeemed_time": 1718003600.25}
        ],
        "matched": 1000, "matched_limited": false, "skip": 0, "limit": 20, "total": 1000
    })
}

fn ok_pools() -> ResponseTemplate {
    json_response(200, pools_body())
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[path = "../support/mod.rs"]
mod support;

mod body_cap;
mod decoding;
mod failures;
mod headers;
mod hostile_api;
mod ids;
mod loomi_session;
mod raw_fake;
mod redirects;
mod retries;
mod transport;

use raw_fake::*;
