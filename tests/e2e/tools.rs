//! The tools as an assistant meets them, through rmcp's client: the built
//! binary in front of a wiremock fake of the Bloomreach API (or `--demo`).
//! Every envelope is checked against its tool's outputSchema.

use std::time::{Duration, Instant};

use base64::Engine;
use rmcp::model::ProtocolVersion;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::binary::{api_args, api_env};
use crate::support::fake_api::*;
use crate::support::json::{args, field_of_each, object, sorted_strings};
use crate::support::mcp::*;
use crate::support::raw_http::closed_port;
use crate::support::{KEY_ID, POOL, PROJECT, SECRET, SERVER_NAME, SERVER_VERSION, TOOL_NAMES};

/// One tool call against a fake API, and what came of it.
struct Called {
    /// The result's envelope, checked against the tool's outputSchema.
    envelope: Value,
    /// Every request the fake API received.
    requests: Vec<Request>,
    /// From sending the call to its result.
    took: Duration,
}

/// Starts the binary against `api` with the test credentials, calls `tool`
/// with `arguments` and returns what came of it.
async fn call_against(api: &MockServer, tool: &str, arguments: Value) -> Called {
    call_on(connect_api(&api.uri()).await, api, tool, arguments).await
}

/// [`call_against`] on a `session` started against `api` by the caller.
async fn call_on(session: Session, api: &MockServer, tool: &str, arguments: Value) -> Called {
    let (mut answers, requests) = timed_calls_on(session, api, &[(tool, arguments)]).await;
    let (envelope, took) = answers.remove(0);
    Called {
        envelope,
        requests,
        took,
    }
}

/// Starts the binary against `api` with the test credentials, makes `calls`
/// in turn on one session, and returns their envelopes and every request
/// the fake API received.
async fn calls_against(api: &MockServer, calls: &[(&str, Value)]) -> (Vec<Value>, Vec<Request>) {
    calls_on(connect_api(&api.uri()).await, api, calls).await
}

/// [`calls_against`] on a `session` started against `api` by the caller.
async fn calls_on(
    session: Session,
    api: &MockServer,
    calls: &[(&str, Value)],
) -> (Vec<Value>, Vec<Request>) {
    let (answers, requests) = timed_calls_on(session, api, calls).await;
    (answers.into_iter().map(|(e, _)| e).collect(), requests)
}

async fn timed_calls_on(
    session: Session,
    api: &MockServer,
    calls: &[(&str, Value)],
) -> (Vec<(Value, Duration)>, Vec<Request>) {
    let mut answers = Vec::with_capacity(calls.len());
    for (tool, arguments) in calls {
        let started = Instant::now();
        let envelope = call(&session, tool, arguments.clone()).await;
        answers.push((envelope, started.elapsed()));
    }
    let requests = requests(api).await;
    session.cancel().await.unwrap();
    (answers, requests)
}

/// A session with the demo data.
async fn demo() -> Session {
    connect(&["--demo"], &[]).await
}

// ---------------------------------------------------------------------------
// tools/list and the handshake
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tools_list_has_exactly_the_read_only_tools_and_the_server_names_itself() {
    let session = demo().await;
    let info = session.peer_info().expect("server info after initialize");
    let server_info = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server_info.name, SERVER_NAME);
    assert_eq!(server_info.version, SERVER_VERSION);
    let instructions = info.instructions.as_deref().expect("instructions");
    assert!(
        instructions.contains("list_voucher_pools"),
        "{instructions}"
    );
    assert!(info.capabilities.tools.is_some());

    let tools = session.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut expected = TOOL_NAMES.to_vec();
    expected.sort_unstable();
    assert_eq!(sorted, expected);

    for tool in &tools {
        let wire = serde_json::to_value(tool).unwrap();
        let name = tool.name.as_ref();
        assert!(
            wire["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name} title"
        );
        assert!(
            wire["description"].as_str().is_some_and(|d| d.len() > 40),
            "{name} description"
        );
        assert_eq!(wire["inputSchema"]["type"], "object", "{name} inputSchema");
        assert_eq!(
            wire["outputSchema"]["type"], "object",
            "{name} outputSchema"
        );
        let annotations = &wire["annotations"];
        assert_eq!(annotations["readOnlyHint"], true, "{name}");
        assert_eq!(annotations["destructiveHint"], false, "{name}");
        assert_eq!(annotations["idempotentHint"], true, "{name}");
        assert_eq!(annotations["openWorldHint"], true, "{name}");
        // The outputSchema must compile.
        jsonschema::validator_for(&wire["outputSchema"])
            .unwrap_or_else(|e| panic!("{name} outputSchema compiles: {e}"));
        jsonschema::validator_for(&wire["inputSchema"])
            .unwrap_or_else(|e| panic!("{name} inputSchema compiles: {e}"));
    }
    session.cancel().await.unwrap();
}

