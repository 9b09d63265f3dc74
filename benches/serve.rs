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
//! Run without `--bench` (as `cargo test --benches` or `--all-targets` do), it
//! makes a quick smoke run against the binary Cargo built for this target
//! (`CARGO_BIN_EXE_bloomreach-vouchers-mcp`), with few samples and no
//! verdicts, so that the bench is checked without a release build.
//!
//! # Design
//!
//! * The fake API is a hand-written HTTP/1.1 server on 127.0.0.1 with
//!   keep-alive, one blocking thread per connection: it reads the request
//!   head, checks the path, `skip`, `count` and Basic auth, looks the answer
//!   up in a cache of fully rendered responses (built once per
//!   `skip`/`count`), optionally sleeps (20 ms for the throughput run) and
//!   writes it. No runtime between the socket and the answer, and the delay
//!   is a `thread::sleep`, which overshoots by microseconds where a tokio
//!   timer rounds up to the next millisecond. The server and the floor each
//!   get a fake of their own, so the fakes' counters tell what the server
//!   did (requests, connections); any request a fake rejects fails the bench.
//! * The JSON-RPC client writes one line per request to the server's stdin
//!   and a reader task matches answer lines to requests by `id`. A request's
//!   latency runs from just before its line is written to the moment its
//!   answer line has been read in full; the answer is checked (success,
//!   number of codes, a text block) after the clock has stopped.
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
//!   is the larger of the two.
//! * Every child is started with `kill_on_drop`, so an error anywhere kills
//!   it; at the end it is closed (stdin EOF) and waited for, and killed if it
//!   does not exit within [`EXIT_TIMEOUT`].
//!
//! The first run after a change to `src/` pays for one extra release link
//! (fat LTO, about 1.5 min on 2 cores) on top of Cargo's own build of the
//! bench; the measurements themselves take about 5 seconds.

use std::collections::HashMap;
use std::io::{BufRead, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest wait for any one answer, from the server or the fake.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server gets to exit after its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
const BIN_NAME: &str = "bloomreach-vouchers-mcp";
const PROJECT: &str = "bench-project";
const POOL: &str = "bench-pool";
const KEY_ID: &str = "bench-key-id";
const SECRET: &str = "bench-secret";
/// The protocol version the client announces.
const PROTOCOL: &str = "2025-06-18";

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

async fn run(plan: Plan) -> Res<()> {
    let bin = if plan.full {
        release_binary()?
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_bloomreach-vouchers-mcp"))
    };
    let machine = Machine::read();
    eprintln!(
        "serve bench: {} run of {}",
        if plan.full { "full" } else { "smoke" },
        bin.display()
    );

    // The server and the floor each get a fake of their own, so that the
    // fakes' counters tell what the server did.
    let fast = Fake::start(Duration::ZERO)?;
    let fast_floor = Fake::start(Duration::ZERO)?;
    let slow = Fake::start(plan.tp_latency)?;
    let slow_floor = Fake::start(plan.tp_latency)?;

    eprintln!("  cold start ({} spawns)...", plan.cold_spawns);
    let cold = cold_start(&bin, &fast, plan.cold_spawns).await?;

    eprintln!("  sequential calls...");
    let seq = sequential(&bin, &fast, &fast_floor, &plan).await?;

    eprintln!(
        "  throughput ({} rounds of {} calls, {} in flight, {} ms upstream)...",
        plan.tp_rounds,
        plan.tp_calls,
        plan.tp_in_flight,
        plan.tp_latency.as_millis()
    );
    let tp = throughput(&bin, &slow, &slow_floor, &plan).await?;

    let size = std::fs::metadata(&bin)
        .map_err(|e| format!("cannot stat {}: {e}", bin.display()))?
        .len();

    print_report(&plan, &machine, &bin, size, &cold, &seq, &tp);
    Ok(())
}

// ---------------------------------------------------------------------------
// Finding and building the release binary
// ---------------------------------------------------------------------------

fn release_binary() -> Res<PathBuf> {
    if let Some(path) = std::env::var_os("SERVE_BENCH_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!("SERVE_BENCH_BIN={} is not a file", path.display()));
        }
        return Ok(path);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = target_dir(manifest_dir);
    let bin = target_dir.join("release").join(BIN_NAME);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "serve bench: cargo build --release --bin {BIN_NAME} (target dir {})",
        target_dir.display()
    );
    let started = Instant::now();
    let mut build = std::process::Command::new(&cargo);
    build
        .args(["build", "--release", "--quiet", "--bin", BIN_NAME])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null());
    // Cargo gives this bench the package's variables (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, ...). Build scripts that watch them with
    // `rerun-if-env-changed` (ring's does) would see them change between a
    // plain `cargo build` and this one and rebuild half the tree each time.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if is_cargo_run_variable(key) {
            build.env_remove(key);
        }
    }
    let status = build.status();
    match status {
        Ok(s) if s.success() => {
            eprintln!(
                "serve bench: release binary ready in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        other => {
            let why = match other {
                Ok(s) => format!("exited with {s}"),
                Err(e) => format!("could not run {}: {e}", Path::new(&cargo).display()),
            };
            if bin.is_file() {
                eprintln!(
                    "serve bench: WARNING: cargo build --release {why}; measuring the existing {}",
                    bin.display()
                );
            } else {
                return Err(format!(
                    "cargo build --release {why}, and there is no {}",
                    bin.display()
                ));
            }
        }
    }
    if !bin.is_file() {
        return Err(format!("the build left no binary at {}", bin.display()));
    }
    Ok(bin)
}

