//! Tool arguments, each declared once: the value that declares an argument gives both its
//! schema in `tools/list` and its reader, so the published limits are the ones checked.
//!
//! Arguments are read from the raw JSON object rather than deserialized into typed structs, so
//! that every problem becomes an [`ArgError`] that names the argument, the rule and the value
//! received. Language models write integers as `20`, `20.0` or `"20"`; all three are accepted.
//! `null` means "left out"; a name the tool does not take is refused ([`unknown`]).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::backend::{BackendError, CodeStatus, Id, IdProblem, MAX_ID_CHARS};
use crate::text::shorten;

pub type RawArgs = Map<String, Value>;

/// How many characters of a received value an error shows.
const SHOWN_CHARS: usize = 80;

pub trait Declared: Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> Value;
    fn required(&self) -> bool {
        false
    }
}

/// The input schema for `args`: every argument, the ids required, no other name allowed.
pub fn input_schema(args: &[&dyn Declared]) -> Arc<Map<String, Value>> {
    let properties: Map<String, Value> =
        args.iter().map(|a| (a.name().into(), a.schema())).collect();
    let required: Vec<&str> = args
        .iter()
        .filter(|a| a.required())
        .map(|a| a.name())
        .collect();
    let mut schema =
        json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("made as an object"),
    }
}

/// A string argument of a `KIND` below, which gives its schema and whether it is required.
pub struct StrArg<const KIND: u8> {
    pub name: &'static str,
    pub about: &'static str,
}

impl<const KIND: u8> StrArg<KIND> {
    pub const fn new(name: &'static str, about: &'static str) -> Self {
        Self { name, about }
    }
}

const ID: u8 = 0;
const STATUS: u8 = 1;
const TEXT: u8 = 2;
const INSTANT: u8 = 3;

/// A required id.
pub type IdArg = StrArg<ID>;
/// The optional `status`: one of [`STATUS_NAMES`].
pub type StatusArg = StrArg<STATUS>;
/// An optional text: a non-empty string.
pub type TextArg = StrArg<TEXT>;
/// An optional instant: RFC 3339 text or Unix seconds.
pub type InstantArg = StrArg<INSTANT>;

impl<const KIND: u8> Declared for StrArg<KIND> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn schema(&self) -> Value {
        let about = self.about;
        match KIND {
            ID => json!({
                "type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "description": about
            }),
            STATUS => json!({"type": "string", "enum": STATUS_NAMES, "description": about}),
            TEXT => json!({"type": "string", "minLength": 1, "description": about}),
            _ => json!({"description": about, "anyOf": [
                {"type": "string", "description": "RFC 3339, e.g. 2026-07-01T00:00:00Z or 2026-07-01T02:00:00+02:00."},
                {"type": "number", "description": "Unix seconds."},
            ]}),
        }
    }
    fn required(&self) -> bool {
        KIND == ID
    }
}

pub const PROJECT_ID: IdArg = IdArg {
    name: "project_id",
    about: "The project token (project ID) the pool belongs to.",
};

pub const POOL_ID: IdArg = IdArg {
    name: "pool_id",
    about: "The pool's id, as given by list_voucher_pools.",
};

pub const POOL: [&dyn Declared; 2] = [&PROJECT_ID, &POOL_ID];

/// An integer argument's rule: its schema, description and error messages are all made from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntRule {
    pub name: &'static str,
    pub min: i64,
    /// `i64::MAX` where only the wire integer bounds it.
    pub max: i64,
    pub default: i64,
    pub about: &'static str,
}

pub const SKIP: IntRule = IntRule {
    name: "skip",
    min: 0,
    max: i64::MAX,
    default: 0,
    about: "How many matching codes to pass over before this page starts (paging offset)",
};

pub const COUNT: IntRule = IntRule {
    name: "count",
    min: 1,
    max: 1000,
    default: 20,
    about: "How many codes to return",
};

pub const LIMIT: IntRule = IntRule {
    name: "limit",
    min: 1,
    max: 1000,
    default: 100,
    about: "The most matching codes returned",
};

