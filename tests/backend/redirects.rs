//! Redirects: same origin followed, another origin never (credentials stay home).

use super::*;

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok_pools())
        .mount(&elsewhere)
        .await;
    let other_port = elsewhere.address().port();
    let own_port = server.address().port();
    let targets = [
        (302, format!("http://localhost:{other_port}{POOLS}")),
        (307, format!("http://127.0.0.1:{other_port}{POOLS}")),
        (301, format!("https://127.0.0.1:{own_port}{POOLS}")),
    ];
    let host = server.address().to_string();

    for (status, location) in &targets {
        server.reset().await;
        mount(
            &server,
            POOLS,
            ResponseTemplate::new(*status).insert_header("Location", location.as_str()),
        )
        .await;

        let e = guard(client(&server.uri()).list_pools("proj", &quiet))
            .await
            .unwrap_err();

        assert_eq!(
            text(&e),
            format!("The Bloomreach API redirected to another host ({location}); the redirect was not followed so that credentials stay with {host}. Check BLOOMREACH_API_BASE_URL (\"API base URL\" in the extension's settings)")
        );
        assert!(
            matches!(&e, BackendError::Redirect { host: h, location: l, .. } if *h == host && l == location),
            "{e:?}"
        );
        assert_eq!(received(&server).await.len(), 1, "{location}");
    }
    assert_eq!(received(&elsewhere).await.len(), 0);
}

#[tokio::test]
async fn a_same_origin_redirect_is_followed_with_credentials() {
    let server = MockServer::start().await;
    let moved = "/bloomreach/data/v2/projects/proj/vouchers/pools-moved";
    mount(
        &server,
        &format!("/bloomreach{POOLS}"),
        ResponseTemplate::new(302).insert_header("Location", moved),
    )
    .await;
    mount(&server, moved, ok_pools()).await;

    let pools = client(&format!("{}/bloomreach", server.uri()))
        .list_pools("proj", &quiet)
        .await
        .unwrap();

    assert_eq!(pools[0], summer20());
    let requests = received(&server).await;
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, [format!("/bloomreach{POOLS}").as_str(), moved]);
    assert_eq!(
        header(&requests[1], "authorization"),
        Some(format!("Basic {BASIC_TOKEN}").as_str())
    );
}

#[tokio::test]
async fn a_same_origin_redirect_loop_ends_in_one_attempt_without_retries() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(302).insert_header("Location", POOLS),
    )
    .await;
    let notices = Notices::default();

    let e = guard(client(&server.uri()).list_pools("proj", &|n: &RetryNotice| notices.observe(n)))
        .await
        .unwrap_err();

    // A redirect loop is not a failed connection: it is not retried, and the
    // message says it was about redirects.
    assert!(text(&e).contains("redirect"), "{e:?}");
    assert!(notices.all().is_empty(), "{e:?}: {:?}", notices.all());
    assert_eq!(received(&server).await.len(), 6, "{e:?}");
}
