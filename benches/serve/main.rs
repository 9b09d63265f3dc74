//! End-to-end benchmark of the MCP server as an assistant sees it: the
//! release binary, spoken to over stdio, in front of a fake Bloomreach API
//! that answers from memory.
//!
//! Run with `cargo bench --bench serve`. It prints one table of figures, each
//! with its budget and whether it is met. The bench never fails on a missed
//! budget (the machine may be noisy); it fails, with a message, when the
//! server misbehaves: a wrong answer, a crash, or no answer within
//! [`READ_TIMEOUT`].
//!
//! # Which binary
//!
//! The figures are for the binary a user installs, built by
//! `cargo build --release` — not the one `cargo bench` builds next to this
//! bench, which has the dev-dependencies' features unified into it (tokio
//! `full`, rmcp's client) and so is a slightly different program. The bench
//! therefore runs `$CARGO build --release --bin bloomreach-vouchers-mcp`
//! itself (a no-op when the binary is fresh) and uses
//! `<target dir>/release/bloomreach-vouchers-mcp`, where the target dir is
//! `$CARGO_TARGET_DIR` when set (relative to the package root if relative),
//! else the directory this bench executable was built into
//! (`<target dir>/release/deps/serve-*`), else `<package root>/target`.
//! If that build fails, an existing binary at that path is used with a
//! warning. `SERVE_BENCH_BIN=/path/to/binary` skips all of this and measures
//! the given binary (mind that `cargo bench` itself copies its variant to
//! that same path, about 0.5 MB larger, until the nested build puts the
//! plain one back). The nested build runs without the package variables
//! Cargo gives the bench (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...), which
//! build scripts such as ring's watch: with them, every `cargo bench` and
//! every plain `cargo build` would rebuild half the tree.
//!
//! `SERVE_BENCH_BASELINE_BIN=/path/to/other/binary` measures that binary
//! too, in the same run: every figure is taken for both, their samples
//! interleaved (one spawn, call, ping or throughput round of each in turn,
//! each followed by its own floor sample where the bench takes one), and
//! the table gains the baseline's figures and the ratio new / baseline of
//! each. Budgets and verdicts stay those of the measured binary.
//!
//! Run without `--bench` (as `cargo test --benches` or `--all-targets` do), it
//! makes a quick smoke run against the binary Cargo built for this target
//! (`CARGO_BIN_EXE_bloomreach-vouchers-mcp`), with few samples and no
//! verdicts, so that the bench is checked without a release build.
//!
//! # Design
//!
//! * The fake API is the raw HTTP/1.1 server of `tests/support/raw_http.rs`
//!   on 127.0.0.1, with keep-alive and one blocking thread per connection;
//!   [`fake`] makes it the codes endpoint: it checks the path, `skip`,
//!   `count` and Basic auth, looks the answer up in a cache of fully
//!   rendered responses (built once per `skip`/`count`), optionally sleeps
//!   (20 ms for the throughput run) and writes it. No runtime between the
//!   socket and the answer, and the delay is a `thread::sleep`, which
//!   overshoots by microseconds where a tokio timer rounds up to the next
//!   millisecond. Each server and the floor get fakes of their own, so the
//!   fakes' counters tell what each server did (requests, connections); any
//!   request a fake rejects fails the bench.
//! * The JSON-RPC client is the one of `tests/support/jsonrpc.rs`: it writes
//!   one line per request to the server's stdin and a reader task matches
//!   answer lines to requests by `id`. A request's latency runs from just
//!   before its line is written to the moment its answer line has been read
//!   in full; the answer is checked (success, number of codes, a text block)
//!   after the clock has stopped. The bench keeps no copy of stdout.
//! * The floor is what the server cannot avoid: the same GET against the
//!   same kind of fake with a reused `reqwest::Client` (the HTTP client the
//!   server uses), body read in full, nothing decoded. Server calls and floor
//!   GETs alternate one by one, so that noise from the machine falls on both
//!   alike. Overhead is server median minus floor median: the stdio round
//!   trip, the JSON-RPC framing, decoding the API's answer, re-shaping it and
//!   encoding the result. The throughput run has a floor too: the same GETs,
//!   as many in flight, straight from reqwest.
//! * Server CPU time is the sum over its threads of
//!   `/proc/<pid>/task/*/schedstat` (ns, user + kernel).
//! * Memory is read from `/proc/<pid>/status`. `VmHWM` is only updated
//!   lazily by the kernel (memory the allocator hands back with `madvise`
//!   never raises it), so a thread also samples `VmRSS` every 2 ms and a peak
//!   is the larger of the two (`tests/support/proc_stats.rs`).
//! * Every child is started with the shared clean command of
//!   `tests/support/binary.rs` and `kill_on_drop`, so an error anywhere kills
//!   it; at the end it is closed (stdin EOF) and waited for, and killed if it
//!   does not exit within 5 s.
//!
//! `SERVE_BENCH_ONLY=loomi` measures only the Loomi Connect section,
//! `SERVE_BENCH_ONLY=scan` only the full scan, and
//! `SERVE_BENCH_ONLY=questions` only the questions (the seed's question
//! through the fake Loomi, and the memory of a kept pool).
//!
//! The first run after a change to `src/` pays for one extra release link
//! (fat LTO, about 1.5 min on 2 cores) on top of Cargo's own build of the
//! bench; the measurements themselves take about 5 seconds (twice that with
//! a baseline).

