//! The Loomi session's HTTP side against a raw server: an error status
//! whose body never ends does not hold the session's opening.

use std::time::{Duration, Instant};

use bloomreach_vouchers_mcp::backend::loomi::session::{Bearer, Fault, Session};
use bloomreach_vouchers_mcp::config::Secret;
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

fn bearer() -> Bearer {
    Bearer::new(
        crate::support::http_client().no_proxy().build().unwrap(),
        Secret::new("t"),
    )
}

#[tokio::test]
async fn an_error_body_that_never_ends_is_bounded() {
    let url = holding_server(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n",
        "partial".to_owned(),
    )
    .await;
    let started = Instant::now();
    let result = Session::open(&url.parse().unwrap(), bearer(), Duration::from_secs(1)).await;
    match result {
        Err(Fault::Status { status: 500, .. }) | Err(Fault::Timeout) => {}
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a session opened on a 500"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
