//! Shared helpers for the end-to-end tests: they run the built binary as a
//! child process and talk to it over stdio, either through rmcp's client or
//! by writing JSON-RPC lines by hand, with a local fake of the Bloomreach
//! API behind it.
//!
//! Every test file includes this module and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientConfig, Implementation, ProtocolVersion, Tool};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bloomreach-vouchers-mcp");
/// The name and version the server must report.
pub const SERVER_NAME: &str = "bloomreach-vouchers-mcp";
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The four tools, in the order the server lists them.
pub const TOOL_NAMES: [&str; 4] = [
    "list_projects",
    "list_voucher_pools",
    "get_voucher_pool",
    "list_voucher_codes",
];

/// Credentials the fake API is configured with.
pub const KEY_ID: &str = "e2e-key-id";
pub const SECRET: &str = "e2e-secret-Zq9";

/// Project and pool ids the fake API knows.
pub const PROJECT: &str = "shop-eu";
pub const POOL: &str = "p1";

/// Every variable the binary reads; removed from each child so the host's
/// environment cannot leak in.
const CLEARED_ENV: [&str; 7] = [
    "BLOOMREACH_API_BASE_URL",
    "BLOOMREACH_API_KEY_ID",
    "BLOOMREACH_API_SECRET",
    "BLOOMREACH_TIMEOUT_SECS",
    "BLOOMREACH_PROJECT_TOKEN",
    "RUST_LOG",
    "NO_COLOR",
];

/// A command for the binary with a clean environment, `args` and `env`
/// (stdin empty unless the caller pipes it).
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::from(std_command(args, env));
    cmd.kill_on_drop(true);
    cmd
}

/// The same, as a blocking `std` command (for one-shot CLI runs).
pub fn std_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Arguments that point the binary at `api` with the test credentials.
pub fn api_args(api: &MockServer) -> Vec<String> {
    vec![
        "--api-base-url".into(),
        api.uri(),
        "--api-key-id".into(),
        KEY_ID.into(),
        "--timeout-secs".into(),
        "10".into(),
    ]
}

/// The environment that goes with [`api_args`] (the secret travels by
/// environment, as the README recommends).
pub fn api_env() -> Vec<(&'static str, &'static str)> {
    vec![("BLOOMREACH_API_SECRET", SECRET)]
}

// ---------------------------------------------------------------------------
// rmcp client
// ---------------------------------------------------------------------------

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

fn transport(args: &[&str], env: &[(&str, &str)]) -> TokioChildProcess {
    TokioChildProcess::builder(command(args, env))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server binary")
        .0
}

/// Starts the binary and initializes at protocol 2025-11-25.
pub async fn connect(args: &[&str], env: &[(&str, &str)]) -> Session {
    connect_at(args, env, ProtocolVersion::V_2025_11_25).await
}

/// Starts the binary and initializes at `version`.
pub async fn connect_at(args: &[&str], env: &[(&str, &str)], version: ProtocolVersion) -> Session {
    tokio::time::timeout(
        Duration::from_secs(10),
        client_info(version).serve(transport(args, env)),
    )
    .await
    .expect("initialize within 10 s")
    .expect("initialize succeeds")
}

