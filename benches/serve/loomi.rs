//! The cost of a call through Loomi Connect: the server, logged in to the
//! fake Loomi of `tests/support/fake_loomi.rs`, answering
//! `list_voucher_pools`, against the same `tools/call` POSTed to the fake
//! directly on an open session (the floor: the fake's own answer time).
//! Calls are a little over 1.1 s apart, as the server paces them; server
//! calls and floor calls alternate (taking turns to go first, as the first
//! wakes the idle fake), each server call just after a ping, so that the
//! server is awake as in the back-to-back REST figures. The fake runs on a
//! thread of its own. Also the cold start of a server set up
//! for Loomi (nothing is sent or read at start), against the baseline
//! binary's cold start in the same environment (a baseline without Loomi
//! starts unconfigured), or this binary's own without the Loomi settings
//! when there is no baseline; the two alternate spawn by spawn.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::expect_result;
use crate::support::binary;
use crate::support::fake_loomi::{FakeLoomi, LOOMI_PROJECT};
use crate::support::jsonrpc::{Session, Transcript};
use crate::Res;

pub struct Loomi {
    pub server: Vec<Duration>,
    pub floor: Vec<Duration>,
    pub cold: Vec<Duration>,
    /// The cold starts compared with, and what they are.
    pub reference: Vec<Duration>,
    pub reference_is_baseline: bool,
}

fn env<'a>(url: &'a str, file: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("BLOOMREACH_LOOMI_URL", url),
        ("BLOOMREACH_CREDENTIALS_FILE", file),
        ("RUST_LOG", "warn"),
    ]
}

/// Spawn, handshake, `tools/list` answered.
async fn cold_start(bin: &Path, env: &[(&str, &str)]) -> Res<Duration> {
    let started = Instant::now();
    let session = Session::spawn(
        binary::command_for(bin, &Vec::<String>::new(), env),
        Transcript::Dropped,
    )?;
    let peer = session.peer();
    peer.handshake(peer.next_id(), "2025-06-18").await?;
    let (answer, _) = peer.timed_request("tools/list", "{}").await?;
    expect_result(&answer, "tools/list")?;
    Ok(started.elapsed())
}

