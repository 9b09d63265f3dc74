//! The process: read settings, start logging, then serve MCP on stdio or
//! run a command-line subcommand.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use rmcp::ServiceExt;

use bloomreach_vouchers_mcp::cli;
use bloomreach_vouchers_mcp::config::ProjectEntry;
use bloomreach_vouchers_mcp::config::{CallArgs, Cli, Command, Config};
use bloomreach_vouchers_mcp::logging;
use bloomreach_vouchers_mcp::source::Source;
use bloomreach_vouchers_mcp::stdio::EofSignalling;
use bloomreach_vouchers_mcp::tools::VoucherServer;

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let config = match Config::from_settings(&cli.settings) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(&cli.settings.log_filter) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let source = match Source::from_config(&config) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("error: could not set up the HTTP client: {e}");
            return ExitCode::from(2);
        }
    };
    let mut projects = config.projects.clone();
    if config.demo && projects.is_empty() {
        projects.push(ProjectEntry {
            id: bloomreach_vouchers_mcp::demo::PROJECT_ID.to_owned(),
            name: bloomreach_vouchers_mcp::demo::PROJECT_NAME.to_owned(),
        });
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        None | Some(Command::Serve) => runtime.block_on(serve(source, projects, &config)),
        Some(Command::Tools) => {
            let server = VoucherServer::new(source, projects);
            let mut out = std::io::stdout().lock();
            match cli::print_tools(&server, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Some(Command::Call(call)) => {
            runtime.block_on(run_call(VoucherServer::new(source, projects), call))
        }
    };
    // Do not wait for threads blocked on stdin: the work is done.
    runtime.shutdown_background();
    code
}

/// glibc's allocator hands every buffer above 128 KiB to mmap and returns it
/// on free, so each large page of codes (a few hundred KiB of JSON) costs
/// fresh page faults. Buffers up to 4 MiB now stay in the heap; larger ones
/// (an answer near the 16 MiB cap) are still mapped, grown in place and
/// given back. One arena suits this single-threaded runtime.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called once,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    }
}

/// Serves MCP on stdin/stdout until stdin closes or a signal arrives.
async fn serve(source: Source, projects: Vec<ProjectEntry>, config: &Config) -> ExitCode {
    // Listen for signals before anything else, so that one arriving during
    // the handshake also ends the process cleanly.
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
        version = bloomreach_vouchers_mcp::SERVER_VERSION,
        base_url = %config.base_url,
        credentials = config.credentials.is_some(),
        source = source.kind(),
        "serving MCP on stdio"
    );
    if config.credentials.is_none() && !config.demo {
        tracing::warn!(
            "no API key configured: set BLOOMREACH_API_KEY_ID and BLOOMREACH_API_SECRET; tools will answer with an error until then"
        );
    }
    let (reader, writer) = rmcp::transport::stdio_pipes();
    let (reader, stdin_closed) = EofSignalling::new(reader);
    let server = VoucherServer::with_stdin_signal(source, projects, stdin_closed);
    let running = tokio::select! {
        started = server.serve((reader, writer)) => match started {
            Ok(running) => running,
            Err(e) => {
                tracing::info!(reason = %e, "session ended before it started");
                return ExitCode::SUCCESS;
            }
        },
        signal = &mut signal => {
            tracing::info!(signal, "stopping");
            return ExitCode::SUCCESS;
        }
    };
    let stop = running.cancellation_token();
    tokio::select! {
        reason = running.waiting() => {
            tracing::info!(reason = ?reason.ok(), "session ended");
        }
        signal = &mut signal => {
            tracing::info!(signal, "stopping");
            stop.cancel();
        }
    }
    ExitCode::SUCCESS
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Runs one tool from the command line and prints its envelope.
async fn run_call(server: VoucherServer, call: CallArgs) -> ExitCode {
    let args = match cli::call_arguments(call.json.as_deref(), &call.pairs) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let on_retry = |notice: &bloomreach_vouchers_mcp::bloomreach::RetryNotice| {
        eprintln!("{notice}");
    };
    match server.call(&call.tool, Some(args), &on_retry).await {
        None => {
            eprintln!(
                "error: unknown tool {:?}; the tools are {}",
                call.tool,
                bloomreach_vouchers_mcp::tools::catalog::TOOL_NAMES.join(", ")
            );
            ExitCode::from(2)
        }
        Some(outcome) => {
            // The `call` subcommand owns stdout: no MCP session runs here.
            let rendered = cli::render(&outcome.text, cli::stdout_is_terminal());
            if writeln!(std::io::stdout().lock(), "{rendered}").is_err() {
                return ExitCode::FAILURE;
            }
            if outcome.is_error {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
