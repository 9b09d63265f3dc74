//! Loomi Connect as the backend, through the built binary, against the fake
//! Loomi of `tests/support/fake_loomi.rs`: the whole login (`login
//! --no-browser`, the URL followed as a browser would), `login --status`,
//! `logout`, serving each tool with exact data, refresh and revocation, the
//! login started by a tool call, pacing, rate limits, Loomi's errors, and
//! tokens never on stdout or stderr.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::binary::command;
use crate::support::fake_loomi::{FakeLoomi, ToolFault, LOOMI_POOL, LOOMI_PROJECT};
use crate::support::jsonrpc::Session;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vouchers-loomi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn env_for<'a>(loomi: &'a str, file: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("BLOOMREACH_LOOMI_URL", loomi),
        ("BLOOMREACH_CREDENTIALS_FILE", file),
        ("BLOOMREACH_TIMEOUT_SECS", "10"),
    ]
}

/// Runs `login --no-browser`, plays the browser with the URL it prints,
/// and returns (exit code, stdout, stderr).
async fn login(fake: &FakeLoomi, file: &Path, extra: &[(&str, &str)]) -> (i32, String, String) {
    let url = fake.mcp_url();
    let file = file.to_str().unwrap().to_owned();
    let mut env = env_for(&url, &file);
    env.extend_from_slice(extra);
    let mut cmd = command(&["login", "--no-browser"], &env);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let authorization_url = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
            .await
            .expect("login prints its URL in time")
            .unwrap()
            .unwrap_or_else(|| panic!("login ended before a URL: {seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("http") {
            break line;
        }
    };
    assert!(!authorization_url.contains(' '), "the URL stands alone");
    // A callback with another state is refused, and the login waits on.
    let redirect = reqwest::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let forged = crate::support::http_client().no_proxy().build().unwrap();
    let refused = forged
        .get(format!("{redirect}?code=stolen&state=not-the-one"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("state differs"));
    let (status, page) = FakeLoomi::approve(&authorization_url).await;
    assert_eq!(status, 200, "{page}");
    while let Ok(Some(line)) = stderr.next_line().await {
        seen.push_str(&line);
        seen.push('\n');
    }
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        seen,
    )
}

