//! What comes in on stdin, line by line, before the MCP library sees it.
//!
//! The library decides some lines badly for a client: a notification or a
//! response before `initialize` ends the session; a request whose line is
//! not valid JSON (`1e400`, a lone surrogate, a broken byte) or whose shape
//! it cannot read (params not an object, an id beyond 64 bits, a batch) gets
//! no answer, or one without its id; a second request with the id of one in
//! flight loses an answer. So each line is classified here first
//! ([`classify`]), and stdin is not read while [`MAX_CALLS_IN_FLIGHT`]
//! requests wait for their answers, so a client that writes without reading
//! cannot grow the server without bound.

use serde_json::error::Category;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub use super::outbound::IdKey;
use super::outbound::{error_line, Ledger, Outbound};
use super::raw_id::raw_id;

/// The most requests waiting for an answer at once; stdin is not read while this many are.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;
/// The longest line read; a longer one is answered as a parse error.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
const INVALID_PARAMS: i32 = -32602;
const METHOD_NOT_FOUND: i32 = -32601;
/// The longest method name passed on (the longest MCP method is under 40).
const MAX_METHOD_BYTES: usize = 128;
const NO_BATCHES: &str = "Invalid Request: batches are not supported; send one message per line";

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the line to the MCP library.
    Pass(Passed),
    /// Answer it here with this line (no newline).
    Answer(String),
    /// Drop it, for this reason (logged at debug).
    Drop(&'static str),
}

/// A line that goes to the MCP library, and what it means for the ledger.
#[derive(Debug, PartialEq, Eq)]
pub enum Passed {
    /// A request with this id (after the session started).
    Request(IdKey),
    /// A request before the session started; `starts` when its success
    /// answer starts the session (any request but ping and discovery).
    EarlyRequest { id: IdKey, starts: bool },
    /// `initialize`: the session starts.
    Initialize,
    /// A notification that cancels the request with this id.
    Cancel(IdKey),
    /// Any other notification, or a response from the client.
    Other,
}

/// The raw text of a line's id, as it was written.
fn shown_id(line: &[u8]) -> Option<String> {
    raw_id(line).map(|raw| String::from_utf8_lossy(raw).into_owned())
}

/// Classifies one line (without its line end).
pub fn classify(line: &[u8], started: bool) -> Verdict {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Array(items)) => batch(&items),
        Ok(Value::Object(message)) => message_verdict(line, &message, started),
        Ok(_) => Verdict::Answer(error_line(
            None,
            INVALID_REQUEST,
            "Invalid Request: a message is a JSON object",
        )),
        Err(e) => {
            let id = shown_id(line);
            let message = match id {
                Some(_) => format!(
                    "Parse error: the line is not valid JSON ({})",
                    match e.classify() {
                        Category::Eof => "it ends too early",
                        Category::Syntax => "a syntax error",
                        Category::Data => "a value cannot be read",
                        Category::Io => "it could not be read",
                    }
                ),
                None => "Parse error: the line is not valid JSON".into(),
            };
            Verdict::Answer(error_line(id.as_deref(), PARSE_ERROR, &message))
        }
    }
}

fn batch(items: &[Value]) -> Verdict {
    let answers: Vec<String> = items
        .iter()
        .filter_map(|item| item.get("id").filter(|_| item.get("method").is_some()))
        .filter(|id| id.is_string() || id.is_number())
        .map(|id| error_line(Some(&id.to_string()), INVALID_REQUEST, NO_BATCHES))
        .collect();
    Verdict::Answer(if answers.is_empty() {
        error_line(None, INVALID_REQUEST, NO_BATCHES)
    } else {
        format!("[{}]", answers.join(","))
    })
}

fn message_verdict(
    line: &[u8],
    message: &serde_json::Map<String, Value>,
    started: bool,
) -> Verdict {
    let id = message.get("id");
    // The id as written, for answers: exact even where a number would not survive f64.
    let invalid = |code: i32, why: &str| match id {
        Some(_) => Verdict::Answer(error_line(shown_id(line).as_deref(), code, why)),
        None => Verdict::Drop("an unusable notification"),
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\"");
    }
    let key = match id {
        None => None,
        Some(id) if id.is_string() || id.is_i64() => Some(id.to_string()),
        Some(_) => {
            return invalid(
                INVALID_REQUEST,
                "Invalid Request: id must be a string or an integer that fits in 64 bits",
            )
        }
    };
    let Some(method) = message.get("method") else {
        // A response from the client, or nothing at all.
        return match (
            key,
            message.contains_key("result") || message.contains_key("error"),
        ) {
            (Some(_), true) if started => Verdict::Pass(Passed::Other),
            (Some(_), true) => Verdict::Drop("a response before the session started"),
            _ => invalid(INVALID_REQUEST, "Invalid Request: a request needs a method"),
        };
    };
    let Some(method) = method.as_str() else {
        return invalid(INVALID_REQUEST, "Invalid Request: method must be a string");
    };
    // No MCP method is this long: answered here, so that neither the MCP
    // library nor the log ever carries a client's megabyte of name.
    if method.len() > MAX_METHOD_BYTES {
        return invalid(METHOD_NOT_FOUND, "Method not found");
    }
    let params = message.get("params");
    if params.is_some_and(|p| !p.is_object()) {
        return invalid(INVALID_PARAMS, "Invalid params: params must be an object");
    }
    let meta = params.and_then(|p| p.get("_meta"));
    if meta.is_some_and(|m| !m.is_object()) {
        return invalid(INVALID_PARAMS, "Invalid params: _meta must be an object");
    }
    Verdict::Pass(match key {
        Some(_) if method == "initialize" && !started => Passed::Initialize,
        Some(id) if !started => Passed::EarlyRequest {
            starts: !matches!(method, "ping" | "server/discover" | "initialize"),
            id,
        },
        Some(id) => Passed::Request(id),
        None if !started => return Verdict::Drop("a notification before the session started"),
        None if method == "notifications/cancelled" => params
            .and_then(|p| p.get("requestId"))
            .filter(|id| id.is_string() || id.is_i64())
            .map_or(Passed::Other, |id| Passed::Cancel(id.to_string())),
        None => Passed::Other,
    })
}

