//! The Bloomreach HTTP client against real local HTTP fakes.
//!
//! Most cases use a `wiremock` server. The few that need control over the
//! bytes on the socket (a body that stalls, a connection reset mid-body, a
//! chunked body without `Content-Length`, the exact request line) use a tiny
//! raw TCP fake defined at the bottom of this file.
//!
//! Backoff delays are a few milliseconds so that retries cost nothing; only
//! the `Retry-After` and timeout cases take about a second each.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bloomreach_vouchers_mcp::bloomreach::client::RetryReason;
use bloomreach_vouchers_mcp::bloomreach::model::{Code, CodeStatus, CodesPage, Pool, PoolSummary};
use bloomreach_vouchers_mcp::bloomreach::{
    ApiError, BloomreachClient, ClientOptions, CodesQuery, RetryNotice, RetryPolicy, Subject,
};
use bloomreach_vouchers_mcp::config::{parse_base_url, Credentials, Secret};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY_ID: &str = "kid";
const SECRET: &str = "topsecret";
/// `base64("kid:topsecret")`, written out so the test does not share the
/// client's encoder.
const BASIC_TOKEN: &str = "a2lkOnRvcHNlY3JldA==";

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
    let mut options = ClientOptions::new(
        parse_base_url(base).expect("a loopback base URL"),
        Credentials {
            key_id: KEY_ID.to_owned(),
            secret: Secret::new(SECRET),
        },
        Duration::from_secs(5),
    );
    options.retry = RetryPolicy {
        max_retries: 3,
        base_delay: ms(5),
        max_delay: ms(20),
        max_retry_after: Duration::from_secs(10),
    };
    options
}

fn client_with(options: ClientOptions) -> BloomreachClient {
    BloomreachClient::new(options).expect("the client builds")
}

fn client(base: &str) -> BloomreachClient {
    client_with(options(base))
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

fn codes_query(skip: u64, count: u64, status: Option<CodeStatus>) -> CodesQuery<'static> {
    CodesQuery {
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

// ---------------------------------------------------------------------------
// 1. Happy paths
// ---------------------------------------------------------------------------

#[tokio::test]
async fn list_pools_decodes_the_contract_example_and_ignores_unknown_fields() {
    let server = MockServer::start().await;
    mount(&server, POOLS, ok_pools()).await;

    let pools = client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap();

    assert_eq!(
        pools,
        vec![
            summer20(),
            PoolSummary {
                id: "p2".into(),
                name: "WINTER".into(),
                total: 50,
                available: 0,
            }
        ]
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method.as_str(), "GET");
    assert_eq!(requests[0].url.path(), POOLS);
    assert_eq!(requests[0].url.query(), None);
}

#[tokio::test]
async fn get_pool_decodes_the_contract_example_and_passes_used_by_through() {
    let server = MockServer::start().await;
    mount(&server, POOL, json_response(200, pool_body())).await;

    let pool = client(&server.uri())
        .get_pool("proj", "p1", &quiet)
        .await
        .unwrap();

    assert_eq!(
        pool,
        Pool {
            id: "p1".into(),
            name: "SUMMER20".into(),
            total: 1000,
            available: 742,
            company_id: Some("proj".into()),
            used_by: vec![
                json!({"type": "campaign", "id": "c9", "name": "Summer", "extra": [1, 2]})
            ],
        }
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), POOL);
    assert_eq!(requests[0].url.query(), None);
}

#[tokio::test]
async fn get_pool_without_company_id_names_the_requested_project() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOL,
        json_response(
            200,
            json!({"success": true,
                   "data": {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742}}),
        ),
    )
    .await;

    let pool = client(&server.uri())
        .get_pool("proj", "p1", &quiet)
        .await
        .unwrap();

    assert_eq!(pool.company_id.as_deref(), Some("proj"));
    assert_eq!(pool.used_by, Vec::<Value>::new());
}

#[tokio::test]
async fn list_codes_sends_skip_and_count_and_decodes_the_page() {
    let server = MockServer::start().await;
    mount(&server, CODES, json_response(200, codes_body())).await;

    let page = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap();

    assert_eq!(
        page,
        CodesPage {
            codes: vec![
                Code {
                    code: "SUM-0001".into(),
                    status: "assigned".into(),
                    assigned_time: Some(1718000000.5),
                    redeemed_time: None,
                },
                Code {
                    code: "SUM-0002".into(),
                    status: "available".into(),
                    assigned_time: None,
                    redeemed_time: None,
                },
                Code {
                    code: "SUM-0003".into(),
                    status: "redeemed".into(),
                    assigned_time: Some(1718000000.0),
                    redeemed_time: Some(1718003600.25),
                },
            ],
            matched: Some(1000),
            matched_limited: Some(false),
            skip: 0,
            limit: 20,
        }
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), CODES);
    // Both paging parameters are sent even when they are the defaults.
    assert_eq!(requests[0].url.query(), Some("skip=0&count=20"));
}

