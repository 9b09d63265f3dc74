//! Where voucher data comes from: the Bloomreach API, the built-in demo
//! data, or nowhere yet (no credentials configured). The tools ask a
//! [`Source`] and never care which it is.

use std::sync::Arc;

use crate::bloomreach::model::{CodesPage, Pool, PoolSummary};
use crate::bloomreach::{ApiError, BloomreachClient, ClientOptions, CodesQuery, RetryObserver};
use crate::config::Config;
use crate::demo::DemoData;

/// The data behind the tools.
#[derive(Clone, Debug)]
pub enum Source {
    Api(BloomreachClient),
    Demo(Arc<DemoData>),
    /// No API key is configured: every call answers [`ApiError::NotConfigured`].
    Unconfigured,
}

impl Source {
    /// The source the configuration asks for.
    pub fn from_config(config: &Config) -> Result<Self, reqwest::Error> {
        if config.demo {
            return Ok(Self::demo());
        }
        match &config.credentials {
            Some(credentials) => Ok(Self::Api(BloomreachClient::new(ClientOptions::new(
                config.base_url.clone(),
                credentials.clone(),
                config.timeout,
            ))?)),
            None => Ok(Self::Unconfigured),
        }
    }

    pub fn demo() -> Self {
        Self::Demo(Arc::new(DemoData::new()))
    }

    /// A word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api(_) => "api",
            Self::Demo(_) => "demo",
            Self::Unconfigured => "unconfigured",
        }
    }

    pub async fn list_pools(
        &self,
        project_id: &str,
        observer: RetryObserver<'_>,
    ) -> Result<Vec<PoolSummary>, ApiError> {
        match self {
            Self::Api(client) => client.list_pools(project_id, observer).await,
            Self::Demo(demo) => demo.list_pools(project_id),
            Self::Unconfigured => Err(ApiError::NotConfigured),
        }
    }

    pub async fn get_pool(
        &self,
        project_id: &str,
        pool_id: &str,
        observer: RetryObserver<'_>,
    ) -> Result<Pool, ApiError> {
        match self {
            Self::Api(client) => client.get_pool(project_id, pool_id, observer).await,
            Self::Demo(demo) => demo.get_pool(project_id, pool_id),
            Self::Unconfigured => Err(ApiError::NotConfigured),
        }
    }

    pub async fn list_codes(
        &self,
        query: &CodesQuery<'_>,
        observer: RetryObserver<'_>,
    ) -> Result<CodesPage, ApiError> {
        match self {
            Self::Api(client) => client.list_codes(query, observer).await,
            Self::Demo(demo) => demo.list_codes(query),
            Self::Unconfigured => Err(ApiError::NotConfigured),
        }
    }
}
