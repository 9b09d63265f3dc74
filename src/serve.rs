//! Serving MCP on stdio: the session from the first line to the last,
//! a clean stop on SIGTERM or Ctrl-C (also during the handshake), a hint
//! for a person who starts the server on a terminal, and standard input
//! that tells when it has ended.
//!
//! When the client closes stdin the session is over, but the MCP library
//! waits several seconds for calls still in flight before it lets go. The
//! server watches [`StdinClosed`] to end such calls quickly instead, so the
//! process exits promptly.

use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

use crate::backend::Backend;
use crate::config::{env, Config};
use crate::tools::VoucherServer;

/// Serves MCP on stdin/stdout until stdin closes or a signal arrives.
pub async fn serve(backend: Backend, config: &Config) {
    // Listen for signals before anything else, so that one arriving during
    // the handshake also ends the process cleanly.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    if std::io::stdin().is_terminal() {
        eprintln!(
            "bloomreach-vouchers-mcp speaks MCP (JSON-RPC) on stdin/stdout and is meant to be started by an AI assistant.\n\
             To try it by hand: `bloomreach-vouchers-mcp --demo tools` or \
             `bloomreach-vouchers-mcp --demo call list_voucher_pools project_id=demo`. See --help. Serving now (Ctrl-C to stop)."
        );
    }
    tracing::info!(
        version = crate::SERVER_VERSION,
        base_url = %config.base_url,
        credentials = config.credentials.is_some(),
        source = backend.kind(),
        "serving MCP on stdio"
    );
    if matches!(backend, Backend::Unconfigured) {
        tracing::warn!(
            "no API key configured: set {} and {}; tools will answer with an error until then",
            env::KEY_ID,
            env::SECRET
        );
    }
    let (reader, writer) = rmcp::transport::stdio_pipes();
    let (reader, stdin_closed) = EofSignalling::new(reader);
    let server = VoucherServer::with_stdin_signal(backend, config.projects.clone(), stdin_closed);
    let running = tokio::select! {
        started = server.serve((reader, writer)) => match started {
            Ok(running) => running,
            Err(e) => {
                tracing::info!(reason = %e, "session ended before it started");
                return;
            }
        },
        signal = &mut signal => {
            tracing::info!(signal, "stopping");
            return;
        }
    };
    let stop = running.cancellation_token();
    tokio::select! {
        reason = running.waiting() => {
            tracing::info!(reason = ?reason.ok(), "session ended");
        }
        signal = &mut signal => {
            tracing::info!(signal, "stopping");
            stop.cancel();
        }
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// How long calls in flight may still finish after stdin closes. Answers
/// to requests that were already read usually need far less.
pub const GRACE_AFTER_EOF: Duration = Duration::from_millis(300);

/// A reader that raises [`StdinClosed`] when it reaches end of input.
pub struct EofSignalling<R> {
    inner: R,
    closed: watch::Sender<bool>,
}

/// Resolves once stdin has closed (and never, if it cannot).
#[derive(Clone, Debug)]
pub struct StdinClosed(watch::Receiver<bool>);

impl StdinClosed {
    /// A signal that never fires, for servers not on stdio.
    pub fn never() -> Self {
        let (sender, receiver) = watch::channel(false);
        // The receiver sees the last value forever once the sender is gone.
        drop(sender);
        Self(receiver)
    }

    /// Waits for end of input, then for [`GRACE_AFTER_EOF`].
    pub async fn then_grace(&self) {
        let mut receiver = self.0.clone();
        if receiver.wait_for(|closed| *closed).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(GRACE_AFTER_EOF).await;
    }
}

impl<R> EofSignalling<R> {
    pub fn new(inner: R) -> (Self, StdinClosed) {
        let (closed, receiver) = watch::channel(false);
        (Self { inner, closed }, StdinClosed(receiver))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignalling<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let at_eof = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() == before;
        if (at_eof && buf.remaining() > 0) || matches!(polled, Poll::Ready(Err(_))) {
            self.closed.send_replace(true);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn end_of_input_raises_the_signal() {
        let (mut reader, closed) = EofSignalling::new(&b"{}\n"[..]);
        let mut text = String::new();
        reader.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "{}\n");
        tokio::time::timeout(Duration::from_secs(2), closed.then_grace())
            .await
            .expect("the signal fires after the grace period");
    }

    #[tokio::test]
    async fn never_stays_pending() {
        let never = StdinClosed::never();
        let waited = tokio::time::timeout(Duration::from_millis(700), never.then_grace()).await;
        assert!(waited.is_err());
    }
}
