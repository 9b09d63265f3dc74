//! The measurements. Each takes every subject (the binary measured and,
//! when one is given, the baseline) and interleaves their samples where the
//! bench already alternates: one subject's call and its floor GET, then the
//! next subject's, so that noise from the machine falls on all alike.
//! Without a baseline there is one subject, and each measurement runs one
//! server alone.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{self, expect_result, Server};
use crate::fake::{self, codes_url, Fake};
use crate::floor;
use crate::support::jsonrpc::Peer;
use crate::support::proc_stats::{self, RssSampler};
use crate::{Plan, Res, LARGE, SMALL};

/// A binary under test with fakes of its own, so that their counters tell
/// what that server did.
pub struct Subject {
    pub bin: PathBuf,
    /// Answers at once.
    pub fast: Fake,
    /// Answers after the throughput run's upstream latency.
    pub slow: Fake,
}

#[derive(Default)]
pub struct Cold {
    pub to_tools: Vec<Duration>,
    pub to_initialize: Vec<Duration>,
    pub tool_count: usize,
}

/// `spawns` cold starts of each subject: spawn, handshake, `tools/list`.
pub async fn cold_start(subjects: &[Subject], spawns: usize) -> Res<Vec<Cold>> {
    let mut colds: Vec<Cold> = subjects.iter().map(|_| Cold::default()).collect();
    for _ in 0..spawns {
        for (subject, cold) in subjects.iter().zip(&mut colds) {
            cold_start_once(subject, cold).await?;
        }
    }
    Ok(colds)
}

async fn cold_start_once(subject: &Subject, cold: &mut Cold) -> Res<()> {
    let started = Instant::now();
    let server = Server::spawn(&subject.bin, &subject.fast)?;
    let init = server.handshake().await?;
    let (tools, _) = server.peer().timed_request("tools/list", "{}").await?;
    cold.to_initialize
        .push(init.read_at.saturating_duration_since(started));
    cold.to_tools
        .push(tools.read_at.saturating_duration_since(started));
    let result = expect_result(&tools, "tools/list")?;
    let names: Vec<&str> = result
        .get("tools")
        .and_then(|t| t.as_array())
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(|n| n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if !names.contains(&"list_voucher_codes") {
        return Err(format!(
            "tools/list does not offer list_voucher_codes: {}",
            client::excerpt(&tools.bytes)
        ));
    }
    cold.tool_count = names.len();
    server.shutdown().await
}

pub struct Side {
    pub server: Vec<Duration>,
    pub floor: Vec<Duration>,
    /// CPU time the server spent over the measured calls, all threads.
    pub server_cpu: Duration,
    /// Size of the last answer line, in bytes.
    pub answer_bytes: usize,
}

pub struct Sequential {
    pub ping: Vec<Duration>,
    pub small: Side,
    pub large: Side,
    pub rss_large: Vec<u64>,
    pub hwm_after_large_kb: u64,
    pub rss_idle_kb: u64,
    pub upstream_requests: u64,
    pub upstream_connections: u64,
    pub stray_lines: u64,
}

/// One server per subject, each spawned against `fake_of(subject)` and
/// initialized.
async fn start_servers(
    subjects: &[Subject],
    fake_of: impl Fn(&Subject) -> &Fake,
) -> Res<Vec<Server>> {
    let mut servers = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let server = Server::spawn(&subject.bin, fake_of(subject))?;
        server.handshake().await?;
        servers.push(server);
    }
    Ok(servers)
}

