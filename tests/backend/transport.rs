//! Timeouts, resets and cancellation: faults of the connection itself.

use super::*;

fn one_second_client(base: &str) -> Client {
    let mut options = options(base);
    options.timeout = Duration::from_secs(1);
    client_with(options)
}

#[tokio::test]
async fn late_headers_end_in_a_timeout() {
    let server = MockServer::start().await;
    mount(&server, POOLS, ok_pools().set_delay(Duration::from_secs(4))).await;

    let started = Instant::now();
    let e = guard(one_second_client(&server.uri()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    let host = server.address().to_string();
    assert_eq!(
        text(&e),
        format!("The request to the Bloomreach API at {host} timed out: no complete answer within 1 s; raise BLOOMREACH_TIMEOUT_SECS (\"Timeout (seconds)\" in the extension's settings) if the API is slow")
    );
    assert!(
        matches!(&e, BackendError::Timeout { host: h, timeout } if *h == host && *timeout == Duration::from_secs(1)),
        "{e:?}"
    );
    assert!(
        elapsed >= ms(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_body_that_stalls_after_the_headers_ends_in_a_timeout_and_the_connection_is_dropped() {
    let fake = RawFake::start(Raw::StallBody).await;

    let started = Instant::now();
    let e = guard(one_second_client(&fake.base()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(
        text(&e),
        format!(
            "The request to the Bloomreach API at {} timed out: no complete answer within 1 s; raise BLOOMREACH_TIMEOUT_SECS (\"Timeout (seconds)\" in the extension's settings) if the API is slow",
            fake.addr
        )
    );
    assert!(matches!(e, BackendError::Timeout { .. }), "{e:?}");
    assert!(
        elapsed >= ms(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(fake.connections(), 1);
    // The abandoned attempt does not linger: its connection is closed.
    assert!(fake.wait_closed(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_cancelled_call_drops_its_request() {
    let fake = RawFake::start(Raw::Silent).await;
    let client = client(&fake.base());

    let outcome = tokio::time::timeout(ms(300), client.list_pools("proj", &quiet)).await;

    assert!(outcome.is_err(), "the silent fake cannot have answered");
    assert_eq!(fake.connections(), 1);
    assert!(fake.wait_closed(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_a_connection_error_after_retries() {
    let fake = RawFake::start(Raw::ResetMidBody).await;
    let notices = Notices::default();

    let e = guard(client(&fake.base()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
        .await
        .unwrap_err();

    let text = text(&e);
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API at {}: the connection broke while the answer was being read",
            fake.addr
        )),
        "{text}"
    );
    assert!(text.ends_with(" (after 3 retries)"), "{text}");
    assert!(
        matches!(&e, BackendError::Connection { host, retries: 3, .. } if *host == fake.addr.to_string()),
        "{e:?}"
    );
    assert_eq!(fake.connections(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Connection),
            (2, RetryReason::Connection),
            (3, RetryReason::Connection),
        ]
    );
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_a_connection_error_after_retries() {
    let fake = RawFake::start(Raw::CloseMidBody).await;

    let e = guard(client(&fake.base()).get_pool("proj", "p1", &quiet))
        .await
        .unwrap_err();

    assert!(
        matches!(&e, BackendError::Connection { host, retries: 3, .. } if *host == fake.addr.to_string()),
        "{e:?}"
    );
    assert!(
        text(&e).starts_with(&format!(
            "Could not reach the Bloomreach API at {}: the connection broke while the answer was being read",
            fake.addr
        )),
        "{e:?}"
    );
    assert_eq!(fake.connections(), 4);
}

#[tokio::test]
async fn a_refused_connection_names_host_and_port_after_retries() {
    let port = closed_port().await;
    let notices = Notices::default();

    let e = guard(
        client(&format!("http://127.0.0.1:{port}"))
            .list_pools("proj", &|n: &RetryNotice| notices.observe(n)),
    )
    .await
    .unwrap_err();

    let text = text(&e);
    assert!(
        text.starts_with(&format!(
            "Could not reach the Bloomreach API at 127.0.0.1:{port}: the connection could not be made"
        )),
        "{text}"
    );
    assert!(text.ends_with(" (after 3 retries)"), "{text}");
    assert!(
        matches!(&e, BackendError::Connection { host, retries: 3, .. } if *host == format!("127.0.0.1:{port}")),
        "{e:?}"
    );
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Connection),
            (2, RetryReason::Connection),
            (3, RetryReason::Connection),
        ]
    );
}
