//! `doctor`: the setup checked end to end, one line per step (or one JSON
//! report with `--json`), stopping at the first step that fails. What it
//! prints holds no token, secret, voucher code or customer data: counts,
//! names of projects and pools, tool and argument names, times.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};

use crate::backend::loomi::{Choice, CredentialsFile, LoomiClient, StoreProblem};
use crate::backend::{
    AnswerProblem, Backend, BackendError, CodesQuery, Id, RetryNotice, RetryReason,
};
use crate::config::{env, given, Config, Settings};
use crate::tools::{words, VoucherServer};

/// One step's outcome.
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
    fn step(
        &mut self,
        name: &'static str,
        started: Instant,
        outcome: Result<String, String>,
    ) -> bool {
        let ms = started.elapsed().as_millis() as u64;
        let (ok, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
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
fn settings_set(settings: &Settings) -> Vec<String> {
    let shown = |variable: &str, raw: Option<&str>, show: bool| {
        given(raw).map(|v| {
            if show {
                format!("{variable}={}", bare_url(v))
            } else {
                format!("{variable} (set)")
            }
        })
    };
    let base_url = Some(settings.api_base_url.as_str())
        .filter(|u| given(Some(u)).is_some_and(|u| u != crate::config::DEFAULT_BASE_URL));
    [
        shown(env::LOOMI_URL, settings.loomi_url.as_deref(), true),
        shown(env::BASE_URL, base_url, true),
        shown(env::KEY_ID, settings.api_key_id.as_deref(), false),
        shown(env::SECRET, settings.api_secret.as_deref(), false),
        shown(env::TIMEOUT, settings.timeout_secs.as_deref(), true),
        shown(env::PROJECT_TOKEN, settings.project_token.as_deref(), false),
        shown(env::CA_FILE, settings.ca_file.as_deref(), false),
        shown(
            env::LOOMI_CLIENT_ID,
            settings.loomi_client_id.as_deref(),
            false,
        ),
        shown(
            env::LOOMI_CLIENT_SECRET,
            settings.loomi_client_secret.as_deref(),
            false,
        ),
        shown(
            env::LOOMI_CLIENT_METADATA_URL,
            settings.loomi_client_metadata_url.as_deref(),
            true,
        ),
        shown(
            env::CREDENTIALS_FILE,
            settings.credentials_file.as_deref(),
            false,
        ),
        shown(env::DEMO, settings.demo.as_deref(), true),
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
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn check(report: &mut Report, settings: &Settings, config: &Config, backend: &Backend) {
    // Settings.
    let started = Instant::now();
    let mut detail = match backend {
        Backend::Loomi(client) => {
            format!(
                "backend Loomi Connect at {}",
                bare_url(client.url().as_str())
            )
        }
        Backend::Rest(_) => format!(
            "backend Bloomreach API at {}",
            bare_url(config.base_url.as_str())
        ),
        Backend::Demo(_) => "backend demo data".to_owned(),
        Backend::Unconfigured | Backend::Broken(_) => "no backend".to_owned(),
    };
    let set = settings_set(settings);
    detail.push_str(&format!(
        "; timeout {} s; set: {}",
        config.timeout.as_secs(),
        if set.is_empty() {
            "nothing".to_owned()
        } else {
            set.join(", ")
        }
    ));
    let outcome = match backend.unusable() {
        Some(e) => Err(format!("{detail}. {}", words::backend_error(&e))),
        None => Ok(detail),
    };
    if !report.step("settings", started, outcome) {
        return;
    }

    // The network path.
    let started = Instant::now();
    let target = match backend {
        Backend::Loomi(client) => Some(client.url().clone()),
        Backend::Rest(_) => Some(config.base_url.clone()),
        _ => None,
    };
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
        if !report.step("network", started, Ok(detail)) {
            return;
        }
    }

    // Loomi: the login, the session, the tools.
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
    if !report.step("session", started, outcome) {
        return false;
    }
    let Ok(facts) = facts else { return false };
    let started = Instant::now();
    let choices = facts.tools.choices();
    let ours = |need: &str| -> &'static [&'static str] {
        match need {
            "projects" => &["list_projects"],
            "pools" => &["list_voucher_pools"],
            "pool" => &["get_voucher_pool"],
            _ => &[
                "list_voucher_codes",
                "get_voucher_pool_stats",
                "find_voucher_codes",
            ],
        }
    };
    let mut mapped = BTreeMap::new();
    let mut lines = Vec::new();
    let mut problem = None;
    for Choice {
        need,
        tools,
        arguments,
        required,
        problem: p,
    } in choices
    {
        if let Some(p) = p {
            problem.get_or_insert(words::backend_error(&p));
            continue;
        }
        lines.push(format!(
            "{} <- {}({})",
            ours(need).join("/"),
            tools.join(" then "),
            arguments.join(", ")
        ));
        for our in ours(need) {
            mapped.insert(
                *our,
                Mapped {
                    tool: tools.join(" then "),
                    arguments: arguments.clone(),
                    required: required.clone(),
                },
            );
        }
    }
    let status = if facts.tools.codes_take_status() {
        "list_voucher_codes declares status"
    } else {
        "list_voucher_codes declares no status: counts and status filters are made by reading the pages"
    };
    report.loomi_tools = Some(mapped);
    let outcome = match problem {
        Some(p) => Err(p),
        None => Ok(format!("{}; {status}", lines.join("; "))),
    };
    report.step("tools", started, outcome)
}

/// The stored login: present, for this URL, usable.
fn stored_login(file: &CredentialsFile, url: &str) -> Result<String, String> {
    let login = match file.load() {
        Ok(Some(login)) => login,
        Ok(None) => {
            return Err(
                "no login is stored: run `bloomreach-vouchers-mcp login` (or ask the assistant anything: the answer gives a sign-in link)"
                    .to_owned(),
            )
        }
        // Worded without the file's path, which names the user.
        Err(problem) => {
            return Err(match problem {
                StoreProblem::Io { detail, .. } | StoreProblem::Unreadable { detail, .. } => {
                    format!("the stored login could not be read ({detail})")
                }
                StoreProblem::Locked { waited, .. } => format!(
                    "another process held the stored login's lock for over {} s",
                    waited.as_secs()
                ),
            })
        }
    };
    if login.mcp_url != url {
        return Err(format!(
            "the stored login is for {}, not for the configured {}: run `bloomreach-vouchers-mcp login`",
            bare_url(&login.mcp_url),
            bare_url(url)
        ));
    }
    let now = SystemTime::now();
    let renewable = login.refresh_token().is_some();
    let expiry = login
        .expires_at()
        .and_then(|at| crate::time::rfc3339_utc(at as f64))
        .map(|at| format!("access token until {at}"))
        .unwrap_or_else(|| "no stated expiry".to_owned());
    if !login.serves(url, now) {
        return Err(format!(
            "the stored login has expired and cannot be renewed ({expiry}): run `bloomreach-vouchers-mcp login`"
        ));
    }
    Ok(format!(
        "for {}; {expiry}; {}",
        bare_url(url),
        if renewable {
            "renews itself"
        } else {
            "does not renew itself"
        }
    ))
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
    let on_retry = heard(notices);
    let outcome = server
        .call(name, args.as_object().cloned(), &on_retry)
        .await
        .ok_or_else(|| format!("no tool {name}"))?;
    let envelope: Value = serde_json::from_str(&outcome.text).map_err(|e| e.to_string())?;
    if envelope["success"] == true {
        Ok(envelope)
    } else {
        Err(envelope["error"]
            .as_str()
            .unwrap_or("failed without a reason")
            .to_owned())
    }
}

async fn data_steps(report: &mut Report, backend: &Backend, config: &Config) {
    let server = VoucherServer::new(backend.clone(), config.projects.clone());
    let notices = Mutex::new(Vec::new());

    let started = Instant::now();
    let projects = call(&server, "list_projects", json!({}), &notices).await;
    let first_project = projects
        .as_ref()
        .ok()
        .and_then(|e| e["data"][0]["id"].as_str().map(str::to_owned));
    let outcome = projects.and_then(|e| {
        let list = e["data"].as_array().cloned().unwrap_or_default();
        let mut organizations: Vec<&str> = list
            .iter()
            .filter_map(|p| p["organization"].as_str())
            .collect();
        organizations.sort_unstable();
        organizations.dedup();
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
    let project = first_project.unwrap_or_default();

    let started = Instant::now();
    let pools = call(
        &server,
        "list_voucher_pools",
        json!({"project_id": project}),
        &notices,
    )
    .await;
    let pools_done = Instant::now();
    let first_pool = pools.as_ref().ok().and_then(|e| {
        let list = e["data"].as_array()?;
        list.iter()
            .find(|p| p["total"].as_u64().unwrap_or(0) > 0)
            .map(|p| {
                (
                    p["id"].as_str().unwrap_or_default().to_owned(),
                    p["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
    });
    let outcome = pools.map(|e| {
        format!(
            "{} pool(s) in the first project",
            e["data"].as_array().map_or(0, Vec::len)
        )
    });
    if !report.step("pools", started, outcome) {
        return;
    }
    let Some((pool, pool_name)) = first_pool else {
        report.step(
            "codes",
            Instant::now(),
            Ok("no pool of the first project holds codes; nothing more to read".to_owned()),
        );
        return;
    };

    // The codes are read from the backend itself, so that a failure is
    // worded without the excerpt of the answer a tool would quote: a page
    // of codes is the one thing this report must never show.
    let started = Instant::now();
    let on_retry = heard(&notices);
    let ids = (Id::new(project.as_str()), Id::new(pool.as_str()));
    let codes = match &ids {
        (Ok(project_id), Ok(pool_id)) => backend
            .list_codes(
                &CodesQuery {
                    project_id,
                    pool_id,
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
        format!(
            "{} code(s) of pool {pool_name:?} read (statuses: {}); the pool counts {} in all",
            page.codes.len(),
            if statuses.is_empty() {
                "none".to_owned()
            } else {
                statuses.join(", ")
            },
            page.matched
                .map_or("an unknown number".to_owned(), |m| m.to_string())
        )
    });
    if !report.step("codes", started, outcome) {
        return;
    }

    if let Backend::Loomi(_) = backend {
        let seen = notices.lock().map(|n| n.clone()).unwrap_or_default();
        let limited = seen
            .iter()
            .filter(|r| matches!(r, RetryReason::RateLimited))
            .count();
        let gap = codes_done.duration_since(pools_done);
        report.step(
            "pacing",
            Instant::now(),
            Ok(format!(
                "{} ms between the last two calls' answers (one call starts every 1.1 s); {limited} rate-limit answer(s) seen",
                gap.as_millis()
            )),
        );
    }
}

/// `e` without the excerpts of the answer it quotes, and without the
/// values a decoder's message may quote (`invalid type: string "..."`).
fn without_excerpt(e: BackendError) -> BackendError {
    let plain = |problem: AnswerProblem| match problem {
        AnswerProblem::MissingField { detail } => AnswerProblem::MissingField {
            detail: match detail.find(['`', '"']) {
                Some(at) => format!("{}…", detail[..at].trim_end()),
                None => detail,
            },
        },
        other => other,
    };
    match e {
        BackendError::Unexpected {
            service, problem, ..
        } => BackendError::Unexpected {
            service,
            problem: plain(problem),
            excerpt: None,
        },
        BackendError::Status {
            service, status, ..
        } => BackendError::Status {
            service,
            status,
            excerpt: None,
        },
        BackendError::Server {
            status, retries, ..
        } => BackendError::Server {
            status,
            retries,
            excerpt: None,
        },
        other => other,
    }
}
