//! Interop with MCP clients written by others: the MCP Inspector CLI and the
//! Python `mcp` SDK (2.x). Each test is skipped, with a message saying how
//! to enable it, when its client is not installed; `.ci/run` installs both.
//!
//! - `MCP_INSPECTOR`: path of the `mcp-inspector` executable (default: found on PATH).
//! - `MCP_PYTHON`: a Python interpreter that can `import mcp` (default: `python3`).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::binary::{clear_environment, BIN};
use crate::support::json::field_of_each;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The MCP Inspector CLI, or `None` (having said how to install it) when it
/// is missing.
fn inspector() -> Option<PathBuf> {
    let found = match std::env::var_os("MCP_INSPECTOR") {
        Some(path) => Some(PathBuf::from(path)),
        None => on_path("mcp-inspector"),
    };
    if found.is_none() {
        skip(
            "the MCP Inspector CLI",
            "npm install -g @modelcontextprotocol/inspector@2.12.0 (or set MCP_INSPECTOR)",
        );
    }
    found
}

fn skip(what: &str, how: &str) {
    eprintln!("SKIPPED: {what} is not installed; {how}");
}

fn run_inspector(inspector: &PathBuf, extra: &[&str]) -> Output {
    let output = clear_environment(&mut Command::new(inspector))
        .arg("--cli")
        .arg(BIN)
        .arg("--demo")
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the inspector runs");
    assert!(
        output.status.success(),
        "inspector {extra:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The JSON document the inspector printed on stdout.
fn printed_json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find('{').expect("JSON on stdout");
    let mut stream = serde_json::Deserializer::from_str(&stdout[start..]).into_iter::<Value>();
    stream.next().expect("a document").expect("valid JSON")
}

#[test]
fn inspector_strict_lists_every_tool_without_portability_complaints() {
    let Some(inspector) = inspector() else {
        return;
    };
    let output = run_inspector(&inspector, &["--method", "tools/list", "--strict"]);
    let listed = printed_json(&output);
    assert!(listed["tools"].is_array(), "tools");
    let mut names = field_of_each(&listed["tools"], "name");
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "find_voucher_codes",
            "get_voucher_pool",
            "get_voucher_pool_stats",
            "list_projects",
            "list_voucher_codes",
            "list_voucher_pools"
        ]
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for complaint in ["Warning: tool", "Error: tool", "portability:"] {
        assert!(!all.contains(complaint), "inspector complained:\n{all}");
    }
}

#[test]
fn inspector_calls_each_tool_on_demo_data() {
    let Some(inspector) = inspector() else {
        return;
    };
    let calls = [
        ("list_projects", "{}", "demo"),
        ("list_voucher_pools", r#"{"project_id":"demo"}"#, "summer20"),
        (
            "get_voucher_pool",
            r#"{"project_id":"demo","pool_id":"welcome10"}"#,
            "WELCOME10",
        ),
        (
            "list_voucher_codes",
            r#"{"project_id":"demo","pool_id":"summer20","count":"3","status":"available"}"#,
            "available",
        ),
        (
            "get_voucher_pool_stats",
            r#"{"project_id":"demo","pool_id":"summer20"}"#,
            "\"redeemed\":576",
        ),
        (
            "find_voucher_codes",
            r#"{"project_id":"demo","pool_id":"summer20","status":"redeemed","limit":"2"}"#,
            "redeemed",
        ),
    ];
    for (tool, args, expected) in calls {
        let output = run_inspector(
            &inspector,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                tool,
                "--tool-args-json",
                args,
            ],
        );
        let result = printed_json(&output);
        assert_eq!(result["isError"], Value::Bool(false), "{tool}: {result}");
        let structured = &result["structuredContent"];
        assert_eq!(structured["success"], Value::Bool(true), "{tool}");
        assert_eq!(structured["error"], Value::Null, "{tool}");
        assert!(
            structured["data"].to_string().contains(expected),
            "{tool}: {structured}"
        );
        let text = result["content"][0]["text"].as_str().expect("text block");
        assert_eq!(
            &serde_json::from_str::<Value>(text).unwrap(),
            structured,
            "{tool}"
        );
    }
}

fn python() -> Option<String> {
    let python = std::env::var("MCP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args([
            "-c",
            "import mcp, importlib.metadata as m; assert m.version('mcp').startswith('2.')",
        ])
        .output()
        .ok()?;
    probe.status.success().then_some(python)
}

fn run_python_client(mode: &str) {
    let Some(python) = python() else {
        return skip(
            "the Python mcp SDK 2.x",
            "pip install 'mcp>=2,<3' (or set MCP_PYTHON to an interpreter that has it)",
        );
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python_client.py");
    let output = clear_environment(&mut Command::new(python))
        .args([script, BIN, mode])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("{{\"done\": \"{mode}\"}}")),
        "{stdout}"
    );
    assert_eq!(stdout.matches("\"ok\"").count(), 14, "{stdout}");
}

#[test]
fn python_sdk_legacy_mode_lists_and_calls_every_tool() {
    run_python_client("legacy");
}

#[test]
fn python_sdk_auto_mode_lists_and_calls_every_tool() {
    run_python_client("auto");
}
