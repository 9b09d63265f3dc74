//! A hostile API: numbers that overflow, waits that say nothing, answers
//! that amplify, secrets at the edges of a quote, faults that trying again
//! cannot mend. Each gets a clear error or a bounded answer, never a panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::support::raw_http::{json_response as raw_json, RawHttp, Reply};
use super::*;

/// A 429 whose `Retry-After` is `value`, for every request.
async fn rate_limited_with(value: &str) -> MockServer {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(429).insert_header("Retry-After", value),
    )
    .await;
    server
}

#[tokio::test]
async fn retry_after_values_that_overflow_end_the_call_at_once_saying_when() {
    for value in [
        "18446744073709551615",
        "250000000000",
        "1e300",
        "99999999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let server = rate_limited_with(value).await;
        let e = guard(client(&server.uri()).list_pools("proj", &quiet))
            .await
            .unwrap_err();
        assert!(
            matches!(e, BackendError::RetryAfterTooLong { status: 429, .. }),
            "{value}: {e:?}"
        );
        let words = text(&e);
        assert!(words.contains("try again after "), "{value}: {words}");
        assert_eq!(received(&server).await.len(), 1, "{value}");
    }
}

#[tokio::test]
async fn a_fractional_retry_after_is_told_as_it_was_asked() {
    let server = rate_limited_with("10.5").await;
    let e = guard(client(&server.uri()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    assert!(text(&e).contains("asked to wait 10.5 s,"), "{}", text(&e));
}

#[tokio::test]
async fn retry_after_zero_or_past_still_waits_the_backoff() {
    for value in ["0", "Tue, 14 Nov 2023 22:13:20 GMT"] {
        let server = rate_limited_with(value).await;
        let started = Instant::now();
        let e = guard(client(&server.uri()).list_pools("proj", &quiet))
            .await
            .unwrap_err();
        assert!(
            matches!(e, BackendError::RateLimited { retries: 3, .. }),
            "{e:?}"
        );
        assert_eq!(received(&server).await.len(), 4, "{value}");
        // The test policy's backoff is 5 ms doubled per retry, with jitter
        // down to half: at least 2.5 + 5 + 10 ms in all.
        assert!(
            started.elapsed() >= ms(17),
            "{value}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_corrupt_compressed_body_is_not_retried_nor_called_unreachable() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200)
            .insert_header("Content-Encoding", "gzip")
            .insert_header("Content-Type", "application/json")
            .set_body_bytes(b"this is not gzip at all".to_vec()),
    )
    .await;
    let e = guard(client(&server.uri()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    assert_eq!(received(&server).await.len(), 1);
    let words = text(&e);
    assert!(
        words
            .starts_with("The Bloomreach API answered unexpectedly: its body could not be decoded"),
        "{words}"
    );
}

#[tokio::test]
async fn a_head_too_large_is_not_retried() {
    let fake = RawHttp::serve(|_| {
        let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        head.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\n{}");
        Reply::SendAndClose(head)
    });
    let e = guard(client(&fake.base_url()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    assert_eq!(fake.requests(), 1, "{e:?}");
    assert!(
        text(&e).starts_with("The Bloomreach API answered unexpectedly"),
        "{}",
        text(&e)
    );
}

#[tokio::test]
async fn a_304_or_a_redirect_without_location_is_an_unexpected_status() {
    for status in [304, 302] {
        let server = MockServer::start().await;
        mount(&server, POOLS, ResponseTemplate::new(status)).await;
        let e = guard(client(&server.uri()).list_pools("proj", &quiet))
            .await
            .unwrap_err();
        assert_eq!(
            text(&e),
            format!("The Bloomreach API answered with unexpected HTTP status {status}")
        );
    }
}

#[tokio::test]
async fn a_secret_at_the_cut_of_an_error_body_is_not_quoted_in_part() {
    for offset in [0usize, 3, 5, 9] {
        let body = format!(
            "{}{SECRET}{}",
            "x".repeat(64 * 1024 - offset),
            " and more".repeat(10)
        );
        let server = MockServer::start().await;
        mount(
            &server,
            POOLS,
            ResponseTemplate::new(400).set_body_string(body),
        )
        .await;
        let e = guard(client(&server.uri()).list_pools("proj", &quiet))
            .await
            .unwrap_err();
        let words = text(&e);
        for part in [&SECRET[..4], &SECRET[SECRET.len() - 4..]] {
            assert!(!words.contains(part), "{offset}: {words}");
        }
    }
}

#[tokio::test]
async fn a_secret_in_a_redirect_location_is_not_quoted() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(302).insert_header(
            "Location",
            format!("https://elsewhere.example/?t={SECRET}&b={BASIC_TOKEN}"),
        ),
    )
    .await;
    let e = guard(client(&server.uri()).list_pools("proj", &quiet))
        .await
        .unwrap_err();
    let words = text(&e);
    assert!(words.contains("elsewhere.example"), "{words}");
    assert!(
        !words.contains(SECRET) && !words.contains(BASIC_TOKEN),
        "{words}"
    );
}

#[tokio::test]
async fn a_page_of_600000_codes_is_read_as_at_most_1000() {
    let body = super::support::fake_api::minimal_codes_body(600_000);
    assert!(body.len() < 16 * MIB);
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        ResponseTemplate::new(200).set_body_raw(body, "application/json"),
    )
    .await;
    let page = guard(client(&server.uri()).list_codes(&codes_query(0, 1, None), &quiet))
        .await
        .unwrap();
    assert_eq!(page.codes.len(), 1000);
    assert_eq!(page.matched, Some(600_000));
}

#[tokio::test]
async fn at_most_fifty_requests_are_on_the_wire_at_once() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let body = serde_json::to_vec(&pools_body()).unwrap();
    let fake = {
        let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
        RawHttp::serve(move |_| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(ms(100));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Reply::Send(raw_json(200, &[], &body).into())
        })
    };
    let client = Arc::new(client(&fake.base_url()));
    let calls: Vec<_> = (0..150)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.list_pools("proj", &quiet).await })
        })
        .collect();
    for call in calls {
        guard(call).await.unwrap().expect("every call is served");
    }
    let most = most.load(Ordering::SeqCst);
    assert!((2..=50).contains(&most), "{most} requests at once");
    assert!(
        fake.connections() <= 50,
        "{} connections",
        fake.connections()
    );
}

