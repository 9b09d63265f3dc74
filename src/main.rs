//! The process: read the settings, start logging, pick the backend, then
//! serve MCP on stdio or run a command-line subcommand.

use std::process::ExitCode;

use clap::Parser;
use tokio::runtime::{Builder, Runtime};

use bloomreach_vouchers_mcp::cli::{self, Cli, Command};
use bloomreach_vouchers_mcp::config::{self, Config, ConfigError};
use bloomreach_vouchers_mcp::{backend::Backend, logging, serve, tools::VoucherServer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve));
    let config = match Config::from_settings(&cli.settings) {
        Ok(config) => config,
        // Serving, a setting that cannot work does not stop the server: an
        // assistant would show only "disconnected". Every tool answers it.
        Err(e) if serving => return serve_broken(&cli, &e),
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = logging::init(&config.log_filter) {
        if !serving {
            return usage_error(&e);
        }
        // Serving, a log filter that cannot be read only costs the logs it asked for.
        let _ = logging::init(config::DEFAULT_LOG_FILTER);
        tracing::warn!("{e}; logging with the default filter instead");
    }
    let backend = config.backend();
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let code = match cli.command {
        None | Some(Command::Serve) => {
            runtime.block_on(serve::serve(backend, config.projects));
            ExitCode::SUCCESS
        }
        Some(Command::Tools) => {
            let server = VoucherServer::new(backend, config.projects);
            let printed = cli::print_tools(&server, &mut std::io::stdout().lock());
            printed.map_or(ExitCode::FAILURE, |()| ExitCode::SUCCESS)
        }
        Some(Command::Call(call)) => {
            let server = VoucherServer::new(backend, config.projects);
            runtime.block_on(cli::run_call(server, call))
        }
        Some(Command::Login(args)) => runtime.block_on(cli::run_login(&config, &args)),
        Some(Command::Logout) => cli::run_logout(&config),
        Some(Command::Doctor(args)) => {
            runtime.block_on(cli::run_doctor(&cli.settings, &config, args.json))
        }
    };
    // Do not wait for threads blocked on stdin: the work is done.
    runtime.shutdown_background();
    code
}

fn runtime() -> Option<Runtime> {
    let built = Builder::new_current_thread().enable_all().build();
    if let Err(e) = &built {
        eprintln!("error: could not start the async runtime: {e}");
    }
    built.ok()
}

/// Serves with a setting that cannot work: logged once on stderr, and answered by every tool (and
/// said in the instructions) in words that name the variable, the form's field and the fix.
fn serve_broken(cli: &Cli, e: &ConfigError) -> ExitCode {
    let given = config::given(Some(&cli.settings.log_filter));
    if given.is_none_or(|f| logging::init(f).is_err()) {
        let _ = logging::init(config::DEFAULT_LOG_FILTER);
    }
    tracing::error!("{e}; every tool will answer this until it is fixed");
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let backend = Backend::Broken(e.for_person().into());
    runtime.block_on(serve::serve(backend, Vec::new()));
    runtime.shutdown_background();
    ExitCode::SUCCESS
}

/// One line on stderr, exit status 2.
fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
