//! The failure rows of the contract's table: each upstream fault becomes the sentence it asks for.

use super::*;

#[tokio::test]
async fn http_400_is_a_rejection_quoting_the_api() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        json_response(
            400,
            json!({"success": false, "errors": {"skip": ["must be a non-negative integer"]}}),
        ),
    )
    .await;

    let e = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap_err();

    assert_eq!(
        text(&e),
        "Bloomreach rejected the request as invalid (HTTP 400): must be a non-negative integer"
    );
    assert!(
        matches!(&e, BackendError::Rejected { message: Some(m) } if m == "must be a non-negative integer"),
        "{e:?}"
    );
}

#[tokio::test]
async fn http_401_names_both_settings_and_never_the_secret() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        json_response(
            401,
            json!({"success": false, "error": "access key not found"}),
        ),
    )
    .await;

    let e = client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap_err();

    let text = text(&e);
    assert_eq!(
        text,
        "Bloomreach refused the credentials (HTTP 401: access key not found); check BLOOMREACH_API_KEY_ID (\"API key ID\" in the extension's settings) and BLOOMREACH_API_SECRET (\"API secret\" in the extension's settings): the key must exist, have private access and belong to the project"
    );
    assert!(matches!(e, BackendError::Unauthorized { .. }), "{e:?}");
    let debug = format!("{e:?}");
    for shown in [&text, &debug] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(BASIC_TOKEN), "{shown}");
    }
}

#[tokio::test]
async fn credentials_echoed_by_the_api_are_redacted() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        json_response(
            401,
            json!({"success": false,
                   "error": format!("bad header Basic {BASIC_TOKEN} with secret {SECRET}")}),
        ),
    )
    .await;
    mount(
        &server,
        POOL,
        ResponseTemplate::new(200).set_body_string(format!("Authorization: Basic {BASIC_TOKEN}")),
    )
    .await;
    let client = client(&server.uri());

    let e = client.pools_err().await;
    assert_eq!(
        text(&e),
        "Bloomreach refused the credentials (HTTP 401: bad header Basic [redacted] with secret [redacted]); check BLOOMREACH_API_KEY_ID (\"API key ID\" in the extension's settings) and BLOOMREACH_API_SECRET (\"API secret\" in the extension's settings): the key must exist, have private access and belong to the project"
    );
    let e = client.pool_err().await;
    assert_eq!(
        text(&e),
        "The Bloomreach API answered unexpectedly: the answer is not JSON: Authorization: Basic [redacted]"
    );
}

#[tokio::test]
async fn http_403_is_permission_denied_quoting_the_api() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOL,
        json_response(
            403,
            json!({"success": false, "errors": ["not authorized to read vouchers"]}),
        ),
    )
    .await;

    let e = client(&server.uri())
        .get_pool("proj", "p1", &quiet)
        .await
        .unwrap_err();

    assert_eq!(
        text(&e),
        "Permission denied by Bloomreach (HTTP 403): not authorized to read vouchers; the API key needs read access to vouchers in this project"
    );
    assert!(matches!(e, BackendError::Forbidden { .. }), "{e:?}");
}

#[tokio::test]
async fn long_api_messages_are_quoted_short() {
    let server = MockServer::start().await;
    let long = "not authorized ".repeat(200);
    mount(
        &server,
        POOLS,
        json_response(403, json!({"success": false, "errors": [long]})),
    )
    .await;

    let e = client(&server.uri())
        .list_pools("proj", &quiet)
        .await
        .unwrap_err();

    let BackendError::Forbidden { message: Some(m) } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(m.chars().count(), 301, "{m}");
    assert!(m.ends_with('…'), "{m}");
    assert!(text(&e).chars().count() < 450, "{e:?}");
}

