//! Tool arguments: their declared shapes (for `inputSchema`) and the checks
//! that run before anything goes upstream.
//!
//! Arguments are read from the raw JSON object rather than deserialized
//! into typed structs, so that every problem (a missing id, a count of
//! `"lots"`) becomes an envelope that names the argument, the rule and the
//! value received. Language models write integers as `20`, `20.0` or
//! `"20"`; all three are accepted. `null` means "left out"; names a tool
//! does not take are ignored.

use schemars::JsonSchema;
use serde_json::{Map, Value};

use crate::bloomreach::model::CodeStatus;

/// The raw arguments of a call.
pub type RawArgs = Map<String, Value>;

/// The longest id accepted, in characters.
pub const MAX_ID_CHARS: usize = 1024;
/// Default and bounds of `list_voucher_codes` paging.
pub const DEFAULT_SKIP: i64 = 0;
pub const DEFAULT_COUNT: i64 = 20;
pub const MAX_COUNT: i64 = 1000;
/// The largest offset accepted (the largest the wire integer holds).
pub const MAX_SKIP: i64 = i64::MAX;

/// A broken argument rule, worded for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgError(pub String);

/// Declared shape of `list_voucher_pools`' arguments.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct ListVoucherPoolsInput {
    /// The project token (project ID) to read from; list_projects shows the configured ones.
    #[schemars(length(min = 1))]
    project_id: String,
}

/// Declared shape of `get_voucher_pool`'s arguments.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct GetVoucherPoolInput {
    /// The project token (project ID) the pool belongs to.
    #[schemars(length(min = 1))]
    project_id: String,
    /// The pool's id, as given by list_voucher_pools.
    #[schemars(length(min = 1))]
    pool_id: String,
}

/// Declared shape of `list_voucher_codes`' arguments.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct ListVoucherCodesInput {
    /// The project token (project ID) the pool belongs to.
    #[schemars(length(min = 1))]
    project_id: String,
    /// The pool's id, as given by list_voucher_pools.
    #[schemars(length(min = 1))]
    pool_id: String,
    /// How many matching codes to pass over before this page starts (paging offset). Defaults to 0.
    #[schemars(range(min = 0), extend("default" = 0))]
    skip: Option<u64>,
    /// How many codes to return, 1 to 1000. Defaults to 20.
    #[schemars(range(min = 1, max = 1000), extend("default" = 20))]
    count: Option<u64>,
    /// Only codes with this status: `available`, `assigned` or `redeemed`. Leave out for all codes.
    status: Option<StatusInput>,
}

/// The status filter's declared values.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum StatusInput {
    Available,
    Assigned,
    Redeemed,
}

/// Declared shape of `list_projects`' arguments: none.
#[derive(JsonSchema)]
pub struct NoInput {}

/// The checked arguments of `get_voucher_pool`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolArgs {
    pub project_id: String,
    pub pool_id: String,
}

/// The checked arguments of `list_voucher_codes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodesArgs {
    pub project_id: String,
    pub pool_id: String,
    pub skip: u64,
    pub count: u64,
    pub status: Option<CodeStatus>,
}

/// The paging a `list_voucher_codes` call asked for, echoed on failure:
/// the values given where they could be read as integers, the defaults
/// otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskedPaging {
    pub skip: i64,
    pub count: i64,
}

/// Reads and checks the `project_id` argument.
pub fn project_id(args: &RawArgs) -> Result<String, ArgError> {
    id(args, "project_id")
}

/// Reads and checks `get_voucher_pool`'s arguments.
pub fn pool_args(args: &RawArgs) -> Result<PoolArgs, ArgError> {
    Ok(PoolArgs {
        project_id: id(args, "project_id")?,
        pool_id: id(args, "pool_id")?,
    })
}

