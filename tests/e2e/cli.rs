//! The command line as a person meets it: a terminal gets a hint and pretty
//! output, usage errors exit 2, and projects come from
//! `BLOOMREACH_PROJECT_TOKEN`.
//!
//! The terminal cases run the binary under `script`, which gives it a
//! pseudo-terminal; they are skipped with a message where `script` is
//! missing.

use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::support::binary::{clear_environment, run, BIN};

/// Runs the binary on a pseudo-terminal; `None` when `script` is missing.
fn run_on_terminal(args: &str) -> Option<String> {
    let probe = Command::new("script").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: `script` (util-linux) is not installed, so no terminal can be faked");
        return None;
    }
    let output = clear_environment(&mut Command::new("script"))
        .args(["-qec", &format!("{BIN} {args}"), "/dev/null"])
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    Some(String::from_utf8_lossy(&output.stdout).replace('\r', ""))
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("one JSON document on stdout")
}

#[test]
fn serving_on_a_terminal_says_how_to_use_it() {
    let Some(screen) = run_on_terminal("--demo") else {
        return;
    };
    assert!(
        screen.contains(
            "speaks MCP (JSON-RPC) on stdin/stdout and is meant to be started by an AI assistant"
        ),
        "{screen}"
    );
    assert!(
        screen.contains("bloomreach-vouchers-mcp --demo call list_voucher_pools project_id=demo"),
        "{screen}"
    );
}

#[test]
fn call_on_a_terminal_prints_indented_json() {
    let Some(screen) =
        run_on_terminal("--demo call get_voucher_pool project_id=demo pool_id=welcome10")
    else {
        return;
    };
    assert!(
        screen.starts_with("{\n  \"success\": true,\n  \"data\": {\n    \"id\": \"welcome10\""),
        "{screen}"
    );
    let parsed: Value = serde_json::from_str(&screen).expect("the screen holds the JSON");
    assert_eq!(parsed["data"]["name"], "WELCOME10");
}

