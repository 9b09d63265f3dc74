//! The one place where an argument error or a backend error becomes a sentence for a person, with
//! advice on what to do next. Backends and the argument readers carry facts; only here are tools,
//! arguments and settings named in prose.

use std::time::Duration;

use super::args::{ArgError, ArgProblem, Failure, IntRule};
use crate::backend::loomi::callback::CallbackProblem;
use crate::backend::loomi::oauth::Step;
use crate::backend::loomi::{LoginProblem, OAuthProblem, StoreProblem};
use crate::backend::{
    AnswerProblem, BackendError, IdProblem, LoginReason, ProxyFailure, RetryNotice, RetryReason,
    Service, Subject, TransportFailure,
};
use crate::config::env::{self, DEMO, KEY_ID, LOOMI_URL, SECRET};

pub const LOGIN_COMMAND: &str = "bloomreach-vouchers-mcp login";

pub fn failure(f: &Failure) -> String {
    match f {
        Failure::Argument(e) => arg_error(e),
        Failure::Backend(e) => backend_error(e),
    }
}

/// An argument error: the argument, the rule it broke, the value received.
pub fn arg_error(e: &ArgError) -> String {
    use ArgProblem::*;
    let name = e.name;
    let (must, got) = match &e.problem {
        MissingId => {
            return format!("{name} is required and must be a non-empty string (got nothing)");
        }
        IdNotString { got } | NotText { got } => ("a non-empty string".to_owned(), got),
        BadId { problem, got } => match problem {
            IdProblem::Blank => ("a non-empty string, not blank".to_owned(), got),
            IdProblem::DotSegment => (format!("an id, not a path segment like {got}"), got),
            IdProblem::TooLong { chars, max } => {
                return format!(
                    "{name} must be at most {max} characters long (got {chars} characters)"
                );
            }
        },
        NotInteger { rule, got } => (format!("an integer {}", range(rule)), got),
        TooHigh { rule, got } if rule.max == i64::MAX => (format!("at most {}", rule.max), got),
        TooLow { rule, got } | TooHigh { rule, got } => (range(rule), got),
        NotOneOf { allowed, got } => (format!("one of {}", allowed.join(", ")), got),
        NotAnInstant { got } => (
            "an instant: RFC 3339 with an offset or Z, like 2026-07-01T00:00:00Z, or Unix seconds"
                .to_owned(),
            got,
        ),
        NotBefore { other, got } => (format!("before {other}"), got),
        Unknown {
            got,
            accepted,
            closest,
        } => {
            let takes = match accepted.as_slice() {
                [] => "no arguments".to_owned(),
                all => all.join(", "),
            };
            let mean = around(" (did you mean ", closest, "?)");
            return format!("{got} is not an argument of this tool{mean}; it takes {takes}");
        }
    };
    format!("{name} must be {must} (got {got})")
}

/// An integer rule's range: `between 1 and 1000`, or `>= 0` where only the wire integer bounds it.
pub fn range(rule: &IntRule) -> String {
    match rule.max {
        i64::MAX => format!(">= {}", rule.min),
        max => format!("between {} and {max}", rule.min),
    }
}

