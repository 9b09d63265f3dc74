//! The two tools that answer questions in one call, through the built
//! binary: `get_voucher_pool_stats` and `find_voucher_codes`, on the demo
//! data (checked against the codes listed page by page) and against a
//! wiremock fake (requests, edges of the time bounds, faults).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_api::{codes_path, pool_body, pool_path};
use crate::support::jsonrpc::{call_params, Session as RawSession};
use crate::support::mcp::{call, connect, connect_api, Session};
use crate::support::{POOL, PROJECT};

const DEMO_POOLS: [&str; 4] = ["summer20", "welcome10", "ete-bienvenue", "black-friday"];

/// Every code of a demo pool, read with list_voucher_codes page by page.
async fn all_codes(s: &Session, pool: &str) -> Vec<Value> {
    let mut codes = Vec::new();
    loop {
        let page = call(
            s,
            "list_voucher_codes",
            json!({"project_id": "demo", "pool_id": pool, "skip": codes.len(), "count": 1000}),
        )
        .await;
        let data = page["data"].as_array().unwrap().clone();
        if data.is_empty() {
            return codes;
        }
        codes.extend(data);
    }
}

#[tokio::test]
async fn stats_count_each_demo_pool_by_status() {
    let s = connect(&["--demo"], &[]).await;
    for pool in DEMO_POOLS {
        let codes = all_codes(&s, pool).await;
        let of = |status: &str| codes.iter().filter(|c| c["status"] == status).count();
        let stats = call(
            &s,
            "get_voucher_pool_stats",
            json!({"project_id": "demo", "pool_id": pool}),
        )
        .await;
        assert_eq!(stats["success"], true, "{stats}");
        let data = &stats["data"];
        assert_eq!(data["id"], pool);
        assert_eq!(data["total"], codes.len(), "{pool}");
        assert_eq!(data["available"], of("available"), "{pool}");
        assert_eq!(data["assigned"], of("assigned"), "{pool}");
        assert_eq!(data["redeemed"], of("redeemed"), "{pool}");
    }
    let empty = call(
        &s,
        "get_voucher_pool_stats",
        json!({"project_id": "demo", "pool_id": "black-friday"}),
    )
    .await;
    assert_eq!(
        empty["data"],
        json!({"id": "black-friday", "name": "BLACKFRIDAY (not yet filled)", "total": 0,
               "available": 0, "assigned": 0, "redeemed": 0})
    );
    let summer = call(
        &s,
        "get_voucher_pool_stats",
        json!({"project_id": "demo", "pool_id": "summer20"}),
    )
    .await;
    assert_eq!(summer["data"]["redeemed"], 576);
}

#[tokio::test]
async fn stats_of_an_unknown_pool_is_a_failure_naming_it() {
    let s = connect(&["--demo"], &[]).await;
    let stats = call(
        &s,
        "get_voucher_pool_stats",
        json!({"project_id": "demo", "pool_id": "nope"}),
    )
    .await;
    assert_eq!(stats["success"], false);
    assert_eq!(stats["data"], Value::Null);
    assert!(
        stats["error"].as_str().unwrap().contains("\"nope\""),
        "{stats}"
    );
}

/// A codes endpoint that answers `matched` by status and waits 300 ms.
async fn slow_counts_api() -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(pool_path(PROJECT, POOL)))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(300))
                .set_body_json(pool_body()),
        )
        .mount(&api)
        .await;
    for (status, matched) in [("assigned", 180), ("redeemed", 78)] {
        Mock::given(method("GET"))
            .and(path(codes_path(PROJECT, POOL)))
            .and(query_param("status", status))
            .and(query_param("count", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_delay(Duration::from_millis(300))
                    .set_body_json(json!({"success": true, "data": [], "matched": matched})),
            )
            .mount(&api)
            .await;
    }
    api
}

