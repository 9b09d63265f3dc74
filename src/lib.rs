//! `bloomreach-vouchers-mcp`: an MCP server that lets an AI assistant read
//! Bloomreach voucher pools and voucher codes.
//!
//! Data flows one way, once: the assistant calls a tool over stdio ([`serve`], [`tools`]), the tool
//! checks its arguments and asks a [`backend::Backend`] (the Bloomreach REST API, or the built-in
//! demo data), and the answer goes back wrapped in one envelope. See `ARCHITECTURE.md` for the map.

pub mod backend;
pub mod cli;
pub mod config;
pub mod logging;
pub mod serve;
pub mod text;
pub mod time;
pub mod tools;

/// The name this server reports to MCP clients and to the API.
pub const SERVER_NAME: &str = env!("CARGO_PKG_NAME");
/// The version this server reports.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// `User-Agent` sent to the API: `<name>/<version>`.
pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));