pub const MAX_SCAN: IntRule = IntRule {
    name: "max_scan",
    min: 1,
    max: 100_000,
    default: 10_000,
    about: "The most codes examined in this call",
};

impl Declared for IntRule {
    fn name(&self) -> &'static str {
        self.name
    }
    fn schema(&self) -> Value {
        let about = self.about;
        let mut schema = json!({"type": "integer", "default": self.default, "minimum": self.min});
        schema["description"] = if self.max == i64::MAX {
            json!(format!("{about}. Defaults to {}.", self.default))
        } else {
            schema["maximum"] = json!(self.max);
            json!(format!(
                "{about}, {} to {}. Defaults to {}.",
                self.min, self.max, self.default
            ))
        };
        schema
    }
}

pub const STATUS_NAMES: [&str; 3] = [
    CodeStatus::ALL[0].as_str(),
    CodeStatus::ALL[1].as_str(),
    CodeStatus::ALL[2].as_str(),
];

/// A broken argument rule: which argument, what rule, what was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    pub name: &'static str,
    pub problem: ArgProblem,
}

/// The rule an argument broke, with the value received as shown (short).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgProblem {
    /// A required id is missing or null.
    MissingId,
    /// An id that is not a string.
    IdNotString { got: String },
    /// An id string that breaks an id rule.
    BadId { problem: IdProblem, got: String },
    /// Not readable as an integer.
    NotInteger { rule: IntRule, got: String },
    /// An integer below the rule's minimum.
    TooLow { rule: IntRule, got: String },
    /// An integer above the rule's maximum.
    TooHigh { rule: IntRule, got: String },
    /// Not one of the allowed names.
    NotOneOf {
        allowed: &'static [&'static str],
        got: String,
    },
    /// A text argument that is not a non-empty string.
    NotText { got: String },
    /// Not readable as an instant.
    NotAnInstant { got: String },
    /// An `_after` bound that is not before its `_before` bound.
    NotBefore { other: &'static str, got: String },
    /// An argument the tool does not take (shown short), the names it takes, the closest one.
    Unknown {
        got: String,
        accepted: Vec<String>,
        closest: Option<String>,
    },
}

/// The first argument of `args` that is not `declared`, as an error that
/// names it, lists the names taken (in order) and suggests the closest.
pub fn unknown(args: &RawArgs, declared: &[&dyn Declared]) -> Option<ArgError> {
    let got = args
        .keys()
        .find(|k| !declared.iter().any(|a| a.name() == *k))?;
    let mut accepted: Vec<String> = declared.iter().map(|a| a.name().to_owned()).collect();
    accepted.sort();
    let closest = accepted
        .iter()
        .map(|a| (distance(&got.to_ascii_lowercase(), a), a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.clone());
    Some(ArgError {
        name: "arguments",
        problem: ArgProblem::Unknown {
            got: shorten(&crate::text::escape_controls(got), 60),
            accepted,
            closest,
        },
    })
}

/// The edit distance between two short names (longer ones are far apart).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().take(64).collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// An instant, in whole microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant(pub i64);

impl ArgError {
    fn new(name: &'static str, problem: ArgProblem) -> Self {
        Self { name, problem }
    }
}

/// A present, non-null argument.
fn given<'a>(args: &'a RawArgs, name: &str) -> Option<&'a Value> {
    args.get(name).filter(|v| !v.is_null())
}

pub fn id(args: &RawArgs, name: &'static str) -> Result<Id, ArgError> {
    let value = given(args, name).ok_or(ArgError::new(name, ArgProblem::MissingId))?;
    let fail = |problem| ArgError::new(name, problem);
    let Value::String(text) = value else {
        return Err(fail(ArgProblem::IdNotString { got: show(value) }));
    };
    Id::new(text.as_str()).map_err(|problem| {
        let got = show(value);
        fail(ArgProblem::BadId { problem, got })
    })
}

/// Reads and checks the ids of one pool: `project_id`, then `pool_id`.
pub fn pool_ids(args: &RawArgs) -> Result<(Id, Id), ArgError> {
    Ok((id(args, PROJECT_ID.name)?, id(args, POOL_ID.name)?))
}

