//! The socket-level behaviours these tests need, each as one reply of the
//! shared raw HTTP fake (`tests/support/raw_http.rs`).

use super::support::raw_http::{json_response, RawHttp, Reply};
use super::*;

/// What the fake does with each request once it has read its head.
#[derive(Clone, Copy)]
pub enum Raw {
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

const PARTIAL: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"success\": true, \"data\": [";

/// A raw fake with one behaviour for every request.
pub struct RawFake {
    pub addr: SocketAddr,
    http: RawHttp,
}

impl RawFake {
    pub async fn start(behaviour: Raw) -> Self {
        let http = RawHttp::serve(move |_| match behaviour {
            Raw::Json(body) => {
                Reply::SendAndClose(json_response(200, &["Connection: close"], body.as_bytes()))
            }
            Raw::StallBody => Reply::SendAndStall(PARTIAL.as_bytes().to_vec()),
            Raw::Silent => Reply::silent(),
            Raw::ResetMidBody | Raw::CloseMidBody => Reply::SendAndBreak {
                bytes: PARTIAL.as_bytes().to_vec(),
                after: ms(50),
                reset: matches!(behaviour, Raw::ResetMidBody),
            },
            Raw::Chunked(total) => Reply::Chunked { total, fill: b'x' },
        });
        Self {
            addr: http.addr(),
            http,
        }
    }

    pub fn base(&self) -> String {
        self.http.base_url()
    }

    pub fn connections(&self) -> usize {
        self.http.connections() as usize
    }

    pub fn heads(&self) -> Vec<String> {
        self.http.heads()
    }

    /// Waits until the client has closed `n` connections the fake kept open.
    pub async fn wait_closed(&self, n: usize, within: Duration) -> bool {
        self.http.wait_closed_by_client(n as u64, within).await
    }
}