/// Variables Cargo sets for the programs it runs, as opposed to the ones a
/// user sets to configure Cargo.
fn is_cargo_run_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_BIN_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

fn target_dir(manifest_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            manifest_dir.join(dir)
        };
    }
    // This executable is <target>/<profile>/deps/serve-<hash>.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            if exe.parent().and_then(Path::file_name) == Some("deps".as_ref()) {
                return target.to_path_buf();
            }
        }
    }
    manifest_dir.join("target")
}

// ---------------------------------------------------------------------------
// The fake Bloomreach API
// ---------------------------------------------------------------------------

/// A fake of the codes endpoint on 127.0.0.1, served from its own thread.
struct Fake {
    addr: SocketAddr,
    state: Arc<FakeState>,
}

/// A rendered HTTP response, head and body.
type Response = Arc<[u8]>;

struct FakeState {
    delay: Duration,
    /// Fully rendered HTTP responses by (skip, count).
    cache: Mutex<HashMap<(u64, u64), Response>>,
    requests: AtomicU64,
    connections: AtomicU64,
    /// Requests answered with something other than 200.
    rejected: AtomicU64,
}

impl Fake {
    fn start(delay: Duration) -> Res<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("fake API: cannot bind 127.0.0.1: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("fake API: {e}"))?;
        let state = Arc::new(FakeState {
            delay,
            cache: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        let accept_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name(format!("fake-api-{}", addr.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    accept_state.connections.fetch_add(1, Ordering::Relaxed);
                    let state = Arc::clone(&accept_state);
                    let spawned = std::thread::Builder::new()
                        .name("fake-api-conn".to_owned())
                        .stack_size(256 * 1024)
                        .spawn(move || {
                            let _ = serve_connection(stream, &state);
                        });
                    if let Err(e) = spawned {
                        eprintln!("fake API: cannot start a connection thread: {e}");
                    }
                }
            })
            .map_err(|e| format!("fake API: cannot start its thread: {e}"))?;
        Ok(Self { addr, state })
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    fn rejected(&self) -> u64 {
        self.state.rejected.load(Ordering::Relaxed)
    }
}

fn codes_url(base: &str, skip: u64, count: u64) -> String {
    format!(
        "{base}/data/v2/projects/{PROJECT}/vouchers/pools/{POOL}/codes?skip={skip}&count={count}"
    )
}

/// Serves one keep-alive connection until the peer closes it. Blocking I/O
/// on a thread of its own: no runtime between the socket and the answer, and
/// the delay is a plain `thread::sleep`, which overshoots by microseconds
/// where a tokio timer rounds up to the next millisecond.
fn serve_connection(stream: std::net::TcpStream, state: &FakeState) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut write = stream.try_clone()?;
    let mut read = std::io::BufReader::with_capacity(16 * 1024, stream);
    let mut line = String::with_capacity(256);
    loop {
        line.clear();
        if read.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_ascii_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut authorized = false;
        let mut body_len = 0usize;
        loop {
            line.clear();
            if read.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("authorization") {
                    authorized = value.starts_with("Basic ");
                } else if name.eq_ignore_ascii_case("content-length") {
                    body_len = value.parse().unwrap_or(0);
                }
            }
        }
        if body_len > 0 {
            let mut sink = vec![0u8; body_len];
            read.read_exact(&mut sink)?;
        }
        state.requests.fetch_add(1, Ordering::Relaxed);
        if !state.delay.is_zero() {
            std::thread::sleep(state.delay);
        }
        let response = state.respond(&method, &target, authorized);
        write.write_all(&response)?;
    }
}

impl FakeState {
    fn respond(&self, method: &str, target: &str, authorized: bool) -> Arc<[u8]> {
        let codes_path = format!("/data/v2/projects/{PROJECT}/vouchers/pools/{POOL}/codes");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if !authorized {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return http_response(401, br#"{"success":false,"error":"access key not found"}"#);
        }
        if method != "GET" || path != codes_path {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return http_response(
                404,
                br#"{"errors":{"code":404,"description":"no such endpoint in the fake"}}"#,
            );
        }
        let param = |key: &str| -> Option<u64> {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.parse().ok())
        };
        let (Some(skip), Some(count)) = (param("skip"), param("count")) else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return http_response(
                400,
                br#"{"success":false,"errors":{"_global":["skip and count are required"]}}"#,
            );
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            cache
                .entry((skip, count))
                .or_insert_with(|| http_response(200, &codes_body(skip, count))),
        )
    }
}

/// How many codes the fake pool holds.
const POOL_SIZE: u64 = 1_000_000;