#[tokio::test]
async fn stats_make_three_requests_at_once() {
    let api = slow_counts_api().await;
    let s = connect_api(&api.uri()).await;
    let started = Instant::now();
    let stats = call(
        &s,
        "get_voucher_pool_stats",
        json!({"project_id": PROJECT, "pool_id": POOL}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        stats["data"],
        json!({"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
               "assigned": 180, "redeemed": 78})
    );
    let requests = api.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    assert!(
        took < Duration::from_millis(800),
        "not concurrent: {took:?}"
    );
}

/// 6b: the same question within a minute is answered from what was read:
/// no request; `find_voucher_codes` on pages a stats call did not read
/// still asks; `list_voucher_codes` always asks.
#[tokio::test]
async fn a_repeated_question_makes_no_request_and_says_as_of_when() {
    let api = slow_counts_api().await;
    let s = connect_api(&api.uri()).await;
    let args = json!({"project_id": PROJECT, "pool_id": POOL});
    let first = call(&s, "get_voucher_pool_stats", args.clone()).await;
    let again = call(&s, "get_voucher_pool_stats", args.clone()).await;
    assert_eq!(first["data"], again["data"]);
    let as_of = first["as_of"].as_str().expect("as_of on success");
    assert_eq!(again["as_of"], as_of);
    let read_at =
        time::OffsetDateTime::parse(as_of, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    let age = time::OffsetDateTime::now_utc() - read_at;
    assert!(
        age.whole_seconds() >= 0 && age.whole_seconds() < 30,
        "{as_of}"
    );
    assert_eq!(api.received_requests().await.unwrap().len(), 3);
    // The list tools ask every time.
    let listed = call(
        &s,
        "list_voucher_codes",
        json!({"project_id": PROJECT, "pool_id": POOL, "count": 1, "status": "redeemed"}),
    )
    .await;
    assert_eq!(listed["matched"], 78);
    let listed = call(
        &s,
        "list_voucher_codes",
        json!({"project_id": PROJECT, "pool_id": POOL, "count": 1, "status": "redeemed"}),
    )
    .await;
    assert_eq!(listed["matched"], 78);
    assert_eq!(api.received_requests().await.unwrap().len(), 5);
}

fn code(code: &str, status: &str, assigned: Option<f64>, redeemed: Option<f64>) -> Value {
    json!({"code": code, "status": status, "assigned_time": assigned, "redeemed_time": redeemed})
}

/// A fake pool of `codes`, served in pages as the API would, honouring
/// `skip`, `count` and `status`.
struct PagedPool {
    codes: Vec<Value>,
    /// The page at this `skip` is answered after this long.
    slow: Option<(usize, Duration)>,
    /// The most codes one page holds, whatever `count` asks for.
    page_cap: Option<usize>,
    /// Answers every page as if `skip` were 0.
    ignores_skip: bool,
}

impl wiremock::Respond for PagedPool {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let param = |key: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let skip: usize = param("skip").and_then(|v| v.parse().ok()).unwrap_or(0);
        let skip = if self.ignores_skip { 0 } else { skip };
        let count: usize = param("count").and_then(|v| v.parse().ok()).unwrap_or(20);
        let count = self.page_cap.map_or(count, |cap| count.min(cap));
        let status = param("status");
        let population: Vec<&Value> = self
            .codes
            .iter()
            .filter(|c| status.as_deref().is_none_or(|s| c["status"] == s))
            .collect();
        let data: Vec<&Value> = population.iter().skip(skip).take(count).copied().collect();
        let answer = ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "data": data, "matched": population.len(), "skip": skip, "limit": count
        }));
        match self.slow {
            Some((slow, delay)) if slow == skip => answer.set_delay(delay),
            _ => answer,
        }
    }
}

async fn paged_api(codes: Vec<Value>) -> MockServer {
    paged_api_slow_at(codes, None).await
}

async fn paged_api_slow_at(codes: Vec<Value>, slow: Option<(usize, Duration)>) -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(codes_path(PROJECT, POOL)))
        .respond_with(PagedPool {
            codes,
            slow,
            page_cap: None,
            ignores_skip: false,
        })
        .mount(&api)
        .await;
    api
}

