//! The process: read the settings, start logging, pick the backend, then
//! serve MCP on stdio or run a command-line subcommand.

use std::process::ExitCode;

use clap::Parser;

use bloomreach_vouchers_mcp::cli::{self, Cli, Command};
use bloomreach_vouchers_mcp::config::Config;
use bloomreach_vouchers_mcp::tools::VoucherServer;
use bloomreach_vouchers_mcp::{logging, serve};

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let config = match Config::from_settings(&cli.settings) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = logging::init(&config.log_filter) {
        return usage_error(&e);
    }
    let backend = config.backend();
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
        None | Some(Command::Serve) => {
            runtime.block_on(serve::serve(backend, &config));
            ExitCode::SUCCESS
        }
        Some(Command::Tools) => {
            let server = VoucherServer::new(backend, config.projects);
            match cli::print_tools(&server, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Some(Command::Call(call)) => runtime.block_on(cli::run_call(
            VoucherServer::new(backend, config.projects),
            call,
        )),
        Some(Command::Login(args)) => runtime.block_on(cli::run_login(&config, &args)),
        Some(Command::Logout) => cli::run_logout(&config),
    };
    // Do not wait for threads blocked on stdin: the work is done.
    runtime.shutdown_background();
    code
}

/// One line on stderr, exit status 2.
fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
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
