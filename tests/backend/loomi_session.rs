//! The Loomi session's HTTP side against a raw server: an event stream
//! that stays open after it has carried the response is answered at once,
//! not at the end of the stream, and an error status whose body never ends
//! is bounded by the timeout.

use std::time::{Duration, Instant};

use bloomreach_vouchers_mcp::backend::loomi::session::{Endpoint, Fault, Session};
use bloomreach_vouchers_mcp::config::Secret;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection: reads a request head (and body), writes `head`
/// and `chunk`, then holds the connection open for 30 s.
async fn holding_server(head: &'static str, chunk: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(chunk.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    format!("http://{addr}/mcp")
}

fn endpoint(url: &str, timeout: Duration) -> Endpoint {
    Endpoint {
        url: url.parse().unwrap(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        timeout,
    }
}

fn session() -> Session {
    Session {
        id: Some("s-1".into()),
        protocol_version: "2025-11-25".into(),
    }
}

#[tokio::test]
async fn a_stream_left_open_after_the_response_is_answered_at_once() {
    let event =
        "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"ok\":true}}\r\n\r\n";
    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
    let url = holding_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        chunk,
    )
    .await;
    let started = Instant::now();
    let result = endpoint(&url, Duration::from_secs(10))
        .request(&Secret::new("t"), &session(), "tools/list", json!({}), 5)
        .await;
    assert_eq!(result, Ok(json!({"ok": true})));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_error_body_that_never_ends_is_bounded_by_the_timeout() {
    let url = holding_server(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n",
        "partial".to_owned(),
    )
    .await;
    let started = Instant::now();
    let result = endpoint(&url, Duration::from_secs(1))
        .request(&Secret::new("t"), &session(), "tools/list", json!({}), 5)
        .await;
    assert_eq!(result, Err(Fault::Timeout));
    assert!(started.elapsed() < Duration::from_secs(5));
}