/// Walks a schema and collects every non-portable construct.
fn portability_problems(schema: &Value, at: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for key in ["$ref", "$defs", "$schema", "definitions"] {
                if map.contains_key(key) {
                    out.push(format!("{at}: has {key}"));
                }
            }
            if let Some(format) = map.get("format").and_then(Value::as_str) {
                if format.starts_with("int") || format.starts_with("uint") {
                    out.push(format!("{at}: format {format}"));
                }
            }
            if map.get("type").is_some_and(Value::is_array) {
                out.push(format!("{at}: type is an array"));
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(branches)) = map.get(key) {
                    if branches.iter().any(|b| b["type"] == "null") {
                        out.push(format!("{at}: {key} with a null branch"));
                    }
                }
            }
            for (k, v) in map {
                portability_problems(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                portability_problems(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn input_schemas_are_portable_and_carry_their_bounds() {
    let session = demo().await;
    let tools = tools_by_name(&session).await;
    for (name, tool) in &tools {
        let schema = input_schema(tool);
        let mut problems = Vec::new();
        portability_problems(&schema, name, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}\n{schema:#}");
    }

    let schema = |name: &str| input_schema(&tools[name]);
    assert_eq!(schema("list_projects")["properties"], json!({}));

    let pools = schema("list_voucher_pools");
    assert_eq!(pools["required"], json!(["project_id"]));
    assert_eq!(pools["properties"]["project_id"]["type"], "string");
    assert_eq!(pools["properties"]["project_id"]["minLength"], 1);

    let pool = schema("get_voucher_pool");
    assert_eq!(sorted_strings(&pool["required"]), ["pool_id", "project_id"]);
    for id in ["project_id", "pool_id"] {
        assert_eq!(pool["properties"][id]["type"], "string");
        assert_eq!(pool["properties"][id]["minLength"], 1);
    }

    let codes = schema("list_voucher_codes");
    assert_eq!(
        sorted_strings(&codes["required"]),
        ["pool_id", "project_id"]
    );
    let props = &codes["properties"];
    for id in ["project_id", "pool_id"] {
        assert_eq!(props[id]["minLength"], 1, "{id}");
    }
    assert_eq!(props["count"]["type"], "integer");
    assert_eq!(props["count"]["minimum"], 1);
    assert_eq!(props["count"]["maximum"], 1000);
    assert_eq!(props["count"]["default"], 20);
    assert_eq!(props["skip"]["type"], "integer");
    assert_eq!(props["skip"]["minimum"], 0);
    assert_eq!(props["skip"]["default"], 0);
    assert_eq!(props["status"]["type"], "string");
    assert!(props["status"]["enum"].is_array(), "status enum");
    assert_eq!(
        sorted_strings(&props["status"]["enum"]),
        ["assigned", "available", "redeemed"]
    );
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn code_status_is_an_open_string_in_the_output_schema() {
    let session = demo().await;
    let tools = tools_by_name(&session).await;
    let schema = output_schema(&tools["list_voucher_codes"]);
    let envelope = json!({
        "success": true,
        "data": [{"code": "X", "status": "expired", "assigned_time": null, "redeemed_time": null,
                  "assigned_at": null, "redeemed_at": null}],
        "matched": 1, "matched_limited": false, "skip": 0, "limit": 20, "error": null
    });
    assert_conforms(&schema, &envelope);
    session.cancel().await.unwrap();
}

// ---------------------------------------------------------------------------
// Success against the fake API
// ---------------------------------------------------------------------------

fn expected_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"))
    )
}

#[tokio::test]
async fn list_voucher_pools_maps_the_example_answer_and_sends_auth_accept_and_user_agent() {
    let api = fake_api().await;
    let called = call_against(
        &api,
        "list_voucher_pools",
        args(json!({"project_id": PROJECT})),
    )
    .await;
    assert_eq!(
        called.envelope,
        json!({"success": true, "data": expected_pools(), "error": null})
    );
    let reqs = called.requests;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.url.path(), pools_path(PROJECT));
    assert_eq!(req.headers["authorization"], expected_auth().as_str());
    assert_eq!(req.headers["accept"], "application/json");
    assert_eq!(
        req.headers["user-agent"],
        format!("{SERVER_NAME}/{SERVER_VERSION}").as_str()
    );
}

#[tokio::test]
async fn get_voucher_pool_maps_the_example_answer_with_company_id_and_used_by_as_given() {
    let api = fake_api().await;
    let called = call_against(
        &api,
        "get_voucher_pool",
        args(json!({"project_id": PROJECT, "pool_id": POOL})),
    )
    .await;
    assert_eq!(
        called.envelope,
        json!({"success": true, "data": expected_pool(), "error": null})
    );
    assert_eq!(called.requests[0].url.path(), pool_path(PROJECT, POOL));
}

#[tokio::test]
async fn list_voucher_codes_maps_the_example_answer_with_rfc3339_times_and_paging() {
    let api = fake_api().await;
    let called = call_against(
        &api,
        "list_voucher_codes",
        args(json!({"project_id": PROJECT, "pool_id": POOL})),
    )
    .await;
    assert_eq!(
        called.envelope,
        json!({
            "success": true,
            "data": expected_codes(),
            "matched": 1000,
            "matched_limited": false,
            "skip": 0,
            "limit": 20,
            "error": null
        })
    );
    let reqs = called.requests;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url.path(), codes_path(PROJECT, POOL));
    assert_eq!(reqs[0].url.query(), Some("skip=0&count=20"));
}

#[tokio::test]
async fn a_misspelled_argument_is_refused_naming_the_closest_and_nothing_is_sent() {
    let api = fake_api().await;
    for (tool, extra, closest) in [
        (
            "list_voucher_codes",
            json!({"cout": 5, "skip": 40}),
            Some("count"),
        ),
        (
            "find_voucher_codes",
            json!({"stauts": "redeemed"}),
            Some("status"),
        ),
        (
            "find_voucher_codes",
            json!({"redeemed_afer": 0}),
            Some("redeemed_after"),
        ),
        ("get_voucher_pool", json!({"zzz": 1}), None),
    ] {
        let mut a = json!({"project_id": PROJECT, "pool_id": POOL});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let called = call_against(&api, tool, args(a)).await;
        let e = &called.envelope;
        assert_eq!(e["success"], false, "{tool}: {e}");
        let error = e["error"].as_str().unwrap();
        let name = extra
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "skip")
            .unwrap();
        assert!(
            error.starts_with(&format!("{name} is not an argument of this tool")),
            "{error}"
        );
        match closest {
            Some(c) => assert!(error.contains(&format!("did you mean {c}?")), "{error}"),
            None => assert!(!error.contains("did you mean"), "{error}"),
        }
        assert!(error.contains("project_id"), "{error}");
        assert!(called.requests.is_empty(), "{tool}: a request was sent");
        if tool == "list_voucher_codes" {
            assert_eq!(
                (e["skip"].clone(), e["limit"].clone()),
                (json!(40), json!(20))
            );
        }
    }
}

