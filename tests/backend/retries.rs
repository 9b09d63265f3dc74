//! Retries: what is retried, how often, and how long `Retry-After` is waited out.

use super::*;

#[tokio::test]
async fn a_500_then_200_succeeds_after_one_retry() {
    let server = MockServer::start().await;
    mount_once(&server, POOLS, ResponseTemplate::new(500)).await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();

    let pools = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap();

    assert_eq!(pools[0], summer20());
    assert_eq!(received(&server).await.len(), 2);
    assert_eq!(notices.reasons(), vec![(1, RetryReason::Status(500))]);
}

#[tokio::test]
async fn each_retryable_status_is_retried_and_the_observer_hears_each_retry() {
    let server = MockServer::start().await;
    mount_once(&server, POOLS, ResponseTemplate::new(502)).await;
    mount_once(&server, POOLS, ResponseTemplate::new(504)).await;
    mount_once(&server, POOLS, ResponseTemplate::new(429)).await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();

    let pools = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap();

    assert_eq!(pools.len(), 2);
    assert_eq!(received(&server).await.len(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Status(502)),
            (2, RetryReason::Status(504)),
            (3, RetryReason::RateLimited),
        ]
    );
    for notice in notices.all() {
        // Backoff with jitter: between half of base (5 ms) and the cap (20 ms).
        assert!(notice.wait >= ms(2) && notice.wait <= ms(20), "{notice:?}");
    }
}

#[tokio::test]
async fn a_persistent_503_fails_after_one_attempt_and_three_retries() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        ResponseTemplate::new(503).set_body_string("Service Unavailable"),
    )
    .await;
    let notices = Notices::default();

    let e = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &|n: &RetryNotice| {
            notices.observe(n)
        })
        .await
        .unwrap_err();

    assert_eq!(
        text(&e),
        "The Bloomreach API failed with HTTP 503 (still failing after 3 retries): Service Unavailable"
    );
    assert!(
        matches!(
            e,
            BackendError::Server {
                status: 503,
                retries: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(received(&server).await.len(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::Status(503)),
            (2, RetryReason::Status(503)),
            (3, RetryReason::Status(503)),
        ]
    );
}

/// Says whether an error is the one a case expects.
type IsExpected = fn(&BackendError) -> bool;

#[tokio::test]
async fn client_errors_and_api_failures_are_never_retried() {
    let cases: Vec<(ResponseTemplate, IsExpected)> = vec![
        (json_response(400, json!({"error": "bad"})), |e| {
            matches!(e, BackendError::Rejected { .. })
        }),
        (
            json_response(
                401,
                json!({"success": false, "error": "access key not found"}),
            ),
            |e| matches!(e, BackendError::Unauthorized { .. }),
        ),
        (
            json_response(403, json!({"success": false, "errors": ["no"]})),
            |e| matches!(e, BackendError::Forbidden { .. }),
        ),
        (
            json_response(404, json!({"errors": {"code": 404, "description": "gone"}})),
            |e| matches!(e, BackendError::NotFound { .. }),
        ),
        (json_response(409, json!({"error": "conflict"})), |e| {
            matches!(e, BackendError::Status { status: 409, .. })
        }),
        (
            json_response(
                200,
                json!({"success": false, "errors": {"_global": ["project is locked"]}}),
            ),
            |e| matches!(e, BackendError::Failed { .. }),
        ),
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            |e| matches!(e, BackendError::Unexpected { .. }),
        ),
    ];

    for (response, is_expected) in cases {
        let server = MockServer::start().await;
        mount(&server, POOLS, response).await;
        let notices = Notices::default();

        let e = client(&server.uri())
            .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
            .await
            .unwrap_err();

        assert!(is_expected(&e), "{e:?}");
        assert_eq!(received(&server).await.len(), 1, "{e:?}");
        assert!(notices.all().is_empty(), "{e:?}");
    }
}

/// What a call of `list_pools` met against a fake that answers `status`
/// with `Retry-After: 1` once, then the example pools.
struct AfterOneWait {
    pools: Vec<PoolSummary>,
    elapsed: Duration,
    requests: usize,
    notices: Vec<RetryNotice>,
}

