//! The floor: what the server cannot avoid. The same GET the server makes,
//! against the same kind of fake, with a reused `reqwest::Client` (the HTTP
//! client the server uses) and the same headers; the body is read in full
//! and nothing is decoded ([`get`]), or checked as JSON and thrown away
//! ([`get_parsed`]).

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};

use crate::support::{KEY_ID, SECRET};
use crate::{Res, READ_TIMEOUT};

/// The floor's client. One instance is reused for every request.
pub fn client() -> Res<reqwest::Client> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"));
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|e| format!("the floor's Authorization header: {e}"))?,
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    crate::support::http_client()
        .default_headers(headers)
        .build()
        .map_err(|e| format!("cannot build the floor's reqwest client: {e}"))
}

/// One GET of `url`, body read in full; its latency.
pub async fn get(client: &reqwest::Client, url: &str) -> Res<Duration> {
    get_then(client, url, |_| Ok(())).await
}

/// One GET of `url`, body read in full and then checked as JSON by
/// serde_json, into nothing: the least a client that reads the answer
/// does. Its latency.
pub async fn get_parsed(client: &reqwest::Client, url: &str) -> Res<Duration> {
    get_then(client, url, |body| {
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map(drop)
            .map_err(|e| format!("floor GET {url}: the body is not JSON: {e}"))
    })
    .await
}

async fn get_then(
    client: &reqwest::Client,
    url: &str,
    then: impl FnOnce(&[u8]) -> Res<()>,
) -> Res<Duration> {
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
    if !status.is_success() || body.len() < 20 {
        return Err(format!("floor GET {url}: HTTP {status}"));
    }
    then(&body)?;
    Ok(started.elapsed())
}
