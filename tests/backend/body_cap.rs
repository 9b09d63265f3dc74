//! The body cap: no answer larger than the cap is read whole.

use super::*;

fn one_mib_client(base: &str) -> Client {
    let mut options = options(base);
    options.max_body_bytes = MIB;
    client_with(options)
}

/// A valid pools answer of exactly `size` bytes.
fn pools_json_of_size(size: usize) -> String {
    let head = r#"{"success":true,"data":[],"pad":""#;
    let tail = r#""}"#;
    let body = format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()));
    assert_eq!(body.len(), size);
    body
}

const TOO_LARGE: &str = "The Bloomreach API answer is larger than 1 MiB, the most this server reads; ask for fewer records (a smaller count)";

#[tokio::test]
async fn a_body_larger_than_the_cap_is_refused() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200).set_body_raw(pools_json_of_size(2 * MIB), "application/json"),
    )
    .await;

    let e = one_mib_client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap_err();

    assert_eq!(text(&e), TOO_LARGE);
    assert!(
        matches!(e, BackendError::BodyTooLarge { limit } if limit == MIB),
        "{e:?}"
    );
    assert_eq!(received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_body_exactly_at_the_cap_is_read_and_one_byte_more_is_refused() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/data/v2/projects/fits/vouchers/pools",
        ResponseTemplate::new(200).set_body_raw(pools_json_of_size(MIB), "application/json"),
    )
    .await;
    mount(
        &server,
        "/data/v2/projects/over/vouchers/pools",
        ResponseTemplate::new(200).set_body_raw(pools_json_of_size(MIB + 1), "application/json"),
    )
    .await;
    let client = one_mib_client(&server.uri());

    assert_eq!(client.list_pools("fits", &quiet).await.unwrap(), vec![]);
    let e = client.list_pools("over", &quiet).await.unwrap_err();
    assert!(matches!(e, BackendError::BodyTooLarge { .. }), "{e:?}");
}

#[tokio::test]
async fn a_chunked_body_without_length_larger_than_the_cap_is_refused() {
    let fake = RawFake::start(Raw::Chunked(2 * MIB)).await;

    let e = guard(one_mib_client(&fake.base()).list_pools("proj", &quiet))
        .await
        .unwrap_err();

    assert_eq!(text(&e), TOO_LARGE);
    assert!(
        matches!(e, BackendError::BodyTooLarge { limit } if limit == MIB),
        "{e:?}"
    );
    assert_eq!(fake.connections(), 1);
    let head = fake.heads().remove(0);
    assert!(
        head.starts_with("GET /data/v2/projects/proj/vouchers/pools HTTP/1.1\r\n"),
        "{head}"
    );
}