/// The answer of the codes endpoint in the contract's shape: a mix of
/// available, assigned and redeemed codes.
fn codes_body(skip: u64, count: u64) -> Vec<u8> {
    let end = (skip + count).min(POOL_SIZE);
    let mut body = String::with_capacity(128 + 110 * count as usize);
    body.push_str(r#"{"success":true,"data":["#);
    for (n, i) in (skip..end).enumerate() {
        if n > 0 {
            body.push(',');
        }
        let (status, assigned, redeemed) = match i % 3 {
            0 => ("available", "null".to_owned(), "null".to_owned()),
            1 => (
                "assigned",
                format!("{}.5", 1_718_000_000 + i * 37),
                "null".to_owned(),
            ),
            _ => (
                "redeemed",
                format!("{}.5", 1_718_000_000 + i * 37),
                format!("{}", 1_719_000_000 + i * 41),
            ),
        };
        body.push_str(&format!(
            r#"{{"code":"BENCH-{i:08}","status":"{status}","assigned_time":{assigned},"redeemed_time":{redeemed}}}"#
        ));
    }
    body.push_str(&format!(
        r#"],"matched":{POOL_SIZE},"matched_limited":false,"skip":{skip},"limit":{count},"total":{POOL_SIZE}}}"#
    ));
    body.into_bytes()
}

fn http_response(status: u16, body: &[u8]) -> Arc<[u8]> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.into()
}

// ---------------------------------------------------------------------------
// The server under test and a minimal JSON-RPC client for it
// ---------------------------------------------------------------------------

/// One answer line and when it had been read in full.
struct Reply {
    line: Vec<u8>,
    at: Instant,
}

/// The client side of one server's stdio.
struct Rpc {
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    /// The last few KB the server wrote to stderr, for error messages.
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    /// Lines on stdout that answered no pending request.
    stray_lines: AtomicU64,
}

struct Server {
    child: Child,
    pid: u32,
    rpc: Arc<Rpc>,
    reader: JoinHandle<()>,
    stderr: JoinHandle<()>,
}

const STDERR_TAIL: usize = 4096;

impl Server {
    fn spawn(bin: &Path, fake: &Fake) -> Res<Self> {
        let mut child = Command::new(bin)
            .env("BLOOMREACH_API_BASE_URL", fake.base_url())
            .env("BLOOMREACH_API_KEY_ID", KEY_ID)
            .env("BLOOMREACH_API_SECRET", SECRET)
            .env("BLOOMREACH_TIMEOUT_SECS", "10")
            .env("RUST_LOG", "warn")
            .env_remove("BLOOMREACH_PROJECT_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let rpc = Arc::new(Rpc {
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stderr_tail: Arc::new(Mutex::new(Vec::new())),
            stray_lines: AtomicU64::new(0),
        });
        let reader = tokio::spawn(read_stdout(stdout, Arc::clone(&rpc)));
        let tail = Arc::clone(&rpc.stderr_tail);
        let stderr = tokio::spawn(async move {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    let cut = tail.len() - STDERR_TAIL;
                    tail.drain(..cut);
                }
            }
        });
        Ok(Self {
            child,
            pid,
            rpc,
            reader,
            stderr,
        })
    }

    /// `initialize`, then `notifications/initialized`.
    async fn handshake(&self) -> Res<Reply> {
        let init = self
            .rpc
            .request(
                "initialize",
                &format!(
                    r#"{{"protocolVersion":"{PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"serve-bench","version":"0"}}}}"#
                ),
            )
            .await?;
        expect_result(&init, "initialize")?;
        self.rpc.notify("notifications/initialized", "{}").await?;
        Ok(init)
    }

    /// Reads a numeric field of `/proc/<pid>/status` (memory fields are in kB).
    fn status_kb(&self, field: &str) -> Res<u64> {
        proc_status_kb(self.pid, field)
            .ok_or_else(|| format!("cannot read {field} of the server (pid {})", self.pid))
    }

    /// CPU time of all the server's threads so far.
    fn cpu_time(&self) -> Res<Duration> {
        proc_cpu_ns(self.pid)
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("cannot read the CPU time of the server (pid {})", self.pid))
    }

    /// Closes stdin, waits for the server to exit, kills it if it does not.
    async fn shutdown(mut self) -> Res<()> {
        drop(self.rpc.stdin.lock().await.take());
        let outcome = match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "the server exited with {status} after stdin closed{}",
                self.rpc.stderr_excerpt()
            )),
            Ok(Err(e)) => Err(format!("waiting for the server: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "the server did not exit within {EXIT_TIMEOUT:?} of stdin closing; killed it{}",
                    self.rpc.stderr_excerpt()
                ))
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.reader).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.stderr).await;
        self.reader.abort();
        self.stderr.abort();
        outcome
    }
}

