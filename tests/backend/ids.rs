//! Ids are single, encoded path segments: no id can change which endpoint is called.

use super::*;

/// Hostile ids and how each must appear as one path segment.
const HOSTILE_IDS: &[(&str, &str)] = &[
    ("a/b", "a%2Fb"),
    ("../x", "..%2Fx"),
    ("../../../admin", "..%2F..%2F..%2Fadmin"),
    (
        "x?status=redeemed&count=1000",
        "x%3Fstatus%3Dredeemed%26count%3D1000",
    ),
    ("x#frag", "x%23frag"),
    ("a%2Fb", "a%252Fb"),
    ("%2e%2e", "%252e%252e"),
    ("my pool", "my%20pool"),
    ("line\r\nX-Injected: 1", "line%0D%0AX-Injected%3A%201"),
    ("zľava-é-€", "z%C4%BEava-%C3%A9-%E2%82%AC"),
    ("...", "..."),
    ("p.v2_~-", "p.v2_~-"),
];

#[tokio::test]
async fn hostile_ids_reach_the_fake_as_one_encoded_segment() {
    let server = MockServer::start().await;
    // Each endpoint answers only when every id is one segment (no `/`);
    // anything else gets wiremock's 404 and fails the call.
    for (pattern, body) in [
        (r"^/data/v2/projects/[^/]+/vouchers/pools$", pools_body()),
        (
            r"^/data/v2/projects/[^/]+/vouchers/pools/[^/]+$",
            pool_body(),
        ),
        (
            r"^/data/v2/projects/[^/]+/vouchers/pools/[^/]+/codes$",
            codes_body(),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path_regex(pattern))
            .respond_with(json_response(200, body))
            .mount(&server)
            .await;
    }
    let client = client(&server.uri());

    for (id, _) in HOSTILE_IDS {
        client.get_pool("proj", id, &quiet).await.unwrap();
        client.list_pools(id, &quiet).await.unwrap();
        client
            .list_codes(
                &Codes {
                    project_id: "proj",
                    pool_id: id,
                    skip: 0,
                    count: 20,
                    status: None,
                },
                &quiet,
            )
            .await
            .unwrap();
    }

    let requests = received(&server).await;
    assert_eq!(requests.len(), HOSTILE_IDS.len() * 3);
    for (i, (id, encoded)) in HOSTILE_IDS.iter().enumerate() {
        let [pool, pools, codes] = &requests[i * 3..i * 3 + 3] else {
            unreachable!()
        };
        assert_eq!(
            pool.url.path(),
            format!("/data/v2/projects/proj/vouchers/pools/{encoded}"),
            "{id:?}"
        );
        assert_eq!(pool.url.query(), None, "{id:?}");
        assert_eq!(pool.url.fragment(), None, "{id:?}");
        assert_eq!(
            pools.url.path(),
            format!("/data/v2/projects/{encoded}/vouchers/pools"),
            "{id:?}"
        );
        assert_eq!(pools.url.query(), None, "{id:?}");
        assert_eq!(
            codes.url.path(),
            format!("/data/v2/projects/proj/vouchers/pools/{encoded}/codes"),
            "{id:?}"
        );
        let keys: Vec<(String, String)> = codes.url.query_pairs().into_owned().collect();
        assert_eq!(
            keys,
            vec![
                ("skip".to_owned(), "0".to_owned()),
                ("count".to_owned(), "20".to_owned())
            ],
            "{id:?}"
        );
        // No header was injected through the id.
        assert!(pool.headers.get("x-injected").is_none(), "{id:?}");
    }
}

#[tokio::test]
async fn hostile_ids_are_sent_verbatim_encoded_on_the_request_line() {
    // wiremock re-parses the URL it receives; this fake records the raw
    // request line instead, so nothing can be normalised on the way.
    let body = r#"{"success": true, "data": {"id": "p", "name": "n", "total": 1, "available": 1}}"#;
    let fake = RawFake::start(Raw::Json(body)).await;
    let client = client(&fake.base());

    for (id, _) in HOSTILE_IDS {
        guard(client.get_pool(id, id, &quiet)).await.unwrap();
    }

    let heads = fake.heads();
    assert_eq!(heads.len(), HOSTILE_IDS.len());
    for ((id, encoded), head) in HOSTILE_IDS.iter().zip(&heads) {
        let request_line = head.split("\r\n").next().unwrap();
        assert_eq!(
            request_line,
            format!("GET /data/v2/projects/{encoded}/vouchers/pools/{encoded} HTTP/1.1"),
            "{id:?}"
        );
        // The id stayed on the request line: no header line was injected.
        for line in head.split("\r\n").skip(1) {
            assert!(
                !line.to_ascii_lowercase().starts_with("x-injected"),
                "{id:?}: {head}"
            );
        }
    }
}

/// An id that would be resolved as a path step, or that is empty, cannot
/// even be made: the backend takes only checked ids, so no request can
/// carry one (the tools answer such an id as an argument error).
#[test]
fn dot_segment_and_empty_ids_cannot_become_ids() {
    use bloomreach_vouchers_mcp::backend::IdProblem;
    for (bad, problem) in [
        ("..", IdProblem::DotSegment),
        (".", IdProblem::DotSegment),
        ("", IdProblem::Blank),
    ] {
        assert_eq!(Id::new(bad), Err(problem), "{bad:?}");
    }
}
