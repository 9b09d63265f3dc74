//! The `{success, data, error}` envelope every tool answers with, and its conversion to an
//! MCP result: the same JSON as `structuredContent` and as a text block, `isError` on failure.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use rmcp::model::{CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

pub use super::args::Failure;
use super::args::{Declared, RawArgs};
use super::words;

/// What every tool answers: `{success, data, error}`, and between `data` and `error` the fields
/// of `X` that a tool adds (paging facts, a scan's progress, `as_of`).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Envelope<T, X = NoExtras> {
    /// Whether the call succeeded.
    pub success: bool,
    /// The records asked for; empty (or null for a single record) when the call failed.
    pub data: T,
    #[serde(flatten)]
    pub extras: X,
    /// Why the call failed, in a sentence for a person; null on success.
    pub error: Option<String>,
}

/// The fields a tool adds to the envelope.
pub trait Extras: Serialize + Default {
    /// What a failure keeps of these (by default, nothing).
    fn failed(self) -> Self {
        Self::default()
    }
    /// Those of a call refused before it ran: read from its arguments where they can be.
    fn refused(_args: &RawArgs) -> Self {
        Self::default()
    }
}

/// No fields beside `{success, data, error}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct NoExtras {}

impl Extras for NoExtras {}

/// The most bytes of envelope JSON one answer carries; the answer line holds it twice (structured
/// content and text), so no upstream answer can push a line past about twice this.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

impl<T: Default, X: Extras> Envelope<T, X> {
    pub fn ok(data: T, extras: X) -> Self {
        Self {
            success: true,
            data,
            extras,
            error: None,
        }
    }

    pub fn failed(error: String, extras: X) -> Self {
        Self {
            success: false,
            data: T::default(),
            extras: extras.failed(),
            error: Some(error),
        }
    }

    /// The envelope of a finished call, the failure worded.
    pub fn of(result: Result<T, Failure>) -> Self {
        match result {
            Ok(data) => Self::ok(data, X::default()),
            Err(failure) => Self::failed(words::failure(&failure), X::default()),
        }
    }
}

/// Runs a tool's call unless its arguments hold a name it does not take
/// (`accepted`): that is refused with the failure that names it.
pub async fn checked<T: Default + Serialize, X: Extras>(
    args: &RawArgs,
    accepted: &[&dyn Declared],
    call: impl Future<Output = Envelope<T, X>>,
) -> ToolOutcome {
    match super::args::unknown(args, accepted) {
        Some(e) => ToolOutcome::of(Envelope::<T, X>::failed(
            words::arg_error(&e),
            X::refused(args),
        )),
        None => guarded(call).await,
    }
}

/// Runs a tool's call; a panic inside it is a bug, answered as a failure, not left unanswered.
pub async fn guarded<T: Default + Serialize, X: Extras>(
    call: impl Future<Output = Envelope<T, X>>,
) -> ToolOutcome {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(answer) => ToolOutcome::of(answer),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %crate::text::shorten(&what, 200), "a tool call panicked");
            ToolOutcome::of(Envelope::<T, X>::failed(
                words::internal_error(),
                X::default(),
            ))
        }
    }
}

/// A finished tool call: the envelope as JSON value and as compact text
/// (made once, from the typed envelope, so that it keeps its field order).
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    pub envelope: Value,
    pub text: String,
    pub is_error: bool,
}

impl ToolOutcome {
    /// The outcome of `answer`, or of its failure when it is larger than
    /// [`MAX_ANSWER_BYTES`]. The text is made before the JSON value, so that
    /// an answer too large is never built as a value at all.
    pub fn of<T: Default + Serialize, X: Extras>(answer: Envelope<T, X>) -> Self {
        match serde_json::to_string(&answer) {
            Ok(text) if text.len() > MAX_ANSWER_BYTES => {
                let error = words::answer_too_large(text.len(), MAX_ANSWER_BYTES);
                drop(text);
                Self::new(&Envelope::<T, X>::failed(error, answer.extras))
            }
            text => Self::made(text, &answer),
        }
    }

    /// Serializes an envelope; `is_error` follows its `success` field.
    pub fn new<T: Serialize>(envelope: &T) -> Self {
        Self::made(serde_json::to_string(envelope), envelope)
    }

    fn made<T: Serialize>(text: serde_json::Result<String>, envelope: &T) -> Self {
        match text.and_then(|text| Ok((text, serde_json::to_value(envelope)?))) {
            Ok((text, envelope)) => Self {
                is_error: envelope.get("success") != Some(&Value::Bool(true)),
                envelope,
                text,
            },
            Err(e) => {
                let envelope = serde_json::json!({
                    "success": false, "data": null, "error": format!("internal error: {e}")
                });
                Self {
                    text: envelope.to_string(),
                    envelope,
                    is_error: true,
                }
            }
        }
    }

    pub fn error(&self) -> Option<&str> {
        self.envelope.get("error").and_then(Value::as_str)
    }

    /// The MCP result: `structuredContent` and a text block of the same JSON.
    pub fn into_call_result(self) -> CallToolResult {
        let mut result = CallToolResult::success(vec![ContentBlock::text(self.text)]);
        result.structured_content = Some(self.envelope);
        result.is_error = Some(self.is_error);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failure_keeps_every_field_with_nulls() {
        let outcome = ToolOutcome::new(&Envelope::<Option<u8>>::failed("nope".into(), NoExtras {}));
        assert!(outcome.is_error);
        assert_eq!(
            outcome.envelope,
            json!({"success": false, "data": null, "error": "nope"})
        );
        let result = outcome.into_call_result();
        assert_eq!(result.is_error, Some(true));
        let text = result.content[0].as_text().unwrap().text.clone();
        assert_eq!(text, r#"{"success":false,"data":null,"error":"nope"}"#);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            result.structured_content.unwrap()
        );
    }

    #[tokio::test]
    async fn a_panic_in_a_call_is_answered_as_that_tools_failure() {
        let outcome = guarded(async {
            if outcome_is_forced() {
                panic!("overflow when adding durations");
            }
            Envelope::ok(vec![1u8], NoExtras {})
        })
        .await;
        assert!(outcome.is_error);
        assert_eq!(outcome.envelope["data"], json!([]));
        assert_eq!(outcome.envelope["success"], false);
        assert!(outcome.error().unwrap().contains("internal error"));
    }

    fn outcome_is_forced() -> bool {
        true
    }

    #[test]
    fn an_answer_over_the_limit_becomes_its_failure() {
        let big = Envelope::ok(vec!["x".repeat(MAX_ANSWER_BYTES)], NoExtras {});
        let outcome = ToolOutcome::of(big);
        assert!(outcome.is_error);
        assert_eq!(outcome.envelope["data"], json!([]));
        assert!(outcome.text.len() < 1000);
    }

    #[test]
    fn success_sends_error_null() {
        let outcome = ToolOutcome::new(&Envelope::<Vec<u8>>::ok(vec![], NoExtras {}));
        assert!(!outcome.is_error);
        assert_eq!(
            outcome.envelope,
            json!({"success": true, "data": [], "error": null})
        );
    }
}