/// Reads one line of at most `max` bytes: `None` at the end of input, else
/// the line and whether it was longer than `max` (then only its first
/// 64 KiB are kept, to find its id; the rest is read and thrown away).
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    max: usize,
) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok((!line.is_empty() || too_long).then_some((line, too_long)));
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let keep = if too_long {
            0
        } else if line.len() + take > max {
            too_long = true;
            line.truncate(64 * 1024);
            (64 * 1024usize).saturating_sub(line.len()).min(take)
        } else {
            take
        };
        line.extend_from_slice(&chunk[..keep]);
        reader.consume(take);
        if done {
            return Ok(Some((line, too_long)));
        }
    }
}

/// Reads stdin until it ends or `stop` fires, handing the lines that pass
/// to `to_library` and answering the others through `out`.
pub async fn pump(
    mut stdin: impl AsyncBufRead + Unpin,
    mut to_library: impl AsyncWrite + Unpin,
    ledger: &Ledger,
    out: &Outbound,
    stop: &CancellationToken,
) {
    loop {
        let line = tokio::select! {
            line = read_line(&mut stdin, MAX_LINE_BYTES) => line,
            () = stop.cancelled() => break,
        };
        let mut line = match line {
            Ok(Some((line, false))) => line,
            Ok(Some((prefix, true))) => {
                out.send_line(error_line(
                    shown_id(&prefix).as_deref(),
                    PARSE_ERROR,
                    &format!(
                        "Parse error: the line is longer than {} MiB",
                        MAX_LINE_BYTES >> 20
                    ),
                ));
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let passed = match classify(&line, ledger.started()) {
            Verdict::Answer(answer) => {
                out.send_line(answer);
                continue;
            }
            Verdict::Drop(why) => {
                tracing::debug!(why, "dropped an incoming line");
                continue;
            }
            Verdict::Pass(passed) => passed,
        };
        match passed {
            Passed::Request(id) => {
                if ledger.is_in_flight(&id) {
                    out.send_line(error_line(
                        Some(&id),
                        INVALID_REQUEST,
                        "Invalid Request: a request with this id is still in progress; use a new id",
                    ));
                    continue;
                }
                let permit = tokio::select! {
                    permit = ledger.permit() => permit,
                    () = stop.cancelled() => break,
                };
                ledger.track(id, permit);
            }
            Passed::EarlyRequest { id, starts } => ledger.track_early(id, starts),
            Passed::Initialize => ledger.start(),
            Passed::Cancel(id) => ledger.release(&id),
            Passed::Other => {}
        }
        line.push(b'\n');
        if to_library.write_all(&line).await.is_err() {
            break;
        }
    }
    let _ = to_library.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(line: &str, started: bool) -> Verdict {
        classify(line.as_bytes(), started)
    }

    fn answer(line: &str, started: bool) -> Value {
        match verdict(line, started) {
            Verdict::Answer(text) => serde_json::from_str(&text).expect("an answer is JSON"),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn well_formed_messages_pass() {
        assert_eq!(
            verdict(
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
                false
            ),
            Verdict::Pass(Passed::Initialize)
        );
        assert_eq!(
            verdict(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#, true),
            Verdict::Pass(Passed::Request("\"a\"".into()))
        );
        assert_eq!(
            verdict(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#, false),
            Verdict::Pass(Passed::EarlyRequest {
                id: "2".into(),
                starts: false
            })
        );
        assert_eq!(
            verdict(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
                true
            ),
            Verdict::Pass(Passed::Cancel("7".into()))
        );
        assert_eq!(
            verdict(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, true),
            Verdict::Pass(Passed::Other)
        );
    }

    #[test]
    fn notifications_and_responses_before_the_session_are_dropped() {
        assert!(matches!(
            verdict(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                false
            ),
            Verdict::Drop(_)
        ));
        assert!(matches!(
            verdict(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, false),
            Verdict::Drop(_)
        ));
    }

    #[test]
    fn unreadable_requests_are_answered_with_their_id() {
        let a = answer(
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"n":1e400}}"#,
            true,
        );
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (5.into(), (-32700).into())
        );
        let a = answer(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":[1]}"#,
            true,
        );
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (4.into(), (-32602).into())
        );
        let a = answer(
            r#"{"jsonrpc":"2.0","id":"s","method":"tools/list","params":{"_meta":"x"}}"#,
            true,
        );
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            ("s".into(), (-32602).into())
        );
        let long = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"{}"}}"#,
            "m".repeat(100_000)
        );
        let a = answer(&long, true);
        assert_eq!(a["error"]["code"], -32601);
        assert_eq!(a["id"], 3);
        let line = r#"{"jsonrpc":"2.0","id":1180591620717411303424,"method":"ping"}"#;
        match verdict(line, true) {
            Verdict::Answer(text) => assert!(
                text.starts_with(r#"{"jsonrpc":"2.0","id":1180591620717411303424,"error""#),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
        let a = answer(r#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#, true);
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (9.into(), (-32600).into())
        );
        let a = answer("not json at all", true);
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, (-32700).into())
        );
    }

    #[test]
    fn a_batch_is_answered_for_each_request_in_it() {
        let a = answer(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"b","method":"ping"}]"#,
            true,
        );
        let ids: Vec<Value> = a
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, vec![Value::from(1), Value::from("b")]);
    }
}
