//! The REST API's voucher endpoints as a type: which endpoint, with which
//! ids and query, becomes one URL, each id percent-encoded as exactly one
//! path segment so that `../x` or `a/b` can never change the endpoint.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Url;

use crate::backend::error::Subject;
use crate::backend::id::Id;
use crate::backend::model::{CodesQuery, PoolRef};

/// Characters left as they are in a path segment: RFC 3986 "unreserved".
/// Everything else, `/`, `%`, `?`, `#` and spaces included, is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One request the REST backend can make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `GET /data/v2/projects/{project_id}/vouchers/pools`
    Pools { project_id: &'a Id },
    /// `GET /data/v2/projects/{project_id}/vouchers/pools/{pool_id}`
    Pool(PoolRef<'a>),
    /// `GET …/pools/{pool_id}/codes?skip=&count=[&status=]`
    Codes(&'a CodesQuery<'a>),
}

impl Endpoint<'_> {
    /// The URL under `base` (a base URL without a trailing slash).
    pub fn url(&self, base: &str) -> Result<Url, String> {
        let mut url = String::with_capacity(base.len() + 96);
        url.push_str(base);
        url.push_str("/data/v2/projects/");
        let (project_id, pool_id) = self.ids();
        url.extend(utf8_percent_encode(project_id.as_str(), SEGMENT));
        url.push_str("/vouchers/pools");
        if let Some(pool_id) = pool_id {
            url.push('/');
            url.extend(utf8_percent_encode(pool_id.as_str(), SEGMENT));
        }
        if let Endpoint::Codes(query) = self {
            let (skip, count) = (query.skip, query.count);
            url.push_str(&format!("/codes?skip={skip}&count={count}"));
            if let Some(status) = query.status {
                url.push_str("&status=");
                url.push_str(status.as_str());
            }
        }
        Url::parse(&url).map_err(|e| e.to_string())
    }

    /// What the request is about, for a "not found" answer.
    pub fn subject(&self) -> Subject {
        match self.ids() {
            (project_id, None) => Subject::Project {
                project_id: project_id.clone(),
            },
            (project_id, Some(pool_id)) => Subject::Pool {
                project_id: project_id.clone(),
                pool_id: pool_id.clone(),
            },
        }
    }

    fn ids(&self) -> (&Id, Option<&Id>) {
        match self {
            Endpoint::Pools { project_id } => (project_id, None),
            Endpoint::Pool(pool) => (pool.project_id, Some(pool.pool_id)),
            Endpoint::Codes(query) => (query.project_id, Some(query.pool_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::model::CodeStatus;

    fn id(text: &str) -> Id {
        Id::new(text).unwrap()
    }

    const BASE: &str = "https://gateway.example.com/bloomreach";

    fn pool_url(base: &str, project_id: &str, pool_id: &str) -> Url {
        Endpoint::Pool(PoolRef {
            project_id: &id(project_id),
            pool_id: &id(pool_id),
        })
        .url(base)
        .unwrap()
    }

    fn codes_url(
        project_id: &str,
        pool_id: &str,
        skip: u64,
        count: u64,
        status: Option<CodeStatus>,
    ) -> Url {
        let (p, q) = (id(project_id), id(pool_id));
        let query = CodesQuery {
            project_id: &p,
            pool_id: &q,
            skip,
            count,
            status,
        };
        Endpoint::Codes(&query).url(BASE).unwrap()
    }

    #[test]
    fn urls_keep_the_prefix_and_encode_each_id_as_one_segment() {
        let proj = id("proj");
        assert_eq!(
            Endpoint::Pools { project_id: &proj }
                .url(BASE)
                .unwrap()
                .as_str(),
            "https://gateway.example.com/bloomreach/data/v2/projects/proj/vouchers/pools"
        );
        assert_eq!(
            codes_url("p 1", "../x", 0, 20, None).as_str(),
            "https://gateway.example.com/bloomreach/data/v2/projects/p%201/vouchers/pools/..%2Fx/codes?skip=0&count=20"
        );
        assert_eq!(
            pool_url(BASE, "a/b?c#d%2F", "é\r\n").path(),
            "/bloomreach/data/v2/projects/a%2Fb%3Fc%23d%252F/vouchers/pools/%C3%A9%0D%0A"
        );
        assert_eq!(
            pool_url("https://api.exponea.com", "...", "p.v2").path(),
            "/data/v2/projects/.../vouchers/pools/p.v2"
        );
    }

    #[test]
    fn the_status_filter_goes_in_the_query() {
        assert_eq!(
            codes_url("p", "q", 40, 1000, Some(CodeStatus::Redeemed)).query(),
            Some("skip=40&count=1000&status=redeemed")
        );
        let (p, q) = (id("p"), id("q"));
        let query = CodesQuery {
            project_id: &p,
            pool_id: &q,
            skip: 0,
            count: 1,
            status: None,
        };
        assert_eq!(
            Endpoint::Codes(&query).subject(),
            Subject::Pool {
                project_id: p.clone(),
                pool_id: q.clone()
            }
        );
    }
}
