//! `get_voucher_pool_stats`: how many codes a pool holds, and how many are
//! available, assigned and redeemed, in one call and a few hundred
//! characters: the pool record and two one-code pages filtered by status,
//! asked for at the same time.

use schemars::JsonSchema;
use serde::Serialize;

use super::args::{self, PoolInput, RawArgs};
use super::envelope::{Envelope, Failure};
use super::CallContext;
use crate::backend::{BackendError, CodeStatus, CodesQuery, Id, PoolRef};

pub const NAME: &str = "get_voucher_pool_stats";
pub const TITLE: &str = "Get voucher pool statistics";

pub fn description() -> &'static str {
    "Count the codes of one voucher pool by status, in one call: `total` codes, and how many are `available` \
     (not handed out), `assigned` (given to a customer, not yet used) and `redeemed` (used). Take `pool_id` from \
     list_voucher_pools. Use this instead of paging through list_voucher_codes to answer \"how many are left\" or \
     \"how many were redeemed\"; use find_voucher_codes to see which codes."
}

/// Declared shape of the arguments: the pool's ids.
pub type Input = PoolInput;

/// A pool's code counts.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct VoucherPoolStats {
    /// The pool's id.
    pub id: String,
    /// The pool's display name.
    pub name: String,
    /// How many codes the pool holds in all.
    pub total: u64,
    /// How many codes are still free (neither assigned nor redeemed).
    pub available: u64,
    /// How many codes were given to a customer and not yet redeemed.
    pub assigned: u64,
    /// How many codes were redeemed.
    pub redeemed: u64,
}

pub type Output = Envelope<Option<VoucherPoolStats>>;

pub async fn call(context: &CallContext<'_>, args: &RawArgs) -> Output {
    Output::of(stats(context, args).await.map(Some), None)
}

async fn stats(context: &CallContext<'_>, args: &RawArgs) -> Result<VoucherPoolStats, Failure> {
    let (project_id, pool_id) = args::pool_ids(args)?;
    if !context.backend.filters_by_status().await? {
        return Err(BackendError::CannotFilterByStatus.into());
    }
    let pool = PoolRef {
        project_id: &project_id,
        pool_id: &pool_id,
    };
    let (found, assigned, redeemed) = tokio::join!(
        context.backend.get_pool(pool, context.on_retry),
        count(context, &project_id, &pool_id, CodeStatus::Assigned),
        count(context, &project_id, &pool_id, CodeStatus::Redeemed),
    );
    let found = found?;
    Ok(VoucherPoolStats {
        id: found.summary.id,
        name: found.summary.name,
        total: found.summary.total,
        available: found.summary.available,
        assigned: assigned?,
        redeemed: redeemed?,
    })
}

/// How many codes of the pool have `status`: the `matched` of a one-code page.
async fn count(
    context: &CallContext<'_>,
    project_id: &Id,
    pool_id: &Id,
    status: CodeStatus,
) -> Result<u64, Failure> {
    let query = CodesQuery {
        project_id,
        pool_id,
        skip: 0,
        count: 1,
        status: Some(status),
    };
    let page = context.backend.list_codes(&query, context.on_retry).await?;
    page.matched
        .ok_or_else(|| BackendError::NoCount { status }.into())
}