async fn pools_after_one_wait(status: u16) -> AfterOneWait {
    let server = MockServer::start().await;
    mount_once(
        &server,
        POOLS,
        ResponseTemplate::new(status).insert_header("Retry-After", "1"),
    )
    .await;
    mount(&server, POOLS, ok_pools()).await;
    let notices = Notices::default();
    let started = Instant::now();
    let pools =
        guard(client(&server.uri()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
            .await
            .unwrap();
    AfterOneWait {
        pools,
        elapsed: started.elapsed(),
        requests: received(&server).await.len(),
        notices: notices.all(),
    }
}

#[tokio::test]
async fn retry_after_seconds_on_429_is_waited_out_in_full() {
    let met = pools_after_one_wait(429).await;
    assert_eq!(met.pools[0], summer20());
    assert!(met.elapsed >= Duration::from_secs(1), "{:?}", met.elapsed);
    assert_eq!(met.requests, 2);
    assert_eq!(
        met.notices,
        vec![RetryNotice {
            retry: 1,
            max_retries: 3,
            wait: Duration::from_secs(1),
            reason: RetryReason::RateLimited,
        }]
    );
}

#[tokio::test]
async fn retry_after_on_503_is_waited_out_too() {
    let met = pools_after_one_wait(503).await;
    assert!(met.elapsed >= Duration::from_secs(1));
    assert_eq!(met.requests, 2);
    assert_eq!(met.notices[0].wait, Duration::from_secs(1));
    assert_eq!(met.notices[0].reason, RetryReason::Status(503));
}

#[tokio::test]
async fn a_retry_after_longer_than_the_ceiling_fails_at_once_saying_when() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(429).insert_header("Retry-After", "120"),
    )
    .await;
    let notices = Notices::default();

    let before = SystemTime::now();
    let started = Instant::now();
    let e = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap_err();
    let after = SystemTime::now();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(received(&server).await.len(), 1);
    assert!(notices.all().is_empty());
    let BackendError::RetryAfterTooLong {
        status: 429,
        wait,
        until,
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(wait, Duration::from_secs(120));
    assert!(until >= before + wait && until <= after + wait, "{until:?}");
    let text = text(&e);
    assert_eq!(
        text,
        format!(
            "The Bloomreach API is rate limiting requests (HTTP 429) and asked to wait 120 s, longer than this server waits; try again after {}",
            httpdate::fmt_http_date(until)
        )
    );
    // The date in the message is a real HTTP date about two minutes ahead.
    let said = text.rsplit("try again after ").next().unwrap();
    let said = httpdate::parse_http_date(said).unwrap();
    let ahead = said.duration_since(before).unwrap();
    assert!(
        ahead >= Duration::from_secs(119) && ahead <= Duration::from_secs(121),
        "{ahead:?}"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_ceiling_on_503_fails_at_once_too() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(503).insert_header("Retry-After", "120"),
    )
    .await;
    let notices = Notices::default();

    let e = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap_err();

    // "a Retry-After is waited out in full (up to 10 s; a longer one ends the
    // call at once with an error that says when to retry)": the server asked
    // for two minutes of quiet, so it is not asked again three times at once.
    assert_eq!(received(&server).await.len(), 1, "{e:?}");
    assert!(notices.all().is_empty(), "{:?}", notices.all());
    assert!(text(&e).contains("try again after "), "{e:?}");
}

#[tokio::test]
async fn a_retry_after_http_date_is_honoured() {
    let server = MockServer::start().await;
    // HTTP dates have whole seconds: three seconds ahead, cut to the second,
    // is at least two seconds ahead.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    mount_once(
        &server,
        POOL,
        ResponseTemplate::new(429).insert_header("Retry-After", date.as_str()),
    )
    .await;
    mount(&server, POOL, json_response(200, pool_body())).await;
    let notices = Notices::default();

    let started = Instant::now();
    let pool =
        guard(client(&server.uri()).get_pool("proj", "p1", &|n: &RetryNotice| notices.observe(n)))
            .await
            .unwrap();
    let elapsed = started.elapsed();

    assert_eq!(pool.summary.id, "p1");
    assert!(elapsed >= ms(1500), "{elapsed:?}");
    assert_eq!(received(&server).await.len(), 2);
    let notice = &notices.all()[0];
    assert_eq!(notice.reason, RetryReason::RateLimited);
    assert!(
        notice.wait >= ms(1500) && notice.wait <= Duration::from_secs(3),
        "{notice:?}"
    );
}

#[tokio::test]
async fn persistent_rate_limiting_says_so_and_when_to_retry() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        json_response(429, json!({"error": "too many requests"})),
    )
    .await;
    let notices = Notices::default();

    let e = client(&server.uri())
        .list_pools("proj", &|n: &RetryNotice| notices.observe(n))
        .await
        .unwrap_err();

    assert_eq!(
        text(&e),
        "The Bloomreach API is rate limiting requests (HTTP 429, still limited after 3 retries); try again in a minute"
    );
    assert!(
        matches!(
            e,
            BackendError::RateLimited {
                retries: 3,
                retry_after: None
            }
        ),
        "{e:?}"
    );
    assert_eq!(received(&server).await.len(), 4);
    assert_eq!(
        notices.reasons(),
        vec![
            (1, RetryReason::RateLimited),
            (2, RetryReason::RateLimited),
            (3, RetryReason::RateLimited),
        ]
    );
}