#[tokio::test]
async fn list_codes_sends_status_when_given_and_falls_back_to_the_asked_paging() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        json_response(
            200,
            json!({"success": true,
                   "data": [{"code": "R-1", "status": "redeemed", "assigned_time": 1.0, "redeemed_time": 2.0}]}),
        ),
    )
    .await;
    let client = client(&server.uri());

    let page = client
        .list_codes(&codes_query(40, 5, Some(CodeStatus::Redeemed)), &quiet)
        .await
        .unwrap();
    for status in [CodeStatus::Available, CodeStatus::Assigned] {
        client
            .list_codes(&codes_query(0, 1000, Some(status)), &quiet)
            .await
            .unwrap();
    }

    // The answer gave no paging facts: the asked-for ones are reported.
    assert_eq!(
        page,
        CodesPage {
            codes: vec![Code {
                code: "R-1".into(),
                status: "redeemed".into(),
                assigned_time: Some(1.0),
                redeemed_time: Some(2.0),
            }],
            matched: None,
            matched_limited: None,
            skip: 40,
            limit: 5,
        }
    );
    let queries: Vec<Option<String>> = received(&server)
        .await
        .iter()
        .map(|r| r.url.query().map(str::to_owned))
        .collect();
    assert_eq!(
        queries,
        vec![
            Some("skip=40&count=5&status=redeemed".to_owned()),
            Some("skip=0&count=1000&status=available".to_owned()),
            Some("skip=0&count=1000&status=assigned".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_path_prefix_in_the_base_url_is_kept() {
    let server = MockServer::start().await;
    let prefixed = |p: &str| format!("/bloomreach{p}");
    mount(&server, &prefixed(POOLS), ok_pools()).await;
    mount(&server, &prefixed(POOL), json_response(200, pool_body())).await;
    mount(&server, &prefixed(CODES), json_response(200, codes_body())).await;

    for base in [
        format!("{}/bloomreach", server.uri()),
        format!("{}/bloomreach/", server.uri()),
    ] {
        let client = client(&base);
        assert_eq!(
            client.list_pools("proj", &quiet).await.unwrap()[0],
            summer20()
        );
        assert_eq!(
            client.get_pool("proj", "p1", &quiet).await.unwrap().name,
            "SUMMER20"
        );
        assert_eq!(
            client
                .list_codes(&codes_query(0, 20, None), &quiet)
                .await
                .unwrap()
                .codes
                .len(),
            3
        );
        assert_eq!(
            client.endpoint_url(&["proj"], &[]).unwrap().as_str(),
            format!("{}/bloomreach{POOLS}", server.uri())
        );
    }

    let paths: Vec<String> = received(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    let once = vec![prefixed(POOLS), prefixed(POOL), prefixed(CODES)];
    assert_eq!(paths, [once.clone(), once].concat());
}

// ---------------------------------------------------------------------------
// 2. Request headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_attempt_carries_basic_auth_accept_and_user_agent() {
    let server = MockServer::start().await;
    // One failed attempt first, so the retried request is checked too.
    mount_once(&server, POOLS, ResponseTemplate::new(500)).await;
    mount(&server, POOLS, ok_pools()).await;
    mount(&server, POOL, json_response(200, pool_body())).await;
    mount(&server, CODES, json_response(200, codes_body())).await;
    let client = client(&server.uri());

    client.list_pools("proj", &quiet).await.unwrap();
    client.get_pool("proj", "p1", &quiet).await.unwrap();
    client
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap();

    let requests = received(&server).await;
    assert_eq!(requests.len(), 4);
    let user_agent = format!("bloomreach-vouchers-mcp/{}", env!("CARGO_PKG_VERSION"));
    for request in &requests {
        assert_eq!(
            header(request, "authorization"),
            Some(format!("Basic {BASIC_TOKEN}").as_str()),
            "{}",
            request.url
        );
        assert_eq!(header(request, "accept"), Some("application/json"));
        assert_eq!(header(request, "user-agent"), Some(user_agent.as_str()));
        assert_eq!(request.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(request.headers.get_all("accept").iter().count(), 1);
    }
}

// ---------------------------------------------------------------------------
// 3. Ids are single, encoded path segments
// ---------------------------------------------------------------------------

/// Hostile ids and how each must appear as one path segment.
const HOSTILE_IDS: &[(&str, &str)] = &[
    ("a/b", "a%2Fb"),
    ("../x", "..%2Fx"),
    ("../../../admin", "..%2F..%2F..%2Fadmin"),
    (
        "x?status=redeemed&count=1000",
        "x%3Fstatus%3Dredeemed%26count%3D1000",
    ),
    ("x#frag", "x%23frag"),
    ("a%2Fb", "a%252Fb"),
    ("%2e%2e", "%252e%252e"),
    ("my pool", "my%20pool"),
    ("line\r\nX-Injected: 1", "line%0D%0AX-Injected%3A%201"),
    ("zľava-é-€", "z%C4%BEava-%C3%A9-%E2%82%AC"),
    ("...", "..."),
    ("p.v2_~-", "p.v2_~-"),
];

#[tokio::test]
async fn hostile_ids_reach_the_fake_as_one_encoded_segment() {
    let server = MockServer::start().await;
    // Each endpoint answers only when every id is one segment (no `/`);
    // anything else gets wiremock's 404 and fails the call.
    for (pattern, body) in [
        (r"^/data/v2/projects/[^/]+/vouchers/pools$", pools_body()),
        (
            r"^/data/v2/projects/[^/]+/vouchers/pools/[^/]+$",
            pool_body(),
        ),
        (
            r"^/data/v2/projects/[^/]+/vouchers/pools/[^/]+/codes$",
            codes_body(),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path_regex(pattern))
            .respond_with(json_response(200, body))
            .mount(&server)
            .await;
    }
    let client = client(&server.uri());

    for (id, _) in HOSTILE_IDS {
        client.get_pool("proj", id, &quiet).await.unwrap();
        client.list_pools(id, &quiet).await.unwrap();
        client
            .list_codes(
                &CodesQuery {
                    project_id: "proj",
                    pool_id: id,
                    skip: 0,
                    count: 20,
                    status: None,
                },
                &quiet,
            )
            .await
            .unwrap();
    }

    let requests = received(&server).await;
    assert_eq!(requests.len(), HOSTILE_IDS.len() * 3);
    for (i, (id, encoded)) in HOSTILE_IDS.iter().enumerate() {
        let [pool, pools, codes] = &requests[i * 3..i * 3 + 3] else {
            unreachable!()
        };
        assert_eq!(
            pool.url.path(),
            format!("/data/v2/projects/proj/vouchers/pools/{encoded}"),
            "{id:?}"
        );
        assert_eq!(pool.url.query(), None, "{id:?}");
        assert_eq!(pool.url.fragment(), None, "{id:?}");
        assert_eq!(
            pools.url.path(),
            format!("/data/v2/projects/{encoded}/vouchers/pools"),
            "{id:?}"
        );
        assert_eq!(pools.url.query(), None, "{id:?}");
        assert_eq!(
            codes.url.path(),
            format!("/data/v2/projects/proj/vouchers/pools/{encoded}/codes"),
            "{id:?}"
        );
        let keys: Vec<(String, String)> = codes.url.query_pairs().into_owned().collect();
        assert_eq!(
            keys,
            vec![
                ("skip".to_owned(), "0".to_owned()),
                ("count".to_owned(), "20".to_owned())
            ],
            "{id:?}"
        );
        // No header was injected through the id.
        assert!(pool.headers.get("x-injected").is_none(), "{id:?}");
    }
}

#[tokio::test]
async fn hostile_ids_are_sent_verbatim_encoded_on_the_request_line() {
    // wiremock re-parses the URL it receives; this fake records the raw
    // request line instead, so nothing can be normalised on the way.
    let body = r#"{"success": true, "data": {"id": "p", "name": "n", "total": 1, "available": 1}}"#;
    let fake = RawFake::start(Raw::Json(body)).await;
    let client = client(&fake.base());

    for (id, _) in HOSTILE_IDS {
        guard(client.get_pool(id, id, &quiet)).await.unwrap();
    }

    let heads = fake.heads();
    assert_eq!(heads.len(), HOSTILE_IDS.len());
    for ((id, encoded), head) in HOSTILE_IDS.iter().zip(&heads) {
        let request_line = head.split("\r\n").next().unwrap();
        assert_eq!(
            request_line,
            format!("GET /data/v2/projects/{encoded}/vouchers/pools/{encoded} HTTP/1.1"),
            "{id:?}"
        );
        // The id stayed on the request line: no header line was injected.
        for line in head.split("\r\n").skip(1) {
            assert!(
                !line.to_ascii_lowercase().starts_with("x-injected"),
                "{id:?}: {head}"
            );
        }
    }
}

#[tokio::test]
async fn dot_segment_and_empty_ids_are_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok_pools())
        .mount(&server)
        .await;
    let client = client(&server.uri());

    for bad in ["..", ".", ""] {
        let e = client.list_pools(bad, &quiet).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("The Bloomreach API answered unexpectedly: {bad:?} cannot be used as an id in a URL path")
        );
        assert!(matches!(e, ApiError::Unexpected { .. }), "{e:?}");
        let e = client.get_pool("proj", bad, &quiet).await.unwrap_err();
        assert!(matches!(e, ApiError::Unexpected { .. }), "{e:?}");
        let e = client
            .list_codes(
                &CodesQuery {
                    project_id: "proj",
                    pool_id: bad,
                    skip: 0,
                    count: 20,
                    status: None,
                },
                &quiet,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Unexpected { .. }), "{e:?}");
    }

    assert_eq!(received(&server).await.len(), 0);
}