#[path = "../../tests/support/mod.rs"]
mod support;

mod client;
mod fake;
mod floor;
mod loomi;
mod measure;
mod questions;
mod release;
mod report;
mod scan;

use std::path::PathBuf;
use std::time::Duration;

use fake::Fake;
use measure::Subject;
use report::{Machine, Run};

/// The longest wait for any one answer, from the server or the fake.
const READ_TIMEOUT: Duration = support::jsonrpc::ANSWER_TIMEOUT;

type Res<T> = Result<T, String>;

/// How many of everything to do.
#[derive(Clone, Copy)]
struct Plan {
    full: bool,
    cold_spawns: usize,
    pings: usize,
    small_warmup: usize,
    small_calls: usize,
    large_warmup: usize,
    large_calls: usize,
    tp_calls: usize,
    tp_in_flight: usize,
    tp_rounds: usize,
    tp_latency: Duration,
    scan_rounds: usize,
    slow_scan_rounds: usize,
    loomi_calls: usize,
}

const SMALL: u64 = 20;
const LARGE: u64 = 1000;

impl Plan {
    fn full() -> Self {
        Self {
            full: true,
            cold_spawns: 20,
            pings: 300,
            small_warmup: 50,
            small_calls: 300,
            large_warmup: 15,
            large_calls: 100,
            tp_calls: 1000,
            tp_in_flight: 50,
            tp_rounds: 3,
            tp_latency: Duration::from_millis(20),
            scan_rounds: 20,
            slow_scan_rounds: 5,
            loomi_calls: 30,
        }
    }

    fn smoke() -> Self {
        Self {
            full: false,
            cold_spawns: 2,
            pings: 5,
            small_warmup: 2,
            small_calls: 5,
            large_warmup: 1,
            large_calls: 3,
            tp_calls: 40,
            tp_in_flight: 10,
            tp_rounds: 1,
            tp_latency: Duration::from_millis(20),
            scan_rounds: 1,
            slow_scan_rounds: 1,
            loomi_calls: 2,
        }
    }

    fn tp_ideal(&self) -> Duration {
        self.tp_latency * self.tp_calls.div_ceil(self.tp_in_flight) as u32
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full { Plan::full() } else { Plan::smoke() };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve bench FAILED: could not start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(plan));
    // Children are killed when their handles drop, inside `run`; drop the
    // runtime (and with it any task still holding one) before exiting.
    drop(runtime);
    if let Err(e) = result {
        eprintln!("\nserve bench FAILED: {e}");
        std::process::exit(1);
    }
}

/// The binary `SERVE_BENCH_BASELINE_BIN` names, if it is set.
fn baseline_binary() -> Res<Option<PathBuf>> {
    let Some(path) = std::env::var_os("SERVE_BENCH_BASELINE_BIN") else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(format!(
            "SERVE_BENCH_BASELINE_BIN={} is not a file",
            path.display()
        ));
    }
    Ok(Some(path))
}

/// The Loomi Connect figures, for the measured binary (against the
/// baseline's cold start where there is one).
async fn loomi_section(subjects: &[Subject], plan: &Plan) -> Res<loomi::Loomi> {
    eprintln!(
        "  Loomi Connect ({} calls, a second apart)...",
        plan.loomi_calls
    );
    let baseline = subjects.get(1).map(|s| s.bin.as_path());
    loomi::measure(
        &subjects[0].bin,
        baseline,
        plan.loomi_calls,
        plan.cold_spawns,
    )
    .await
}

