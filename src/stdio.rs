//! Standard input that tells when it has ended.
//!
//! When the client closes stdin the session is over, but the MCP library
//! waits several seconds for calls still in flight before it lets go. The
//! server watches [`StdinClosed`] to end such calls quickly instead, so the
//! process exits promptly.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

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
