//! The one raw JSON-RPC client for the binary's stdio. Lines are written to
//! its stdin by hand, so a test can send what no well-behaved client would,
//! and every line it writes on stdout is read as it comes and stamped with
//! the instant it had been read in full, so the bench can time an answer.
//!
//! A reader task hands each stdout line to whoever waits for that response
//! id ([`Peer::timed_request`], which many tasks may do at once), or else
//! queues it in order for [`Session::next_message`] and
//! [`Session::response`], which read the stream as a test sees it. stderr is
//! collected in full.

use std::collections::HashMap;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::binary;

/// The longest wait for the answer to a [`Peer::timed_request`].
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for [`Session::response`].
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the pipes get to drain once the process has exited.
const PIPE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of stderr an error message quotes.
const STDERR_EXCERPT: usize = 4096;

/// One line the server wrote on stdout, newline included, and when it had
/// been read in full.
pub struct StdoutLine {
    pub bytes: Vec<u8>,
    pub read_at: Instant,
}

/// Whether a session keeps a copy of every stdout line. Tests look at all of
/// them; the bench does not, so that copying a large answer on every call
/// does not weigh on its figures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transcript {
    Kept,
    Dropped,
}

/// The binary on raw pipes.
pub struct Session {
    child: Child,
    pid: u32,
    peer: Arc<Peer>,
    /// Lines nobody waited for, in the order they came.
    unclaimed: mpsc::UnboundedReceiver<StdoutLine>,
    /// Messages [`Session::response`] read while waiting for another.
    pub skipped: Vec<Value>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<()>>,
}

/// The writing side of a session, shared by every task that sends on it.
pub struct Peer {
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<StdoutLine>>>,
    next_id: AtomicU64,
    transcript: Option<Mutex<Vec<String>>>,
    stderr: Mutex<Vec<u8>>,
}

