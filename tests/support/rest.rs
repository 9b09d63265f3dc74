//! The REST backend's client options as the tests build them: a loopback
//! base URL, the test key, a 5 s attempt timeout and the retry policy the
//! test asks for (fast backoff, so that retries cost nothing).

use std::time::Duration;

use bloomreach_vouchers_mcp::backend::rest::RetryPolicy;
use bloomreach_vouchers_mcp::backend::ClientOptions;
use bloomreach_vouchers_mcp::config::{parse_base_url, Credentials, Secret};

/// The key the library-level tests use.
pub const REST_KEY_ID: &str = "kid";
pub const REST_SECRET: &str = "topsecret";
/// `base64("kid:topsecret")`, written out so that no test shares the
/// client's encoder.
pub const REST_BASIC_TOKEN: &str = "a2lkOnRvcHNlY3JldA==";

/// Options for a client of `base` with `retry`.
pub fn rest_options(base: &str, retry: RetryPolicy) -> ClientOptions {
    let mut options = ClientOptions::new(
        parse_base_url(base).expect("a loopback base URL"),
        Credentials {
            key_id: REST_KEY_ID.to_owned(),
            secret: Secret::new(REST_SECRET),
        },
        Duration::from_secs(5),
    );
    options.retry = retry;
    options
}
