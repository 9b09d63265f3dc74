//! The pages of a scan, taken in order while the next one may already be on
//! its way, so a long scan waits on the slower of fetching and decoding
//! instead of on both. Whether to ask ahead is the caller's choice; this keeps
//! the requests in order and drives them all while it waits for the first.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use futures_util::future::{maybe_done, MaybeDone};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub skip: u64,
    pub count: u64,
}

/// Page requests in flight, oldest first.
pub struct ReadAhead<F, Fut: Future> {
    fetch: F,
    queue: VecDeque<(Span, Pin<Box<MaybeDone<Fut>>>)>,
}

impl<F, Fut> ReadAhead<F, Fut>
where
    F: Fn(Span) -> Fut,
    Fut: Future,
{
    pub fn new(fetch: F) -> Self {
        Self {
            fetch,
            queue: VecDeque::with_capacity(2),
        }
    }

    /// Asks for `span` after the requests made; nothing is sent until [`ReadAhead::next`] runs.
    pub fn request(&mut self, span: Span) {
        self.queue
            .push_back((span, Box::pin(maybe_done((self.fetch)(span)))));
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The oldest request's span and outcome, once it has one; the newer
    /// requests make progress meanwhile. `None` when nothing was asked.
    pub async fn next(&mut self) -> Option<(Span, Fut::Output)> {
        if self.queue.is_empty() {
            return None;
        }
        // The newest first: a request asked ahead is handed to the connection
        // before the oldest, once its answer is in, is decoded in the same
        // turn. (So where requests queue for a turn, as Loomi Connect's paced
        // calls do, the newer would be served first: such backends do not
        // read ahead.) Every request is polled; the oldest's poll, the last,
        // is the outcome.
        poll_fn(|cx| {
            self.queue
                .iter_mut()
                .rev()
                .fold(Poll::Pending, |_, (_, fetch)| fetch.as_mut().poll(cx))
        })
        .await;
        let (span, mut fetch) = self.queue.pop_front()?;
        fetch.as_mut().take_output().map(|outcome| (span, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::time::Duration;

    fn span(skip: u64) -> Span {
        Span { skip, count: 10 }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_come_in_request_order_whatever_order_they_arrive_in() {
        let started = RefCell::new(Vec::new());
        let mut pages = ReadAhead::new(|s: Span| {
            started.borrow_mut().push(s.skip);
            async move {
                // The later page answers first.
                tokio::time::sleep(Duration::from_millis(100 - s.skip)).await;
                s.skip * 2
            }
        });
        assert!(pages.next().await.is_none());
        pages.request(span(10));
        pages.request(span(20));
        assert_eq!(pages.in_flight(), 2);
        assert_eq!(*started.borrow(), [10, 20]);
        let begun = tokio::time::Instant::now();
        assert_eq!(pages.next().await, Some((span(10), 20)));
        assert_eq!(begun.elapsed(), Duration::from_millis(90));
        // The second was driven while the first was awaited: it is ready.
        assert_eq!(pages.next().await, Some((span(20), 40)));
        assert_eq!(begun.elapsed(), Duration::from_millis(90));
        assert_eq!(pages.in_flight(), 0);
        assert!(pages.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_asked_one_at_a_time_wait_for_each_other() {
        let mut pages = ReadAhead::new(|s: Span| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.skip
        });
        let begun = tokio::time::Instant::now();
        for skip in [0, 10, 20] {
            pages.request(span(skip));
            assert_eq!(pages.next().await, Some((span(skip), skip)));
        }
        assert_eq!(begun.elapsed(), Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn two_in_flight_overlap() {
        let mut pages = ReadAhead::new(|s: Span| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.skip
        });
        let begun = tokio::time::Instant::now();
        pages.request(span(0));
        pages.request(span(10));
        assert_eq!(pages.next().await, Some((span(0), 0)));
        pages.request(span(20));
        assert_eq!(pages.next().await, Some((span(10), 10)));
        assert_eq!(pages.next().await, Some((span(20), 20)));
        // 0 and 10 together (50 ms), then 20 asked at 50 ms, done at 100.
        assert_eq!(begun.elapsed(), Duration::from_millis(100));
    }
}