#[tokio::test]
async fn list_voucher_codes_sends_status_and_paging_asked_for() {
    let api = fake_api().await;
    let called = call_against(
        &api,
        "list_voucher_codes",
        args(json!({"project_id": PROJECT, "pool_id": POOL, "skip": 40, "count": 7, "status": "redeemed"})),
    )
    .await;
    assert_eq!(called.envelope["success"], true);
    assert_eq!(
        called.requests[0].url.query(),
        Some("skip=40&count=7&status=redeemed")
    );
}

#[tokio::test]
async fn list_projects_lists_the_configured_tokens_without_calling_the_api() {
    let api = fake_api().await;
    let mut a = api_args(&api.uri());
    a.extend([
        "--project-token".into(),
        "shop-eu=Main store, shop-us".into(),
    ]);
    let session = connect(&a, &api_env()).await;
    let called = call_on(session, &api, "list_projects", json!({})).await;
    assert_eq!(
        called.envelope,
        json!({"success": true, "data": [
            {"id": "shop-eu", "name": "Main store", "organization": null, "workspace": null},
            {"id": "shop-us", "name": "shop-us", "organization": null, "workspace": null}
        ], "error": null})
    );
    assert!(called.requests.is_empty());
}

#[tokio::test]
async fn ids_with_slashes_are_sent_as_one_encoded_segment() {
    let api = fake_api_answering(ResponseTemplate::new(200).set_body_json(pool_body())).await;
    let called = call_against(
        &api,
        "get_voucher_pool",
        args(json!({"project_id": "../x", "pool_id": "a/b?c#d"})),
    )
    .await;
    assert_eq!(called.envelope["success"], true);
    let reqs = called.requests;
    assert_eq!(
        reqs[0].url.path(),
        "/data/v2/projects/..%2Fx/vouchers/pools/a%2Fb%3Fc%23d"
    );
    assert_eq!(reqs[0].url.query(), None);
}

