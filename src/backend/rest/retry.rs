//! When to try a request again, and how long to wait first: which statuses
//! are worth a retry, exponential backoff with jitter, and `Retry-After`
//! in both of its forms.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

/// When and how often to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further one, with jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited out; a longer one ends the call.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1-based): exponential, with
    /// jitter between half and all of it.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// 429 and the server errors a gateway or a busy API answers.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The longest `Retry-After` kept: a longer one (up to `u64::MAX` seconds,
/// or a date in the year 9999) is read as this, so that no arithmetic on
/// it can overflow.
pub const MAX_RETRY_AFTER_KEPT: Duration = Duration::from_secs(366 * 24 * 3600);

/// Reads a `Retry-After` value: delay-seconds (whole or not) or an HTTP
/// date, at most [`MAX_RETRY_AFTER_KEPT`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs.min(MAX_RETRY_AFTER_KEPT.as_secs()))
    } else if let Ok(secs) = value.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return None;
        }
        Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_KEPT.as_secs_f64()))
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER_KEPT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("10.5", now),
            Some(Duration::from_millis(10_500))
        );
        for huge in [
            "18446744073709551615",
            "250000000000",
            "1e300",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(huge, now),
                Some(MAX_RETRY_AFTER_KEPT),
                "{huge}"
            );
        }
        assert_eq!(parse_retry_after("-4", now), None);
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy::default();
        for retry in 1..=6 {
            let full = (p.base_delay * (1 << (retry - 1))).min(p.max_delay);
            let d = p.backoff(retry);
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
    }
}