pub fn status(args: &RawArgs) -> Result<Option<CodeStatus>, ArgError> {
    let Some(value) = given(args, "status") else {
        return Ok(None);
    };
    value
        .as_str()
        .and_then(CodeStatus::parse)
        .map(Some)
        .ok_or_else(|| {
            ArgError::new(
                "status",
                ArgProblem::NotOneOf {
                    allowed: &STATUS_NAMES,
                    got: show(value),
                },
            )
        })
}

pub fn text(args: &RawArgs, name: &'static str) -> Result<Option<String>, ArgError> {
    match given(args, name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(ArgError::new(
            name,
            ArgProblem::NotText { got: show(other) },
        )),
    }
}

/// Reads an optional instant: RFC 3339 with an offset or `Z`, or Unix seconds (number or text).
pub fn instant(args: &RawArgs, name: &'static str) -> Result<Option<Instant>, ArgError> {
    let Some(value) = given(args, name) else {
        return Ok(None);
    };
    let fail = || ArgError::new(name, ArgProblem::NotAnInstant { got: show(value) });
    let seconds = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => {
            let text = text.trim();
            match text.parse::<f64>() {
                Ok(seconds) if text.bytes().any(|b| b.is_ascii_digit()) => Some(seconds),
                _ => {
                    let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| fail())?;
                    let micros = parsed.unix_timestamp_nanos().div_euclid(1000);
                    return Ok(Some(Instant(i64::try_from(micros).map_err(|_| fail())?)));
                }
            }
        }
        _ => None,
    };
    Ok(Some(Instant(seconds.and_then(micros).ok_or_else(fail)?)))
}

/// Unix seconds as whole microseconds.
pub fn micros(seconds: f64) -> Option<i64> {
    let us = (seconds * 1_000_000.0).round();
    (us.is_finite() && us.abs() < 9.0e18).then_some(us as i64)
}

/// An integer argument as read, before its range is checked.
#[derive(Clone, Debug, PartialEq)]
pub struct IntArg {
    rule: IntRule,
    read: IntRead,
}

#[derive(Clone, Debug, PartialEq)]
enum IntRead {
    Missing,
    Value(i64),
    /// An integer too large for an i64, kept as written.
    Huge(String),
    /// Not an integer at all, shown.
    Unreadable(String),
}

impl IntArg {
    /// The value to echo on failure: the one given if read as an integer, else the default.
    pub fn echo(&self) -> i64 {
        match self.read {
            IntRead::Value(v) => v,
            _ => self.rule.default,
        }
    }

    /// The value, checked against the rule (the default when missing).
    pub fn checked(&self) -> Result<i64, ArgError> {
        let rule = self.rule;
        let fail = |problem| Err(ArgError::new(rule.name, problem));
        let (low, got) = match &self.read {
            IntRead::Missing => return Ok(rule.default),
            IntRead::Value(v) if (rule.min..=rule.max).contains(v) => return Ok(*v),
            IntRead::Value(v) => (*v < rule.min, v.to_string()),
            IntRead::Huge(text) => (text.starts_with('-'), text.clone()),
            IntRead::Unreadable(shown) => {
                let got = shown.clone();
                return fail(ArgProblem::NotInteger { rule, got });
            }
        };
        fail(if low {
            ArgProblem::TooLow { rule, got }
        } else {
            ArgProblem::TooHigh { rule, got }
        })
    }
}

pub fn integer(args: &RawArgs, rule: IntRule) -> IntArg {
    let read = given(args, rule.name).map_or(IntRead::Missing, read_integer);
    IntArg { rule, read }
}

fn read_integer(value: &Value) -> IntRead {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(v) => IntRead::Value(v),
            None if n.is_u64() => IntRead::Huge(n.to_string()),
            None => float_read(n.as_f64().unwrap_or(f64::NAN), value),
        },
        Value::String(text) => {
            let t = text.trim();
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                let huge = |_| IntRead::Huge(shorten(t, SHOWN_CHARS));
                return t.parse::<i64>().map_or_else(huge, IntRead::Value);
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() && t.bytes().any(|b| b.is_ascii_digit()) => {
                    float_read(f, value)
                }
                _ => IntRead::Unreadable(show(value)),
            }
        }
        other => IntRead::Unreadable(show(other)),
    }
}