/// A backend error, with what to check or do next.
pub fn backend_error(e: &BackendError) -> String {
    let [base_url, loomi_url, ca_file] = [env::BASE_URL, env::LOOMI_URL, env::CA_FILE].map(setting);
    match e {
        BackendError::CannotFilterByStatus => {
            "status cannot be used here: this backend (Loomi Connect) cannot filter a page of codes by status. Leave status out, or call find_voucher_codes with status (it filters the codes as it reads them) or get_voucher_pool_stats for counts by status".to_owned()
        }
        BackendError::NoCount { status } => format!(
            "The Bloomreach API did not say how many codes are {status}; list_voucher_codes with that status shows them"
        ),
        BackendError::Setup { words } => words.clone(),
        BackendError::NotConfigured => format!(
            "No way to Bloomreach data is set up yet. In Claude Desktop's extension settings: fill \"Loomi Connect URL\" with the address from Bloomreach's Loomi Connect setup page (https://<region>.connect.loomi.ai/mcp, where <region> is us, eu, uk, ca or ap; brx for Bloomreach's partner demo server) and sign in when the next answer gives a link, or fill \"API key ID\" and \"API secret\", or switch on \"Demo data (no account needed)\" to try it. Elsewhere, set {LOOMI_URL} (then sign in with `{LOGIN_COMMAND}` or the link a call gives), or {KEY_ID} and {SECRET}, or {DEMO}=true, in the server's environment. Then restart the server"
        ),
        BackendError::LoginRequired {
            reason,
            authorization_url,
            problem,
        } => {
            let why = match reason {
                LoginReason::NotLoggedIn => "This server is not logged in to Loomi Connect yet",
                LoginReason::OtherUrl => "The stored login is for another Loomi Connect URL than the one configured",
                LoginReason::Refused => "The Loomi Connect login has expired or was revoked",
            };
            match (authorization_url, problem) {
                (Some(url), _) => format!(
                    "{why}. To log in, open this address in a browser and sign in with your Bloomreach account:\n{url}\nthen call the tool again (the login is kept for later calls). Or run `{LOGIN_COMMAND}` in a terminal."
                ),
                (None, problem) => format!(
                    "{why}, and no login could be started ({}). Check that {loomi_url} is the address from Bloomreach's setup page for your region, then ask again; or run `{LOGIN_COMMAND}` in a terminal, which says more if it fails",
                    problem
                        .as_deref()
                        .map_or_else(|| "no reason given".to_owned(), login_problem),
                ),
            }
        }
        BackendError::LoomiToolMissing { tool } => format!(
            "Loomi Connect does not offer the tool {tool} to this login, so this cannot be answered through it; the login may lack access to vouchers"
        ),
        BackendError::LoomiAuth { problem } => format!(
            "The Loomi Connect login could not be renewed: {}; ask again (the answer then gives a sign-in link if one is needed), or run `{LOGIN_COMMAND}` in a terminal",
            oauth_problem(problem)
        ),
        BackendError::CredentialsFile { path, detail } => format!(
            "The Loomi Connect credentials file {path} could not be used ({detail}); check {}, or remove the file and ask again for a sign-in link (or run `{LOGIN_COMMAND}` in a terminal)",
            setting(env::CREDENTIALS_FILE)
        ),
        BackendError::Rejected { message } => format!(
            "Bloomreach rejected the request as invalid (HTTP 400){}",
            quoted(message)
        ),
        BackendError::Unauthorized { message } => format!(
            "Bloomreach refused the credentials (HTTP 401{}); check {} and {}: the key must exist, have private access and belong to the project",
            quoted(message),
            setting(env::KEY_ID),
            setting(env::SECRET)
        ),
        BackendError::Forbidden { message } => format!(
            "Permission denied by Bloomreach (HTTP 403){}; the API key needs read access to vouchers in this project",
            quoted(message)
        ),
        BackendError::NotFound {
            subject: Subject::Project { project_id },
            message,
        } => format!(
            "Project {project_id:?} was not found; check the project token (list_projects shows the configured ones) (HTTP 404{})",
            quoted(message)
        ),
        BackendError::NotFound {
            subject: Subject::Pool {
                project_id,
                pool_id,
            },
            message,
        } => format!(
            "Voucher pool {pool_id:?} was not found in project {project_id:?}; list_voucher_pools shows the pool ids of a project (HTTP 404{})",
            quoted(message)
        ),
        BackendError::RateLimited {
            retries,
            retry_after,
        } => {
            let hint = match retry_after {
                Some(d) if !d.is_zero() => format!("try again in {}", seconds(*d)),
                _ => "try again in a minute".to_owned(),
            };
            format!(
                "The Bloomreach API is rate limiting requests (HTTP 429, still limited after {retries} retries); {hint}"
            )
        }
        BackendError::RetryAfterTooLong {
            status,
            wait,
            until,
        } => {
            let busy = match status {
                429 => "is rate limiting requests (HTTP 429)".to_owned(),
                _ => format!("is unavailable (HTTP {status})"),
            };
            format!(
                "The Bloomreach API {busy} and asked to wait {}, longer than this server waits; try again after {}",
                seconds(*wait),
                httpdate::fmt_http_date(*until)
            )
        }
        BackendError::Server {
            status,
            retries,
            excerpt,
        } => format!(
            "The Bloomreach API failed with HTTP {status} (still failing after {retries} retries){}",
            quoted(excerpt)
        ),
        BackendError::Status {
            service,
            status,
            excerpt,
        } => {
            let said = match service {
                Service::Api => "The Bloomreach API answered with unexpected HTTP status",
                Service::Loomi => "Loomi Connect answered HTTP",
            };
            format!("{said} {status}{}", quoted(excerpt))
        }
        BackendError::Redirect {
            service: Service::Api,
            host,
            location,
        } => format!(
            "The Bloomreach API redirected to another host ({location}); the redirect was not followed so that credentials stay with {host}. Check {base_url}"
        ),
        BackendError::Redirect { location, .. } => format!(
            "Loomi Connect redirected the request to {location}, which was not followed, so the login's token stays with Loomi; check {loomi_url} against the address on Bloomreach's setup page"
        ),
        BackendError::RedirectLoop { host, max } => format!(
            "The Bloomreach API at {host} redirected in a loop (more than {max} redirects); check {base_url}"
        ),
        BackendError::Failed { service, message } => match service {
            Service::Api => format!("Bloomreach could not complete the request: {message}"),
            Service::Loomi => format!("Loomi Connect answered with an error: {message}"),
        },
        BackendError::BadUrl { detail } => format!(
            "Could not build a request URL for the Bloomreach API ({detail}); check {base_url}"
        ),
        BackendError::Unexpected {
            service,
            problem,
            excerpt,
        } => {
            let problem = match problem {
                AnswerProblem::NotJson => "the answer is not JSON".to_owned(),
                AnswerProblem::MissingField { detail } => {
                    format!("a required field is missing or has the wrong type ({detail})")
                }
                AnswerProblem::NoData => "the answer has no data field".to_owned(),
                AnswerProblem::Undecodable { detail } => {
                    format!("its body could not be decoded ({detail}); trying again would not help")
                }
                AnswerProblem::Malformed { detail } => {
                    format!("the answer is not well-formed HTTP ({detail})")
                }
            };
            let excerpt = quoted(excerpt);
            let who = match service {
                Service::Api => "The Bloomreach API",
                Service::Loomi => "Loomi Connect",
            };
            format!("{who} answered unexpectedly: {problem}{excerpt}")
        }
        BackendError::BodyTooLarge { limit } => format!(
            "The Bloomreach API answer is larger than {} MiB, the most this server reads; ask for fewer records (a smaller count)",
            limit / (1024 * 1024)
        ),
        BackendError::LoomiArgument { tool, argument } => format!(
            "Loomi Connect's tool {tool} does not take the argument {argument}, which this server must send, so it was not called; Loomi may have changed its tools: run `bloomreach-vouchers-mcp doctor` in a terminal and send us its report, or tell us which tools your Loomi Connect offers"
        ),
        BackendError::TooMany { what, bound } => format!(
            "The answer lists more than {bound} {what}, the most this server reads; it answers nothing rather than part of the list, which would give wrong counts"
        ),
        BackendError::RanOut {
            what,
            read,
            matched,
        } => format!(
            "The answer counts {matched} {what} but its pages ended after {read}; nothing is answered rather than a wrong count or part of the list. Try again in a moment"
        ),
        BackendError::SkipIgnored { skip } => format!(
            "The API answered the page at skip={skip} with the same codes as the page before, as if it ignored skip; the scan stopped rather than count codes twice"
        ),
        BackendError::Deadline { host, deadline } => format!(
            "The call to Loomi Connect at {host} was given up after {} s in all (waiting its turn under the rate limit, renewing the login and the exchange together); try again, or ask for less",
            deadline.as_secs()
        ),
        BackendError::Timeout { host, timeout } => format!(
            "The request to the Bloomreach API at {host} timed out: no complete answer within {} s; raise {} if the API is slow",
            timeout.as_secs(),
            setting(env::TIMEOUT)
        ),
        BackendError::Connection {
            host,
            failure,
            cause,
            retries,
        } => {
            let what = match failure {
                TransportFailure::Certificate => "its TLS certificate is not trusted",
                TransportFailure::Tls => "the TLS handshake failed",
                TransportFailure::Connect => "the connection could not be made",
                TransportFailure::BodyBroken => "the connection broke while the answer was being read",
                TransportFailure::Malformed => "the request could not be made",
                TransportFailure::Other => "the request failed",
            };
            let cause = around(" (", cause, ")");
            let retries = after_retries(*retries);
            let advice = match failure {
                TransportFailure::Certificate => format!(
                    "; if a company proxy or gateway presents its own certificate, add its CA to the system's certificate store or name its PEM file in {ca_file}"
                ),
                _ => String::new(),
            };
            format!("Could not reach the Bloomreach API at {host}: {what}{cause}{retries}{advice}")
        }
        BackendError::Proxy {
            proxy,
            variable,
            host,
            failure,
            cause,
            retries,
        } => {
            let what = match failure {
                ProxyFailure::Unreachable => "the proxy could not be reached".to_owned(),
                ProxyFailure::RefusedTunnel => {
                    format!("the proxy refused to open a connection to {host}")
                }
                ProxyFailure::AuthRequired => {
                    "the proxy asks for credentials (HTTP 407), which go in the proxy URL as http://user:password@host:port".to_owned()
                }
                ProxyFailure::Broken => "the proxy did not open a connection".to_owned(),
            };
            let cause = match failure {
                ProxyFailure::AuthRequired => String::new(),
                _ => around(" (", cause, ")"),
            };
            let (retries, direct) = (after_retries(*retries), without_port(host));
            format!(
                "Could not reach the Bloomreach API: the proxy at {proxy} (set by {variable}) failed: {what}{cause}{retries}; check {variable}, or list {direct} in NO_PROXY to reach it directly"
            )
        }
        BackendError::ClientSetup { detail } => format!(
            "This server could not set up its HTTP client ({detail}); check {ca_file} and the system's certificate store"
        ),
    }
}

