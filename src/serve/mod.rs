//! Serving MCP on stdio: the session from the first line to the last, a
//! clean stop on SIGTERM, SIGINT or SIGHUP (also during the handshake), a
//! hint for a person who starts the server on a terminal. Between stdio and
//! the MCP library stand [`inbound`] and [`outbound`].
//!
//! When the client closes stdin the session is over, but the MCP library
//! waits several seconds for calls still in flight before it lets go. The
//! server cancels its `ending` token to end such calls quickly instead, so the
//! process exits promptly.

mod inbound;
mod outbound;
mod raw_id;

use std::io::IsTerminal;
use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::BufReader;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::{env, ProjectEntry};
use crate::tools::VoucherServer;

/// Serves MCP on stdin/stdout until stdin closes or a signal arrives.
pub async fn serve(backend: Backend, projects: Vec<ProjectEntry>) {
    // Signals are listened for first, so one during the handshake also ends the process cleanly.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    if std::io::stdin().is_terminal() {
        eprintln!(
            "bloomreach-vouchers-mcp speaks MCP (JSON-RPC) on stdin/stdout and is meant to be started by an AI assistant.\n\
             To try it by hand: `bloomreach-vouchers-mcp --demo tools` or \
             `bloomreach-vouchers-mcp --demo call list_voucher_pools project_id=demo`. See --help. Serving now (Ctrl-C to stop)."
        );
    }
    tracing::info!(
        version = crate::SERVER_VERSION,
        source = backend.kind(),
        "serving MCP on stdio"
    );
    if matches!(backend, Backend::Unconfigured) {
        tracing::warn!(
            "no way in is configured (set {}, or {} and {}, or {}); tools will answer with an error until then",
            env::LOOMI_URL,
            env::KEY_ID,
            env::SECRET,
            env::DEMO
        );
    }
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    // Cancelled `GRACE_AFTER_EOF` after stdin closes: calls in flight end.
    let ending = CancellationToken::new();
    let ledger = outbound::Ledger::new(inbound::MAX_CALLS_IN_FLIGHT);
    let stop = CancellationToken::new();
    let (out, lines) = outbound::channel();
    let (to_library, from_pump) = tokio::io::duplex(64 * 1024);
    let server = VoucherServer::with_ending(backend, projects, ending.clone());
    let mcp = async {
        let sink = outbound::LineSink::new(out.clone());
        let running = tokio::select! {
            started = server.serve((from_pump, sink)) => match started {
                Ok(running) => running,
                Err(e) => {
                    tracing::info!(reason = %e, "session ended before it started");
                    return;
                }
            },
            signal = &mut signal => {
                tracing::info!(signal, "stopping");
                return;
            }
            () = stop.cancelled() => return,
        };
        let cancel = running.cancellation_token();
        tokio::select! {
            reason = running.waiting() => {
                tracing::info!(reason = ?reason.ok(), "session ended");
            }
            signal = &mut signal => {
                tracing::info!(signal, "stopping");
                cancel.cancel();
            }
            () = stop.cancelled() => cancel.cancel(),
        }
    };
    let session = async {
        mcp.await;
        // However the session ended, stdin is not read any more.
        stop.cancel();
    };
    let pump = async {
        inbound::pump(BufReader::new(stdin), to_library, &ledger, &out, &stop).await;
        let ending = ending.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE_AFTER_EOF).await;
            ending.cancel();
        });
    };
    let done = CancellationToken::new();
    let writer = outbound::write_lines(lines, stdout, &ledger, &stop, &done);
    tokio::pin!(writer);
    let writer_ended = tokio::select! {
        () = async { tokio::join!(session, pump); } => false,
        () = &mut writer => true,
    };
    if !writer_ended {
        // Whatever was answered last still goes out: lines are begun for a second more, and a
        // line begun is finished (within a bound, for a client that stopped reading).
        drop(out);
        let last_lines = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            done.cancel();
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(4), async {
            tokio::select! {
                () = &mut writer => {}
                () = last_lines => {}
            }
        })
        .await;
    }
}

/// Waits for SIGTERM, SIGHUP (the terminal or the parent went away) or SIGINT (Ctrl-C).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hangup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// How long calls in flight may finish after stdin closes (answers already read need far less).
pub const GRACE_AFTER_EOF: Duration = Duration::from_millis(300);