// ---------------------------------------------------------------------------
// Failure envelopes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn count_out_of_range_is_an_argument_error_and_nothing_goes_upstream() {
    let api = fake_api().await;
    let called = call_against(
        &api,
        "list_voucher_codes",
        args(json!({"project_id": PROJECT, "pool_id": POOL, "skip": 3, "count": 5000})),
    )
    .await;
    let envelope = called.envelope;
    assert_eq!(
        envelope,
        json!({
            "success": false,
            "data": [],
            "matched": null,
            "matched_limited": null,
            "skip": 3,
            "limit": 5000,
            "error": envelope["error"].clone()
        })
    );
    let error = envelope["error"].as_str().unwrap();
    assert!(
        error.contains("count must be between 1 and 1000 (got 5000)"),
        "{error}"
    );
    assert!(called.requests.is_empty(), "nothing sent upstream");
}

#[tokio::test]
async fn bad_ids_are_argument_errors_for_every_tool_and_nothing_goes_upstream() {
    let api = fake_api().await;
    let cases = [
        ("list_voucher_pools", json!({}), "project_id"),
        (
            "list_voucher_pools",
            json!({"project_id": "  "}),
            "project_id",
        ),
        (
            "list_voucher_pools",
            json!({"project_id": ".."}),
            "project_id",
        ),
        (
            "get_voucher_pool",
            json!({"project_id": PROJECT, "pool_id": "."}),
            "pool_id",
        ),
        (
            "get_voucher_pool",
            json!({"project_id": PROJECT, "pool_id": 7}),
            "pool_id",
        ),
        (
            "list_voucher_codes",
            json!({"project_id": PROJECT, "pool_id": ""}),
            "pool_id",
        ),
        (
            "list_voucher_codes",
            json!({"project_id": PROJECT, "pool_id": POOL, "skip": -1}),
            "skip",
        ),
        (
            "list_voucher_codes",
            json!({"project_id": PROJECT, "pool_id": POOL, "count": 2.5}),
            "count",
        ),
        (
            "list_voucher_codes",
            json!({"project_id": PROJECT, "pool_id": POOL, "status": "used"}),
            "status",
        ),
    ];
    let calls: Vec<(&str, Value)> = cases
        .iter()
        .map(|(tool, arguments, _)| (*tool, arguments.clone()))
        .collect();
    let (envelopes, requests) = calls_against(&api, &calls).await;
    for ((tool, arguments, named), envelope) in cases.iter().zip(&envelopes) {
        assert_eq!(envelope["success"], false, "{tool} {arguments}");
        let expected_data = if *tool == "get_voucher_pool" {
            Value::Null
        } else {
            json!([])
        };
        assert_eq!(envelope["data"], expected_data, "{tool} {arguments}");
        let error = envelope["error"].as_str().unwrap();
        assert!(error.contains(named), "{tool} {arguments}: {error}");
    }
    assert!(requests.is_empty(), "nothing sent upstream");
}

