//! Loomi's side of the tools: which of its tools serves each of ours (the
//! seed's names, or `search_voucher_pools` for the pools), which arguments
//! they declare, and how a `tools/call` result is read (its
//! `structuredContent` when that is an object, else its first text block as
//! JSON; an error result, or a rate-limit notice in words).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::backend::error::{AnswerProblem, BackendError};
use crate::backend::ProjectEntry;

const LIST_POOLS: &str = "list_voucher_pools";
const GET_POOL: &str = "get_voucher_pool";
const LIST_CODES: &str = "list_voucher_codes";
const SEARCH_POOLS: &str = "search_voucher_pools";
const LIST_PROJECTS: &str = "list_projects";
const LIST_ORGANIZATIONS: &str = "list_cloud_organizations";

/// Loomi's tools, with what each declares of its arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolSet {
    tools: BTreeMap<String, Declared>,
    /// Tools that take no required argument and are not marked as
    /// changing anything, in Loomi's order: what `login` may call to check
    /// that the new login reads data.
    harmless: Vec<String>,
}

/// What a tool's `inputSchema` declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Declared {
    /// Its properties (arguments), with the `maximum` each declares, if any.
    args: BTreeMap<String, Option<u64>>,
    required: Vec<String>,
}

/// How a list tool pages: the names of its offset and size arguments, and
/// the page size to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paging {
    pub skip: String,
    pub count: String,
    pub size: u64,
}