/// Locks `mutex`, also after a panic elsewhere (the data stays usable).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Starts the binary under test with `args` and `env`, keeping every
    /// stdout line.
    pub fn start(args: &[impl AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Self {
        Self::spawn(binary::command(args, env), Transcript::Kept)
            .unwrap_or_else(|e| panic!("spawn the server binary: {e}"))
    }

    /// Starts the binary under test against the API at `base_url` with the
    /// test credentials.
    pub fn start_against(base_url: &str) -> Self {
        Self::start(&binary::api_args(base_url), &binary::api_env())
    }

    /// Starts `cmd` with piped stdio and the readers of its stdout and
    /// stderr.
    pub fn spawn(mut cmd: Command, transcript: Transcript) -> Result<Self, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.as_std().get_program()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let peer = Arc::new(Peer {
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            transcript: (transcript == Transcript::Kept).then(|| Mutex::new(Vec::new())),
            stderr: Mutex::new(Vec::new()),
        });
        let (unclaimed_tx, unclaimed) = mpsc::unbounded_channel();
        let stdout_reader = tokio::spawn(read_stdout(stdout, Arc::clone(&peer), unclaimed_tx));
        let stderr_peer = Arc::clone(&peer);
        let stderr_reader = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => lock(&stderr_peer.stderr).extend_from_slice(&buf[..n]),
                }
            }
        });
        Ok(Self {
            child,
            pid,
            peer,
            unclaimed,
            skipped: Vec::new(),
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        })
    }

    /// The writing side, for tasks that send on this session concurrently.
    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Writes `text` followed by a newline.
    pub async fn send_line(&mut self, text: &str) {
        let line = format!("{text}\n");
        self.peer
            .write(line.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Writes one JSON-RPC message.
    pub async fn send(&mut self, message: Value) {
        self.send_line(&message.to_string()).await;
    }

    /// Sends a request; its answer is read with [`Session::response`].
    pub async fn request(&mut self, id: u64, method: &str, params: Value) {
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(msg).await;
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        let mut msg = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(msg).await;
    }

    /// The next stdout message nobody waited for, within `wait`. Panics if a
    /// line is not JSON (stdout must carry nothing else). `None` on timeout
    /// or EOF.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.unclaimed.recv())
            .await
            .ok()
            .flatten()?;
        Some(serde_json::from_slice(&line.bytes).unwrap_or_else(|e| {
            panic!(
                "stdout carried a line that is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&line.bytes)
            )
        }))
    }

    /// Reads until the response (result or error) to `id`, keeping other
    /// messages in `skipped`.
    pub async fn response(&mut self, id: u64) -> Value {
        let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next_message(left).await.unwrap_or_else(|| {
                panic!("no response to id {id}; stderr: {}", self.stderr_text())
            });
            if msg.get("id") == Some(&json!(id))
                && (msg.get("result").is_some() || msg.get("error").is_some())
            {
                return msg;
            }
            self.skipped.push(msg);
        }
    }

    /// Sends a request and returns its response.
    pub async fn roundtrip(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.request(id, method, params).await;
        self.response(id).await
    }

    /// `tools/call` of `name` with `args`; the result's `structuredContent`.
    pub async fn call_tool(&mut self, id: u64, name: &str, args: Value) -> Value {
        let answer = self
            .roundtrip(id, "tools/call", json!({"name": name, "arguments": args}))
            .await;
        answer["result"]["structuredContent"].clone()
    }

    /// `initialize` at `version` (id 0) followed by `notifications/initialized`.
    pub async fn initialize(&mut self, version: &str) -> Value {
        let line = self
            .peer
            .handshake(0, version)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let response: Value = serde_json::from_slice(&line.bytes).expect("initialize answers JSON");
        assert!(
            response.get("result").is_some(),
            "initialize failed: {response}"
        );
        response
    }

    /// Asserts `ping` with `id` is answered with an empty result.
    pub async fn assert_ping(&mut self, id: u64) {
        let response = self.roundtrip(id, "ping", Value::Null).await;
        assert_eq!(response["result"], json!({}), "ping answer: {response}");
    }

    /// Closes stdin.
    pub async fn close_stdin(&mut self) {
        self.peer.stdin.lock().await.take();
    }

    /// Waits up to `wait` for the process to exit.
    pub async fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("wait on the child"))
    }

    /// Closes stdin and waits up to `within` for the process to exit (killing
    /// it if it does not), then for both pipes to end.
    pub async fn shutdown(&mut self, within: Duration) -> Result<ExitStatus, String> {
        self.close_stdin().await;
        let outcome = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(format!("waiting for the server: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "the server did not exit within {within:?} of stdin closing; killed it{}",
                    self.peer.stderr_excerpt()
                ))
            }
        };
        for reader in [self.stdout_reader.take(), self.stderr_reader.take()]
            .into_iter()
            .flatten()
        {
            let abort = reader.abort_handle();
            let _ = tokio::time::timeout(PIPE_DRAIN_TIMEOUT, reader).await;
            abort.abort();
        }
        outcome
    }

    /// Closes stdin, waits for exit and for both pipes to end, and returns
    /// all of stdout and stderr.
    pub async fn finish(mut self) -> (String, String) {
        if let Err(e) = self.shutdown(Duration::from_secs(5)).await {
            panic!("the server exits after stdin closes: {e}");
        }
        (self.stdout_text(), self.stderr_text())
    }

    /// Every stdout line so far, including those already read.
    pub fn stdout_text(&self) -> String {
        let transcript = self
            .peer
            .transcript
            .as_ref()
            .expect("this session keeps its stdout");
        lock(transcript).concat()
    }

    pub fn stderr_text(&self) -> String {
        self.peer.stderr_text()
    }

    /// How many stdout lines are queued that nobody waited for; reads them.
    pub fn count_unclaimed(&mut self) -> u64 {
        let mut n = 0;
        while self.unclaimed.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

impl Peer {
    /// Writes `bytes` to the server's stdin as they are.
    pub async fn write(&self, bytes: &[u8]) -> Result<(), String> {
        let mut stdin = self.stdin.lock().await;
        let stdin = stdin.as_mut().ok_or("stdin already closed")?;
        stdin.write_all(bytes).await.map_err(|e| {
            format!(
                "writing to the server's stdin: {e}{}",
                self.stderr_excerpt()
            )
        })
    }

    /// A fresh request id (ids from 1 up; tests that number their own
    /// requests do not mix with this).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a notification with `params` (raw JSON) or none.
    pub async fn notify(&self, method: &str, params: Option<&str>) -> Result<(), String> {
        let line = match params {
            Some(params) => {
                format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#) + "\n"
            }
            None => format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#) + "\n",
        };
        self.write(line.as_bytes()).await
    }

    /// Sends a request with a fresh id and `params` (raw JSON) and waits for
    /// its answer; returns the answer and the time from just before the
    /// write to the answer having been read in full.
    pub async fn timed_request(
        &self,
        method: &str,
        params: &str,
    ) -> Result<(StdoutLine, Duration), String> {
        self.timed_request_with_id(self.next_id(), method, params)
            .await
    }

    /// [`Peer::timed_request`] with the given `id`.
    pub async fn timed_request_with_id(
        &self,
        id: u64,
        method: &str,
        params: &str,
    ) -> Result<(StdoutLine, Duration), String> {
        let line =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
                + "\n";
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id, tx);
        let started = Instant::now();
        self.write(line.as_bytes()).await?;
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(answer)) => {
                let took = answer.read_at.saturating_duration_since(started);
                Ok((answer, took))
            }
            Ok(Err(_)) => Err(format!(
                "the server closed its stdout before answering {method} (id {id}){}",
                self.stderr_excerpt()
            )),
            Err(_) => {
                lock(&self.waiting).remove(&id);
                Err(format!(
                    "no answer to {method} (id {id}) within {ANSWER_TIMEOUT:?}{}",
                    self.stderr_excerpt()
                ))
            }
        }
    }

    /// `initialize` at `version` as request `id`, then
    /// `notifications/initialized`. Returns the answer to `initialize`.
    pub async fn handshake(&self, id: u64, version: &str) -> Result<StdoutLine, String> {
        let params = initialize_params(version).to_string();
        let (answer, _) = self
            .timed_request_with_id(id, "initialize", &params)
            .await?;
        self.notify("notifications/initialized", None).await?;
        Ok(answer)
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// The end of stderr on a line of its own, for error messages; empty
    /// when the server wrote nothing there.
    pub fn stderr_excerpt(&self) -> String {
        let stderr = lock(&self.stderr);
        if stderr.is_empty() {
            return String::new();
        }
        let tail = &stderr[stderr.len().saturating_sub(STDERR_EXCERPT)..];
        format!(
            "\n--- server stderr (last {} bytes) ---\n{}",
            tail.len(),
            String::from_utf8_lossy(tail).trim_end()
        )
    }
}

