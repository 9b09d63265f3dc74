//! Output schemas for the tools, from the schemars derives, made portable
//! (input schemas come from the argument declarations, `args.rs`).
//!
//! Some MCP clients are strict about what they accept in a tool's schema:
//! no `$schema`, no `$ref`/`$defs` (every subschema is inlined), no
//! `format: uint64`-style annotations, no `type` arrays (`null`
//! alternatives, which the envelope needs, are spelled as `anyOf`).

use std::sync::Arc;

use rmcp::model::JsonObject;
use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

/// The portable schema of `T`.
pub fn schema_for<T: JsonSchema>() -> Arc<JsonObject> {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    let mut root = generator.into_root_schema_for::<T>();
    for key in ["title", "description", "$defs", "definitions"] {
        root.remove(key);
    }
    Portable.transform(&mut root);
    let mut object = match root.to_value() {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    };
    object.insert("type".into(), Value::String("object".into()));
    Arc::new(object)
}

/// Cleans one schema, then every subschema below it.
struct Portable;

impl Transform for Portable {
    fn transform(&mut self, schema: &mut Schema) {
        if schema.as_bool() == Some(true) || schema.as_object().is_some_and(|m| m.is_empty()) {
            *schema = Schema::from(any_value());
            return;
        }
        let Some(map) = schema.as_object_mut() else {
            return;
        };
        map.remove("$schema");
        if map
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(is_numeric_format)
        {
            map.remove("format");
        }
        require_every_property(map);
        split_nullable_type(map);
        transform_subschemas(self, schema);
    }
}

/// "Any JSON value", spelled out type by type: some clients refuse a bare
/// `true` or an empty schema.
fn any_value() -> JsonObject {
    let branches = ["object", "array", "string", "number", "boolean", "null"]
        .iter()
        .map(|t| {
            let mut branch = JsonObject::new();
            branch.insert("type".into(), Value::String((*t).into()));
            Value::Object(branch)
        })
        .collect();
    let mut map = JsonObject::new();
    map.insert("anyOf".into(), Value::Array(branches));
    map
}

/// `type: [X, "null"]` becomes `anyOf: [{type: X, ...}, {type: "null"}]`,
/// which single-`type` dialects read; the keywords that belong to X move
/// into its branch, the description stays outside.
fn split_nullable_type(map: &mut JsonObject) {
    let Some(Value::Array(types)) = map.get("type") else {
        return;
    };
    let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    if non_null.len() != 1 || non_null.len() == types.len() {
        return;
    }
    map.remove("type");
    let mut branch = JsonObject::new();
    branch.insert("type".into(), non_null[0].clone());
    let keys: Vec<String> = map
        .keys()
        .filter(|k| !matches!(k.as_str(), "description" | "title" | "default" | "examples"))
        .cloned()
        .collect();
    for key in keys {
        if let Some(v) = map.remove(&key) {
            branch.insert(key, v);
        }
    }
    if let Some(Value::Array(values)) = branch.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    let mut null = JsonObject::new();
    null.insert("type".into(), Value::String("null".into()));
    map.insert(
        "anyOf".into(),
        Value::Array(vec![Value::Object(branch), Value::Object(null)]),
    );
}

/// Output records always carry every field (null where there is no value),
/// so the schema says so.
fn require_every_property(map: &mut JsonObject) {
    if let Some(Value::Object(props)) = map.get("properties") {
        let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
        map.insert("required".into(), Value::Array(names));
    }
}

fn is_numeric_format(format: &str) -> bool {
    format.starts_with("int")
        || format.starts_with("uint")
        || format == "float"
        || format == "double"
}