// ---------------------------------------------------------------------------
// 4. Failure rows of the contract table
// ---------------------------------------------------------------------------

#[tokio::test]
async fn http_400_is_a_rejection_quoting_the_api() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        json_response(
            400,
            json!({"success": false, "errors": {"skip": ["must be a non-negative integer"]}}),
        ),
    )
    .await;

    let e = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap_err();

    assert_eq!(
        e.to_string(),
        "Bloomreach rejected the request as invalid (HTTP 400): must be a non-negative integer"
    );
    assert!(
        matches!(&e, ApiError::Rejected { message: Some(m) } if m == "must be a non-negative integer"),
        "{e:?}"
    );
}

#[tokio::test]
async fn http_401_names_both_settings_and_never_the_secret() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        json_response(
            401,
            json!({"success": false, "error": "access key not found"}),
        ),
    )
    .await;

    let e = client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap_err();

    let text = e.to_string();
    assert_eq!(
        text,
        "Bloomreach refused the credentials (HTTP 401: access key not found); check BLOOMREACH_API_KEY_ID and BLOOMREACH_API_SECRET: the key must exist, have private access and belong to the project"
    );
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
    let debug = format!("{e:?}");
    for shown in [&text, &debug] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(BASIC_TOKEN), "{shown}");
    }
}

#[tokio::test]
async fn credentials_echoed_by_the_api_are_redacted() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        json_response(
            401,
            json!({"success": false,
                   "error": format!("bad header Basic {BASIC_TOKEN} with secret {SECRET}")}),
        ),
    )
    .await;
    mount(
        &server,
        POOL,
        ResponseTemplate::new(200).set_body_string(format!("Authorization: Basic {BASIC_TOKEN}")),
    )
    .await;
    let client = client(&server.uri());

    let e = client.list_pools("proj", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Bloomreach refused the credentials (HTTP 401: bad header Basic [redacted] with secret [redacted]); check BLOOMREACH_API_KEY_ID and BLOOMREACH_API_SECRET: the key must exist, have private access and belong to the project"
    );
    let e = client.get_pool("proj", "p1", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Bloomreach API answered unexpectedly: the answer is not JSON: Authorization: Basic [redacted]"
    );
}

#[tokio::test]
async fn http_403_is_permission_denied_quoting_the_api() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOL,
        json_response(
            403,
            json!({"success": false, "errors": ["not authorized to read vouchers"]}),
        ),
    )
    .await;

    let e = client(&server.uri())
        .get_pool("proj", "p1", &quiet)
        .await
        .unwrap_err();

    assert_eq!(
        e.to_string(),
        "Permission denied by Bloomreach (HTTP 403): not authorized to read vouchers; the API key needs read access to vouchers in this project"
    );
    assert!(matches!(e, ApiError::Forbidden { .. }), "{e:?}");
}

