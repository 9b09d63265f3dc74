//! A call that waits on retries tells the client why, through
//! `notifications/progress`, when the request carries a progress token.

use serde_json::{json, Value};

use crate::support::fake_api::rate_limited_once;
use crate::support::jsonrpc::Session;
use crate::support::PROJECT;

/// Calls list_voucher_pools through one 429 (`Retry-After: 1`), with the
/// given request `_meta`, and returns every message the server wrote after
/// the handshake, up to and including the answer (id 2).
async fn call_through_a_rate_limit(meta: Option<Value>) -> Vec<Value> {
    let api = rate_limited_once("1").await;
    let mut s = Session::start_against(&api.uri());
    s.initialize("2025-06-18").await;
    let mut params = json!({"name": "list_voucher_pools", "arguments": {"project_id": PROJECT}});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    let answer = s.roundtrip(2, "tools/call", params).await;
    let mut seen = std::mem::take(&mut s.skipped);
    seen.push(answer);
    seen
}

#[tokio::test]
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

#[tokio::test]
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
