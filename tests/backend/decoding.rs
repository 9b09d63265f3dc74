//! The contract's example answers, decoded: what each endpoint sends and what comes back.

use super::*;

#[tokio::test]
async fn list_pools_decodes_the_contract_example_and_ignores_unknown_fields() {
    let server = MockServer::start().await;
    mount(&server, POOLS, ok_pools()).await;

    let pools = client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap();

    assert_eq!(
        pools,
        vec![
            summer20(),
            PoolSummary {
                id: "p2".into(),
                name: "WINTER".into(),
                total: 50,
                available: 0,
            }
        ]
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method.as_str(), "GET");
    assert_eq!(requests[0].url.path(), POOLS);
    assert_eq!(requests[0].url.query(), None);
}

#[tokio::test]
async fn get_pool_decodes_the_contract_example_and_passes_used_by_through() {
    let server = MockServer::start().await;
    mount(&server, POOL, json_response(200, pool_body())).await;

    let pool = client(&server.uri())
        .get_pool("proj", "p1", &quiet)
        .await
        .unwrap();

    assert_eq!(
        pool,
        Pool {
            summary: summer20(),
            company_id: Some("proj".into()),
            used_by: vec![
                json!({"type": "campaign", "id": "c9", "name": "Summer", "extra": [1, 2]})
            ],
        }
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), POOL);
    assert_eq!(requests[0].url.query(), None);
}

#[tokio::test]
async fn get_pool_without_company_id_names_the_requested_project() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOL,
        json_response(
            200,
            json!({"success": true,
                   "data": {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742}}),
        ),
    )
    .await;

    let pool = client(&server.uri())
        .get_pool("proj", "p1", &quiet)
        .await
        .unwrap();

    assert_eq!(pool.company_id.as_deref(), Some("proj"));
    assert_eq!(pool.used_by, Vec::<Value>::new());
}

#[tokio::test]
async fn list_codes_sends_skip_and_count_and_decodes_the_page() {
    let server = MockServer::start().await;
    mount(&server, CODES, json_response(200, codes_body())).await;

    let page = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap();

    assert_eq!(
        page,
        CodesPage {
            codes: vec![
                Code {
                    code: "SUM-0001".into(),
                    status: "assigned".into(),
                    assigned_time: Some(1718000000.5),
                    redeemed_time: None,
                },
                Code {
                    code: "SUM-0002".into(),
                    status: "available".into(),
                    assigned_time: None,
                    redeemed_time: None,
                },
                Code {
                    code: "SUM-0003".into(),
                    status: "redeemed".into(),
                    assigned_time: Some(1718000000.0),
                    redeemed_time: Some(1718003600.25),
                },
            ],
            matched: Some(1000),
            matched_limited: Some(false),
            skip: 0,
            limit: 20,
        }
    );
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), CODES);
    // Both paging parameters are sent even when they are the defaults.
    assert_eq!(requests[0].url.query(), Some("skip=0&count=20"));
}

#[tokio::test]
async fn list_codes_sends_status_when_given_and_falls_back_to_the_asked_paging() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        json_response(
            200,
            json!({"success": true,
                   "data": [{"code": "R-1", "status": "redeemed", "assigned_time": 1.0, "redeemed_time": 2.0}]}),
        ),
    )
    .await;
    let client = client(&server.uri());

    let page = client
        .list_codes(&codes_query(40, 5, Some(CodeStatus::Redeemed)), &quiet)
        .await
        .unwrap();
    for status in [CodeStatus::Available, CodeStatus::Assigned] {
        client
            .list_codes(&codes_query(0, 1000, Some(status)), &quiet)
            .await
            .unwrap();
    }

    // The answer gave no paging facts: the asked-for ones are reported.
    assert_eq!(
        page,
        CodesPage {
            codes: vec![Code {
                code: "R-1".into(),
                status: "redeemed".into(),
                assigned_time: Some(1.0),
                redeemed_time: Some(2.0),
            }],
            matched: None,
            matched_limited: None,
            skip: 40,
            limit: 5,
        }
    );
    let queries: Vec<Option<String>> = received(&server)
        .await
        .iter()
        .map(|r| r.url.query().map(str::to_owned))
        .collect();
    assert_eq!(
        queries,
        vec![
            Some("skip=40&count=5&status=redeemed".to_owned()),
            Some("skip=0&count=1000&status=available".to_owned()),
            Some("skip=0&count=1000&status=assigned".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_path_prefix_in_the_base_url_is_kept() {
    let server = MockServer::start().await;
    let prefixed = |p: &str| format!("/bloomreach{p}");
    mount(&server, &prefixed(POOLS), ok_pools()).await;
    mount(&server, &prefixed(POOL), json_response(200, pool_body())).await;
    mount(&server, &prefixed(CODES), json_response(200, codes_body())).await;

    for base in [
        format!("{}/bloomreach", server.uri()),
        format!("{}/bloomreach/", server.uri()),
    ] {
        let client = client(&base);
        assert_eq!(
            client.list_pools("proj", &quiet).await.unwrap()[0],
            summer20()
        );
        assert_eq!(
            client
                .get_pool("proj", "p1", &quiet)
                .await
                .unwrap()
                .summary
                .name,
            "SUMMER20"
        );
        assert_eq!(
            client
                .list_codes(&codes_query(0, 20, None), &quiet)
                .await
                .unwrap()
                .codes
                .len(),
            3
        );
        assert_eq!(
            Endpoint::Pools {
                project_id: &id("proj")
            }
            .url(base.trim_end_matches('/'))
            .unwrap()
            .as_str(),
            format!("{}/bloomreach{POOLS}", server.uri())
        );
    }

    let paths: Vec<String> = received(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    let once = vec![prefixed(POOLS), prefixed(POOL), prefixed(CODES)];
    assert_eq!(paths, [once.clone(), once].concat());
}
