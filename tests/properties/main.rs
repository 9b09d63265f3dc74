//! Property tests of the tool layer against the contract (`CONTRACT.md`
//! of the project's shared notes), one module per property.
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

use bloomreach_vouchers_mcp::backend::rest::RetryPolicy;
use bloomreach_vouchers_mcp::backend::{Backend, RestClient, RetryNotice};
use bloomreach_vouchers_mcp::config::ProjectEntry;
use bloomreach_vouchers_mcp::tools::envelope::ToolOutcome;
use bloomreach_vouchers_mcp::tools::VoucherServer;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use wiremock::matchers::any as any_request;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub(crate) use support::rest::{
    rest_options, REST_BASIC_TOKEN as BASIC_TOKEN, REST_SECRET as SECRET,
};

pub(crate) const LIST_PROJECTS: &str = "list_projects";
pub(crate) const LIST_VOUCHER_POOLS: &str = "list_voucher_pools";
pub(crate) const GET_VOUCHER_POOL: &str = "get_voucher_pool";
pub(crate) const LIST_VOUCHER_CODES: &str = "list_voucher_codes";
pub(crate) const TOOLS: [&str; 4] = [
    LIST_PROJECTS,
    LIST_VOUCHER_POOLS,
    GET_VOUCHER_POOL,
    LIST_VOUCHER_CODES,
];

/// The longest error sentence accepted from a call that failed upstream.
pub(crate) const MAX_ERROR_CHARS: usize = 600;

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in Unix seconds.
pub(crate) const MIN_RFC3339_SECS: i64 = -62_167_219_200;
pub(crate) const END_RFC3339_SECS: i64 = 253_402_300_800;

// The harness every property shares.

/// `default_cases` cases unless `PROPTEST_CASES` says otherwise (proptest's
/// default config has already read it); no failure files; shrinking bounded
/// unless `PROPTEST_MAX_SHRINK_ITERS` says otherwise.
pub(crate) fn config(default_cases: u32) -> ProptestConfig {
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
pub(crate) fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

pub(crate) fn quiet(_: &RetryNotice) {}

pub(crate) fn projects() -> Vec<ProjectEntry> {
    vec![
        ProjectEntry::named("demo", "Demo store"),
        ProjectEntry::named("tok-2", "Été ☀️"),
    ]
}

pub(crate) fn api_server(mock: &MockServer, max_retries: u32) -> VoucherServer {
    let options = rest_options(
        &mock.uri(),
        RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(1),
        },
    );
    let client = RestClient::new(options);
    VoucherServer::new(Backend::Rest(client), projects())
}

/// Each tool's `outputSchema`, compiled once.
pub(crate) fn validators(server: &VoucherServer) -> BTreeMap<String, jsonschema::Validator> {
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

pub(crate) fn call(
    rt: &tokio::runtime::Runtime,
    server: &VoucherServer,
    tool: &str,
    args: Map<String, Value>,
) -> Result<ToolOutcome, TestCaseError> {
    rt.block_on(server.call(tool, Some(args), &quiet))
        .ok_or_else(|| TestCaseError::fail(format!("{tool} is not a tool")))
}

pub(crate) fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(400) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// What every envelope of every tool must satisfy: its schema, the
/// success/failure shape and the MCP result built from it.
pub(crate) fn check_envelope(
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

#[path = "../support/mod.rs"]
mod support;

mod arguments;
mod calendar;
mod demo_paging;
mod regressions;
mod scans;
mod strategies;
mod upstream;

use arguments::{int_forms, valid_count, IntForm};
use calendar::*;
use strategies::*;
use upstream::quotes_credential;