#[tokio::test]
async fn count_as_digit_string_or_integral_float_is_accepted() {
    let api = fake_api().await;
    let counts = [json!("20"), json!(20.0), json!(" 20 ")];
    let calls: Vec<(&str, Value)> = counts
        .iter()
        .map(|count| {
            (
                "list_voucher_codes",
                args(json!({"project_id": PROJECT, "pool_id": POOL, "count": count, "skip": "0"})),
            )
        })
        .collect();
    let (envelopes, reqs) = calls_against(&api, &calls).await;
    for (count, envelope) in counts.iter().zip(&envelopes) {
        assert_eq!(envelope["success"], true, "count {count}: {envelope}");
        assert_eq!(envelope["data"], expected_codes());
    }
    assert_eq!(reqs.len(), 3);
    for r in reqs {
        assert_eq!(r.url.query(), Some("skip=0&count=20"));
    }
}

#[tokio::test]
async fn missing_credentials_answer_an_error_naming_both_settings() {
    let api = fake_api().await;
    let uri = api.uri();
    // Only the key ID: the secret is missing.
    let session = connect(&["--api-base-url", &uri, "--api-key-id", KEY_ID], &[]).await;
    let cases = [
        (
            "list_voucher_pools",
            json!({"project_id": PROJECT}),
            json!([]),
        ),
        (
            "get_voucher_pool",
            json!({"project_id": PROJECT, "pool_id": POOL}),
            Value::Null,
        ),
        (
            "list_voucher_codes",
            json!({"project_id": PROJECT, "pool_id": POOL, "count": 5}),
            json!([]),
        ),
    ];
    let calls: Vec<(&str, Value)> = cases
        .iter()
        .map(|(tool, arguments, _)| (*tool, arguments.clone()))
        .collect();
    let (envelopes, requests) = calls_on(session, &api, &calls).await;
    for ((tool, _, data), envelope) in cases.iter().zip(&envelopes) {
        assert_eq!(envelope["success"], false);
        assert_eq!(&envelope["data"], data);
        let error = envelope["error"].as_str().unwrap();
        assert!(error.contains("BLOOMREACH_API_KEY_ID"), "{error}");
        assert!(error.contains("BLOOMREACH_API_SECRET"), "{error}");
        if *tool == "list_voucher_codes" {
            assert_eq!(envelope["skip"], 0);
            assert_eq!(envelope["limit"], 5);
            assert_eq!(envelope["matched"], Value::Null);
            assert_eq!(envelope["matched_limited"], Value::Null);
        }
    }
    assert!(requests.is_empty());
}

#[tokio::test]
async fn upstream_404_names_the_id_asked_for() {
    let api = fake_api_answering(
        ResponseTemplate::new(404)
            .set_body_json(json!({"errors": {"code": 404, "description": "pool not found"}})),
    )
    .await;
    let (envelopes, requests) = calls_against(
        &api,
        &[
            (
                "get_voucher_pool",
                args(json!({"project_id": PROJECT, "pool_id": "gone-pool"})),
            ),
            (
                "list_voucher_codes",
                args(
                    json!({"project_id": PROJECT, "pool_id": "gone-pool", "skip": 10, "count": 50}),
                ),
            ),
        ],
    )
    .await;
    let envelope = &envelopes[0];
    assert_eq!(envelope["data"], Value::Null);
    let error = envelope["error"].as_str().unwrap();
    assert!(error.contains("\"gone-pool\""), "{error}");
    assert!(error.contains("not found"), "{error}");
    assert!(error.contains("pool not found"), "{error}");

    let envelope = &envelopes[1];
    assert_eq!(envelope["data"], json!([]));
    assert_eq!(
        (envelope["skip"].clone(), envelope["limit"].clone()),
        (json!(10), json!(50))
    );
    assert_eq!(envelope["matched"], Value::Null);
    assert!(envelope["error"].as_str().unwrap().contains("gone-pool"));
    // 404 is not retried.
    assert_eq!(requests.len(), 2);
}

