//! The cost of a full `find_voucher_codes` scan of 10,000 codes: ten pages
//! of 1,000 read, filtered and thrown away, against the same ten GETs made
//! directly by reqwest (the floor) and the same GETs with each body checked
//! as JSON by serde_json (the parse floor), alternated round by round; and the
//! server's peak memory while it scans. Each round scans codes no round
//! read before (it starts 10,000 codes further on, every fake warmed for
//! those pages first), so that the pages the server keeps for follow-up
//! questions (60 s) are never what is measured: that memory is the
//! questions section's subject. A baseline binary that has the tool scans in the
//! same rounds, taking turns with the one under test.

use std::time::{Duration, Instant};

use crate::client::{expect_result, Server};
use crate::fake::{codes_url, Fake, POOL, PROJECT};
use crate::floor;
use crate::support::proc_stats::{self, RssSampler};
use crate::Res;

/// Codes one scan examines, in pages of `PAGE`.
const SCANNED: u64 = 10_000;
const PAGE: u64 = 1000;

pub struct Scan {
    pub server: Vec<Duration>,
    /// The baseline's scans, when it has the tool.
    pub baseline: Option<Vec<Duration>>,
    pub floor: Vec<Duration>,
    pub parse_floor: Vec<Duration>,
    pub peak_kb: u64,
    pub requests_per_scan: u64,
}

/// `rounds` scans (by the binary under test, then by the baseline when
/// there is one with the tool), each round followed by the ten floor GETs,
/// plain and parsed.
pub async fn full_scans(
    subject: (&std::path::Path, &Fake),
    baseline: Option<(&std::path::Path, &Fake)>,
    floor_fake: &Fake,
    rounds: usize,
) -> Res<Scan> {
    let (bin, fake) = subject;
    let other_fake = baseline.map(|(_, f)| f);
    let server = Server::spawn(bin, fake)?;
    server.handshake().await?;
    let floor_client = floor::client()?;
    let base = floor_fake.base_url();
    scan_once(&server, 0).await?;
    let other = match baseline {
        Some((bin, fake)) => {
            let other = Server::spawn(bin, fake)?;
            other.handshake().await?;
            match scan_once(&other, 0).await {
                Ok(_) => Some(other),
                Err(e) => {
                    eprintln!("  (the baseline does not scan: {e})");
                    other.shutdown().await?;
                    None
                }
            }
        }
        None => None,
    };
    let sampler = RssSampler::start(server.pid());
    let mut requests = 0;
    let mut scan = Scan {
        server: Vec::with_capacity(rounds),
        baseline: other.as_ref().map(|_| Vec::with_capacity(rounds)),
        floor: Vec::with_capacity(rounds),
        parse_floor: Vec::with_capacity(rounds),
        peak_kb: 0,
        requests_per_scan: 0,
    };
    for round in 0..rounds {
        let skip = (round as u64 + 1) * SCANNED;
        // Every fake renders these pages once, before anything is timed.
        for warmed in [Some(fake), other_fake, Some(floor_fake)]
            .into_iter()
            .flatten()
        {
            for page in 0..SCANNED / PAGE {
                let url = codes_url(&warmed.base_url(), skip + page * PAGE, PAGE);
                floor::get(&floor_client, &url).await?;
            }
        }
        let before = fake.requests();
        scan.server.push(scan_once(&server, skip).await?);
        requests += fake.requests() - before;
        if let (Some(other), Some(times)) = (&other, &mut scan.baseline) {
            times.push(scan_once(other, skip).await?);
        }
        let started = Instant::now();
        for page in 0..SCANNED / PAGE {
            floor::get(&floor_client, &codes_url(&base, skip + page * PAGE, PAGE)).await?;
        }
        scan.floor.push(started.elapsed());
        let started = Instant::now();
        for page in 0..SCANNED / PAGE {
            floor::get_parsed(&floor_client, &codes_url(&base, skip + page * PAGE, PAGE)).await?;
        }
        scan.parse_floor.push(started.elapsed());
    }
    let samples = sampler.finish();
    scan.requests_per_scan = requests / rounds.max(1) as u64;
    scan.peak_kb = proc_stats::peak_kb(server.pid(), &samples).unwrap_or(0);
    server.shutdown().await?;
    if let Some(other) = other {
        other.shutdown().await?;
    }
    Ok(scan)
}

async fn scan_once(server: &Server, skip: u64) -> Res<Duration> {
    let params = format!(
        r#"{{"name":"find_voucher_codes","arguments":{{"project_id":"{PROJECT}","pool_id":"{POOL}","code":"none","max_scan":{SCANNED},"skip":{skip}}}}}"#
    );
    let (answer, took) = server.peer().timed_request("tools/call", &params).await?;
    let result = expect_result(&answer, "find_voucher_codes")?;
    let scanned = result["structuredContent"]["scanned"].as_u64();
    if scanned != Some(SCANNED) {
        return Err(format!(
            "find_voucher_codes scanned {scanned:?} codes, not {SCANNED}: {result}"
        ));
    }
    Ok(took)
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// The section of the report.
pub fn print(scan: &Scan, full: bool) {
    let server = median(&scan.server);
    let floor = median(&scan.floor);
    let parse_floor = median(&scan.parse_floor);
    let ratio = server.as_secs_f64() / floor.as_secs_f64().max(1e-9);
    let parse_ratio = server.as_secs_f64() / parse_floor.as_secs_f64().max(1e-9);
    let peak_mb = scan.peak_kb as f64 / 1024.0;
    let verdict = |met: bool| match (full, met) {
        (false, _) => "",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    println!(
        "\n[find_voucher_codes: full scan of {SCANNED} codes ({} pages), {} rounds]",
        SCANNED / PAGE,
        scan.server.len()
    );
    println!(
        "  server median / floor (ten GETs) median                  | {:.2} / {:.2} ms",
        server.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  ratio to floor                                            | {ratio:.3}x  (budget < 1.3x) {}",
        verdict(ratio < 1.3)
    );
    if let Some(baseline) = scan.baseline.as_deref().map(median) {
        println!(
            "  baseline median / server median                           | {:.2} ms / {:.3}x",
            baseline.as_secs_f64() * 1e3,
            server.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "  parse floor (ten GETs, each body checked as JSON) median  | {:.2} ms",
        parse_floor.as_secs_f64() * 1e3
    );
    println!("  ratio to parse floor                                      | {parse_ratio:.3}x");
    println!(
        "  upstream requests per scan                                | {}",
        scan.requests_per_scan
    );
    println!(
        "  peak RSS while scanning                                   | {peak_mb:.2} MB  (budget < 16 MB) {}",
        verdict(peak_mb < 16.0)
    );
}

/// The section of the scan against an API that answers after `latency`:
/// what the read-ahead is for. Ten GETs one after another are the floor.
pub fn print_slow(scan: &Scan, latency: Duration) {
    let server = median(&scan.server);
    let floor = median(&scan.floor);
    println!(
        "\n[find_voucher_codes: the same scan, the API answering after {} ms, {} rounds]",
        latency.as_millis(),
        scan.server.len()
    );
    println!(
        "  server median / floor (ten GETs in turn) median           | {:.1} / {:.1} ms = {:.3}x",
        server.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3,
        server.as_secs_f64() / floor.as_secs_f64().max(1e-9)
    );
    if let Some(baseline) = scan.baseline.as_deref().map(median) {
        println!(
            "  baseline median / server median                           | {:.1} ms / {:.3}x",
            baseline.as_secs_f64() * 1e3,
            server.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "  upstream requests per scan                                | {}",
        scan.requests_per_scan
    );
}
