//! The command line: its grammar (every setting as a flag with an
//! environment variable, and the subcommands), and the commands for people:
//! `tools` lists the tools, `call` runs one and prints its envelope. Both go
//! through the same server code as MCP.

mod call;
mod login;
mod tools;

use std::fmt;

use clap::{Args, Parser, Subcommand};

pub use call::{call_arguments, run_call};
pub use login::{run_login, run_logout};
pub use tools::print_tools;

use crate::config::{env, Secret, DEFAULT_BASE_URL, DEFAULT_LOG_FILTER, DEFAULT_TIMEOUT_SECS};

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

/// Every setting, as read from flags and the environment.
#[derive(Clone, Args)]
pub struct Settings {
    /// Base URL of the Bloomreach Engagement API; may carry a path prefix.
    /// `https://`, or `http://` to a loopback host only.
    #[arg(long, env = env::BASE_URL, hide_env_values = true, default_value = DEFAULT_BASE_URL, global = true)]
    pub api_base_url: String,

    /// API key ID of a private-access API key.
    #[arg(long, env = env::KEY_ID, hide_env_values = true, global = true)]
    pub api_key_id: Option<String>,

    /// API key secret. Prefer the environment variable: flags show up in process lists.
    #[arg(long, env = env::SECRET, hide_env_values = true, global = true)]
    pub api_secret: Option<String>,

    /// Seconds allowed for one HTTP attempt, from sending the request to the last byte of the answer.
    #[arg(long, env = env::TIMEOUT, hide_env_values = true, default_value_t = DEFAULT_TIMEOUT_SECS.to_string(), global = true)]
    pub timeout_secs: String,

    /// Projects for list_projects: `token[=Display name]`, comma-separated. The first is the default.
    #[arg(long, env = env::PROJECT_TOKEN, hide_env_values = true, global = true)]
    pub project_token: Option<String>,

    /// A PEM file of certificate authorities to trust beside the system's (a company's TLS-inspecting proxy).
    #[arg(long, env = env::CA_FILE, hide_env_values = true, value_name = "PEM_FILE", global = true)]
    pub ca_file: Option<String>,

    /// The Loomi Connect MCP endpoint (from Bloomreach's setup page, e.g. `https://eu.connect.loomi.ai/mcp`).
    /// Setting it serves live data through Loomi Connect after `login`.
    #[arg(long, env = env::LOOMI_URL, hide_env_values = true, value_name = "URL", global = true)]
    pub loomi_url: Option<String>,

    /// An OAuth client id registered in advance for Loomi Connect; without it the client registers itself.
    #[arg(long, env = env::LOOMI_CLIENT_ID, hide_env_values = true, value_name = "ID", global = true)]
    pub loomi_client_id: Option<String>,

    /// The secret of a confidential OAuth client registered in advance (with --loomi-client-id).
    #[arg(long, env = env::LOOMI_CLIENT_SECRET, hide_env_values = true, value_name = "SECRET", global = true)]
    pub loomi_client_secret: Option<String>,

    /// An `https://` URL of an OAuth client ID metadata document, used as the client id where Loomi's authorization server supports it.
    #[arg(long, env = env::LOOMI_CLIENT_METADATA_URL, hide_env_values = true, value_name = "URL", global = true)]
    pub loomi_client_metadata_url: Option<String>,

    /// Where the Loomi login is kept. Default: `bloomreach-vouchers-mcp/loomi-credentials.json` in the user's config folder.
    #[arg(long, env = env::CREDENTIALS_FILE, hide_env_values = true, value_name = "PATH", global = true)]
    pub credentials_file: Option<String>,

    /// Log filter for stderr (tracing's EnvFilter syntax), e.g. `info`, `debug`, `bloomreach_vouchers_mcp=trace`.
    /// The default logs one line per tool call, plus warnings and errors.
    #[arg(long = "log", env = env::LOG, hide_env_values = true, default_value = DEFAULT_LOG_FILTER, global = true)]
    pub log_filter: String,

    /// Serve a built-in sample dataset (project `demo`) instead of calling the API. No credentials or network needed.
    #[arg(long, global = true)]
    pub demo: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api_base_url", &self.api_base_url)
            .field("api_key_id", &self.api_key_id)
            .field(
                "api_secret",
                &self.api_secret.as_ref().map(|_| Secret::REDACTED),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("project_token", &self.project_token)
            .field("log_filter", &self.log_filter)
            .field("ca_file", &self.ca_file)
            .field("loomi_url", &self.loomi_url)
            .field("loomi_client_id", &self.loomi_client_id)
            .field(
                "loomi_client_secret",
                &self.loomi_client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("loomi_client_metadata_url", &self.loomi_client_metadata_url)
            .field("credentials_file", &self.credentials_file)
            .field("demo", &self.demo)
            .finish()
    }
}
