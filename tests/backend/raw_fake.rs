//! A raw TCP fake for the cases that need control over the bytes on the socket.

use super::*;

/// What the raw fake does with each connection once it has read the request head.
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

pub struct RawFake {
    pub addr: SocketAddr,
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
    pub async fn start(behaviour: Raw) -> Self {
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

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits until the client has closed `n` connections the fake kept open.
    pub async fn wait_closed(&self, n: usize, within: Duration) -> bool {
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
