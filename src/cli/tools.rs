//! `tools`: the tools with their arguments, for a person.

use std::io::Write;

use serde_json::Value;

use crate::tools::VoucherServer;

/// Prints each tool's name and title, then one line per argument.
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