/// The `skip`, `count` and `status` of every request the fake received, in
/// the order they came.
async fn asked(api: &MockServer) -> Vec<(String, String, String)> {
    let requests = api.received_requests().await.unwrap();
    requests
        .iter()
        .map(|r| {
            let q = |k: &str| {
                r.url
                    .query_pairs()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (q("skip"), q("count"), q("status"))
        })
        .collect()
}

/// Pages of 1000 at these skips, without a status.
fn pages_at(skips: &[u64]) -> Vec<(String, String, String)> {
    skips
        .iter()
        .map(|s| (s.to_string(), "1000".to_owned(), String::new()))
        .collect()
}

async fn find(s: &Session, args: Value) -> Value {
    let mut all = json!({"project_id": PROJECT, "pool_id": POOL});
    all.as_object_mut()
        .unwrap()
        .extend(args.as_object().unwrap().clone());
    call(s, "find_voucher_codes", all).await
}

fn codes_of(envelope: &Value) -> Vec<String> {
    envelope["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn time_bounds_include_after_exclude_before_and_never_match_null_times() {
    // 2024-06-10T06:13:20Z is 1718000000.
    let api = paged_api(vec![
        code(
            "A-1",
            "redeemed",
            Some(1_717_990_000.0),
            Some(1_718_000_000.0),
        ),
        code(
            "A-2",
            "redeemed",
            Some(1_717_990_000.0),
            Some(1_718_000_000.5),
        ),
        code("A-3", "assigned", Some(1_718_000_000.0), None),
        code("A-4", "available", None, None),
        code(
            "A-5",
            "redeemed",
            Some(1_717_000_000.0),
            Some(1_718_003_600.0),
        ),
    ])
    .await;
    let s = connect_api(&api.uri()).await;
    let at = "2024-06-10T06:13:20Z";
    let found = find(&s, json!({"redeemed_after": at})).await;
    assert_eq!(codes_of(&found), ["A-1", "A-2", "A-5"]);
    assert_eq!(
        (
            found["scanned"].clone(),
            found["complete"].clone(),
            found["next_skip"].clone()
        ),
        (json!(5), json!(true), Value::Null)
    );
    let found = find(&s, json!({"redeemed_before": at})).await;
    assert_eq!(codes_of(&found), Vec::<String>::new());
    let found = find(
        &s,
        json!({"redeemed_after": "2024-06-10T08:13:20.5+02:00", "redeemed_before": 1_718_003_600}),
    )
    .await;
    assert_eq!(codes_of(&found), ["A-2"]);
    let found = find(&s, json!({"assigned_after": "1718000000"})).await;
    assert_eq!(codes_of(&found), ["A-3"]);
    let found = find(
        &s,
        json!({"assigned_before": "2024-06-10T06:13:20Z", "redeemed_after": 0}),
    )
    .await;
    assert_eq!(codes_of(&found), ["A-1", "A-2", "A-5"]);
    let found = find(&s, json!({"code": "a-4"})).await;
    assert_eq!(codes_of(&found), ["A-4"]);
    let found = find(&s, json!({"code_prefix": "a-", "status": "assigned"})).await;
    assert_eq!(codes_of(&found), ["A-3"]);
    assert_eq!(found["matched"], 1);
}

fn many_codes(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let status = ["available", "assigned", "redeemed"][i % 3];
            let assigned = (i % 3 != 0).then_some(1_700_000_000.0 + i as f64);
            let redeemed = (i % 3 == 2).then_some(1_700_100_000.0 + i as f64);
            code(&format!("C-{i:05}"), status, assigned, redeemed)
        })
        .collect()
}

#[tokio::test]
async fn the_status_filter_goes_on_every_page_and_max_scan_bounds_codes_and_pages() {
    let api = paged_api(many_codes(5000)).await;
    let s = connect_api(&api.uri()).await;
    let found = find(
        &s,
        json!({"status": "redeemed", "code_prefix": "nothing", "max_scan": 1500}),
    )
    .await;
    assert_eq!(
        (
            found["scanned"].clone(),
            found["complete"].clone(),
            found["next_skip"].clone()
        ),
        (json!(1500), json!(false), json!(1500))
    );
    assert_eq!(found["matched"], 1666);
    assert_eq!(
        asked(&api).await,
        [
            ("0".into(), "1000".into(), "redeemed".into()),
            ("1000".into(), "500".into(), "redeemed".into())
        ]
    );
}

