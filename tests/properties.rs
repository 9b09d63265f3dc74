//! Property tests of the tool layer against the contract
//! (`/work/shared/CONTRACT.md`).
//!
//! 1. Any JSON for any argument of any tool gives an envelope that matches
//!    the tool's `outputSchema`, with the failure shape the contract fixes.
//! 2. Invalid arguments never reach the API, and their error names the
//!    argument; valid ones make exactly one request, to the right endpoint,
//!    with each id as exactly one percent-encoded path segment.
//! 3. Whatever the API answers (any status of a few, any body), decoding
//!    gives an envelope, never a panic; faults become short errors, and a
//!    well-formed answer becomes exactly the records it holds.
//! 4. Paging and filtering over the demo data is a slice of the full list,
//!    and the readable timestamps say the same instant as the epoch ones.
//!
//! Case counts are small by default so that the file runs in a few seconds;
//! `PROPTEST_CASES=20000 cargo test --release --test properties` runs each
//! property that many times instead. Failures are not persisted to files.

use std::collections::BTreeMap;
use std::time::Duration;

use bloomreach_vouchers_mcp::bloomreach::{
    BloomreachClient, ClientOptions, RetryNotice, RetryPolicy,
};
use bloomreach_vouchers_mcp::config::{parse_base_url, Credentials, ProjectEntry, Secret};
use bloomreach_vouchers_mcp::source::Source;
use bloomreach_vouchers_mcp::tools::envelope::ToolOutcome;
use bloomreach_vouchers_mcp::tools::VoucherServer;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use wiremock::matchers::any as any_request;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY_ID: &str = "kid";
const SECRET: &str = "topsecret";
/// `base64("kid:topsecret")`, the Authorization token; never to be quoted.
const BASIC_TOKEN: &str = "a2lkOnRvcHNlY3JldA==";

const LIST_PROJECTS: &str = "list_projects";
const LIST_VOUCHER_POOLS: &str = "list_voucher_pools";
const GET_VOUCHER_POOL: &str = "get_voucher_pool";
const LIST_VOUCHER_CODES: &str = "list_voucher_codes";
const TOOLS: [&str; 4] = [
    LIST_PROJECTS,
    LIST_VOUCHER_POOLS,
    GET_VOUCHER_POOL,
    LIST_VOUCHER_CODES,
];

/// The longest error sentence accepted from a call that failed upstream.
const MAX_ERROR_CHARS: usize = 600;

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in Unix seconds.
const MIN_RFC3339_SECS: i64 = -62_167_219_200;
const END_RFC3339_SECS: i64 = 253_402_300_800;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// `default_cases` cases unless `PROPTEST_CASES` says otherwise (proptest's
/// default config has already read it); no failure files; shrinking bounded
/// unless `PROPTEST_MAX_SHRINK_ITERS` says otherwise.
fn config(default_cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = 512;
    }
    config
}

/// Runs a property, panicking with the (shrunk) failing input.
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn quiet(_: &RetryNotice) {}

fn projects() -> Vec<ProjectEntry> {
    vec![
        ProjectEntry {
            id: "demo".into(),
            name: "Demo store".into(),
        },
        ProjectEntry {
            id: "tok-2".into(),
            name: "Été ☀️".into(),
        },
    ]
}

fn api_server(mock: &MockServer, max_retries: u32) -> VoucherServer {
    let mut options = ClientOptions::new(
        parse_base_url(&mock.uri()).expect("a loopback base URL"),
        Credentials {
            key_id: KEY_ID.to_owned(),
            secret: Secret::new(SECRET),
        },
        Duration::from_secs(5),
    );
    options.retry = RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(1),
    };
    let client = BloomreachClient::new(options).expect("the client builds");
    VoucherServer::new(Source::Api(client), projects())
}

/// Each tool's `outputSchema`, compiled once.
fn validators(server: &VoucherServer) -> BTreeMap<String, jsonschema::Validator> {
    server
        .tools()
        .iter()
        .map(|tool| {
            let schema = tool
                .output_schema
                .as_ref()
                .unwrap_or_else(|| panic!("{} declares an outputSchema", tool.name));
            let validator = jsonschema::validator_for(&Value::Object((**schema).clone()))
                .unwrap_or_else(|e| panic!("{}'s outputSchema compiles: {e}", tool.name));
            (tool.name.to_string(), validator)
        })
        .collect()
}

fn call(
    rt: &tokio::runtime::Runtime,
    server: &VoucherServer,
    tool: &str,
    args: Map<String, Value>,
) -> Result<ToolOutcome, TestCaseError> {
    rt.block_on(server.call(tool, Some(args), &quiet))
        .ok_or_else(|| TestCaseError::fail(format!("{tool} is not a tool")))
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(400) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// What every envelope of every tool must satisfy: its schema, the
/// success/failure shape and the MCP result built from it.
fn check_envelope(
    validators: &BTreeMap<String, jsonschema::Validator>,
    tool: &str,
    outcome: &ToolOutcome,
) -> Result<(), TestCaseError> {
    let envelope = &outcome.envelope;
    let validator = &validators[tool];
    let problems: Vec<String> = validator
        .iter_errors(envelope)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    prop_assert!(
        problems.is_empty(),
        "{tool}: envelope breaks its outputSchema: {problems:?}\n{}",
        short(envelope)
    );
    let success = envelope.get("success").and_then(Value::as_bool);
    prop_assert!(success.is_some(), "{tool}: success is a bool");
    let success = success.unwrap_or_default();
    prop_assert_eq!(outcome.is_error, !success, "{}: is_error vs success", tool);
    if success {
        prop_assert_eq!(envelope.get("error"), Some(&Value::Null));
    } else {
        let error = envelope.get("error").and_then(Value::as_str);
        prop_assert!(
            error.is_some_and(|e| !e.trim().is_empty()),
            "{tool}: a failure has an error sentence: {}",
            short(envelope)
        );
        let empty = if tool == GET_VOUCHER_POOL {
            Value::Null
        } else {
            json!([])
        };
        prop_assert_eq!(envelope.get("data"), Some(&empty), "{}: failure data", tool);
        if tool == LIST_VOUCHER_CODES {
            prop_assert!(envelope.get("skip").is_some_and(Value::is_i64));
            prop_assert!(envelope.get("limit").is_some_and(Value::is_i64));
            prop_assert_eq!(envelope.get("matched"), Some(&Value::Null));
            prop_assert_eq!(envelope.get("matched_limited"), Some(&Value::Null));
        }
    }
    let result = outcome.clone().into_call_result();
    prop_assert_eq!(result.is_error.unwrap_or(false), !success);
    prop_assert_eq!(result.structured_content.as_ref(), Some(envelope));
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone());
    prop_assert!(text.is_some(), "{tool}: a text block");
    let parsed: Value = serde_json::from_str(&text.unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("{tool}: text block is JSON: {e}")))?;
    prop_assert_eq!(&parsed, envelope);
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies: arbitrary JSON
// ---------------------------------------------------------------------------

