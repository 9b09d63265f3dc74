//! A raw HTTP/1.1 server on 127.0.0.1 for what wiremock cannot do: answers
//! written byte for byte (a body that stalls after its headers, a connection
//! closed or reset mid-body, a chunked body without `Content-Length`), each
//! request head kept exactly as it arrived, and counters of what happened:
//! connections, requests, body bytes sent, connections the client closed.
//!
//! Blocking I/O with one thread per connection and keep-alive: there is no
//! runtime between the socket and the answer, and a fixed delay is a plain
//! `thread::sleep`, which overshoots by microseconds where a tokio timer
//! rounds up to the next millisecond. That makes it the bench's fake too.
//! It needs no runtime of its own; the waits it offers are async, for tokio
//! tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// The size of each chunk of a [`Reply::Chunked`] body.
const CHUNK: usize = 64 * 1024;

/// How the server behaves beside its answers.
#[derive(Clone, Copy)]
pub struct Settings {
    /// Slept after reading each request, before answering it.
    pub delay: Duration,
    /// Whether request heads and [`Event`]s are kept (the bench, which
    /// answers thousands of requests, does without).
    pub record: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            record: true,
        }
    }
}

/// One request as it arrived.
pub struct Request {
    /// The request line and header lines, each with its line end, and the
    /// blank line that ends them.
    head: String,
}

impl Request {
    /// The head exactly as it arrived.
    pub fn head(&self) -> &str {
        &self.head
    }

    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    pub fn method(&self) -> &str {
        self.request_line().split(' ').next().unwrap_or("")
    }

    /// The request target: path and query, as sent.
    pub fn target(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or("")
    }

