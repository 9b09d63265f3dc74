//! Settings, read once at start from flags and environment variables (the flag wins), checked
//! into a [`Config`]. A setting that cannot work is a [`ConfigError`], which `main` reports on
//! stderr before exiting with status 2. Missing credentials are *not* an error: the server still
//! starts, so that an assistant can show the user which settings to add.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use reqwest::Url;

use crate::backend::loomi::pacing::Limits;
use crate::backend::loomi::{ClientIdentity, CredentialsFile, LoomiClient, LoomiOptions};
use crate::backend::network::{CaFileProblem, ExtraRoots, Network, Proxies};
use crate::backend::rest::Endpoint;
use crate::backend::{Backend, ClientOptions, Id, RestClient};
pub use crate::backend::{Credentials, ProjectEntry, Secret};

pub const DEFAULT_BASE_URL: &str = "https://api.exponea.com";
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Loomi's tools call dashboard APIs that can take tens of seconds.
pub const DEFAULT_LOOMI_TIMEOUT_SECS: u64 = 60;
/// This server at info (one line per tool call), the MCP library at warn.
pub const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";
pub const MAX_TIMEOUT_SECS: u64 = 600;

/// The environment variable names, shared by the flags and by messages that
/// tell a person what to set.
pub mod env {
    pub const BASE_URL: &str = "BLOOMREACH_API_BASE_URL";
    pub const KEY_ID: &str = "BLOOMREACH_API_KEY_ID";
    pub const SECRET: &str = "BLOOMREACH_API_SECRET";
    pub const TIMEOUT: &str = "BLOOMREACH_TIMEOUT_SECS";
    pub const PROJECT_TOKEN: &str = "BLOOMREACH_PROJECT_TOKEN";
    pub const CA_FILE: &str = "BLOOMREACH_CA_FILE";
    pub const LOOMI_URL: &str = "BLOOMREACH_LOOMI_URL";
    pub const LOOMI_CLIENT_ID: &str = "BLOOMREACH_LOOMI_CLIENT_ID";
    pub const LOOMI_CLIENT_SECRET: &str = "BLOOMREACH_LOOMI_CLIENT_SECRET";
    pub const LOOMI_CLIENT_METADATA_URL: &str = "BLOOMREACH_LOOMI_CLIENT_METADATA_URL";
    pub const CREDENTIALS_FILE: &str = "BLOOMREACH_CREDENTIALS_FILE";
    pub const LOG: &str = "RUST_LOG";
    pub const DEMO: &str = "BLOOMREACH_DEMO";
    /// The proxy variables, lower case first as curl reads them; messages
    /// show the upper-case spelling.
    pub const PROXIES: crate::backend::network::ProxyVariables =
        crate::backend::network::ProxyVariables {
            https: ["https_proxy", "HTTPS_PROXY"],
            http: ["http_proxy", "HTTP_PROXY"],
            all: ["all_proxy", "ALL_PROXY"],
            no: ["no_proxy", "NO_PROXY"],
        };
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
    /// Default: 30, or 60 with Loomi Connect (its tools call dashboard APIs that can take tens of seconds).
    #[arg(long, env = env::TIMEOUT, hide_env_values = true, global = true)]
    pub timeout_secs: Option<String>,

    /// Projects for list_projects: `token[=Display name]`, comma-separated. The first is the default.
    #[arg(long, env = env::PROJECT_TOKEN, hide_env_values = true, global = true)]
    pub project_token: Option<String>,

    /// A PEM file of certificate authorities to trust beside the system's (a company's TLS-inspecting proxy).
    #[arg(long, env = env::CA_FILE, hide_env_values = true, value_name = "PEM_FILE", global = true)]
    pub ca_file: Option<String>,

