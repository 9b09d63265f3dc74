//! The command line for people: `tools` lists the tools, `call` runs one
//! and prints its envelope. Both go through the same server code as MCP.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};

use crate::tools::VoucherServer;

/// Prints the tools with their arguments, for a person.
pub fn print_tools(server: &VoucherServer, out: &mut impl Write) -> std::io::Result<()> {
    for tool in server.tools() {
        writeln!(
            out,
            "{} — {}",
            tool.name,
            tool.title.as_deref().unwrap_or_default()
        )?;
        let required: Vec<&str> = tool
            .input_schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties = tool
            .input_schema
            .get("properties")
            .and_then(Value::as_object);
        match properties {
            Some(props) if !props.is_empty() => {
                for (name, schema) in props {
                    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
                    let need = if required.contains(&name.as_str()) {
                        "required".to_owned()
                    } else {
                        match schema.get("default") {
                            Some(d) => format!("optional, default {d}"),
                            None => "optional".to_owned(),
                        }
                    };
                    let about = schema
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    writeln!(out, "    {name} ({kind}, {need}): {about}")?;
                }
            }
            _ => writeln!(out, "    (no arguments)")?,
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Builds a tool's arguments from `--json` and `key=value` pairs (pairs win).
/// Values from pairs are strings; the tools read `count=5` as the integer 5.
pub fn call_arguments(json: Option<&str>, pairs: &[String]) -> Result<Map<String, Value>, String> {
    let mut args = match json {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(
                    "--json must be a JSON object, e.g. '{\"project_id\": \"demo\"}'".to_owned(),
                )
            }
            Err(e) => return Err(format!("--json is not valid JSON: {e}")),
        },
    };
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("arguments are key=value pairs; {pair:?} has no '='"))?;
        if key.is_empty() {
            return Err(format!("argument {pair:?} has no name before '='"));
        }
        args.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(args)
}

/// Formats an envelope's compact JSON text: as it is for a pipe, indented
/// for a terminal. Indenting works on the text, so fields keep their order.
pub fn render(compact: &str, pretty: bool) -> String {
    if !pretty {
        return compact.to_owned();
    }
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if matches!(chars.peek(), Some('}') | Some(']')) {
                    out.push(chars.next().unwrap_or(' '));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether stdout is a terminal (so output should be pretty).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_are_strings_and_win_over_json() {
        let args = call_arguments(
            Some(r#"{"project_id": "x", "count": 5}"#),
            &[
                "project_id=demo".into(),
                "skip=10".into(),
                "note=a=b".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            Value::Object(args),
            json!({"project_id": "demo", "count": 5, "skip": "10", "note": "a=b"})
        );
    }

    #[test]
    fn bad_arguments_are_explained() {
        assert_eq!(
            call_arguments(None, &["project_id".into()]).unwrap_err(),
            "arguments are key=value pairs; \"project_id\" has no '='"
        );
        assert!(call_arguments(Some("[1]"), &[])
            .unwrap_err()
            .starts_with("--json must be a JSON object"));
        assert!(call_arguments(Some("{"), &[])
            .unwrap_err()
            .starts_with("--json is not valid JSON"));
    }

    #[test]
    fn render_is_compact_or_pretty_in_field_order() {
        let compact = r#"{"success":true,"data":[{"a":"x:, {[\"]}","b":[]}],"error":null,"e":{}}"#;
        assert_eq!(render(compact, false), compact);
        let pretty = render(compact, true);
        assert_eq!(
            pretty,
            "{\n  \"success\": true,\n  \"data\": [\n    {\n      \"a\": \"x:, {[\\\"]}\",\n      \"b\": []\n    }\n  ],\n  \"error\": null,\n  \"e\": {}\n}"
        );
        let reparsed: Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(reparsed, serde_json::from_str::<Value>(compact).unwrap());
        assert_eq!(reparsed["data"][0]["a"], json!("x:, {[\"]}"));
    }
}