const TRICKY_STRINGS: &[&str] = &[
    "",
    " ",
    "20",
    " 5 ",
    "20.0",
    "-1",
    "+3",
    "1e3",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "1_000",
    "99999999999999999999999",
    "-99999999999999999999999",
    "１２",
    "٣",
    "0",
    "1000",
    "1001",
    "-0",
    "5.5",
    ".",
    "..",
    "...",
    "a/b",
    "../x",
    "%2F",
    "%2e%2e",
    "demo",
    "summer20",
    "welcome10",
    "ete-bienvenue",
    "black-friday",
    "available",
    "Assigned",
    " redeemed ",
    "used",
    "null",
    "true",
    "\u{0}",
    "\t\n",
    "\u{a0}",
    "\u{200b}",
    "é\r\n",
    "☀️",
    SECRET,
    BASIC_TOKEN,
];

fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TRICKY_STRINGS).prop_map(String::from),
        3 => any::<String>(),
        2 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => (
            prop::sample::select(vec!['x', 'é', '7', '\u{0}', '☀', ' ', '\n']),
            90_000usize..110_000,
        )
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn tricky_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-5i64..1100).prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, 20, 1000, 1001, i64::MAX, i64::MIN])
            .prop_map(Value::from),
        any::<f64>().prop_map(float),
        prop::sample::select(vec![
            0.5,
            -0.0,
            20.0,
            2.5,
            1e300,
            -1e300,
            9.2e18,
            9.3e18,
            1e19,
            1.8e19,
            f64::MIN_POSITIVE,
            1_000.000_000_000_1,
            999.999_999_999_9,
        ])
        .prop_map(float),
        (-2000i64..2000).prop_map(|i| float(i as f64)),
    ]
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => tricky_number(),
        5 => tricky_string().prop_map(Value::String),
    ]
    .boxed()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "project_id",
            "pool_id",
            "skip",
            "count",
            "status",
            "limit",
            "extra",
            "",
            "__proto__",
            "ПРОЕКТ",
        ])
        .prop_map(String::from),
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value that suits the argument, so that calls also get past the checks.
fn good_argument(name: &str) -> BoxedStrategy<Value> {
    match name {
        "project_id" => prop::sample::select(vec!["demo", "demo", "demo", "tok-2"])
            .prop_map(Value::from)
            .boxed(),
        "pool_id" => prop::sample::select(vec![
            "summer20",
            "welcome10",
            "ete-bienvenue",
            "black-friday",
            "nope",
        ])
        .prop_map(Value::from)
        .boxed(),
        "skip" => prop_oneof![
            (0i64..3000).prop_map(Value::from),
            Just(json!("7")),
            Just(json!(40.0)),
        ]
        .boxed(),
        "count" => prop_oneof![
            (1i64..=1000).prop_map(Value::from),
            Just(json!("5")),
            Just(json!(5.0)),
        ]
        .boxed(),
        _ => prop::sample::select(vec!["available", "assigned", "redeemed"])
            .prop_map(Value::from)
            .boxed(),
    }
}

/// Arguments where each known name is left out with probability
/// `1 - present` and is otherwise any JSON (weight `wild`) or a suitable
/// value (weight `tame`); plus a few names no tool takes.
fn args_with(present: f64, wild: u32, tame: u32) -> BoxedStrategy<Map<String, Value>> {
    let names = ["project_id", "pool_id", "skip", "count", "status"];
    let known: Vec<BoxedStrategy<Option<Value>>> = names
        .iter()
        .map(|n| {
            prop::option::weighted(
                present,
                prop_oneof![wild => json_value(), tame => good_argument(n)],
            )
            .boxed()
        })
        .collect();
    (prop::collection::vec((key(), json_value()), 0..3), known)
        .prop_map(move |(extras, known)| {
            let mut args: Map<String, Value> = extras.into_iter().collect();
            for (name, value) in names.iter().zip(known) {
                if let Some(value) = value {
                    args.insert((*name).to_owned(), value);
                }
            }
            args
        })
        .boxed()
}

/// Mostly wild arguments, or mostly suitable ones with a few wild.
fn raw_args() -> impl Strategy<Value = Map<String, Value>> {
    prop_oneof![1 => args_with(0.8, 2, 1), 2 => args_with(0.85, 1, 12)]
}

// ---------------------------------------------------------------------------
// Property 1: any arguments give an envelope that matches the schema
// ---------------------------------------------------------------------------

/// The skip or count an envelope must report when the argument was a plain
/// JSON integer or left out.
fn plain_integer(args: &Map<String, Value>, name: &str, default: i64) -> Option<i64> {
    match args.get(name) {
        None | Some(Value::Null) => Some(default),
        Some(v) => v.as_i64(),
    }
}