/// The fake on a thread and runtime of its own, as the REST bench's fake
/// is: the floor's exchange then crosses threads as the server's does.
fn fake_on_own_thread() -> Res<FakeLoomi> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return,
        };
        runtime.block_on(async move {
            let fake = FakeLoomi::start().await;
            let _ = tx.send(FakeLoomi {
                addr: fake.addr,
                state: std::sync::Arc::clone(&fake.state),
            });
            std::future::pending::<()>().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the fake Loomi did not start".to_owned())
}

pub async fn measure(
    bin: &Path,
    baseline: Option<&Path>,
    calls: usize,
    spawns: usize,
) -> Res<Loomi> {
    let fake = fake_on_own_thread()?;
    let dir = std::env::temp_dir().join(format!("serve-bench-loomi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("loomi.json");
    fake.issue_login(&file);
    let url = fake.mcp_url();
    let file_text = file.to_str().ok_or("a path that is not UTF-8")?.to_owned();

    let mut cold = Vec::with_capacity(spawns);
    let mut reference = Vec::with_capacity(spawns);
    let loomi_env = env(&url, &file_text);
    let plain_env = vec![("RUST_LOG", "warn")];
    for _ in 0..spawns {
        cold.push(cold_start(bin, &loomi_env).await?);
        reference.push(match baseline {
            Some(other) => cold_start(other, &loomi_env).await?,
            None => cold_start(bin, &plain_env).await?,
        });
    }

    let session = Session::spawn(
        binary::command_for(bin, &Vec::<String>::new(), &env(&url, &file_text)),
        Transcript::Dropped,
    )?;
    let peer = session.peer();
    peer.handshake(peer.next_id(), "2025-06-18").await?;
    let params = format!(
        r#"{{"name":"list_voucher_pools","arguments":{{"project_id":"{LOOMI_PROJECT}"}}}}"#
    );
    // The first call opens the session with Loomi and lists its tools.
    let (answer, _) = peer.timed_request("tools/call", &params).await?;
    check(&expect_result(&answer, "list_voucher_pools")?)?;

    let floor = Floor::open(&fake).await?;
    let mut result = Loomi {
        server: Vec::with_capacity(calls),
        floor: Vec::with_capacity(calls),
        cold,
        reference,
        reference_is_baseline: baseline.is_some(),
    };
    let mut last = Instant::now();
    for i in 0..calls {
        // A little over Loomi's one call every 1.1 s, so that no call waits.
        let next = last + Duration::from_millis(1120);
        tokio::time::sleep_until(next.into()).await;
        // The fake has slept too: whichever goes first wakes it, so the
        // server and the floor take turns going first.
        if i % 2 == 1 {
            result.floor.push(floor.call().await?);
        }
        // A ping first: the server has slept a second, and waking an idle
        // process (about 0.15 ms here) is no cost of the Loomi path; the
        // REST figures are taken back to back, warm, too.
        peer.timed_request("ping", "{}").await?;
        last = Instant::now();
        let (answer, took) = peer.timed_request("tools/call", &params).await?;
        check(&expect_result(&answer, "list_voucher_pools")?)?;
        result.server.push(took);
        if i % 2 == 0 {
            result.floor.push(floor.call().await?);
        }
    }
    drop(session);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

fn check(result: &Value) -> Res<()> {
    match result["structuredContent"]["data"].as_array() {
        Some(pools) if pools.len() == 2 => Ok(()),
        _ => Err(format!(
            "list_voucher_pools through Loomi answered {result}"
        )),
    }
}

/// A session with the fake, held by the bench itself.
struct Floor {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
}

impl Floor {
    async fn open(fake: &FakeLoomi) -> Res<Self> {
        let token = fake.with(|s| {
            s.clients.insert("floor".into(), vec![]);
            s.mint("floor")["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        let http = crate::support::http_client()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let url = fake.mcp_url();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "floor", "version": "1"}}});
        let response = http
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("the fake gave no session id")?
            .to_owned();
        response.bytes().await.map_err(|e| e.to_string())?;
        let floor = Self {
            http,
            url,
            token,
            session,
        };
        floor
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(floor)
    }

    /// POSTs `body` on the session; the length of the answer.
    async fn post(&self, body: &Value) -> Res<usize> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(bytes.len())
    }

    async fn call(&self) -> Res<Duration> {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_voucher_pools", "arguments": {"project_id": LOOMI_PROJECT}}});
        let started = Instant::now();
        let len = self.post(&body).await?;
        let took = started.elapsed();
        if len < 50 {
            return Err("the fake's answer to the floor is too short".to_owned());
        }
        Ok(took)
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// The section of the report.
pub fn print(loomi: &Loomi, full: bool) {
    let server = median(&loomi.server);
    let floor = median(&loomi.floor);
    let overhead = server.saturating_sub(floor);
    let verdict = |met: bool| match (full, met) {
        (false, _) => "",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    println!(
        "\n[Loomi Connect: list_voucher_pools through the fake Loomi, {} calls 1.12 s apart]",
        loomi.server.len()
    );
    println!(
        "  server median / floor (same tools/call POSTed) median    | {:.3} / {:.3} ms",
        server.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  overhead (server median - floor median)                   | {:.3} ms  (budget < 0.5 ms) {}",
        overhead.as_secs_f64() * 1e3,
        verdict(overhead < Duration::from_micros(500))
    );
    let cold = median(&loomi.cold);
    let reference = median(&loomi.reference);
    let against = if loomi.reference_is_baseline {
        "the baseline, same settings"
    } else {
        "no settings"
    };
    println!(
        "  cold start set up for Loomi / {against:<27} | {:.2} / {:.2} ms = {:.3}x  (budget < 1.1x) {}",
        cold.as_secs_f64() * 1e3,
        reference.as_secs_f64() * 1e3,
        cold.as_secs_f64() / reference.as_secs_f64().max(1e-9),
        verdict(cold.as_secs_f64() < reference.as_secs_f64() * 1.1)
    );
}