#[tokio::test]
async fn long_api_messages_are_quoted_short() {
    let server = MockServer::start().await;
    let long = "not authorized ".repeat(200);
    mount(
        &server,
        POOLS,
        json_response(403, json!({"success": false, "errors": [long]})),
    )
    .await;

    let e = client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap_err();

    let ApiError::Forbidden { message: Some(m) } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(m.chars().count(), 301, "{m}");
    assert!(m.ends_with('…'), "{m}");
    assert!(e.to_string().chars().count() < 450, "{e}");
}

#[tokio::test]
async fn http_404_names_the_id_that_was_asked_for() {
    let server = MockServer::start().await;
    let not_found = json_response(
        404,
        json!({"errors": {"code": 404, "description": "resource does not exist"}}),
    );
    mount(
        &server,
        "/data/v2/projects/nope/vouchers/pools",
        not_found.clone(),
    )
    .await;
    mount(
        &server,
        "/data/v2/projects/proj/vouchers/pools/pool-9",
        not_found.clone(),
    )
    .await;
    mount(
        &server,
        "/data/v2/projects/proj/vouchers/pools/pool-9/codes",
        not_found,
    )
    .await;
    let client = client(&server.uri());

    let e = client.list_pools("nope", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Project \"nope\" was not found; check the project token (list_projects shows the configured ones) (HTTP 404: resource does not exist)"
    );
    assert!(
        matches!(&e, ApiError::NotFound { subject: Subject::Project { project_id }, .. } if project_id == "nope"),
        "{e:?}"
    );

    let pool_message = "Voucher pool \"pool-9\" was not found in project \"proj\"; list_voucher_pools shows the pool ids of a project (HTTP 404: resource does not exist)";
    let e = client.get_pool("proj", "pool-9", &quiet).await.unwrap_err();
    assert_eq!(e.to_string(), pool_message);
    let e = client
        .list_codes(
            &CodesQuery {
                project_id: "proj",
                pool_id: "pool-9",
                skip: 0,
                count: 20,
                status: None,
            },
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), pool_message);
    assert!(
        matches!(&e, ApiError::NotFound { subject: Subject::Pool { project_id, pool_id }, .. }
            if project_id == "proj" && pool_id == "pool-9"),
        "{e:?}"
    );
}

#[tokio::test]
async fn success_false_on_200_quotes_the_api() {
    let server = MockServer::start().await;
    let failed = json_response(
        200,
        json!({"success": false, "errors": {"_global": ["project is locked"]}}),
    );
    mount(&server, POOLS, failed.clone()).await;
    mount(&server, POOL, failed.clone()).await;
    mount(&server, CODES, failed).await;
    let client = client(&server.uri());

    let errors = [
        client.list_pools("proj", &quiet).await.unwrap_err(),
        client.get_pool("proj", "p1", &quiet).await.unwrap_err(),
        client
            .list_codes(&codes_query(0, 20, None), &quiet)
            .await
            .unwrap_err(),
    ];

    for e in errors {
        assert_eq!(
            e.to_string(),
            "Bloomreach could not complete the request: project is locked"
        );
        assert!(matches!(e, ApiError::Api { .. }), "{e:?}");
    }
}

#[tokio::test]
async fn non_json_200_is_an_unexpected_answer_with_an_excerpt() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200).set_body_raw(
            "upstream connect error or disconnect/reset before headers",
            "text/plain",
        ),
    )
    .await;
    mount(
        &server,
        POOL,
        ResponseTemplate::new(200).set_body_raw(
            "<!DOCTYPE html><html><head><title>Maintenance</title></head><body><p>Back soon</p></body></html>",
            "text/html",
        ),
    )
    .await;
    mount(&server, CODES, ResponseTemplate::new(200)).await;
    let client = client(&server.uri());

    let e = client.list_pools("proj", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Bloomreach API answered unexpectedly: the answer is not JSON: upstream connect error or disconnect/reset before headers"
    );
    assert!(matches!(e, ApiError::Unexpected { .. }), "{e:?}");

    let e = client.get_pool("proj", "p1", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Bloomreach API answered unexpectedly: the answer is not JSON: Maintenance Back soon"
    );

    // An empty 200 is not JSON either.
    let e = client
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Unexpected { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("The Bloomreach API answered unexpectedly: the answer is not JSON"),
        "{e}"
    );
}

#[tokio::test]
async fn a_missing_required_field_is_an_unexpected_answer() {
    let server = MockServer::start().await;
    let body = r#"{"success":true,"data":[{"id":"p1","name":"SUMMER20","total":1000}]}"#;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200).set_body_raw(body, "application/json"),
    )
    .await;
    mount(&server, POOL, json_response(200, json!({"success": true}))).await;
    mount(
        &server,
        CODES,
        json_response(
            200,
            json!({"success": true, "data": [{"code": "A", "status": "assigned", "assigned_time": "yesterday"}]}),
        ),
    )
    .await;
    let client = client(&server.uri());

    let e = client.list_pools("proj", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("The Bloomreach API answered unexpectedly: a required field is missing or has the wrong type (missing field `available`): {body}")
    );
    assert!(matches!(e, ApiError::Unexpected { .. }), "{e:?}");

    let e = client.get_pool("proj", "p1", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Bloomreach API answered unexpectedly: the answer has no data field"
    );

    let e = client
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "The Bloomreach API answered unexpectedly: a required field is missing or has the wrong type (invalid type: string \"yesterday\""
        ),
        "{e}"
    );
}