#[test]
fn any_arguments_give_an_envelope_that_matches_the_output_schema() {
    let rt = runtime();
    let server = VoucherServer::new(Source::demo(), projects());
    let validators = validators(&server);
    check(
        1500,
        (prop::sample::select(TOOLS.to_vec()), raw_args()),
        |(tool, args)| {
            let outcome = call(&rt, &server, tool, args.clone())?;
            check_envelope(&validators, tool, &outcome)?;
            let envelope = &outcome.envelope;
            if tool == LIST_PROJECTS {
                prop_assert_eq!(
                    envelope,
                    &json!({"success": true, "data": [
                        {"id": "demo", "name": "Demo store"},
                        {"id": "tok-2", "name": "Été ☀️"}
                    ], "error": null})
                );
            }
            if tool == LIST_VOUCHER_CODES {
                // The demo applies what it is asked, and a failure echoes it.
                if let Some(skip) = plain_integer(&args, "skip", 0) {
                    prop_assert_eq!(envelope.get("skip"), Some(&json!(skip)));
                }
                if let Some(count) = plain_integer(&args, "count", 20) {
                    prop_assert_eq!(envelope.get("limit"), Some(&json!(count)));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Property 2: invalid calls never reach the API; valid ones reach it once
// ---------------------------------------------------------------------------

/// Answers every request with a valid 200 body for the endpoint its path
/// has the shape of.
struct ValidApi;

fn valid_pools_body() -> Value {
    json!({"success": true, "data": [{"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742}]})
}

fn valid_pool_body() -> Value {
    json!({"success": true, "data": {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
        "company_id": "proj", "used_by": [{"type": "campaign", "id": "c9", "name": "Summer"}]}})
}

/// Without `skip`/`limit`: the envelope then reports the ones asked for.
fn valid_codes_body() -> Value {
    json!({"success": true, "data": [{"code": "SUM-0001", "status": "assigned",
        "assigned_time": 1_718_000_000.5, "redeemed_time": null}],
        "matched": 1000, "matched_limited": false, "total": 1000})
}

impl Respond for ValidApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segments = request.url.path_segments().map_or(0, Iterator::count);
        let body = match segments {
            6 => valid_pools_body(),
            7 => valid_pool_body(),
            _ => valid_codes_body(),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// Mounts [`ValidApi`] on a fresh (request log cleared) mock server.
async fn reset_valid(mock: &MockServer) {
    mock.reset().await;
    Mock::given(any_request())
        .respond_with(ValidApi)
        .mount(mock)
        .await;
}

/// An integer argument as written, with the integer it means.
#[derive(Clone, Debug)]
struct IntForm {
    value: i64,
    json: Value,
}

fn int_forms(range: impl Strategy<Value = i64> + Clone) -> impl Strategy<Value = IntForm> {
    prop_oneof![
        range.clone().prop_map(|v| IntForm {
            value: v,
            json: json!(v)
        }),
        range
            .clone()
            .prop_map(|v| v.min(1 << 53))
            .prop_map(|v| IntForm {
                value: v,
                json: float(v as f64)
            }),
        (range, 0usize..3).prop_map(|(v, zeros)| IntForm {
            value: v,
            json: Value::String(format!("{}{v}", "0".repeat(zeros)))
        }),
    ]
}

fn valid_skip() -> impl Strategy<Value = IntForm> {
    prop_oneof![int_forms(0i64..100), int_forms(0i64..=i64::MAX)]
}

fn valid_count() -> impl Strategy<Value = IntForm> {
    int_forms(1i64..=1000)
}

fn id_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        3 => prop::sample::select(vec![
            '/', '.', '%', '?', '#', ' ', '&', '=', '+', ';', '\\', '\n', '\r', '\0', 'é', '☀',
            '\u{200b}', '\u{a0}', '~', '-', '_', ':', '@', '[', ']', '\u{7f}', '\u{10ffff}',
        ]),
        3 => prop::char::range('a', 'z'),
    ]
}

/// Any non-blank string of at most 1024 characters other than `.`/`..`.
fn valid_id() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "...", "%2e%2e", "%2E", "..%2F", "a/../b", ".%2e", "codes", "vouchers", "%", " padded ",
            "?skip=5", "#frag", "..\u{0}", "é", "\u{200b}",
        ])
        .prop_map(String::from),
        8 => prop::collection::vec(id_char(), 1..24).prop_map(String::from_iter),
        1 => prop::collection::vec(id_char(), 1000..=1024).prop_map(String::from_iter),
    ]
    .prop_filter("a valid id", |s| {
        !s.trim().is_empty() && s != "." && s != ".." && s.chars().count() <= 1024
    })
}

#[derive(Clone, Debug)]
struct ValidCall {
    tool: &'static str,
    project_id: String,
    pool_id: String,
    skip: Option<IntForm>,
    count: Option<IntForm>,
    /// Outer `None`: left out; `Some(None)`: sent as null.
    status: Option<Option<&'static str>>,
    /// Names the tool does not take (for the pool tools: skip, count and
    /// status too), which must be ignored.
    extras: Vec<(String, Value)>,
}

impl ValidCall {
    fn args(&self) -> Map<String, Value> {
        let mut args: Map<String, Value> = self.extras.iter().cloned().collect();
        args.insert("project_id".into(), json!(self.project_id));
        if self.tool == LIST_VOUCHER_POOLS {
            return args;
        }
        args.insert("pool_id".into(), json!(self.pool_id));
        if self.tool == GET_VOUCHER_POOL {
            return args;
        }
        for key in ["skip", "count", "status"] {
            args.remove(key);
        }
        if let Some(skip) = &self.skip {
            args.insert("skip".into(), skip.json.clone());
        }
        if let Some(count) = &self.count {
            args.insert("count".into(), count.json.clone());
        }
        if let Some(status) = self.status {
            args.insert("status".into(), status.map_or(Value::Null, Value::from));
        }
        args
    }
}

fn extra_arguments() -> impl Strategy<Value = Vec<(String, Value)>> {
    let name = prop_oneof![
        prop::sample::select(vec!["skip", "count", "status", "limit", "offset", "cursor"])
            .prop_map(String::from),
        "[a-z_]{1,12}",
    ]
    .prop_filter("not an id argument", |k| {
        k != "project_id" && k != "pool_id"
    });
    prop::collection::vec((name, json_value()), 0..3)
}

fn valid_call() -> impl Strategy<Value = ValidCall> {
    (
        prop::sample::select(vec![
            LIST_VOUCHER_POOLS,
            GET_VOUCHER_POOL,
            LIST_VOUCHER_CODES,
        ]),
        valid_id(),
        valid_id(),
        prop::option::of(valid_skip()),
        prop::option::of(valid_count()),
        prop::option::of(prop::option::of(prop::sample::select(vec![
            "available",
            "assigned",
            "redeemed",
        ]))),
        extra_arguments(),
    )
        .prop_map(
            |(tool, project_id, pool_id, skip, count, status, extras)| ValidCall {
                tool,
                project_id,
                pool_id,
                skip,
                count,
                status,
                extras,
            },
        )
}

/// An invalid id, or `None` to leave it out.
fn bad_id() -> impl Strategy<Value = Option<Value>> {
    let blank = prop::collection::vec(
        prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{a0}', '\u{2003}', '\u{3000}', '\u{2028}',
        ]),
        0..6,
    )
    .prop_map(|c| Some(Value::String(String::from_iter(c))));
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        tricky_number().prop_filter_map("not null", |v| (!v.is_null()).then_some(Some(v))),
        any::<bool>().prop_map(|b| Some(Value::Bool(b))),
        prop::collection::vec(json_value(), 0..3).prop_map(|v| Some(Value::Array(v))),
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3)
            .prop_map(|kv| Some(Value::Object(kv.into_iter().collect()))),
        blank,
        Just(Some(json!("."))),
        Just(Some(json!(".."))),
        (id_char(), 1025usize..3000)
            .prop_filter("not blank", |(c, _)| !c.is_whitespace())
            .prop_map(|(c, n)| Some(Value::String(std::iter::repeat_n(c, n).collect()))),
    ]
}

/// Strings that are no number at all (nothing `str::parse::<f64>` reads as
/// a finite number, nor a string of digits).
fn non_numeric_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "", " ", "lots", "NaN", "nan", "inf", "-inf", "Infinity", "+inf", "0x10", "1_000",
            "１２", "٣", "twenty", "1,000", "1 000", "e", ".", "-", "+", "--1", "1e", "null",
            "true", "[1]", "{}", "٣٣",
        ])
        .prop_map(Value::from),
        "[a-zA-Z ]{0,20}".prop_map(Value::from),
    ]
}

fn non_integral_number() -> impl Strategy<Value = Value> {
    (
        -1_000_000i64..1_000_000,
        prop::sample::select(vec![0.5, 0.25, 0.1, 0.75, 0.001]),
        any::<bool>(),
    )
        .prop_map(|(whole, frac, as_string)| {
            let f = whole as f64 + frac;
            if as_string {
                Value::String(f.to_string())
            } else {
                float(f)
            }
        })
}

fn not_an_integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        non_integral_number(),
        non_numeric_string(),
        any::<bool>().prop_map(Value::Bool),
        prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
    ]
}

fn bad_skip() -> impl Strategy<Value = Value> {
    prop_oneof![
        (i64::MIN..0).prop_map(Value::from),
        (1i64..1_000_000).prop_map(|v| Value::String(format!("-{v}"))),
        (1i64..1_000_000).prop_map(|v| float(-(v as f64))),
        not_an_integer(),
    ]
}

fn bad_count() -> impl Strategy<Value = Value> {
    prop_oneof![
        (i64::MIN..=0).prop_map(Value::from),
        (1001i64..=i64::MAX).prop_map(Value::from),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::from),
        prop::sample::select(vec![
            json!(0),
            json!(1001),
            json!("0"),
            json!("-5"),
            json!("1001"),
            json!("99999999999999999999"),
            json!(0.0),
            json!(1001.0),
            json!(1e300),
            json!(-1e300),
        ]),
        not_an_integer(),
    ]
}

fn bad_status() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        "[a-zA-Z ]{0,12}".prop_map(Value::from),
        Just(json!("used")),
        Just(json!("available,assigned")),
        Just(json!(["available"])),
    ]
    .prop_filter("not a status", |v| match v {
        Value::Null => false,
        Value::String(s) => {
            !["available", "assigned", "redeemed"].contains(&s.trim().to_ascii_lowercase().as_str())
        }
        _ => true,
    })
}