/// The full scans, by the measured binary and by the baseline when it has
/// the tool.
async fn scan_section(
    subjects: &[Subject],
    fast_floor: &Fake,
    slow_floor: &Fake,
    plan: &Plan,
) -> Res<(scan::Scan, scan::Scan)> {
    fn fast(s: &Subject) -> (&std::path::Path, &Fake) {
        (s.bin.as_path(), &s.fast)
    }
    fn slow(s: &Subject) -> (&std::path::Path, &Fake) {
        (s.bin.as_path(), &s.slow)
    }
    let quick = scan::full_scans(
        fast(&subjects[0]),
        subjects.get(1).map(fast),
        fast_floor,
        plan.scan_rounds,
    )
    .await?;
    eprintln!(
        "  full scans, API answering after {} ms ({} rounds)...",
        plan.tp_latency.as_millis(),
        plan.slow_scan_rounds
    );
    let slow = scan::full_scans(
        slow(&subjects[0]),
        subjects.get(1).map(slow),
        slow_floor,
        plan.slow_scan_rounds,
    )
    .await?;
    Ok((quick, slow))
}

fn print_scans(scans: &(scan::Scan, scan::Scan), plan: &Plan) {
    scan::print(&scans.0, plan.full);
    scan::print_slow(&scans.1, plan.tp_latency);
}

async fn run(plan: Plan) -> Res<()> {
    let bin = if plan.full {
        release::release_binary()?
    } else {
        PathBuf::from(support::binary::BIN)
    };
    let baseline = baseline_binary()?;
    let machine = Machine::read();
    eprintln!(
        "serve bench: {} run of {}",
        if plan.full { "full" } else { "smoke" },
        bin.display()
    );
    if let Some(baseline) = &baseline {
        eprintln!("serve bench: baseline {}", baseline.display());
    }

    let mut subjects = Vec::new();
    for bin in std::iter::once(bin).chain(baseline) {
        subjects.push(Subject {
            bin,
            fast: Fake::start(Duration::ZERO)?,
            slow: Fake::start(plan.tp_latency)?,
        });
    }
    let fast_floor = Fake::start(Duration::ZERO)?;
    let slow_floor = Fake::start(plan.tp_latency)?;

    if std::env::var("SERVE_BENCH_ONLY").as_deref() == Ok("loomi") {
        let loomi = loomi_section(&subjects, &plan).await?;
        loomi::print(&loomi, plan.full);
        return Ok(());
    }
    if std::env::var("SERVE_BENCH_ONLY").as_deref() == Ok("questions") {
        let q = questions::measure(&subjects[0].bin, &subjects[0].fast).await?;
        questions::print(&q, plan.full);
        return Ok(());
    }
    if std::env::var("SERVE_BENCH_ONLY").as_deref() == Ok("scan") {
        eprintln!("  full scans ({} rounds)...", plan.scan_rounds);
        let scans = scan_section(&subjects, &fast_floor, &slow_floor, &plan).await?;
        print_scans(&scans, &plan);
        return Ok(());
    }
    eprintln!("  cold start ({} spawns)...", plan.cold_spawns);
    let cold = measure::cold_start(&subjects, plan.cold_spawns).await?;

    eprintln!("  sequential calls...");
    let seq = measure::sequential(&subjects, &fast_floor, &plan).await?;

    eprintln!(
        "  throughput ({} rounds of {} calls, {} in flight, {} ms upstream)...",
        plan.tp_rounds,
        plan.tp_calls,
        plan.tp_in_flight,
        plan.tp_latency.as_millis()
    );
    let tp = measure::throughput(&subjects, &slow_floor, &plan).await?;

    eprintln!("  full scans ({} rounds)...", plan.scan_rounds);
    let scans = scan_section(&subjects, &fast_floor, &slow_floor, &plan).await?;

    let loomi = loomi_section(&subjects, &plan).await?;
    eprintln!("  questions (the seed's question through the fake Loomi; a kept pool)...");
    let questions = questions::measure(&subjects[0].bin, &subjects[0].fast).await?;

    let mut runs = Vec::with_capacity(subjects.len());
    for (((subject, cold), seq), tp) in subjects.into_iter().zip(cold).zip(seq).zip(tp) {
        let size = std::fs::metadata(&subject.bin)
            .map_err(|e| format!("cannot stat {}: {e}", subject.bin.display()))?
            .len();
        runs.push(Run {
            bin: subject.bin,
            size,
            cold,
            seq,
            tp,
        });
    }
    report::print_report(&plan, &machine, &runs);
    print_scans(&scans, &plan);
    loomi::print(&loomi, plan.full);
    questions::print(&questions, plan.full);
    Ok(())
}