#[tokio::test]
async fn upstream_401_says_the_credentials_were_refused_and_names_the_settings() {
    let api = fake_api_answering(
        ResponseTemplate::new(401)
            .set_body_json(json!({"success": false, "error": "access key not found"})),
    )
    .await;
    let called = call_against(
        &api,
        "list_voucher_pools",
        args(json!({"project_id": PROJECT})),
    )
    .await;
    assert_eq!(called.envelope["data"], json!([]));
    let error = called.envelope["error"].as_str().unwrap();
    assert!(error.contains("401"), "{error}");
    assert!(error.contains("BLOOMREACH_API_KEY_ID"), "{error}");
    assert!(error.contains("BLOOMREACH_API_SECRET"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
    assert!(!error.contains(KEY_ID), "{error}");
    assert_eq!(called.requests.len(), 1, "401 is not retried");
}

#[tokio::test]
async fn upstream_500_is_retried_then_reported_with_status_and_excerpt() {
    let api = fake_api_answering(
        ResponseTemplate::new(500)
            .insert_header("Retry-After", "0")
            .insert_header("Content-Type", "text/html")
            .set_body_string("<html><head><title>Oops</title></head><body><h1>Internal proxy failure</h1></body></html>"),
    )
    .await;
    let called = call_against(
        &api,
        "list_voucher_codes",
        args(json!({"project_id": PROJECT, "pool_id": POOL})),
    )
    .await;
    let envelope = called.envelope;
    assert_eq!(
        (
            envelope["data"].clone(),
            envelope["skip"].clone(),
            envelope["limit"].clone()
        ),
        (json!([]), json!(0), json!(20))
    );
    let error = envelope["error"].as_str().unwrap();
    assert!(error.contains("500"), "{error}");
    assert!(error.contains("Internal proxy failure"), "{error}");
    let n = called.requests.len();
    assert!(
        (2..=4).contains(&n),
        "retried, at most 3 times: {n} requests"
    );
}

#[tokio::test]
async fn upstream_200_with_success_false_or_junk_is_a_failure_envelope() {
    let api = MockServer::start().await;
    Mock::given(path(pools_path("false-project")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": false, "errors": {"_global": ["Project is disabled"]}}),
        ))
        .mount(&api)
        .await;
    Mock::given(path(pools_path("junk-project")))
        .respond_with(ResponseTemplate::new(200).set_body_string("<<not json>>"))
        .mount(&api)
        .await;
    let (envelopes, _) = calls_against(
        &api,
        &[
            ("list_voucher_pools", json!({"project_id": "false-project"})),
            ("list_voucher_pools", json!({"project_id": "junk-project"})),
        ],
    )
    .await;
    assert!(envelopes[0]["error"]
        .as_str()
        .unwrap()
        .contains("Project is disabled"));
    let error = envelopes[1]["error"].as_str().unwrap();
    assert!(error.contains("unexpected"), "{error}");
    assert!(error.contains("<<not json>>"), "{error}");
}

// ---------------------------------------------------------------------------
// --demo
// ---------------------------------------------------------------------------

#[tokio::test]
async fn demo_serves_all_four_tools() {
    let session = demo().await;

    let envelope = call(&session, "list_projects", json!({})).await;
    assert_eq!(envelope["success"], true);
    let projects = envelope["data"].as_array().unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0]["id"], "demo");

    let envelope = call(
        &session,
        "list_voucher_pools",
        json!({"project_id": "demo"}),
    )
    .await;
    assert_eq!(
        field_of_each(&envelope["data"], "id"),
        ["summer20", "welcome10", "ete-bienvenue", "black-friday"]
    );
    let pools = envelope["data"].as_array().unwrap();
    assert_eq!(pools[0]["total"], 2500);
    assert!(!pools[2]["name"].as_str().unwrap().is_ascii());
    assert_eq!(pools[3]["total"], 0);

    let envelope = call(
        &session,
        "get_voucher_pool",
        json!({"project_id": "demo", "pool_id": "summer20"}),
    )
    .await;
    assert_eq!(envelope["data"]["company_id"], "demo");
    assert_eq!(envelope["data"]["total"], 2500);
    assert!(!envelope["data"]["used_by"].as_array().unwrap().is_empty());

    let envelope = call(
        &session,
        "list_voucher_codes",
        json!({"project_id": "demo", "pool_id": "summer20", "skip": 2490, "count": 1000}),
    )
    .await;
    assert_eq!(envelope["matched"], 2500);
    assert_eq!(envelope["data"].as_array().unwrap().len(), 10);
    assert_eq!(
        (envelope["skip"].clone(), envelope["limit"].clone()),
        (json!(2490), json!(1000))
    );

    let envelope = call(
        &session,
        "list_voucher_codes",
        json!({"project_id": "demo", "pool_id": "black-friday"}),
    )
    .await;
    assert_eq!(envelope["data"], json!([]));
    assert_eq!(envelope["matched"], 0);

    let envelope = call(
        &session,
        "get_voucher_pool",
        json!({"project_id": "demo", "pool_id": "nope"}),
    )
    .await;
    assert_eq!(envelope["success"], false);
    assert!(envelope["error"].as_str().unwrap().contains("\"nope\""));
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn demo_status_filter_lists_only_that_status_and_counts_it_in_matched() {
    let session = demo().await;
    let pools = call(
        &session,
        "list_voucher_pools",
        json!({"project_id": "demo"}),
    )
    .await;
    let available = pools["data"][0]["available"].as_u64().unwrap();
    let mut sum = 0;
    for status in ["available", "assigned", "redeemed"] {
        let envelope = call(
            &session,
            "list_voucher_codes",
            json!({"project_id": "demo", "pool_id": "summer20", "status": status, "count": 1000}),
        )
        .await;
        let codes = envelope["data"].as_array().unwrap();
        assert!(!codes.is_empty());
        for code in codes {
            assert_eq!(code["status"], status);
            match status {
                "available" => {
                    assert_eq!(code["assigned_at"], Value::Null);
                    assert_eq!(code["redeemed_at"], Value::Null);
                }
                "assigned" => {
                    assert!(code["assigned_at"].as_str().unwrap().ends_with('Z'));
                    assert_eq!(code["redeemed_time"], Value::Null);
                }
                _ => assert!(code["redeemed_at"].as_str().unwrap().ends_with('Z')),
            }
        }
        let matched = envelope["matched"].as_u64().unwrap();
        if status == "available" {
            assert_eq!(matched, available);
        }
        sum += matched;
    }
    assert_eq!(sum, 2500);
    session.cancel().await.unwrap();
}

// ---------------------------------------------------------------------------
// Client eras
// ---------------------------------------------------------------------------

async fn era_session_works(session: Session, expected: ProtocolVersion) {
    let info = session.peer_info().expect("peer info");
    assert_eq!(info.protocol_version, expected);
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some(SERVER_NAME)
    );
    let tools = session.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), TOOL_NAMES.len());
    let envelope = call(
        &session,
        "list_voucher_codes",
        json!({"project_id": "demo", "pool_id": "welcome10", "count": 3}),
    )
    .await;
    assert_eq!(envelope["data"].as_array().unwrap().len(), 3);
    assert_eq!(envelope["matched"], 400);
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn a_2025_06_18_client_is_served() {
    let session = connect_at(&["--demo"], &[], ProtocolVersion::V_2025_06_18).await;
    era_session_works(session, ProtocolVersion::V_2025_06_18).await;
}