#[tokio::test]
async fn a_page_read_ahead_that_answers_first_is_still_taken_in_order() {
    let codes = many_codes(4000);
    let expected: Vec<String> = codes[..3000]
        .iter()
        .filter(|c| c["redeemed_time"].is_number())
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 1000);
    // The second page is slow: the third, asked for ahead, answers first.
    let api = paged_api_slow_at(codes, Some((1000, Duration::from_millis(300)))).await;
    let s = connect_api(&api.uri()).await;
    let found = find(
        &s,
        json!({"redeemed_after": 0, "limit": 1000, "max_scan": 3000}),
    )
    .await;
    assert!(
        codes_of(&found) == expected,
        "codes lost, repeated or out of order"
    );
    assert_eq!(
        (
            found["scanned"].clone(),
            found["complete"].clone(),
            found["next_skip"].clone()
        ),
        (json!(3000), json!(false), json!(3000))
    );
    let mut requests = asked(&api).await;
    requests.sort();
    assert_eq!(requests, pages_at(&[0, 1000, 2000]));
}

#[tokio::test]
async fn pages_are_read_ahead_only_while_the_matches_leave_room_for_them() {
    // A third of the codes match, evenly: 333 a page. With room for 700,
    // no page is asked for before it is needed, and none is left unread.
    let api = paged_api(many_codes(5000)).await;
    let s = connect_api(&api.uri()).await;
    let found = find(&s, json!({"redeemed_after": 0, "limit": 700})).await;
    assert_eq!(codes_of(&found).len(), 700);
    assert_eq!(found["next_skip"], 2100);
    assert_eq!(asked(&api).await, pages_at(&[0, 1000, 2000]));

    // No match at all: every page after the second is asked for while the
    // one before it is read, each once, and none past the pool's end.
    let api = paged_api(many_codes(5000)).await;
    let s = connect_api(&api.uri()).await;
    let found = find(&s, json!({"code": "none"})).await;
    assert_eq!(
        (found["scanned"].clone(), found["complete"].clone()),
        (json!(5000), json!(true))
    );
    let mut requests = asked(&api).await;
    requests.sort();
    assert_eq!(requests, pages_at(&[0, 1000, 2000, 3000, 4000]));
}

#[tokio::test]
async fn a_dense_page_after_sparse_ones_leaves_at_most_one_page_unread() {
    // The first page matches nothing, the second everything: the third was
    // already asked for when the second filled the limit.
    let mut codes: Vec<Value> = (0..1000)
        .map(|i| code(&format!("A-{i:05}"), "available", None, None))
        .collect();
    codes.extend((0..2000).map(|i| {
        code(
            &format!("R-{i:05}"),
            "redeemed",
            Some(1_700_000_000.0),
            Some(1_700_000_100.0),
        )
    }));
    let api = paged_api(codes).await;
    let s = connect_api(&api.uri()).await;
    let found = find(&s, json!({"redeemed_after": 0, "limit": 100})).await;
    assert_eq!(codes_of(&found).len(), 100);
    assert_eq!(codes_of(&found)[0], "R-00000");
    assert_eq!(
        (found["scanned"].clone(), found["next_skip"].clone()),
        (json!(1100), json!(1100))
    );
    let mut requests = asked(&api).await;
    requests.sort();
    assert_eq!(requests, pages_at(&[0, 1000, 2000]));
}

#[tokio::test]
async fn a_limit_stops_early_and_a_resumed_call_loses_and_repeats_nothing() {
    let codes = many_codes(2500);
    let expected: Vec<String> = codes
        .iter()
        .filter(|c| c["assigned_time"].is_number())
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect();
    let api = paged_api(codes).await;
    let s = connect_api(&api.uri()).await;
    let mut got = Vec::new();
    let mut skip = json!(0);
    let mut calls = 0;
    loop {
        let found = find(
            &s,
            json!({"assigned_after": 0, "skip": skip, "limit": 300, "max_scan": 2000}),
        )
        .await;
        calls += 1;
        got.extend(codes_of(&found));
        if found["complete"] == true {
            assert_eq!(found["next_skip"], Value::Null);
            break;
        }
        assert!(
            codes_of(&found).len() == 300 || found["scanned"] == 2000,
            "{found}"
        );
        skip = found["next_skip"].clone();
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "codes lost, repeated or out of order");
    assert!(calls >= 3, "{calls}");
}

