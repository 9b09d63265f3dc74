//! Small readers and builders of JSON values that tests otherwise spell out
//! again and again: tool arguments, and the strings inside an answer.

use serde_json::{Map, Value};

/// Tool arguments: `v`, which must be a JSON object.
pub fn args(v: Value) -> Value {
    assert!(v.is_object());
    v
}

/// A JSON object as a `serde_json::Map`.
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The items of a JSON array of strings, in order.
pub fn strings(array: &Value) -> Vec<&str> {
    array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .collect()
}

/// [`strings`], sorted.
pub fn sorted_strings(array: &Value) -> Vec<&str> {
    let mut items = strings(array);
    items.sort_unstable();
    items
}

/// The string `field` of each object in a JSON array, in order (the ids of
/// listed pools, the names of listed tools).
pub fn field_of_each<'a>(array: &'a Value, field: &str) -> Vec<&'a str> {
    array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field} in {item}"))
        })
        .collect()
}
