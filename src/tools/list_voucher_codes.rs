//! `list_voucher_codes`: one page of the codes inside a pool. Its record,
//! [`VoucherCode`], is the one every code-returning tool uses.

use schemars::JsonSchema;
use serde::Serialize;

use super::args::{self, Declared, RawArgs, StatusArg, COUNT, SKIP};
use super::envelope::{Envelope, Extras, Failure};
use super::{words, CallContext};
use crate::backend::{Code, CodesQuery};
use crate::time::rfc3339_utc;

pub const NAME: &str = "list_voucher_codes";
pub const TITLE: &str = "List voucher codes";

pub fn description() -> String {
    format!(
        "List the codes inside a voucher pool, one page at a time; take `pool_id` from list_voucher_pools. \
         Each code has a `status`: `available` (not handed out), `assigned` (given to a customer but not yet used) \
         or `redeemed` (used), with the Unix times it was assigned and redeemed (`assigned_time`, `redeemed_time`) \
         and the same instants as readable UTC timestamps (`assigned_at`, `redeemed_at`); times are null where \
         they do not apply. Page with `skip` (offset, default {}) and `count` (page size, {} to {}, default {}); \
         `matched` tells how many codes match in all, so you know whether more pages follow. Pass `status` to \
         list only codes with that status. Each code is about 150 characters of answer, so pages above about 300 \
         codes are large for an assistant: to count codes use get_voucher_pool_stats, and to look up one code or \
         find codes by prefix, status or time use find_voucher_codes, which answer in one call.",
        SKIP.default, COUNT.min, COUNT.max, COUNT.default
    )
}

const STATUS: StatusArg = StatusArg {
    name: "status",
    about: "Only codes with this status: `available`, `assigned` or `redeemed`. Leave out for all codes.",
};

pub const ARGS: &[&dyn Declared] = &[&args::PROJECT_ID, &args::POOL_ID, &SKIP, &COUNT, &STATUS];

/// One voucher code.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct VoucherCode {
    /// The code itself, as a customer would type it.
    pub code: String,
    /// `available` (not handed out yet), `assigned` (given to a customer, not redeemed) or `redeemed` (used). Other values from the API are passed on unchanged.
    pub status: String,
    /// When the code was given to a customer, in Unix seconds; null if it has not been.
    pub assigned_time: Option<f64>,
    /// When the code was redeemed, in Unix seconds; null if it has not been.
    pub redeemed_time: Option<f64>,
    /// `assigned_time` as an RFC 3339 UTC timestamp, e.g. 2024-06-10T06:13:20.5Z; null when `assigned_time` is null.
    pub assigned_at: Option<String>,
    /// `redeemed_time` as an RFC 3339 UTC timestamp; null when `redeemed_time` is null.
    pub redeemed_at: Option<String>,
}

/// Beside the codes: the paging facts.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Paging {
    /// How many codes in the pool match the request (all codes, or those of the requested status); null when unknown or on failure.
    pub matched: Option<u64>,
    /// Whether `matched` was capped by a Bloomreach limit (so the true number may be larger); null when unknown.
    pub matched_limited: Option<bool>,
    /// The offset that was applied (on failure, the one asked for).
    pub skip: i64,
    /// The page size that was applied (on failure, the count asked for).
    pub limit: i64,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            matched: None,
            matched_limited: None,
            skip: SKIP.default,
            limit: COUNT.default,
        }
    }
}

impl Extras for Paging {
    fn failed(self) -> Self {
        Self {
            skip: self.skip,
            limit: self.limit,
            ..Self::default()
        }
    }

    fn refused(args: &RawArgs) -> Self {
        Self {
            skip: args::integer(args, SKIP).echo(),
            limit: args::integer(args, COUNT).echo(),
            ..Self::default()
        }
    }
}

pub type Output = Envelope<Vec<VoucherCode>, Paging>;