#[tokio::test]
async fn a_2025_11_25_client_is_served() {
    let session = connect_at(&["--demo"], &[], ProtocolVersion::V_2025_11_25).await;
    era_session_works(session, ProtocolVersion::V_2025_11_25).await;
}

#[tokio::test]
async fn a_2026_07_28_discover_client_is_served() {
    let session = connect_discover(&["--demo"], &[]).await;
    era_session_works(session, ProtocolVersion::V_2026_07_28).await;
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// Answers each codes request with one code named after its pool.
struct EchoPool;

impl Respond for EchoPool {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let pool = segments[segments.len() - 2];
        ResponseTemplate::new(200)
            .set_delay(Duration::from_millis(50))
            .set_body_json(json!({
                "success": true,
                "data": [{"code": format!("CODE-{pool}"), "status": "available", "assigned_time": null, "redeemed_time": null}],
                "matched": pool.trim_start_matches("pool-").parse::<u64>().unwrap(),
                "matched_limited": false, "skip": 0, "limit": 20
            }))
    }
}

#[tokio::test]
async fn two_hundred_concurrent_calls_each_get_their_own_answer() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/data/v2/projects/load/vouchers/pools/pool-\d+/codes$",
        ))
        .respond_with(EchoPool)
        .mount(&api)
        .await;
    let session = connect_api(&api.uri()).await;
    let tools = tools_by_name(&session).await;
    let tool = tools["list_voucher_codes"].clone();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let peer = session.peer().clone();
        let tool = tool.clone();
        set.spawn(async move {
            let params = rmcp::model::CallToolRequestParams::new("list_voucher_codes")
                .with_arguments(object(
                    json!({"project_id": "load", "pool_id": format!("pool-{i}")}),
                ));
            let result = peer.call_tool(params).await.expect("tools/call");
            let envelope = check_result(&tool, &serde_json::to_value(&result).unwrap());
            (i, envelope)
        });
    }
    let mut seen = 0;
    while let Some(joined) = set.join_next().await {
        let (i, envelope) = joined.expect("task");
        assert_eq!(envelope["success"], true, "{i}: {envelope}");
        assert_eq!(envelope["data"][0]["code"], format!("CODE-pool-{i}"));
        assert_eq!(envelope["matched"], i);
        seen += 1;
    }
    assert_eq!(seen, 200);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(requests(&api).await.len(), 200);
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn the_schema_check_is_not_vacuous() {
    let session = demo().await;
    let tools = tools_by_name(&session).await;
    for (tool, bad) in [
        (
            "list_voucher_pools",
            json!({"success": "yes", "data": [], "error": null}),
        ),
        (
            "list_voucher_pools",
            json!({"success": true, "data": [{"id": "p"}], "error": null}),
        ),
        ("get_voucher_pool", json!({"success": true, "data": null})),
        (
            "list_voucher_codes",
            json!({"success": true, "data": [], "matched": null, "matched_limited": null, "skip": 0, "error": null}),
        ),
    ] {
        let schema = output_schema(&tools[tool]);
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(!validator.is_valid(&bad), "{tool} accepted {bad}");
    }
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn upstream_429_with_a_long_retry_after_ends_at_once_saying_when_to_retry() {
    let api = fake_api_answering(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "120")
            .set_body_json(json!({"success": false, "error": "slow down"})),
    )
    .await;
    let called = call_against(&api, "list_voucher_pools", json!({"project_id": PROJECT})).await;
    assert!(called.took < Duration::from_secs(5));
    let error = called.envelope["error"].as_str().unwrap();
    assert!(error.contains("429"), "{error}");
    assert!(error.contains("rate limit"), "{error}");
    assert!(error.contains("120"), "{error}");
    assert_eq!(called.requests.len(), 1);
}