async fn odd_api(codes: Vec<Value>, page_cap: Option<usize>, ignores_skip: bool) -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(codes_path(PROJECT, POOL)))
        .respond_with(PagedPool {
            codes,
            slow: None,
            page_cap,
            ignores_skip,
        })
        .mount(&api)
        .await;
    api
}

#[tokio::test]
async fn a_short_page_is_not_the_end_while_the_count_says_more() {
    // The API gives at most 100 codes a page, whatever is asked, and
    // counts 3000: the scan is not complete, and resumes where it stopped.
    let api = odd_api(many_codes(3000), Some(100), false).await;
    let s = connect_api(&api.uri()).await;
    let found = find(&s, json!({"code": "NO-SUCH-CODE"})).await;
    assert_eq!(found["success"], true, "{found}");
    assert_eq!(found["complete"], false, "{found}");
    assert_eq!(found["scanned"], 100);
    assert_eq!(found["matched"], 3000);
    assert_eq!(found["next_skip"], 100);
}

#[tokio::test]
async fn an_api_that_ignores_skip_is_noticed_not_counted_twice() {
    let api = odd_api(many_codes(3000), None, true).await;
    let s = connect_api(&api.uri()).await;
    let found = find(&s, json!({"code": "NO-SUCH-CODE"})).await;
    assert_eq!(found["success"], false, "{found}");
    assert_eq!(found["scanned"], 1000);
    let error = found["error"].as_str().unwrap();
    assert!(
        error.contains("skip=1000") && error.contains("ignored skip"),
        "{error}"
    );
}

#[tokio::test]
async fn a_fault_on_the_third_page_fails_saying_how_far_the_scan_came() {
    let api = MockServer::start().await;
    let page = |skip: usize| {
        let data: Vec<Value> = many_codes(skip + 1000).split_off(skip);
        json!({"success": true, "data": data, "matched": 5000})
    };
    for skip in [0usize, 1000] {
        Mock::given(method("GET"))
            .and(path(codes_path(PROJECT, POOL)))
            .and(query_param("skip", skip.to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(skip)))
            .mount(&api)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(codes_path(PROJECT, POOL)))
        .and(query_param("skip", "2000"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"success": false, "error": "boom"})),
        )
        .mount(&api)
        .await;
    let s = connect_api(&api.uri()).await;
    let found = find(&s, json!({"code": "none"})).await;
    assert_eq!(
        found,
        json!({"success": false, "data": [], "scanned": 2000, "matched": null, "complete": false,
               "next_skip": null, "as_of": null,
               "error": "Bloomreach rejected the request as invalid (HTTP 400): boom"})
    );
}

