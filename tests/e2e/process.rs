//! The process as a whole: how it starts, stops and fails, its command line
//! for people, and what it never lets out (the API secret).

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use wiremock::matchers::{path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::binary::run;
use crate::support::fake_api::{pools_body, pools_path, session_with_a_call_in_flight, slow_api};
use crate::support::json::field_of_each;
use crate::support::jsonrpc::{call_params, structured, Session};
use crate::support::TOOL_NAMES;

// ---------------------------------------------------------------------------
// Stopping
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exits_within_two_seconds_after_stdin_closes() {
    let mut s = Session::start(&["--demo"], &[]);
    s.initialize("2025-11-25").await;
    s.assert_ping(1).await;
    s.close_stdin().await;
    let started = Instant::now();
    let status = s
        .wait_exit(Duration::from_secs(2))
        .await
        .expect("exited within 2 s of stdin closing");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn exits_after_stdin_closes_even_before_initialize() {
    let mut s = Session::start(&["--demo"], &[]);
    s.close_stdin().await;
    let status = s
        .wait_exit(Duration::from_secs(2))
        .await
        .expect("exited within 2 s of stdin closing");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn exits_within_a_second_after_stdin_closes_with_a_call_in_flight() {
    let api = slow_api().await;
    let mut s = session_with_a_call_in_flight(&api, 3).await;
    s.close_stdin().await;
    let status = s.wait_exit(Duration::from_secs(1)).await;
    assert!(
        status.is_some(),
        "still running 1 s after stdin closed with a slow call in flight"
    );
}

#[tokio::test]
async fn exits_promptly_on_sigterm() {
    let mut s = Session::start(&["--demo"], &[]);
    s.initialize("2025-11-25").await;
    s.assert_ping(1).await;
    assert_sigterm_ends_it_cleanly(&mut s).await;
}

/// Sends SIGTERM and asserts a clean exit within 2 s.
async fn assert_sigterm_ends_it_cleanly(s: &mut Session) {
    sigterm(s.pid());
    let status = s
        .wait_exit(Duration::from_secs(2))
        .await
        .expect("exited within 2 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "a clean exit: {status:?}");
}

fn sigterm(pid: u32) {
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
}

#[tokio::test]
async fn exits_promptly_on_sigterm_before_initialize() {
    let mut s = Session::start(&["--demo"], &[]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    sigterm(s.pid());
    let status = s.wait_exit(Duration::from_secs(2)).await;
    assert!(status.is_some(), "exited within 2 s of SIGTERM");
}

#[tokio::test]
async fn exits_promptly_on_sigterm_with_a_call_in_flight() {
    let api = slow_api().await;
    let mut s = session_with_a_call_in_flight(&api, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_sigterm_ends_it_cleanly(&mut s).await;
}

// ---------------------------------------------------------------------------
// Bad configuration
// ---------------------------------------------------------------------------

/// Arguments, environment, and the setting the error must name.
type BadConfigCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_setting() {
    let cases: [BadConfigCase; 5] = [
        (
            &["--api-base-url", "http://example.com"],
            &[],
            "BLOOMREACH_API_BASE_URL",
        ),
        (
            &["--api-base-url", "not a url"],
            &[],
            "BLOOMREACH_API_BASE_URL",
        ),
        (&["--timeout-secs", "0"], &[], "BLOOMREACH_TIMEOUT_SECS"),
        (
            &[],
            &[("BLOOMREACH_TIMEOUT_SECS", "soon")],
            "BLOOMREACH_TIMEOUT_SECS",
        ),
        (
            &[],
            &[("BLOOMREACH_PROJECT_TOKEN", "a/b")],
            "BLOOMREACH_PROJECT_TOKEN",
        ),
    ];
    for (args, env, setting) in cases {
        let args: Vec<&str> = args
            .iter()
            .copied()
            .chain(["call", "list_projects"])
            .collect();
        let out = run(&args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?} {env:?}: one line: {stderr:?}"
        );
        assert!(stderr.contains(setting), "{args:?} {env:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
    // The flag spelling is named too.
    let out = run(&["--timeout-secs", "0", "tools"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout-secs"));
}

/// Environment, then the variable, the form's field and the fix the
/// error must name.
type SetupCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);

/// Serving, a setting that cannot work does not stop the server: it
/// starts, says so in its instructions, logs it once, and every tool
/// answers a failure naming the variable, the form's field and the fix.
#[tokio::test]
async fn serving_with_a_setting_that_cannot_work_answers_it_from_every_tool() {
    let secret = "serve-secret-Qz81";
    let cases: [SetupCase; 5] = [
        (
            &[("BLOOMREACH_LOOMI_URL", "eu.connect.loomi.ai")],
            "BLOOMREACH_LOOMI_URL",
            "\"Loomi Connect URL\" field",
            "add it, as in \"https://eu.connect.loomi.ai\"",
        ),
        (
            &[
                ("BLOOMREACH_LOOMI_URL", "https://eu.connect.loomi.ai/mcp"),
                ("BLOOMREACH_API_KEY_ID", "key-id"),
                ("BLOOMREACH_API_SECRET", secret),
            ],
            "BLOOMREACH_LOOMI_URL",
            "\"Loomi Connect URL\" field",
            "keep one",
        ),
        (
            &[("BLOOMREACH_API_KEY_ID", "key-id")],
            "BLOOMREACH_API_SECRET",
            "\"API secret\" field",
            "add the key's secret",
        ),
        (
            &[("BLOOMREACH_API_SECRET", secret)],
            "BLOOMREACH_API_KEY_ID",
            "\"API key ID\" field",
            "add the key ID",
        ),
        (
            &[("BLOOMREACH_DEMO", "yes please")],
            "BLOOMREACH_DEMO",
            "\"Demo data (no account needed)\" field",
            "must be true or false",
        ),
    ];
    for (env, variable, field, fix) in cases {
        let mut s = Session::start(&Vec::<String>::new(), env);
        let init = s.initialize("2025-11-25").await;
        let instructions = init["result"]["instructions"].as_str().unwrap();
        assert!(
            instructions.contains("SETUP IS INCOMPLETE"),
            "{instructions}"
        );
        assert!(instructions.contains(variable), "{instructions}");
        for (id, tool, args) in [
            (1, "list_projects", json!({})),
            (2, "list_voucher_pools", json!({"project_id": "p"})),
            (
                3,
                "get_voucher_pool_stats",
                json!({"project_id": "p", "pool_id": "q"}),
            ),
        ] {
            let envelope = s.call_tool(id, tool, args).await;
            assert_eq!(envelope["success"], false, "{tool}: {envelope}");
            let error = envelope["error"].as_str().unwrap();
            for said in [variable, field, fix, "restart the server"] {
                assert!(error.contains(said), "{tool} {env:?}: {said}: {error}");
            }
            assert!(!error.contains(secret), "{error}");
        }
        let (stdout, stderr) = s.finish().await;
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(variable), "{stderr}");
    }
}

#[test]
fn help_does_not_show_the_secret() {
    let secret = "help-secret-Wm3xQ";
    let out = run(
        &["--help"],
        &[
            ("BLOOMREACH_API_SECRET", secret),
            ("BLOOMREACH_API_KEY_ID", "help-key-id"),
        ],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("BLOOMREACH_API_SECRET"), "{stdout}");
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(!stderr.contains(secret), "{stderr}");
    let out = run(&["call", "--help"], &[("BLOOMREACH_API_SECRET", secret)]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
}

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

#[test]
fn cli_call_prints_one_compact_envelope_and_exits_0() {
    let out = run(
        &["--demo", "call", "list_voucher_pools", "project_id=demo"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "compact, on one line: {stdout}");
    assert!(stdout.starts_with("{\"success\":true,"), "{stdout}");
    let envelope: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(envelope["error"], Value::Null);
    assert_eq!(
        field_of_each(&envelope["data"], "id"),
        ["summer20", "welcome10", "ete-bienvenue", "black-friday"]
    );
}

/// Runs `--demo call` with `call_args`; its exit code and the envelope it
/// printed.
fn demo_call(call_args: &[&str]) -> (Option<i32>, Value) {
    let args = [&["--demo", "call"], call_args].concat();
    let out = run(&args, &[]);
    let envelope = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code(), envelope)
}

#[test]
fn cli_call_reads_integers_from_pairs_and_json() {
    let (code, envelope) = demo_call(&[
        "list_voucher_codes",
        "--json",
        r#"{"project_id": "demo", "count": 3}"#,
        "pool_id=summer20",
        "skip=5",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(envelope["data"].as_array().unwrap().len(), 3);
    assert_eq!(
        (envelope["skip"].clone(), envelope["limit"].clone()),
        (json!(5), json!(3))
    );
}

#[test]
fn cli_failing_call_prints_the_failure_envelope_and_exits_1() {
    let (code, envelope) = demo_call(&["get_voucher_pool", "project_id=demo", "pool_id=nope"]);
    assert_eq!(code, Some(1));
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["data"], Value::Null);
    assert!(envelope["error"].as_str().unwrap().contains("\"nope\""));

    let (code, envelope) = demo_call(&[
        "list_voucher_codes",
        "project_id=demo",
        "pool_id=summer20",
        "count=5000",
    ]);
    assert_eq!(code, Some(1));
    assert!(envelope["error"]
        .as_str()
        .unwrap()
        .contains("count must be between 1 and 1000 (got 5000)"));
}

#[test]
fn cli_tools_lists_every_tool() {
    let out = run(&["--demo", "tools"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, TOOL_NAMES);
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_secret_never_appears_on_stdout_or_stderr_even_at_trace() {
    let secret = "Sup3r-Distinctive-S3cret-7781";
    let key_id = "trace-key-id";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{secret}"));

    let api = MockServer::start().await;
    // Success.
    Mock::given(path(pools_path("ok")))
        .respond_with(ResponseTemplate::new(200).set_body_json(pools_body()))
        .mount(&api)
        .await;
    // An API that quotes the credentials back in its error.
    Mock::given(path(pools_path("echo")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "success": false,
            "error": format!("bad header Authorization: Basic {basic} (secret {secret})")
        })))
        .mount(&api)
        .await;
    Mock::given(path(pools_path("refused")))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(format!("key {key_id}:{secret} refused; Basic {basic}")),
        )
        .mount(&api)
        .await;
    Mock::given(path(pools_path("broken")))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "0")
                .set_body_string(format!("<html><body>upstream said {secret}</body></html>")),
        )
        .mount(&api)
        .await;
    Mock::given(path(pools_path("junk")))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("not json {basic}")))
        .mount(&api)
        .await;
    Mock::given(path_regex(r"/codes$"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "success": false, "errors": [format!("not authorized {secret}")]
        })))
        .mount(&api)
        .await;

    let uri = api.uri();
    let mut s = Session::start(
        &["--api-base-url", &uri, "--api-key-id", key_id],
        &[("BLOOMREACH_API_SECRET", secret), ("RUST_LOG", "trace")],
    );
    s.initialize("2025-11-25").await;
    let mut id = 1;
    let mut outcomes = Vec::new();
    for project in ["ok", "echo", "refused", "broken", "junk"] {
        let response = s
            .roundtrip(
                id,
                "tools/call",
                call_params("list_voucher_pools", json!({"project_id": project})),
            )
            .await;
        outcomes.push((project, structured(&response)["success"].clone()));
        id += 1;
    }
    let response = s
        .roundtrip(
            id,
            "tools/call",
            call_params(
                "list_voucher_codes",
                json!({"project_id": "x", "pool_id": "y"}),
            ),
        )
        .await;
    outcomes.push(("codes", structured(&response)["success"].clone()));
    assert_eq!(
        outcomes,
        vec![
            ("ok", json!(true)),
            ("echo", json!(false)),
            ("refused", json!(false)),
            ("broken", json!(false)),
            ("junk", json!(false)),
            ("codes", json!(false)),
        ]
    );
    let (stdout, stderr) = s.finish().await;
    assert!(
        stderr.len() > 1000,
        "trace logging wrote something: {stderr}"
    );
    let mut outputs = vec![
        ("serve stdout".to_owned(), stdout),
        ("serve stderr".to_owned(), stderr),
    ];

    // The command line, through the same paths, and a bad configuration.
    let env = [("BLOOMREACH_API_SECRET", secret), ("RUST_LOG", "trace")];
    for project in ["ok", "echo", "refused", "broken", "junk"] {
        let pair = format!("project_id={project}");
        let out = run(
            &[
                "--api-base-url",
                &uri,
                "--api-key-id",
                key_id,
                "call",
                "list_voucher_pools",
                &pair,
            ],
            &env,
        );
        let expected = if project == "ok" { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(expected), "{project}");
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            outputs.push((
                format!("call {project} {stream}"),
                String::from_utf8_lossy(bytes).into_owned(),
            ));
        }
    }
    let out = run(
        &[
            "--api-base-url",
            "http://example.com",
            "--api-key-id",
            key_id,
            "--api-secret",
            secret,
            "call",
            "list_projects",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    outputs.push((
        "bad config stderr".to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ));

    for (name, text) in &outputs {
        assert!(!text.contains(secret), "the secret is on {name}:\n{text}");
        assert!(
            !text.contains(&basic),
            "the Basic token is on {name}:\n{text}"
        );
    }
}
