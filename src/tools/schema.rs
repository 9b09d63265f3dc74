//! Output schemas for the tools, from the schemars derives, made portable.
//! Some MCP clients are strict about what they accept in a tool's schema:
//! no `$schema`, no `$ref`/`$defs` (every subschema is inlined), no
//! `format: uint64`-style annotations, no `type` arrays (`null`
//! alternatives, which the envelope needs, are spelled as `anyOf`).

use std::sync::Arc;

use rmcp::model::JsonObject;
use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Value};

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
    object.insert("type".into(), "object".into());
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
        map.retain(|key, value| key != "format" || !value.as_str().is_some_and(is_numeric_format));
        require_every_property(map);
        split_nullable_type(map);
        transform_subschemas(self, schema);
    }
}

/// "Any JSON value", type by type: some clients refuse a bare `true` or an empty schema.
fn any_value() -> JsonObject {
    let types = ["object", "array", "string", "number", "boolean", "null"];
    JsonObject::from_iter([("anyOf".into(), json!(types.map(|t| json!({"type": t}))))])
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
    let (kept, mut branch): (JsonObject, JsonObject) = std::mem::take(map)
        .into_iter()
        .partition(|(k, _)| matches!(k.as_str(), "description" | "title" | "default" | "examples"));
    *map = kept;
    branch.insert("type".into(), non_null[0].clone());
    if let Some(Value::Array(values)) = branch.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    map.insert("anyOf".into(), json!([branch, {"type": "null"}]));
}

/// Output records always carry every field (null where there is no value), so the schema says so.
fn require_every_property(map: &mut JsonObject) {
    if let Some(Value::Object(props)) = map.get("properties") {
        let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
        map.insert("required".into(), Value::Array(names));
    }
}

fn is_numeric_format(format: &str) -> bool {
    format.starts_with("int") || format.starts_with("uint") || matches!(format, "float" | "double")
}