#[tokio::test]
async fn every_argument_error_names_the_argument_and_makes_no_request() {
    let api = paged_api(many_codes(10)).await;
    let s = connect_api(&api.uri()).await;
    for (args, error) in [
        (json!({"limit": 0}), "limit must be between 1 and 1000 (got 0)"),
        (json!({"limit": 1001}), "limit must be between 1 and 1000 (got 1001)"),
        (json!({"max_scan": 0}), "max_scan must be between 1 and 100000 (got 0)"),
        (json!({"max_scan": "100001"}), "max_scan must be between 1 and 100000 (got 100001)"),
        (json!({"skip": -1}), "skip must be >= 0 (got -1)"),
        (json!({"code": 7}), "code must be a non-empty string (got 7)"),
        (json!({"code_prefix": ""}), "code_prefix must be a non-empty string (got \"\")"),
        (json!({"status": "used"}), "status must be one of available, assigned, redeemed (got \"used\")"),
        (
            json!({"redeemed_after": "yesterday"}),
            "redeemed_after must be an instant: RFC 3339 with an offset or Z, like 2026-07-01T00:00:00Z, or Unix seconds (got \"yesterday\")",
        ),
        (
            json!({"assigned_before": "2026-07-01T00:00:00"}),
            "assigned_before must be an instant: RFC 3339 with an offset or Z, like 2026-07-01T00:00:00Z, or Unix seconds (got \"2026-07-01T00:00:00\")",
        ),
        (
            json!({"assigned_after": "2026-07-02T00:00:00Z", "assigned_before": "2026-07-01T00:00:00Z"}),
            "assigned_after must be before assigned_before (got \"2026-07-02T00:00:00Z\")",
        ),
        (
            json!({"redeemed_after": 100, "redeemed_before": 100}),
            "redeemed_after must be before redeemed_before (got 100)",
        ),
    ] {
        let found = find(&s, args.clone()).await;
        assert_eq!(
            found,
            json!({"success": false, "data": [], "scanned": 0, "matched": null, "complete": false,
                   "next_skip": null, "as_of": null, "error": error}),
            "{args}"
        );
    }
    assert!(api.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_scan_reports_progress_after_each_page() {
    let mut s = RawSession::start(&["--demo"], &[]);
    s.initialize("2025-11-25").await;
    let mut params = call_params(
        "find_voucher_codes",
        json!({"project_id": "demo", "pool_id": "summer20", "code": "none"}),
    );
    params["_meta"] = json!({"progressToken": "scan-1"});
    let response = s.roundtrip(7, "tools/call", params).await;
    assert_eq!(response["result"]["structuredContent"]["scanned"], 2500);
    let progress: Vec<(Value, Value)> = s
        .skipped
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            (
                m["params"]["progress"].clone(),
                m["params"]["total"].clone(),
            )
        })
        .collect();
    assert_eq!(
        progress,
        [
            (json!(1000.0), json!(2500.0)),
            (json!(2000.0), json!(2500.0)),
            (json!(2500.0), json!(2500.0))
        ]
    );
}

/// The seed's question, "how many SUMMER20 codes are left, and which were
/// redeemed yesterday?", on the demo data: two calls, a few thousand
/// characters.
#[tokio::test]
async fn the_seed_question_is_answered_in_two_calls_under_5000_characters() {
    let s = connect(&["--demo"], &[]).await;
    let stats = crate::support::mcp::call_raw(
        &s,
        "get_voucher_pool_stats",
        json!({"project_id": "demo", "pool_id": "summer20"}),
    )
    .await;
    let found = crate::support::mcp::call_raw(
        &s,
        "find_voucher_codes",
        json!({"project_id": "demo", "pool_id": "summer20", "status": "redeemed",
               "redeemed_after": "2026-07-15T00:00:00Z", "redeemed_before": "2026-07-16T00:00:00Z"}),
    )
    .await;
    let text = |r: &Value| r["content"][0]["text"].as_str().unwrap().to_owned();
    let (stats_text, found_text) = (text(&stats), text(&found));
    let found: Value = serde_json::from_str(&found_text).unwrap();
    assert_eq!(found["complete"], true);
    assert!(!found["data"].as_array().unwrap().is_empty(), "{found}");
    let characters = stats_text.chars().count() + found_text.chars().count();
    eprintln!("the seed question: {characters} characters in two calls");
    assert!(characters < 5000, "{characters} characters");
}

/// Under 2026-07-28 the tool list says it may be cached; earlier
/// protocols get the list as they know it.
#[tokio::test]
async fn tools_list_may_be_cached_under_2026_07_28_only() {
    let discover = crate::support::mcp::connect_discover(&["--demo"], &[]).await;
    let listed = discover.list_tools(None).await.expect("tools/list");
    assert_eq!(listed.ttl_ms, Some(86_400_000));
    let older = connect(&["--demo"], &[]).await;
    let listed = older.list_tools(None).await.expect("tools/list");
    assert_eq!(listed.ttl_ms, None);
}

/// `list_voucher_codes` steers an assistant to the question tools.
#[tokio::test]
async fn list_voucher_codes_points_to_the_question_tools_for_counts_and_searches() {
    let s = connect(&["--demo"], &[]).await;
    let tools = crate::support::mcp::tools_by_name(&s).await;
    let description = tools["list_voucher_codes"].description.as_deref().unwrap();
    for needle in [
        "about 300 codes",
        "get_voucher_pool_stats",
        "find_voucher_codes",
    ] {
        assert!(description.contains(needle), "{needle}: {description}");
    }
}