/// An integral float is an integer; anything else is not.
fn float_read(f: f64, original: &Value) -> IntRead {
    if !f.is_finite() || f.fract() != 0.0 {
        return IntRead::Unreadable(show(original));
    }
    if (-9.2e18..=9.2e18).contains(&f) {
        IntRead::Value(f as i64)
    } else {
        IntRead::Huge(show(original))
    }
}

/// A received value, shown short, as JSON.
pub fn show(value: &Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    shorten(&text, SHOWN_CHARS)
}

/// Why a call failed: an argument broke a rule, or the backend failed (worded in `words.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Argument(ArgError),
    Backend(BackendError),
}

impl From<ArgError> for Failure {
    fn from(e: ArgError) -> Self {
        Self::Argument(e)
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Self::Backend(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> RawArgs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ids_are_read_as_checked_ids() {
        assert_eq!(
            id(&raw(json!({"project_id": "abc"})), "project_id")
                .unwrap()
                .as_str(),
            "abc"
        );
        assert_eq!(
            id(&raw(json!({"project_id": null})), "project_id").unwrap_err(),
            ArgError::new("project_id", ArgProblem::MissingId)
        );
        assert_eq!(
            id(&raw(json!({"pool_id": ".."})), "pool_id").unwrap_err(),
            ArgError::new(
                "pool_id",
                ArgProblem::BadId {
                    problem: IdProblem::DotSegment,
                    got: "\"..\"".into()
                }
            )
        );
    }

    #[test]
    fn integers_come_as_numbers_integral_floats_or_digit_strings() {
        for value in [json!(5), json!(5.0), json!("5"), json!(" 5 "), json!("5.0")] {
            let arg = integer(&raw(json!({ "skip": value })), SKIP);
            assert_eq!(arg.checked(), Ok(5));
            assert_eq!(arg.echo(), 5);
        }
        let missing = integer(&raw(json!({"count": null})), COUNT);
        assert_eq!((missing.checked(), missing.echo()), (Ok(20), 20));
    }

    #[test]
    fn instants_are_rfc3339_with_any_offset_or_unix_seconds() {
        let read = |v: Value| instant(&raw(json!({ "t": v })), "t");
        let same = Some(Instant(1_718_000_000_500_000));
        assert_eq!(read(json!("2024-06-10T06:13:20.5Z")), Ok(same));
        assert_eq!(read(json!("2024-06-10T08:13:20.5+02:00")), Ok(same));
        assert_eq!(read(json!("2024-06-10T01:13:20.5-05:00")), Ok(same));
        assert_eq!(read(json!(1_718_000_000.5)), Ok(same));
        assert_eq!(read(json!("1718000000.5")), Ok(same));
        assert_eq!(
            read(json!(1_718_000_000)),
            Ok(Some(Instant(1_718_000_000_000_000)))
        );
        assert_eq!(read(json!(null)), Ok(None));
        for bad in [
            json!("yesterday"),
            json!("2024-06-10"),
            json!("2024-06-10T06:13:20"),
            json!(true),
            json!("NaN"),
            json!(1e300),
        ] {
            assert!(
                matches!(
                    read(bad.clone()),
                    Err(ArgError {
                        problem: ArgProblem::NotAnInstant { .. },
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unreadable_integers_echo_the_default() {
        let arg = integer(&raw(json!({"count": 1e300})), COUNT);
        assert_eq!(arg.echo(), 20);
        assert_eq!(
            arg.checked().unwrap_err().problem,
            ArgProblem::TooHigh {
                rule: COUNT,
                got: "1e+300".into()
            }
        );
        let arg = integer(&raw(json!({"skip": -4})), SKIP);
        assert_eq!(arg.echo(), -4);
    }
}