    /// The Loomi Connect MCP endpoint, from Bloomreach's setup page: `https://<region>.connect.loomi.ai/mcp`,
    /// region `us`, `eu`, `uk`, `ca` or `ap` (`brx`: Bloomreach's partner demo server).
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
    /// `--demo` alone turns it on; the variable takes `true`/`1` (or `false`/`0`).
    #[arg(long, env = env::DEMO, hide_env_values = true, global = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub demo: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| Secret::REDACTED);
        f.debug_struct("Settings")
            .field("api_base_url", &self.api_base_url)
            .field("api_key_id", &self.api_key_id)
            .field("api_secret", &hidden(&self.api_secret))
            .field("timeout_secs", &self.timeout_secs)
            .field("project_token", &self.project_token)
            .field("log_filter", &self.log_filter)
            .field("ca_file", &self.ca_file)
            .field("loomi_url", &self.loomi_url)
            .field("loomi_client_id", &self.loomi_client_id)
            .field("loomi_client_secret", &hidden(&self.loomi_client_secret))
            .field("loomi_client_metadata_url", &self.loomi_client_metadata_url)
            .field("credentials_file", &self.credentials_file)
            .field("demo", &self.demo)
            .finish()
    }
}

/// The folder and file of the stored Loomi login, under the user's config folder.
pub const CREDENTIALS_FOLDER: &str = "bloomreach-vouchers-mcp";
pub const CREDENTIALS_FILE_NAME: &str = "loomi-credentials.json";

/// Where Loomi Connect is: its MCP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoomiSettings {
    pub url: Url,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsPath {
    pub path: std::path::PathBuf,
    /// The default place (the user's config folder): its folder is ours.
    pub default: bool,
}

/// The checked settings the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub base_url: Url,
    pub timeout: Duration,
    /// `None` when either half is missing: tools then answer an error naming both settings.
    pub credentials: Option<Credentials>,
    pub projects: Vec<ProjectEntry>,
    pub demo: bool,
    pub network: Network,
    pub log_filter: String,
    /// Set when the Loomi URL is, which selects that backend.
    pub loomi: Option<LoomiSettings>,
    /// Who the OAuth client is, whether or not a URL is set.
    pub loomi_identity: ClientIdentity,
    /// `None` when no config folder is known.
    pub credentials_file: Option<CredentialsPath>,
}

/// A setting that cannot work, with the words to say why.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    /// The flag of the same meaning, where there is one.
    pub flag: Option<&'static str>,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The problem may quote a value as set: bounded, on one line.
        let problem = crate::text::shorten(&crate::text::one_line(&self.problem), 600);
        match self.flag {
            Some(flag) => write!(f, "{} (--{flag}) {problem}", self.variable),
            None => write!(f, "{} {problem}", self.variable),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn new(variable: &'static str, flag: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            flag: Some(flag),
            problem: problem.into(),
        }
    }

    /// The error for a person who may have only the bundle's form: the
    /// variable, the form's field, what is wrong and what to do.
    pub fn for_person(&self) -> String {
        let field = form_label(self.variable)
            .map(|label| {
                format!(" (the \"{label}\" field of the extension's settings in Claude Desktop)")
            })
            .unwrap_or_default();
        format!(
            "The server's setup is incomplete: {}{field} {}. Change the setting where the server is configured (in Claude Desktop: Settings, Extensions, Bloomreach Vouchers, Configure; elsewhere the server's environment in the assistant's MCP settings), then restart the server",
            self.variable,
            crate::text::shorten(&crate::text::one_line(&self.problem), 600).trim_end_matches('.')
        )
    }
}

/// `BLOOMREACH_DEMO` / `--demo`: on for `true`, `1`, `yes`, `on`; off for
/// `false`, `0`, `no`, `off` or not set.
pub fn parse_demo(raw: Option<&str>) -> Result<bool, ConfigError> {
    let raw = given(raw).unwrap_or("false");
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            env::DEMO,
            "demo",
            format!(
                "must be true or false, not {:?}",
                crate::text::shorten(raw, 40)
            ),
        )),
    }
}

