//! The loopback redirect target of a login: `http://127.0.0.1:<port>/callback`
//! served by this process for up to 5 minutes. A callback with the expected
//! `state` ends it with the code; one with another `state` is refused (the
//! page says so) and the wait goes on; `error=...` from the authorization
//! server (`access_denied`: the person said no) ends it.

use std::time::Duration;

pub use crate::backend::error::CallbackProblem;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long a login waits for its callback.
pub const LOGIN_WAIT: Duration = Duration::from_secs(300);

/// What the callback brought: the code, and the issuer it names (RFC 9207).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub code: String,
    pub iss: Option<String>,
}

/// How long one connection to the callback may take to send its request.
const PER_CONNECTION: Duration = Duration::from_secs(10);

pub struct Callback {
    listener: TcpListener,
    pub redirect_uri: String,
}

impl Callback {
    /// Binds 127.0.0.1 on `port`, or on a free port.
    pub async fn bind(port: Option<u16>) -> Result<Self, CallbackProblem> {
        let io = |e: std::io::Error| CallbackProblem::Io {
            detail: e.to_string(),
        };
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(io)?;
        let port = listener.local_addr().map_err(io)?.port();
        Ok(Self {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    /// Waits up to `wait` for the callback carrying `state`. Connections
    /// are served side by side, each within its own deadline, so a slow
    /// or idle one holds up no other.
    pub async fn code(&self, state: &str, wait: Duration) -> Result<Granted, CallbackProblem> {
        self.code_or_pasted(state, wait, None).await
    }

    /// [`Callback::code`], also taking the address the browser ended on
    /// when a person pastes it (`pasted` lines; `told` hears why a pasted
    /// line was not taken): the way to finish a login whose browser is on
    /// another machine and cannot reach this one.
    pub async fn code_or_pasted(
        &self,
        state: &str,
        wait: Duration,
        pasted: Option<super::Pasted<'_>>,
    ) -> Result<Granted, CallbackProblem> {
        let from_paste = async {
            let Some((lines, told)) = pasted else {
                return std::future::pending().await;
            };
            let mut lines = lines.lock().await;
            loop {
                let Some(line) = lines.recv().await else {
                    return std::future::pending().await;
                };
                if line.trim().is_empty() {
                    continue;
                }
                match pasted_address(&line).map(|url| judge(&url, state)) {
                    Some(Verdict::Granted(granted)) => return Ok(granted),
                    Some(Verdict::Denied(problem)) => return Err(problem),
                    Some(Verdict::OtherLogin) => told(
                        "That address belongs to another login (its state differs). Paste the address the browser ended on after the newest link.",
                    ),
                    _ => told(
                        "That is not the address the browser ended on. Paste the whole address from the browser's address bar: it starts with http://127.0.0.1 and holds code= and state=.",
                    ),
                }
            }
        };
        let either = async {
            tokio::select! {
                served = self.serve(state) => served,
                pasted = from_paste => pasted,
            }
        };
        let timed = tokio::time::timeout(wait, either).await;
        timed.unwrap_or(Err(CallbackProblem::TimedOut))
    }

    async fn serve(&self, state: &str) -> Result<Granted, CallbackProblem> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Granted, CallbackProblem>>(4);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (mut socket, _) = accepted.map_err(|e| CallbackProblem::Io {
                        detail: e.to_string(),
                    })?;
                    let tx = tx.clone();
                    let state = state.to_owned();
                    connections.spawn(async move {
                        if let Ok(Some(outcome)) =
                            tokio::time::timeout(PER_CONNECTION, answer(&mut socket, &state)).await
                        {
                            let _ = tx.send(outcome).await;
                        }
                    });
                }
                Some(outcome) = rx.recv() => return outcome,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

/// What a callback address says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not `/callback`, or no code and no error.
    NotCallback,
    /// The `state` is not the one of the login in progress.
    OtherLogin,
    /// The authorization server reported an error (`access_denied`, …).
    Denied(CallbackProblem),
    Granted(Granted),
}

/// Judges a callback address (the one the browser was sent to).
pub fn judge(url: &Url, state: &str) -> Verdict {
    if url.path() != "/callback" {
        return Verdict::NotCallback;
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").is_none() && param("code").is_none() && param("error").is_none() {
        return Verdict::NotCallback;
    }
    if param("state").as_deref() != Some(state) {
        return Verdict::OtherLogin;
    }
    if let Some(error) = param("error") {
        // Shown in one sentence: one line, and short.
        let short = |t: String| crate::text::shorten(&crate::text::one_line(&t), 200);
        return Verdict::Denied(CallbackProblem::Denied {
            error: short(error),
            description: param("error_description").map(short),
        });
    }
    let (code, iss) = (param("code").filter(|c| !c.is_empty()), param("iss"));
    code.map_or(Verdict::NotCallback, |code| {
        Verdict::Granted(Granted { code, iss })
    })
}

/// An address pasted by a person: the whole callback URL, or only its
/// query (`code=…&state=…`, with or without `?`).
pub fn pasted_address(text: &str) -> Option<Url> {
    let text = text.trim().trim_matches(['"', '\'', '<', '>']);
    if text.is_empty() {
        return None;
    }
    if text.contains("://") {
        return Url::parse(text).ok();
    }
    let query = text.trim_start_matches('?');
    Url::parse(&format!("http://127.0.0.1/callback?{query}")).ok()
}

/// Reads one request and answers it; `Some` when it ends the wait.
async fn answer(
    socket: &mut tokio::net::TcpStream,
    state: &str,
) -> Option<Result<Granted, CallbackProblem>> {
    let target = read_target(socket).await?;
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
        let _ = respond(socket, 400, "This is not a login callback.").await;
        return None;
    };
    let (status, page, outcome) = match judge(&url, state) {
        Verdict::NotCallback if url.path() != "/callback" => (404, "Not found.", None),
        Verdict::NotCallback => (400, "The callback carries no code.", None),
        Verdict::OtherLogin => (400, OTHER_LOGIN, None),
        Verdict::Denied(problem) => (200, NOT_COMPLETED, Some(Err(problem))),
        Verdict::Granted(granted) => (200, SIGNED_IN, Some(Ok(granted))),
    };
    let _ = respond(socket, status, page).await;
    outcome
}

const SIGNED_IN: &str =
    "Signed in to Loomi Connect. You can close this page and go back to your assistant.";
pub const OTHER_LOGIN: &str = "This login link does not belong to the login in progress (its state differs), so it was refused. Start the login again and use the newest link it prints.";
pub const NOT_COMPLETED: &str = "The sign-in was not completed. Try again; if it is refused again, ask a Bloomreach administrator for access to Loomi Connect, and check that the Loomi URL is the one of your region. You can close this page.";

/// The request target of the first request on `socket`, if it is a GET.
async fn read_target(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    (parts.next()? == "GET").then(|| parts.next().map(str::to_owned))?
}

async fn respond(
    socket: &mut tokio::net::TcpStream,
    status: u16,
    text: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>bloomreach-vouchers-mcp</title></head><body><p>{text}</p></body></html>"
    );
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(answer.as_bytes()).await?;
    socket.shutdown().await
}
