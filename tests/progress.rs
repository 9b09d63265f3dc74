//! A call that waits on retries tells the client why, through
//! `notifications/progress`, when the request carries a progress token.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BINARY: &str = env!("CARGO_BIN_EXE_bloomreach-vouchers-mcp");

/// Sends `call` after the handshake and collects every line the server
/// writes until the response with id 2 arrives.
fn run_session(base_url: &str, call: Value) -> Vec<Value> {
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("BLOOMREACH_API_BASE_URL", base_url)
        .env("BLOOMREACH_API_KEY_ID", "kid")
        .env("BLOOMREACH_API_SECRET", "sec")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "progress-test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        call,
    ];
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let message: Value = serde_json::from_str(&line.unwrap()).expect("JSON-RPC on stdout");
        let done = message["id"] == json!(2);
        seen.push(message);
        if done || Instant::now() > deadline {
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    seen
}

async fn rate_limited_once() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/data/v2/projects/proj/vouchers/pools"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/data/v2/projects/proj/vouchers/pools"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": [{"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742}]
        })))
        .mount(&server)
        .await;
    server
}

/// Calls list_voucher_pools through one 429 (`Retry-After: 1`), with the
/// given request `_meta`, and returns everything the server wrote.
async fn call_through_a_rate_limit(meta: Option<Value>) -> Vec<Value> {
    let server = rate_limited_once().await;
    let uri = server.uri();
    let mut params = json!({"name": "list_voucher_pools", "arguments": {"project_id": "proj"}});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params});
    tokio::task::spawn_blocking(move || run_session(&uri, call))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_waiting_on_a_rate_limit_reports_progress() {
    let seen = call_through_a_rate_limit(Some(json!({"progressToken": "tok-7"}))).await;

    let progress: Vec<&Value> = seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 1, "{seen:#?}");
    let params = &progress[0]["params"];
    assert_eq!(params["progressToken"], "tok-7");
    assert_eq!(params["progress"], json!(1.0));
    assert_eq!(params["total"], json!(4.0));
    assert_eq!(
        params["message"],
        "Bloomreach is rate limiting (HTTP 429); waiting 1.0 s before retry 1 of 3"
    );
    let result = seen.last().unwrap();
    assert_eq!(result["id"], 2);
    assert_eq!(result["result"]["structuredContent"]["success"], true);
    assert_eq!(
        result["result"]["structuredContent"]["data"][0]["available"],
        742
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_progress_token_no_progress_is_sent() {
    let seen = call_through_a_rate_limit(None).await;
    assert!(
        seen.iter().all(|m| m["method"] != "notifications/progress"),
        "{seen:#?}"
    );
    assert_eq!(
        seen.last().unwrap()["result"]["structuredContent"]["success"],
        true
    );
}