/// The label of the field that sets `variable` in the bundle's form
/// (Claude Desktop's extension settings), where it has one.
pub fn form_label(variable: &str) -> Option<&'static str> {
    Some(match variable {
        env::LOOMI_URL => "Loomi Connect URL",
        env::KEY_ID => "API key ID",
        env::SECRET => "API secret",
        env::PROJECT_TOKEN => "Projects",
        env::BASE_URL => "API base URL",
        env::TIMEOUT => "Timeout (seconds)",
        env::CA_FILE => "Extra CA certificates",
        env::LOOMI_CLIENT_ID => "Loomi OAuth client ID",
        env::LOOMI_CLIENT_SECRET => "Loomi OAuth client secret",
        env::LOOMI_CLIENT_METADATA_URL => "Loomi OAuth client metadata URL",
        env::CREDENTIALS_FILE => "Where the Loomi login is kept",
        env::LOG => "Log filter",
        env::DEMO => "Demo data (no account needed)",
        _ => return None,
    })
}

/// The value of a setting, or `None` when it is not set: absent, blank, or
/// a template placeholder left unfilled (an MCP Bundle's optional field
/// left empty arrives as `${user_config.NAME}` in some hosts).
pub fn given(value: Option<&str>) -> Option<&str> {
    let value = value?.trim();
    let placeholder = value.starts_with("${") && value.ends_with('}') && !value[2..].contains('{');
    (!value.is_empty() && !placeholder).then_some(value)
}

