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
    call_measuring_peak(
        base_url,
        "list_voucher_pools",
        json!({"project_id": PROJECT}),
    )
    .await
}

/// Calls `tool` with `args` over stdio on a server pointed at `base_url`;
/// returns the response and the server's peak resident set, in KiB.
async fn call_measuring_peak(base_url: &str, tool: &str, args: Value) -> (Value, u64) {
    let mut s = Session::start_against(base_url);
    s.initialize("2025-11-25").await;
    let sampler = RssSampler::start(s.pid());
    let response = s.roundtrip(1, "tools/call", call_params(tool, args)).await;
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

/// An answer under the cap that holds 600,000 minimal codes, asked with
/// `count=1`: one code comes back, and the server stays small.
#[tokio::test]
async fn a_page_of_600000_codes_asked_with_count_1_gives_one_code_in_bounded_memory() {
    let body = crate::support::fake_api::minimal_codes_body(600_000);
    let body = crate::support::raw_http::json_response(200, &[], body.as_bytes());
    let api = RawHttp::serve(move |_| Reply::Send(body.clone().into()));
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let args = json!({"project_id": PROJECT, "pool_id": "p1", "count": 1});
    let (_, baseline_kib) = call_measuring_peak(&nowhere, "list_voucher_codes", args.clone()).await;
    let (response, peak_kib) =
        call_measuring_peak(&api.base_url(), "list_voucher_codes", args).await;
    let envelope = structured(&response);
    assert_eq!(envelope["success"], true, "{envelope}");
    assert_eq!(envelope["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(envelope["matched"], 600_000);
    let grown_mib = (peak_kib as i64 - baseline_kib as i64) / 1024;
    eprintln!("the 600,000-code answer grew the server by {grown_mib} MiB");
    assert!(grown_mib < 40, "the server grew by {grown_mib} MiB");
}

/// A page whose codes are long enough to make an answer over the limit is
/// a failure that says so, not a line of many megabytes.
#[tokio::test]
async fn an_answer_over_the_size_limit_is_a_failure_that_says_so() {
    let code = "Z".repeat(4000);
    let data: Vec<Value> = (0..1000)
        .map(|_| json!({"code": code, "status": "available"}))
        .collect();
    let body =
        serde_json::to_vec(&json!({"success": true, "matched": 1000, "data": data})).unwrap();
    let body = crate::support::raw_http::json_response(200, &[], &body);
    let api = RawHttp::serve(move |_| Reply::Send(body.clone().into()));
    let args = json!({"project_id": PROJECT, "pool_id": "p1", "count": 1000});
    let (response, _) = call_measuring_peak(&api.base_url(), "list_voucher_codes", args).await;
    let line_len = response.to_string().len();
    let envelope = structured(&response);
    assert_eq!(response["result"]["isError"], true);
    assert_eq!(envelope["data"], json!([]));
    assert_eq!(
        (envelope["skip"].clone(), envelope["limit"].clone()),
        (json!(0), json!(1000))
    );
    let error = envelope["error"].as_str().unwrap();
    assert!(
        error.contains("more than the 2 MiB this server sends in one answer"),
        "{error}"
    );
    assert!(line_len < 10_000, "{line_len}");
}
