//! Logs go to stderr, never stdout (stdout carries the JSON-RPC stream).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger with an `EnvFilter` directive string such as `info`; an unreadable
/// filter is an error naming the setting.
pub fn init(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("RUST_LOG (--log) is not a valid log filter ({e}): {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| format!("could not start logging: {e}"))
}