impl Config {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let demo = parse_demo(s.demo.as_deref())?;
        let base_url = parse_base_url(given(Some(&s.api_base_url)).unwrap_or(DEFAULT_BASE_URL))?;
        let loomi_given = given(s.loomi_url.as_deref()).is_some() && !demo;
        let timeout = match given(s.timeout_secs.as_deref()) {
            Some(raw) => parse_timeout(raw)?,
            None if loomi_given => Duration::from_secs(DEFAULT_LOOMI_TIMEOUT_SECS),
            None => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        };
        let key_id = given(s.api_key_id.as_deref());
        let secret = given(s.api_secret.as_deref());
        let [id, sec] = [env::KEY_ID, env::SECRET];
        let half_missing = match (key_id, secret) {
            _ if demo => None,
            (Some(_), None) => Some((sec, "api-secret", id, "key's secret", "key ID")),
            (None, Some(_)) => Some((id, "api-key-id", sec, "key ID", "secret")),
            _ => None,
        };
        if let Some((variable, flag, other, add, clear)) = half_missing {
            let problem = format!(
                "is not set, but {other} is: an API key needs both halves, so add the {add} (or clear the {clear} to use Loomi Connect instead)"
            );
            return Err(ConfigError::new(variable, flag, problem));
        }
        let credentials = key_id.zip(secret).map(|(key_id, secret)| Credentials {
            key_id: key_id.to_owned(),
            secret: Secret::new(secret),
        });
        let projects = parse_projects(given(s.project_token.as_deref()).unwrap_or(""))?;
        let loomi_identity = ClientIdentity {
            client_id: given(s.loomi_client_id.as_deref()).map(str::to_owned),
            client_secret: given(s.loomi_client_secret.as_deref()).map(Secret::new),
            client_metadata_url: given(s.loomi_client_metadata_url.as_deref())
                .map(parse_client_metadata_url)
                .transpose()?,
        };
        if loomi_identity.client_secret.is_some() && loomi_identity.client_id.is_none() {
            return Err(ConfigError::new(
                env::LOOMI_CLIENT_SECRET,
                "loomi-client-secret",
                format!(
                    "is set without {}: a client secret belongs to a client registered in advance, so set its id too, or unset the secret",
                    env::LOOMI_CLIENT_ID
                ),
            ));
        }
        let loomi = given(s.loomi_url.as_deref())
            .map(|raw| parse_loomi_url(raw).map(|url| LoomiSettings { url }))
            .transpose()?;
        if loomi.is_some() && (key_id.is_some() || secret.is_some()) && !demo {
            return Err(ConfigError::new(
                env::LOOMI_URL,
                "loomi-url",
                format!(
                    "and an API key ({} / {}) are both set; they are two ways to the data, so keep one: unset {} to use the API key, or the key settings to use Loomi Connect",
                    env::KEY_ID,
                    env::SECRET,
                    env::LOOMI_URL
                ),
            ));
        }
        let credentials_file = given(s.credentials_file.as_deref())
            .map(|path| (Path::new(path).to_owned(), false))
            .or_else(|| {
                let dir = user_config_folder()?;
                Some((
                    dir.join(CREDENTIALS_FOLDER).join(CREDENTIALS_FILE_NAME),
                    true,
                ))
            })
            .map(|(path, default)| CredentialsPath { path, default });
        if loomi.is_some() && credentials_file.is_none() && !demo {
            return Err(ConfigError::new(
                env::CREDENTIALS_FILE,
                "credentials-file",
                "must be set: no config folder is known for this user, so there is nowhere to keep the Loomi Connect login",
            ));
        }
        let network = Network {
            extra_roots: given(s.ca_file.as_deref())
                .map(|path| read_ca_file(Path::new(path)))
                .transpose()?
                .unwrap_or_default(),
            proxies: Proxies::from_lookup(&env::PROXIES, |name| std::env::var(name).ok()).map_err(
                |p| ConfigError {
                    variable: p.variable,
                    flag: None,
                    problem: p.detail,
                },
            )?,
        };
        Ok(Self {
            base_url,
            credentials,
            timeout,
            projects,
            demo,
            network,
            log_filter: given(Some(&s.log_filter))
                .unwrap_or(DEFAULT_LOG_FILTER)
                .to_owned(),
            loomi,
            loomi_identity,
            credentials_file,
        })
    }

    /// The backend these settings ask for. Makes no request and reads no
    /// file: the first call does.
    pub fn backend(&self) -> Backend {
        if self.demo {
            return Backend::demo();
        }
        if let (Some(loomi), Some(file)) = (&self.loomi, &self.credentials_file) {
            return Backend::Loomi(LoomiClient::new(LoomiOptions {
                url: loomi.url.clone(),
                identity: self.loomi_identity.clone(),
                file: CredentialsFile::new(file.path.clone(), file.default),
                timeout: self.timeout,
                network: self.network.clone(),
                limits: Limits::LOOMI,
            }));
        }
        let Some(credentials) = &self.credentials else {
            return Backend::Unconfigured;
        };
        let mut options =
            ClientOptions::new(self.base_url.clone(), credentials.clone(), self.timeout);
        options.network = self.network.clone();
        Backend::Rest(RestClient::new(options))
    }
}

/// The user's config folder: `$XDG_CONFIG_HOME` or `~/.config` on Linux,
/// `~/Library/Application Support` on macOS, `%APPDATA%` on Windows (the
/// variable first, as people and installers set it).
fn user_config_folder() -> Option<std::path::PathBuf> {
    #[cfg(windows)]
    if let Some(appdata) = std::env::var_os("APPDATA").filter(|v| !v.is_empty()) {
        return Some(appdata.into());
    }
    dirs::config_dir()
}

pub fn read_ca_file(path: &Path) -> Result<ExtraRoots, ConfigError> {
    let err = |problem: String| ConfigError::new(env::CA_FILE, "ca-file", problem);
    let shown = path.display();
    ExtraRoots::read(path).map_err(|problem| match problem {
        CaFileProblem::Unreadable { detail } => err(format!("cannot be read ({detail}): {shown}")),
        CaFileProblem::NoCertificate => err(format!(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----): {shown}"
        )),
        CaFileProblem::BadCertificate { index, detail } => err(format!(
            "holds a certificate that cannot be used (number {index}: {detail}): {shown}"
        )),
    })
}

