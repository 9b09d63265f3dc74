//! What goes out on stdout, through one writer task, so lines never
//! interleave. The [`Ledger`] keeps the requests in flight: a request's permit
//! is given back only once its answer has been written, so calls in flight
//! and answers not yet written are bounded together. A write that fails (the
//! client closed stdout) stops the session.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// A request id as its JSON text (`7`, `"a"`), as compared between a request and its answer.
pub type IdKey = String;

/// An error answer: `id` is the request's id as JSON text, or none.
pub fn error_line(id: Option<&str>, code: i32, message: &str) -> String {
    let message = serde_json::Value::String(message.to_owned());
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{message}}}}}"#,
        id.unwrap_or("null")
    )
}

/// The requests in flight and whether the session has started.
pub struct Ledger {
    permits: Arc<Semaphore>,
    started: AtomicBool,
    in_flight: Mutex<HashMap<IdKey, OwnedSemaphorePermit>>,
    /// Requests before the session started whose success starts it.
    early: Mutex<HashSet<IdKey>>,
}

impl Ledger {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            started: AtomicBool::new(false),
            in_flight: Mutex::new(HashMap::new()),
            early: Mutex::new(HashSet::new()),
        }
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    pub fn start(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).acquire_owned().await.ok()
    }

    pub fn is_in_flight(&self, id: &IdKey) -> bool {
        lock(&self.in_flight).contains_key(id)
    }

    pub fn track(&self, id: IdKey, permit: Option<OwnedSemaphorePermit>) {
        if let Some(permit) = permit {
            lock(&self.in_flight).insert(id, permit);
        }
    }

    pub fn track_early(&self, id: IdKey, starts: bool) {
        if starts {
            lock(&self.early).insert(id);
        }
    }

    /// The request `id` needs no answer any more (cancelled).
    pub fn release(&self, id: &IdKey) {
        lock(&self.in_flight).remove(id);
    }

    fn answered(&self, id: &IdKey, success: bool) {
        lock(&self.in_flight).remove(id);
        if lock(&self.early).remove(id) && success {
            self.start();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where lines for stdout are sent. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    lines: mpsc::UnboundedSender<Vec<u8>>,
    /// Buffers of lines already written, for reuse: an answer line can be hundreds of kilobytes,
    /// and allocating and freeing one per answer costs more than copying it.
    spare: Arc<Spare>,
}

/// Buffers of written lines, kept for reuse (at most a few).
#[derive(Default)]
struct Spare(Mutex<Vec<Vec<u8>>>);

impl Spare {
    const KEPT: usize = 4;

    fn take(&self) -> Vec<u8> {
        lock(&self.0).pop().unwrap_or_default()
    }

    fn give(&self, mut line: Vec<u8>) {
        line.clear();
        let mut spare = lock(&self.0);
        if spare.len() < Self::KEPT {
            spare.push(line);
        }
    }
}

impl Outbound {
    /// A line (without its newline) for stdout.
    pub fn send_line(&self, line: String) {
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        let _ = self.lines.send(bytes);
    }
}

pub fn channel() -> (Outbound, Lines) {
    let (lines, receiver) = mpsc::unbounded_channel();
    let spare = Arc::new(Spare::default());
    (
        Outbound {
            lines,
            spare: Arc::clone(&spare),
        },
        Lines { receiver, spare },
    )
}

pub struct Lines {
    receiver: mpsc::UnboundedReceiver<Vec<u8>>,
    spare: Arc<Spare>,
}

/// The MCP library's stdout: whole lines go to the writer task.
pub struct LineSink {
    partial: Vec<u8>,
    out: Outbound,
}

impl LineSink {
    pub fn new(out: Outbound) -> Self {
        Self {
            partial: Vec::new(),
            out,
        }
    }
}

impl AsyncWrite for LineSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut rest = buf;
        // An answer line can be megabytes long: memchr's vectorized search finds its end.
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let mut line = if self.partial.is_empty() {
                self.out.spare.take()
            } else {
                std::mem::take(&mut self.partial)
            };
            line.extend_from_slice(&rest[..=i]);
            if self.out.lines.send(line).is_err() {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes lines to `stdout` until every sender is gone, or until `done`
/// is cancelled (then no new line is begun: a line once begun is always
/// written whole, so the client never reads half a message); a failed
/// write fires `stop`.
pub async fn write_lines(
    mut lines: Lines,
    mut stdout: impl AsyncWrite + Unpin,
    ledger: &Ledger,
    stop: &CancellationToken,
    done: &CancellationToken,
) {
    loop {
        let line = tokio::select! {
            biased;
            () = done.cancelled() => None,
            line = lines.receiver.recv() => line,
        };
        let Some(line) = line else { break };
        let answered = answer_id(&line);
        let written = match stdout.write_all(&line).await {
            Ok(()) if lines.receiver.is_empty() => stdout.flush().await,
            other => other,
        };
        lines.spare.give(line);
        if let Err(e) = written {
            tracing::info!(error = %e, "stdout is closed; stopping");
            stop.cancel();
            return;
        }
        if let Some((id, success)) = answered {
            ledger.answered(&id, success);
        }
    }
    let _ = stdout.flush().await;
}

/// The id of an answer line and whether it is a success: a top-level
/// `id` beside `result` (or `error`), in whatever order and spacing the
/// MCP library writes them. Lines with a `method` (notifications, requests
/// to the client) are not answers.
fn answer_id(line: &[u8]) -> Option<(IdKey, bool)> {
    // Walked, not parsed: an answer nested past a JSON parser's depth
    // limit (a `used_by` passed through) still frees its slot. The walk
    // ends at `result` or `error` once the id is known, so the answer
    // itself (up to megabytes) is not read again.
    let (mut id, mut result, mut error, mut method) = (None, false, false, false);
    super::raw_id::members(line, |key, rest| {
        match key {
            b"id" => id = super::raw_id::value_of(rest),
            b"result" => result = true,
            b"error" => error = true,
            b"method" => method = true,
            _ => {}
        }
        !(id.is_some() && (result || error))
    });
    if method || result == error {
        return None;
    }
    let id: serde_json::Value = serde_json::from_slice(id?).ok()?;
    Some((id.to_string(), result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_ids_are_read_whatever_the_order_and_spacing_of_the_fields() {
        assert_eq!(
            answer_id(br#"{"result":{"content":[]},"id":7,"jsonrpc":"2.0"}"#),
            Some(("7".into(), true))
        );
        assert_eq!(
            answer_id(b"{ \"id\" : \"x\" ,\n \"error\": {\"code\": 1}, \"jsonrpc\": \"2.0\" }\n"),
            Some((r#""x""#.into(), false))
        );
        assert_eq!(answer_id(br#"{"jsonrpc":"2.0","result":{}}"#), None);
        assert_eq!(answer_id(b"not json"), None);
        // Deeper than any JSON parser goes, still an answer.
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":9,"result":{{"x":{}{}}}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert_eq!(answer_id(deep.as_bytes()), Some(("9".into(), true)));
        assert_eq!(
            answer_id(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Some(("7".into(), true))
        );
        assert_eq!(
            answer_id(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Some(("7".into(), true))
        );
        assert_eq!(
            answer_id(br#"{"jsonrpc":"2.0","id":"a\"b","error":{"code":1}}"#),
            Some((r#""a\"b""#.into(), false))
        );
        assert_eq!(
            answer_id(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
            None
        );
        assert_eq!(
            answer_id(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#),
            None
        );
    }

    #[test]
    fn error_lines_carry_the_id_as_written() {
        assert_eq!(
            error_line(Some("12"), -32600, "bad \"x\""),
            r#"{"jsonrpc":"2.0","id":12,"error":{"code":-32600,"message":"bad \"x\""}}"#
        );
        assert_eq!(
            error_line(None, -32700, "p"),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"p"}}"#
        );
    }

    #[tokio::test]
    async fn a_permit_comes_back_when_the_answer_is_written() {
        let ledger = Ledger::new(1);
        let permit = ledger.permit().await;
        ledger.track("1".into(), permit);
        assert!(ledger.is_in_flight(&"1".into()));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), ledger.permit())
                .await
                .is_err(),
            "no room while the first is in flight"
        );
        let (out, receiver) = channel();
        out.send_line(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into());
        drop(out);
        write_lines(
            receiver,
            tokio::io::sink(),
            &ledger,
            &CancellationToken::new(),
            &CancellationToken::new(),
        )
        .await;
        assert!(!ledger.is_in_flight(&"1".into()));
        assert!(ledger.permit().await.is_some());
    }
}
