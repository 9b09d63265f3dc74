//! A 40 MB answer is refused without being read whole: the built binary
//! answers a clear failure envelope and its peak memory stays far below
//! the size of the answer.
//!
//! The peak is the server's own, read from its `/proc/<pid>/status` while it
//! still runs: the larger of `VmHWM` and the `VmRSS` sampled every 2 ms
//! while the call was in flight. The same call against nothing at all gives
//! the process's own size, which is taken off.

use serde_json::{json, Value};

use crate::support::jsonrpc::{call_params, structured, Session};
use crate::support::proc_stats::{self, RssSampler};
use crate::support::raw_http::{closed_port, RawHttp, Reply};
use crate::support::PROJECT;

const BODY_BYTES: usize = 40 * 1024 * 1024;

/// Calls `list_voucher_pools` over stdio on a server pointed at `base_url`;
/// returns the response and the server's peak resident set, in KiB, read
/// before it exits.
async fn call_pools_measuring_peak(base_url: &str) -> (Value, u64) {
    let mut s = Session::start_against(base_url);
    s.initialize("2025-11-25").await;
    let sampler = RssSampler::start(s.pid());
    let response = s
        .roundtrip(
            1,
            "tools/call",
            call_params("list_voucher_pools", json!({"project_id": PROJECT})),
        )
        .await;
    let samples = sampler.finish();
    let peak_kib = proc_stats::peak_kb(s.pid(), &samples)
        .unwrap_or_else(|| panic!("cannot read /proc/{}/status of the server", s.pid()));
    s.finish().await;
    (response, peak_kib)
}

#[tokio::test]
async fn a_40_mb_answer_is_refused_with_memory_bounded_by_the_cap() {
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let (baseline, baseline_kib) = call_pools_measuring_peak(&nowhere).await;
    assert_eq!(baseline["result"]["isError"], true, "{baseline}");

    let api = RawHttp::serve(|_| Reply::Chunked {
        total: BODY_BYTES,
        fill: b' ',
    });
    let (response, peak_kib) = call_pools_measuring_peak(&api.base_url()).await;

    assert_eq!(response["result"]["isError"], true, "{response}");
    assert_eq!(
        *structured(&response),
        json!({
            "success": false,
            "data": [],
            "error": "The Bloomreach API answer is larger than 16 MiB, the most this server reads; ask for fewer records (a smaller count)"
        })
    );
    // Not retried: one answer was started, and it was cut off well before its end.
    assert!(
        api.body_bytes_sent() < BODY_BYTES as u64,
        "the whole body was read"
    );
    let grown_mib = (peak_kib as i64 - baseline_kib as i64) / 1024;
    eprintln!("the 40 MB answer grew the server by {grown_mib} MiB");
    assert!(
        grown_mib < 30,
        "the server grew by {grown_mib} MiB: the answer was buffered far beyond the 16 MiB cap"
    );
}
