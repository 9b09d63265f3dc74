//! `login`, `login --status` and `logout`: the Loomi Connect login of a
//! person at a terminal. `login` prints the authorization URL on stderr,
//! alone on its line, opens it in a browser (unless `--no-browser`, or
//! when none can be started), waits up to 5 minutes for the callback,
//! stores the credentials and checks them by listing Loomi's tools. Every
//! failure is one sentence on stderr and exit status 1.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::backend::loomi::callback::LOGIN_WAIT;
use crate::backend::loomi::credentials::unix;
use crate::backend::loomi::pacing::Limits;
use crate::backend::loomi::{CredentialsFile, LoginProblem, LoomiClient, LoomiOptions};
use crate::config::{env, Config};
use crate::tools::words;

use super::LoginArgs;

fn credentials_file(config: &Config) -> Result<CredentialsFile, ExitCode> {
    match &config.credentials_file {
        Some(c) => Ok(CredentialsFile::new(c.path.clone(), c.default)),
        None => {
            eprintln!(
                "error: no config folder is known for this user; set {} to where the login should be kept",
                env::CREDENTIALS_FILE
            );
            Err(ExitCode::from(2))
        }
    }
}

/// `login` and `login --status`.
pub async fn run_login(config: &Config, args: &LoginArgs) -> ExitCode {
    let file = match credentials_file(config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    if args.status {
        return status(&file);
    }
    let stored_url = file
        .load()
        .ok()
        .flatten()
        .and_then(|l| reqwest::Url::parse(&l.mcp_url).ok());
    let Some(url) = config.loomi.as_ref().map(|l| l.url.clone()).or(stored_url) else {
        eprintln!(
            "error: {} (--loomi-url) is not set: give the Loomi Connect URL from Bloomreach's setup page, e.g. https://eu.connect.loomi.ai/mcp",
            env::LOOMI_URL
        );
        return ExitCode::FAILURE;
    };
    let client = LoomiClient::new(LoomiOptions {
        url,
        client_id: config.loomi_client_id.clone(),
        file,
        timeout: config.timeout,
        network: config.network.clone(),
        limits: Limits::LOOMI,
    });
    match login(&client, args.no_browser).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!(
                "error: the login failed: {}",
                words::login_problem(&problem)
            );
            ExitCode::FAILURE
        }
    }
}

async fn login(client: &LoomiClient, no_browser: bool) -> Result<String, LoginProblem> {
    let prepared = client.prepare_login().await?;
    let url = prepared.authorization_url.to_string();
    eprintln!("Open this address in a browser and sign in with your Bloomreach account:");
    eprintln!("{url}");
    if !no_browser && webbrowser::open(&url).is_err() {
        eprintln!("(No browser could be started here; open the address above yourself.)");
    }
    eprintln!(
        "Waiting for the login to finish (up to {} minutes)...",
        LOGIN_WAIT.as_secs() / 60
    );
    let login = prepared.finish(LOGIN_WAIT).await?;
    client.store_login(login).await?;
    let tools = client.tool_set().await.map_err(LoginProblem::Check)?;
    let voucher = tools.voucher_tools();
    let found = if voucher.is_empty() {
        "no voucher tools (the account may lack access to vouchers)".to_owned()
    } else {
        format!("voucher tools {}", voucher.join(", "))
    };
    Ok(format!(
        "Logged in to Loomi Connect at {}; it offers {found}.",
        client.host()
    ))
}

/// `login --status`: exit 0 when a login is stored, 1 when not.
fn status(file: &CredentialsFile) -> ExitCode {
    match file.load() {
        Ok(Some(login)) => {
            let expiry = match login.expires_at {
                Some(at) => {
                    let now = unix(SystemTime::now());
                    let when =
                        crate::time::rfc3339_utc(at as f64).unwrap_or_else(|| at.to_string());
                    if at > now {
                        format!("its access token expires at {when}")
                    } else if login.refresh_token.is_some() {
                        format!(
                            "its access token expired at {when} and is renewed at the next call"
                        )
                    } else {
                        format!("its access token expired at {when}; log in again")
                    }
                }
                None => "its access token has no stated expiry".to_owned(),
            };
            println!(
                "Logged in to Loomi Connect at {} ({}); {expiry}. Kept in {}.",
                login.mcp_url,
                if login.refresh_token.is_some() {
                    "renewable"
                } else {
                    "not renewable"
                },
                file.path().display()
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!(
                "Not logged in to Loomi Connect (no login in {}).",
                file.path().display()
            );
            ExitCode::FAILURE
        }
        Err(problem) => {
            eprintln!(
                "error: {}",
                words::login_problem(&LoginProblem::Store(problem))
            );
            ExitCode::FAILURE
        }
    }
}

/// `logout`: deletes the stored login; exit 0 also when there was none.
pub fn run_logout(config: &Config) -> ExitCode {
    let file = match credentials_file(config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match file.delete() {
        Ok(true) => {
            println!("Logged out: removed {}.", file.path().display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "Not logged in: there was no login in {}.",
                file.path().display()
            );
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!(
                "error: {}",
                words::login_problem(&LoginProblem::Store(problem))
            );
            ExitCode::FAILURE
        }
    }
}
