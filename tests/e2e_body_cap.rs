//! A 40 MB answer is refused without being read whole: the built binary
//! answers a clear failure envelope and its peak memory stays far below
//! the size of the answer.
//!
//! This file holds one test on purpose: the peak RSS is read with
//! `getrusage(RUSAGE_CHILDREN)`, which covers every child this test process
//! has waited for.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_bloomreach-vouchers-mcp");
const BODY_BYTES: usize = 40 * 1024 * 1024;

/// Serves one endless-looking chunked 200 answer of `BODY_BYTES` bytes per
/// connection and counts the bytes it managed to send.
fn huge_answer_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let framed = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                let mut total = 0;
                while total < BODY_BYTES {
                    if stream.write_all(&framed).is_err() {
                        return;
                    }
                    total += 64 * 1024;
                    counter.fetch_add(64 * 1024, Ordering::Relaxed);
                }
                let _ = stream.write_all(b"0\r\n\r\n");
            });
        }
    });
    (address, sent)
}

fn peak_rss_of_children_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: getrusage returned 0, so the struct is filled.
    unsafe { usage.assume_init() }.ru_maxrss
}

fn call_pools(base_url: &str) -> std::process::Output {
    Command::new(BINARY)
        .args(["call", "list_voucher_pools", "project_id=proj"])
        .env_clear()
        .env("BLOOMREACH_API_BASE_URL", base_url)
        .env("BLOOMREACH_API_KEY_ID", "kid")
        .env("BLOOMREACH_API_SECRET", "secret")
        .env("RUST_LOG", "off")
        .output()
        .expect("run the binary")
}

#[test]
fn a_40_mb_answer_is_refused_with_memory_bounded_by_the_cap() {
    // The same call against nothing at all gives the process's own size.
    let unreachable = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", unreachable.local_addr().unwrap());
    drop(unreachable);
    let baseline = call_pools(&nowhere);
    assert_eq!(baseline.status.code(), Some(1));
    let baseline_kib = peak_rss_of_children_kib();

    let (base_url, sent) = huge_answer_server();
    let output = call_pools(&base_url);

    assert_eq!(output.status.code(), Some(1));
    let envelope: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        envelope,
        serde_json::json!({
            "success": false,
            "data": [],
            "error": "The Bloomreach API answer is larger than 16 MiB, the most this server reads; ask for fewer records (a smaller count)"
        })
    );
    // Not retried: one answer was started, and it was cut off well before its end.
    assert!(
        sent.load(Ordering::Relaxed) < BODY_BYTES,
        "the whole body was read"
    );
    let grown_mib = (peak_rss_of_children_kib() - baseline_kib) / 1024;
    eprintln!("the 40 MB answer grew the server by {grown_mib} MiB");
    assert!(
        grown_mib < 30,
        "the server grew by {grown_mib} MiB: the answer was buffered far beyond the 16 MiB cap"
    );
}