#[derive(Clone, Debug)]
struct InvalidCall {
    tool: &'static str,
    args: Map<String, Value>,
    /// The arguments that break a rule; the error names one of them.
    broken: Vec<&'static str>,
}

#[derive(Clone, Debug)]
struct Breakage {
    project_id: Option<Option<Value>>,
    pool_id: Option<Option<Value>>,
    skip: Option<Value>,
    count: Option<Value>,
    status: Option<Value>,
}

fn invalid_call() -> impl Strategy<Value = InvalidCall> {
    let breakage = (
        prop::option::weighted(0.3, bad_id()),
        prop::option::weighted(0.3, bad_id()),
        prop::option::weighted(0.3, bad_skip()),
        prop::option::weighted(0.3, bad_count()),
        prop::option::weighted(0.3, bad_status()),
    )
        .prop_map(|(project_id, pool_id, skip, count, status)| Breakage {
            project_id,
            pool_id,
            skip,
            count,
            status,
        });
    (valid_call(), breakage, 0usize..5).prop_filter_map(
        "breaks a rule of the tool",
        |(call, breakage, forced)| {
            let mut breakage = breakage;
            // Make sure at least one argument the tool takes is broken.
            let takes = match call.tool {
                LIST_VOUCHER_POOLS => 1,
                GET_VOUCHER_POOL => 2,
                _ => 5,
            };
            let any_broken = [
                breakage.project_id.is_some(),
                breakage.pool_id.is_some(),
                breakage.skip.is_some(),
                breakage.count.is_some(),
                breakage.status.is_some(),
            ][..takes]
                .iter()
                .any(|b| *b);
            if !any_broken {
                match forced % takes {
                    0 => breakage.project_id = Some(Some(json!(".."))),
                    1 => breakage.pool_id = Some(None),
                    2 => breakage.skip = Some(json!(-1)),
                    3 => breakage.count = Some(json!(0)),
                    _ => breakage.status = Some(json!("used")),
                }
            }
            let mut args = call.args();
            let mut broken = Vec::new();
            let mut put_id = |name: &'static str, value: Option<Option<Value>>| {
                if let Some(value) = value {
                    broken.push(name);
                    match value {
                        None => args.remove(name),
                        Some(v) => args.insert(name.to_owned(), v),
                    };
                }
            };
            put_id("project_id", breakage.project_id);
            if takes >= 2 {
                put_id("pool_id", breakage.pool_id);
            }
            if takes == 5 {
                for (name, value) in [
                    ("skip", breakage.skip),
                    ("count", breakage.count),
                    ("status", breakage.status),
                ] {
                    if let Some(value) = value {
                        broken.push(name);
                        args.insert(name.to_owned(), value);
                    }
                }
            }
            (!broken.is_empty()).then_some(InvalidCall {
                tool: call.tool,
                args,
                broken,
            })
        },
    )
}

#[test]
fn invalid_arguments_never_reach_the_api_and_the_error_names_them() {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start());
    let server = api_server(&mock, 0);
    let validators = validators(&server);
    check(1000, invalid_call(), |case| {
        rt.block_on(reset_valid(&mock));
        let outcome = call(&rt, &server, case.tool, case.args.clone())?;
        check_envelope(&validators, case.tool, &outcome)?;
        let received = rt
            .block_on(mock.received_requests())
            .expect("request recording is on");
        prop_assert!(
            received.is_empty(),
            "{} sent {} request(s) for invalid arguments: {:?}",
            case.tool,
            received.len(),
            received
                .iter()
                .map(|r| r.url.to_string())
                .collect::<Vec<_>>()
        );
        prop_assert!(outcome.is_error);
        let error = outcome.error().unwrap_or_default();
        prop_assert!(
            case.broken.iter().any(|name| error.contains(name)),
            "the error names none of {:?}: {error}",
            case.broken
        );
        Ok(())
    });
}

/// The ids and query of a request to the voucher endpoints.
#[derive(Debug, PartialEq)]
struct Endpoint {
    ids: Vec<String>,
    codes: bool,
    query: Vec<(String, String)>,
}

fn endpoint(request: &Request) -> Result<Endpoint, TestCaseError> {
    let segments: Vec<&str> = request
        .url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let fail = || TestCaseError::fail(format!("unexpected path {}", request.url.path()));
    if segments.len() < 6 || segments[..3] != ["data", "v2", "projects"] {
        return Err(fail());
    }
    if segments[4..6] != ["vouchers", "pools"] {
        return Err(fail());
    }
    // Only unreserved characters and `%XX` escapes: nothing left raw.
    let encoded = |s: &str| {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                if i + 2 >= b.len() {
                    return false;
                }
                if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                    return false;
                }
                i += 3;
            } else if b[i].is_ascii_alphanumeric() || b"-._~".contains(&b[i]) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    };
    let decode = |s: &str| {
        if !encoded(s) {
            return Err(fail());
        }
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| fail())
    };
    let mut ids = vec![decode(segments[3])?];
    let codes = match segments.len() {
        6 => false,
        7 => {
            ids.push(decode(segments[6])?);
            false
        }
        8 if segments[7] == "codes" => {
            ids.push(decode(segments[6])?);
            true
        }
        _ => return Err(fail()),
    };
    Ok(Endpoint {
        ids,
        codes,
        query: request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    })
}

#[test]
fn valid_arguments_reach_the_intended_endpoint_once_with_each_id_as_one_segment() {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start());
    let server = api_server(&mock, 0);
    let validators = validators(&server);
    check(800, valid_call(), |case| {
        rt.block_on(reset_valid(&mock));
        let outcome = call(&rt, &server, case.tool, case.args())?;
        check_envelope(&validators, case.tool, &outcome)?;
        prop_assert!(
            !outcome.is_error,
            "valid call failed: {}",
            short(&outcome.envelope)
        );
        let received = rt
            .block_on(mock.received_requests())
            .expect("request recording is on");
        prop_assert_eq!(received.len(), 1, "exactly one request");
        let request = &received[0];
        prop_assert_eq!(request.method.as_str(), "GET");
        let got = endpoint(request)?;
        let skip = case.skip.as_ref().map_or(0, |s| s.value);
        let count = case.count.as_ref().map_or(20, |c| c.value);
        let expected = match case.tool {
            LIST_VOUCHER_POOLS => Endpoint {
                ids: vec![case.project_id.clone()],
                codes: false,
                query: vec![],
            },
            GET_VOUCHER_POOL => Endpoint {
                ids: vec![case.project_id.clone(), case.pool_id.clone()],
                codes: false,
                query: vec![],
            },
            _ => {
                let mut query = vec![
                    ("skip".to_owned(), skip.to_string()),
                    ("count".to_owned(), count.to_string()),
                ];
                if let Some(Some(status)) = case.status {
                    query.push(("status".to_owned(), status.to_owned()));
                }
                Endpoint {
                    ids: vec![case.project_id.clone(), case.pool_id.clone()],
                    codes: true,
                    query,
                }
            }
        };
        prop_assert_eq!(got, expected, "request {}", request.url);
        if case.tool == LIST_VOUCHER_CODES {
            prop_assert_eq!(outcome.envelope.get("skip"), Some(&json!(skip)));
            prop_assert_eq!(outcome.envelope.get("limit"), Some(&json!(count)));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Property 3: whatever the API answers, the tool answers an envelope
// ---------------------------------------------------------------------------

const STATUSES: [u16; 7] = [200, 400, 401, 403, 404, 418, 500];

/// Values that are the wrong type for some field, or just right for another.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        2 => prop::sample::select(vec![
            json!("3"),
            json!("742"),
            json!(-1),
            json!(1.5),
            json!(742.0),
            json!(null),
            json!([]),
            json!({}),
            json!(true),
            json!(SECRET),
            json!(format!("Basic {BASIC_TOKEN}")),
            json!(format!("{} {SECRET}", "x".repeat(700))),
            json!({"nested": {"deeper": [1, "two", null]}}),
            json!(1e300),
            json!(18446744073709551615u64),
        ]),
        1 => "[a-z]{500,2000}".prop_map(Value::from),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Remove,
    Rename(String),
    Replace(Value),
    Add(String, Value),
}

