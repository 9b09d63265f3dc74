//! What a backend tells while a call waits: each retry, with its reason and
//! the wait before it. The tools turn a notice into a progress
//! notification and a log line; the `call` command prints it.

use std::time::Duration;

/// Why a backend is about to wait and try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryReason {
    RateLimited,
    Status(u16),
    Connection,
    /// Not a retry: the call waits its turn under Loomi's rate limit.
    Paced,
}

/// Told to an observer before each retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryNotice {
    /// Which retry this is, from 1.
    pub retry: u32,
    pub max_retries: u32,
    pub wait: Duration,
    pub reason: RetryReason,
}

/// Something that wants to hear about retries.
pub type RetryObserver<'a> = &'a (dyn Fn(&RetryNotice) + Send + Sync);