async fn read_stdout(stdout: tokio::process::ChildStdout, rpc: Arc<Rpc>) {
    let mut stdout = BufReader::with_capacity(1 << 20, stdout);
    let mut hint = 4096;
    let mut buf = Vec::with_capacity(hint);
    loop {
        match stdout.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let at = Instant::now();
        hint = hint.max(buf.len());
        let line = std::mem::replace(&mut buf, Vec::with_capacity(hint));
        let waiter = response_id(&line).and_then(|id| {
            rpc.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id)
        });
        match waiter {
            Some(tx) => {
                let _ = tx.send(Reply { line, at });
            }
            None => {
                rpc.stray_lines.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // EOF: every request still waiting fails at once.
    rpc.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// The numeric `id` of a JSON-RPC response line; quick for the shape rmcp
/// writes, a full parse otherwise.
fn response_id(line: &[u8]) -> Option<u64> {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    if let Some(rest) = line.strip_prefix(HEAD) {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits) == Some(&b',') {
            return std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
        }
    }
    #[derive(Deserialize)]
    struct Head {
        id: Option<serde_json::Value>,
        method: Option<IgnoredAny>,
    }
    let head: Head = serde_json::from_slice(line).ok()?;
    if head.method.is_some() {
        return None; // a request or notification from the server
    }
    head.id?.as_u64()
}

impl Rpc {
    async fn write_line(&self, line: &[u8]) -> Res<()> {
        let mut stdin = self.stdin.lock().await;
        let stdin = stdin.as_mut().ok_or("stdin already closed")?;
        stdin.write_all(line).await.map_err(|e| {
            format!(
                "writing to the server's stdin: {e}{}",
                self.stderr_excerpt()
            )
        })
    }

    async fn notify(&self, method: &str, params: &str) -> Res<()> {
        let line = format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#) + "\n";
        self.write_line(line.as_bytes()).await
    }

    /// Sends a request and waits for its answer; returns the answer and the
    /// time from just before the write to the answer being read.
    async fn request_timed(&self, method: &str, params: &str) -> Res<(Reply, Duration)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
                + "\n";
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let started = Instant::now();
        self.write_line(line.as_bytes()).await?;
        match tokio::time::timeout(READ_TIMEOUT, rx).await {
            Ok(Ok(reply)) => {
                let took = reply.at.saturating_duration_since(started);
                Ok((reply, took))
            }
            Ok(Err(_)) => Err(format!(
                "the server closed its stdout before answering {method} (id {id}){}",
                self.stderr_excerpt()
            )),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(format!(
                    "no answer to {method} (id {id}) within {READ_TIMEOUT:?}{}",
                    self.stderr_excerpt()
                ))
            }
        }
    }

    async fn request(&self, method: &str, params: &str) -> Res<Reply> {
        Ok(self.request_timed(method, params).await?.0)
    }

    /// `tools/call list_voucher_codes`, checked to have answered `count`
    /// codes. Returns the latency and the size of the answer line.
    async fn list_codes(&self, skip: u64, count: u64) -> Res<(Duration, usize)> {
        let params = format!(
            r#"{{"name":"list_voucher_codes","arguments":{{"project_id":"{PROJECT}","pool_id":"{POOL}","skip":{skip},"count":{count}}}}}"#
        );
        let (reply, took) = self.request_timed("tools/call", &params).await?;
        check_codes(&reply, count)?;
        Ok((took, reply.line.len()))
    }

    fn stderr_excerpt(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\n--- server stderr (last {} bytes) ---\n{}",
                tail.len(),
                String::from_utf8_lossy(&tail).trim_end()
            )
        }
    }
}

fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(400)]);
    text.trim_end().to_owned()
}

fn expect_result(reply: &Reply, what: &str) -> Res<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(&reply.line).map_err(|e| {
        format!(
            "{what}: the answer is not JSON ({e}): {}",
            excerpt(&reply.line)
        )
    })?;
    match value.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(format!("{what} failed: {}", excerpt(&reply.line))),
    }
}

