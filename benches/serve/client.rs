//! The server under test as the bench drives it: started with the shared
//! clean command on raw pipes, spoken to with the shared JSON-RPC client of
//! `tests/support`, and its answers checked once the clock has stopped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::fake::{Fake, POOL, PROJECT};
use crate::support::binary;
use crate::support::jsonrpc::{Peer, Session, StdoutLine, Transcript};
use crate::support::proc_stats;
use crate::Res;

/// How long a server gets to exit after its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The protocol version the client announces.
const PROTOCOL: &str = "2025-06-18";

/// One running server, killed if its handle drops.
pub struct Server {
    session: Session,
}

impl Server {
    /// Starts `bin` against `fake`.
    pub fn spawn(bin: &Path, fake: &Fake) -> Res<Self> {
        let mut env = binary::api_env();
        env.push(("RUST_LOG", "warn"));
        let cmd = binary::command_for(bin, &binary::api_args(&fake.base_url()), &env);
        let session = Session::spawn(cmd, Transcript::Dropped)?;
        Ok(Self { session })
    }

    /// `initialize`, then `notifications/initialized`; the answer to
    /// `initialize`, checked.
    pub async fn handshake(&self) -> Res<StdoutLine> {
        let peer = self.peer();
        let init = peer.handshake(peer.next_id(), PROTOCOL).await?;
        expect_result(&init, "initialize")?;
        Ok(init)
    }

    /// The writing side, for calls from many tasks at once.
    pub fn peer(&self) -> &Arc<Peer> {
        self.session.peer()
    }

    pub fn pid(&self) -> u32 {
        self.session.pid()
    }

    /// A numeric field of `/proc/<pid>/status` (memory fields are in kB).
    pub fn status_kb(&self, field: &str) -> Res<u64> {
        proc_stats::status_kb(self.pid(), field)
            .ok_or_else(|| format!("cannot read {field} of the server (pid {})", self.pid()))
    }

    /// CPU time of all the server's threads so far.
    pub fn cpu_time(&self) -> Res<Duration> {
        proc_stats::cpu_ns(self.pid())
            .map(Duration::from_nanos)
            .ok_or_else(|| {
                format!(
                    "cannot read the CPU time of the server (pid {})",
                    self.pid()
                )
            })
    }

    /// Lines on stdout that answered no request so far.
    pub fn stray_lines(&mut self) -> u64 {
        self.session.count_unclaimed()
    }

    /// Closes stdin and waits for a clean exit, killing the server if it
    /// does not exit in time.
    pub async fn shutdown(mut self) -> Res<()> {
        let status = self.session.shutdown(EXIT_TIMEOUT).await?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "the server exited with {status} after stdin closed{}",
                self.peer().stderr_excerpt()
            ))
        }
    }
}

/// `tools/call list_voucher_codes`, checked to have answered `count`
/// codes. Returns the latency and the size of the answer line.
pub async fn list_codes(peer: &Peer, skip: u64, count: u64) -> Res<(Duration, usize)> {
    let params = format!(
        r#"{{"name":"list_voucher_codes","arguments":{{"project_id":"{PROJECT}","pool_id":"{POOL}","skip":{skip},"count":{count}}}}}"#
    );
    let (answer, took) = peer.timed_request("tools/call", &params).await?;
    check_codes(&answer, count)?;
    Ok((took, answer.bytes.len()))
}

/// The start of `line`, for error messages.
pub fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(400)]);
    text.trim_end().to_owned()
}

/// The `result` of a JSON-RPC answer, or why there is none.
pub fn expect_result(answer: &StdoutLine, what: &str) -> Res<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(&answer.bytes).map_err(|e| {
        format!(
            "{what}: the answer is not JSON ({e}): {}",
            excerpt(&answer.bytes)
        )
    })?;
    match value.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(format!("{what} failed: {}", excerpt(&answer.bytes))),
    }
}

fn check_codes(answer: &StdoutLine, count: u64) -> Res<()> {
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
    let parsed: Answer = serde_json::from_slice(&answer.bytes).map_err(|e| {
        format!(
            "list_voucher_codes: unreadable answer ({e}): {}",
            excerpt(&answer.bytes)
        )
    })?;
    let result = parsed
        .result
        .ok_or_else(|| format!("list_voucher_codes failed: {}", excerpt(&answer.bytes)))?;
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