/// Reads and checks `list_voucher_codes`' arguments. The paging asked for
/// comes back whatever the outcome, for the failure envelope.
pub fn codes_args(args: &RawArgs) -> (AskedPaging, Result<CodesArgs, ArgError>) {
    let skip = integer(args, "skip");
    let count = integer(args, "count");
    let asked = AskedPaging {
        skip: skip.as_echo(DEFAULT_SKIP),
        count: count.as_echo(DEFAULT_COUNT),
    };
    let checked = (|| {
        let project_id = id(args, "project_id")?;
        let pool_id = id(args, "pool_id")?;
        let skip = skip.checked(
            DEFAULT_SKIP,
            0,
            MAX_SKIP,
            "skip must be an integer >= 0",
            "skip must be >= 0",
            "skip must be at most 9223372036854775807",
        )?;
        let count = count.checked(
            DEFAULT_COUNT,
            1,
            MAX_COUNT,
            "count must be an integer between 1 and 1000",
            "count must be between 1 and 1000",
            "count must be between 1 and 1000",
        )?;
        let status = status(args)?;
        Ok(CodesArgs {
            project_id,
            pool_id,
            skip: skip as u64,
            count: count as u64,
            status,
        })
    })();
    (asked, checked)
}

/// A present, non-null argument.
fn given<'a>(args: &'a RawArgs, name: &str) -> Option<&'a Value> {
    args.get(name).filter(|v| !v.is_null())
}

fn id(args: &RawArgs, name: &str) -> Result<String, ArgError> {
    let value = given(args, name).ok_or_else(|| {
        ArgError(format!(
            "{name} is required and must be a non-empty string (got nothing)"
        ))
    })?;
    let Value::String(text) = value else {
        return Err(ArgError(format!(
            "{name} must be a non-empty string (got {})",
            show(value)
        )));
    };
    if text.trim().is_empty() {
        return Err(ArgError(format!(
            "{name} must be a non-empty string, not blank (got {})",
            show(value)
        )));
    }
    if text == "." || text == ".." {
        return Err(ArgError(format!(
            "{name} must be an id, not a path segment like {text:?} (got {text:?})"
        )));
    }
    let chars = text.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(ArgError(format!(
            "{name} must be at most {MAX_ID_CHARS} characters long (got {chars} characters)"
        )));
    }
    Ok(text.clone())
}

fn status(args: &RawArgs) -> Result<Option<CodeStatus>, ArgError> {
    let Some(value) = given(args, "status") else {
        return Ok(None);
    };
    value
        .as_str()
        .and_then(CodeStatus::parse)
        .map(Some)
        .ok_or_else(|| {
            ArgError(format!(
                "status must be one of available, assigned, redeemed (got {})",
                show(value)
            ))
        })
}

/// An integer argument as read, before its range is checked.
#[derive(Clone, Debug, PartialEq)]
enum IntArg {
    Missing,
    /// Readable as an integer that fits in an i64.
    Value(i64),
    /// An integer too large for an i64, kept as written.
    Huge(String),
    /// Not an integer at all.
    Unreadable(String),
}

impl IntArg {
    fn as_echo(&self, default: i64) -> i64 {
        match self {
            IntArg::Value(v) => *v,
            _ => default,
        }
    }

    fn checked(
        &self,
        default: i64,
        min: i64,
        max: i64,
        type_rule: &str,
        low_rule: &str,
        high_rule: &str,
    ) -> Result<i64, ArgError> {
        match self {
            IntArg::Missing => Ok(default),
            IntArg::Value(v) if (min..=max).contains(v) => Ok(*v),
            IntArg::Value(v) if *v < min => Err(ArgError(format!("{low_rule} (got {v})"))),
            IntArg::Value(v) => Err(ArgError(format!("{high_rule} (got {v})"))),
            IntArg::Huge(text) if text.starts_with('-') => {
                Err(ArgError(format!("{low_rule} (got {text})")))
            }
            IntArg::Huge(text) => Err(ArgError(format!("{high_rule} (got {text})"))),
            IntArg::Unreadable(shown) => Err(ArgError(format!("{type_rule} (got {shown})"))),
        }
    }
}

fn integer(args: &RawArgs, name: &str) -> IntArg {
    let Some(value) = given(args, name) else {
        return IntArg::Missing;
    };
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_i64() {
                IntArg::Value(v)
            } else if n.is_u64() {
                IntArg::Huge(n.to_string())
            } else {
                float_arg(n.as_f64().unwrap_or(f64::NAN), value)
            }
        }
        Value::String(text) => {
            let t = text.trim();
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                match t.parse::<i64>() {
                    Ok(v) => IntArg::Value(v),
                    Err(_) => IntArg::Huge(shorten(t)),
                }
            } else {
                match t.parse::<f64>() {
                    Ok(f) if f.is_finite() && t.bytes().any(|b| b.is_ascii_digit()) => {
                        float_arg(f, value)
                    }
                    _ => IntArg::Unreadable(show(value)),
                }
            }
        }
        other => IntArg::Unreadable(show(other)),
    }
}