#[tokio::test]
async fn an_unknown_code_status_passes_through() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        json_response(
            200,
            json!({"success": true, "data": [
                {"code": "X-1", "status": "expired", "assigned_time": null, "redeemed_time": null},
                {"code": "X-2", "status": "", "assigned_time": 5}
            ], "matched": 2, "matched_limited": true, "skip": 0, "limit": 20}),
        ),
    )
    .await;

    let page = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap();

    let statuses: Vec<&str> = page.codes.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses, ["expired", ""]);
    assert_eq!(page.codes[1].assigned_time, Some(5.0));
    assert_eq!((page.matched, page.matched_limited), (Some(2), Some(true)));
}

#[tokio::test]
async fn an_html_proxy_page_on_502_is_quoted_short_without_tags() {
    let server = MockServer::start().await;
    let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(502).set_body_raw(nginx, "text/html"),
    )
    .await;
    let long_page = format!(
        "<!DOCTYPE html><html><head><title>Error 502</title><style>body {{ color: red }}</style>\
         <script>var trace = 'abc';</script></head><body><p>{}</p></body></html>",
        "The origin did not answer. ".repeat(100)
    );
    mount(
        &server,
        POOL,
        ResponseTemplate::new(502).set_body_raw(long_page, "text/html"),
    )
    .await;
    let client = client(&server.uri());

    let e = client.list_pools("proj", &quiet).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Bloomreach API failed with HTTP 502 (still failing after 3 retries): 502 Bad Gateway 502 Bad Gateway nginx"
    );
    assert!(
        matches!(
            e,
            ApiError::Server {
                status: 502,
                retries: 3,
                ..
            }
        ),
        "{e:?}"
    );

    let e = client.get_pool("proj", "p1", &quiet).await.unwrap_err();
    let ApiError::Server {
        status: 502,
        excerpt: Some(excerpt),
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(
        excerpt.starts_with("Error 502 The origin did not answer."),
        "{excerpt}"
    );
    assert!(excerpt.chars().count() <= 201, "{excerpt}");
    for junk in ['<', '>', '\r', '\n'] {
        assert!(!excerpt.contains(junk), "{excerpt}");
    }
    assert!(!excerpt.contains("color"), "{excerpt}");
    assert!(!excerpt.contains("trace"), "{excerpt}");
}

// ---------------------------------------------------------------------------
// 5. Retries
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_500_then_200_succeeds_after_one_retry() {
    let server = MockServer::start().await;
    mount_once(&server, POOLS, ResponseTemplate::new(500)).await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();

    let pools = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap();

    assert_eq!(pools[0], summer20());
    assert_eq!(received(&server).await.len(), 2);
    assert_eq!(notices.reasons(), vec![(1, RetryReason::Status(500))]);
}

#[tokio::test]
async fn each_retryable_status_is_retried_and_the_observer_hears_each_retry() {
    let server = MockServer::start().await;
    mount_once(&server, POOLS, ResponseTemplate::new(502)).await;
    mount_once(&server, POOLS, ResponseTemplate::new(504)).await;
    mount_once(&server, POOLS, ResponseTemplate::new(429)).await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();

    let pools = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap();

    assert_eq!(pools.len(), 2);
    assert_eq!(received(&server).await.len(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Status(502)),
            (2, RetryReason::Status(504)),
            (3, RetryReason::RateLimited),
        ]
    );
    for notice in notices.all() {
        // Backoff with jitter: between half of base (5 ms) and the cap (20 ms).
        assert!(notice.wait >= ms(2) && notice.wait <= ms(20), "{notice:?}");
    }
}

#[tokio::test]
async fn a_persistent_503_fails_after_one_attempt_and_three_retries() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        ResponseTemplate::new(503).set_body_string("Service Unavailable"),
    )
    .await;
    let notices = Notices::default();

    let e = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &|n: &RetryNotice| {
            notices.observe(n)
        })
        .await
        .unwrap_err();

    assert_eq!(
        e.to_string(),
        "The Bloomreach API failed with HTTP 503 (still failing after 3 retries): Service Unavailable"
    );
    assert!(
        matches!(
            e,
            ApiError::Server {
                status: 503,
                retries: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(received(&server).await.len(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Status(503)),
            (2, RetryReason::Status(503)),
            (3, RetryReason::Status(503)),
        ]
    );
}

/// Says whether an error is the one a case expects.
type IsExpected = fn(&ApiError) -> bool;

#[tokio::test]
async fn client_errors_and_api_failures_are_never_retried() {
    let cases: Vec<(ResponseTemplate, IsExpected)> = vec![
        (json_response(400, json!({"error": "bad"})), |e| {
            matches!(e, ApiError::Rejected { .. })
        }),
        (
            json_response(
                401,
                json!({"success": false, "error": "access key not found"}),
            ),
            |e| matches!(e, ApiError::Unauthorized { .. }),
        ),
        (
            json_response(403, json!({"success": false, "errors": ["no"]})),
            |e| matches!(e, ApiError::Forbidden { .. }),
        ),
        (
            json_response(404, json!({"errors": {"code": 404, "description": "gone"}})),
            |e| matches!(e, ApiError::NotFound { .. }),
        ),
        (json_response(409, json!({"error": "conflict"})), |e| {
            matches!(e, ApiError::Status { status: 409, .. })
        }),
        (
            json_response(
                200,
                json!({"success": false, "errors": {"_global": ["project is locked"]}}),
            ),
            |e| matches!(e, ApiError::Api { .. }),
        ),
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            |e| matches!(e, ApiError::Unexpected { .. }),
        ),
    ];

    for (response, is_expected) in cases {
        let server = MockServer::start().await;
        mount(&server, POOLS, response).await;
        let notices = Notices::default();

        let e = client(&server.uri())
            .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
            .await
            .unwrap_err();

        assert!(is_expected(&e), "{e:?}");
        assert_eq!(received(&server).await.len(), 1, "{e:?}");
        assert!(notices.all().is_empty(), "{e:?}");
    }
}