/// A setting as a person may know it: its variable, and the field of the
/// bundle's form that sets it.
fn setting(variable: &str) -> String {
    match crate::config::form_label(variable) {
        Some(label) => format!("{variable} (\"{label}\" in the extension's settings)"),
        None => variable.to_owned(),
    }
}

/// What to do after a refused sign-in.
const NEXT_STEPS: &str = "Try again; if it is refused again, ask a Bloomreach administrator to give your account access to Loomi Connect, and check that the Loomi URL is the one of your account's region (us, eu, uk, ca, ap)";

/// A login problem in a few words, for an error envelope or a log line.
pub fn login_problem(problem: &LoginProblem) -> String {
    match problem {
        LoginProblem::OAuth(p) => oauth_problem(p),
        LoginProblem::Callback(CallbackProblem::Denied { error, description }) => {
            let d = around(": ", description, "");
            format!("the authorization server answered {error}{d}. {NEXT_STEPS}")
        }
        LoginProblem::Callback(CallbackProblem::TimedOut) => format!(
            "no login arrived within {} minutes",
            crate::backend::loomi::callback::LOGIN_WAIT.as_secs() / 60
        ),
        LoginProblem::Callback(CallbackProblem::Io { detail }) => {
            format!("the local callback could not be served ({detail})")
        }
        LoginProblem::Store(StoreProblem::Io { path, detail })
        | LoginProblem::Store(StoreProblem::Unreadable { path, detail }) => {
            let path = path.display();
            format!("the credentials file {path} could not be used ({detail})")
        }
        LoginProblem::Store(StoreProblem::Locked { path, waited }) => format!(
            "the credentials file {} is locked by another process, which held it for over {} s; try again, or end that process",
            path.display(),
            waited.as_secs()
        ),
        LoginProblem::Setup(detail) => format!("the HTTP client could not be set up ({detail})"),
        LoginProblem::Check(e) => backend_error(e),
    }
}