/// The longest endpoint URL taken: real ones are far shorter, and a longer
/// one would fail every call rather than the start.
pub const MAX_URL_CHARS: usize = 2048;

/// A URL as a message may show it: whatever stands between `://` and an
/// `@` (credentials) replaced, and at most 200 characters.
pub fn shown_url(raw: &str) -> String {
    let text = crate::text::shorten(raw.trim(), 200);
    let scheme_end = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..scheme_end], &rest[at..]),
        None => text,
    }
}

/// An endpoint URL: absolute, with a host, and `https` (or `http` to a
/// loopback host). The problem, in words, names what is wrong.
fn endpoint_url(raw: &str) -> Result<Url, String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_URL_CHARS {
        return Err(format!(
            "is {} characters long, more than the {MAX_URL_CHARS} a URL may have here",
            trimmed.chars().count()
        ));
    }
    if !trimmed.contains("://") && !trimmed.is_empty() {
        return Err(format!(
            "has no https:// in front: add it, as in \"https://{}\"",
            shown_url(trimmed)
        ));
    }
    let url = Url::parse(trimmed)
        .map_err(|e| format!("is not a valid URL ({e}): {:?}", shown_url(trimmed)))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()).map(str::to_owned) else {
        return Err(format!("has no host: {:?}", shown_url(trimmed)));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&host) => Ok(url),
        "http" => Err(format!(
            "uses plain http:// to {host}, which is not a loopback host; use https://"
        )),
        other => Err(format!(
            "must start with https:// (or http:// to a loopback host), not {other}://"
        )),
    }
}

/// An [`endpoint_url`] without credentials (`instead` says what to use), a
/// fragment, or (with `no_query`) a query.
fn plain_endpoint_url(raw: &str, instead: &str, no_query: bool) -> Result<Url, String> {
    let url = endpoint_url(raw)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("must not carry credentials; {instead} instead"));
    }
    if url.fragment().is_some() || (no_query && url.query().is_some()) {
        let what = if no_query { "a query or " } else { "a " };
        return Err(format!(
            "must not carry {what}fragment: {:?}",
            shown_url(raw)
        ));
    }
    Ok(url)
}

/// Parses and checks the base URL: no credentials, query or fragment of its own.
pub fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let err = |problem: String| ConfigError::new(env::BASE_URL, "api-base-url", problem);
    let instead = "set BLOOMREACH_API_KEY_ID and BLOOMREACH_API_SECRET";
    let url = plain_endpoint_url(raw, instead, true).map_err(err)?;
    // A request URL that cannot be made now would fail every call later.
    let probe = Id::new("probe").expect("a valid id");
    match (Endpoint::Pools { project_id: &probe }).url(url.as_str().trim_end_matches('/')) {
        Ok(_) => Ok(url),
        Err(e) => Err(err(format!(
            "cannot be the start of a request URL ({e}): {:?}",
            shown_url(raw)
        ))),
    }
}

/// Checks a client ID metadata document URL: `https://`, with a path.
fn parse_client_metadata_url(raw: &str) -> Result<String, ConfigError> {
    let problem = match Url::parse(raw.trim()) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() && u.path() != "/" => {
            return Ok(raw.trim().to_owned())
        }
        Ok(_) => "must be an https:// URL with a path",
        Err(_) => "is not a URL; give an https:// URL",
    };
    Err(ConfigError::new(
        env::LOOMI_CLIENT_METADATA_URL,
        "loomi-client-metadata-url",
        format!("{problem}, e.g. https://example.com/client-metadata.json"),
    ))
}

