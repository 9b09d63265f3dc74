//! The command line: its grammar (the subcommands; the settings come from config) and the commands
//! for people. `tools` and `call` go through the same server code as MCP.

mod call;
mod doctor;
mod login;
mod tools;

use clap::{Args, Parser, Subcommand};

pub use call::{call_arguments, run_call};
pub use doctor::run_doctor;
pub use login::{run_login, run_logout};
pub use tools::print_tools;

pub use crate::config::Settings;

/// The command line. `--help` lists every setting with its variable; the
/// values of the credential variables are never shown.
#[derive(Debug, Parser)]
#[command(
    name = "bloomreach-vouchers-mcp",
    version,
    about = "An MCP server (stdio) that lets AI assistants read Bloomreach voucher pools and codes.",
    long_about = "An MCP server that lets AI assistants read Bloomreach voucher pools and voucher codes.\n\n\
        With no subcommand it speaks MCP (JSON-RPC) on stdin/stdout; an assistant starts it and talks to it.\n\
        Try it without an account: `bloomreach-vouchers-mcp --demo call list_voucher_pools project_id=demo`."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do. Serving MCP on stdio is the default.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP on stdin/stdout (the default when no subcommand is given).
    Serve,
    /// List the tools with their arguments.
    Tools,
    /// Run one tool and print its result envelope, e.g. `call list_voucher_codes project_id=demo pool_id=summer20 count=5`.
    Call(CallArgs),
    /// Log in to Loomi Connect with your Bloomreach account (a browser page), and keep the login for the server.
    Login(LoginArgs),
    /// Forget the stored Loomi Connect login.
    Logout,
    /// Check the setup end to end (settings, network, login, Loomi's tools, then reading a few codes), one line per step; `--json` for a report to attach to a bug report (no token, secret or voucher code in it).
    Doctor(DoctorArgs),
}

/// Arguments of the `doctor` subcommand.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of a line per step.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of the `login` subcommand.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Print the authorization URL only; do not open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Serve the login's callback on this local port (for an `ssh -L PORT:127.0.0.1:PORT` tunnel).
    #[arg(long, value_name = "PORT")]
    pub callback_port: Option<u16>,
    /// Say whether a login is stored, for which URL and until when; change nothing.
    #[arg(long)]
    pub status: bool,
}

/// Arguments of the `call` subcommand.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool to run (see `tools`).
    pub tool: String,
    /// Tool arguments as key=value pairs.
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Tool arguments as one JSON object (key=value pairs are merged over it).
    #[arg(long, value_name = "JSON")]
    pub json: Option<String>,
}
