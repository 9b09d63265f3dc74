//! `call`: runs one tool from the command line and prints its envelope,
//! indented on a terminal and compact on a pipe. Exit status 0 on
//! success, 1 when the tool failed, 2 for a usage error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde_json::{Map, Value};

use super::CallArgs;
use crate::backend::RetryNotice;
use crate::tools::{shown_name, tool_names, words, VoucherServer};

pub async fn run_call(server: VoucherServer, call: CallArgs) -> ExitCode {
    let args = match call_arguments(call.json.as_deref(), &call.pairs) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let on_retry = |notice: &RetryNotice| eprintln!("{}", words::retry_notice(notice));
    let Some(outcome) = server.call(&call.tool, Some(args), &on_retry).await else {
        eprintln!(
            "error: unknown tool {}; the tools are {}",
            shown_name(&call.tool),
            tool_names().join(", ")
        );
        return ExitCode::from(2);
    };
    // The `call` subcommand owns stdout: no MCP session runs here.
    let rendered = render(&outcome.text, std::io::stdout().is_terminal());
    if writeln!(std::io::stdout().lock(), "{rendered}").is_err() {
        return ExitCode::FAILURE;
    }
    if outcome.is_error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Builds a tool's arguments from `--json` and `key=value` pairs (pairs win).
/// Values from pairs are strings; the tools read `count=5` as the integer 5.
pub fn call_arguments(json: Option<&str>, pairs: &[String]) -> Result<Map<String, Value>, String> {
    let mut args = match json.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(_)) => {
            return Err(
                "--json must be a JSON object, e.g. '{\"project_id\": \"demo\"}'".to_owned(),
            )
        }
        Some(Err(e)) => return Err(format!("--json is not valid JSON: {e}")),
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

/// An envelope's compact JSON text as it is for a pipe, indented for a
/// terminal. serde-transcode streams the text into the pretty printer, so
/// fields keep their order without a map that remembers it.
fn render(compact: &str, pretty: bool) -> String {
    if !pretty {
        return compact.to_owned();
    }
    let mut out = Vec::with_capacity(compact.len() * 2);
    let mut reader = serde_json::Deserializer::from_str(compact);
    let mut writer = serde_json::Serializer::pretty(&mut out);
    match serde_transcode::transcode(&mut reader, &mut writer) {
        Ok(()) => String::from_utf8(out).unwrap_or_else(|_| compact.to_owned()),
        Err(_) => compact.to_owned(),
    }
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