#[tokio::test]
async fn retry_after_seconds_on_429_is_waited_out_in_full() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        POOLS,
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
    )
    .await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();

    let started = Instant::now();
    let pools =
        guard(client(&server.uri()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
            .await
            .unwrap();
    let elapsed = started.elapsed();

    assert_eq!(pools[0], summer20());
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(received(&server).await.len(), 2);
    assert_eq!(
        notices.all(),
        vec![RetryNotice {
            retry: 1,
            max_retries: 3,
            wait: Duration::from_secs(1),
            reason: RetryReason::RateLimited,
        }]
    );
}

#[tokio::test]
async fn retry_after_on_503_is_waited_out_too() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        POOLS,
        ResponseTemplate::new(503).insert_header("Retry-After", "1"),
    )
    .await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();

    let started = Instant::now();
    guard(client(&server.uri()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
        .await
        .unwrap();

    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(received(&server).await.len(), 2);
    assert_eq!(notices.all()[0].wait, Duration::from_secs(1));
    assert_eq!(notices.all()[0].reason, RetryReason::Status(503));
}

#[tokio::test]
async fn a_retry_after_longer_than_the_ceiling_fails_at_once_saying_when() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(429).insert_header("Retry-After", "120"),
    )
    .await;
    let notices = Notices::default();

    let before = SystemTime::now();
    let started = Instant::now();
    let e = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap_err();
    let after = SystemTime::now();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(received(&server).await.len(), 1);
    assert!(notices.all().is_empty());
    let ApiError::RetryAfterTooLong {
        status: 429,
        wait,
        until,
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(wait, Duration::from_secs(120));
    assert!(until >= before + wait && until <= after + wait, "{until:?}");
    let text = e.to_string();
    assert_eq!(
        text,
        format!(
            "The Bloomreach API is rate limiting requests (HTTP 429) and asked to wait 120 s, longer than this server waits; try again after {}",
            httpdate::fmt_http_date(until)
        )
    );
    // The date in the message is a real HTTP date about two minutes ahead.
    let said = text.rsplit("try again after ").next().unwrap();
    let said = httpdate::parse_http_date(said).unwrap();
    let ahead = said.duration_since(before).unwrap();
    assert!(
        ahead >= Duration::from_secs(119) && ahead <= Duration::from_secs(121),
        "{ahead:?}"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_ceiling_on_503_fails_at_once_too() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(503).insert_header("Retry-After", "120"),
    )
    .await;
    let notices = Notices::default();

    let e = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap_err();

    // "a Retry-After is waited out in full (up to 10 s; a longer one ends the
    // call at once with an error that says when to retry)": the server asked
    // for two minutes of quiet, so it is not asked again three times at once.
    assert_eq!(received(&server).await.len(), 1, "{e}");
    assert!(notices.all().is_empty(), "{:?}", notices.all());
    assert!(e.to_string().contains("try again after "), "{e}");
}

#[tokio::test]
async fn a_retry_after_http_date_is_honoured() {
    let server = MockServer::start().await;
    // HTTP dates have whole seconds: three seconds ahead, cut to the second,
    // is at least two seconds ahead.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    mount_once(
        &server,
        POOL,
        ResponseTemplate::new(429).insert_header("Retry-After", date.as_str()),
    )
    .await;
    mount(&server, POOL, json_response(200, pool_body())).await;
    let notices = Notices::default();

    let started = Instant::now();
    let pool =
        guard(client(&server.uri()).get_pool("proj", "p1", &|n: &RetryNotice| notices.observe(n)))
            .await
            .unwrap();
    let elapsed = started.elapsed();

    assert_eq!(pool.id, "p1");
    assert!(elapsed >= ms(1500), "{elapsed:?}");
    assert_eq!(received(&server).await.len(), 2);
    let notice = &notices.all()[0];
    assert_eq!(notice.reason, RetryReason::RateLimited);
    assert!(
        notice.wait >= ms(1500) && notice.wait <= Duration::from_secs(3),
        "{notice:?}"
    );
}

#[tokio::test]
async fn persistent_rate_limiting_says_so_and_when_to_retry() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        json_response(429, json!({"error": "too many requests"})),
    )
    .await;
    let notices = Notices::default();

    let e = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap_err();

    assert_eq!(
        e.to_string(),
        "The Bloomreach API is rate limiting requests (HTTP 429, still limited after 3 retries); try again in a minute"
    );
    assert!(
        matches!(
            e,
            ApiError::RateLimited {
                retries: 3,
                retry_after: None
            }
        ),
        "{e:?}"
    );
    assert_eq!(received(&server).await.len(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::RateLimited),
            (2, RetryReason::RateLimited),
            (3, RetryReason::RateLimited),
        ]
    );
}

// ---------------------------------------------------------------------------
// 6. Timeouts, resets and cancellation
// ---------------------------------------------------------------------------

fn one_second_client(base: &str) -> BloomreachClient {
    let mut options = options(base);
    options.timeout = Duration::from_secs(1);
    client_with(options)
}

