//! How this process reaches the network, for every backend that calls out:
//! which certificate authorities TLS trusts ([`trust`]) and which proxy a
//! request goes through ([`proxy`]). Each backend starts its HTTP client
//! from [`Network::client_builder`], so both see the same network.

pub mod failure;
pub mod proxy;
pub mod trust;

use std::sync::Arc;

use reqwest::Url;

pub use proxy::{Proxies, ProxyProblem, ProxyServer, ProxyVariables};
pub use trust::{CaFileProblem, ExtraRoots};

/// The network settings: extra trusted roots and the proxies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    pub extra_roots: ExtraRoots,
    pub proxies: Proxies,
}

impl Network {
    /// A client builder that trusts the system's roots and `extra_roots`,
    /// and sends each request through the proxy [`Network::proxy_for`]
    /// names, never through one the HTTP library finds by itself.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = trust::trust_roots(reqwest::Client::builder(), &self.extra_roots).no_proxy();
        if !self.proxies.any() {
            return builder;
        }
        let proxies = Arc::new(self.proxies.clone());
        builder.proxy(reqwest::Proxy::custom(move |url| {
            proxies.for_url(url).map(|server| server.url().clone())
        }))
    }

    /// The proxy a request to `url` goes through, if any.
    pub fn proxy_for(&self, url: &Url) -> Option<&ProxyServer> {
        self.proxies.for_url(url)
    }
}

/// Same-origin redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// A redirect policy that follows redirects within `origin` (at most
/// [`MAX_REDIRECTS`]) and hands one to elsewhere to `elsewhere`: no
/// credential is carried to another origin.
pub fn within_origin(
    origin: &Url,
    elsewhere: fn(reqwest::redirect::Attempt) -> reqwest::redirect::Action,
) -> reqwest::redirect::Policy {
    let origin = origin.clone();
    reqwest::redirect::Policy::custom(move |attempt| {
        let url = attempt.url();
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if url.scheme() == origin.scheme()
            && url.host_str() == origin.host_str()
            && url.port_or_known_default() == origin.port_or_known_default()
        {
            attempt.follow()
        } else {
            elsewhere(attempt)
        }
    })
}

/// `host[:port]` of `url`, for messages (the whole URL where it has no host).
pub fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => url.as_str().trim_end_matches('/').to_owned(),
    }
}