/// Parses and checks the Loomi Connect MCP URL: no credentials or fragment.
pub fn parse_loomi_url(raw: &str) -> Result<Url, ConfigError> {
    let err = |problem: String| ConfigError::new(env::LOOMI_URL, "loomi-url", problem);
    let instead = "log in with `bloomreach-vouchers-mcp login`";
    let mut url = plain_endpoint_url(raw, instead, false).map_err(err)?;
    // `https://eu.connect.loomi.ai/mcp/` is the same endpoint as `.../mcp`.
    if url.path().len() > 1 && url.path().ends_with('/') {
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(if path.is_empty() { "/" } else { &path });
    }
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses the per-attempt timeout: whole seconds, 1 to [`MAX_TIMEOUT_SECS`].
pub fn parse_timeout(raw: &str) -> Result<Duration, ConfigError> {
    let trimmed = raw.trim();
    let problem = match trimmed.parse::<u64>() {
        Ok(secs @ 1..=MAX_TIMEOUT_SECS) => return Ok(Duration::from_secs(secs)),
        Ok(secs) => format!("must be between 1 and {MAX_TIMEOUT_SECS} seconds (got {secs})"),
        Err(_) => format!("must be a whole number of seconds (got {trimmed:?})"),
    };
    Err(ConfigError::new(env::TIMEOUT, "timeout-secs", problem))
}

/// Parses `token[=Display name]` entries, comma-separated. Blank entries are
/// skipped; a token given twice is listed once.
pub fn parse_projects(raw: &str) -> Result<Vec<ProjectEntry>, ConfigError> {
    let err = |problem: String| ConfigError::new(env::PROJECT_TOKEN, "project-token", problem);
    let mut projects: Vec<ProjectEntry> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, name) = entry
            .split_once('=')
            .map_or((entry, ""), |(i, n)| (i.trim(), n.trim()));
        if id.is_empty() {
            return Err(err(format!("has an entry without a token: {entry:?}")));
        }
        if id.contains('/') || Id::new(id).is_err() {
            return Err(err(format!("has a token that is not a project id: {id:?}")));
        }
        let name = if name.is_empty() { id } else { name };
        if !projects.iter().any(|p| p.id == id) {
            projects.push(ProjectEntry::named(id, name));
        }
    }
    Ok(projects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        // Built by hand: the flags' defaults are the clap grammar's business.
        Settings {
            api_base_url: DEFAULT_BASE_URL.to_owned(),
            api_key_id: Some("key-id".to_owned()),
            api_secret: Some("s3cr3t-value".to_owned()),
            timeout_secs: Some("30".to_owned()),
            project_token: None,
            log_filter: "info".to_owned(),
            ca_file: None,
            loomi_url: None,
            loomi_client_id: None,
            loomi_client_secret: None,
            loomi_client_metadata_url: None,
            credentials_file: None,
            demo: None,
        }
    }

    #[test]
    fn blank_and_unfilled_placeholders_mean_not_set() {
        for unset in [
            "",
            "   ",
            "${user_config.api_key_id}",
            " ${user_config.timeout} ",
        ] {
            assert_eq!(given(Some(unset)), None, "{unset:?}");
        }
        assert_eq!(given(None), None);
        assert_eq!(given(Some(" 30 ")), Some("30"));
        assert_eq!(given(Some("${a}b")), Some("${a}b"));
        assert_eq!(given(Some("$secret{x}")), Some("$secret{x}"));

        let s = Settings {
            api_base_url: "${user_config.api_base_url}".to_owned(),
            api_key_id: Some("${user_config.api_key_id}".to_owned()),
            api_secret: Some(String::new()),
            timeout_secs: Some("".to_owned()),
            project_token: Some("${user_config.project_token}".to_owned()),
            log_filter: "${user_config.log}".to_owned(),
            ca_file: Some("${user_config.ca_file}".to_owned()),
            loomi_url: Some("${user_config.loomi_url}".to_owned()),
            loomi_client_id: Some(String::new()),
            loomi_client_secret: Some("${user_config.loomi_client_secret}".to_owned()),
            loomi_client_metadata_url: Some(String::new()),
            credentials_file: Some("${user_config.credentials_file}".to_owned()),
            demo: None,
        };
        let config = Config::from_settings(&s).unwrap();
        assert_eq!(config.base_url.as_str(), "https://api.exponea.com/");
        assert_eq!(config.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(config.credentials, None);
        assert_eq!(config.projects, vec![]);
        assert_eq!(config.log_filter, DEFAULT_LOG_FILTER);
        assert!(config.network.extra_roots.is_empty());
        assert_eq!(config.loomi, None);
        assert_eq!(config.loomi_identity.client_id, None);
        assert!(config.credentials_file.as_ref().is_none_or(|c| c.default));
    }

    #[test]
    fn loomi_url_and_an_api_key_together_are_refused_in_one_line() {
        let mut s = settings();
        s.loomi_url = Some("https://eu.connect.loomi.ai/mcp".to_owned());
        let e = Config::from_settings(&s).unwrap_err();
        assert_eq!(e.variable, env::LOOMI_URL);
        let text = e.to_string();
        assert!(text.contains("BLOOMREACH_API_KEY_ID"), "{text}");
        assert!(!text.contains('\n'));
        // --demo wins over both.
        s.demo = Some("true".into());
        assert!(Config::from_settings(&s).is_ok());
        s.demo = None;
        s.api_key_id = None;
        s.api_secret = None;
        let config = Config::from_settings(&s).unwrap();
        assert_eq!(
            config.loomi.unwrap().url.as_str(),
            "https://eu.connect.loomi.ai/mcp"
        );
        s.loomi_url = Some(format!("https://eu.connect.loomi.ai/{}", "a".repeat(3000)));
        let e = Config::from_settings(&s).unwrap_err().to_string();
        assert!(e.contains("more than the 2048"), "{e}");
        s.loomi_url = Some("https://eu.connect.loomi.ai/mcp/".to_owned());
        assert_eq!(
            Config::from_settings(&s)
                .unwrap()
                .loomi
                .unwrap()
                .url
                .as_str(),
            "https://eu.connect.loomi.ai/mcp",
            "a trailing slash names the same endpoint"
        );
        s.loomi_url = Some("http://connect.example/mcp".to_owned());
        assert_eq!(
            Config::from_settings(&s).unwrap_err().to_string(),
            "BLOOMREACH_LOOMI_URL (--loomi-url) uses plain http:// to connect.example, which is not a loopback host; use https://"
        );
    }

    #[test]
    fn defaults_give_https_exponea_and_thirty_seconds() {
        let config = Config::from_settings(&settings()).unwrap();
        assert_eq!(config.base_url.as_str(), "https://api.exponea.com/");
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(
            config.credentials,
            Some(Credentials {
                key_id: "key-id".to_owned(),
                secret: Secret::new("s3cr3t-value")
            })
        );
    }

    #[test]
    fn half_a_key_is_a_setting_error_naming_the_missing_half() {
        let mut s = settings();
        s.api_secret = None;
        let e = Config::from_settings(&s).unwrap_err();
        assert_eq!(e.variable, env::SECRET);
        assert!(e.problem.contains("BLOOMREACH_API_KEY_ID is"), "{e}");
        let mut s = settings();
        s.api_key_id = Some("   ".to_owned());
        let e = Config::from_settings(&s).unwrap_err();
        assert_eq!(e.variable, env::KEY_ID);
        assert!(!e.to_string().contains("s3cr3t-value"), "{e}");
        let person = e.for_person();
        assert!(person.contains("\"API key ID\" field"), "{person}");
        // Neither half: no credentials, and no error.
        let mut s = settings();
        s.api_key_id = None;
        s.api_secret = Some("${user_config.api_secret}".into());
        assert_eq!(Config::from_settings(&s).unwrap().credentials, None);
    }

    #[test]
    fn demo_is_on_for_true_and_one_and_off_for_false_zero_or_unset() {
        for (raw, on) in [
            (None, false),
            (Some("true"), true),
            (Some("1"), true),
            (Some("TRUE"), true),
            (Some("false"), false),
            (Some("0"), false),
            (Some(""), false),
            (Some("${user_config.demo}"), false),
        ] {
            assert_eq!(parse_demo(raw).unwrap(), on, "{raw:?}");
        }
        let e = parse_demo(Some("maybe")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BLOOMREACH_DEMO (--demo) must be true or false, not \"maybe\""
        );
    }

    #[test]
    fn urls_in_setting_errors_never_show_credentials() {
        for raw in [
            "https://id:s3cr3t@host:abc/mcp",
            "id:s3cr3t@eu.connect.loomi.ai/mcp",
            "ftp://id:s3cr3t@host/x",
        ] {
            let e = parse_loomi_url(raw).unwrap_err();
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
            assert!(!e.for_person().contains("s3cr3t"), "{e}");
        }
        assert_eq!(shown_url("https://a:b@h/p?q=1"), "https://***@h/p?q=1");
        assert_eq!(shown_url("https://h/p"), "https://h/p");
    }

    #[test]
    fn a_url_without_a_scheme_is_told_to_add_https() {
        let e = parse_loomi_url("eu.connect.loomi.ai/mcp").unwrap_err();
        assert_eq!(
            e.to_string(),
            "BLOOMREACH_LOOMI_URL (--loomi-url) has no https:// in front: add it, as in \"https://eu.connect.loomi.ai/mcp\""
        );
        assert!(e.for_person().contains("\"Loomi Connect URL\" field"));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let s = settings();
        let config = Config::from_settings(&s).unwrap();
        let shown = format!("{s:?} {config:?} {:?}", config.credentials);
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn base_url_accepts_https_with_prefix_and_loopback_http() {
        assert_eq!(
            parse_base_url("https://gateway.example.com/bloomreach/")
                .unwrap()
                .path(),
            "/bloomreach/"
        );
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9000/api",
            "http://127.9.9.9",
        ] {
            assert!(parse_base_url(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn base_url_rejects_remote_http_and_junk_with_one_line() {
        let e = parse_base_url("http://api.example.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            "BLOOMREACH_API_BASE_URL (--api-base-url) uses plain http:// to api.example.com, which is not a loopback host; use https://"
        );
        for bad in [
            "not a url",
            "ftp://x.example",
            "https://u:p@x.example",
            "https://x.example/?a=1",
            "http://10.0.0.1",
        ] {
            let e = parse_base_url(bad).unwrap_err();
            assert_eq!(e.variable, env::BASE_URL, "{bad}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn timeout_must_be_whole_positive_seconds() {
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_timeout("0").unwrap_err().to_string(),
            "BLOOMREACH_TIMEOUT_SECS (--timeout-secs) must be between 1 and 600 seconds (got 0)"
        );
        assert_eq!(
            parse_timeout("1.5").unwrap_err().to_string(),
            "BLOOMREACH_TIMEOUT_SECS (--timeout-secs) must be a whole number of seconds (got \"1.5\")"
        );
        assert!(parse_timeout("-3").is_err());
        assert!(parse_timeout("601").is_err());
    }

    #[test]
    fn project_tokens_parse_with_optional_names() {
        let projects =
            parse_projects(" abc-123 = Main store ,def-456,, abc-123=dup ,ghi=").unwrap();
        assert_eq!(
            projects,
            vec![
                ProjectEntry::named("abc-123", "Main store"),
                ProjectEntry::named("def-456", "def-456"),
                ProjectEntry::named("ghi", "ghi"),
            ]
        );
        assert_eq!(parse_projects("").unwrap(), vec![]);
        assert!(parse_projects("=Name only").is_err());
        assert!(parse_projects("a/b").is_err());
    }
}