#[tokio::test]
async fn late_headers_end_in_a_timeout() {
    let server = MockServer::start().await;
    mount(&server, POOLS, ok_pools().set_delay(Duration::from_secs(4))).await;

    let started = Instant::now();
    let e = guard(one_second_client(&server.uri()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    let host = server.address().to_string();
    assert_eq!(
        e.to_string(),
        format!("The request to the Bloomreach API at {host} timed out: no complete answer within 1 s (the BLOOMREACH_TIMEOUT_SECS setting)")
    );
    assert!(
        matches!(&e, ApiError::Timeout { host: h, timeout } if *h == host && *timeout == Duration::from_secs(1)),
        "{e:?}"
    );
    assert!(
        elapsed >= ms(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_body_that_stalls_after_the_headers_ends_in_a_timeout_and_the_connection_is_dropped() {
    let fake = RawFake::start(Raw::StallBody).await;

    let started = Instant::now();
    let e = guard(one_second_client(&fake.base()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(
        e.to_string(),
        format!(
            "The request to the Bloomreach API at {} timed out: no complete answer within 1 s (the BLOOMREACH_TIMEOUT_SECS setting)",
            fake.addr
        )
    );
    assert!(matches!(e, ApiError::Timeout { .. }), "{e:?}");
    assert!(
        elapsed >= ms(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(fake.connections(), 1);
    // The abandoned attempt does not linger: its connection is closed.
    assert!(fake.wait_closed(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_cancelled_call_drops_its_request() {
    let fake = RawFake::start(Raw::Silent).await;
    let client = client(&fake.base());

    let outcome = tokio::time::timeout(ms(300), client.list_pools("proj", &quiet)).await;

    assert!(outcome.is_err(), "the silent fake cannot have answered");
    assert_eq!(fake.connections(), 1);
    assert!(fake.wait_closed(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_a_connection_error_after_retries() {
    let fake = RawFake::start(Raw::ResetMidBody).await;
    let notices = Notices::default();

    let e = guard(client(&fake.base()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
        .await
        .unwrap_err();

    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API at {}: the connection broke while the answer was being read",
            fake.addr
        )),
        "{text}"
    );
    assert!(text.ends_with(" (after 3 retries)"), "{text}");
    assert!(
        matches!(&e, ApiError::Connection { host, retries: 3, .. } if *host == fake.addr.to_string()),
        "{e:?}"
    );
    assert_eq!(fake.connections(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Connection),
            (2, RetryReason::Connection),
            (3, RetryReason::Connection),
        ]
    );
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_a_connection_error_after_retries() {
    let fake = RawFake::start(Raw::CloseMidBody).await;

    let e = guard(client(&fake.base()).get_pool("proj", "p1", &quiet))
        .await
        .unwrap_err();

    assert!(
        matches!(&e, ApiError::Connection { host, retries: 3, .. } if *host == fake.addr.to_string()),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "Could not reach the Bloomreach API at {}: the connection broke while the answer was being read",
            fake.addr
        )),
        "{e}"
    );
    assert_eq!(fake.connections(), 4);
}

#[tokio::test]
async fn a_refused_connection_names_host_and_port_after_retries() {
    let port = closed_port().await;
    let notices = Notices::default();

    let e = guard(
        client(&format!("http://127.0.0.1:{port}"))
            .list_pools("proj", &|n: &RetryNotice| notices.observe(n)),
    )
    .await
    .unwrap_err();

    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API at 127.0.0.1:{port}: the connection could not be made"
        )),
        "{text}"
    );
    assert!(text.ends_with(" (after 3 retries)"), "{text}");
    assert!(
        matches!(&e, ApiError::Connection { host, retries: 3, .. } if *host == format!("127.0.0.1:{port}")),
        "{e:?}"
    );
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Connection),
            (2, RetryReason::Connection),
            (3, RetryReason::Connection),
        ]
    );
}

// ---------------------------------------------------------------------------
// 7. Body cap
// ---------------------------------------------------------------------------

fn one_mib_client(base: &str) -> BloomreachClient {
    let mut options = options(base);
    options.max_body_bytes = MIB;
    client_with(options)
}

/// A valid pools answer of exactly `size` bytes.
fn pools_json_of_size(size: usize) -> String {
    let head = r#"{"success":true,"data":[],"pad":""#;
    let tail = r#""}"#;
    let body = format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()));
    assert_eq!(body.len(), size);
    body
}

const TOO_LARGE: &str = "The Bloomreach API answer is larger than 1 MiB, the most this server reads; ask for fewer records (a smaller count)";

#[tokio::test]
async fn a_body_larger_than_the_cap_is_refused() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200).set_body_raw(pools_json_of_size(2 * MIB), "application/json"),
    )
    .await;

    let e = one_mib_client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap_err();

    assert_eq!(e.to_string(), TOO_LARGE);
    assert!(
        matches!(e, ApiError::BodyTooLarge { limit } if limit == MIB),
        "{e:?}"
    );
    assert_eq!(received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_body_exactly_at_the_cap_is_read_and_one_byte_more_is_refused() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/data/v2/projects/fits/vouchers/pools",
        ResponseTemplate::new(200).set_body_raw(pools_json_of_size(MIB), "application/json"),
    )
    .await;
    mount(
        &server,
        "/data/v2/projects/over/vouchers/pools",
        ResponseTemplate::new(200).set_body_raw(pools_json_of_size(MIB + 1), "application/json"),
    )
    .await;
    let client = one_mib_client(&server.uri());

    assert_eq!(client.list_pools("fits", &quiet).await.unwrap(), vec![]);
    let e = client.list_pools("over", &quiet).await.unwrap_err();
    assert!(matches!(e, ApiError::BodyTooLarge { .. }), "{e:?}");
}

#[tokio::test]
async fn a_chunked_body_without_length_larger_than_the_cap_is_refused() {
    let fake = RawFake::start(Raw::Chunked(2 * MIB)).await;

    let e = guard(one_mib_client(&fake.base()).list_pools("proj", &quiet))
        .await
        .unwrap_err();

    assert_eq!(e.to_string(), TOO_LARGE);
    assert!(
        matches!(e, ApiError::BodyTooLarge { limit } if limit == MIB),
        "{e:?}"
    );
    assert_eq!(fake.connections(), 1);
    let head = fake.heads().remove(0);
    assert!(
        head.starts_with("GET /data/v2/projects/proj/vouchers/pools HTTP/1.1\r\n"),
        "{head}"
    );
}

// ---------------------------------------------------------------------------
// 8. Redirects
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok_pools())
        .mount(&elsewhere)
        .await;
    let other_port = elsewhere.address().port();
    let own_port = server.address().port();
    let targets = [
        (302, format!("http://localhost:{other_port}{POOLS}")),
        (307, format!("http://127.0.0.1:{other_port}{POOLS}")),
        (301, format!("https://127.0.0.1:{own_port}{POOLS}")),
    ];
    let host = server.address().to_string();

    for (status, location) in &targets {
        server.reset().await;
        mount(
            &server,
            POOLS,
            ResponseTemplate::new(*status).insert_header("Location", location.as_str()),
        )
        .await;

        let e = guard(client(&server.uri()).list_pools("proj", &quiet))
            .await
            .unwrap_err();

        assert_eq!(
            e.to_string(),
            format!("The Bloomreach API redirected to another host ({location}); the redirect was not followed so that credentials stay with {host}. Check BLOOMREACH_API_BASE_URL")
        );
        assert!(
            matches!(&e, ApiError::Redirect { host: h, location: l } if *h == host && l == location),
            "{e:?}"
        );
        assert_eq!(received(&server).await.len(), 1, "{location}");
    }
    assert_eq!(received(&elsewhere).await.len(), 0);
}