#[derive(Clone, Debug)]
struct Mutation {
    target: Index,
    key: Index,
    op: Op,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let new_name = prop_oneof![
        prop::sample::select(vec![
            "Id",
            "ID",
            "name ",
            "totl",
            "availableCount",
            "data_",
            "Data",
            "succes",
            "code",
            "status",
            "total",
            "available",
            "id",
            "name",
            "assigned_time",
            "redeemed_time",
            "used_by",
            "company_id",
            "matched",
            "error",
            "errors",
        ])
        .prop_map(String::from),
        key(),
    ];
    let op = prop_oneof![
        2 => Just(Op::Remove),
        1 => new_name.clone().prop_map(Op::Rename),
        3 => replacement().prop_map(Op::Replace),
        2 => (new_name, replacement()).prop_map(|(k, v)| Op::Add(k, v)),
    ];
    (any::<Index>(), any::<Index>(), op).prop_map(|(target, key, op)| Mutation { target, key, op })
}

/// Applies one mutation to the body's top level, its `data` object or one
/// of the objects in its `data` array.
fn apply(body: &mut Value, m: &Mutation) {
    let mut pointers = vec![String::new()];
    match body.get("data") {
        Some(Value::Object(_)) => pointers.push("/data".to_owned()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if item.is_object() {
                    pointers.push(format!("/data/{i}"));
                }
            }
        }
        _ => {}
    }
    let pointer = m.target.get(&pointers).clone();
    let Some(Value::Object(object)) = body.pointer_mut(&pointer) else {
        return;
    };
    let keys: Vec<String> = object.keys().cloned().collect();
    match &m.op {
        Op::Add(k, v) => {
            object.insert(k.clone(), v.clone());
        }
        _ if keys.is_empty() => {}
        Op::Remove => {
            object.remove(m.key.get(&keys));
        }
        Op::Rename(new) => {
            if let Some(v) = object.remove(m.key.get(&keys)) {
                object.insert(new.clone(), v);
            }
        }
        Op::Replace(v) => {
            object.insert(m.key.get(&keys).clone(), v.clone());
        }
    }
}

fn count_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..100_000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (0u64..100_000).prop_map(|v| float(v as f64)),
    ]
}

fn epoch_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        4 => (0.0f64..2_000_000_000.0).prop_map(float),
        2 => (0i64..2_000_000_000_000).prop_map(|ms| float(ms as f64 / 1000.0)),
        1 => (0i64..2_000_000_000).prop_map(Value::from),
        1 => any::<f64>().prop_map(float),
        1 => prop::sample::select(vec![
            -62_167_219_200.0,
            -62_167_219_200.5,
            253_402_300_799.999_999,
            253_402_300_799.999_999_9,
            253_402_300_800.0,
            -1.5,
            1e20,
            -1e12,
        ])
        .prop_map(float),
    ]
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["p1", "SUMMER20", "Été ☀️", "", "SUM-0001"])
            .prop_map(Value::from),
        tricky_string().prop_map(Value::from),
    ]
}

fn summary() -> impl Strategy<Value = Value> {
    (text(), text(), count_value(), count_value())
        .prop_map(|(id, name, total, available)| json!({"id": id, "name": name, "total": total, "available": available}))
}

fn pool() -> impl Strategy<Value = Value> {
    (
        summary(),
        prop::option::of(prop_oneof![text(), Just(Value::Null)]),
        prop::option::of(prop_oneof![
            prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
            Just(Value::Null),
        ]),
    )
        .prop_map(|(mut pool, company_id, used_by)| {
            let object = pool.as_object_mut().expect("an object");
            if let Some(c) = company_id {
                object.insert("company_id".into(), c);
            }
            if let Some(u) = used_by {
                object.insert("used_by".into(), u);
            }
            pool
        })
}

fn code() -> impl Strategy<Value = Value> {
    (
        text(),
        prop_oneof![
            prop::sample::select(vec!["available", "assigned", "redeemed", "mystery"])
                .prop_map(Value::from),
            text(),
        ],
        prop::option::of(epoch_value()),
        prop::option::of(epoch_value()),
    )
        .prop_map(|(code, status, assigned, redeemed)| {
            let mut object = json!({"code": code, "status": status});
            let map = object.as_object_mut().expect("an object");
            if let Some(a) = assigned {
                map.insert("assigned_time".into(), a);
            }
            if let Some(r) = redeemed {
                map.insert("redeemed_time".into(), r);
            }
            object
        })
}

/// A body of about the right shape for the tool, then mutated.
fn shaped_body(tool: &'static str) -> BoxedStrategy<Value> {
    let data: BoxedStrategy<Value> = match tool {
        LIST_VOUCHER_POOLS => prop::collection::vec(summary(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        GET_VOUCHER_POOL => pool().boxed(),
        _ => prop::collection::vec(code(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
    };
    let success = prop_oneof![
        5 => Just(Some(json!(true))),
        2 => Just(None),
        1 => Just(Some(json!(false))),
        1 => Just(Some(Value::Null)),
        1 => leaf().prop_map(Some),
    ];
    let paging_value = |name: &'static str| {
        let right = if name == "matched_limited" {
            any::<bool>().prop_map(Value::Bool).boxed()
        } else {
            count_value().boxed()
        };
        let value = prop_oneof![8 => right, 1 => Just(Value::Null), 1 => leaf()];
        prop::option::weighted(0.6, value.prop_map(move |v| (name, v)))
    };
    let paging = (
        paging_value("matched"),
        paging_value("matched_limited"),
        paging_value("skip"),
        paging_value("limit"),
        paging_value("total"),
    )
        .prop_map(|(a, b, c, d, e)| [a, b, c, d, e].into_iter().flatten().collect::<Vec<_>>());
    let errors = prop::option::of(prop_oneof![
        Just(json!({"_global": ["project is locked"]})),
        Just(json!(["not authorized to read vouchers"])),
        json_value(),
    ]);
    (
        success,
        data,
        paging,
        errors,
        prop_oneof![Just(Vec::new()), prop::collection::vec(mutation(), 1..4)],
    )
        .prop_map(|(success, data, paging, errors, mutations)| {
            let mut body = Map::new();
            if let Some(s) = success {
                body.insert("success".into(), s);
            }
            body.insert("data".into(), data);
            for (k, v) in paging {
                body.insert(k.into(), v);
            }
            if let Some(e) = errors {
                body.insert("errors".into(), e);
            }
            let mut body = Value::Object(body);
            for m in &mutations {
                apply(&mut body, m);
            }
            body
        })
        .boxed()
}

fn html_page() -> impl Strategy<Value = Vec<u8>> {
    (tricky_string(), tricky_string()).prop_map(|(title, body)| {
        format!(
            "<!DOCTYPE html><html><head><title>{title}</title><style>p{{}}</style></head>\
             <body><h1>{body}</h1><script>var secret = \"{SECRET}\";</script></body></html>"
        )
        .into_bytes()
    })
}

fn body_for(tool: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..2000),
        1 => html_page(),
        1 => (prop::sample::select(vec!['x', ' ', '\n', 'é']), 60_000usize..80_000)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>().into_bytes()),
        2 => json_value().prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
        2 => prop::sample::select(vec![
            json!({"success": false, "error": "access key not found"}),
            json!({"success": false, "errors": ["not authorized to read vouchers"]}),
            json!({"errors": {"code": 404, "description": "pool does not exist"}}),
            json!({"success": false, "errors": {"_global": ["bad skip"]}}),
            json!({"success": false, "error": format!("{} Basic {BASIC_TOKEN} {SECRET}", "y".repeat(290))}),
            json!({"message": "x\ny\r\nz"}),
        ])
        .prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
        // A secret where a quote of 300 (JSON messages) or 200 (other
        // bodies) characters is cut.
        1 => (285usize..300).prop_map(|n| {
            serde_json::to_vec(&json!({"success": false, "error": format!("{} {SECRET}", "y".repeat(n))}))
                .expect("JSON")
        }),
        1 => (185usize..200).prop_map(|n| format!("{} {SECRET}", "y".repeat(n)).into_bytes()),
        8 => shaped_body(tool).prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
    ]
}

