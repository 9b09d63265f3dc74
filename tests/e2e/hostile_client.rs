//! A hostile client on raw stdio: whatever it writes, the server keeps
//! running, and every request with a readable id gets exactly one answer
//! with that id. A client that writes without reading cannot grow the
//! server without bound, and one that closes stdout stops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::binary::std_command;
use crate::support::jsonrpc::{call_params, initialize_params, Session};
use crate::support::proc_stats;

/// Sends `line`, then returns the answers that carry `id` (waiting for the
/// first, then a moment more for any second one).
async fn answers_to(s: &mut Session, line: &[u8], id: &Value) -> Vec<Value> {
    s.peer().write(line).await.expect("write");
    s.peer().write(b"\n").await.expect("write");
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let wait = if answers.is_empty() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(300)
        };
        match s.next_message(wait).await {
            Some(message) if message.get("id") == Some(id) => answers.push(message),
            Some(_) => {}
            None => break,
        }
    }
    answers
}

async fn demo_session() -> Session {
    let mut s = Session::start(&["--demo"], &[]);
    s.initialize("2025-11-25").await;
    s
}

#[tokio::test]
async fn notifications_and_responses_before_initialize_do_not_end_the_session() {
    let mut s = Session::start(&["--demo"], &[]);
    s.notify("notifications/initialized", Value::Null).await;
    s.send(json!({"jsonrpc": "2.0", "id": 77, "result": {}}))
        .await;
    s.notify("notifications/cancelled", json!({"requestId": 1}))
        .await;
    s.initialize("2025-11-25").await;
    s.assert_ping(2).await;
    let status = s.shutdown(Duration::from_secs(5)).await.expect("exits");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn every_request_with_a_readable_id_gets_exactly_one_answer_with_it() {
    let mut s = demo_session().await;
    let mut invalid_utf8 =
        br#"{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"list_projects","arguments":{"x":""#
            .to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}', b'}', b'}']);
    let cases: Vec<(Vec<u8>, Value, i64)> = vec![
        (
            br#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"list_projects","arguments":{"n":1e400}}}"#.to_vec(),
            json!(10),
            -32700,
        ),
        (
            br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"list_projects","arguments":{"s":"\ud800"}}}"#.to_vec(),
            json!(11),
            -32700,
        ),
        (
            br#"{"jsonrpc":"2.0","id":"twelve","method":"tools/list","params":[1,2]}"#.to_vec(),
            json!("twelve"),
            -32602,
        ),
        (invalid_utf8, json!(13), -32700),
        (
            br#"{"jsonrpc":"2.0","id":14,"method":"tools/list","params":"all"}"#.to_vec(),
            json!(14),
            -32602,
        ),
        (
            br#"{"jsonrpc":"2.0","id":15,"method":"tools/list","params":{"_meta":"x"}}"#.to_vec(),
            json!(15),
            -32602,
        ),
        (
            br#"{"jsonrpc":"1.0","id":16,"method":"ping"}"#.to_vec(),
            json!(16),
            -32600,
        ),
    ];
    for (line, id, code) in cases {
        let answers = answers_to(&mut s, &line, &id).await;
        assert_eq!(
            answers.len(),
            1,
            "{}: {answers:?}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(answers[0]["error"]["code"], code, "{:?}", answers[0]);
    }
    // An id beyond 64 bits is echoed as it was written.
    s.peer()
        .write(b"{\"jsonrpc\":\"2.0\",\"id\":1180591620717411303424,\"method\":\"ping\"}\n")
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let text = s.stdout_text();
            if let Some(line) = text.lines().find(|l| l.contains("1180591620717411303424")) {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("an answer to the 70-bit id");
    assert!(
        echoed.starts_with(r#"{"jsonrpc":"2.0","id":1180591620717411303424,"error""#),
        "{echoed}"
    );
    // A batch: one answer for each request in it, as a batch.
    s.peer()
        .write(b"[{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"tools/list\"}]\n")
        .await
        .unwrap();
    let batch = loop {
        let message = s
            .next_message(Duration::from_secs(5))
            .await
            .expect("a batch answer");
        if message.is_array() {
            break message;
        }
    };
    let ids: Vec<Value> = batch
        .as_array()
        .expect("an array")
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(20), json!(21)]);
    s.assert_ping(30).await;
}

#[tokio::test]
async fn a_second_request_with_the_id_of_one_in_flight_is_refused_and_both_are_answered() {
    let api = crate::support::fake_api::slow_api().await;
    let mut s = Session::start_against(&api.uri());
    s.initialize("2025-11-25").await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": call_params("list_voucher_pools", json!({"project_id": crate::support::PROJECT}))});
    s.send(call.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.send(call).await;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let message = s
            .next_message(Duration::from_secs(15))
            .await
            .expect("two answers to id 5");
        if message.get("id") == Some(&json!(5)) {
            answers.push(message);
        }
    }
    assert_eq!(answers[0]["error"]["code"], -32600, "{answers:?}");
    assert!(
        answers[1].get("result").is_some(),
        "the first call is answered: {answers:?}"
    );
}