fn check_codes(reply: &Reply, count: u64) -> Res<()> {
    #[derive(Deserialize)]
    struct Answer {
        result: Option<CallResult>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct CallResult {
        is_error: Option<bool>,
        structured_content: Option<Envelope>,
        content: Vec<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Envelope {
        success: bool,
        data: Vec<IgnoredAny>,
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&reply.line).map_err(|e| {
        format!(
            "list_voucher_codes: unreadable answer ({e}): {}",
            excerpt(&reply.line)
        )
    })?;
    let result = answer
        .result
        .ok_or_else(|| format!("list_voucher_codes failed: {}", excerpt(&reply.line)))?;
    let envelope = result
        .structured_content
        .ok_or("list_voucher_codes: no structuredContent")?;
    if result.is_error == Some(true) || !envelope.success {
        return Err(format!(
            "list_voucher_codes answered an error: {}",
            envelope.error.unwrap_or_default()
        ));
    }
    if envelope.data.len() as u64 != count || result.content.is_empty() {
        return Err(format!(
            "list_voucher_codes answered {} codes and {} content blocks; expected {count} codes and a text block",
            envelope.data.len(),
            result.content.len()
        ));
    }
    Ok(())
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let file = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.ok()?;
        if let Some(rest) = line.strip_prefix(field) {
            let rest = rest.strip_prefix(':')?;
            return rest.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// CPU time of a process's live threads, in ns, from
/// `/proc/<pid>/task/*/schedstat` (first field: time on a CPU).
fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Samples `VmRSS` of a process every 2 ms on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(kb) = proc_status_kb(pid, "VmRSS") {
                    samples.push(kb);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// The measurements
// ---------------------------------------------------------------------------

struct Cold {
    to_tools: Vec<Duration>,
    to_initialize: Vec<Duration>,
    tool_count: usize,
}

async fn cold_start(bin: &Path, fake: &Fake, spawns: usize) -> Res<Cold> {
    let mut cold = Cold {
        to_tools: Vec::new(),
        to_initialize: Vec::new(),
        tool_count: 0,
    };
    for _ in 0..spawns {
        let started = Instant::now();
        let server = Server::spawn(bin, fake)?;
        let init = server.handshake().await?;
        let tools = server.rpc.request("tools/list", "{}").await?;
        cold.to_initialize
            .push(init.at.saturating_duration_since(started));
        cold.to_tools
            .push(tools.at.saturating_duration_since(started));
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
                excerpt(&tools.line)
            ));
        }
        cold.tool_count = names.len();
        server.shutdown().await?;
    }
    Ok(cold)
}

struct Side {
    server: Vec<Duration>,
    floor: Vec<Duration>,
    /// CPU time the server spent over the measured calls, all threads.
    server_cpu: Duration,
    /// Size of the last answer line, in bytes.
    answer_bytes: usize,
}

struct Sequential {
    ping: Vec<Duration>,
    small: Side,
    large: Side,
    rss_large: Vec<u64>,
    hwm_after_large_kb: u64,
    rss_idle_kb: u64,
    upstream_requests: u64,
    upstream_connections: u64,
    stray_lines: u64,
}

/// The floor's client: reqwest, as the server uses it, with the same
/// headers. One instance is reused for every request.
fn floor_client() -> Res<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        // base64("bench-key-id:bench-secret")
        reqwest::header::HeaderValue::from_static("Basic YmVuY2gta2V5LWlkOmJlbmNoLXNlY3JldA=="),
    );
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .map_err(|e| format!("cannot build the floor's reqwest client: {e}"))
}

async fn sequential(bin: &Path, fake: &Fake, floor_fake: &Fake, plan: &Plan) -> Res<Sequential> {
    let floor = floor_client()?;
    let requests_before = fake.requests();
    let connections_before = fake.connections();
    let server = Server::spawn(bin, fake)?;
    server.handshake().await?;
    let rss_idle_kb = server.status_kb("VmRSS")?;

    let mut ping = Vec::with_capacity(plan.pings);
    for i in 0..plan.pings + plan.pings / 10 {
        let (reply, took) = server.rpc.request_timed("ping", "{}").await?;
        expect_result(&reply, "ping")?;
        if i >= plan.pings / 10 {
            ping.push(took);
        }
    }

    alternate(&server, &floor, floor_fake, SMALL, plan.small_warmup).await?;
    let small = alternate(&server, &floor, floor_fake, SMALL, plan.small_calls).await?;

    alternate(&server, &floor, floor_fake, LARGE, plan.large_warmup).await?;
    let sampler = RssSampler::start(server.pid);
    let large = alternate(&server, &floor, floor_fake, LARGE, plan.large_calls).await;
    let rss_large = sampler.finish();
    let large = large?;
    let hwm_after_large_kb = server.status_kb("VmHWM")?;
    let stray_lines = server.rpc.stray_lines.load(Ordering::Relaxed);
    server.shutdown().await?;
    check_rejected(&[fake, floor_fake])?;
    Ok(Sequential {
        ping,
        small,
        large,
        rss_large,
        hwm_after_large_kb,
        rss_idle_kb,
        upstream_requests: fake.requests() - requests_before,
        upstream_connections: fake.connections() - connections_before,
        stray_lines,
    })
}

fn check_rejected(fakes: &[&Fake]) -> Res<()> {
    for fake in fakes {
        if fake.rejected() > 0 {
            return Err(format!(
                "the fake API rejected {} requests (wrong path, query or auth)",
                fake.rejected()
            ));
        }
    }
    Ok(())
}

/// `calls` server calls and `calls` floor GETs of `count` codes, one of each
/// in turn, so that the machine's noise falls on both alike.
async fn alternate(
    server: &Server,
    floor: &reqwest::Client,
    floor_fake: &Fake,
    count: u64,
    calls: usize,
) -> Res<Side> {
    let mut side = Side {
        server: Vec::with_capacity(calls),
        floor: Vec::with_capacity(calls),
        server_cpu: Duration::ZERO,
        answer_bytes: 0,
    };
    let base = floor_fake.base_url();
    let cpu_before = server.cpu_time()?;
    for i in 0..calls {
        let skip = (i as u64 % 5) * count;
        let (took, bytes) = server.rpc.list_codes(skip, count).await?;
        side.server.push(took);
        side.answer_bytes = bytes;
        side.floor
            .push(floor_get(floor, &codes_url(&base, skip, count)).await?);
    }
    side.server_cpu = server.cpu_time()?.saturating_sub(cpu_before);
    Ok(side)
}