pub fn oauth_problem(problem: &OAuthProblem) -> String {
    let step = |s: &Step| match s {
        Step::Registration => "client registration",
        Step::TokenExchange => "the token exchange",
        Step::Refresh => "the token refresh",
    };
    match problem {
        OAuthProblem::Discovery { detail } => format!("discovery failed: {detail}"),
        OAuthProblem::NoPkce => "the authorization server does not offer PKCE with S256".to_owned(),
        OAuthProblem::Insecure { url } => format!(
            "the authorization server named {url}, which is not https://; it was refused so that no code or token crosses the network in clear"
        ),
        OAuthProblem::Issuer { expected, received } => match received {
            Some(r) => format!(
                "the authorization server answered as {r}, not as {expected}; the sign-in was refused, as it may have been sent to another server"
            ),
            None => format!(
                "the sign-in came back without naming its authorization server ({expected} says it always does); it was refused"
            ),
        },
        OAuthProblem::StepUp { scope, tries } => format!(
            "Loomi Connect still asked for more permissions (scope {scope}) after {tries} sign-ins; ask a Bloomreach administrator for access"
        ),
        OAuthProblem::Exchange { step: s, detail } => format!("{} failed: {detail}", step(s)),
        OAuthProblem::Refused {
            step: s,
            status,
            error,
            description,
        } => {
            let (s, e, d) = (step(s), around(", ", error, ""), around(": ", description, ""));
            format!("{s} was refused (HTTP {status}{e}){d}")
        }
    }
}

