//! The wire, by hand: JSON-RPC lines written to the built binary's stdin and
//! read from its stdout, including lines no well-behaved client would send,
//! and cancellation of a call in flight.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::binary::api_env;
use crate::support::fake_api::{session_with_a_call_in_flight, slow_api};
use crate::support::jsonrpc::{call_params, initialize_params, structured, Session};
use crate::support::raw_http::{Event, RawHttp, Reply};
use crate::support::{KEY_ID, POOL, PROJECT};

/// A demo session, initialized at 2025-11-25.
async fn demo_session() -> Session {
    let mut s = Session::start(&["--demo"], &[]);
    s.initialize("2025-11-25").await;
    s
}

/// Asserts the session still serves a real tool call.
async fn assert_serves_tools(s: &mut Session, id: u64) {
    let response = s
        .roundtrip(
            id,
            "tools/call",
            call_params("list_voucher_pools", json!({"project_id": "demo"})),
        )
        .await;
    let envelope = structured(&response);
    assert_eq!(envelope["success"], true, "{response}");
    assert_eq!(envelope["data"].as_array().unwrap().len(), 4);
}

/// Asserts the session still answers: `ping` as request `id`, then a real
/// tool call as `id + 1`.
async fn assert_the_session_goes_on(s: &mut Session, id: u64) {
    s.assert_ping(id).await;
    assert_serves_tools(s, id + 1).await;
}

/// Asserts the session answers tools/list with every tool (it needs no
/// demo data).
async fn assert_lists_every_tool(s: &mut Session, id: u64) {
    let tools = s.roundtrip(id, "tools/list", json!({})).await;
    assert_eq!(
        tools["result"]["tools"].as_array().unwrap().len(),
        crate::support::TOOL_NAMES.len(),
        "{tools}"
    );
}

#[tokio::test]
async fn a_line_that_is_not_json_does_not_end_the_session() {
    let mut s = demo_session().await;
    s.send_line("this is not json at all").await;
    s.assert_ping(2).await;
    // Either dropped or answered with a parse error; never anything else.
    for msg in &s.skipped {
        assert_eq!(msg["error"]["code"], -32700, "{msg}");
    }
    assert_serves_tools(&mut s, 3).await;
}

#[tokio::test]
async fn a_truncated_json_line_does_not_end_the_session() {
    let mut s = demo_session().await;
    s.send_line(r#"{"jsonrpc":"2.0","id":1,"method":"tools/li"#)
        .await;
    s.assert_ping(2).await;
    for msg in &s.skipped {
        assert!(msg.get("error").is_some(), "{msg}");
    }
    assert_serves_tools(&mut s, 3).await;
}

#[tokio::test]
async fn an_unknown_method_gets_method_not_found() {
    let mut s = demo_session().await;
    let response = s.roundtrip(5, "vouchers/redeem", json!({})).await;
    assert_eq!(response["error"]["code"], -32601, "{response}");
    assert_the_session_goes_on(&mut s, 6).await;
}

#[tokio::test]
async fn an_unknown_tool_gets_invalid_params() {
    let mut s = demo_session().await;
    let response = s
        .roundtrip(5, "tools/call", call_params("redeem_voucher", json!({})))
        .await;
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(message.contains("redeem_voucher"), "{message}");
    assert_the_session_goes_on(&mut s, 6).await;
}

#[tokio::test]
async fn a_ten_megabyte_line_is_answered_and_the_session_goes_on() {
    let mut s = demo_session().await;
    let huge = "x".repeat(10 * 1024 * 1024);
    let response = s
        .roundtrip(
            8,
            "tools/call",
            call_params("list_voucher_pools", json!({"project_id": huge})),
        )
        .await;
    let envelope = structured(&response);
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["data"], json!([]));
    let error = envelope["error"].as_str().unwrap();
    assert!(error.contains("project_id"), "{error}");
    assert!(error.len() < 1000, "the error does not echo the huge value");
    assert_eq!(response["result"]["isError"], true);

    // A huge line that is not JSON either.
    s.send_line(&"y".repeat(10 * 1024 * 1024)).await;
    assert_the_session_goes_on(&mut s, 9).await;
}

#[tokio::test]
async fn a_second_initialize_changes_nothing_for_later_requests() {
    let mut s = demo_session().await;
    let again = s
        .roundtrip(1, "initialize", initialize_params("2099-01-01"))
        .await;
    // Whatever the answer, it is an answer to id 1.
    assert!(again.get("result").is_some() || again.get("error").is_some());
    s.assert_ping(2).await;
    assert_lists_every_tool(&mut s, 3).await;
    assert_serves_tools(&mut s, 4).await;
    let again = s
        .roundtrip(5, "initialize", initialize_params("2025-06-18"))
        .await;
    assert!(again.get("result").is_some() || again.get("error").is_some());
    assert_the_session_goes_on(&mut s, 6).await;
}

#[tokio::test]
async fn stdout_carries_only_json_rpc_lines() {
    let mut s = demo_session().await;
    s.send_line("garbage").await;
    assert_the_session_goes_on(&mut s, 1).await;
    let (stdout, _stderr) = s.finish().await;
    for line in stdout.lines() {
        let msg: Value = serde_json::from_str(line).expect("every stdout line is JSON");
        assert_eq!(msg["jsonrpc"], "2.0", "{line}");
    }
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_cancelled_call_gets_no_result_and_the_session_goes_on() {
    let api = slow_api().await;
    let mut s = session_with_a_call_in_flight(&api, 42).await;
    s.notify(
        "notifications/cancelled",
        json!({"requestId": 42, "reason": "the user gave up"}),
    )
    .await;
    s.assert_ping(43).await;
    assert_lists_every_tool(&mut s, 44).await;
    // Nothing for id 42, now or a little later.
    while let Some(msg) = s.next_message(Duration::from_millis(500)).await {
        s.skipped.push(msg);
    }
    for msg in &s.skipped {
        assert_ne!(
            msg.get("id"),
            Some(&json!(42)),
            "answered a cancelled call: {msg}"
        );
    }
    let stdout = s.stdout_text();
    assert!(!stdout.contains("\"id\":42"), "{stdout}");
}

#[tokio::test]
async fn a_cancelled_call_drops_its_upstream_connection() {
    let api = RawHttp::serve(|_| Reply::silent());
    let base = api.base_url();
    let mut s = Session::start(
        &[
            "--api-base-url",
            &base,
            "--api-key-id",
            KEY_ID,
            "--timeout-secs",
            "60",
        ],
        &api_env(),
    );
    s.initialize("2025-11-25").await;
    s.request(
        7,
        "tools/call",
        call_params(
            "get_voucher_pool",
            json!({"project_id": PROJECT, "pool_id": POOL}),
        ),
    )
    .await;
    let first = api
        .next_event(Duration::from_secs(10))
        .await
        .expect("the request reaches the fake");
    assert_eq!(first, Event::Request);
    s.notify("notifications/cancelled", json!({"requestId": 7}))
        .await;
    let next = api
        .next_event(Duration::from_secs(3))
        .await
        .expect("the server closes the upstream connection after the cancel");
    assert_eq!(next, Event::ClosedByClient);
    s.assert_ping(8).await;
    while let Some(msg) = s.next_message(Duration::from_millis(300)).await {
        assert_ne!(
            msg.get("id"),
            Some(&json!(7)),
            "answered a cancelled call: {msg}"
        );
    }
}