#[tokio::test]
async fn http_404_names_the_id_that_was_asked_for() {
    let server = MockServer::start().await;
    let not_found = json_response(
        404,
        json!({"errors": {"code": 404, "description": "resource does not exist"}}),
    );
    mount(
        &server,
        "/data/v2/projects/nope/vouchers/pools",
        not_found.clone(),
    )
    .await;
    mount(
        &server,
        "/data/v2/projects/proj/vouchers/pools/pool-9",
        not_found.clone(),
    )
    .await;
    mount(
        &server,
        "/data/v2/projects/proj/vouchers/pools/pool-9/codes",
        not_found,
    )
    .await;
    let client = client(&server.uri());

    let e = client.list_pools("nope", &quiet).await.unwrap_err();
    assert_eq!(
        text(&e),
        "Project \"nope\" was not found; check the project token (list_projects shows the configured ones) (HTTP 404: resource does not exist)"
    );
    assert!(
        matches!(&e, BackendError::NotFound { subject: Subject::Project { project_id }, .. } if project_id == "nope"),
        "{e:?}"
    );

    let pool_message = "Voucher pool \"pool-9\" was not found in project \"proj\"; list_voucher_pools shows the pool ids of a project (HTTP 404: resource does not exist)";
    let e = client.get_pool("proj", "pool-9", &quiet).await.unwrap_err();
    assert_eq!(text(&e), pool_message);
    let e = client
        .list_codes(
            &Codes {
                project_id: "proj",
                pool_id: "pool-9",
                skip: 0,
                count: 20,
                status: None,
            },
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(text(&e), pool_message);
    assert!(
        matches!(&e, BackendError::NotFound { subject: Subject::Pool { project_id, pool_id }, .. }
            if project_id == "proj" && pool_id == "pool-9"),
        "{e:?}"
    );
}

#[tokio::test]
async fn success_false_on_200_quotes_the_api() {
    let server = MockServer::start().await;
    let failed = json_response(
        200,
        json!({"success": false, "errors": {"_global": ["project is locked"]}}),
    );
    mount(&server, POOLS, failed.clone()).await;
    mount(&server, POOL, failed.clone()).await;
    mount(&server, CODES, failed).await;
    let client = client(&server.uri());

    let errors = [
        client.pools_err().await,
        client.pool_err().await,
        client.codes_err().await,
    ];

    for e in errors {
        assert_eq!(
            text(&e),
            "Bloomreach could not complete the request: project is locked"
        );
        assert!(matches!(e, BackendError::Failed { .. }), "{e:?}");
    }
}

#[tokio::test]
async fn non_json_200_is_an_unexpected_answer_with_an_excerpt() {
    let server = MockServer::start().await;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200).set_body_raw(
            "upstream connect error or disconnect/reset before headers",
            "text/plain",
        ),
    )
    .await;
    mount(
        &server,
        POOL,
        ResponseTemplate::new(200).set_body_raw(
            "<!DOCTYPE html><html><head><title>Maintenance</title></head><body><p>Back soon</p></body></html>",
            "text/html",
        ),
    )
    .await;
    mount(&server, CODES, ResponseTemplate::new(200)).await;
    let client = client(&server.uri());

    let e = client.pools_err().await;
    assert_eq!(
        text(&e),
        "The Bloomreach API answered unexpectedly: the answer is not JSON: upstream connect error or disconnect/reset before headers"
    );
    assert!(matches!(e, BackendError::Unexpected { .. }), "{e:?}");

    let e = client.pool_err().await;
    assert_eq!(
        text(&e),
        "The Bloomreach API answered unexpectedly: the answer is not JSON: Maintenance Back soon"
    );

    // An empty 200 is not JSON either.
    let e = client.codes_err().await;
    assert!(matches!(e, BackendError::Unexpected { .. }), "{e:?}");
    assert!(
        text(&e).starts_with("The Bloomreach API answered unexpectedly: the answer is not JSON"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_missing_required_field_is_an_unexpected_answer() {
    let server = MockServer::start().await;
    let body = r#"{"success":true,"data":[{"id":"p1","name":"SUMMER20","total":1000}]}"#;
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(200).set_body_raw(body, "application/json"),
    )
    .await;
    mount(&server, POOL, json_response(200, json!({"success": true}))).await;
    mount(
        &server,
        CODES,
        json_response(
            200,
            json!({"success": true, "data": [{"code": "A", "status": "assigned", "assigned_time": "yesterday"}]}),
        ),
    )
    .await;
    let client = client(&server.uri());

    let e = client.pools_err().await;
    assert_eq!(
        text(&e),
        format!("The Bloomreach API answered unexpectedly: a required field is missing or has the wrong type (missing field `available`): {body}")
    );
    assert!(matches!(e, BackendError::Unexpected { .. }), "{e:?}");

    let e = client.pool_err().await;
    assert_eq!(
        text(&e),
        "The Bloomreach API answered unexpectedly: the answer has no data field"
    );

    let e = client.codes_err().await;
    assert!(
        text(&e).starts_with(
            "The Bloomreach API answered unexpectedly: a required field is missing or has the wrong type (invalid type: string \"yesterday\""
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unknown_code_status_passes_through() {
    let server = MockServer::start().await;
    mount(
        &server,
        CODES,
        json_response(
            200,
            json!({"success": true, "data": [
                {"code": "X-1", "status": "expired", "assigned_time": null, "redeemed_time": null},
                {"code": "X-2", "status": "", "assigned_time": 5}
            ], "matched": 2, "matched_limited": true, "skip": 0, "limit": 20}),
        ),
    )
    .await;

    let page = client(&server.uri())
        .list_codes(&codes_query(0, 20, None), &quiet)
        .await
        .unwrap();

    let statuses: Vec<&str> = page.codes.iter().map(|c| &*c.status).collect();
    assert_eq!(statuses, ["expired", ""]);
    assert_eq!(page.codes[1].assigned_time, Some(5.0));
    assert_eq!((page.matched, page.matched_limited), (Some(2), Some(true)));
}

#[tokio::test]
async fn an_html_proxy_page_on_502_is_quoted_short_without_tags() {
    let server = MockServer::start().await;
    let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    mount(
        &server,
        POOLS,
        ResponseTemplate::new(502).set_body_raw(nginx, "text/html"),
    )
    .await;
    let long_page = format!(
        "<!DOCTYPE html><html><head><title>Error 502</title><style>body {{ color: red }}</style>\
         <script>var trace = 'abc';</script></head><body><p>{}</p></body></html>",
        "The origin did not answer. ".repeat(100)
    );
    mount(
        &server,
        POOL,
        ResponseTemplate::new(502).set_body_raw(long_page, "text/html"),
    )
    .await;
    let client = client(&server.uri());

    let e = client.pools_err().await;
    assert_eq!(
        text(&e),
        "The Bloomreach API failed with HTTP 502 (still failing after 3 retries): 502 Bad Gateway 502 Bad Gateway nginx"
    );
    assert!(
        matches!(
            e,
            BackendError::Server {
                status: 502,
                retries: 3,
                ..
            }
        ),
        "{e:?}"
    );

    let e = client.pool_err().await;
    let BackendError::Server {
        status: 502,
        excerpt: Some(excerpt),
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(
        excerpt.starts_with("Error 502 The origin did not answer."),
        "{excerpt}"
    );
    assert!(excerpt.chars().count() <= 201, "{excerpt}");
    for junk in ['<', '>', '\r', '\n'] {
        assert!(!excerpt.contains(junk), "{excerpt}");
    }
    assert!(!excerpt.contains("color"), "{excerpt}");
    assert!(!excerpt.contains("trace"), "{excerpt}");
}