pub fn answer_too_large(bytes: usize, max: usize) -> String {
    let (kib, mib) = (bytes.div_ceil(1024), max / (1024 * 1024));
    format!(
        "The answer would be {kib} KiB, more than the {mib} MiB this server sends in one answer; ask for fewer records (a smaller count)"
    )
}

/// A bug in this server, met during a call.
pub fn internal_error() -> String {
    "This server met an internal error while answering (a bug, logged on its stderr); the call can be tried again".to_owned()
}

pub fn scan_progress(scan: &super::ScanProgress) -> String {
    match scan.total {
        Some(total) => format!("examined {} of {total} codes", scan.examined),
        None => format!("examined {} codes", scan.examined),
    }
}

/// Why a call waits, and for how long: a progress message and a log line.
pub fn retry_notice(notice: &RetryNotice) -> String {
    let (wait, retry, max) = (notice.wait.as_secs_f64(), notice.retry, notice.max_retries);
    let why = match &notice.reason {
        RetryReason::Paced => {
            return format!(
                "waiting {wait:.1} s for a turn under Loomi Connect's rate limit (one call every 1.1 s)"
            );
        }
        RetryReason::RateLimited => "Bloomreach is rate limiting (HTTP 429)".to_owned(),
        RetryReason::Status(s) => format!("Bloomreach answered HTTP {s}"),
        RetryReason::Connection => "the connection to Bloomreach failed".to_owned(),
    };
    format!("{why}; waiting {wait:.1} s before retry {retry} of {max}")
}

/// `host` of `host:port`.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

/// `{before}{value}{after}`, or nothing without a value.
fn around(before: &str, value: &Option<String>, after: &str) -> String {
    match value {
        Some(v) => format!("{before}{v}{after}"),
        None => String::new(),
    }
}