#[test]
fn a_client_that_writes_without_reading_cannot_grow_the_server_without_bound() {
    const CALLS: u64 = 200;
    // How long the answers already in flight may take before the server is
    // idle: 64 answers of 1,000 codes cost a debug build 2 to 4 s of CPU on
    // a loaded two-core machine. A server that went on reading stdin would
    // still be computing the other 136 calls well after this.
    const STALL_SECS: u64 = 5;
    let mut child = std_command(&["--demo"], &[("RUST_LOG", "warn")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut lines = Vec::new();
        writeln!(
            lines,
            "{}",
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params("2025-11-25")})
        )
        .unwrap();
        writeln!(
            lines,
            r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
        )
        .unwrap();
        stdin.write_all(&lines).unwrap();
        for id in 1..=CALLS {
            let line = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": call_params("list_voucher_codes", json!({"project_id": "demo", "pool_id": "summer20", "count": 1000}))});
            if writeln!(stdin, "{line}").is_err() {
                return;
            }
        }
        // stdin closes here: the server answers what it read, then exits.
    });
    // Nobody reads for a while: the server must stop reading stdin, and
    // so stop working, once its answers fill the calls in flight.
    std::thread::sleep(Duration::from_secs(STALL_SECS));
    let cpu_before = proc_stats::cpu_ns(pid).expect("the server's CPU time");
    std::thread::sleep(Duration::from_secs(1));
    let cpu_after = proc_stats::cpu_ns(pid).expect("the server's CPU time");
    let stalled_kib = proc_stats::status_kb(pid, "VmHWM").expect("the server's peak");
    let mut answered: HashMap<u64, usize> = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        let message: Value = serde_json::from_str(&line).expect("stdout is JSON");
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            *answered.entry(id).or_default() += 1;
        }
    }
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        stalled_kib < 120 * 1024,
        "the server grew to {stalled_kib} KiB while nobody read its answers"
    );
    assert!(
        cpu_after - cpu_before < 100_000_000,
        "the server went on working ({} ms of CPU in a second) while nobody read",
        (cpu_after - cpu_before) / 1_000_000
    );
    eprintln!("stalled at {stalled_kib} KiB");
    assert_eq!(answered.len() as u64, CALLS + 1, "every call answered");
    assert!(answered.values().all(|n| *n == 1), "each exactly once");
}

#[test]
fn closing_stdout_stops_the_server_even_with_stdin_open() {
    let mut child = std_command(&["--demo"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    let mut stdin = child.stdin.take().unwrap();
    drop(child.stdout.take());
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params("2025-11-25")});
    let _ = writeln!(stdin, "{init}");
    let started = Instant::now();
    let mut exited = None;
    for id in 1..200 {
        let _ = writeln!(stdin, r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let status = exited.expect("the server stops once its stdout is gone");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn an_unknown_tool_name_is_logged_escaped_and_short() {
    let mut s = demo_session().await;
    let name = format!(
        "evil\n2099-01-01T00:00:00Z  INFO forged\u{1b}[31m{}",
        "x".repeat(5000)
    );
    let response = s
        .roundtrip(1, "tools/call", call_params(&name, json!({})))
        .await;
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(message.len() < 400, "{message}");
    let (_, stderr) = s.finish().await;
    assert!(
        !stderr.contains("\n2099-01-01T00:00:00Z  INFO forged"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(stderr.lines().all(|l| l.len() < 1000), "a long log line");
}

/// 150 calls at once on a server allowed 64 open files: they queue for
/// connections instead of failing with "Too many open files".
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn many_calls_at_once_under_a_low_open_file_limit_are_all_served() {
    use crate::support::binary::command;
    use crate::support::jsonrpc::Transcript;
    use std::sync::Arc;

    let api = crate::support::fake_api::fake_api_answering(
        wiremock::ResponseTemplate::new(200)
            .set_delay(Duration::from_millis(150))
            .set_body_json(crate::support::fake_api::pools_body()),
    )
    .await;
    let mut cmd = command(
        &crate::support::binary::api_args(&api.uri()),
        &crate::support::binary::api_env(),
    );
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut s = Session::spawn(cmd, Transcript::Kept).expect("spawn the server");
    s.initialize("2025-11-25").await;
    let params = call_params(
        "list_voucher_pools",
        json!({"project_id": crate::support::PROJECT}),
    )
    .to_string();
    let peer = Arc::clone(s.peer());
    let calls: Vec<_> = (0..150)
        .map(|_| {
            let (peer, params) = (Arc::clone(&peer), params.clone());
            tokio::spawn(async move { peer.timed_request("tools/call", &params).await })
        })
        .collect();
    for call in calls {
        let (line, _) = call.await.unwrap().expect("an answer");
        let answer: Value = serde_json::from_slice(&line.bytes).unwrap();
        assert_eq!(
            answer["result"]["structuredContent"]["success"], true,
            "{answer}"
        );
    }
}
