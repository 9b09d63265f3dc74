//! Machinery shared by the tests and the bench that run the built binary as
//! a child process: how to start it, the two clients that speak to it over
//! stdio (raw JSON-RPC lines and rmcp's client), the fakes of the Bloomreach
//! API behind it (wiremock, and a raw HTTP/1.1 server for what wiremock
//! cannot do), and what `/proc` says about the child.
//!
//! It is one module tree so that every user starts, speaks to and fakes for
//! the binary the same way. Each test binary includes it with
//! `#[path = "../support/mod.rs"]`, the bench with
//! `#[path = "../../tests/support/mod.rs"]`; none uses all of it.
#![allow(dead_code)]

pub mod binary;
pub mod fake_api;
pub mod fake_loomi;
pub mod json;
pub mod jsonrpc;
pub mod mcp;
pub mod proc_stats;
pub mod proxy;
pub mod raw_http;
pub mod rest;
pub mod tls;

/// A reqwest client builder for tests: reqwest is built without a TLS
/// provider of its own, so the crate's (ring) is installed first.
pub fn http_client() -> reqwest::ClientBuilder {
    bloomreach_vouchers_mcp::backend::network::trust::install_crypto_provider();
    reqwest::Client::builder()
}

/// The name and version the server must report.
pub const SERVER_NAME: &str = "bloomreach-vouchers-mcp";
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The tools, in the order the server lists them.
pub const TOOL_NAMES: [&str; 6] = [
    "list_projects",
    "list_voucher_pools",
    "get_voucher_pool",
    "list_voucher_codes",
    "get_voucher_pool_stats",
    "find_voucher_codes",
];

/// Credentials the binary is started with against a fake API.
pub const KEY_ID: &str = "e2e-key-id";
pub const SECRET: &str = "e2e-secret-Zq9";

/// Project and pool ids the wiremock fake knows.
pub const PROJECT: &str = "shop-eu";
pub const POOL: &str = "p1";
