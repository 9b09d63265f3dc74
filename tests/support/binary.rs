//! The one way to build a command for the binary: a clean environment, so
//! that nothing from the host (a real API key, a log filter, colours) leaks
//! into a run, with the arguments and variables the caller gives. The tokio
//! and the blocking variant are the same command.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::{KEY_ID, SECRET};

/// The binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_bloomreach-vouchers-mcp");

/// Every variable the binary reads; removed from each child so the host's
/// environment cannot leak in.
const CLEARED_ENV: [&str; 21] = [
    "BLOOMREACH_API_BASE_URL",
    "BLOOMREACH_API_KEY_ID",
    "BLOOMREACH_API_SECRET",
    "BLOOMREACH_TIMEOUT_SECS",
    "BLOOMREACH_PROJECT_TOKEN",
    "BLOOMREACH_CA_FILE",
    "BLOOMREACH_LOOMI_URL",
    "BLOOMREACH_LOOMI_CLIENT_ID",
    "BLOOMREACH_CREDENTIALS_FILE",
    "RUST_LOG",
    "NO_COLOR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    // The system's store is read as it is, not as the host extended it.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// How long a one-shot run of the binary may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(10);

/// Removes every variable the binary reads from `cmd`'s environment and
/// turns colours off. For commands that start the binary indirectly too.
pub fn clear_environment(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1")
}

/// A blocking command for `bin` with a clean environment, `args` and `env`
/// (stdin empty unless the caller pipes it).
pub fn std_command_for(
    bin: &Path,
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    clear_environment(&mut cmd);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// [`std_command_for`] the binary under test.
pub fn std_command(args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> std::process::Command {
    std_command_for(Path::new(BIN), args, env)
}

/// The same command for tokio, killed when its handle drops.
pub fn command_for(
    bin: &Path,
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(std_command_for(bin, args, env));
    cmd.kill_on_drop(true);
    cmd
}

/// [`command_for`] the binary under test.
pub fn command(args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> tokio::process::Command {
    command_for(Path::new(BIN), args, env)
}

/// Runs the binary once to its end, which must come within 10 s.
pub fn run(args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> Output {
    let started = Instant::now();
    let output = std_command(args, env).output().expect("run the binary");
    assert!(started.elapsed() < RUN_TIMEOUT);
    output
}

/// Arguments that point the binary at the API at `base_url` with the test
/// key ID and a 10 s timeout.
pub fn api_args(base_url: &str) -> Vec<String> {
    vec![
        "--api-base-url".into(),
        base_url.into(),
        "--api-key-id".into(),
        KEY_ID.into(),
        "--timeout-secs".into(),
        "10".into(),
    ]
}

/// The environment that goes with [`api_args`] (the secret travels by
/// environment, as the README recommends).
pub fn api_env() -> Vec<(&'static str, &'static str)> {
    vec![("BLOOMREACH_API_SECRET", SECRET)]
}