async fn floor_get(client: &reqwest::Client, url: &str) -> Res<Duration> {
    let started = Instant::now();
    let fetch = async {
        let response = client.get(url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(READ_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("floor GET {url}: no answer within {READ_TIMEOUT:?}"))?
        .map_err(|e| format!("floor GET {url}: {e}"))?;
    let took = started.elapsed();
    if !status.is_success() || body.len() < 20 {
        return Err(format!("floor GET {url}: HTTP {status}"));
    }
    Ok(took)
}

struct Throughput {
    walls: Vec<Duration>,
    floor_walls: Vec<Duration>,
    latencies: Vec<Duration>,
    server_cpu: Duration,
    /// max(VmHWM, sampled VmRSS) after the first round.
    first_round_peak_kb: u64,
    hwm_kb: u64,
    rss_samples: Vec<u64>,
    rss_after_kb: u64,
    rss_anon_kb: u64,
    rss_file_kb: u64,
    threads: u64,
    upstream_connections: u64,
}

async fn throughput(bin: &Path, fake: &Fake, floor_fake: &Fake, plan: &Plan) -> Res<Throughput> {
    let floor = floor_client()?;
    let base = floor_fake.base_url();
    let floor_burst = |calls: usize| {
        let floor = floor.clone();
        let base = base.clone();
        burst(calls, plan.tp_in_flight, move |i| {
            let floor = floor.clone();
            let url = codes_url(&base, (i as u64 % 5) * SMALL, SMALL);
            async move { floor_get(&floor, &url).await }
        })
    };

    let connections_before = fake.connections();
    let server = Server::spawn(bin, fake)?;
    server.handshake().await?;
    let rpc = Arc::clone(&server.rpc);
    let server_burst = |calls: usize| {
        let rpc = Arc::clone(&rpc);
        burst(calls, plan.tp_in_flight, move |i| {
            let rpc = Arc::clone(&rpc);
            async move {
                let (took, _) = rpc.list_codes((i as u64 % 5) * SMALL, SMALL).await?;
                Ok(took)
            }
        })
    };
    // One round of `in_flight` calls first on each side, so that the
    // connection pools are open: the figures are for steady state.
    server_burst(plan.tp_in_flight).await?;
    floor_burst(plan.tp_in_flight).await?;

    let mut walls = Vec::new();
    let mut floor_walls = Vec::new();
    let mut latencies = Vec::new();
    let cpu_before = server.cpu_time()?;
    let mut rss_samples = Vec::new();
    let mut first_round_peak_kb = 0;
    for round in 0..plan.tp_rounds {
        let sampler = RssSampler::start(server.pid);
        let started = Instant::now();
        let calls = server_burst(plan.tp_calls).await;
        walls.push(started.elapsed());
        let mut samples = sampler.finish();
        latencies.append(&mut calls?);
        if round == 0 {
            let sampled = samples.iter().copied().max().unwrap_or(0);
            first_round_peak_kb = server.status_kb("VmHWM")?.max(sampled);
        }
        rss_samples.append(&mut samples);
        let started = Instant::now();
        floor_burst(plan.tp_calls).await?;
        floor_walls.push(started.elapsed());
    }
    // The server idles while the floor runs; its CPU time is all its own.
    let server_cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let hwm_kb = server.status_kb("VmHWM")?;
    let rss_after_kb = server.status_kb("VmRSS")?;
    let rss_anon_kb = server.status_kb("RssAnon")?;
    let rss_file_kb = server.status_kb("RssFile")?;
    let threads = server.status_kb("Threads")?;
    server.shutdown().await?;
    check_rejected(&[fake, floor_fake])?;
    Ok(Throughput {
        walls,
        floor_walls,
        latencies,
        server_cpu,
        first_round_peak_kb,
        hwm_kb,
        rss_samples,
        rss_after_kb,
        rss_anon_kb,
        rss_file_kb,
        threads,
        upstream_connections: fake.connections() - connections_before,
    })
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

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
    loadavg: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned())
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            model,
            kernel: read("/proc/sys/kernel/osrelease"),
            loadavg: read("/proc/loadavg"),
        }
    }
}

fn sorted(samples: &[Duration]) -> Vec<Duration> {
    let mut s = samples.to_vec();
    s.sort();
    s
}