async fn read_stdout(
    stdout: ChildStdout,
    peer: Arc<Peer>,
    unclaimed: mpsc::UnboundedSender<StdoutLine>,
) {
    let mut stdout = BufReader::with_capacity(1 << 20, stdout);
    let mut hint = 4096;
    let mut buf = Vec::with_capacity(hint);
    loop {
        match stdout.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let read_at = Instant::now();
        hint = hint.max(buf.len());
        let bytes = std::mem::replace(&mut buf, Vec::with_capacity(hint));
        if let Some(transcript) = &peer.transcript {
            lock(transcript).push(String::from_utf8_lossy(&bytes).into_owned());
        }
        let waiter = response_id(&bytes).and_then(|id| lock(&peer.waiting).remove(&id));
        let line = StdoutLine { bytes, read_at };
        match waiter {
            Some(tx) => {
                let _ = tx.send(line);
            }
            None => {
                let _ = unclaimed.send(line);
            }
        }
    }
    // EOF: every request still waiting fails at once.
    lock(&peer.waiting).clear();
}

/// The numeric `id` of a JSON-RPC response line; quick for the shape rmcp
/// writes, a full parse otherwise.
fn response_id(line: &[u8]) -> Option<u64> {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    if let Some(rest) = line.strip_prefix(HEAD) {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits) == Some(&b',') {
            return std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
        }
    }
    #[derive(Deserialize)]
    struct Head {
        id: Option<Value>,
        method: Option<IgnoredAny>,
    }
    let head: Head = serde_json::from_slice(line).ok()?;
    if head.method.is_some() {
        return None; // a request or notification from the server
    }
    head.id?.as_u64()
}

/// `initialize` params at `version`.
pub fn initialize_params(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "raw-json-rpc-client", "version": "0.0.1"}
    })
}

/// `tools/call` params.
pub fn call_params(name: &str, arguments: Value) -> Value {
    json!({"name": name, "arguments": arguments})
}

/// The `structuredContent` of a raw `tools/call` response.
pub fn structured(response: &Value) -> &Value {
    response
        .pointer("/result/structuredContent")
        .unwrap_or_else(|| panic!("no structuredContent in {response}"))
}
