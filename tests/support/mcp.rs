//! The binary spoken to through rmcp's client, as an assistant would, and
//! the check every tool result must pass: one envelope, given twice (as
//! `structuredContent` and as a text block), that conforms to the tool's
//! outputSchema.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientConfig, Implementation, ProtocolVersion, Tool};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::Value;

use super::binary;

/// How long the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `tools/call` may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A running rmcp client session with the binary.
pub type Session = RunningService<RoleClient, ClientConfig>;

/// Client info for `initialize` at `version`.
pub fn client_info(version: ProtocolVersion) -> ClientConfig {
    ClientConfig::new(
        Default::default(),
        Implementation::new("e2e-test-client", "0.0.1"),
    )
    .with_protocol_version(version)
}

fn transport(args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> TokioChildProcess {
    TokioChildProcess::builder(binary::command(args, env))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server binary")
        .0
}

/// Starts the binary and initializes at protocol 2025-11-25.
pub async fn connect(args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> Session {
    connect_at(args, env, ProtocolVersion::V_2025_11_25).await
}

/// Starts the binary and initializes at `version`.
pub async fn connect_at(
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
    version: ProtocolVersion,
) -> Session {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        client_info(version).serve(transport(args, env)),
    )
    .await
    .expect("initialize within 10 s")
    .expect("initialize succeeds")
}

/// Starts the binary and begins with `server/discover` (protocol 2026-07-28).
pub async fn connect_discover(args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> Session {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        client_info(ProtocolVersion::V_2026_07_28).serve_with_lifecycle(
            transport(args, env),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        ),
    )
    .await
    .expect("discover within 10 s")
    .expect("discover succeeds")
}

/// Starts the binary against the API at `base_url` with the test
/// credentials.
pub async fn connect_api(base_url: &str) -> Session {
    connect(&binary::api_args(base_url), &binary::api_env()).await
}

/// The tool list, by name.
pub async fn tools_by_name(session: &Session) -> HashMap<String, Tool> {
    let tools = session.list_all_tools().await.expect("tools/list");
    tools.into_iter().map(|t| (t.name.to_string(), t)).collect()
}

/// Calls `name` with `args` (a JSON object) and returns the result as its
/// wire JSON (`content`, `structuredContent`, `isError`).
pub async fn call_raw(session: &Session, name: &str, args: Value) -> Value {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let result = tokio::time::timeout(CALL_TIMEOUT, session.call_tool(params))
        .await
        .expect("tools/call answers within 20 s")
        .expect("tools/call succeeds at the protocol level");
    serde_json::to_value(&result).expect("result serializes")
}

/// Calls `name`, checks the result is a well-formed envelope that conforms
/// to the tool's outputSchema, and returns the envelope.
pub async fn call(session: &Session, name: &str, args: Value) -> Value {
    let tools = tools_by_name(session).await;
    let tool = tools.get(name).expect("the tool is listed");
    let result = call_raw(session, name, args).await;
    check_result(tool, &result)
}

/// Checks one `tools/call` result: the text block is the same JSON as
/// `structuredContent`, `isError` follows `success`, the envelope carries
/// `success`/`data`/`error` and conforms to the outputSchema. Returns the
/// envelope.
pub fn check_result(tool: &Tool, result: &Value) -> Value {
    let structured = result
        .get("structuredContent")
        .unwrap_or_else(|| panic!("no structuredContent in {result}"))
        .clone();
    let content = result["content"].as_array().expect("content array");
    let texts: Vec<&Value> = content.iter().filter(|c| c["type"] == "text").collect();
    assert_eq!(texts.len(), 1, "exactly one text block: {result}");
    let text: Value = serde_json::from_str(texts[0]["text"].as_str().expect("text"))
        .expect("the text block is JSON");
    assert_eq!(
        text, structured,
        "text block and structuredContent must agree"
    );
    let success = structured["success"]
        .as_bool()
        .unwrap_or_else(|| panic!("success is a bool: {structured}"));
    assert!(
        structured.get("data").is_some(),
        "data present: {structured}"
    );
    assert!(
        structured.get("error").is_some(),
        "error present: {structured}"
    );
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if success {
        assert!(!is_error, "success must not set isError: {result}");
        assert_eq!(structured["error"], Value::Null);
    } else {
        assert!(is_error, "failure must set isError: {result}");
        let error = structured["error"].as_str().expect("error is a string");
        assert!(!error.trim().is_empty());
    }
    assert_conforms(&output_schema(tool), &structured);
    structured
}

/// A tool's outputSchema as JSON.
pub fn output_schema(tool: &Tool) -> Value {
    let schema = tool
        .output_schema
        .as_ref()
        .unwrap_or_else(|| panic!("{} has an outputSchema", tool.name));
    Value::Object((**schema).clone())
}

/// A tool's inputSchema as JSON.
pub fn input_schema(tool: &Tool) -> Value {
    Value::Object((*tool.input_schema).clone())
}

/// Asserts `instance` validates against `schema`.
pub fn assert_conforms(schema: &Value, instance: &Value) {
    let validator = jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("the schema compiles ({e}): {schema}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "envelope does not conform to the outputSchema:\n{}\ninstance: {instance}\nschema: {schema}",
        errors.join("\n")
    );
}