/// Starts the binary and begins with `server/discover` (protocol 2026-07-28).
pub async fn connect_discover(args: &[&str], env: &[(&str, &str)]) -> Session {
    tokio::time::timeout(
        Duration::from_secs(10),
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

/// Starts the binary against `api` with credentials.
pub async fn connect_api(api: &MockServer) -> Session {
    let args = api_args(api);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    connect(&args, &api_env()).await
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
    let result = tokio::time::timeout(Duration::from_secs(20), session.call_tool(params))
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
    let schema = tool
        .output_schema
        .as_ref()
        .unwrap_or_else(|| panic!("{} has an outputSchema", tool.name));
    assert_conforms(&Value::Object((**schema).clone()), &structured);
    structured
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

/// Builds a JSON object from `json!` for tool arguments.
pub fn args(v: Value) -> Value {
    assert!(v.is_object());
    v
}

// ---------------------------------------------------------------------------
// The fake API
// ---------------------------------------------------------------------------

/// The contract's example answers, with a few fields the API may add (which
/// the server must drop) and a code with null times.
pub fn pools_body() -> Value {
    json!({
        "success": true,
        "data": [
            {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742, "created": 1717000000, "kind": "static"},
            {"id": "p2", "name": "Été ☀️", "total": 0, "available": 0}
        ]
    })
}

pub fn pool_body() -> Value {
    json!({
        "success": true,
        "data": {
            "id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
            "company_id": PROJECT,
            "used_by": [{"type": "campaign", "id": "c9", "name": "Summer", "extra": {"nested": [1, 2]}}],
            "created": 1717000000
        }
    })
}

pub fn codes_body() -> Value {
    json!({
        "success": true,
        "data": [
            {"code": "SUM-0001", "status": "assigned", "assigned_time": 1718000000.5, "redeemed_time": null, "customer_id": "x"},
            {"code": "SUM-0002", "status": "available", "assigned_time": null, "redeemed_time": null},
            {"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000, "redeemed_time": 1718086400.25}
        ],
        "matched": 1000, "matched_limited": false, "skip": 0, "limit": 20, "total": 1000
    })
}

/// The envelope data the server must make of [`pools_body`].
pub fn expected_pools() -> Value {
    json!([
        {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742},
        {"id": "p2", "name": "Été ☀️", "total": 0, "available": 0}
    ])
}

/// ... of [`pool_body`].
pub fn expected_pool() -> Value {
    json!({
        "id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
        "company_id": PROJECT,
        "used_by": [{"type": "campaign", "id": "c9", "name": "Summer", "extra": {"nested": [1, 2]}}]
    })
}

/// ... of [`codes_body`].
pub fn expected_codes() -> Value {
    json!([
        {"code": "SUM-0001", "status": "assigned", "assigned_time": 1718000000.5, "redeemed_time": null,
         "assigned_at": "2024-06-10T06:13:20.5Z", "redeemed_at": null},
        {"code": "SUM-0002", "status": "available", "assigned_time": null, "redeemed_time": null,
         "assigned_at": null, "redeemed_at": null},
        {"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000.0, "redeemed_time": 1718086400.25,
         "assigned_at": "2024-06-10T06:13:20Z", "redeemed_at": "2024-06-11T06:13:20.25Z"}
    ])
}

pub fn pools_path(project: &str) -> String {
    format!("/data/v2/projects/{project}/vouchers/pools")
}

pub fn pool_path(project: &str, pool: &str) -> String {
    format!("/data/v2/projects/{project}/vouchers/pools/{pool}")
}

pub fn codes_path(project: &str, pool: &str) -> String {
    format!("/data/v2/projects/{project}/vouchers/pools/{pool}/codes")
}

/// A fake API that answers the three endpoints of [`PROJECT`]/[`POOL`]
/// with the example bodies.
pub async fn fake_api() -> MockServer {
    let server = MockServer::start().await;
    for (p, body) in [
        (pools_path(PROJECT), pools_body()),
        (pool_path(PROJECT, POOL), pool_body()),
        (codes_path(PROJECT, POOL), codes_body()),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    server
}

/// A fake API that answers every request with `template`.
pub async fn fake_api_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// The requests the fake received.
pub async fn requests(api: &MockServer) -> Vec<wiremock::Request> {
    api.received_requests().await.expect("recording is on")
}

// ---------------------------------------------------------------------------
// Raw stdio
// ---------------------------------------------------------------------------

/// The binary on raw pipes: lines are written and read by hand. stdout and
/// stderr are collected in full so tests can look at every byte.
pub struct RawSession {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stdout line so far, including those already consumed.
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Option<tokio::task::JoinHandle<()>>,
    stdout_done: Option<tokio::task::JoinHandle<()>>,
    /// Messages read while waiting for something else.
    pub skipped: Vec<Value>,
}

impl RawSession {
    /// Starts the binary with piped stdio.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = command(args, env);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the server binary");
        let stdin = child.stdin.take();
        let stdout_pipe = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::unbounded_channel();
        let all = stdout.clone();
        let stdout_done = tokio::spawn(async move {
            let mut reader = BufReader::new(stdout_pipe);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        all.lock().unwrap().push(line.clone());
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let err_buf = stderr.clone();
        let stderr_done = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            loop {
                match stderr_pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => err_buf.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            stdout,
            stderr,
            stderr_done: Some(stderr_done),
            stdout_done: Some(stdout_done),
            skipped: Vec::new(),
        }
    }

    /// Writes `text` followed by a newline.
    pub async fn send_line(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Writes one JSON-RPC message.
    pub async fn send(&mut self, message: Value) {
        self.send_line(&message.to_string()).await;
    }

    /// Sends a request.
    pub async fn request(&mut self, id: i64, method: &str, params: Value) {
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(msg).await;
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        let mut msg = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(msg).await;
    }

    /// The next stdout message, within `wait`. Panics if a line is not JSON
    /// (stdout must carry nothing else). `None` on timeout or EOF.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.recv())
            .await
            .ok()
            .flatten()?;
        Some(
            serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("stdout carried a line that is not JSON ({e}): {line:?}")
            }),
        )
    }

    /// Reads until the response (result or error) to `id`, keeping other
    /// messages in `skipped`.
    pub async fn response(&mut self, id: i64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next_message(left).await.unwrap_or_else(|| {
                panic!("no response to id {id}; stderr: {}", self.stderr_text())
            });
            if msg.get("id") == Some(&json!(id))
                && (msg.get("result").is_some() || msg.get("error").is_some())
            {
                return msg;
            }
            self.skipped.push(msg);
        }
    }

    /// Sends a request and returns its response.
    pub async fn roundtrip(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.request(id, method, params).await;
        self.response(id).await
    }

    /// `initialize` at `version` (id 0) followed by `notifications/initialized`.
    pub async fn initialize(&mut self, version: &str) -> Value {
        let response = self
            .roundtrip(0, "initialize", initialize_params(version))
            .await;
        assert!(
            response.get("result").is_some(),
            "initialize failed: {response}"
        );
        self.notify("notifications/initialized", Value::Null).await;
        response
    }

    /// Asserts `ping` with `id` is answered with an empty result.
    pub async fn assert_ping(&mut self, id: i64) {
        let response = self.roundtrip(id, "ping", Value::Null).await;
        assert_eq!(response["result"], json!({}), "ping answer: {response}");
    }

    /// Closes stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `wait` for the process to exit.
    pub async fn wait_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("wait on the child"))
    }

    /// Closes stdin, waits for exit and for both pipes to end, and returns
    /// all of stdout and stderr.
    pub async fn finish(mut self) -> (String, String) {
        self.close_stdin();
        let status = self.wait_exit(Duration::from_secs(5)).await;
        assert!(status.is_some(), "the server exits after stdin closes");
        if let Some(h) = self.stdout_done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        if let Some(h) = self.stderr_done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        let out = self.stdout.lock().unwrap().concat();
        let err = self.stderr_text();
        (out, err)
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the child is running")
    }
}

/// `initialize` params at `version`.
pub fn initialize_params(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "e2e-raw-client", "version": "0.0.1"}
    })
}

/// `tools/call` params.
pub fn call_params(name: &str, arguments: Value) -> Value {
    json!({"name": name, "arguments": arguments})
}

/// The `structuredContent` of a raw `tools/call` response.
pub fn structured(response: &Value) -> &Value {
    response
        .pointer("/result/structuredContent")
        .unwrap_or_else(|| panic!("no structuredContent in {response}"))
}

/// A JSON object as a `serde_json::Map`.
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}