#[tokio::test]
async fn a_same_origin_redirect_is_followed_with_credentials() {
    let server = MockServer::start().await;
    let moved = "/bloomreach/data/v2/projects/proj/vouchers/pools-moved";
    mount(
        &server,
        &format!("/bloomreach{POOLS}"),
        ResponseTemplate::new(302).insert_header("Location", moved),
    )
    .await;
    mount(&server, moved, ok_pools()).await;

    let pools = client(&format!("{}/bloomreach", server.uri()))
        .list_pools("proj", &quiet)
        .await
        .unwrap();

    assert_eq!(pools[0], summer20());
    let requests = received(&server).await;
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, [format!("/bloomreach{POOLS}").as_str(), moved]);
    assert_eq!(
        header(&requests[1], "authorization"),
        Some(format!("Basic {BASIC_TOKEN}").as_str())
    );
}

#[tokio::test]
async fn a_same_origin_redirect_loop_ends_in_one_attempt_without_retries() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(302).insert_header("Location", POOLS),
    )
    .await;
    let notices = Notices::default();

    let e = guard(client(&server.uri()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
        .await
        .unwrap_err();

    // A redirect loop is not a failed connection: it is not retried, and the
    // message says it was about redirects.
    assert!(e.to_string().contains("redirect"), "{e}");
    assert!(notices.all().is_empty(), "{e}: {:?}", notices.all());
    assert_eq!(received(&server).await.len(), 6, "{e}");
}

// ---------------------------------------------------------------------------
// The raw TCP fake
// ---------------------------------------------------------------------------

/// What the raw fake does with each connection once it has read the request head.
#[derive(Clone, Copy)]
enum Raw {
    /// Answer 200 with this body and close.
    Json(&'static str),
    /// Send the head (with a `Content-Length`) and part of the body, then go
    /// silent with the socket open.
    StallBody,
    /// Never answer.
    Silent,
    /// Send the head and part of the body, then reset the connection (RST).
    ResetMidBody,
    /// Send the head and part of the body, then close the connection (FIN).
    CloseMidBody,
    /// Answer 200 with a chunked body of this many bytes and no `Content-Length`.
    Chunked(usize),
}

struct RawFake {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    closed_by_client: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    accept: JoinHandle<()>,
}

impl Drop for RawFake {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl RawFake {
    async fn start(behaviour: Raw) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed_by_client = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let connections = connections.clone();
            let closed_by_client = closed_by_client.clone();
            let heads = heads.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let closed_by_client = closed_by_client.clone();
                    let heads = heads.clone();
                    tokio::spawn(async move {
                        serve(stream, behaviour, heads, closed_by_client).await;
                    });
                }
            }
        });
        Self {
            addr,
            connections,
            closed_by_client,
            heads,
            accept,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits until the client has closed `n` connections the fake kept open.
    async fn wait_closed(&self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.closed_by_client.load(Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(ms(10)).await;
        }
        false
    }
}

const PARTIAL_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
const PARTIAL_BODY: &str = r#"{"success": true, "data": ["#;

async fn serve(
    mut stream: TcpStream,
    behaviour: Raw,
    heads: Arc<Mutex<Vec<String>>>,
    closed_by_client: Arc<AtomicUsize>,
) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    heads.lock().unwrap().push(head);
    match behaviour {
        Raw::Json(body) => {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Raw::StallBody => {
            let _ = stream
                .write_all(format!("{PARTIAL_HEAD}{PARTIAL_BODY}").as_bytes())
                .await;
            let _ = stream.flush().await;
            wait_for_client_close(&mut stream).await;
            closed_by_client.fetch_add(1, Ordering::SeqCst);
        }
        Raw::Silent => {
            wait_for_client_close(&mut stream).await;
            closed_by_client.fetch_add(1, Ordering::SeqCst);
        }
        Raw::ResetMidBody | Raw::CloseMidBody => {
            let _ = stream
                .write_all(format!("{PARTIAL_HEAD}{PARTIAL_BODY}").as_bytes())
                .await;
            let _ = stream.flush().await;
            // Let the client read the head and the first bytes of the body.
            tokio::time::sleep(ms(50)).await;
            if matches!(behaviour, Raw::ResetMidBody) {
                stream.set_zero_linger().unwrap();
            }
            drop(stream);
        }
        Raw::Chunked(total) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                let n = chunk.len().min(total - sent);
                let frame = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
                if stream.write_all(&frame).await.is_err() {
                    return; // the client stopped reading: expected
                }
                sent += n;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    }
}

/// Reads up to the blank line that ends a request head.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn wait_for_client_close(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