/// A JSON body of a few hundred pools, compressed with `encoding`.
fn compressed(encoding: &str) -> Vec<u8> {
    use std::io::Write;
    let pools: Vec<Value> = (0..400)
        .map(|i| json!({"id": format!("p{i}"), "name": format!("pool {i}"), "total": i, "available": i}))
        .collect();
    let body = serde_json::to_vec(&json!({"success": true, "data": pools})).unwrap();
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(&body).unwrap();
            }
            out
        }
        other => panic!("{other}"),
    }
}

/// Every encoding, corrupt at its start, in its middle, or cut short: a
/// fault the same request would meet again, so it is asked once and
/// worded as a body that could not be decoded, never "could not reach".
#[tokio::test]
async fn a_body_corrupt_in_any_encoding_anywhere_is_asked_once() {
    for encoding in ["gzip", "deflate", "br"] {
        let whole = compressed(encoding);
        let mut middle = whole.clone();
        let at = middle.len() / 2;
        for b in &mut middle[at..at + 32] {
            *b ^= 0x5a;
        }
        let mut start = whole.clone();
        for b in &mut start[..16.min(whole.len())] {
            *b ^= 0xff;
        }
        for (cut, body) in [("start", start), ("middle", middle)] {
            let server = MockServer::start().await;
            mount(
                &server,
                POOLS,
                ResponseTemplate::new(200)
                    .insert_header("Content-Encoding", encoding)
                    .insert_header("Content-Type", "application/json")
                    .set_body_bytes(body),
            )
            .await;
            let e = guard(client(&server.uri()).list_pools("proj", &quiet))
                .await
                .unwrap_err();
            let words = text(&e);
            assert_eq!(
                received(&server).await.len(),
                1,
                "{encoding} corrupt at its {cut}: {words}"
            );
            assert!(
                words.starts_with("The Bloomreach API answered unexpectedly:"),
                "{encoding} corrupt at its {cut}: {words}"
            );
            assert!(!words.contains("could not reach"), "{words}");
        }
    }
}

/// Framing that is not HTTP (a chunk size that is not hex, a chunk
/// extension that runs on) is asked once and called malformed.
#[tokio::test]
async fn broken_chunked_framing_is_asked_once() {
    for framing in [
        &b"zz\r\n{}\r\n0\r\n\r\n"[..],
        &b"2;x\x01y\r\n{}\r\n0\r\n\r\n"[..],
        &b"-2\r\n{}\r\n0\r\n\r\n"[..],
    ] {
        let mut reply =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        reply.extend_from_slice(framing);
        let fake = RawHttp::serve(move |_| Reply::SendAndClose(reply.clone()));
        let e = guard(client(&fake.base_url()).list_pools("proj", &quiet))
            .await
            .unwrap_err();
        let words = text(&e);
        assert_eq!(fake.requests(), 1, "{framing:?}: {words}");
        assert!(
            words.starts_with("The Bloomreach API answered unexpectedly"),
            "{framing:?}: {words}"
        );
    }
}
