//! `doctor`: the setup checked end to end, one line per step (or one JSON report with `--json`),
//! stopping at the first step that fails. What it prints holds no token, secret, voucher code or
//! customer data: counts, names of projects and pools, tool and argument names, times.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};

use crate::backend::loomi::{CredentialsFile, LoomiClient, StoreProblem};
use crate::backend::{
    AnswerProblem, Backend, BackendError, CodesQuery, Id, RetryNotice, RetryReason,
};
use crate::config::{env, given, Config, Settings, DEFAULT_BASE_URL};
use crate::tools::{words, VoucherServer};

/// A step's detail: what was found, or what to fix.
type Outcome = Result<String, String>;

#[derive(Clone, Debug, Serialize)]
struct Step {
    name: &'static str,
    ok: bool,
    ms: u64,
    detail: String,
}

/// How one of our tools is served by Loomi's, for the report.
#[derive(Clone, Debug, Serialize)]
struct Mapped {
    tool: String,
    arguments: Vec<String>,
    required: Vec<String>,
}

#[derive(Default)]
struct Report {
    steps: Vec<Step>,
    loomi_tools: Option<BTreeMap<&'static str, Mapped>>,
    /// Printed as the steps come, unless the report is printed as JSON.
    lines: bool,
}

impl Report {
    /// Records a step; `false` when it failed (the run stops there).
    fn step(&mut self, name: &'static str, started: Instant, outcome: Outcome) -> bool {
        let ms = started.elapsed().as_millis() as u64;
        let ok = outcome.is_ok();
        let (Ok(detail) | Err(detail)) = outcome;
        let detail = crate::text::escape_controls(&detail);
        if self.lines {
            let mark = if ok { "[ok]  " } else { "[FAIL]" };
            println!("{mark} {name}: {detail} ({ms} ms)");
        }
        self.steps.push(Step {
            name,
            ok,
            ms,
            detail,
        });
        ok
    }
}