/// How our `list_projects` is answered from Loomi's tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectsPlan {
    /// Loomi's `list_projects`, called once with no argument.
    Direct { tool: String },
    /// `list_cloud_organizations`, then `list_projects` for each
    /// organization, its id under `argument`.
    ByOrganization {
        organizations: String,
        projects: String,
        argument: String,
    },
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
            let schema = &tool["inputSchema"];
            let names = schema["required"].as_array().into_iter().flatten();
            let required: Vec<String> =
                names.filter_map(Value::as_str).map(str::to_owned).collect();
            let flag = |name: &str| tool["annotations"][name].as_bool();
            if required.is_empty()
                && flag("readOnlyHint") != Some(false)
                && flag("destructiveHint") != Some(true)
            {
                harmless.push(name.to_owned());
            }
            let args = schema["properties"].as_object().into_iter().flatten();
            let args = args
                .map(|(k, v)| {
                    let max = v["maximum"].as_f64().filter(|m| m.is_finite() && *m >= 1.0);
                    (k.clone(), max.map(|m| m.min(1e9) as u64))
                })
                .collect();
            tools.insert(name.to_owned(), Declared { args, required });
        }
        Self { tools, harmless }
    }

    /// The tool `login` calls to check that the new login reads data:
    /// Loomi's organizations, else its projects, else the first tool that
    /// needs no argument and is not marked as changing anything.
    pub fn probe_tool(&self) -> Option<&str> {
        [LIST_ORGANIZATIONS, LIST_PROJECTS]
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

    /// The first of `names` that Loomi has; else the failure naming the first.
    fn first_of(&self, names: &[&'static str]) -> Result<&'static str, BackendError> {
        let tool = names[0].to_owned();
        let found = names.iter().copied().find(|n| self.tools.contains_key(*n));
        found.ok_or(BackendError::LoomiToolMissing { tool })
    }

    /// The tool that lists pools.
    pub fn pools_tool(&self) -> Result<String, BackendError> {
        Ok(self.first_of(&[LIST_POOLS, SEARCH_POOLS])?.to_owned())
    }

    /// The tool that gives one pool, and the name of its pool argument as
    /// the tool declares it (`pool_id`, else `voucher_pool_id`, else `id`);
    /// `None` for the argument where it declares none of them (the pool is
    /// then picked out of the list).
    pub fn pool_tool(&self) -> Result<(String, Option<String>), BackendError> {
        let name = self.first_of(&[GET_POOL, SEARCH_POOLS])?;
        let arg = self.declared(name, &["pool_id", "voucher_pool_id", "id"]);
        if name == GET_POOL && arg.is_none() {
            return Err(Self::cannot_take(name, "pool_id"));
        }
        Ok((name.to_owned(), arg))
    }

    /// The tool that lists codes, and the name of its pool argument
    /// (`pool_id`, else `voucher_pool_id`).
    pub fn codes_tool(&self) -> Result<(String, String), BackendError> {
        self.first_of(&[LIST_CODES])?;
        let arg = self
            .declared(LIST_CODES, &["pool_id", "voucher_pool_id"])
            .ok_or_else(|| Self::cannot_take(LIST_CODES, "pool_id"))?;
        for needed in ["project_id", "skip", "count"] {
            self.takes(LIST_CODES, needed)?;
        }
        Ok((LIST_CODES.to_owned(), arg))
    }

    /// The first of `names` that `tool` declares.
    fn declared(&self, tool: &str, names: &[&str]) -> Option<String> {
        let args = &self.tools.get(tool)?.args;
        Some(names.iter().find(|n| args.contains_key(**n))?.to_string())
    }

    /// How `tool` pages, where it declares `skip` and `count`, or `offset`
    /// and `limit`: the page asked for is the largest its schema allows
    /// (at most 1000), else 100.
    pub fn paging(&self, tool: &str) -> Option<Paging> {
        let args = &self.tools.get(tool)?.args;
        let (skip, count) = [("skip", "count"), ("offset", "limit")]
            .into_iter()
            .find(|(s, c)| args.contains_key(*s) && args.contains_key(*c))?;
        Some(Paging {
            skip: skip.to_owned(),
            count: count.to_owned(),
            size: args[count].unwrap_or(100).min(1000),
        })
    }

    fn required(&self, tool: &str) -> &[String] {
        self.tools.get(tool).map_or(&[][..], |d| &d.required[..])
    }

    /// `Ok` when `tool` declares `argument`; else the failure that names both.
    pub fn takes(&self, tool: &str, argument: &str) -> Result<(), BackendError> {
        let found = self.declared(tool, &[argument]);
        found.map(drop).ok_or(Self::cannot_take(tool, argument))
    }

    fn cannot_take(tool: &str, argument: &str) -> BackendError {
        BackendError::LoomiArgument {
            tool: tool.to_owned(),
            argument: argument.to_owned(),
        }
    }

    /// Whether `list_voucher_codes` declares a `status` argument.
    pub fn codes_take_status(&self) -> bool {
        self.declared(LIST_CODES, &["status"]).is_some()
    }

    /// How projects are listed: Loomi's `list_projects` alone where it
    /// requires no argument; through the organizations where it requires
    /// one that names an organization (`cloud_organization_id`).
    pub fn projects_plan(&self) -> Result<ProjectsPlan, BackendError> {
        self.first_of(&[LIST_PROJECTS])?;
        let required = self.required(LIST_PROJECTS);
        let argument = required.iter().find(|r| r.contains("organization"));
        self.requires_only(LIST_PROJECTS, argument.map(String::as_str).as_slice())?;
        let Some(argument) = argument else {
            let tool = LIST_PROJECTS.to_owned();
            return Ok(ProjectsPlan::Direct { tool });
        };
        self.first_of(&[LIST_ORGANIZATIONS])?;
        self.requires_only(LIST_ORGANIZATIONS, &[])?;
        Ok(ProjectsPlan::ByOrganization {
            organizations: LIST_ORGANIZATIONS.to_owned(),
            projects: LIST_PROJECTS.to_owned(),
            argument: argument.clone(),
        })
    }

    /// A required argument of `tool` beyond `known`, as the failure that
    /// names it: this server would have to guess its value.
    pub fn requires_only(&self, tool: &str, known: &[&str]) -> Result<(), BackendError> {
        let required = self.required(tool);
        let other = required.iter().find(|r| !known.contains(&r.as_str()));
        other.map_or(Ok(()), |other| Err(Self::cannot_take(tool, other)))
    }
}

/// For `doctor`: how one of our needs is met by Loomi's tools.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// Our need: `projects`, `pools`, `pool`, `codes`.
    pub need: &'static str,
    /// Loomi's tools called, in order.
    pub tools: Vec<String>,
    /// The argument names they are called with.
    pub arguments: Vec<String>,
    /// The arguments the (last) tool declares as required.
    pub required: Vec<String>,
    /// Why the need cannot be met, where it cannot.
    pub problem: Option<BackendError>,
}

impl ToolSet {
    /// How each need is met, as the calls will be made.
    pub fn choices(&self) -> Vec<Choice> {
        let choice = |need, found: Result<(Vec<String>, Vec<String>), BackendError>| {
            let problem = found.as_ref().err().cloned();
            let (tools, arguments) = found.unwrap_or_default();
            let required = tools.last().map(|t| self.required(t).to_vec());
            Choice {
                need,
                required: required.unwrap_or_default(),
                tools,
                arguments,
                problem,
            }
        };
        let listing = |tool: String| {
            let mut arguments = vec!["project_id".to_owned()];
            let paging = self.paging(&tool).into_iter();
            arguments.extend(paging.flat_map(|p| [p.skip, p.count]));
            (vec![tool], arguments)
        };
        let projects = self.projects_plan().map(|plan| match plan {
            ProjectsPlan::Direct { tool } => (vec![tool], Vec::new()),
            ProjectsPlan::ByOrganization {
                organizations,
                projects,
                argument,
            } => (vec![organizations, projects], vec![argument]),
        });
        let pools = self.pools_tool().and_then(|tool| {
            self.takes(&tool, "project_id")?;
            Ok(listing(tool))
        });
        let pool = self.pool_tool().map(|(tool, arg)| match arg {
            Some(arg) => (vec![tool], vec!["project_id".to_owned(), arg]),
            None => listing(tool),
        });
        let codes = self.codes_tool().map(|(tool, pool_arg)| {
            let mut arguments = vec!["project_id".into(), pool_arg, "skip".into(), "count".into()];
            arguments.extend(self.codes_take_status().then(|| "status".to_owned()));
            (vec![tool], arguments)
        });
        vec![
            choice("projects", projects),
            choice("pools", pools),
            choice("pool", pool),
            choice("codes", codes),
        ]
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

const NO_TEXT: &str = "Loomi Connect reported an error and gave no text";

/// Reads a `tools/call` result.
pub fn payload(mut result: Value) -> ToolAnswer {
    let structured = result
        .get_mut("structuredContent")
        .filter(|v| v.is_object())
        .map(Value::take);
    let mut blocks = result["content"].as_array().into_iter().flatten();
    let text = blocks.find(|b| b["type"] == "text");
    let text = text.and_then(|b| b["text"].as_str());
    if result["isError"] == true {
        let error = structured.as_ref().and_then(|s| s["error"].as_str());
        let message = text.or(error).unwrap_or(NO_TEXT).to_owned();
        return limited(&message).unwrap_or(ToolAnswer::Failed { message });
    }
    // Kept long (128 KiB is past all that a quote scrubs and shows): it is
    // scrubbed, then folded and cut, where quoted.
    let unreadable = |problem, text: &str| ToolAnswer::Unreadable {
        problem,
        excerpt: crate::text::shorten(text, 128 * 1024),
    };
    let envelope = match (structured, text) {
        (Some(s), _) => s,
        (None, None) => return unreadable(AnswerProblem::NoData, &result.to_string()),
        (None, Some(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            _ => return limited(text).unwrap_or_else(|| unreadable(AnswerProblem::NotJson, text)),
        },
    };
    let notice = envelope["error"].as_str().and_then(limited);
    let notice = notice.filter(|_| envelope["success"] == false);
    notice.unwrap_or(ToolAnswer::Envelope(envelope))
}

fn limited(text: &str) -> Option<ToolAnswer> {
    rate_limit_wait(text).map(|wait| ToolAnswer::RateLimited { wait })
}

/// `Some(wait)` when `text` is Loomi's rate-limit notice ("Too many
/// requests ... Retry after ~N second(s)", or a window such as "(1 per 10
/// second)", whose length is then the wait); the wait when it gives one.
pub fn rate_limit_wait(text: &str) -> Option<Option<Duration>> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("too many requests") {
        return None;
    }
    let Some(at) = lower.find("retry after") else {
        return Some(window(&lower));
    };
    let rest = lower[at + "retry after".len()..].trim_start_matches([' ', '~', '≈']);
    let digits = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.');
    let seconds: Option<f64> = digits.collect::<String>().parse().ok();
    let seconds = seconds.filter(|s| s.is_finite() && *s >= 0.0);
    Some(seconds.map(|s| Duration::from_secs_f64(s.min(1e6))))
}

/// The length of a window worded `(N per M second)` (or `seconds`).
fn window(lower: &str) -> Option<Duration> {
    let at = lower.find(" per ")?;
    let rest = &lower[at + " per ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let unit = rest[digits.len()..].trim_start();
    if !unit.starts_with("second") {
        return None;
    }
    let seconds: u64 = digits.parse().ok()?;
    Some(Duration::from_secs(seconds.min(1_000_000)))
}

/// A value that is text or a number, as text.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_of(record: &Value, key: &str) -> Option<String> {
    as_text(record.get(key)?)
}

/// A record's id: `id`, else `_id`, else `pool_id`, as text.
pub fn record_id(record: &Value) -> Option<String> {
    let keys = ["id", "_id", "pool_id"];
    as_text(keys.iter().find_map(|k| record.get(*k))?)
}

/// Gives an object without `id` the one [`record_id`] reads; `None` where
/// it reads none.
fn add_id(record: &mut Value) -> Option<()> {
    if record.is_object() && record.get("id").is_none() {
        let id = record_id(record)?;
        record["id"] = Value::String(id);
    }
    Some(())
}

/// The envelope of a list whose records name their id `_id` or `pool_id`:
/// each record gains `id`.
pub fn with_ids(mut envelope: Value) -> Value {
    if let Some(Value::Array(records)) = envelope.get_mut("data") {
        for record in records {
            add_id(record);
        }
    }
    envelope
}

/// The envelope of one pool: as it is, or the pool with `pool_id` out of a
/// list (what `search_voucher_pools` may answer); `None` when the list
/// does not hold it. The record's id is read as [`record_id`] reads it, and
/// written back as `id`.
pub fn one_pool(mut envelope: Value, pool_id: &str) -> Option<Value> {
    let data = envelope.get_mut("data")?;
    if let Value::Array(pools) = data {
        let wanted = |p: &&Value| record_id(p).as_deref() == Some(pool_id);
        *data = pools.iter().find(wanted)?.clone();
    }
    add_id(data)?;
    Some(envelope)
}

/// A record's id (the first of `keys` that is text or a number) and its
/// name (else the id).
fn id_and_name(record: &Value, keys: [&str; 3]) -> Option<(String, String)> {
    let id = keys.into_iter().find_map(|k| text_of(record, k))?;
    let name = text_of(record, "name").unwrap_or_else(|| id.clone());
    Some((id, name))
}

/// A project of Loomi's `list_projects`: its id (`id`, else `project_id`,
/// else `_id`), name and workspace name, in `organization` (a name).
pub fn project_entry(record: &Value, organization: Option<&str>) -> Option<ProjectEntry> {
    let (id, name) = id_and_name(record, ["id", "project_id", "_id"])?;
    Some(ProjectEntry {
        id,
        name,
        organization: organization.map(str::to_owned),
        workspace: text_of(record, "workspace_name"),
    })
}

/// An organization of `list_cloud_organizations`: its id and name.
pub fn organization(record: &Value) -> Option<(String, String)> {
    id_and_name(record, ["id", "cloud_organization_id", "_id"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declaring(tools: Value) -> ToolSet {
        ToolSet::from_listed(tools.as_array().unwrap())
    }

    #[test]
    fn arguments_go_under_the_names_the_tools_declare() {
        let props = |names: &[&str]| {
            let p: serde_json::Map<String, Value> =
                names.iter().map(|n| ((*n).to_owned(), json!({}))).collect();
            json!({"type": "object", "properties": p})
        };
        let set = declaring(json!([
            {"name": "search_voucher_pools", "inputSchema": props(&["project_id", "voucher_pool_id"])},
            {"name": "list_voucher_codes", "inputSchema": props(&["project_id", "voucher_pool_id", "skip", "count"])}
        ]));
        assert_eq!(
            set.pool_tool().unwrap(),
            (
                "search_voucher_pools".to_owned(),
                Some("voucher_pool_id".to_owned())
            )
        );
        assert_eq!(
            set.codes_tool().unwrap(),
            (
                "list_voucher_codes".to_owned(),
                "voucher_pool_id".to_owned()
            )
        );
        let set = declaring(json!([
            {"name": "search_voucher_pools", "inputSchema": props(&["project_id"])},
            {"name": "list_voucher_codes", "inputSchema": props(&["project_id", "pool", "skip", "count"])}
        ]));
        assert_eq!(set.pool_tool().unwrap().1, None);
        assert_eq!(
            set.codes_tool(),
            Err(BackendError::LoomiArgument {
                tool: "list_voucher_codes".into(),
                argument: "pool_id".into()
            })
        );
    }

    #[test]
    fn paging_is_read_from_the_schema_and_projects_from_what_is_required() {
        let set = declaring(json!([
            {"name": "search_voucher_pools", "inputSchema": {"properties": {
                "project_id": {}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}},
            {"name": "list_voucher_pools", "inputSchema": {"properties": {
                "project_id": {}, "skip": {}, "count": {"maximum": 5000}}}},
            {"name": "list_projects", "inputSchema": {"properties": {"workspace_id": {}, "cloud_organization_id": {}},
                "required": ["cloud_organization_id"]}},
            {"name": "list_cloud_organizations", "inputSchema": {"properties": {}}}
        ]));
        assert_eq!(
            set.paging("search_voucher_pools"),
            Some(Paging {
                skip: "offset".into(),
                count: "limit".into(),
                size: 100
            })
        );
        // The largest page allowed, at most 1000.
        assert_eq!(set.paging("list_voucher_pools").unwrap().size, 1000);
        assert_eq!(
            set.projects_plan().unwrap(),
            ProjectsPlan::ByOrganization {
                organizations: "list_cloud_organizations".into(),
                projects: "list_projects".into(),
                argument: "cloud_organization_id".into()
            }
        );
        // A required argument this server cannot fill is named.
        let set = declaring(json!([
            {"name": "list_projects", "inputSchema": {"properties": {"region": {}}, "required": ["region"]}}
        ]));
        assert_eq!(
            set.projects_plan(),
            Err(BackendError::LoomiArgument {
                tool: "list_projects".into(),
                argument: "region".into()
            })
        );
        let set = declaring(json!([
            {"name": "list_projects", "inputSchema": {"properties": {"cloud_organization_id": {}}, "required": ["cloud_organization_id"]}}
        ]));
        assert_eq!(
            set.projects_plan(),
            Err(BackendError::LoomiToolMissing {
                tool: "list_cloud_organizations".into()
            })
        );
    }

    #[test]
    fn a_pool_is_found_by_id_or_underscore_id() {
        let envelope = json!({"success": true, "data": [
            {"_id": "a", "name": "A"}, {"_id": "b", "name": "B"}
        ]});
        let one = one_pool(envelope.clone(), "b").unwrap();
        assert_eq!(one["data"]["id"], "b");
        assert_eq!(one["data"]["name"], "B");
        assert_eq!(one_pool(envelope, "c"), None);
    }

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
        assert_eq!(
            rate_limit_wait("Too many requests (1 per 10 second)"),
            Some(Some(Duration::from_secs(10)))
        );
        assert_eq!(
            rate_limit_wait("Too many requests: limit 1 per 2 seconds"),
            Some(Some(Duration::from_secs(2)))
        );
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
            ("search_voucher_pools".to_owned(), Some("id".to_owned()))
        );
        assert!(!set.codes_take_status());
        assert!(set.projects_plan().is_err());
        let envelope = json!({"success": true, "data": [{"id": "a"}, {"id": "b", "name": "B"}]});
        assert_eq!(
            one_pool(envelope.clone(), "b").unwrap()["data"],
            json!({"id": "b", "name": "B"})
        );
        assert_eq!(one_pool(envelope, "c"), None);
    }
}