/// An integral float is an integer; anything else is not.
fn float_arg(f: f64, original: &Value) -> IntArg {
    if !f.is_finite() || f.fract() != 0.0 {
        return IntArg::Unreadable(show(original));
    }
    if (-9.2e18..=9.2e18).contains(&f) {
        IntArg::Value(f as i64)
    } else {
        IntArg::Huge(show(original))
    }
}

/// A received value, shown short, as JSON.
fn show(value: &Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    shorten(&text)
}

fn shorten(text: &str) -> String {
    crate::bloomreach::client::shorten(text, 80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> RawArgs {
        v.as_object().unwrap().clone()
    }

    fn codes(v: Value) -> (AskedPaging, Result<CodesArgs, ArgError>) {
        codes_args(&raw(v))
    }

    fn codes_err(v: Value) -> String {
        codes(v).1.unwrap_err().0
    }

    #[test]
    fn ids_are_required_strings_that_are_not_blank_or_dots() {
        assert_eq!(
            project_id(&raw(json!({"project_id": "abc"}))).unwrap(),
            "abc"
        );
        assert_eq!(
            project_id(&raw(json!({}))).unwrap_err().0,
            "project_id is required and must be a non-empty string (got nothing)"
        );
        assert_eq!(
            project_id(&raw(json!({"project_id": null}))).unwrap_err().0,
            "project_id is required and must be a non-empty string (got nothing)"
        );
        assert_eq!(
            project_id(&raw(json!({"project_id": 42}))).unwrap_err().0,
            "project_id must be a non-empty string (got 42)"
        );
        assert_eq!(
            project_id(&raw(json!({"project_id": ""}))).unwrap_err().0,
            "project_id must be a non-empty string, not blank (got \"\")"
        );
        assert_eq!(
            project_id(&raw(json!({"project_id": " \t"})))
                .unwrap_err()
                .0,
            "project_id must be a non-empty string, not blank (got \" \\t\")"
        );
        assert_eq!(
            pool_args(&raw(json!({"project_id": "p", "pool_id": ".."})))
                .unwrap_err()
                .0,
            "pool_id must be an id, not a path segment like \"..\" (got \"..\")"
        );
        assert!(pool_args(&raw(json!({"project_id": "p", "pool_id": "."}))).is_err());
        assert_eq!(
            project_id(&raw(json!({"project_id": "x".repeat(2000)})))
                .unwrap_err()
                .0,
            "project_id must be at most 1024 characters long (got 2000 characters)"
        );
    }

    #[test]
    fn ids_keep_unusual_characters_for_the_client_to_encode() {
        for id in ["a/b", "../x", "a b", "é\r\n", "%2F", "...", " padded "] {
            assert_eq!(project_id(&raw(json!({"project_id": id}))).unwrap(), id);
        }
    }

    #[test]
    fn paging_defaults_to_zero_and_twenty() {
        let (asked, args) = codes(json!({"project_id": "p", "pool_id": "q"}));
        assert_eq!(asked, AskedPaging { skip: 0, count: 20 });
        assert_eq!(
            args.unwrap(),
            CodesArgs {
                project_id: "p".into(),
                pool_id: "q".into(),
                skip: 0,
                count: 20,
                status: None
            }
        );
        let (_, args) = codes(
            json!({"project_id": "p", "pool_id": "q", "skip": null, "count": null, "status": null, "other": 1}),
        );
        assert_eq!(args.unwrap().count, 20);
    }

    #[test]
    fn integers_come_as_numbers_integral_floats_or_digit_strings() {
        for (skip, count) in [
            (json!(5), json!(20)),
            (json!(5.0), json!(20.0)),
            (json!("5"), json!("20")),
            (json!(" 5 "), json!("20.0")),
        ] {
            let (asked, args) =
                codes(json!({"project_id": "p", "pool_id": "q", "skip": skip, "count": count}));
            let args = args.unwrap();
            assert_eq!((args.skip, args.count), (5, 20));
            assert_eq!(asked, AskedPaging { skip: 5, count: 20 });
        }
    }

    #[test]
    fn each_rule_names_argument_rule_and_value() {
        let base = |extra: Value| {
            let mut v = json!({"project_id": "p", "pool_id": "q"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(
            codes_err(base(json!({"count": 5000}))),
            "count must be between 1 and 1000 (got 5000)"
        );
        assert_eq!(
            codes_err(base(json!({"count": 0}))),
            "count must be between 1 and 1000 (got 0)"
        );
        assert_eq!(
            codes_err(base(json!({"skip": -1}))),
            "skip must be >= 0 (got -1)"
        );
        assert_eq!(
            codes_err(base(json!({"skip": "-3"}))),
            "skip must be >= 0 (got -3)"
        );
        assert_eq!(
            codes_err(base(json!({"count": 2.5}))),
            "count must be an integer between 1 and 1000 (got 2.5)"
        );
        assert_eq!(
            codes_err(base(json!({"count": "lots"}))),
            "count must be an integer between 1 and 1000 (got \"lots\")"
        );
        assert_eq!(
            codes_err(base(json!({"count": true}))),
            "count must be an integer between 1 and 1000 (got true)"
        );
        assert_eq!(
            codes_err(base(json!({"skip": [1]}))),
            "skip must be an integer >= 0 (got [1])"
        );
        assert_eq!(
            codes_err(base(json!({"count": 18446744073709551615u64}))),
            "count must be between 1 and 1000 (got 18446744073709551615)"
        );
        assert_eq!(
            codes_err(base(json!({"count": "99999999999999999999999"}))),
            "count must be between 1 and 1000 (got 99999999999999999999999)"
        );
        assert_eq!(
            codes_err(base(json!({"count": 1e300}))),
            "count must be between 1 and 1000 (got 1e+300)"
        );
        assert_eq!(
            codes_err(base(json!({"skip": 18446744073709551615u64}))),
            "skip must be at most 9223372036854775807 (got 18446744073709551615)"
        );
        assert_eq!(
            codes_err(base(json!({"skip": "-99999999999999999999"}))),
            "skip must be >= 0 (got -99999999999999999999)"
        );
        assert_eq!(
            codes_err(base(json!({"count": "NaN"}))),
            "count must be an integer between 1 and 1000 (got \"NaN\")"
        );
        assert_eq!(
            codes_err(base(json!({"status": "used"}))),
            "status must be one of available, assigned, redeemed (got \"used\")"
        );
    }

    #[test]
    fn failures_echo_readable_paging_and_defaults_otherwise() {
        let (asked, _) =
            codes(json!({"project_id": "p", "pool_id": "q", "skip": 7, "count": 5000}));
        assert_eq!(
            asked,
            AskedPaging {
                skip: 7,
                count: 5000
            }
        );
        let (asked, _) = codes(json!({"project_id": "", "skip": "x", "count": "50"}));
        assert_eq!(asked, AskedPaging { skip: 0, count: 50 });
        let (asked, _) = codes(json!({"skip": -4, "count": 1e300}));
        assert_eq!(
            asked,
            AskedPaging {
                skip: -4,
                count: 20
            }
        );
    }

    #[test]
    fn the_first_broken_rule_is_reported() {
        assert_eq!(
            codes_err(json!({"pool_id": "", "count": 0})),
            "project_id is required and must be a non-empty string (got nothing)"
        );
        assert_eq!(
            codes_err(json!({"project_id": "p", "count": 0})),
            "pool_id is required and must be a non-empty string (got nothing)"
        );
    }

    #[test]
    fn status_accepts_exactly_the_three_names() {
        let (_, args) = codes(json!({"project_id": "p", "pool_id": "q", "status": "redeemed"}));
        assert_eq!(args.unwrap().status, Some(CodeStatus::Redeemed));
        let (_, args) = codes(json!({"project_id": "p", "pool_id": "q", "status": "Redeemed"}));
        assert_eq!(
            args.unwrap_err().0,
            "status must be one of available, assigned, redeemed (got \"Redeemed\")"
        );
        let (_, args) = codes(json!({"project_id": "p", "pool_id": "q", "status": 3}));
        assert_eq!(
            args.unwrap_err().0,
            "status must be one of available, assigned, redeemed (got 3)"
        );
    }

    #[test]
    fn long_values_are_shown_short() {
        let err = codes_err(json!({"project_id": "p", "pool_id": "q", "count": "z".repeat(500)}));
        assert!(err.chars().count() < 150, "{err}");
    }
}