/// Whether `error` quotes the secret or the Authorization token, in full or
/// as a prefix cut off by a shortening (`tops…`).
fn quotes_credential(error: &str) -> bool {
    if error.contains(SECRET) || error.contains(BASIC_TOKEN) {
        return true;
    }
    (3..SECRET.len()).any(|n| error.contains(&format!("{}…", &SECRET[..n])))
}

#[derive(Clone)]
struct UpstreamCase {
    tool: &'static str,
    project_id: &'static str,
    pool_id: &'static str,
    status: u16,
    body: Vec<u8>,
}

impl std::fmt::Debug for UpstreamCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(2000).collect();
        f.debug_struct("UpstreamCase")
            .field("tool", &self.tool)
            .field("project_id", &self.project_id)
            .field("pool_id", &self.pool_id)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("body", &shown)
            .finish()
    }
}

impl UpstreamCase {
    fn args(&self) -> Map<String, Value> {
        let args = match self.tool {
            LIST_VOUCHER_POOLS => json!({"project_id": self.project_id}),
            GET_VOUCHER_POOL => json!({"project_id": self.project_id, "pool_id": self.pool_id}),
            _ => {
                json!({"project_id": self.project_id, "pool_id": self.pool_id, "skip": 40, "count": 7})
            }
        };
        args.as_object().cloned().unwrap_or_default()
    }
}

fn upstream_case() -> impl Strategy<Value = UpstreamCase> {
    prop::sample::select(vec![
        LIST_VOUCHER_POOLS,
        GET_VOUCHER_POOL,
        LIST_VOUCHER_CODES,
    ])
    .prop_flat_map(|tool| {
        (
            prop::sample::select(vec!["proj", "p 1", "é/x"]),
            prop::sample::select(vec!["p1", "../x", "a%2Fb"]),
            prop_oneof![3 => Just(200u16), 2 => prop::sample::select(STATUSES.to_vec())],
            body_for(tool),
        )
            .prop_map(move |(project_id, pool_id, status, body)| UpstreamCase {
                tool,
                project_id,
                pool_id,
                status,
                body,
            })
    })
}

// --- A reference decoder: what the contract and the client's lenient
// --- decoding make of a 200 body. `Err(())` is a fault.

type Decoded<T> = Result<T, ()>;

fn lenient_u64(value: &Value) -> Decoded<u64> {
    let Value::Number(n) = value else {
        return Err(());
    };
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    let f = n.as_f64().ok_or(())?;
    if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 {
        Ok(f as u64)
    } else {
        Err(())
    }
}

fn opt<T>(value: Option<&Value>, read: impl Fn(&Value) -> Decoded<T>) -> Decoded<Option<T>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v).map(Some),
    }
}

fn required<T>(value: Option<&Value>, read: impl Fn(&Value) -> Decoded<T>) -> Decoded<T> {
    value.ok_or(()).and_then(read)
}

fn string(value: &Value) -> Decoded<String> {
    value.as_str().map(str::to_owned).ok_or(())
}

fn boolean(value: &Value) -> Decoded<bool> {
    value.as_bool().ok_or(())
}

fn number(value: &Value) -> Decoded<f64> {
    value.as_f64().ok_or(())
}

/// A struct's fields as serde's derive reads them: by name from an object,
/// by position from an array no longer than the field list.
fn fields<'a>(value: &'a Value, names: &[&str]) -> Decoded<Vec<Option<&'a Value>>> {
    match value {
        Value::Object(map) => Ok(names.iter().map(|n| map.get(*n)).collect()),
        Value::Array(items) if items.len() <= names.len() => {
            Ok((0..names.len()).map(|i| items.get(i)).collect())
        }
        _ => Err(()),
    }
}

fn array<T>(value: &Value, item: impl Fn(&Value) -> Decoded<T>) -> Decoded<Vec<T>> {
    value.as_array().ok_or(())?.iter().map(item).collect()
}

fn summary_record(value: &Value) -> Decoded<Value> {
    let f = fields(value, &["id", "name", "total", "available"])?;
    Ok(json!({
        "id": required(f[0], string)?,
        "name": required(f[1], string)?,
        "total": required(f[2], lenient_u64)?,
        "available": required(f[3], lenient_u64)?,
    }))
}

fn pool_record(value: &Value, project_id: &str) -> Decoded<Value> {
    let f = fields(
        value,
        &["id", "name", "total", "available", "company_id", "used_by"],
    )?;
    Ok(json!({
        "id": required(f[0], string)?,
        "name": required(f[1], string)?,
        "total": required(f[2], lenient_u64)?,
        "available": required(f[3], lenient_u64)?,
        "company_id": opt(f[4], string)?.unwrap_or_else(|| project_id.to_owned()),
        "used_by": opt(f[5], |v| v.as_array().cloned().ok_or(()))?.unwrap_or_default(),
    }))
}

/// A code's fields except the `*_at` ones, which [`check_at`] checks.
fn code_record(value: &Value) -> Decoded<Value> {
    let f = fields(value, &["code", "status", "assigned_time", "redeemed_time"])?;
    Ok(json!({
        "code": required(f[0], string)?,
        "status": required(f[1], string)?,
        "assigned_time": opt(f[2], number)?,
        "redeemed_time": opt(f[3], number)?,
    }))
}

