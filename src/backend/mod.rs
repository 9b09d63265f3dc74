//! The downward face: what the tools ask for (the pools of a project, one
//! pool, a page of codes), whoever serves it: the Bloomreach REST API
//! ([`rest`]), the built-in demo data ([`demo`]), or nobody yet (no way in
//! is configured). Knows HTTP; knows nothing of MCP, of tool or argument
//! names, or of the settings' names.

pub mod demo;
mod error;
mod id;
mod model;
pub mod network;
mod notice;
mod quote;
pub mod rest;

use std::sync::Arc;

pub use demo::DemoData;
pub use error::{AnswerProblem, BackendError, ProxyFailure, Subject, TransportFailure};
pub use id::{Id, IdProblem, MAX_ID_CHARS};
pub use model::{
    Code, CodeStatus, CodesPage, CodesQuery, Pool, PoolRef, PoolSummary, MAX_CODES_PER_PAGE,
};
pub use notice::{RetryNotice, RetryObserver, RetryReason};
pub use rest::{ClientOptions, RestClient};

use crate::config::{Config, ProjectEntry};

/// The data behind the tools.
#[derive(Clone, Debug)]
pub enum Backend {
    Rest(RestClient),
    Demo(Arc<DemoData>),
    /// No way in is configured: every call answers [`BackendError::NotConfigured`].
    Unconfigured,
}

impl Backend {
    /// The backend the configuration asks for.
    /// Makes no request and reads no file: the first call does.
    pub fn from_config(config: &Config) -> Self {
        if config.demo {
            return Self::demo();
        }
        match &config.credentials {
            Some(credentials) => {
                let mut options = ClientOptions::new(
                    config.base_url.clone(),
                    credentials.clone(),
                    config.timeout,
                );
                options.network = config.network.clone();
                Self::Rest(RestClient::new(options))
            }
            None => Self::Unconfigured,
        }
    }

    pub fn demo() -> Self {
        Self::Demo(Arc::new(DemoData::new()))
    }

    /// A word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rest(_) => "api",
            Self::Demo(_) => "demo",
            Self::Unconfigured => "unconfigured",
        }
    }

    /// Whether this backend can filter codes by status (the REST API and
    /// the demo data can).
    pub fn filters_by_status(&self) -> bool {
        true
    }

    /// The projects this backend knows of by itself, for when none are
    /// configured: the demo project on demo data, none elsewhere.
    pub fn own_projects(&self) -> Vec<ProjectEntry> {
        match self {
            Self::Demo(_) => vec![demo::project()],
            Self::Rest(_) | Self::Unconfigured => Vec::new(),
        }
    }

    pub async fn list_pools(
        &self,
        project_id: &Id,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, BackendError> {
        match self {
            Self::Rest(client) => client.list_pools(project_id, observer).await,
            Self::Demo(demo) => demo.list_pools(project_id),
            Self::Unconfigured => Err(BackendError::NotConfigured),
        }
    }

    pub async fn get_pool(
        &self,
        pool: PoolRef<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        match self {
            Self::Rest(client) => client.get_pool(pool, observer).await,
            Self::Demo(demo) => demo.get_pool(pool.project_id, pool.pool_id),
            Self::Unconfigured => Err(BackendError::NotConfigured),
        }
    }

    pub async fn list_codes(
        &self,
        query: &CodesQuery<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, BackendError> {
        match self {
            Self::Rest(client) => client.list_codes(query, observer).await,
            Self::Demo(demo) => demo.list_codes(query),
            Self::Unconfigured => Err(BackendError::NotConfigured),
        }
    }
}
