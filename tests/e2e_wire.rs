//! The wire, by hand: JSON-RPC lines written to the built binary's stdin and
//! read from its stdout, including lines no well-behaved client would send,
//! and cancellation of a call in flight.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wiremock::ResponseTemplate;

use common::*;

/// A demo session, initialized at 2025-11-25.
async fn demo_session() -> RawSession {
    let mut s = RawSession::start(&["--demo"], &[]);
    s.initialize("2025-11-25").await;
    s
}

/// Asserts the session still serves a real tool call.
async fn assert_serves_tools(s: &mut RawSession, id: i64) {
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
    s.assert_ping(6).await;
    assert_serves_tools(&mut s, 7).await;
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
    s.assert_ping(6).await;
    assert_serves_tools(&mut s, 7).await;
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
    s.assert_ping(9).await;
    assert_serves_tools(&mut s, 10).await;
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
    let tools = s.roundtrip(3, "tools/list", json!({})).await;
    assert_eq!(
        tools["result"]["tools"].as_array().unwrap().len(),
        4,
        "{tools}"
    );
    assert_serves_tools(&mut s, 4).await;
    let again = s
        .roundtrip(5, "initialize", initialize_params("2025-06-18"))
        .await;
    assert!(again.get("result").is_some() || again.get("error").is_some());
    s.assert_ping(6).await;
    assert_serves_tools(&mut s, 7).await;
}

#[tokio::test]
async fn stdout_carries_only_json_rpc_lines() {
    let mut s = demo_session().await;
    s.send_line("garbage").await;
    s.assert_ping(1).await;
    assert_serves_tools(&mut s, 2).await;
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
    let api = fake_api_answering(
        ResponseTemplate::new(200)
            .set_delay(Duration::from_secs(30))
            .set_body_json(pools_body()),
    )
    .await;
    let a = api_args(&api);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut s = RawSession::start(&a, &api_env());
    s.initialize("2025-11-25").await;
    s.request(
        42,
        "tools/call",
        call_params("list_voucher_pools", json!({"project_id": PROJECT})),
    )
    .await;
    // Wait until the request has reached the fake.
    for _ in 0..100 {
        if !requests(&api).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(requests(&api).await.len(), 1, "the call reached the API");
    s.notify(
        "notifications/cancelled",
        json!({"requestId": 42, "reason": "the user gave up"}),
    )
    .await;
    s.assert_ping(43).await;
    assert_serves_tools_demo_free(&mut s, 44).await;
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
    let stdout = s.stdout.lock().unwrap().concat();
    assert!(!stdout.contains("\"id\":42"), "{stdout}");
}

/// A session without demo data still answers tools/list.
async fn assert_serves_tools_demo_free(s: &mut RawSession, id: i64) {
    let tools = s.roundtrip(id, "tools/list", json!({})).await;
    assert_eq!(
        tools["result"]["tools"].as_array().unwrap().len(),
        4,
        "{tools}"
    );
}

/// A fake API on a raw socket: it reads one request, never answers, and
/// reports when the server closes the connection.
async fn silent_api() -> (String, mpsc::UnboundedReceiver<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            let _ = tx.send("closed");
                            return;
                        }
                        Ok(n) => {
                            seen.extend_from_slice(&buf[..n]);
                            if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                                let _ = tx.send("request");
                                seen.clear();
                            }
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn a_cancelled_call_drops_its_upstream_connection() {
    let (base, mut events) = silent_api().await;
    let mut s = RawSession::start(
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
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the request reaches the fake")
        .unwrap();
    assert_eq!(first, "request");
    s.notify("notifications/cancelled", json!({"requestId": 7}))
        .await;
    let next = tokio::time::timeout(Duration::from_secs(3), events.recv())
        .await
        .expect("the server closes the upstream connection after the cancel")
        .unwrap();
    assert_eq!(next, "closed");
    s.assert_ping(8).await;
    while let Some(msg) = s.next_message(Duration::from_millis(300)).await {
        assert_ne!(
            msg.get("id"),
            Some(&json!(7)),
            "answered a cancelled call: {msg}"
        );
    }
}
