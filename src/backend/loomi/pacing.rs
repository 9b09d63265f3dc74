//! Client-side pacing of calls to Loomi Connect, whose limit (about one call a second and 60 a
//! minute) counts every client of the same user: one start every 1.1 s, which keeps both. Calls
//! take their turns in the order they come (a fair lock); a call cancelled while it waits gives its
//! turn back, since a start is counted only when the call really starts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The least time between two starts.
    pub gap: Duration,
}

impl Limits {
    /// Loomi Connect's: one start every 1.1 s (60 a minute at most).
    pub const LOOMI: Self = Self {
        gap: Duration::from_millis(1100),
    };
}

/// The start of the last call, and the calls waiting for a turn.
#[derive(Debug)]
pub struct Pacer {
    limits: Limits,
    turns: tokio::sync::Mutex<()>,
    last: Mutex<Option<Instant>>,
    waiting: AtomicUsize,
}

/// A call's turn, held until it starts: its place in the line, its count in the line.
pub struct Turn<'a> {
    pacer: &'a Pacer,
    _held: tokio::sync::MutexGuard<'a, ()>,
    _in_line: InLine<'a>,
}

/// Counts a call in the line from when it asks until it starts or gives up.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pacer {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            turns: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            waiting: AtomicUsize::new(0),
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// About how long a call that asks now waits for its start: one gap after the last start for
    /// each call in the line, and its own.
    pub fn expected_wait(&self) -> Duration {
        let ahead = self.waiting.load(Ordering::SeqCst) as u32;
        let last = *self.last();
        last.map_or_else(
            || self.limits.gap * ahead,
            |last| (last + self.limits.gap * (ahead + 1)).saturating_duration_since(Instant::now()),
        )
    }

    /// Waits for this call's place in the line (in arrival order).
    pub async fn turn(&self) -> Turn<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let in_line = InLine(&self.waiting);
        Turn {
            pacer: self,
            _held: self.turns.lock().await,
            _in_line: in_line,
        }
    }
}

impl Turn<'_> {
    /// Waits until the gap since the last start has passed, and counts this start. Dropped before
    /// that (the call was cancelled), it counts nothing.
    pub async fn start(self) {
        let last = *self.pacer.last();
        if let Some(last) = last {
            let at = last + self.pacer.limits.gap;
            // A turn already due is taken at once: a timer would round up to the next millisecond.
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
        }
        *self.pacer.last() = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer() -> Pacer {
        Pacer::new(Limits {
            gap: Duration::from_secs(1),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn starts_keep_the_gap_in_arrival_order() {
        let pacer = pacer();
        let t0 = Instant::now();
        let mut offsets = Vec::new();
        for _ in 0..3 {
            pacer.turn().await.start().await;
            offsets.push((Instant::now() - t0).as_secs());
        }
        assert_eq!(offsets, [0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_gives_its_turn_back() {
        let pacer = pacer();
        pacer.turn().await.start().await;
        let t0 = Instant::now();
        // Twenty calls cancelled while they wait for their start.
        for _ in 0..20 {
            let turn = pacer.turn().await;
            let cancelled = tokio::time::timeout(Duration::from_millis(10), turn.start()).await;
            assert!(cancelled.is_err());
        }
        pacer.turn().await.start().await;
        // One gap after the last real start, whatever was cancelled.
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_expected_wait_counts_the_calls_ahead() {
        let pacer = std::sync::Arc::new(pacer());
        pacer.turn().await.start().await;
        assert!(pacer.expected_wait() <= Duration::from_secs(1));
        let held = pacer.turn().await;
        let p = pacer.clone();
        let queued = tokio::spawn(async move { p.turn().await.start().await });
        tokio::task::yield_now().await;
        assert!(pacer.expected_wait() > Duration::from_secs(1));
        held.start().await;
        queued.await.unwrap();
    }
}