#[tokio::test]
async fn the_whole_login_registers_uses_pkce_and_keeps_the_tokens_privately() {
    let fake = FakeLoomi::start().await;
    let dir = scratch("login");
    let file = dir.join("private/loomi.json");
    let (code, stdout, stderr) = login(&fake, &file, &[("RUST_LOG", "trace")]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "Logged in to Loomi Connect at {}; it offers voucher tools get_voucher_pool, list_voucher_codes, list_voucher_pools.\n",
            fake.addr
        )
    );
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let tokens = &stored["credentials"]["token_response"];
    let token = tokens["access_token"].as_str().unwrap();
    assert!(token.starts_with("loomi-at-"));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "trace logging was on: {stderr}"
    );
    for secret in [token, refresh] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
    }
    fake.with(|s| {
        assert_eq!(s.registrations.len(), 1);
        let q = &s.authorize_queries[0];
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["resource"], fake.mcp_url());
        assert_eq!(q["state"].len(), 22);
        assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));
        assert!(q["redirect_uri"].ends_with("/callback"));
        let exchange = &s.token_forms[0];
        assert_eq!(exchange["grant_type"], "authorization_code");
        assert_eq!(exchange["resource"], fake.mcp_url());
        assert_eq!(exchange["code_verifier"].len(), 43);
    });

    // --status says so without a token; logout removes it.
    let url = fake.mcp_url();
    let path = file.to_str().unwrap().to_owned();
    let out = command(&["login", "--status"], &env_for(&url, &path))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "Logged in to Loomi Connect at {url} (renewable); its access token expires at "
        )),
        "{text}"
    );
    assert!(!text.contains(token));
    let out = command(&["logout"], &env_for(&url, &path))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!file.exists());
    let out = command(&["logout"], &env_for(&url, &path))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "logout without a login");
    let out = command(&["login", "--status"], &env_for(&url, &path))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_preset_client_id_skips_registration_and_a_denial_ends_the_login() {
    let fake = FakeLoomi::start().await;
    let dir = scratch("preset");
    let file = dir.join("loomi.json");
    fake.with(|s| {
        s.clients.insert("preset-client".into(), vec![]);
    });
    let (code, stdout, stderr) = login(
        &fake,
        &file,
        &[("BLOOMREACH_LOOMI_CLIENT_ID", "preset-client")],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    fake.with(|s| {
        assert!(s.registrations.is_empty());
        assert_eq!(s.authorize_queries[0]["client_id"], "preset-client");
    });

    fake.with(|s| s.deny = true);
    let (code, stdout, stderr) = login(&fake, &dir.join("other.json"), &[]).await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last,
        "error: the login failed: the authorization server answered access_denied: The user said no. Try again; if it is refused again, ask a Bloomreach administrator to give your account access to Loomi Connect, and check that the Loomi URL is the one of your account's region (us, eu, uk, ca, ap)"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A logged-in credentials file for `fake`, made by a real login.
async fn logged_in(fake: &FakeLoomi, name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let file = dir.join("loomi.json");
    let (code, out, err) = login(fake, &file, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    // The login's own check called one tool that reads: the tests count
    // the calls that serving makes.
    assert_eq!(
        fake.with(|s| s.calls.iter().map(|c| c.name.clone()).collect::<Vec<_>>()),
        ["list_projects"]
    );
    fake.with(|s| s.calls.clear());
    (dir, file)
}

async fn serve(fake: &FakeLoomi, file: &Path, extra: &[(&str, &str)]) -> Session {
    let url = fake.mcp_url();
    let path = file.to_str().unwrap().to_owned();
    let mut env = env_for(&url, &path);
    env.extend_from_slice(extra);
    let mut session = Session::start(&Vec::<String>::new(), &env);
    session.initialize("2025-11-25").await;
    session
}

/// `list_voucher_pools` until it succeeds (the callback's login is stored
/// a moment after the page is served), at most 20 times.
async fn pools_once_logged_in(session: &mut Session) -> Value {
    let mut answer = Value::Null;
    for attempt in 0..20 {
        answer = call(
            session,
            100 + attempt,
            "list_voucher_pools",
            json!({"project_id": LOOMI_PROJECT}),
        )
        .await;
        if answer["success"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answer
}

async fn call(session: &mut Session, id: u64, name: &str, args: Value) -> Value {
    session.call_tool(id, name, args).await
}

#[tokio::test]
async fn each_tool_is_served_from_loomi_with_exact_data_and_nothing_is_sent_at_start() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "serve").await;
    let before = fake.with(|s| s.mcp_requests);
    let mut session = serve(&fake, &file, &[("RUST_LOG", "trace")]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.with(|s| s.mcp_requests), before, "no request at start");

    let pools = call(
        &mut session,
        1,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(
        pools,
        json!({"success": true, "error": null, "data": [
            {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742},
            {"id": "p2", "name": "WINTER", "total": 10, "available": 0}
        ]})
    );
    let pool = call(
        &mut session,
        2,
        "get_voucher_pool",
        json!({"project_id": LOOMI_PROJECT, "pool_id": LOOMI_POOL}),
    )
    .await;
    assert_eq!(
        pool["data"],
        json!({"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742, "company_id": LOOMI_PROJECT, "used_by": [{"type": "campaign", "id": "c9"}]})
    );
    let codes = call(&mut session, 3, "list_voucher_codes", json!({"project_id": LOOMI_PROJECT, "pool_id": LOOMI_POOL, "count": "2", "status": "redeemed"})).await;
    assert_eq!(codes["matched"], 120);
    assert_eq!(
        codes["data"],
        json!([{"code": "SUM-0003", "status": "redeemed", "assigned_time": 1718000000.0, "redeemed_time": 1718086400.25, "assigned_at": "2024-06-10T06:13:20Z", "redeemed_at": "2024-06-11T06:13:20.25Z"}])
    );
    let stats = call(
        &mut session,
        4,
        "get_voucher_pool_stats",
        json!({"project_id": LOOMI_PROJECT, "pool_id": LOOMI_POOL}),
    )
    .await;
    assert_eq!(
        stats["data"],
        json!({"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742, "assigned": 253, "redeemed": 120})
    );
    let projects = call(&mut session, 5, "list_projects", json!({})).await;
    assert_eq!(
        projects["data"],
        json!([{"id": LOOMI_PROJECT, "name": "Main store", "organization": null, "workspace": null}, {"id": "proj-2", "name": "Outlet", "organization": null, "workspace": null}])
    );
    fake.with(|s| {
        let codes_call = s
            .calls
            .iter()
            .find(|c| c.name == "list_voucher_codes")
            .unwrap();
        // Integers go on as JSON integers.
        assert_eq!(codes_call.arguments["count"], json!(2));
        assert_eq!(codes_call.arguments["skip"], json!(0));
    });
    let tokens: Vec<String> = fake.with(|s| s.bearer_seen.clone());
    let (stdout, stderr) = session.finish().await;
    for t in tokens.iter().filter(|t| !t.is_empty()) {
        assert!(!stdout.contains(t.as_str()), "token on stdout");
        assert!(!stderr.contains(t.as_str()), "token on stderr");
    }
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "trace logging was on"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_scan_through_loomi_asks_for_no_page_before_it_is_needed() {
    // The first page matches nothing, the second fills the limit. Over the
    // REST API the third page would have been asked for ahead; Loomi's
    // calls are paced, so nothing is gained by it and nothing is asked.
    let fake = FakeLoomi::start().await;
    let mut codes: Vec<Value> = (0..1000)
        .map(|i| json!({"code": format!("A-{i:05}"), "status": "available", "assigned_time": null, "redeemed_time": null}))
        .collect();
    codes.extend((0..2000).map(|i| {
        json!({"code": format!("R-{i:05}"), "status": "redeemed", "assigned_time": 1718000000.0, "redeemed_time": 1718000100.0})
    }));
    fake.with(|s| s.paged_codes = Some(codes));
    let (dir, file) = logged_in(&fake, "scan").await;
    let mut session = serve(&fake, &file, &[]).await;
    let found = call(
        &mut session,
        1,
        "find_voucher_codes",
        json!({"project_id": LOOMI_PROJECT, "pool_id": LOOMI_POOL, "code_prefix": "r-", "limit": 10}),
    )
    .await;
    let codes: Vec<&str> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10, "{found}");
    assert_eq!((codes[0], codes[9]), ("R-00000", "R-00009"));
    assert_eq!(
        (
            found["scanned"].clone(),
            found["matched"].clone(),
            found["complete"].clone(),
            found["next_skip"].clone()
        ),
        (json!(1010), json!(3000), json!(false), json!(1010))
    );
    let asked: Vec<(Value, Value)> = fake.with(|s| {
        s.calls
            .iter()
            .filter(|c| c.name == "list_voucher_codes")
            .map(|c| (c.arguments["skip"].clone(), c.arguments["count"].clone()))
            .collect()
    });
    assert_eq!(asked, [(json!(0), json!(1000)), (json!(1000), json!(1000))]);
    session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_a_revoked_login_starts_a_new_one() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "refresh").await;
    let mut session = serve(&fake, &file, &[]).await;
    let ok = call(
        &mut session,
        1,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(ok["success"], true);

    // The access token stops working: one refresh, and the call succeeds.
    fake.with(|s| s.expire_access());
    let ok = call(
        &mut session,
        2,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(ok["success"], true, "{ok}");
    let refreshes = fake.with(|s| {
        s.token_forms
            .iter()
            .filter(|f| f["grant_type"] == "refresh_token")
            .count()
    });
    assert_eq!(refreshes, 1);
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        fake.with(|s| s.access.contains_key(
            stored["credentials"]["token_response"]["access_token"]
                .as_str()
                .unwrap()
        )),
        "the new token is stored"
    );

    // Revoked: the answer carries an authorization URL on its own line.
    fake.with(|s| s.revoke_all());
    let failed = call(
        &mut session,
        3,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(failed["success"], false);
    let error = failed["error"].as_str().unwrap();
    let url_line = error
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no URL line: {error}"))
        .to_owned();
    assert!(error.contains("bloomreach-vouchers-mcp login"), "{error}");
    // A second call while it is pending answers the same URL, and sends
    // nothing to the MCP endpoint with the refused token.
    let before = fake.with(|s| s.mcp_requests);
    let again = call(
        &mut session,
        4,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(
        fake.with(|s| s.mcp_requests),
        before,
        "no request with a refused login"
    );
    assert!(again["error"].as_str().unwrap().contains(&url_line));
    let (status, _) = FakeLoomi::approve(&url_line).await;
    assert_eq!(status, 200);
    // The callback stored the login: the next call works without a restart.
    let answer = pools_once_logged_in(&mut session).await;
    assert_eq!(answer["success"], true, "{answer}");
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_login_a_call_starts_one_and_sends_nothing_to_the_mcp_endpoint() {
    let fake = FakeLoomi::start().await;
    let dir = scratch("no-login");
    let file = dir.join("loomi.json");
    let mut session = serve(&fake, &file, &[]).await;
    let failed = call(
        &mut session,
        1,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("This server is not logged in to Loomi Connect yet."),
        "{error}"
    );
    let url = error.lines().nth(1).unwrap();
    assert!(
        url.starts_with(&format!("http://{}/authorize?", fake.addr)),
        "{error}"
    );
    // Only the unauthenticated probe of discovery reached /mcp.
    fake.with(|s| {
        assert!(s.calls.is_empty());
        assert!(s.bearer_seen.is_empty());
    });
    let (status, _) = FakeLoomi::approve(url).await;
    assert_eq!(status, 200);
    let answer = pools_once_logged_in(&mut session).await;
    assert_eq!(answer["success"], true, "{answer}");
    assert!(file.exists());
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn concurrent_calls_are_paced_a_second_apart_and_rate_limits_are_waited_out() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "pacing").await;
    let mut session = serve(&fake, &file, &[]).await;
    for id in 1..=3 {
        session
            .request(
                id,
                "tools/call",
                json!({"name": "list_voucher_pools", "arguments": {"project_id": LOOMI_PROJECT}}),
            )
            .await;
    }
    for id in 1..=3 {
        let answer = session.response(id).await;
        assert_eq!(answer["result"]["structuredContent"]["success"], true);
    }
    let times: Vec<_> = fake.with(|s| s.calls.iter().map(|c| c.at).collect());
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(950), "gap {gap:?}");
    }

    // A rate-limit tool error, then an HTTP 429: both waited out.
    fake.with(|s| {
        s.tool_rate_limits = 1;
        s.http_429s = 1;
        s.retry_after = 1;
    });
    let ok = call(
        &mut session,
        9,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(ok["success"], true, "{ok}");
    // A long Retry-After ends the call with when to retry.
    fake.with(|s| {
        s.http_429s = 1;
        s.retry_after = 120;
    });
    let long = call(
        &mut session,
        10,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(long["success"], false);
    assert!(long["error"].as_str().unwrap().contains("120"), "{long}");
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn loomis_errors_are_quoted_and_a_missing_status_argument_is_said() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "errors").await;
    let mut session = serve(&fake, &file, &[]).await;
    let args = json!({"project_id": LOOMI_PROJECT});
    let cases = [
        (ToolFault::IsError("Project proj-1 is locked".into()), "Loomi Connect answered with an error: Project proj-1 is locked"),
        (ToolFault::SuccessFalse("no such project".into()), "Loomi Connect answered with an error: no such project"),
        (ToolFault::MissingField, "Loomi Connect answered unexpectedly: a required field is missing or has the wrong type (missing field `total`)"),
        (ToolFault::JsonRpc("database down".into()), "Loomi Connect answered with an error: JSON-RPC error -32603: database down"),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        fake.with(|s| s.fault = Some(fault));
        let answer = call(
            &mut session,
            20 + i as u64,
            "list_voucher_pools",
            args.clone(),
        )
        .await;
        assert_eq!(answer["success"], false);
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(expected), "{error}");
    }
    fake.with(|s| {
        s.fault = None;
        s.drop_sessions = 1;
    });
    let ok = call(&mut session, 30, "list_voucher_pools", args.clone()).await;
    assert_eq!(
        ok["success"], true,
        "a dropped session is opened anew: {ok}"
    );
    let _ = session.finish().await;

    // A Loomi whose codes tool has no status, and only search_voucher_pools.
    fake.with(|s| {
        s.status_declared = false;
        s.search_only = true;
    });
    let mut session = serve(&fake, &file, &[]).await;
    let codes = call(
        &mut session,
        1,
        "list_voucher_codes",
        json!({"project_id": LOOMI_PROJECT, "pool_id": LOOMI_POOL, "status": "redeemed"}),
    )
    .await;
    assert_eq!(codes["success"], false);
    assert!(
        codes["error"]
            .as_str()
            .unwrap()
            .starts_with("status cannot be used here: this backend (Loomi Connect) cannot filter a page of codes by status"),
        "{codes}"
    );
    let stats = call(
        &mut session,
        2,
        "get_voucher_pool_stats",
        json!({"project_id": LOOMI_PROJECT, "pool_id": LOOMI_POOL}),
    )
    .await;
    // Without a status filter, the pool is counted from its codes: the
    // fake's three codes, one of each status.
    assert_eq!(
        stats["data"],
        json!({"id": "p1", "name": "SUMMER20", "total": 3, "available": 1, "assigned": 1, "redeemed": 1}),
        "{stats}"
    );
    let pools = call(
        &mut session,
        3,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(pools["data"][0]["id"], "p1");
    let pool = call(
        &mut session,
        4,
        "get_voucher_pool",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p2"}),
    )
    .await;
    // A refusal through the search tool is Loomi's words, not "not found";
    // a token in them is scrubbed.
    let token = fake.with(|s| s.bearer_seen.last().cloned().unwrap());
    fake.with(|s| {
        s.fault = Some(ToolFault::SuccessFalse(format!(
            "Permission denied for {token}"
        )))
    });
    let refused = call(
        &mut session,
        5,
        "get_voucher_pool",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p2"}),
    )
    .await;
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.starts_with("Loomi Connect answered with an error: Permission denied for "),
        "{error}"
    );
    assert!(!error.contains(&token), "{error}");
    fake.with(|s| s.fault = None);
    assert_eq!(pool["data"]["name"], "WINTER", "{pool}");
    fake.with(|s| {
        let search = s
            .calls
            .iter()
            .rev()
            .find(|c| c.name == "search_voucher_pools")
            .unwrap();
        assert_eq!(
            search.arguments,
            json!({"project_id": LOOMI_PROJECT, "id": "p2"})
        );
    });
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn loomi_and_an_api_key_together_stop_the_start() {
    let out = command(
        &["tools"],
        &[
            ("BLOOMREACH_LOOMI_URL", "https://eu.connect.loomi.ai/mcp"),
            ("BLOOMREACH_API_KEY_ID", "k"),
            ("BLOOMREACH_API_SECRET", "s"),
        ],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(
        stderr.contains("BLOOMREACH_LOOMI_URL") && stderr.contains("BLOOMREACH_API_KEY_ID"),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_servers_sharing_one_file_use_each_others_refreshed_tokens() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "shared").await;
    let mut first = serve(&fake, &file, &[]).await;
    let mut second = serve(&fake, &file, &[]).await;
    let args = json!({"project_id": LOOMI_PROJECT});
    for session in [&mut first, &mut second] {
        assert_eq!(
            call(session, 1, "list_voucher_pools", args.clone()).await["success"],
            true
        );
    }
    // The tokens die; the first server refreshes (rotating the refresh
    // token), the second finds the new token in the file instead of
    // refreshing with the refresh token that no longer works.
    fake.with(|s| s.expire_access());
    assert_eq!(
        call(&mut first, 2, "list_voucher_pools", args.clone()).await["success"],
        true
    );
    let answer = call(&mut second, 2, "list_voucher_pools", args.clone()).await;
    assert_eq!(answer["success"], true, "{answer}");
    let refreshes = fake.with(|s| {
        s.token_forms
            .iter()
            .filter(|f| f["grant_type"] == "refresh_token")
            .count()
    });
    assert_eq!(refreshes, 1);
    let _ = first.finish().await;
    let _ = second.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_and_the_token_stays_home() {
    let fake = FakeLoomi::start().await;
    let elsewhere = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "redirect").await;
    fake.with(|s| s.redirect_to = Some(elsewhere.mcp_url()));
    let mut session = serve(&fake, &file, &[]).await;
    let answer = call(
        &mut session,
        1,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(answer["success"], false);
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains(&elsewhere.addr.to_string()), "{error}");
    assert_eq!(
        elsewhere.with(|s| s.mcp_requests),
        0,
        "nothing reached the other origin"
    );
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_timeout_bounds_each_exchange_and_a_cancelled_call_frees_its_turn() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "timeout").await;
    let mut session = serve(&fake, &file, &[("BLOOMREACH_TIMEOUT_SECS", "1")]).await;
    let args = json!({"project_id": LOOMI_PROJECT});
    assert_eq!(
        call(&mut session, 1, "list_voucher_pools", args.clone()).await["success"],
        true
    );
    fake.with(|s| s.tool_delay = Duration::from_secs(3));
    let slow = call(&mut session, 2, "list_voucher_pools", args.clone()).await;
    let error = slow["error"].as_str().unwrap();
    assert!(
        error.contains("timed out") && error.contains("BLOOMREACH_TIMEOUT_SECS"),
        "{error}"
    );

    // Cancelled by the client: answered at once, and the next call works.
    session
        .request(
            3,
            "tools/call",
            json!({"name": "list_voucher_pools", "arguments": args}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    session
        .notify(
            "notifications/cancelled",
            json!({"requestId": 3, "reason": "user"}),
        )
        .await;
    fake.with(|s| s.tool_delay = Duration::ZERO);
    let next = call(
        &mut session,
        4,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(next["success"], true, "{next}");
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_call_queued_for_more_than_a_second_tells_why() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "queued").await;
    let mut session = serve(&fake, &file, &[]).await;
    for id in 1..=3u64 {
        session
            .request(
                id,
                "tools/call",
                json!({"name": "list_voucher_pools", "arguments": {"project_id": LOOMI_PROJECT}, "_meta": {"progressToken": format!("t{id}")}}),
            )
            .await;
    }
    for id in 1..=3 {
        assert_eq!(
            session.response(id).await["result"]["structuredContent"]["success"],
            true
        );
    }
    let mut messages = std::mem::take(&mut session.skipped);
    while let Some(m) = session.next_message(Duration::from_millis(200)).await {
        messages.push(m);
    }
    let t3: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "t3")
        .collect();
    assert!(!t3.is_empty(), "{messages:?}");
    assert!(
        t3[0]["params"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{t3:?}"
    );
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Not a test: serves the fake Loomi for a login driven by hand, e.g.
/// `FAKE_LOOMI_SECS=300 cargo test --test e2e hand_login -- --ignored --nocapture`,
/// then `bloomreach-vouchers-mcp --loomi-url <printed URL> login --no-browser`
/// and the printed authorization URL followed with `curl -L`.
#[tokio::test]
#[ignore = "serves the fake Loomi for a manual login"]
async fn hand_login() {
    let fake = FakeLoomi::start().await;
    println!("fake Loomi Connect: {}", fake.mcp_url());
    let secs = std::env::var("FAKE_LOOMI_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test]
async fn after_logout_a_running_server_asks_for_a_login_instead_of_renewing() {
    let fake = FakeLoomi::start().await;
    let (dir, file) = logged_in(&fake, "logout").await;
    let mut session = serve(&fake, &file, &[]).await;
    let args = json!({"project_id": LOOMI_PROJECT});
    assert_eq!(
        call(&mut session, 1, "list_voucher_pools", args.clone()).await["success"],
        true
    );
    let url = fake.mcp_url();
    let path = file.to_str().unwrap().to_owned();
    let out = command(&["logout"], &env_for(&url, &path))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    fake.with(|s| s.expire_access());
    let answer = call(&mut session, 2, "list_voucher_pools", args).await;
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("This server is not logged in to Loomi Connect yet."),
        "{answer}"
    );
    assert!(!file.exists(), "the logged-out file is not written again");
    let refreshes = fake.with(|s| {
        s.token_forms
            .iter()
            .filter(|f| f["grant_type"] == "refresh_token")
            .count()
    });
    assert_eq!(refreshes, 0);
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Codes for the documented catalog's SUMMER20: `n` codes, one status in
/// three each (available, assigned, redeemed, in turn); redeemed codes at
/// one-hour steps from 2026-07-01T00:00:00Z.
fn documented_codes(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let status = ["available", "assigned", "redeemed"][i % 3];
            let redeemed = (status == "redeemed").then_some(1_782_864_000 + 3600 * i as u64);
            json!({"code": format!("SUM-{i:05}"), "status": status,
                   "assigned_time": (status != "available").then_some(1_782_000_000),
                   "redeemed_time": redeemed})
        })
        .collect()
}

/// A fake of the documented catalog, set up by `with`, a login issued for
/// it, and a server logged in to it; the scratch folder to remove.
async fn documented(
    name: &str,
    with: impl FnOnce(&mut crate::support::fake_loomi::LoomiState),
) -> (FakeLoomi, PathBuf, Session) {
    let fake = FakeLoomi::start().await;
    let dir = scratch(name);
    let file = dir.join("loomi.json");
    fake.issue_login(&file);
    fake.with(|s| {
        s.documented = true;
        with(s);
    });
    let session = serve(&fake, &file, &[]).await;
    (fake, dir, session)
}

fn calls_of(fake: &FakeLoomi) -> Vec<(String, Value)> {
    fake.with(|s| {
        let seen = s
            .calls
            .iter()
            .map(|c| (c.name.clone(), c.arguments.clone()))
            .collect();
        s.calls.clear();
        seen
    })
}

#[tokio::test]
async fn the_documented_catalog_serves_every_tool_from_what_it_declares() {
    let (fake, dir, mut session) = documented("documented", |s| {
        s.pool_count = 120;
        s.paged_codes = Some(documented_codes(2500));
    })
    .await;

    // Projects: the organizations, then the projects of each, in order,
    // each project once (the first seen wins).
    let projects = call(&mut session, 1, "list_projects", json!({})).await;
    assert_eq!(
        projects,
        json!({"success": true, "error": null, "data": [
            {"id": LOOMI_PROJECT, "name": "Main store", "organization": "Brand A", "workspace": "EU"},
            {"id": "proj-2", "name": "Outlet", "organization": "Brand A", "workspace": "EU"},
            {"id": "proj-3", "name": "Main store", "organization": "Brand B", "workspace": "US"}
        ]})
    );
    assert_eq!(
        calls_of(&fake),
        [
            ("list_cloud_organizations".to_owned(), json!({})),
            (
                "list_projects".to_owned(),
                json!({"cloud_organization_id": "org-1"})
            ),
            (
                "list_projects".to_owned(),
                json!({"cloud_organization_id": "org-2"})
            ),
        ]
    );

    // Pools: search_voucher_pools read to the end, in pages of the largest
    // count its schema allows; ids read from `_id`.
    let pools = call(
        &mut session,
        2,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    let listed = pools["data"].as_array().unwrap();
    assert_eq!(listed.len(), 120, "{pools}");
    assert_eq!(
        listed[0],
        json!({"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742})
    );
    assert_eq!(listed[119]["id"], "pool-119");
    assert_eq!(
        calls_of(&fake),
        [0, 50, 100]
            .iter()
            .map(|skip| (
                "search_voucher_pools".to_owned(),
                json!({"project_id": LOOMI_PROJECT, "skip": skip, "count": 50})
            ))
            .collect::<Vec<_>>()
    );

    // One pool: asked by the id argument the tool declares.
    let pool = call(
        &mut session,
        3,
        "get_voucher_pool",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "pool-7"}),
    )
    .await;
    assert_eq!(
        pool["data"],
        json!({"id": "pool-7", "name": "POOL7", "total": 10, "available": 7,
               "company_id": LOOMI_PROJECT, "used_by": []})
    );
    let missing = call(
        &mut session,
        4,
        "get_voucher_pool",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "nope"}),
    )
    .await;
    assert_eq!(missing["success"], false);
    assert!(
        missing["error"].as_str().unwrap().contains("\"nope\""),
        "{missing}"
    );
    assert_eq!(
        calls_of(&fake),
        [
            (
                "search_voucher_pools".to_owned(),
                json!({"project_id": LOOMI_PROJECT, "voucher_pool_id": "pool-7"})
            ),
            (
                "search_voucher_pools".to_owned(),
                json!({"project_id": LOOMI_PROJECT, "voucher_pool_id": "nope"})
            ),
        ]
    );

    // Codes: the pool under `voucher_pool_id`; no status is sent.
    let codes = call(
        &mut session,
        5,
        "list_voucher_codes",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1", "count": 2}),
    )
    .await;
    assert_eq!(codes["matched"], 2500, "{codes}");
    assert_eq!(codes["data"][1]["code"], "SUM-00001");
    let refused = call(
        &mut session,
        6,
        "list_voucher_codes",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1", "status": "redeemed"}),
    )
    .await;
    assert_eq!(refused["success"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("find_voucher_codes"),
        "{refused}"
    );
    assert_eq!(
        calls_of(&fake),
        [(
            "list_voucher_codes".to_owned(),
            json!({"project_id": LOOMI_PROJECT, "voucher_pool_id": "p1", "skip": 0, "count": 2})
        )]
    );

    // Stats without a status filter: the pool, then every page, counted here.
    let stats = call(
        &mut session,
        7,
        "get_voucher_pool_stats",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1"}),
    )
    .await;
    assert_eq!(
        stats["data"],
        json!({"id": "p1", "name": "SUMMER20", "total": 2500, "available": 834, "assigned": 833, "redeemed": 833}),
        "{stats}"
    );
    let as_of = stats["as_of"].as_str().unwrap().to_owned();
    assert!(as_of.ends_with('Z') && as_of.len() == 20, "{as_of}");
    let seen = calls_of(&fake);
    assert_eq!(
        seen.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "search_voucher_pools",
            "list_voucher_codes",
            "list_voucher_codes",
            "list_voucher_codes"
        ]
    );
    assert_eq!(
        seen[3].1,
        json!({"project_id": LOOMI_PROJECT, "voucher_pool_id": "p1", "skip": 2000, "count": 1000})
    );

    // The follow-ups come from memory: no call upstream.
    let again = call(
        &mut session,
        8,
        "get_voucher_pool_stats",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1"}),
    )
    .await;
    assert_eq!(again["data"], stats["data"]);
    assert_eq!(again["as_of"], stats["as_of"]);
    let found = call(
        &mut session,
        9,
        "find_voucher_codes",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1", "status": "redeemed",
               "redeemed_after": "2026-07-01T00:00:00Z", "redeemed_before": "2026-07-01T12:00:00Z"}),
    )
    .await;
    // Redeemed codes are every third from SUM-00002, an hour apart per
    // code: SUM-00002, 05, 08 and 11 are within the twelve hours.
    assert_eq!(
        found["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["SUM-00002", "SUM-00005", "SUM-00008", "SUM-00011"],
        "{found}"
    );
    assert_eq!(
        (&found["scanned"], &found["matched"], &found["complete"]),
        (&json!(2500), &json!(2500), &json!(true))
    );
    // Its pages were read by the stats call, after the pool record.
    let found_as_of = found["as_of"].as_str().unwrap();
    assert!(found_as_of >= as_of.as_str(), "{found_as_of} {as_of}");
    assert_eq!(calls_of(&fake), []);

    // More organizations than are listed one call each: said, not cut.
    fake.with(|s| s.extra_organizations = 99);
    let refused = call(&mut session, 20, "list_projects", json!({})).await;
    assert_eq!(refused["success"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("more than 100 organizations"),
        "{refused}"
    );
    assert_eq!(
        calls_of(&fake).len(),
        1,
        "only the organizations were asked"
    );
    fake.with(|s| s.extra_organizations = 0);

    // A rate-limit notice worded as a window is waited out.
    fake.with(|s| {
        s.tool_rate_limits = 1;
        s.window_wording = true;
        s.retry_after = 1;
    });
    let pool = call(
        &mut session,
        10,
        "get_voucher_pool",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1"}),
    )
    .await;
    assert_eq!(pool["success"], true, "{pool}");
    assert_eq!(calls_of(&fake).len(), 2);
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `doctor` (with `--json` when asked) against the fake; exit code,
/// stdout, stderr.
async fn doctor(fake: &FakeLoomi, file: &Path, json: bool) -> (i32, String, String) {
    let url = fake.mcp_url();
    let path = file.to_str().unwrap().to_owned();
    let env = env_for(&url, &path);
    let mut args = vec!["doctor"];
    if json {
        args.push("--json");
    }
    let out = command(&args, &env)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn doctor_reports_what_each_generation_of_loomi_declares_without_secrets() {
    let fake = FakeLoomi::start().await;
    let dir = scratch("doctor");
    let file = dir.join("loomi.json");

    // No login: the login step fails, the report is still JSON.
    let (code, out, _) = doctor(&fake, &file, true).await;
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).expect("one JSON object");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["ok"].as_bool().unwrap()))
            .collect::<Vec<_>>(),
        [("settings", true), ("network", true), ("login", false)]
    );
    assert!(steps[2]["detail"]
        .as_str()
        .unwrap()
        .contains("bloomreach-vouchers-mcp login"));
    assert_eq!(report["loomi_tools"], Value::Null);
    assert_eq!(report["backend"], "loomi");

    // The older generation.
    fake.issue_login(&file);
    let (code, out, err) = doctor(&fake, &file, true).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "settings", "network", "login", "session", "tools", "projects", "pools", "codes",
            "pacing"
        ]
    );
    assert_eq!(
        report["loomi_tools"]["get_voucher_pool"],
        json!({"tool": "get_voucher_pool", "arguments": ["project_id", "pool_id"], "required": ["project_id", "pool_id"]})
    );
    assert_eq!(
        report["loomi_tools"]["list_voucher_codes"]["arguments"],
        json!(["project_id", "pool_id", "skip", "count", "status"])
    );
    let tokens: Vec<String> =
        fake.with(|s| s.access.keys().chain(s.refresh.keys()).cloned().collect());
    for t in &tokens {
        assert!(
            !out.contains(t.as_str()) && !err.contains(t.as_str()),
            "a token is shown"
        );
    }
    for code in ["SUM-0001", "SUM-0002", "SUM-0003"] {
        assert!(!out.contains(code), "a voucher code is shown: {out}");
    }

    // The documented generation, in lines.
    fake.with(|s| s.documented = true);
    let (code, out, err) = doctor(&fake, &file, false).await;
    assert_eq!(code, 0, "{out}{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("[ok]   {name}:")))
            .unwrap_or_else(|| panic!("no {name} line: {out}"))
            .to_owned()
    };
    assert!(
        line("tools").contains(
            "list_projects <- list_cloud_organizations then list_projects(cloud_organization_id)"
        ),
        "{out}"
    );
    assert!(
        line("tools")
            .contains("list_voucher_pools <- search_voucher_pools(project_id, skip, count)"),
        "{out}"
    );
    assert!(line("tools").contains("declares no status"), "{out}");
    assert!(
        line("projects").contains("3 project(s) in 2 organization(s)"),
        "{out}"
    );
    assert!(
        line("codes").contains("3 code(s) of pool \"SUMMER20\""),
        "{out}"
    );
    assert!(out.ends_with("Every step passed.\n"), "{out}");

    // A page of codes that cannot be read: the step fails, and the report
    // still shows no code (a tool would quote an excerpt of the page).
    fake.with(|s| {
        s.paged_codes = Some(vec![
            json!({"code": "LEAK-0001", "status": null, "assigned_time": "LEAK-0002", "redeemed_time": null}),
        ])
    });
    let (code, out, err) = doctor(&fake, &file, true).await;
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let last = report["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["name"], &last["ok"]),
        (&json!("codes"), &json!(false)),
        "{out}"
    );
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .starts_with("Loomi Connect answered unexpectedly"),
        "{out}"
    );
    assert!(
        !out.contains("LEAK-") && !err.contains("LEAK-"),
        "{out}{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// From a remote shell the browser cannot reach the callback: the address
/// it ended on, pasted into `login --no-browser`, completes the login;
/// lines that are not that address are answered and the wait goes on.
#[tokio::test]
async fn a_pasted_redirect_address_completes_a_login_made_from_a_remote_shell() {
    use tokio::io::AsyncWriteExt;
    let fake = FakeLoomi::start().await;
    let dir = scratch("pasted");
    let file = dir.join("loomi.json");
    let url = fake.mcp_url();
    let path = file.to_str().unwrap().to_owned();
    let mut cmd = command(&["login", "--no-browser"], &env_for(&url, &path));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let authorization_url = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
            .await
            .expect("login prints its URL in time")
            .unwrap()
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("http") {
            break line;
        }
    };
    let landed = FakeLoomi::redirect_of(&authorization_url).await;
    let state = reqwest::Url::parse(&landed)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // Not the address; then one of another login; then the real one, as a
    // browser's address bar gives it.
    stdin.write_all(b"hello\n").await.unwrap();
    stdin
        .write_all(format!("{}?code=x&state=other\n", landed.split('?').next().unwrap()).as_bytes())
        .await
        .unwrap();
    stdin
        .write_all(format!("  {landed}  \n").as_bytes())
        .await
        .unwrap();
    while let Ok(Some(line)) = stderr.next_line().await {
        seen.push_str(&line);
        seen.push('\n');
    }
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{seen}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("Logged in to Loomi Connect at "),
        "{stdout}"
    );
    assert!(seen.contains("paste it here"), "{seen}");
    assert!(
        seen.contains("That is not the address the browser ended on"),
        "{seen}"
    );
    assert!(
        seen.contains("That address belongs to another login"),
        "{seen}"
    );
    assert!(!seen.contains(&state) || seen.contains(&authorization_url));
    // The exchange was the usual one: the code with its PKCE verifier.
    let form = fake.with(|s| s.token_forms.last().cloned().unwrap());
    assert_eq!(form["grant_type"], "authorization_code");
    assert!(form.contains_key("code_verifier"));
    assert!(file.exists());

    // A refused sign-in, pasted: the command says what to do next.
    let _ = std::fs::remove_file(&file);
    let mut cmd = command(&["login", "--no-browser"], &env_for(&url, &path));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let authorization_url = loop {
        let line = stderr.next_line().await.unwrap().unwrap();
        if line.starts_with("http") {
            break line;
        }
    };
    let redirect = reqwest::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    let state = reqwest::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    stdin
        .write_all(format!("{redirect}?error=access_denied&state={state}\n").as_bytes())
        .await
        .unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(rest.contains("access_denied"), "{rest}");
    assert!(rest.contains("ask a Bloomreach administrator"), "{rest}");
    assert!(rest.contains("region"), "{rest}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Counting without Loomi's filter: progress after each page read, and a
/// pool of more than 100,000 codes is a failure naming the bound after the
/// first page, not a count of a part.
#[tokio::test]
async fn counting_through_the_documented_catalog_reports_progress_and_names_its_bound() {
    let (fake, dir, mut session) = documented("counting", |s| {
        s.paged_codes = Some(documented_codes(2500));
    })
    .await;
    let mut params = crate::support::jsonrpc::call_params(
        "get_voucher_pool_stats",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1"}),
    );
    params["_meta"] = json!({"progressToken": "count-1"});
    let answer = session.roundtrip(1, "tools/call", params).await;
    assert_eq!(answer["result"]["structuredContent"]["data"]["total"], 2500);
    let progress: Vec<f64> = session
        .skipped
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect();
    // After each page read, its count; a wait for the next turn says a
    // little more: progress only ever increases, as MCP requires.
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    for page in [1000.0, 2000.0, 2500.0] {
        assert!(progress.contains(&page), "{progress:?}");
    }
    assert_eq!(progress.last(), Some(&2500.0));

    let tiny =
        json!({"code": "X", "status": "available", "assigned_time": null, "redeemed_time": null});
    fake.with(|s| {
        s.paged_codes = Some(vec![tiny; 100_001]);
        s.calls.clear();
    });
    let stats = call(
        &mut session,
        2,
        "get_voucher_pool_stats",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "pool-2"}),
    )
    .await;
    assert_eq!(stats["success"], false, "{stats}");
    assert_eq!(stats["as_of"], Value::Null);
    assert!(
        stats["error"]
            .as_str()
            .unwrap()
            .contains("more than 100000 codes"),
        "{stats}"
    );
    assert_eq!(
        calls_of(&fake)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["search_voucher_pools", "list_voucher_codes"]
    );
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Pages shorter than asked while Loomi's count says more are not the end:
/// the list is read on; a count that the pages never reach is a failure,
/// never part of the list as a success.
#[tokio::test]
async fn pools_are_read_to_loomis_count_whatever_the_page_size_it_answers() {
    let (fake, dir, mut session) = documented("short-pages", |s| {
        s.pool_count = 70;
        s.search_page_cap = Some(30);
    })
    .await;
    let pools = call(
        &mut session,
        1,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(pools["data"].as_array().map(Vec::len), Some(70), "{pools}");
    assert_eq!(
        calls_of(&fake)
            .iter()
            .map(|(_, a)| a["skip"].clone())
            .collect::<Vec<_>>(),
        [json!(0), json!(30), json!(60)]
    );
    fake.with(|s| s.search_overcount = 5);
    let pools = call(
        &mut session,
        2,
        "list_voucher_pools",
        json!({"project_id": LOOMI_PROJECT}),
    )
    .await;
    assert_eq!(pools["success"], false, "{pools}");
    assert!(
        pools["error"]
            .as_str()
            .unwrap()
            .contains("counts 75 voucher pools in the project but its pages ended after 70"),
        "{pools}"
    );
    let _ = session.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}
