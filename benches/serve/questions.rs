//! The seed's question asked twice, as an assistant asks it: "how many
//! are left?" (`get_voucher_pool_stats`), again, then "which were redeemed
//! then?" (`find_voucher_codes` with a status and a window), on the
//! 2,500-code SUMMER20 of the fake Loomi that documents no status filter,
//! paced as Loomi is. Counted: upstream calls and seconds per question,
//! and the first question against its pacing floor (its calls times
//! 1.1 s). Then the memory a kept 100,000-code pool costs the server: the
//! REST fake's pool scanned in full by `find_voucher_codes`, the server's
//! resident memory before and after, and the same scan again (from
//! memory: requests and time).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{expect_result, Server};
use crate::fake::{Fake, POOL, PROJECT};
use crate::support::binary;
use crate::support::fake_loomi::{FakeLoomi, LOOMI_PROJECT};
use crate::support::jsonrpc::{Session, Transcript};
use crate::support::proc_stats;
use crate::Res;

/// One question: its time, the upstream calls it made, and its answer.
pub struct Asked {
    pub took: Duration,
    pub calls: usize,
}

pub struct Questions {
    pub stats: Asked,
    pub stats_again: Asked,
    pub find: Asked,
    /// The first question's floor: its calls, 1.1 s apart.
    pub floor: Duration,
    pub kept_kb: u64,
    pub scan: Asked,
    pub scan_again: Asked,
}

/// The codes of the documented SUMMER20: 2,500, one status in three.
fn codes() -> Vec<Value> {
    (0..2500)
        .map(|i| {
            let status = ["available", "assigned", "redeemed"][i % 3];
            json!({"code": format!("SUM-{i:05}"), "status": status,
                   "assigned_time": (status != "available").then_some(1_782_000_000),
                   "redeemed_time": (status == "redeemed").then_some(1_782_864_000 + 3600 * i as u64)})
        })
        .collect()
}

async fn ask(session: &Session, fake: &FakeLoomi, name: &str, args: Value) -> Res<Asked> {
    let before = fake.with(|s| s.calls.len());
    let params = json!({"name": name, "arguments": args}).to_string();
    let started = Instant::now();
    let (answer, _) = session.peer().timed_request("tools/call", &params).await?;
    let took = started.elapsed();
    let result = expect_result(&answer, name)?;
    if result["structuredContent"]["success"] != true {
        return Err(format!("{name} failed: {result}"));
    }
    Ok(Asked {
        took,
        calls: fake.with(|s| s.calls.len()) - before,
    })
}

pub async fn measure(bin: &std::path::Path, rest: &Fake) -> Res<Questions> {
    let fake = FakeLoomi::start().await;
    fake.with(|s| {
        s.documented = true;
        s.paged_codes = Some(codes());
    });
    let dir = std::env::temp_dir().join(format!("serve-bench-questions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("loomi.json");
    fake.issue_login(&file);
    let url = fake.mcp_url();
    let path = file.to_str().ok_or("a path that is not UTF-8")?.to_owned();
    let env = [
        ("BLOOMREACH_LOOMI_URL", url.as_str()),
        ("BLOOMREACH_CREDENTIALS_FILE", path.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let session = Session::spawn(
        binary::command_for(bin, &Vec::<String>::new(), &env),
        Transcript::Dropped,
    )?;
    let peer = session.peer();
    peer.handshake(peer.next_id(), "2025-11-25").await?;
    // The session with Loomi is opened by a first call, as in a conversation.
    ask(&session, &fake, "list_projects", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let pool = json!({"project_id": LOOMI_PROJECT, "pool_id": "p1"});
    let stats = ask(&session, &fake, "get_voucher_pool_stats", pool.clone()).await?;
    let stats_again = ask(&session, &fake, "get_voucher_pool_stats", pool).await?;
    let find = ask(
        &session,
        &fake,
        "find_voucher_codes",
        json!({"project_id": LOOMI_PROJECT, "pool_id": "p1", "status": "redeemed",
               "redeemed_after": "2026-07-01T00:00:00Z", "redeemed_before": "2026-07-02T00:00:00Z"}),
    )
    .await?;
    drop(session);
    let _ = std::fs::remove_dir_all(&dir);
    let floor = Duration::from_millis(1100) * stats.calls as u32;

    // A kept 100,000-code pool, over the REST fake.
    let server = Server::spawn(bin, rest)?;
    server.handshake().await?;
    let params = format!(
        r#"{{"name":"find_voucher_codes","arguments":{{"project_id":"{PROJECT}","pool_id":"{POOL}","code":"none","max_scan":100000,"skip":500000}}}}"#
    );
    let scan_once = || async {
        let before = rest.requests();
        let started = Instant::now();
        let (answer, _) = server.peer().timed_request("tools/call", &params).await?;
        let took = started.elapsed();
        let result = expect_result(&answer, "find_voucher_codes")?;
        if result["structuredContent"]["scanned"] != 100_000 {
            return Err(format!("the scan answered {result}"));
        }
        Ok::<_, String>(Asked {
            took,
            calls: (rest.requests() - before) as usize,
        })
    };
    let rss = || proc_stats::status_kb(server.pid(), "VmRSS").unwrap_or(0);
    let before = rss();
    let scan = scan_once().await?;
    let after = rss();
    let scan_again = scan_once().await?;
    server.shutdown().await?;
    Ok(Questions {
        stats,
        stats_again,
        find,
        floor,
        kept_kb: after.saturating_sub(before),
        scan,
        scan_again,
    })
}

pub fn print(q: &Questions, full: bool) {
    let verdict = |met: bool| match (full, met) {
        (false, _) => "",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\n[Questions: the seed's question on the documented fake Loomi (2,500 codes, no status filter)]");
    println!(
        "  get_voucher_pool_stats: {} upstream calls, {:.0} ms; floor ({} calls 1.1 s apart) {:.0} ms = {:.3}x  (budget 1 pool + 3 pages, < 1.1x) {}",
        q.stats.calls,
        ms(q.stats.took),
        q.stats.calls,
        ms(q.floor),
        q.stats.took.as_secs_f64() / q.floor.as_secs_f64().max(1e-9),
        verdict(q.stats.calls == 4 && q.stats.took.as_secs_f64() <= q.floor.as_secs_f64() * 1.1)
    );
    println!(
        "  the same again / find_voucher_codes on it: {} / {} upstream calls, {:.2} / {:.2} ms  (budget 0 calls, < 10 ms) {}",
        q.stats_again.calls,
        q.find.calls,
        ms(q.stats_again.took),
        ms(q.find.took),
        verdict(
            q.stats_again.calls == 0
                && q.find.calls == 0
                && q.stats_again.took < Duration::from_millis(10)
                && q.find.took < Duration::from_millis(10)
        )
    );
    println!(
        "  a kept 100,000-code pool (REST fake): resident memory +{:.1} MiB  (budget < 32 MiB) {}",
        q.kept_kb as f64 / 1024.0,
        verdict(q.kept_kb < 32 * 1024)
    );
    println!(
        "  that scan / again within 60 s: {} / {} requests, {:.1} / {:.2} ms",
        q.scan.calls,
        q.scan_again.calls,
        ms(q.scan.took),
        ms(q.scan_again.took)
    );
}