/// Pings, then sequential calls of 20 and of 1000 codes, each followed by
/// a floor GET.
pub async fn sequential(
    subjects: &[Subject],
    floor_fake: &Fake,
    plan: &Plan,
) -> Res<Vec<Sequential>> {
    let floor = floor::client()?;
    let before: Vec<(u64, u64)> = subjects
        .iter()
        .map(|s| (s.fast.requests(), s.fast.connections()))
        .collect();
    let mut servers = start_servers(subjects, |s| &s.fast).await?;
    let rss_idle_kb: Vec<u64> = servers
        .iter()
        .map(|s| s.status_kb("VmRSS"))
        .collect::<Res<_>>()?;

    let mut pings: Vec<Vec<Duration>> = servers
        .iter()
        .map(|_| Vec::with_capacity(plan.pings))
        .collect();
    for i in 0..plan.pings + plan.pings / 10 {
        for (server, ping) in servers.iter().zip(&mut pings) {
            let (reply, took) = server.peer().timed_request("ping", "{}").await?;
            expect_result(&reply, "ping")?;
            if i >= plan.pings / 10 {
                ping.push(took);
            }
        }
    }

    alternate(&servers, &floor, floor_fake, SMALL, plan.small_warmup).await?;
    let small = alternate(&servers, &floor, floor_fake, SMALL, plan.small_calls).await?;

    alternate(&servers, &floor, floor_fake, LARGE, plan.large_warmup).await?;
    let samplers: Vec<RssSampler> = servers.iter().map(|s| RssSampler::start(s.pid())).collect();
    let large = alternate(&servers, &floor, floor_fake, LARGE, plan.large_calls).await;
    let rss_large: Vec<Vec<u64>> = samplers.into_iter().map(RssSampler::finish).collect();
    let large = large?;
    let hwm_after_large_kb: Vec<u64> = servers
        .iter()
        .map(|s| s.status_kb("VmHWM"))
        .collect::<Res<_>>()?;
    let stray_lines: Vec<u64> = servers.iter_mut().map(Server::stray_lines).collect();
    for server in servers {
        server.shutdown().await?;
    }
    let mut fakes: Vec<&Fake> = subjects.iter().map(|s| &s.fast).collect();
    fakes.push(floor_fake);
    fake::check_rejected(&fakes)?;

    let mut out = Vec::with_capacity(subjects.len());
    let per_subject = subjects
        .iter()
        .zip(before)
        .zip(pings)
        .zip(small.into_iter().zip(large))
        .zip(rss_large);
    for (k, ((((subject, before), ping), (small, large)), rss_large)) in per_subject.enumerate() {
        out.push(Sequential {
            ping,
            small,
            large,
            rss_large,
            hwm_after_large_kb: hwm_after_large_kb[k],
            rss_idle_kb: rss_idle_kb[k],
            upstream_requests: subject.fast.requests() - before.0,
            upstream_connections: subject.fast.connections() - before.1,
            stray_lines: stray_lines[k],
        });
    }
    Ok(out)
}

/// `calls` calls of `count` codes on each server, each followed by a floor
/// GET of the same page, so that the machine's noise falls on all alike.
async fn alternate(
    servers: &[Server],
    floor: &reqwest::Client,
    floor_fake: &Fake,
    count: u64,
    calls: usize,
) -> Res<Vec<Side>> {
    let mut sides: Vec<Side> = servers
        .iter()
        .map(|_| Side {
            server: Vec::with_capacity(calls),
            floor: Vec::with_capacity(calls),
            server_cpu: Duration::ZERO,
            answer_bytes: 0,
        })
        .collect();
    let base = floor_fake.base_url();
    let cpu_before: Vec<Duration> = servers.iter().map(Server::cpu_time).collect::<Res<_>>()?;
    for i in 0..calls {
        let skip = (i as u64 % 5) * count;
        for (server, side) in servers.iter().zip(&mut sides) {
            let (took, bytes) = client::list_codes(server.peer(), skip, count).await?;
            side.server.push(took);
            side.answer_bytes = bytes;
            side.floor
                .push(floor::get(floor, &codes_url(&base, skip, count)).await?);
        }
    }
    for ((server, side), before) in servers.iter().zip(&mut sides).zip(cpu_before) {
        side.server_cpu = server.cpu_time()?.saturating_sub(before);
    }
    Ok(sides)
}

pub struct Throughput {
    pub walls: Vec<Duration>,
    pub floor_walls: Vec<Duration>,
    pub latencies: Vec<Duration>,
    pub server_cpu: Duration,
    /// max(VmHWM, sampled VmRSS) after the first round.
    pub first_round_peak_kb: u64,
    pub hwm_kb: u64,
    pub rss_samples: Vec<u64>,
    pub rss_after_kb: u64,
    pub rss_anon_kb: u64,
    pub rss_file_kb: u64,
    pub threads: u64,
    pub upstream_connections: u64,
}

