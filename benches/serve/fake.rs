//! The fake Bloomreach API the bench measures against: the codes endpoint of
//! one pool, on the raw HTTP server of `tests/support`, answering from a
//! cache of fully rendered responses (built once per `skip`/`count`).
//!
//! It checks the path, `skip`, `count` and Basic auth of every request and
//! counts the ones it rejects: any rejection fails the bench.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::raw_http::{self, RawHttp, Reply, Request, Settings};
use crate::Res;

pub const PROJECT: &str = "bench-project";
pub const POOL: &str = "bench-pool";
/// How many codes the fake pool holds.
const POOL_SIZE: u64 = 1_000_000;

/// Fully rendered HTTP responses by (skip, count).
type Cache = Mutex<HashMap<(u64, u64), Arc<[u8]>>>;

/// A fake of the codes endpoint on 127.0.0.1.
pub struct Fake {
    http: RawHttp,
    /// Requests answered with something other than 200.
    rejected: Arc<AtomicU64>,
}

impl Fake {
    /// Starts a fake that answers each request after `delay`.
    pub fn start(delay: Duration) -> Res<Self> {
        let rejected = Arc::new(AtomicU64::new(0));
        let cache: Cache = Mutex::new(HashMap::new());
        let counter = Arc::clone(&rejected);
        let settings = Settings {
            delay,
            record: false,
        };
        let http = RawHttp::start(settings, move |request| {
            Reply::Send(respond(request, &cache, &counter))
        })
        .map_err(|e| format!("fake API: cannot start: {e}"))?;
        Ok(Self { http, rejected })
    }

    pub fn base_url(&self) -> String {
        self.http.base_url()
    }

    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    pub fn connections(&self) -> u64 {
        self.http.connections()
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Fails when any of `fakes` rejected a request.
pub fn check_rejected(fakes: &[&Fake]) -> Res<()> {
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

pub fn codes_url(base: &str, skip: u64, count: u64) -> String {
    format!(
        "{base}/data/v2/projects/{PROJECT}/vouchers/pools/{POOL}/codes?skip={skip}&count={count}"
    )
}

fn respond(request: &Request, cache: &Cache, rejected: &AtomicU64) -> Arc<[u8]> {
    let reject = |status: u16, body: &[u8]| -> Arc<[u8]> {
        rejected.fetch_add(1, Ordering::Relaxed);
        raw_http::json_response(status, &[], body).into()
    };
    let codes_path = format!("/data/v2/projects/{PROJECT}/vouchers/pools/{POOL}/codes");
    let authorized = request
        .header("authorization")
        .is_some_and(|value| value.starts_with("Basic "));
    if !authorized {
        return reject(401, br#"{"success":false,"error":"access key not found"}"#);
    }
    if request.method() != "GET" || request.path() != codes_path {
        return reject(
            404,
            br#"{"errors":{"code":404,"description":"no such endpoint in the fake"}}"#,
        );
    }
    let param = |key: &str| -> Option<u64> { request.query_param(key)?.parse().ok() };
    let (Some(skip), Some(count)) = (param("skip"), param("count")) else {
        return reject(
            400,
            br#"{"success":false,"errors":{"_global":["skip and count are required"]}}"#,
        );
    };
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(
        cache
            .entry((skip, count))
            .or_insert_with(|| raw_http::json_response(200, &[], &codes_body(skip, count)).into()),
    )
}

/// The answer of the codes endpoint in the contract's shape: a mix of
/// available, assigned and redeemed codes.
pub fn codes_body(skip: u64, count: u64) -> Vec<u8> {
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