/// The settings that are set, by variable; secrets and paths only as
/// "set", URLs and numbers as given.
fn settings_set(s: &Settings) -> Vec<String> {
    let base_url =
        Some(s.api_base_url.clone()).filter(|u| given(Some(u)) != Some(DEFAULT_BASE_URL));
    let value = |v: &str, raw: &Option<String>| {
        given(raw.as_deref()).map(|u| format!("{v}={}", bare_url(u)))
    };
    let set = |v: &str, raw: &Option<String>| given(raw.as_deref()).map(|_| format!("{v} (set)"));
    [
        value(env::LOOMI_URL, &s.loomi_url),
        value(env::BASE_URL, &base_url),
        set(env::KEY_ID, &s.api_key_id),
        set(env::SECRET, &s.api_secret),
        value(env::TIMEOUT, &s.timeout_secs),
        set(env::PROJECT_TOKEN, &s.project_token),
        set(env::CA_FILE, &s.ca_file),
        set(env::LOOMI_CLIENT_ID, &s.loomi_client_id),
        set(env::LOOMI_CLIENT_SECRET, &s.loomi_client_secret),
        value(env::LOOMI_CLIENT_METADATA_URL, &s.loomi_client_metadata_url),
        set(env::CREDENTIALS_FILE, &s.credentials_file),
        value(env::DEMO, &s.demo),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A URL or other value as the report shows it: no credentials, no query
/// (either could hold a secret), at most 200 characters.
fn bare_url(raw: &str) -> String {
    let shown = crate::config::shown_url(raw);
    match shown.find(['?', '#']) {
        Some(at) => format!("{}?…", &shown[..at]),
        None => shown,
    }
}

/// `doctor [--json]`.
pub async fn run_doctor(settings: &Settings, config: &Config, as_json: bool) -> ExitCode {
    let backend = config.backend();
    let mut report = Report {
        lines: !as_json,
        ..Report::default()
    };
    check(&mut report, settings, config, &backend).await;
    let ok = report.steps.iter().all(|s| s.ok);
    if as_json {
        let out = json!({
            "version": crate::SERVER_VERSION,
            "backend": backend.kind(),
            "steps": report.steps,
            "loomi_tools": report.loomi_tools,
        });
        println!("{out}");
    } else if ok {
        println!("Every step passed.");
    } else {
        println!(
            "A step failed; what it says is what to fix. To report it, run `bloomreach-vouchers-mcp doctor --json` and attach its output: it holds no token, secret or voucher code."
        );
    }
    ExitCode::from(u8::from(!ok))
}

async fn check(report: &mut Report, settings: &Settings, config: &Config, backend: &Backend) {
    let started = Instant::now();
    let (name, target) = match backend {
        Backend::Loomi(client) => ("backend Loomi Connect at ", Some(client.url().clone())),
        Backend::Rest(_) => ("backend Bloomreach API at ", Some(config.base_url.clone())),
        Backend::Demo(_) => ("backend demo data", None),
        Backend::Unconfigured | Backend::Broken(_) => ("no backend", None),
    };
    let url: String = target.iter().map(|url| bare_url(url.as_str())).collect();
    let set = settings_set(settings).join(", ");
    let set = if set.is_empty() { "nothing" } else { &set };
    let secs = config.timeout.as_secs();
    let detail = format!("{name}{url}; timeout {secs} s; set: {set}");
    let outcome = match backend.unusable() {
        Some(e) => Err(format!("{detail}. {}", words::backend_error(&e))),
        None => Ok(detail),
    };
    if !report.step("settings", started, outcome) {
        return;
    }

    let started = Instant::now();
    if let Some(url) = &target {
        let proxy = match config.network.proxy_for(url) {
            Some(p) => format!("through the proxy {} (from {})", p.shown(), p.variable()),
            None => "directly (no proxy)".to_owned(),
        };
        let roots = match config.network.extra_roots.len() {
            0 => "the system's certificate store".to_owned(),
            n => format!(
                "the system's certificate store and {n} certificate(s) of {}",
                env::CA_FILE
            ),
        };
        let host = url.host_str().unwrap_or_default();
        let detail = format!("{host} is reached {proxy}, trusting {roots}");
        report.step("network", started, Ok(detail));
    }

    if let Backend::Loomi(client) = backend {
        if !loomi_steps(report, client).await {
            return;
        }
    }

    data_steps(report, backend, config).await;
}

async fn loomi_steps(report: &mut Report, client: &LoomiClient) -> bool {
    let started = Instant::now();
    let outcome = stored_login(client.credentials_file(), client.url().as_str());
    if !report.step("login", started, outcome) {
        return false;
    }
    let started = Instant::now();
    let facts = client.server_facts().await;
    let outcome = match &facts {
        Ok(f) => Ok(format!(
            "protocol {}, server {} {}, {} tools",
            f.protocol,
            f.name.as_deref().unwrap_or("(no name given)"),
            f.version.as_deref().unwrap_or(""),
            f.tools.names().count()
        )),
        Err(e) => Err(words::backend_error(e)),
    };
    report.step("session", started, outcome);
    let Ok(facts) = facts else { return false };
    let started = Instant::now();
    // Our tools that a need serves, joined by '/'.
    let ours = |need: &str| match need {
        "projects" => "list_projects",
        "pools" => "list_voucher_pools",
        "pool" => "get_voucher_pool",
        _ => "list_voucher_codes/get_voucher_pool_stats/find_voucher_codes",
    };
    let mut mapped = BTreeMap::new();
    let mut lines = Vec::new();
    let mut problem = None;
    for choice in facts.tools.choices() {
        if let Some(p) = choice.problem {
            problem.get_or_insert(words::backend_error(&p));
            continue;
        }
        let (our, tool) = (ours(choice.need), choice.tools.join(" then "));
        let args = choice.arguments.join(", ");
        lines.push(format!("{our} <- {tool}({args})"));
        let entry = Mapped {
            tool,
            arguments: choice.arguments,
            required: choice.required,
        };
        mapped.extend(our.split('/').map(|name| (name, entry.clone())));
    }
    let status = if facts.tools.codes_take_status() {
        "list_voucher_codes declares status"
    } else {
        "list_voucher_codes declares no status: counts and status filters are made by reading the pages"
    };
    report.loomi_tools = Some(mapped);
    let outcome = problem.map_or(Ok(format!("{}; {status}", lines.join("; "))), Err);
    report.step("tools", started, outcome)
}

/// The stored login: present, for this URL, usable.
fn stored_login(file: &CredentialsFile, url: &str) -> Outcome {
    // Worded without the file's path, which names the user.
    let login = file
        .load()
        .map_err(|problem| match problem {
            StoreProblem::Io { detail, .. } | StoreProblem::Unreadable { detail, .. } => {
                format!("the stored login could not be read ({detail})")
            }
            StoreProblem::Locked { waited, .. } => format!(
                "another process held the stored login's lock for over {} s",
                waited.as_secs()
            ),
        })?
        .ok_or("no login is stored: run `bloomreach-vouchers-mcp login` (or ask the assistant anything: the answer gives a sign-in link)")?;
    if login.mcp_url != url {
        return Err(format!(
            "the stored login is for {}, not for the configured {}: run `bloomreach-vouchers-mcp login`",
            bare_url(&login.mcp_url),
            bare_url(url)
        ));
    }
    let renews = match login.refresh_token() {
        Some(_) => "renews itself",
        None => "does not renew itself",
    };
    let expiry = login
        .expires_at()
        .and_then(|at| crate::time::rfc3339_utc(at as f64))
        .map(|at| format!("access token until {at}"))
        .unwrap_or_else(|| "no stated expiry".to_owned());
    if !login.serves(url, SystemTime::now()) {
        return Err(format!(
            "the stored login has expired and cannot be renewed ({expiry}): run `bloomreach-vouchers-mcp login`"
        ));
    }
    Ok(format!("for {}; {expiry}; {renews}", bare_url(url)))
}

/// An observer that keeps why each wait happened, for the pacing step.
fn heard(notices: &Mutex<Vec<RetryReason>>) -> impl Fn(&RetryNotice) + Send + Sync + '_ {
    move |n: &RetryNotice| {
        if let Ok(mut seen) = notices.lock() {
            seen.push(n.reason.clone());
        }
    }
}

/// Calls a tool as an assistant would; its envelope, or its error words.
async fn call(
    server: &VoucherServer,
    name: &str,
    args: Value,
    notices: &Mutex<Vec<RetryReason>>,
) -> Result<Value, String> {
    let outcome = server
        .call(name, args.as_object().cloned(), &heard(notices))
        .await
        .ok_or_else(|| format!("no tool {name}"))?;
    let envelope: Value = serde_json::from_str(&outcome.text).map_err(|e| e.to_string())?;
    if envelope["success"] == true {
        return Ok(envelope);
    }
    let error = envelope["error"].as_str();
    Err(error.unwrap_or("failed without a reason").to_owned())
}

async fn data_steps(report: &mut Report, backend: &Backend, config: &Config) {
    let server = VoucherServer::new(backend.clone(), config.projects.clone());
    let notices = Mutex::new(Vec::new());

    let started = Instant::now();
    let projects = call(&server, "list_projects", json!({}), &notices).await;
    let project = match &projects {
        Ok(e) => e["data"][0]["id"].as_str().unwrap_or_default().to_owned(),
        Err(_) => String::new(),
    };
    let outcome = projects.and_then(|e| {
        let list = e["data"].as_array().cloned().unwrap_or_default();
        let organizations: BTreeSet<&str> = list
            .iter()
            .filter_map(|p| p["organization"].as_str())
            .collect();
        match list.first() {
            None => Err(format!(
                "no project is listed: set {} (the \"Projects\" field) to your project token",
                env::PROJECT_TOKEN
            )),
            Some(p) => Ok(format!(
                "{} project(s) in {} organization(s); the first is {:?}",
                list.len(),
                organizations.len(),
                p["name"].as_str().unwrap_or_default()
            )),
        }
    });
    if !report.step("projects", started, outcome) {
        return;
    }

    let started = Instant::now();
    let args = json!({"project_id": project});
    let pools = call(&server, "list_voucher_pools", args, &notices).await;
    let pools_done = Instant::now();
    let first_pool = pools.as_ref().ok().and_then(|e| {
        let list = e["data"].as_array()?;
        let pool = list.iter().find(|p| p["total"].as_u64().unwrap_or(0) > 0)?;
        let text = |key: &str| pool[key].as_str().unwrap_or_default().to_owned();
        Some((text("id"), text("name")))
    });
    let outcome = pools.map(|e| e["data"].as_array().map_or(0, Vec::len));
    let outcome = outcome.map(|n| format!("{n} pool(s) in the first project"));
    if !report.step("pools", started, outcome) {
        return;
    }
    let Some((pool, pool_name)) = first_pool else {
        let done = "no pool of the first project holds codes; nothing more to read".to_owned();
        report.step("codes", Instant::now(), Ok(done));
        return;
    };

    // The codes are read from the backend itself, so that a failure is
    // worded without the excerpt of the answer a tool would quote: a page
    // of codes is the one thing this report must never show.
    let started = Instant::now();
    let on_retry = heard(&notices);
    let codes = match (Id::new(project.as_str()), Id::new(pool.as_str())) {
        (Ok(project_id), Ok(pool_id)) => backend
            .list_codes(
                &CodesQuery {
                    project_id: &project_id,
                    pool_id: &pool_id,
                    skip: 0,
                    count: 5,
                    status: None,
                },
                &on_retry,
            )
            .await
            .map_err(|e| words::backend_error(&without_excerpt(e))),
        _ => Err("the first pool's id cannot be asked for".to_owned()),
    };
    let codes_done = Instant::now();
    let outcome = codes.map(|page| {
        let mut statuses: Vec<&str> = page.codes.iter().map(|c| c.status.as_ref()).collect();
        statuses.sort_unstable();
        statuses.dedup();
        if statuses.is_empty() {
            statuses.push("none");
        }
        let matched = page.matched.map_or("an unknown number".to_owned(), |m| m.to_string());
        format!(
            "{} code(s) of pool {pool_name:?} read (statuses: {}); the pool counts {matched} in all",
            page.codes.len(),
            statuses.join(", ")
        )
    });
    if !report.step("codes", started, outcome) {
        return;
    }

    if let Backend::Loomi(_) = backend {
        let mut seen = notices.lock().map(|n| n.clone()).unwrap_or_default();
        seen.retain(|r| matches!(r, RetryReason::RateLimited));
        let limited = seen.len();
        let gap = codes_done.duration_since(pools_done).as_millis();
        let detail = format!(
            "{gap} ms between the last two calls' answers (one call starts every 1.1 s); {limited} rate-limit answer(s) seen"
        );
        report.step("pacing", Instant::now(), Ok(detail));
    }
}

/// `e` without the excerpts of the answer it quotes, and without the
/// values a decoder's message may quote (`invalid type: string "..."`).
fn without_excerpt(mut e: BackendError) -> BackendError {
    if let BackendError::Unexpected {
        problem: AnswerProblem::MissingField { detail },
        ..
    } = &mut e
    {
        if let Some(at) = detail.find(['`', '"']) {
            *detail = format!("{}…", detail[..at].trim_end());
        }
    }
    if let BackendError::Unexpected { excerpt, .. }
    | BackendError::Status { excerpt, .. }
    | BackendError::Server { excerpt, .. } = &mut e
    {
        *excerpt = None;
    }
    e
}
