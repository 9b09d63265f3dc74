//! Every attempt carries Basic auth, Accept and User-Agent.

use super::*;

#[tokio::test]
async fn every_attempt_carries_basic_auth_accept_and_user_agent() {
    let server = MockServer::start().await;
    // One failed attempt first, so the retried request is checked too.
    mount_once(&server, POOLS, ResponseTemplate::new(500)).await;
    mount(&server, POOLS, ok_pools()).await;
    mount(&server, POOL, json_response(200, pool_body())).await;
    mount(&server, CODES, json_response(200, codes_body())).await;
    let client = client(&server.uri());

    client.list_pools("proj", &quiet).await.unwrap();
    client.get_pool("proj", "p1", &quiet).await.unwrap();
    client
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap();

    let requests = received(&server).await;
    assert_eq!(requests.len(), 4);
    let user_agent = format!("bloomreach-vouchers-mcp/{}", env!("CARGO_PKG_VERSION"));
    for request in &requests {
        assert_eq!(
            header(request, "authorization"),
            Some(format!("Basic {BASIC_TOKEN}").as_str()),
            "{}",
            request.url
        );
        assert_eq!(header(request, "accept"), Some("application/json"));
        assert_eq!(header(request, "user-agent"), Some(user_agent.as_str()));
        assert_eq!(request.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(request.headers.get_all("accept").iter().count(), 1);
    }
}
