//! The downward face: what the tools ask for (the pools of a project, one
//! pool, a page of codes), whoever serves it: the Bloomreach REST API
//! ([`rest`]), the built-in demo data ([`demo`]), or nobody yet (no way in
//! is configured). Knows HTTP; knows nothing of MCP, of tool or argument
//! names, or of the settings' names.

pub mod demo;
mod error;
mod id;
pub mod loomi;
mod model;
pub mod network;
mod notice;
mod quote;
pub mod rest;
mod secret;

use std::sync::Arc;

pub use demo::DemoData;
pub use error::{
    AnswerProblem, BackendError, LoginReason, ProxyFailure, Service, Subject, TransportFailure,
};
pub use id::{Id, IdProblem, MAX_ID_CHARS};
pub use loomi::{LoomiClient, LoomiOptions};
pub use model::{
    Code, CodeStatus, CodesPage, CodesQuery, Pool, PoolRef, PoolSummary, SkipCheck,
    MAX_CODES_PER_PAGE,
};
pub use notice::{RetryNotice, RetryObserver, RetryReason};
pub use rest::{ClientOptions, RestClient};
pub use secret::{Credentials, ProjectEntry, Secret};

/// The data behind the tools.
#[derive(Clone, Debug)]
pub enum Backend {
    Rest(RestClient),
    Loomi(LoomiClient),
    Demo(Arc<DemoData>),
    /// No way in is configured: every call answers [`BackendError::NotConfigured`].
    Unconfigured,
    /// A setting cannot work: every call answers [`BackendError::Setup`]
    /// with these words (made where the settings are known).
    Broken(Arc<str>),
}

impl Backend {
    pub fn demo() -> Self {
        Self::Demo(Arc::new(DemoData::new()))
    }

    /// A word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rest(_) => "api",
            Self::Loomi(_) => "loomi",
            Self::Demo(_) => "demo",
            Self::Unconfigured => "unconfigured",
            Self::Broken(_) => "setup incomplete",
        }
    }

    /// Whether this backend can filter codes by status (the REST API and
    /// the demo data can; Loomi Connect when its tool declares `status`).
    pub async fn filters_by_status(&self) -> Result<bool, BackendError> {
        match self {
            Self::Loomi(client) => client.filters_by_status().await,
            _ => Ok(true),
        }
    }

    /// Whether a scan gains by asking for a page before it is needed. Over
    /// the REST API it does: the page is fetched while the one before is
    /// decoded. Loomi Connect's calls are paced a second apart, so a page
    /// asked early comes no sooner and could only be a call left unread;
    /// the demo data is in memory.
    pub fn reads_ahead(&self) -> bool {
        matches!(self, Self::Rest(_))
    }

    /// Whether the backend lists projects by itself (Loomi Connect does).
    pub fn lists_projects(&self) -> bool {
        matches!(self, Self::Loomi(_))
    }

    /// Why no call can be answered, where none can: nothing configured, or
    /// a setting that cannot work.
    pub fn unusable(&self) -> Option<BackendError> {
        match self {
            Self::Unconfigured => Some(BackendError::NotConfigured),
            Self::Broken(words) => Some(BackendError::Setup {
                words: words.to_string(),
            }),
            _ => None,
        }
    }

    /// The projects this backend lists for `list_projects` when none are
    /// configured: Loomi Connect's, the demo project, or none.
    pub async fn list_projects(
        &self,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<ProjectEntry>, BackendError> {
        match self {
            Self::Loomi(client) => client.list_projects(observer).await,
            _ => self.unusable().map_or_else(|| Ok(self.own_projects()), Err),
        }
    }

    /// The projects this backend knows of by itself, for when none are
    /// configured: the demo project on demo data, none elsewhere.
    pub fn own_projects(&self) -> Vec<ProjectEntry> {
        match self {
            Self::Demo(_) => vec![demo::project()],
            Self::Rest(_) | Self::Loomi(_) | Self::Unconfigured | Self::Broken(_) => Vec::new(),
        }
    }

    pub async fn list_pools(
        &self,
        project_id: &Id,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, BackendError> {
        match self {
            Self::Rest(client) => client.list_pools(project_id, observer).await,
            Self::Loomi(client) => client.list_pools(project_id, observer).await,
            Self::Demo(demo) => demo.list_pools(project_id),
            Self::Unconfigured | Self::Broken(_) => Err(self.unusable().expect("unusable")),
        }
    }

    pub async fn get_pool(
        &self,
        pool: PoolRef<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, BackendError> {
        match self {
            Self::Rest(client) => client.get_pool(pool, observer).await,
            Self::Loomi(client) => client.get_pool(pool, observer).await,
            Self::Demo(demo) => demo.get_pool(pool.project_id, pool.pool_id),
            Self::Unconfigured | Self::Broken(_) => Err(self.unusable().expect("unusable")),
        }
    }

    pub async fn list_codes(
        &self,
        query: &CodesQuery<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, BackendError> {
        match self {
            Self::Rest(client) => client.list_codes(query, observer).await,
            Self::Loomi(client) => client.list_codes(query, observer).await,
            Self::Demo(demo) => demo.list_codes(query),
            Self::Unconfigured | Self::Broken(_) => Err(self.unusable().expect("unusable")),
        }
    }
}
