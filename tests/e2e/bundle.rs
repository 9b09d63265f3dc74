//! The MCP Bundle as Claude Desktop meets it: the manifest in `bundle/`
//! agrees with the server (version, tools, the settings it reads), and a
//! packed `.mcpb`, unpacked by the official `mcpb` CLI, starts from its
//! `mcp_config` with the values substituted as a host does: optional fields
//! left blank arrive as empty strings or as the literal `${user_config.NAME}`,
//! and neither may be a setting error.
//!
//! The packed-bundle test needs `MCPB_BUNDLE` (a `.mcpb` made by
//! `node bundle/pack.mjs`) and `MCPB` (the mcpb CLI); `.ci/run` sets both.
//! Without them it is skipped with a message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::binary::{clear_environment, command_for, run};
use crate::support::fake_api::{expected_pools, fake_api};
use crate::support::fake_loomi::FakeLoomi;
use crate::support::jsonrpc::{Session, Transcript};
use crate::support::{KEY_ID, PROJECT, SECRET, SERVER_VERSION, TOOL_NAMES};

fn manifest() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundle/manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("bundle/manifest.json"))
        .expect("the manifest is JSON")
}

/// The `NAME`s of every `${user_config.NAME}` in `text`.
fn user_config_refs(text: &str) -> Vec<String> {
    text.split("${user_config.")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn the_manifest_agrees_with_the_server() {
    let m = manifest();
    assert_eq!(m["manifest_version"], "0.3");
    assert_eq!(m["version"], SERVER_VERSION, "bundle and crate versions");
    assert_eq!(m["server"]["type"], "binary");
    assert_eq!(m["server"]["entry_point"], "server/bloomreach-vouchers-mcp");
    let config = &m["server"]["mcp_config"];
    assert_eq!(
        config["command"],
        "${__dirname}/server/bloomreach-vouchers-mcp"
    );
    assert_eq!(
        config["platform_overrides"]["win32"]["command"],
        "${__dirname}/server/bloomreach-vouchers-mcp.exe"
    );
    let platforms: BTreeSet<&str> = m["compatibility"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(platforms, BTreeSet::from(["darwin", "linux", "win32"]));

    let tools: Vec<&str> = m["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, TOOL_NAMES);

    // Every variable the bundle sets is one the binary reads, as --help
    // lists them; every field the form asks for is used, and only those.
    let help = String::from_utf8(run(&["--help"], &[]).stdout).unwrap();
    let env = config["env"].as_object().unwrap();
    let mut referenced = BTreeSet::new();
    for (name, value) in env {
        assert!(help.contains(&format!("[env: {name}")), "{name} unknown");
        let refs = user_config_refs(value.as_str().unwrap());
        assert_eq!(refs.len(), 1, "{name} = {value}");
        referenced.extend(refs);
    }
    let fields = m["user_config"].as_object().unwrap();
    let asked: BTreeSet<String> = fields.keys().cloned().collect();
    assert_eq!(referenced, asked);
    for (name, field) in fields {
        assert_eq!(
            field["required"], false,
            "{name}: every setting is optional"
        );
        let sensitive = field["sensitive"] == true;
        assert_eq!(
            sensitive,
            name == "api_secret" || name == "loomi_client_secret",
            "{name}: sensitive"
        );
    }
    assert_eq!(env["BLOOMREACH_API_SECRET"], "${user_config.api_secret}");
    // Errors name a setting by the label the form shows for it.
    for (variable, value) in env {
        let field = &user_config_refs(value.as_str().unwrap())[0];
        assert_eq!(
            fields[field]["title"].as_str(),
            bloomreach_vouchers_mcp::config::form_label(variable),
            "{variable}"
        );
    }
    assert_eq!(fields["demo"]["type"], "boolean");
    assert_eq!(fields["demo"]["default"], false);
    assert_eq!(env["BLOOMREACH_DEMO"], "${user_config.demo}");
    // The timeout's default depends on the way in: the form fixes none.
    assert_eq!(fields["timeout_secs"].get("default"), None);
}

/// The packed bundle and the mcpb CLI, or `None` (having said how to get
/// them) when either is missing.
fn packed_bundle() -> Option<(PathBuf, PathBuf)> {
    match (std::env::var_os("MCPB_BUNDLE"), std::env::var_os("MCPB")) {
        (Some(bundle), Some(mcpb)) => Some((bundle.into(), mcpb.into())),
        _ => {
            eprintln!(
                "SKIPPED: no packed bundle; run `node bundle/pack.mjs` and set MCPB_BUNDLE to the .mcpb it prints and MCPB to the mcpb CLI (.ci/run does)"
            );
            None
        }
    }
}

/// The command and environment of the unpacked bundle's `mcp_config`, with
/// `${__dirname}` and each `${user_config.NAME}` substituted from `values`;
/// a field without a value gets `blank` (an empty string, or the
/// placeholder left as it is, as some hosts do).
fn host_command(dir: &Path, values: &Value, blank: Blank) -> tokio::process::Command {
    host_command_with(dir, values, blank, &[])
}

/// [`host_command`] with `extra` variables beside the bundle's.
fn host_command_with(
    dir: &Path,
    values: &Value,
    blank: Blank,
    extra: &[(&str, &str)],
) -> tokio::process::Command {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let config = &manifest["server"]["mcp_config"];
    let dirname = dir.to_str().unwrap();
    let substitute = |text: &str| -> String {
        let mut out = text.replace("${__dirname}", dirname);
        for name in user_config_refs(text) {
            let placeholder = format!("${{user_config.{name}}}");
            let value = match values.get(&name) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => match blank {
                    Blank::Empty => String::new(),
                    Blank::Placeholder => placeholder.clone(),
                },
            };
            out = out.replace(&placeholder, &value);
        }
        out
    };
    let program = substitute(config["command"].as_str().unwrap());
    let env: Vec<(String, String)> = config["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), substitute(v.as_str().unwrap())))
        .collect();
    let mut env_refs: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env_refs.extend_from_slice(extra);
    let args: Vec<String> = config["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| substitute(a.as_str().unwrap()))
        .collect();
    command_for(Path::new(&program), &args, &env_refs)
}

#[derive(Clone, Copy, Debug)]
enum Blank {
    Empty,
    Placeholder,
}

async fn started(cmd: tokio::process::Command) -> Session {
    let mut session = Session::spawn(cmd, Transcript::Kept).expect("the bundle's binary starts");
    session.initialize("2025-11-25").await;
    session
}

async fn tool_names(session: &mut Session) -> Vec<String> {
    let listed = session.roundtrip(1, "tools/list", json!({})).await;
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn call(session: &mut Session, id: u64, name: &str, args: Value) -> Value {
    session.call_tool(id, name, args).await
}

#[tokio::test]
async fn the_packed_bundle_starts_from_its_mcp_config() {
    let Some((bundle, mcpb)) = packed_bundle() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vouchers-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let unpacked = clear_environment(&mut Command::new(&mcpb))
        .arg("unpack")
        .arg(&bundle)
        .arg(&dir)
        .output()
        .expect("mcpb runs");
    assert!(
        unpacked.status.success(),
        "mcpb unpack: {}",
        String::from_utf8_lossy(&unpacked.stderr)
    );

    // Every optional field left blank, both ways hosts send it.
    for blank in [Blank::Empty, Blank::Placeholder] {
        let mut session = started(host_command(&dir, &json!({}), blank)).await;
        assert_eq!(tool_names(&mut session).await, TOOL_NAMES, "{blank:?}");
        let answer = call(
            &mut session,
            2,
            "list_voucher_pools",
            json!({"project_id": "x"}),
        )
        .await;
        assert_eq!(answer["success"], false, "{blank:?}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("BLOOMREACH_API_KEY_ID"),
            "{blank:?}: {error}"
        );
        // Nothing set up: no empty success, but the ways in, by the form's
        // labels.
        let projects = call(&mut session, 3, "list_projects", json!({})).await;
        assert_eq!(projects["success"], false, "{blank:?}: {projects}");
        let error = projects["error"].as_str().unwrap();
        for named in ["\"Loomi Connect URL\"", "\"Demo data (no account needed)\""] {
            assert!(error.contains(named), "{blank:?}: {error}");
        }
        session.close_stdin().await;
        let (_, stderr) = session.finish().await;
        assert!(!stderr.contains("error:"), "{blank:?}: {stderr}");
    }

    // The form filled in: the values reach the server.
    let api = fake_api().await;
    let values = json!({
        "api_key_id": KEY_ID,
        "api_secret": SECRET,
        "api_base_url": api.uri(),
        "project_token": format!("{PROJECT}=Shop EU"),
        "timeout_secs": 20,
    });
    for blank in [Blank::Empty, Blank::Placeholder] {
        let mut session = started(host_command(&dir, &values, blank)).await;
        let projects = call(&mut session, 2, "list_projects", json!({})).await;
        assert_eq!(
            projects["data"],
            json!([{"id": PROJECT, "name": "Shop EU", "organization": null, "workspace": null}])
        );
        let pools = call(
            &mut session,
            3,
            "list_voucher_pools",
            json!({"project_id": PROJECT}),
        )
        .await;
        assert_eq!(pools["data"], expected_pools(), "{blank:?}: {pools}");
        session.close_stdin().await;
        let _ = session.finish().await;
    }

    // The demo switch: the sample data, nothing else needed.
    for blank in [Blank::Empty, Blank::Placeholder] {
        let mut session = started(host_command(&dir, &json!({"demo": true}), blank)).await;
        let projects = call(&mut session, 2, "list_projects", json!({})).await;
        assert_eq!(projects["data"][0]["id"], "demo", "{blank:?}: {projects}");
        let _ = session.finish().await;
    }

    // A field filled wrong: the server still starts, and every answer says
    // which field and what to put instead.
    let mut session = started(host_command(
        &dir,
        &json!({"loomi_url": "eu.connect.loomi.ai"}),
        Blank::Placeholder,
    ))
    .await;
    assert_eq!(tool_names(&mut session).await, TOOL_NAMES);
    let answer = call(&mut session, 2, "list_projects", json!({})).await;
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("\"Loomi Connect URL\"") && error.contains("https://eu.connect.loomi.ai"),
        "{answer}"
    );
    let _ = session.finish().await;

    // The Loomi Connect URL filled in: the first question answers with a
    // sign-in link, alone on its line.
    let loomi = FakeLoomi::start().await;
    let config_home = dir.join("config-home");
    let values = json!({"loomi_url": loomi.mcp_url()});
    let mut session = started(host_command_with(
        &dir,
        &values,
        Blank::Placeholder,
        &[("XDG_CONFIG_HOME", config_home.to_str().unwrap())],
    ))
    .await;
    let answer = call(
        &mut session,
        2,
        "list_voucher_pools",
        json!({"project_id": "p"}),
    )
    .await;
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error
            .lines()
            .any(|l| l.starts_with(&format!("http://{}/authorize?", loomi.addr))),
        "{answer}"
    );
    let _ = session.finish().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