fn median(samples: &[Duration]) -> Duration {
    let s = sorted(samples);
    if s.is_empty() {
        return Duration::ZERO;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

/// Nearest-rank percentile.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    let s = sorted(samples);
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn median_u64(samples: &[u64]) -> u64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb_kb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

enum Row {
    Section(String),
    Figure([String; 4]),
}

struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn section(&mut self, title: &str) {
        self.rows.push(Row::Section(format!("[{title}]")));
    }

    fn info(&mut self, what: &str, value: String) {
        self.rows.push(Row::Figure([
            format!("  {what}"),
            value,
            String::new(),
            String::new(),
        ]));
    }

    fn check(&mut self, full: bool, what: &str, value: String, budget: &str, met: bool) {
        let verdict = match (full, met) {
            (false, _) => "n/a (smoke)",
            (true, true) => "met",
            (true, false) => "MISSED",
        };
        self.rows.push(Row::Figure([
            format!("  {what}"),
            value,
            budget.to_owned(),
            verdict.to_owned(),
        ]));
    }

    /// Prints the figures in aligned columns, each section title on a line
    /// of its own.
    fn print(&self) {
        let header = ["figure", "measured", "budget", "verdict"];
        let mut width = header.map(str::len);
        for row in &self.rows {
            if let Row::Figure(cells) = row {
                for (w, cell) in width.iter_mut().zip(cells) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: [&str; 4]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                out.push_str(&format!("{cell:<w$}"));
            }
            out.trim_end().to_owned()
        };
        let rule = width.map(|w| "-".repeat(w)).join("-+-");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line(header));
        let _ = writeln!(out, "{rule}");
        for row in &self.rows {
            let _ = match row {
                Row::Section(title) => writeln!(out, "{title}"),
                Row::Figure(c) => writeln!(out, "{}", line([&c[0], &c[1], &c[2], &c[3]])),
            };
        }
        let _ = out.flush();
    }
}

/// Budgets.
const COLD_BUDGET_MS: f64 = 8.0;
const OVERHEAD_SMALL_BUDGET_MS: f64 = 0.3;
const OVERHEAD_LARGE_BUDGET_MS: f64 = 1.2;
const THROUGHPUT_BUDGET_RATIO: f64 = 1.25;
const RSS_BUDGET_MB: f64 = 12.0;
const SIZE_BUDGET_MB: f64 = 8.0;

