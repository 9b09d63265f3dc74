//! Loomi's side of the tools: which of its tools serves each of ours (the
//! seed's names, or `search_voucher_pools` for the pools), which arguments
//! they declare, and how a `tools/call` result is read (its
//! `structuredContent` when that is an object, else its first text block as
//! JSON; an error result, or a rate-limit notice in words).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::backend::error::{AnswerProblem, BackendError};

const LIST_POOLS: &str = "list_voucher_pools";
const GET_POOL: &str = "get_voucher_pool";
const LIST_CODES: &str = "list_voucher_codes";
const SEARCH_POOLS: &str = "search_voucher_pools";
const LIST_PROJECTS: &str = "list_projects";

/// Loomi's tools, with the argument names each declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolSet {
    tools: BTreeMap<String, Vec<String>>,
    /// Tools that take no required argument and are not marked as
    /// changing anything, in Loomi's order: what `login` may call to check
    /// that the new login reads data.
    harmless: Vec<String>,
}

impl ToolSet {
    /// From the `tools` of `tools/list` answers.
    pub fn from_listed(listed: &[Value]) -> Self {
        let mut tools = BTreeMap::new();
        let mut harmless = Vec::new();
        for tool in listed {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let requires = tool
                .pointer("/inputSchema/required")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            let flag = |name: &str| {
                tool.pointer(&format!("/annotations/{name}"))
                    .and_then(Value::as_bool)
            };
            if !requires
                && flag("readOnlyHint") != Some(false)
                && flag("destructiveHint") != Some(true)
            {
                harmless.push(name.to_owned());
            }
            let args = tool
                .pointer("/inputSchema/properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            tools.insert(name.to_owned(), args);
        }
        Self { tools, harmless }
    }

    /// The tool `login` calls to check that the new login reads data:
    /// Loomi's organizations, else its projects, else the first tool that
    /// needs no argument and is not marked as changing anything.
    pub fn probe_tool(&self) -> Option<&str> {
        ["list_cloud_organizations", LIST_PROJECTS]
            .into_iter()
            .find(|t| self.harmless.iter().any(|h| h == t))
            .or_else(|| self.harmless.first().map(String::as_str))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The voucher tools among them, for `login` to name.
    pub fn voucher_tools(&self) -> Vec<&str> {
        self.names().filter(|n| n.contains("voucher")).collect()
    }

    fn has(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    fn missing(tool: &str) -> BackendError {
        BackendError::LoomiToolMissing {
            tool: tool.to_owned(),
        }
    }

    /// The tool that lists pools.
    pub fn pools_tool(&self) -> Result<String, BackendError> {
        if self.has(LIST_POOLS) {
            Ok(LIST_POOLS.to_owned())
        } else if self.has(SEARCH_POOLS) {
            Ok(SEARCH_POOLS.to_owned())
        } else {
            Err(Self::missing(LIST_POOLS))
        }
    }

    /// The tool that gives one pool, and the name of its pool argument.
    pub fn pool_tool(&self) -> Result<(String, String), BackendError> {
        if self.has(GET_POOL) {
            return Ok((GET_POOL.to_owned(), "pool_id".to_owned()));
        }
        match self.tools.get(SEARCH_POOLS) {
            Some(args) => {
                let arg = if args.iter().any(|a| a == "pool_id") || !args.iter().any(|a| a == "id")
                {
                    "pool_id"
                } else {
                    "id"
                };
                Ok((SEARCH_POOLS.to_owned(), arg.to_owned()))
            }
            None => Err(Self::missing(GET_POOL)),
        }
    }

    pub fn codes_tool(&self) -> Result<String, BackendError> {
        if self.has(LIST_CODES) {
            Ok(LIST_CODES.to_owned())
        } else {
            Err(Self::missing(LIST_CODES))
        }
    }

    /// Whether `list_voucher_codes` declares a `status` argument.
    pub fn codes_take_status(&self) -> bool {
        self.tools
            .get(LIST_CODES)
            .is_some_and(|args| args.iter().any(|a| a == "status"))
    }

    pub fn projects_tool(&self) -> Result<String, BackendError> {
        if self.has(LIST_PROJECTS) {
            Ok(LIST_PROJECTS.to_owned())
        } else {
            Err(Self::missing(LIST_PROJECTS))
        }
    }
}

/// What a `tools/call` result says.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolAnswer {
    /// The seed's envelope (`success`, `data`, `error`, …), to decode.
    Envelope(Value),
    /// A rate-limit notice: wait this long (or a default) and call again.
    RateLimited { wait: Option<Duration> },
    /// `isError: true`: Loomi's words.
    Failed { message: String },
    /// Neither structured content nor JSON text.
    Unreadable {
        problem: AnswerProblem,
        excerpt: String,
    },
}

/// Reads a `tools/call` result.
pub fn payload(mut result: Value) -> ToolAnswer {
    let structured = result
        .get_mut("structuredContent")
        .filter(|v| v.is_object())
        .map(Value::take);
    let text = result
        .get("content")
        .and_then(Value::as_array)
        .and_then(|blocks| {
            blocks
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        })
        .and_then(|b| b.get("text"))
        .and_then(Value::as_str);
    if result.get("isError") == Some(&Value::Bool(true)) {
        let message = text
            .map(str::to_owned)
            .or_else(|| {
                structured
                    .as_ref()
                    .and_then(|s| s.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "Loomi Connect reported an error and gave no text".to_owned());
        if let Some(wait) = rate_limit_wait(&message) {
            return ToolAnswer::RateLimited { wait };
        }
        return ToolAnswer::Failed { message };
    }
    let envelope = match structured {
        Some(s) => s,
        None => match text.map(serde_json::from_str::<Value>) {
            Some(Ok(v)) if v.is_object() => v,
            Some(_) => {
                let text = text.unwrap_or("");
                if let Some(wait) = rate_limit_wait(text) {
                    return ToolAnswer::RateLimited { wait };
                }
                // Kept long: it is scrubbed, then cut, where it is quoted.
                return ToolAnswer::Unreadable {
                    problem: AnswerProblem::NotJson,
                    excerpt: crate::text::shorten(&crate::text::one_line(text), 4096),
                };
            }
            None => {
                return ToolAnswer::Unreadable {
                    problem: AnswerProblem::NoData,
                    excerpt: crate::text::shorten(&result.to_string(), 4096),
                }
            }
        },
    };
    if envelope.get("success") == Some(&Value::Bool(false)) {
        if let Some(wait) = envelope
            .get("error")
            .and_then(Value::as_str)
            .and_then(rate_limit_wait)
        {
            return ToolAnswer::RateLimited { wait };
        }
    }
    ToolAnswer::Envelope(envelope)
}

/// `Some(wait)` when `text` is Loomi's rate-limit notice ("Too many
/// requests ... Retry after ~N second(s)"); the wait when it gives one.
pub fn rate_limit_wait(text: &str) -> Option<Option<Duration>> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("too many requests") {
        return None;
    }
    let Some(at) = lower.find("retry after") else {
        return Some(None);
    };
    let rest = &lower[at + "retry after".len()..];
    let digits: String = rest
        .trim_start_matches([' ', '~', '≈'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    Some(
        digits
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(1e6))),
    )
}

/// The envelope of one pool: as it is, or the pool with `pool_id` out of a
/// list (what `search_voucher_pools` may answer); `None` when the list
/// does not hold it.
pub fn one_pool(mut envelope: Value, pool_id: &str) -> Option<Value> {
    let Some(Value::Array(pools)) = envelope.get_mut("data") else {
        return Some(envelope);
    };
    let found = pools
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str) == Some(pool_id))
        .cloned()?;
    envelope["data"] = found;
    Some(envelope)
}

/// A project of Loomi's `list_projects`: its `id` (or `project_id`) and name.
pub fn project_entry(record: &Value) -> Option<crate::backend::ProjectEntry> {
    let id = record
        .get("id")
        .or_else(|| record.get("project_id"))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })?;
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| id.clone());
    Some(crate::backend::ProjectEntry { id, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structured_content_wins_then_the_first_text_block() {
        let r = json!({"content": [{"type": "text", "text": "{\"success\": true, \"data\": [1]}"}], "structuredContent": {"success": true, "data": [2]}});
        assert_eq!(
            payload(r.clone()),
            ToolAnswer::Envelope(json!({"success": true, "data": [2]}))
        );
        let r = json!({"content": [{"type": "image"}, {"type": "text", "text": "{\"success\": true, \"data\": [1]}"}]});
        assert_eq!(
            payload(r.clone()),
            ToolAnswer::Envelope(json!({"success": true, "data": [1]}))
        );
        let r = json!({"content": [{"type": "text", "text": "oops"}]});
        assert!(matches!(payload(r.clone()), ToolAnswer::Unreadable { .. }));
    }

    #[test]
    fn errors_and_rate_limit_notices_are_told_apart() {
        let r = json!({"isError": true, "content": [{"type": "text", "text": "Pool not found"}]});
        assert_eq!(
            payload(r.clone()),
            ToolAnswer::Failed {
                message: "Pool not found".into()
            }
        );
        let r = json!({"isError": true, "content": [{"type": "text", "text": "Too many requests for this key. Retry after ~3 second(s)."}]});
        assert_eq!(
            payload(r.clone()),
            ToolAnswer::RateLimited {
                wait: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            rate_limit_wait("Too many requests, Retry after ~1.5 seconds"),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(rate_limit_wait("Too many requests"), Some(None));
        assert_eq!(rate_limit_wait("all fine"), None);
    }

    #[test]
    fn search_tools_stand_in_for_the_pool_tools() {
        let set = ToolSet::from_listed(&[
            json!({"name": "search_voucher_pools", "inputSchema": {"properties": {"project_id": {}, "id": {}}}}),
            json!({"name": "list_voucher_codes", "inputSchema": {"properties": {"project_id": {}, "pool_id": {}}}}),
        ]);
        assert_eq!(set.pools_tool().unwrap(), "search_voucher_pools");
        assert_eq!(
            set.pool_tool().unwrap(),
            ("search_voucher_pools".to_owned(), "id".to_owned())
        );
        assert!(!set.codes_take_status());
        assert!(set.projects_tool().is_err());
        let envelope = json!({"success": true, "data": [{"id": "a"}, {"id": "b", "name": "B"}]});
        assert_eq!(
            one_pool(envelope.clone(), "b").unwrap()["data"],
            json!({"id": "b", "name": "B"})
        );
        assert_eq!(one_pool(envelope, "c"), None);
    }
}
