//! Client-side pacing of calls to Loomi Connect, which allows one call a
//! second and 60 a minute per key: each call reserves the earliest start
//! that keeps both limits, in the order the calls arrive (FIFO), and waits
//! for it. Concurrent calls queue rather than fail; the wait is known when
//! the slot is reserved, so a caller can say why it waits.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The least time between two starts.
    pub gap: Duration,
    /// The most starts in any `window`.
    pub per_window: usize,
    pub window: Duration,
}

impl Limits {
    /// Loomi Connect's: 1 call per second, 60 per minute.
    pub const LOOMI: Self = Self {
        gap: Duration::from_secs(1),
        per_window: 60,
        window: Duration::from_secs(60),
    };
}

/// The reserved starts of recent calls.
#[derive(Debug)]
pub struct Pacer {
    limits: Limits,
    starts: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            starts: Mutex::new(VecDeque::new()),
        }
    }

    /// Reserves the next start; the caller waits until then.
    pub fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        while starts
            .front()
            .is_some_and(|s| *s + self.limits.window <= now && starts.len() > 1)
        {
            starts.pop_front();
        }
        let mut at = now;
        if let Some(last) = starts.back() {
            at = at.max(*last + self.limits.gap);
        }
        if starts.len() >= self.limits.per_window {
            let nth = starts[starts.len() - self.limits.per_window];
            at = at.max(nth + self.limits.window);
        }
        starts.push_back(at);
        while starts.len() > self.limits.per_window {
            starts.pop_front();
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_keep_the_gap_and_the_window_in_arrival_order() {
        let pacer = Pacer::new(Limits {
            gap: Duration::from_secs(1),
            per_window: 3,
            window: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        let offsets: Vec<u64> = (0..5).map(|_| (pacer.reserve() - t0).as_secs()).collect();
        // 0, 1, 2, then the window: the 4th waits until 10 s after the 1st.
        assert_eq!(offsets, [0, 1, 2, 10, 11]);
    }

    #[test]
    fn an_idle_pacer_lets_a_call_start_at_once() {
        let pacer = Pacer::new(Limits {
            gap: Duration::from_millis(5),
            per_window: 2,
            window: Duration::from_millis(20),
        });
        pacer.reserve();
        pacer.reserve();
        std::thread::sleep(Duration::from_millis(40));
        let before = Instant::now();
        let at = pacer.reserve();
        assert!(at <= Instant::now() && at >= before);
    }
}