fn print_report(
    plan: &Plan,
    machine: &Machine,
    bin: &Path,
    size: u64,
    cold: &Cold,
    seq: &Sequential,
    tp: &Throughput,
) {
    let full = plan.full;
    let mut t = Table { rows: Vec::new() };

    t.section("machine");
    t.info("nproc", machine.cpus.to_string());
    t.info("cpu", machine.model.clone());
    t.info("kernel", machine.kernel.clone());
    t.info("loadavg at start", machine.loadavg.clone());
    t.info("binary", bin.display().to_string());

    t.section(&format!(
        "cold start: spawn -> tools/list answer, {} spawns",
        cold.to_tools.len()
    ));
    let cold_median = ms(median(&cold.to_tools));
    t.check(
        full,
        "median",
        format!("{cold_median:.2} ms"),
        &format!("< {COLD_BUDGET_MS} ms"),
        cold_median < COLD_BUDGET_MS,
    );
    t.info(
        "min / max",
        format!(
            "{:.2} / {:.2} ms",
            ms(*sorted(&cold.to_tools).first().unwrap_or(&Duration::ZERO)),
            ms(*sorted(&cold.to_tools).last().unwrap_or(&Duration::ZERO))
        ),
    );
    t.info(
        "of which spawn -> initialize answer",
        format!("{:.2} ms", ms(median(&cold.to_initialize))),
    );
    t.info("tools listed", cold.tool_count.to_string());

    t.section("stdio round trip (ping), for reference");
    t.info(
        &format!("median / p99 of {}", seq.ping.len()),
        format!(
            "{:.3} / {:.3} ms",
            ms(median(&seq.ping)),
            ms(percentile(&seq.ping, 99.0))
        ),
    );

    for (count, side, budget) in [
        (SMALL, &seq.small, OVERHEAD_SMALL_BUDGET_MS),
        (LARGE, &seq.large, OVERHEAD_LARGE_BUDGET_MS),
    ] {
        t.section(&format!(
            "tools/call list_voucher_codes count={count}: {} sequential calls, each followed by a floor GET",
            side.server.len()
        ));
        let (sm, sp) = (ms(median(&side.server)), ms(percentile(&side.server, 99.0)));
        let (fm, fp) = (ms(median(&side.floor)), ms(percentile(&side.floor, 99.0)));
        t.info("server median / p99", format!("{sm:.3} / {sp:.3} ms"));
        t.info(
            "floor (reqwest GET) median / p99",
            format!("{fm:.3} / {fp:.3} ms"),
        );
        t.info(
            "ratio to floor (median / p99)",
            format!("{:.2}x / {:.2}x", sm / fm.max(1e-9), sp / fp.max(1e-9)),
        );
        t.info(
            "server CPU per call (all threads)",
            format!(
                "{:.3} ms",
                ms(side.server_cpu) / side.server.len().max(1) as f64
            ),
        );
        t.info(
            "API answer body / answer line on stdout",
            format!(
                "{:.1} KB / {:.1} KB",
                codes_body(0, count).len() as f64 / 1024.0,
                side.answer_bytes as f64 / 1024.0
            ),
        );
        let overhead = sm - fm;
        t.check(
            full,
            "overhead (server median - floor median)",
            format!("{overhead:.3} ms"),
            &format!("< {budget} ms"),
            overhead < budget,
        );
    }
    t.info(
        "upstream requests / connections of that server",
        format!("{} / {}", seq.upstream_requests, seq.upstream_connections),
    );
    if seq.stray_lines > 0 {
        t.info(
            "stdout lines that answered no request",
            seq.stray_lines.to_string(),
        );
    }

    let ideal = plan.tp_ideal();
    let walls_ms: Vec<String> = tp.walls.iter().map(|w| format!("{:.0}", ms(*w))).collect();
    let wall = median(&tp.walls);
    let ratio = wall.as_secs_f64() / ideal.as_secs_f64();
    t.section(&format!(
        "throughput: {} calls count={SMALL}, {} in flight, fake API answers after {} ms",
        plan.tp_calls,
        plan.tp_in_flight,
        plan.tp_latency.as_millis()
    ));
    t.info(
        &format!("wall time (median of {} rounds)", tp.walls.len()),
        format!("{:.1} ms  (rounds: {} ms)", ms(wall), walls_ms.join(", ")),
    );
    t.check(
        full,
        &format!("ratio to ideal {:.0} ms", ms(ideal)),
        format!("{ratio:.3}x"),
        &format!("< {THROUGHPUT_BUDGET_RATIO}x"),
        ratio < THROUGHPUT_BUDGET_RATIO,
    );
    let floor_wall = median(&tp.floor_walls);
    t.info(
        "floor: same GETs by reqwest, as many in flight",
        format!(
            "{:.1} ms = {:.3}x ideal; server / floor = {:.3}x",
            ms(floor_wall),
            floor_wall.as_secs_f64() / ideal.as_secs_f64(),
            wall.as_secs_f64() / floor_wall.as_secs_f64().max(1e-9)
        ),
    );
    t.info(
        "server CPU per call (all threads)",
        format!(
            "{:.3} ms",
            ms(tp.server_cpu) / tp.latencies.len().max(1) as f64
        ),
    );
    t.info(
        "per-call latency median / p99",
        format!(
            "{:.2} / {:.2} ms",
            ms(median(&tp.latencies)),
            ms(percentile(&tp.latencies, 99.0))
        ),
    );
    t.info(
        "TCP connections the server opened",
        tp.upstream_connections.to_string(),
    );

    t.section("memory (server process, /proc/<pid>/status)");
    // VmHWM is updated lazily by the kernel (memory the allocator gives
    // back with madvise never raises it), so the peak is the larger of it
    // and the highest VmRSS the sampler saw.
    t.check(
        full,
        &format!(
            "peak RSS, first {} calls (max of VmHWM, VmRSS)",
            plan.tp_calls
        ),
        format!("{:.2} MB", mb_kb(tp.first_round_peak_kb)),
        &format!("< {RSS_BUDGET_MB} MB"),
        mb_kb(tp.first_round_peak_kb) < RSS_BUDGET_MB,
    );
    let tp_sampled = tp.rss_samples.iter().copied().max().unwrap_or(0);
    t.info(
        &format!("peak RSS after all {} rounds", tp.walls.len()),
        format!(
            "{:.2} MB  (VmHWM {:.2}, max sampled VmRSS {:.2})",
            mb_kb(tp.hwm_kb.max(tp_sampled)),
            mb_kb(tp.hwm_kb),
            mb_kb(tp_sampled)
        ),
    );
    t.info(
        "VmRSS idle after initialize / at end",
        format!(
            "{:.2} / {:.2} MB",
            mb_kb(seq.rss_idle_kb),
            mb_kb(tp.rss_after_kb)
        ),
    );
    t.info(
        "RssAnon / RssFile (binary, libs) / threads, at end",
        format!(
            "{:.2} / {:.2} MB / {}",
            mb_kb(tp.rss_anon_kb),
            mb_kb(tp.rss_file_kb),
            tp.threads
        ),
    );
    let large_sampled = seq.rss_large.iter().copied().max().unwrap_or(0);
    t.info(
        &format!(
            "VmRSS serving {LARGE}-code pages, median / max ({} samples)",
            seq.rss_large.len()
        ),
        format!(
            "{:.2} / {:.2} MB",
            mb_kb(median_u64(&seq.rss_large)),
            mb_kb(large_sampled)
        ),
    );
    let large_peak = seq.hwm_after_large_kb.max(large_sampled);
    t.check(
        full,
        &format!("peak RSS over the {LARGE}-code calls"),
        format!(
            "{:.2} MB  (VmHWM {:.2})",
            mb_kb(large_peak),
            mb_kb(seq.hwm_after_large_kb)
        ),
        &format!("< {RSS_BUDGET_MB} MB"),
        mb_kb(large_peak) < RSS_BUDGET_MB,
    );

    t.section("binary");
    let size_mb = size as f64 / (1024.0 * 1024.0);
    t.check(
        full,
        "size",
        format!("{size_mb:.2} MB ({size} bytes)"),
        &format!("< {SIZE_BUDGET_MB} MB"),
        size_mb < SIZE_BUDGET_MB,
    );

    println!();
    t.print();
    println!(
        "\n(1 MB = 1024*1024 bytes. Ratios and overheads compare medians; p99 is nearest-rank.)"
    );
}