/// Rounds of many calls in flight against the slow fake, each round
/// followed by the same GETs straight from reqwest.
pub async fn throughput(
    subjects: &[Subject],
    floor_fake: &Fake,
    plan: &Plan,
) -> Res<Vec<Throughput>> {
    let floor = floor::client()?;
    let base = floor_fake.base_url();
    let floor_burst = |calls: usize| {
        let floor = floor.clone();
        let base = base.clone();
        burst(calls, plan.tp_in_flight, move |i| {
            let floor = floor.clone();
            let url = codes_url(&base, (i as u64 % 5) * SMALL, SMALL);
            async move { floor::get(&floor, &url).await }
        })
    };
    let server_burst = |peer: &Arc<Peer>, calls: usize| {
        let peer = Arc::clone(peer);
        burst(calls, plan.tp_in_flight, move |i| {
            let peer = Arc::clone(&peer);
            async move {
                let (took, _) = client::list_codes(&peer, (i as u64 % 5) * SMALL, SMALL).await?;
                Ok(took)
            }
        })
    };

    let connections_before: Vec<u64> = subjects.iter().map(|s| s.slow.connections()).collect();
    let servers = start_servers(subjects, |s| &s.slow).await?;
    // One round of `in_flight` calls first on each side, so that the
    // connection pools are open: the figures are for steady state.
    for server in &servers {
        server_burst(server.peer(), plan.tp_in_flight).await?;
        floor_burst(plan.tp_in_flight).await?;
    }

    let n = servers.len();
    let mut walls = vec![Vec::new(); n];
    let mut floor_walls = vec![Vec::new(); n];
    let mut latencies = vec![Vec::new(); n];
    let mut rss_samples = vec![Vec::new(); n];
    let mut first_round_peak_kb = vec![0; n];
    let cpu_before: Vec<Duration> = servers.iter().map(Server::cpu_time).collect::<Res<_>>()?;
    for round in 0..plan.tp_rounds {
        for (k, server) in servers.iter().enumerate() {
            let sampler = RssSampler::start(server.pid());
            let started = Instant::now();
            let calls = server_burst(server.peer(), plan.tp_calls).await;
            walls[k].push(started.elapsed());
            let mut samples = sampler.finish();
            latencies[k].append(&mut calls?);
            if round == 0 {
                first_round_peak_kb[k] =
                    proc_stats::peak_kb(server.pid(), &samples).ok_or_else(|| {
                        format!("cannot read VmHWM of the server (pid {})", server.pid())
                    })?;
            }
            rss_samples[k].append(&mut samples);
            let started = Instant::now();
            floor_burst(plan.tp_calls).await?;
            floor_walls[k].push(started.elapsed());
        }
    }
    // Each server idles while the floor (and any other server) runs; its
    // CPU time is all its own.
    let mut out = Vec::with_capacity(n);
    for (k, server) in servers.iter().enumerate() {
        out.push(Throughput {
            walls: std::mem::take(&mut walls[k]),
            floor_walls: std::mem::take(&mut floor_walls[k]),
            latencies: std::mem::take(&mut latencies[k]),
            server_cpu: server.cpu_time()?.saturating_sub(cpu_before[k]),
            first_round_peak_kb: first_round_peak_kb[k],
            hwm_kb: server.status_kb("VmHWM")?,
            rss_samples: std::mem::take(&mut rss_samples[k]),
            rss_after_kb: server.status_kb("VmRSS")?,
            rss_anon_kb: server.status_kb("RssAnon")?,
            rss_file_kb: server.status_kb("RssFile")?,
            threads: server.status_kb("Threads")?,
            upstream_connections: 0,
        });
    }
    for server in servers {
        server.shutdown().await?;
    }
    let mut fakes: Vec<&Fake> = subjects.iter().map(|s| &s.slow).collect();
    fakes.push(floor_fake);
    fake::check_rejected(&fakes)?;
    for ((tp, subject), before) in out.iter_mut().zip(subjects).zip(connections_before) {
        tp.upstream_connections = subject.slow.connections() - before;
    }
    Ok(out)
}

/// `calls` calls, `in_flight` at a time: each of `in_flight` workers makes
/// its next call as soon as its last is answered. `call(i)` makes call `i`.
async fn burst<F, Fut>(calls: usize, in_flight: usize, call: F) -> Res<Vec<Duration>>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Res<Duration>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let next = Arc::clone(&next);
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut took = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return Ok::<_, String>(took);
                }
                took.push(call(i).await?);
            }
        }));
    }
    let mut all = Vec::with_capacity(calls);
    for worker in workers {
        let mut took = worker
            .await
            .map_err(|e| format!("a concurrent worker failed: {e}"))??;
        all.append(&mut took);
    }
    Ok(all)
}