fn quoted(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

/// A wait in seconds: whole where it is whole (`120 s`), else to the
/// tenth (`10.5 s`), never rounded down to a shorter wait.
fn seconds(wait: Duration) -> String {
    match wait.subsec_nanos() {
        0 => format!("{} s", wait.as_secs()),
        _ => format!("{:.1} s", (wait.as_secs_f64() * 10.0).ceil() / 10.0),
    }
}

fn after_retries(retries: u32) -> String {
    match retries {
        0 => String::new(),
        n => format!(" (after {n} retries)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Id;
    use crate::tools::args::{self, RawArgs, COUNT, SKIP};
    use serde_json::{json, Value};
    use std::time::SystemTime;

    fn raw(v: Value) -> RawArgs {
        v.as_object().unwrap().clone()
    }

    fn id_error(v: Value) -> String {
        arg_error(&args::id(&raw(v), "project_id").unwrap_err())
    }

    fn int_error(name: &str, value: Value) -> String {
        let rule = if name == "skip" { SKIP } else { COUNT };
        arg_error(
            &args::integer(&raw(json!({ name: value })), rule)
                .checked()
                .unwrap_err(),
        )
    }

    #[test]
    fn a_host_is_named_without_its_port_for_no_proxy() {
        assert_eq!(without_port("api.exponea.com"), "api.exponea.com");
        assert_eq!(without_port("localhost:8443"), "localhost");
        assert_eq!(without_port("[::1]:9000"), "[::1]");
        assert_eq!(without_port("::1"), "::1");
        assert_eq!(without_port("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn id_errors_name_argument_rule_and_value() {
        assert_eq!(
            id_error(json!({})),
            "project_id is required and must be a non-empty string (got nothing)"
        );
        assert_eq!(
            id_error(json!({"project_id": 42})),
            "project_id must be a non-empty string (got 42)"
        );
        assert_eq!(
            id_error(json!({"project_id": ""})),
            "project_id must be a non-empty string, not blank (got \"\")"
        );
        assert_eq!(
            id_error(json!({"project_id": " \t"})),
            "project_id must be a non-empty string, not blank (got \" \\t\")"
        );
        assert_eq!(
            arg_error(&args::id(&raw(json!({"pool_id": ".."})), "pool_id").unwrap_err()),
            "pool_id must be an id, not a path segment like \"..\" (got \"..\")"
        );
        assert_eq!(
            id_error(json!({"project_id": "x".repeat(2000)})),
            "project_id must be at most 1024 characters long (got 2000 characters)"
        );
    }

    #[test]
    fn integer_errors_name_argument_rule_and_value() {
        for (name, value, expected) in [
            (
                "count",
                json!(5000),
                "count must be between 1 and 1000 (got 5000)",
            ),
            (
                "count",
                json!(0),
                "count must be between 1 and 1000 (got 0)",
            ),
            ("skip", json!(-1), "skip must be >= 0 (got -1)"),
            ("skip", json!("-3"), "skip must be >= 0 (got -3)"),
            (
                "count",
                json!(2.5),
                "count must be an integer between 1 and 1000 (got 2.5)",
            ),
            (
                "count",
                json!("lots"),
                "count must be an integer between 1 and 1000 (got \"lots\")",
            ),
            (
                "count",
                json!(true),
                "count must be an integer between 1 and 1000 (got true)",
            ),
            ("skip", json!([1]), "skip must be an integer >= 0 (got [1])"),
            (
                "count",
                json!(18446744073709551615u64),
                "count must be between 1 and 1000 (got 18446744073709551615)",
            ),
            (
                "count",
                json!("99999999999999999999999"),
                "count must be between 1 and 1000 (got 99999999999999999999999)",
            ),
            (
                "count",
                json!(1e300),
                "count must be between 1 and 1000 (got 1e+300)",
            ),
            (
                "skip",
                json!(18446744073709551615u64),
                "skip must be at most 9223372036854775807 (got 18446744073709551615)",
            ),
            (
                "skip",
                json!("-99999999999999999999"),
                "skip must be >= 0 (got -99999999999999999999)",
            ),
            (
                "count",
                json!("NaN"),
                "count must be an integer between 1 and 1000 (got \"NaN\")",
            ),
        ] {
            assert_eq!(int_error(name, value), expected);
        }
        let long = int_error("count", json!("z".repeat(500)));
        assert!(long.chars().count() < 150, "{long}");
    }

    #[test]
    fn status_errors_list_the_three_names() {
        for (value, shown) in [
            (json!("used"), "\"used\""),
            (json!("Redeemed"), "\"Redeemed\""),
            (json!(3), "3"),
        ] {
            assert_eq!(
                arg_error(&args::status(&raw(json!({ "status": value }))).unwrap_err()),
                format!("status must be one of available, assigned, redeemed (got {shown})")
            );
        }
    }

    #[test]
    fn not_configured_names_both_settings() {
        let text = backend_error(&BackendError::NotConfigured);
        assert!(text.contains("BLOOMREACH_LOOMI_URL"), "{text}");
        assert!(text.contains("bloomreach-vouchers-mcp login"), "{text}");
        assert!(text.contains("BLOOMREACH_API_KEY_ID"), "{text}");
        assert!(text.contains("BLOOMREACH_API_SECRET"), "{text}");
    }

    #[test]
    fn every_way_to_fix_a_login_is_given_also_without_a_terminal() {
        let failed = backend_error(&BackendError::LoginRequired {
            reason: crate::backend::LoginReason::NotLoggedIn,
            authorization_url: None,
            problem: None,
        });
        assert!(
            failed.contains("\"Loomi Connect URL\" in the extension's settings"),
            "{failed}"
        );
        assert!(failed.contains("then ask again"), "{failed}");
        let file = backend_error(&BackendError::CredentialsFile {
            path: "f.json".into(),
            detail: "d".into(),
        });
        assert!(file.contains("ask again for a sign-in link"), "{file}");
        assert!(file.contains("\"Where the Loomi login is kept\""), "{file}");
    }

    #[test]
    fn not_found_names_the_ids() {
        let e = BackendError::NotFound {
            subject: Subject::Pool {
                project_id: Id::new("proj").unwrap(),
                pool_id: Id::new("pool-9").unwrap(),
            },
            message: Some("pool not found".into()),
        };
        assert_eq!(
            backend_error(&e),
            "Voucher pool \"pool-9\" was not found in project \"proj\"; list_voucher_pools shows the pool ids of a project (HTTP 404: pool not found)"
        );
    }

    #[test]
    fn rate_limit_and_long_wait_say_when_to_retry() {
        let e = BackendError::RateLimited {
            retries: 3,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(backend_error(&e), "The Bloomreach API is rate limiting requests (HTTP 429, still limited after 3 retries); try again in 2 s");
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = BackendError::RetryAfterTooLong {
            status: 429,
            wait: Duration::from_secs(120),
            until,
        };
        assert_eq!(backend_error(&e), "The Bloomreach API is rate limiting requests (HTTP 429) and asked to wait 120 s, longer than this server waits; try again after Tue, 14 Nov 2023 22:13:20 GMT");
        let e = BackendError::RetryAfterTooLong {
            status: 503,
            wait: Duration::from_millis(10_500),
            until,
        };
        assert!(
            backend_error(&e).contains("is unavailable (HTTP 503) and asked to wait 10.5 s"),
            "{}",
            backend_error(&e)
        );
    }

    #[test]
    fn each_service_keeps_its_own_words_for_the_merged_faults() {
        let words = |service| {
            [
                BackendError::Status {
                    service,
                    status: 409,
                    excerpt: Some("busy".into()),
                },
                BackendError::Redirect {
                    service,
                    host: "h.example".into(),
                    location: "https://other.example/".into(),
                },
                BackendError::Failed {
                    service,
                    message: "locked".into(),
                },
                BackendError::Unexpected {
                    service,
                    problem: AnswerProblem::NoData,
                    excerpt: None,
                },
            ]
            .map(|e| backend_error(&e))
        };
        assert_eq!(
            words(Service::Api),
            [
                "The Bloomreach API answered with unexpected HTTP status 409: busy".to_owned(),
                "The Bloomreach API redirected to another host (https://other.example/); the redirect was not followed so that credentials stay with h.example. Check BLOOMREACH_API_BASE_URL (\"API base URL\" in the extension's settings)".to_owned(),
                "Bloomreach could not complete the request: locked".to_owned(),
                "The Bloomreach API answered unexpectedly: the answer has no data field".to_owned(),
            ]
        );
        assert_eq!(
            words(Service::Loomi),
            [
                "Loomi Connect answered HTTP 409: busy".to_owned(),
                "Loomi Connect redirected the request to https://other.example/, which was not followed, so the login's token stays with Loomi; check BLOOMREACH_LOOMI_URL (\"Loomi Connect URL\" in the extension's settings) against the address on Bloomreach's setup page".to_owned(),
                "Loomi Connect answered with an error: locked".to_owned(),
                "Loomi Connect answered unexpectedly: the answer has no data field".to_owned(),
            ]
        );
    }

    #[test]
    fn unexpected_answers_say_what_was_wrong() {
        let e = BackendError::Unexpected {
            service: Service::Api,
            problem: AnswerProblem::NotJson,
            excerpt: Some("oops".into()),
        };
        assert_eq!(
            backend_error(&e),
            "The Bloomreach API answered unexpectedly: the answer is not JSON: oops"
        );
        let e = BackendError::Unexpected {
            service: Service::Api,
            problem: AnswerProblem::NoData,
            excerpt: None,
        };
        assert_eq!(
            backend_error(&e),
            "The Bloomreach API answered unexpectedly: the answer has no data field"
        );
    }
}
