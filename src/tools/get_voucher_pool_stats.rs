//! `get_voucher_pool_stats`: how many codes a pool holds, available, assigned and redeemed:
//! the pool record and two one-code pages filtered by status, asked for at the same time.

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::Serialize;

use super::args::{self, Declared, RawArgs};
use super::envelope::{Envelope, Extras, Failure};
use super::{memory, CallContext, ScanProgress};
use crate::backend::{BackendError, CodeStatus, PoolRef, SkipCheck, MAX_CODES_PER_PAGE};

pub const NAME: &str = "get_voucher_pool_stats";
pub const TITLE: &str = "Get voucher pool statistics";

pub fn description() -> &'static str {
    "Count the codes of one voucher pool by status, in one call: `total` codes, and how many are `available` \
     (not handed out), `assigned` (given to a customer, not yet used) and `redeemed` (used). Take `pool_id` from \
     list_voucher_pools. Use this instead of paging through list_voucher_codes to answer \"how many are left\" or \
     \"how many were redeemed\"; use find_voucher_codes to see which codes."
}

pub const ARGS: &[&dyn Declared] = &args::POOL;

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

/// Beside the counts: when the data they rest on was read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct Read {
    /// When the oldest data this answer rests on was read from Bloomreach (RFC 3339, UTC): answers to follow-up questions within a minute come from what was read then. Null on failure.
    pub as_of: Option<String>,
}

impl Extras for Read {}

pub type Output = Envelope<Option<VoucherPoolStats>, Read>;

/// The most codes read to count a pool on a backend that cannot filter by status.
pub const MAX_COUNTED: u64 = 100_000;

pub async fn call(context: &CallContext<'_>, args: &RawArgs) -> Output {
    match stats(context, args).await {
        Ok((data, read)) => {
            let as_of = memory::as_of(read);
            Output::ok(Some(data), Read { as_of })
        }
        Err(failure) => Output::of(Err(failure)),
    }
}

/// The counts, and when each thing they rest on was read.
async fn stats(
    context: &CallContext<'_>,
    args: &RawArgs,
) -> Result<(VoucherPoolStats, Vec<SystemTime>), Failure> {
    let (project_id, pool_id) = args::pool_ids(args)?;
    let pool = PoolRef {
        project_id: &project_id,
        pool_id: &pool_id,
    };
    if !context.backend.filters_by_status().await? {
        return counted(context, pool).await;
    }
    // How many codes have `status`: the `matched` of a one-code page.
    let count = |status: CodeStatus| async move {
        let page = memory::page(context, pool, Some(status), 0, 1).await?;
        let matched = page.value.matched.ok_or(BackendError::NoCount {
            status: status.as_str(),
        })?;
        Ok::<_, Failure>((matched, page.at))
    };
    let (found, assigned, redeemed) = tokio::join!(
        memory::pool(context, pool),
        count(CodeStatus::Assigned),
        count(CodeStatus::Redeemed),
    );
    let (found, assigned, redeemed) = (found?, assigned?, redeemed?);
    let summary = &found.value.summary;
    Ok((
        VoucherPoolStats {
            id: summary.id.clone(),
            name: summary.name.clone(),
            total: summary.total,
            available: summary.available,
            assigned: assigned.0,
            redeemed: redeemed.0,
        },
        vec![found.at, assigned.1, redeemed.1],
    ))
}

/// The counts of a backend that cannot filter by status: every code of the
/// pool read, page after page in order, and counted here.
async fn counted(
    context: &CallContext<'_>,
    pool: PoolRef<'_>,
) -> Result<(VoucherPoolStats, Vec<SystemTime>), Failure> {
    let found = memory::pool(context, pool).await?;
    let mut read = vec![found.at];
    let (mut total, mut available, mut assigned, mut redeemed) = (0u64, 0u64, 0u64, 0u64);
    let too_many = || BackendError::TooMany {
        what: "codes in the pool to count on a backend that cannot count them by status",
        bound: MAX_COUNTED as usize,
    };
    let mut repeats = SkipCheck::default();
    loop {
        let page = memory::page(context, pool, None, total, MAX_CODES_PER_PAGE as u64).await?;
        read.push(page.at);
        let (codes, matched) = (&page.value.codes, page.value.matched);
        if matched.is_some_and(|m| m > MAX_COUNTED) {
            return Err(too_many().into());
        }
        repeats.page(total, total > 0, codes.first().map(|c| c.code.clone()))?;
        let on_page = codes.len().min(MAX_CODES_PER_PAGE) as u64;
        for code in codes.iter().take(MAX_CODES_PER_PAGE) {
            match CodeStatus::parse(&code.status) {
                Some(CodeStatus::Available) => available += 1,
                Some(CodeStatus::Assigned) => assigned += 1,
                Some(CodeStatus::Redeemed) => redeemed += 1,
                None => {}
            }
        }
        total += on_page;
        (context.on_progress)(ScanProgress {
            examined: total,
            total: matched,
        })
        .await;
        // Past the bound only when codes beyond it were read: a pool of
        // exactly the bound, without a count, ends with an empty page.
        if total > MAX_COUNTED {
            return Err(too_many().into());
        }
        let short = on_page < MAX_CODES_PER_PAGE as u64;
        if matched.is_some_and(|m| total >= m) || (short && matched.is_none()) {
            break;
        }
        if let (0, Some(matched)) = (on_page, matched) {
            return Err(BackendError::RanOut {
                what: "codes in the pool",
                read: total,
                matched,
            }
            .into());
        }
    }
    let summary = &found.value.summary;
    Ok((
        VoucherPoolStats {
            id: summary.id.clone(),
            name: summary.name.clone(),
            total,
            available,
            assigned,
            redeemed,
        },
        read,
    ))
}