#[test]
fn a_piped_call_prints_one_line() {
    let output = run(&["--demo", "call", "list_projects"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"success\":true,\"data\":[{\"id\":\"demo\",\"name\":\"Demo store (sample data)\",\"organization\":null,\"workspace\":null}],\"error\":null}\n"
    );
}

#[test]
fn an_unknown_tool_is_a_usage_error() {
    let output = run(&["--demo", "call", "list_vouchers"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: unknown tool \"list_vouchers\"; the tools are list_projects, list_voucher_pools, get_voucher_pool, list_voucher_codes, get_voucher_pool_stats, find_voucher_codes\n"
    );
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let output = run(&["--demo", "call", "list_voucher_pools", "project_id"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: arguments are key=value pairs; \"project_id\" has no '='\n"
    );
    let output = run(
        &["--demo", "call", "list_voucher_pools", "--json", "[1]"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).starts_with("error: --json must be a JSON object")
    );
}

#[test]
fn projects_come_from_the_project_token_setting() {
    let output = run(
        &["call", "list_projects"],
        &[
            ("BLOOMREACH_PROJECT_TOKEN", "abc-123=Main store, def-456 ,,"),
            ("BLOOMREACH_API_KEY_ID", "key"),
            ("BLOOMREACH_API_SECRET", "secret"),
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout_json(&output),
        json!({"success": true, "data": [
            {"id": "abc-123", "name": "Main store", "organization": null, "workspace": null},
            {"id": "def-456", "name": "def-456", "organization": null, "workspace": null}
        ], "error": null})
    );
    let output = run(
        &["--project-token", "flag-wins", "call", "list_projects"],
        &[
            ("BLOOMREACH_PROJECT_TOKEN", "from-env"),
            ("BLOOMREACH_API_KEY_ID", "key"),
            ("BLOOMREACH_API_SECRET", "secret"),
        ],
    );
    assert_eq!(
        stdout_json(&output)["data"],
        json!([{"id": "flag-wins", "name": "flag-wins", "organization": null, "workspace": null}])
    );
}

#[test]
fn without_any_way_in_list_projects_fails_naming_every_way_in() {
    // Projects alone are no way in: the answer would lead nowhere.
    for env in [&[][..], &[("BLOOMREACH_PROJECT_TOKEN", "abc")][..]] {
        let output = run(&["call", "list_projects"], env);
        assert_eq!(output.status.code(), Some(1));
        let envelope = stdout_json(&output);
        assert_eq!(
            (&envelope["success"], &envelope["data"]),
            (&json!(false), &json!([]))
        );
        let error = envelope["error"].as_str().unwrap();
        for named in [
            "BLOOMREACH_LOOMI_URL",
            "\"Loomi Connect URL\"",
            "BLOOMREACH_API_KEY_ID",
            "\"API key ID\"",
            "BLOOMREACH_API_SECRET",
            "BLOOMREACH_DEMO=true",
            "\"Demo data (no account needed)\"",
            "us, eu, uk, ca or ap",
        ] {
            assert!(error.contains(named), "{named}: {error}");
        }
    }
}

#[test]
fn the_demo_is_switched_on_by_its_variable_as_by_the_flag() {
    for value in ["true", "1"] {
        let output = run(&["call", "list_projects"], &[("BLOOMREACH_DEMO", value)]);
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(stdout_json(&output)["data"][0]["id"], "demo");
    }
    // Off, or the bundle's placeholder left unfilled: not the demo.
    for value in ["false", "0", "${user_config.demo}"] {
        let output = run(&["call", "list_projects"], &[("BLOOMREACH_DEMO", value)]);
        assert_eq!(output.status.code(), Some(1), "{value}");
    }
    let output = run(&["call", "list_projects"], &[("BLOOMREACH_DEMO", "maybe")]);
    assert_eq!(output.status.code(), Some(2));
    // The flag takes a value only after `=`: `--demo call` is not a value.
    let output = run(&["--demo", "call", "list_projects"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let output = run(&["--demo=false", "call", "list_projects"], &[]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn without_credentials_a_call_names_both_settings_and_exits_1() {
    let output = run(&["call", "list_voucher_pools", "project_id=abc"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let envelope = stdout_json(&output);
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["data"], json!([]));
    let error = envelope["error"].as_str().unwrap();
    assert!(
        error.contains("BLOOMREACH_API_KEY_ID") && error.contains("BLOOMREACH_API_SECRET"),
        "{error}"
    );
}

#[test]
fn a_bad_project_token_setting_exits_2_naming_it() {
    let output = run(
        &["call", "list_projects"],
        &[("BLOOMREACH_PROJECT_TOKEN", "=Nameless")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: BLOOMREACH_PROJECT_TOKEN (--project-token) has an entry without a token: \"=Nameless\"\n"
    );
}

#[test]
fn tools_shows_each_argument_with_its_default() {
    let output = run(&["tools"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("list_voucher_codes — List voucher codes\n"),
        "{text}"
    );
    assert!(
        text.contains("    count (integer, optional, default 20): "),
        "{text}"
    );
    assert!(
        text.contains("    skip (integer, optional, default 0): "),
        "{text}"
    );
    assert!(text.contains("    pool_id (string, required): "), "{text}");
    assert!(
        text.contains("list_projects — List configured Bloomreach projects\n    (no arguments)\n"),
        "{text}"
    );
}

#[test]
fn doctor_passes_on_demo_data_and_fails_without_a_way_in() {
    let output = run(&["--demo", "doctor"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let out = String::from_utf8_lossy(&output.stdout);
    let steps: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("[ok]   "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(steps, ["settings", "projects", "pools", "codes"], "{out}");
    assert!(out.contains("5 code(s) of pool \"SUMMER20\" read"), "{out}");
    let output = run(&["doctor", "--json"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let report = stdout_json(&output);
    assert_eq!(report["backend"], "unconfigured");
    assert_eq!(report["steps"][0]["name"], "settings");
    assert_eq!(report["steps"][0]["ok"], false);
    assert!(report["steps"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("BLOOMREACH_LOOMI_URL"));
    // A secret set is named, never shown; a setting that cannot work is
    // a usage error.
    let output = run(
        &["doctor"],
        &[
            ("BLOOMREACH_API_KEY_ID", "doctor-key"),
            ("BLOOMREACH_API_SECRET", "doctor-secret-9f"),
            ("BLOOMREACH_API_BASE_URL", "http://127.0.0.1:9"),
        ],
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("BLOOMREACH_API_SECRET (set)"), "{out}");
    assert!(
        !out.contains("doctor-secret-9f") && !out.contains("doctor-key"),
        "{out}"
    );
    let output = run(&["doctor"], &[("BLOOMREACH_TIMEOUT_SECS", "0")]);
    assert_eq!(output.status.code(), Some(2));
}
