//! `tools`: the tools with their arguments, for a person.

use std::io::Write;

use serde_json::Value;

use crate::tools::VoucherServer;

/// Prints each tool's name and title, then one line per argument.
pub fn print_tools(server: &VoucherServer, out: &mut impl Write) -> std::io::Result<()> {
    for tool in server.tools() {
        let title = tool.title.as_deref().unwrap_or_default();
        writeln!(out, "{} — {title}", tool.name)?;
        let input = &tool.input_schema;
        let required: Vec<&str> = input
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match input.get("properties").and_then(Value::as_object) {
            Some(props) if !props.is_empty() => {
                for (name, schema) in props {
                    let kind = schema["type"].as_str().unwrap_or("any");
                    let need = match schema.get("default") {
                        _ if required.contains(&name.as_str()) => "required".to_owned(),
                        Some(d) => format!("optional, default {d}"),
                        None => "optional".to_owned(),
                    };
                    let about = schema["description"].as_str().unwrap_or_default();
                    writeln!(out, "    {name} ({kind}, {need}): {about}")?;
                }
            }
            _ => writeln!(out, "    (no arguments)")?,
        }
        writeln!(out)?;
    }
    Ok(())
}
