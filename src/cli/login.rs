//! `login`, `login --status` and `logout`: the Loomi Connect login of a person at a terminal.
//! `login` prints the authorization URL on stderr, alone on its line, opens it in a browser (unless
//! `--no-browser`, or when none can be started), waits up to 5 minutes for the callback, stores the
//! credentials and checks them by listing Loomi's tools. Every failure is one sentence on stderr
//! and exit status 1.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::backend::loomi::callback::LOGIN_WAIT;
use crate::backend::loomi::credentials::unix;
use crate::backend::loomi::pacing::Limits;
use crate::backend::loomi::{
    CredentialsFile, LoginProblem, LoomiClient, LoomiOptions, StoreProblem,
};
use crate::config::{env, Config};
use crate::tools::words;

use super::LoginArgs;

/// The login file; `None` (after saying so) when there is nowhere to keep it.
fn credentials_file(config: &Config) -> Option<CredentialsFile> {
    let Some(c) = &config.credentials_file else {
        eprintln!(
            "error: no config folder is known for this user; set {} to where the login should be kept",
            env::CREDENTIALS_FILE
        );
        return None;
    };
    Some(CredentialsFile::new(c.path.clone(), c.default))
}

/// A stored login that could not be read, written or removed.
fn store_failed(problem: StoreProblem) -> ExitCode {
    let problem = words::login_problem(&LoginProblem::Store(problem));
    eprintln!("error: {problem}");
    ExitCode::FAILURE
}

/// `login` and `login --status`.
pub async fn run_login(config: &Config, args: &LoginArgs) -> ExitCode {
    let Some(file) = credentials_file(config) else {
        return ExitCode::from(2);
    };
    if args.status {
        return status(&file, config.loomi.as_ref().map(|l| &l.url));
    }
    let stored_url = file
        .load()
        .ok()
        .flatten()
        .and_then(|l| reqwest::Url::parse(&l.mcp_url).ok())
        .filter(crate::backend::loomi::oauth::secure_enough);
    let Some(url) = config.loomi.as_ref().map(|l| l.url.clone()).or(stored_url) else {
        eprintln!(
            "error: {} (--loomi-url) is not set: give the Loomi Connect URL from Bloomreach's setup page: https://<region>.connect.loomi.ai/mcp, where <region> is us, eu, uk, ca or ap (brx for Bloomreach's partner demo server)",
            env::LOOMI_URL
        );
        return ExitCode::FAILURE;
    };
    let client = LoomiClient::new(LoomiOptions {
        url,
        identity: config.loomi_identity.clone(),
        file,
        timeout: config.timeout,
        network: config.network.clone(),
        limits: Limits::LOOMI,
    });
    match login(&client, args).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            let problem = words::login_problem(&problem);
            eprintln!("error: the login failed: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn login(client: &LoomiClient, args: &LoginArgs) -> Result<String, LoginProblem> {
    let no_browser = args.no_browser;
    let show = move |url: &reqwest::Url| {
        let url = url.as_str();
        eprintln!("Open this address in a browser and sign in with your Bloomreach account:");
        eprintln!("{url}");
        // Only web addresses are handed to a browser (checked when the
        // URL was made, and again here).
        let web = url.starts_with("https://") || url.starts_with("http://");
        if !no_browser && web && webbrowser::open(url).is_err() {
            eprintln!("(No browser could be started here; open the address above yourself.)");
        }
        let minutes = LOGIN_WAIT.as_secs() / 60;
        eprintln!("Waiting for the sign-in to finish (up to {minutes} minutes)...");
        if no_browser {
            eprintln!(
                "If the browser is on another machine, it ends on a page that does not load (http://127.0.0.1:.../callback?code=...): copy that whole address from its address bar and paste it here, then press Enter."
            );
        }
    };
    // Without a browser here, the address the browser elsewhere ended on
    // can be pasted: read from stdin, line by line.
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    let lines = tokio::sync::Mutex::new(rx);
    if no_browser {
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = stdin.next_line().await {
                if tx.send(crate::text::shorten(&line, 8192)).await.is_err() {
                    break;
                }
            }
        });
    }
    let told = |text: &str| eprintln!("{text}");
    let pasted = no_browser.then_some((&lines, &told as &(dyn Fn(&str) + Sync)));
    let signed_in = client
        .sign_in(args.callback_port, LOGIN_WAIT, &show, pasted)
        .await?;
    let voucher = signed_in.tools.voucher_tools();
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

/// `login --status`: exit 0 only when the stored login can serve the
/// configured Loomi URL (made for it, and not expired or renewable).
fn status(file: &CredentialsFile, configured: Option<&reqwest::Url>) -> ExitCode {
    let shown = |t: &str| crate::text::escape_controls(t);
    let path = file.path().display();
    let login = match file.load() {
        Ok(Some(login)) => login,
        Ok(None) => {
            println!("Not logged in to Loomi Connect (no login in {path}).");
            return ExitCode::FAILURE;
        }
        Err(problem) => return store_failed(problem),
    };
    let now = SystemTime::now();
    let renewable = login.refresh_token().is_some();
    let not = if renewable { "" } else { "not " };
    let expiry = match login.expires_at() {
        Some(at) => {
            let when = crate::time::rfc3339_utc(at as f64).unwrap_or_else(|| at.to_string());
            if at > unix(now) {
                format!("its access token expires at {when}")
            } else if renewable {
                format!("its access token expired at {when} and is renewed at the next call")
            } else {
                format!("its access token expired at {when}; log in again")
            }
        }
        None => "its access token has no stated expiry".to_owned(),
    };
    println!(
        "Logged in to Loomi Connect at {} ({not}renewable); {expiry}. Kept in {path}.",
        shown(&login.mcp_url)
    );
    let url = configured.map_or(login.mcp_url.as_str(), |u| u.as_str());
    if login.mcp_url != url {
        println!(
            "This login cannot serve the configured Loomi URL {}: log in again for it.",
            shown(url)
        );
        return ExitCode::FAILURE;
    }
    if !login.serves(url, now) {
        println!("This login can no longer serve: log in again.");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `logout`: deletes the stored login; exit 0 also when there was none.
pub fn run_logout(config: &Config) -> ExitCode {
    let Some(file) = credentials_file(config) else {
        return ExitCode::from(2);
    };
    let path = file.path().display();
    match file.delete() {
        Ok(true) => println!("Logged out: removed {path}."),
        Ok(false) => println!("Not logged in: there was no login in {path}."),
        Err(problem) => return store_failed(problem),
    }
    ExitCode::SUCCESS
}