    pub fn path(&self) -> &str {
        let target = self.target();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The value of `key` in the query string, as sent.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        let (_, query) = self.target().split_once('?')?;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The value of the first header called `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// What the server does once it has read a request.
pub enum Reply {
    /// Send these bytes (a whole response) and read the next request on the
    /// same connection.
    Send(Arc<[u8]>),
    /// Send these bytes and close the connection.
    SendAndClose(Vec<u8>),
    /// Send these bytes (maybe none) and then stay silent, the connection
    /// open, until the client closes it.
    SendAndStall(Vec<u8>),
    /// Send these bytes, wait `after`, then end the connection: with a reset
    /// (RST) when `reset`, else with a close (FIN).
    SendAndBreak {
        bytes: Vec<u8>,
        after: Duration,
        reset: bool,
    },
    /// Send a 200 with a chunked body of `total` bytes of `fill` and no
    /// `Content-Length`, in chunks of 64 KiB, then close.
    Chunked { total: usize, fill: u8 },
}

impl Reply {
    /// Never answer; wait for the client to give up.
    pub fn silent() -> Self {
        Self::SendAndStall(Vec::new())
    }
}

/// What happened, in order (kept when [`Settings::record`] is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A request head was read in full.
    Request,
    /// The client closed a connection the server was holding open.
    ClosedByClient,
}

/// The status line and headers of a JSON response whose body is
/// `content_length` bytes, with `extra_headers` (whole lines, such as
/// `"Connection: close"`).
pub fn json_head(status: u16, content_length: usize, extra_headers: &[&str]) -> String {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n",
        reason(status)
    );
    for line in extra_headers {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// A whole JSON response: [`json_head`] and `body`.
pub fn json_response(status: u16, extra_headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = json_head(status, body.len(), extra_headers).into_bytes();
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

type Answer = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server. It stops accepting when dropped.
pub struct RawHttp {
    addr: SocketAddr,
    state: Arc<State>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
}

struct State {
    settings: Settings,
    answer: Box<Answer>,
    stopped: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
    closed_by_client: AtomicU64,
    body_bytes_sent: AtomicU64,
    heads: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<Event>,
}

impl RawHttp {
    /// Starts a server with the default [`Settings`] that answers each
    /// request with `answer(request)`.
    pub fn serve(answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(Settings::default(), answer).expect("start the raw HTTP fake")
    }

    /// Starts a server with `settings` that answers each request with
    /// `answer(request)`.
    pub fn start(
        settings: Settings,
        answer: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            settings,
            answer: Box::new(answer),
            stopped: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            closed_by_client: AtomicU64::new(0),
            body_bytes_sent: AtomicU64::new(0),
            heads: Mutex::new(Vec::new()),
            events: events_tx,
        });
        let accept_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name(format!("raw-http-{}", addr.port()))
            .spawn(move || accept(listener, accept_state))?;
        Ok(Self {
            addr,
            state,
            events: tokio::sync::Mutex::new(events),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Connections the client closed while the server held them open.
    pub fn closed_by_client(&self) -> u64 {
        self.state.closed_by_client.load(Ordering::Relaxed)
    }

    /// Body bytes of [`Reply::Chunked`] answers written so far.
    pub fn body_bytes_sent(&self) -> u64 {
        self.state.body_bytes_sent.load(Ordering::Relaxed)
    }

    /// Every request head so far, in order of arrival.
    pub fn heads(&self) -> Vec<String> {
        self.state
            .heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The next [`Event`], waiting up to `within`.
    pub async fn next_event(&self, within: Duration) -> Option<Event> {
        let mut events = self.events.lock().await;
        tokio::time::timeout(within, events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits up to `within` until the client has closed `n` connections the
    /// server held open.
    pub async fn wait_closed_by_client(&self, n: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.closed_by_client() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RawHttp {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name("raw-http-conn".to_owned())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = serve_connection(stream, &state);
            });
        if let Err(e) = spawned {
            eprintln!("raw HTTP fake: cannot start a connection thread: {e}");
        }
    }
}

impl State {
    fn record(&self, event: Event) {
        if self.settings.record {
            let _ = self.events.send(event);
        }
    }

    fn client_closed(&self) {
        self.closed_by_client.fetch_add(1, Ordering::Relaxed);
        self.record(Event::ClosedByClient);
    }
}

/// Serves one keep-alive connection until the client closes it or a reply
/// ends it.
fn serve_connection(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut write = stream.try_clone()?;
    let mut read = BufReader::with_capacity(16 * 1024, stream);
    let mut head = String::with_capacity(256);
    loop {
        head.clear();
        if !matches!(read_head(&mut read, &mut head), Ok(true)) {
            state.client_closed();
            return Ok(());
        }
        let request = Request { head };
        if let Some(len) = request.header("content-length") {
            let len: u64 = len.parse().unwrap_or(0);
            std::io::copy(&mut (&mut read).take(len), &mut std::io::sink())?;
        }
        state.requests.fetch_add(1, Ordering::Relaxed);
        if state.settings.record {
            state
                .heads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request.head.clone());
            state.record(Event::Request);
        }
        if !state.settings.delay.is_zero() {
            std::thread::sleep(state.settings.delay);
        }
        match (state.answer)(&request) {
            Reply::Send(bytes) => write.write_all(&bytes)?,
            Reply::SendAndClose(bytes) => {
                write.write_all(&bytes)?;
                let _ = write.shutdown(Shutdown::Write);
                return Ok(());
            }
            Reply::SendAndStall(bytes) => {
                write.write_all(&bytes)?;
                write.flush()?;
                wait_for_client_close(&mut read);
                state.client_closed();
                return Ok(());
            }
            Reply::SendAndBreak {
                bytes,
                after,
                reset,
            } => {
                write.write_all(&bytes)?;
                write.flush()?;
                // Let the client read what was sent.
                std::thread::sleep(after);
                if reset {
                    // SO_LINGER 0: the close that ends this function (of the
                    // last handle) sends RST instead of FIN.
                    tokio::net::TcpSocket::from_std_stream(write).set_zero_linger()?;
                }
                return Ok(());
            }
            Reply::Chunked { total, fill } => {
                write_chunked(&mut write, total, fill, state)?;
                return Ok(());
            }
        }
        head = request.head;
    }
}

/// Reads one request head, up to and including the blank line that ends
/// it, into `head`. `Ok(false)` when the client closed the connection first.
fn read_head(read: &mut impl BufRead, head: &mut String) -> std::io::Result<bool> {
    loop {
        let start = head.len();
        if read.read_line(head)? == 0 {
            return Ok(false);
        }
        let line = &head[start..];
        if line == "\r\n" || line == "\n" {
            if start > 0 {
                return Ok(true);
            }
            // A stray line end between requests.
            head.clear();
        }
    }
}

fn wait_for_client_close(read: &mut impl Read) {
    let mut buf = [0u8; 1024];
    loop {
        match read.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn write_chunked(
    write: &mut TcpStream,
    total: usize,
    fill: u8,
    state: &State,
) -> std::io::Result<()> {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    write.write_all(head.as_bytes())?;
    let chunk = vec![fill; CHUNK];
    let mut sent = 0;
    while sent < total {
        let n = CHUNK.min(total - sent);
        let frame = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
        // An error here is the client having stopped reading: expected.
        write.write_all(&frame)?;
        sent += n;
        state.body_bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    write.write_all(b"0\r\n\r\n")
}

/// A port on 127.0.0.1 that was free a moment ago and now has no listener:
/// a connection to it is refused.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}
