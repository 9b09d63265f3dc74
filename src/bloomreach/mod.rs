//! The downward face: the Bloomreach Engagement API's voucher endpoints.
//! Knows HTTP; knows nothing of MCP.

pub mod client;
pub mod error;
pub mod model;

pub use client::{
    BloomreachClient, ClientOptions, CodesQuery, RetryNotice, RetryObserver, RetryPolicy,
};
pub use error::{ApiError, Subject};
