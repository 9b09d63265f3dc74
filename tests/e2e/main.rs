//! The end-to-end tests: the built binary, run as a child process and
//! spoken to as its users do (an MCP client over stdio, JSON-RPC lines by
//! hand, the command line, clients written by others), in front of a local
//! fake of the Bloomreach API or its demo data.
//!
//! One test binary, one module per behaviour; the machinery they share
//! lives in `tests/support`.

#[path = "../support/mod.rs"]
mod support;

#[cfg(target_os = "linux")]
mod body_cap;
mod bundle;
mod cli;
mod hostile_client;
mod interop;
mod loomi;
mod network;
mod process;
mod progress;
mod questions;
mod tools;
mod wire;
