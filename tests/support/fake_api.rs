//! A wiremock fake of the Bloomreach REST API: the contract's example
//! answers (with fields the server must drop), what the server must make of
//! them, fakes that answer every request one way (an error, a delay, a rate
//! limit), and a raw session whose call is held in flight by a slow fake.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::jsonrpc::{self, Session};
use super::{POOL, PROJECT};

/// The contract's example answers, with a few fields the API may add (which
/// the server must drop) and a code with null times.
pub fn pools_body() -> Value {
    json!({
        "success": true,
        "data": [
            {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742, "created": 1717000000, "kind": "static"},
            {"id": "p2", "name": "Été ☀️", "total": 0, "available": 0}
        ]
    })
}

pub fn pool_body() -> Value {
    json!({
        "success": true,
        "data": {
            "id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
            "company_id": PROJECT,
            "used_by": [{"type": "campaign", "id": "c9", "name": "Summer", "extra": {"nested": [1, 2]}}],
            "created": 1717000000
        }
    })
}

pub fn codes_body() -> Value {
    json!({
        "success": true,
        "data": [
            {"code": "SUM-0001", "status": "assigned", "assigned_time": 1718000000.5, "redeemed_time": null, "customer_id": "x"},
            {"code": "SUM-0002", "status": "available", "assigned_time": null, "redeemed_time": null},
            {"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000, "redeemed_time": 1718086400.25}
        ],
        "matched": 1000, "matched_limited": false, "skip": 0, "limit": 20, "total": 1000
    })
}

/// The envelope data the server must make of [`pools_body`].
pub fn expected_pools() -> Value {
    json!([
        {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742},
        {"id": "p2", "name": "Été ☀️", "total": 0, "available": 0}
    ])
}

/// ... of [`pool_body`].
pub fn expected_pool() -> Value {
    json!({
        "id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
        "company_id": PROJECT,
        "used_by": [{"type": "campaign", "id": "c9", "name": "Summer", "extra": {"nested": [1, 2]}}]
    })
}

/// ... of [`codes_body`].
pub fn expected_codes() -> Value {
    json!([
        {"code": "SUM-0001", "status": "assigned", "assigned_time": 1718000000.5, "redeemed_time": null,
         "assigned_at": "2024-06-10T06:13:20.5Z", "redeemed_at": null},
        {"code": "SUM-0002", "status": "available", "assigned_time": null, "redeemed_time": null,
         "assigned_at": null, "redeemed_at": null},
        {"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000.0, "redeemed_time": 1718086400.25,
         "assigned_at": "2024-06-10T06:13:20Z", "redeemed_at": "2024-06-11T06:13:20.25Z"}
    ])
}

pub fn pools_path(project: &str) -> String {
    format!("/data/v2/projects/{project}/vouchers/pools")
}

pub fn pool_path(project: &str, pool: &str) -> String {
    format!("/data/v2/projects/{project}/vouchers/pools/{pool}")
}

pub fn codes_path(project: &str, pool: &str) -> String {
    format!("/data/v2/projects/{project}/vouchers/pools/{pool}/codes")
}

/// A fake API that answers the three endpoints of [`PROJECT`]/[`POOL`]
/// with the example bodies.
pub async fn fake_api() -> MockServer {
    let server = MockServer::start().await;
    for (p, body) in [
        (pools_path(PROJECT), pools_body()),
        (pool_path(PROJECT, POOL), pool_body()),
        (codes_path(PROJECT, POOL), codes_body()),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    server
}

/// A fake API that answers every GET with `template`.
pub async fn fake_api_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// A fake API that answers the example pools after 30 s: a call to it stays
/// in flight for as long as a test needs.
pub async fn slow_api() -> MockServer {
    fake_api_answering(
        ResponseTemplate::new(200)
            .set_delay(Duration::from_secs(30))
            .set_body_json(pools_body()),
    )
    .await
}

/// A fake API whose pools endpoint of [`PROJECT`] answers 429 with
/// `Retry-After: <retry_after>` once, then the example pools.
pub async fn rate_limited_once(retry_after: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(pools_path(PROJECT)))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", retry_after))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(pools_path(PROJECT)))
        .respond_with(ResponseTemplate::new(200).set_body_json(pools_body()))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

/// The requests the fake received.
pub async fn requests(api: &MockServer) -> Vec<Request> {
    api.received_requests().await.expect("recording is on")
}

/// Waits up to 2 s for the first request to reach `api`, and asserts it
/// came, alone.
pub async fn wait_for_the_call(api: &MockServer) {
    for _ in 0..100 {
        if !requests(api).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(requests(api).await.len(), 1, "the call reached the API");
}

/// A raw session against `api`, initialized at 2025-11-25, with request `id`
/// (`list_voucher_pools` of [`PROJECT`]) sent and arrived at the API, whose
/// answer the session has not seen.
pub async fn session_with_a_call_in_flight(api: &MockServer, id: u64) -> Session {
    let mut s = Session::start_against(&api.uri());
    s.initialize("2025-11-25").await;
    s.request(
        id,
        "tools/call",
        jsonrpc::call_params("list_voucher_pools", json!({"project_id": PROJECT})),
    )
    .await;
    wait_for_the_call(api).await;
    s
}

/// A codes answer of `n` minimal codes (`{"code":"c","status":"a"}`), with
/// `matched` set to `n`: an answer that is small per code but holds many.
pub fn minimal_codes_body(n: usize) -> String {
    let mut body = format!(r#"{{"success":true,"matched":{n},"data":["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"code":"c","status":"a"}"#);
    }
    body.push_str("]}");
    body
}