/// The envelope fields a well-formed 200 body must give, or `Err` when the
/// body is a fault (not JSON, `success: false`, no data, a field missing or
/// of the wrong type).
fn reference(case: &UpstreamCase) -> Decoded<Map<String, Value>> {
    let body: Value = serde_json::from_slice(&case.body).map_err(|_| ())?;
    let f = fields(
        &body,
        &[
            "success",
            "data",
            "matched",
            "matched_limited",
            "skip",
            "limit",
            "error",
            "errors",
        ],
    )?;
    if opt(f[0], boolean)? == Some(false) {
        return Err(());
    }
    let matched = opt(f[2], lenient_u64)?;
    let matched_limited = opt(f[3], boolean)?;
    let skip = opt(f[4], lenient_u64)?;
    let limit = opt(f[5], lenient_u64)?;
    let data = match f[1] {
        None | Some(Value::Null) => return Err(()),
        Some(d) => d,
    };
    let mut out = Map::new();
    out.insert("success".into(), json!(true));
    out.insert("error".into(), Value::Null);
    match case.tool {
        LIST_VOUCHER_POOLS => {
            out.insert("data".into(), Value::Array(array(data, summary_record)?));
        }
        GET_VOUCHER_POOL => {
            out.insert("data".into(), pool_record(data, case.project_id)?);
        }
        _ => {
            let saturate = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            out.insert("data".into(), Value::Array(array(data, code_record)?));
            out.insert("matched".into(), json!(matched));
            out.insert("matched_limited".into(), json!(matched_limited));
            out.insert("skip".into(), json!(saturate(skip.unwrap_or(40))));
            out.insert("limit".into(), json!(saturate(limit.unwrap_or(7))));
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of the
/// conversion the server uses, so the two check each other).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` back into microseconds since the
/// epoch.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let b = whole.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = whole.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(f) => {
            let ok = (1..=6).contains(&f.len())
                && f.bytes().all(|c| c.is_ascii_digit())
                && !f.ends_with('0');
            if !ok {
                return None;
            }
            format!("{f:0<6}").parse::<i64>().ok()?
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(secs * 1_000_000 + micros)
}

/// `at` is null exactly when `time` is null (or names an instant outside
/// the years 0000 to 9999, which RFC 3339 cannot write), and otherwise the
/// same instant to the microsecond, in UTC.
fn check_at(time: Option<f64>, at: &Value) -> Result<(), String> {
    let Some(t) = time else {
        return if at.is_null() {
            Ok(())
        } else {
            Err(format!("{at} for a null time"))
        };
    };
    let micros = (t * 1_000_000.0).round();
    let writable = t.is_finite()
        && micros >= (MIN_RFC3339_SECS * 1_000_000) as f64
        && micros < (END_RFC3339_SECS * 1_000_000) as f64;
    match at {
        Value::Null if !writable => Ok(()),
        Value::Null => Err(format!("null for the time {t}")),
        Value::String(s) if writable => match parse_rfc3339(s) {
            Some(parsed) if parsed == micros as i64 => Ok(()),
            Some(parsed) => Err(format!("{s} is {parsed} µs, not {t} s")),
            None => Err(format!("{s} is not RFC 3339 UTC")),
        },
        other => Err(format!("{other} for the unwritable time {t}")),
    }
}

fn check_codes_at(data: &Value) -> Result<(), TestCaseError> {
    for code in data.as_array().into_iter().flatten() {
        for (time, at) in [
            ("assigned_time", "assigned_at"),
            ("redeemed_time", "redeemed_at"),
        ] {
            let t = code.get(time).and_then(Value::as_f64);
            let a = code.get(at).unwrap_or(&Value::Null);
            check_at(t, a).map_err(|e| TestCaseError::fail(format!("{at}: {e} in {code}")))?;
        }
    }
    Ok(())
}

/// Replaces `*_at` with nothing, so the rest compares with the reference.
fn without_at(mut envelope: Value) -> Value {
    if let Some(Value::Array(codes)) = envelope.get_mut("data") {
        for code in codes.iter_mut().filter_map(Value::as_object_mut) {
            code.remove("assigned_at");
            code.remove("redeemed_at");
        }
    }
    envelope
}

#[test]
fn any_upstream_answer_gives_an_envelope_and_faults_give_short_errors() {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start());
    let server = api_server(&mock, 0);
    let validators = validators(&server);
    check(1000, upstream_case(), |case| {
        rt.block_on(async {
            mock.reset().await;
            Mock::given(any_request())
                .respond_with(ResponseTemplate::new(case.status).set_body_bytes(case.body.clone()))
                .mount(&mock)
                .await;
        });
        let outcome = call(&rt, &server, case.tool, case.args())?;
        check_envelope(&validators, case.tool, &outcome)?;
        let received = rt.block_on(mock.received_requests()).unwrap_or_default();
        prop_assert_eq!(received.len(), 1, "one attempt, no retries");
        let expected = if case.status == 200 {
            reference(&case)
        } else {
            Err(())
        };
        match expected {
            Ok(fields) => {
                prop_assert!(
                    !outcome.is_error,
                    "a well-formed answer failed: {}",
                    short(&outcome.envelope)
                );
                if case.tool == LIST_VOUCHER_CODES {
                    check_codes_at(&outcome.envelope["data"])?;
                }
                prop_assert_eq!(without_at(outcome.envelope.clone()), Value::Object(fields));
            }
            Err(()) => {
                prop_assert!(
                    outcome.is_error,
                    "a faulty answer (HTTP {}) succeeded: {}",
                    case.status,
                    short(&outcome.envelope)
                );
                let error = outcome.error().unwrap_or_default();
                let chars = error.chars().count();
                prop_assert!(
                    chars <= MAX_ERROR_CHARS,
                    "error of {chars} characters: {}…",
                    error.chars().take(300).collect::<String>()
                );
                prop_assert!(
                    !quotes_credential(error),
                    "error quotes a credential: {error}"
                );
                if case.status != 200 {
                    prop_assert!(
                        error.contains(&case.status.to_string()),
                        "error does not say the status: {error}"
                    );
                }
                if case.status == 401 {
                    prop_assert!(
                        error.contains("BLOOMREACH_API_KEY_ID")
                            && error.contains("BLOOMREACH_API_SECRET"),
                        "a 401 names the settings: {error}"
                    );
                }
                if case.status == 404 {
                    let id = if case.tool == LIST_VOUCHER_POOLS {
                        case.project_id
                    } else {
                        case.pool_id
                    };
                    prop_assert!(error.contains(id), "a 404 names {id:?}: {error}");
                }
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Property 4: the demo data pages and filters consistently
// ---------------------------------------------------------------------------

const DEMO_POOLS: [&str; 4] = ["summer20", "welcome10", "ete-bienvenue", "black-friday"];
const CODE_STATUSES: [&str; 3] = ["available", "assigned", "redeemed"];

fn demo_codes(
    rt: &tokio::runtime::Runtime,
    server: &VoucherServer,
    pool: &str,
    status: Option<&str>,
) -> (Vec<Value>, u64) {
    let mut all = Vec::new();
    let mut matched = None;
    loop {
        let mut args =
            json!({"project_id": "demo", "pool_id": pool, "skip": all.len(), "count": 1000});
        if let Some(s) = status {
            args["status"] = json!(s);
        }
        let outcome = rt
            .block_on(server.call(LIST_VOUCHER_CODES, args.as_object().cloned(), &quiet))
            .expect("a tool");
        assert!(!outcome.is_error, "{}", outcome.envelope);
        matched = matched.or(outcome.envelope["matched"].as_u64());
        let page = outcome.envelope["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    (all, matched.expect("matched is given"))
}

#[derive(Clone, Debug)]
struct DemoCase {
    pool: &'static str,
    status: Option<&'static str>,
    skip: IntForm,
    count: IntForm,
}

#[test]
fn demo_pages_are_slices_of_the_matching_codes_with_consistent_timestamps() {
    let rt = runtime();
    let server = VoucherServer::new(Source::demo(), projects());
    let validators = validators(&server);

    // The full lists, and how they agree with the pool counts.
    let pools = rt
        .block_on(server.call(
            LIST_VOUCHER_POOLS,
            json!({"project_id": "demo"}).as_object().cloned(),
            &quiet,
        ))
        .expect("a tool")
        .envelope;
    let mut full: BTreeMap<(&str, Option<&str>), Vec<Value>> = BTreeMap::new();
    for pool in DEMO_POOLS {
        let summary = pools["data"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == pool))
            .unwrap_or_else(|| panic!("{pool} is listed"));
        let (all, matched) = demo_codes(&rt, &server, pool, None);
        assert_eq!(matched, all.len() as u64, "{pool}");
        assert_eq!(summary["total"], json!(matched), "{pool}");
        let mut sum = 0;
        for status in CODE_STATUSES {
            let (codes, matched) = demo_codes(&rt, &server, pool, Some(status));
            assert_eq!(matched, codes.len() as u64, "{pool} {status}");
            if status == "available" {
                assert_eq!(summary["available"], json!(matched), "{pool}");
            }
            let expected: Vec<Value> = all
                .iter()
                .filter(|c| c["status"] == status)
                .cloned()
                .collect();
            assert_eq!(
                codes, expected,
                "{pool} {status}: the filter keeps the order"
            );
            sum += matched;
            full.insert((pool, Some(status)), codes);
        }
        assert_eq!(
            sum, matched,
            "{pool}: every code has one of the three statuses"
        );
        full.insert((pool, None), all);
    }

    let case = (
        prop::sample::select(DEMO_POOLS.to_vec()),
        prop::option::of(prop::sample::select(CODE_STATUSES.to_vec())),
        prop_oneof![
            4 => int_forms(0i64..3000),
            1 => int_forms(0i64..=i64::MAX),
        ],
        valid_count(),
    )
        .prop_map(|(pool, status, skip, count)| DemoCase {
            pool,
            status,
            skip,
            count,
        });
    check(600, case, |case| {
        let mut args = json!({"project_id": "demo", "pool_id": case.pool,
            "skip": case.skip.json, "count": case.count.json});
        if let Some(s) = case.status {
            args["status"] = json!(s);
        }
        let outcome = call(
            &rt,
            &server,
            LIST_VOUCHER_CODES,
            args.as_object().cloned().unwrap_or_default(),
        )?;
        check_envelope(&validators, LIST_VOUCHER_CODES, &outcome)?;
        prop_assert!(!outcome.is_error, "{}", short(&outcome.envelope));
        let envelope = &outcome.envelope;
        let all = &full[&(case.pool, case.status)];
        let matched = all.len() as i64;
        let (skip, count) = (case.skip.value, case.count.value);
        let data = envelope["data"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(&envelope["matched"], &json!(matched));
        prop_assert_eq!(&envelope["matched_limited"], &json!(false));
        prop_assert_eq!(&envelope["skip"], &json!(skip));
        prop_assert_eq!(&envelope["limit"], &json!(count));
        prop_assert_eq!(
            data.len() as i64,
            count.min((matched - skip.min(matched)).max(0))
        );
        let start = usize::try_from(skip).unwrap_or(usize::MAX).min(all.len());
        prop_assert_eq!(&data[..], &all[start..start + data.len()]);
        for code in &data {
            if let Some(status) = case.status {
                prop_assert_eq!(&code["status"], &json!(status));
            }
            for (time, at) in [
                ("assigned_time", "assigned_at"),
                ("redeemed_time", "redeemed_at"),
            ] {
                let t = code[time].as_f64();
                prop_assert_eq!(t.is_none(), code[at].is_null(), "{} and {}", time, at);
                if let Some(text) = code[at].as_str() {
                    prop_assert!(text.ends_with('Z'), "{text}");
                    let t = t.unwrap_or_default();
                    let whole = parse_rfc3339(text).map(|m| m.div_euclid(1_000_000));
                    let micros = (t * 1_000_000.0).round() as i64;
                    prop_assert_eq!(whole, Some(micros.div_euclid(1_000_000)), "{}", text);
                }
            }
        }
        check_codes_at(&envelope["data"])?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// The reference helpers themselves
// ---------------------------------------------------------------------------

#[test]
fn the_reference_calendar_reads_known_instants() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(0, 1, 1) * 86_400, MIN_RFC3339_SECS);
    assert_eq!(days_from_civil(10_000, 1, 1) * 86_400, END_RFC3339_SECS);
    assert_eq!(
        parse_rfc3339("2024-06-10T06:13:20.5Z"),
        Some(1_718_000_000_500_000)
    );
    assert_eq!(parse_rfc3339("1969-12-31T23:59:58.5Z"), Some(-1_500_000));
    assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("2024-06-10T06:13:20.50Z"), None);
    assert_eq!(parse_rfc3339("2024-06-10 06:13:20Z"), None);
    assert!(check_at(Some(1e20), &Value::Null).is_ok());
    assert!(check_at(Some(0.0), &Value::Null).is_err());
    assert!(check_at(None, &json!("1970-01-01T00:00:00Z")).is_err());
}

// ---------------------------------------------------------------------------
// Regressions for faults the properties found (ignored until fixed in src/)
// ---------------------------------------------------------------------------

/// Calls `tool` once against a mock that answers `status` with `body`.
async fn answer_once(tool: &str, status: u16, body: Value) -> ToolOutcome {
    let mock = MockServer::start().await;
    Mock::given(any_request())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&mock)
        .await;
    let args = json!({"project_id": "proj", "pool_id": "p1"});
    api_server(&mock, 0)
        .call(tool, args.as_object().cloned(), &quiet)
        .await
        .expect("a tool")
}

#[tokio::test]
async fn regression_a_long_wrongly_typed_value_gives_a_short_error() {
    let body = json!({"success": true, "data": [
        {"id": "p1", "name": "SUMMER20", "total": "x".repeat(5000), "available": 742}
    ]});
    let outcome = answer_once(LIST_VOUCHER_POOLS, 200, body).await;
    let error = outcome.error().expect("a failure");
    assert!(
        error.chars().count() <= MAX_ERROR_CHARS,
        "error of {} characters",
        error.chars().count()
    );
}

#[tokio::test]
async fn regression_a_wrongly_typed_secret_is_not_quoted() {
    let body = json!({"success": true, "data": [
        {"id": "p1", "name": "SUMMER20", "total": SECRET, "available": 742}
    ]});
    let outcome = answer_once(LIST_VOUCHER_POOLS, 200, body).await;
    let error = outcome.error().expect("a failure");
    assert!(!error.contains(SECRET), "{error}");
}

#[tokio::test]
async fn regression_a_secret_cut_by_the_shortening_is_not_quoted_in_part() {
    let body = json!({"success": false, "error": format!("{} {SECRET}", "y".repeat(295))});
    let outcome = answer_once(LIST_VOUCHER_POOLS, 400, body).await;
    let error = outcome.error().expect("a failure");
    assert!(!quotes_credential(error), "{error}");
}