pub async fn call(context: &CallContext<'_>, args: &RawArgs) -> Output {
    let listed = async {
        let (project_id, pool_id) = &args::pool_ids(args)?;
        let query = CodesQuery {
            project_id,
            pool_id,
            skip: args::integer(args, SKIP).checked()? as u64,
            count: args::integer(args, COUNT).checked()? as u64,
            status: args::status(args)?,
        };
        let page = context.backend.list_codes(&query, context.on_retry).await?;
        let paging = Paging {
            matched: page.matched,
            matched_limited: page.matched_limited,
            skip: i64::try_from(page.skip).unwrap_or(i64::MAX),
            limit: i64::try_from(page.limit).unwrap_or(i64::MAX),
        };
        // Records beyond the count asked for are not this call's to pass on.
        let codes = page.codes.into_iter().take(query.count as usize);
        Ok::<_, Failure>(Output::ok(codes.map(VoucherCode::from).collect(), paging))
    };
    let failed = |failure: Failure| Output::failed(words::failure(&failure), Paging::refused(args));
    listed.await.unwrap_or_else(failed)
}

impl From<Code> for VoucherCode {
    fn from(c: Code) -> Self {
        Self {
            assigned_at: c.assigned_time.and_then(rfc3339_utc),
            redeemed_at: c.redeemed_time.and_then(rfc3339_utc),
            code: c.code.into_string(),
            status: c.status.into_owned(),
            assigned_time: c.assigned_time,
            redeemed_time: c.redeemed_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use serde_json::{json, Value};

    fn quiet(_: &crate::backend::RetryNotice) {}

    async fn envelope(args: Value) -> Output {
        let backend = Backend::demo();
        let context = CallContext {
            backend: &backend,
            projects: &[],
            on_retry: &quiet,
            on_progress: &|_| Box::pin(std::future::ready(())),
            memory: &Default::default(),
        };
        call(&context, args.as_object().unwrap()).await
    }

    #[tokio::test]
    async fn paging_defaults_to_zero_and_twenty() {
        let e = envelope(json!({"project_id": "demo", "pool_id": "summer20"})).await;
        assert_eq!(
            (e.success, e.extras.skip, e.extras.limit, e.data.len()),
            (true, 0, 20, 20)
        );
        let e = envelope(
            json!({"project_id": "demo", "pool_id": "summer20", "skip": null,
            "count": null, "status": null, "other": 1}),
        )
        .await;
        assert_eq!((e.success, e.extras.skip, e.extras.limit), (true, 0, 20));
    }

    #[tokio::test]
    async fn failures_echo_readable_paging_and_defaults_otherwise() {
        let e =
            envelope(json!({"project_id": "p", "pool_id": "q", "skip": 7, "count": 5000})).await;
        assert_eq!((e.success, e.extras.skip, e.extras.limit), (false, 7, 5000));
        assert_eq!((e.extras.matched, e.extras.matched_limited), (None, None));
        let e = envelope(json!({"project_id": "", "skip": "x", "count": "50"})).await;
        assert_eq!((e.extras.skip, e.extras.limit), (0, 50));
        let e = envelope(json!({"skip": -4, "count": 1e300})).await;
        assert_eq!((e.extras.skip, e.extras.limit), (-4, 20));
    }

    #[tokio::test]
    async fn the_first_broken_rule_is_reported() {
        let e = envelope(json!({"pool_id": "", "count": 0})).await;
        assert_eq!(
            e.error.as_deref(),
            Some("project_id is required and must be a non-empty string (got nothing)")
        );
        let e = envelope(json!({"project_id": "p", "count": 0})).await;
        assert_eq!(
            e.error.as_deref(),
            Some("pool_id is required and must be a non-empty string (got nothing)")
        );
        let e = envelope(json!({"project_id": "p", "pool_id": "q", "skip": -1, "count": 0})).await;
        assert_eq!(e.error.as_deref(), Some("skip must be >= 0 (got -1)"));
    }

    #[tokio::test]
    async fn status_filters_the_page() {
        let e = envelope(json!({"project_id": "demo", "pool_id": "summer20", "status": "redeemed", "count": "5"})).await;
        assert_eq!(e.data.len(), 5);
        assert!(e.data.iter().all(|c| c.status == "redeemed"));
        assert_eq!(e.extras.matched, Some(576));
    }
}