#[tokio::test]
async fn upstream_429_then_success_is_retried_transparently() {
    let api = rate_limited_once("0").await;
    let called = call_against(&api, "list_voucher_pools", json!({"project_id": PROJECT})).await;
    assert_eq!(
        called.envelope,
        json!({"success": true, "data": expected_pools(), "error": null})
    );
    assert_eq!(called.requests.len(), 2);
}

#[tokio::test]
async fn a_slow_api_times_out_naming_the_host_and_the_setting() {
    let api = fake_api_answering(
        ResponseTemplate::new(200)
            .set_delay(Duration::from_secs(5))
            .set_body_json(pools_body()),
    )
    .await;
    let uri = api.uri();
    let session = connect(
        &[
            "--api-base-url",
            &uri,
            "--api-key-id",
            KEY_ID,
            "--timeout-secs",
            "1",
        ],
        &api_env(),
    )
    .await;
    let called = call_on(
        session,
        &api,
        "list_voucher_pools",
        json!({"project_id": PROJECT}),
    )
    .await;
    assert!(called.took < Duration::from_secs(4), "{:?}", called.took);
    let error = called.envelope["error"].as_str().unwrap();
    let host = uri.trim_start_matches("http://");
    assert!(error.contains(host), "{error}");
    assert!(error.contains("BLOOMREACH_TIMEOUT_SECS"), "{error}");
}

#[tokio::test]
async fn a_refused_connection_is_reported_with_the_host() {
    let port = closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let session = connect(
        &["--api-base-url", &base, "--api-key-id", KEY_ID],
        &api_env(),
    )
    .await;
    let envelope = call(
        &session,
        "list_voucher_codes",
        json!({"project_id": PROJECT, "pool_id": POOL, "count": 3}),
    )
    .await;
    assert_eq!(envelope["limit"], 3);
    let error = envelope["error"].as_str().unwrap();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let api = fake_api_answering(
        ResponseTemplate::new(302).insert_header("Location", "http://127.0.0.2:9/steal"),
    )
    .await;
    let called = call_against(&api, "list_voucher_pools", json!({"project_id": PROJECT})).await;
    let error = called.envelope["error"].as_str().unwrap();
    assert!(error.contains("redirect"), "{error}");
    assert!(error.contains("127.0.0.2"), "{error}");
    assert_eq!(called.requests.len(), 1);
}
