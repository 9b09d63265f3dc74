//! What the question tools (`get_voucher_pool_stats`, `find_voucher_codes`)
//! have read, kept for a short while so that a follow-up question about the
//! same pool costs no upstream call: pages of codes and pool records, each for
//! 60 s from when it was read, up to 100,000 codes in all; the least recently
//! used pool's pages go first. The list tools neither read nor fill it: a
//! person paging codes expects them live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::CallContext;
use crate::backend::{BackendError, CodeStatus, CodesPage, CodesQuery, Id, Pool, PoolRef};

/// A page of codes for a question tool: from memory when it was read less
/// than [`KEPT_FOR`] ago, else from the backend (and then kept).
pub async fn page(
    context: &CallContext<'_>,
    pool: PoolRef<'_>,
    status: Option<CodeStatus>,
    skip: u64,
    count: u64,
) -> Result<Read<Arc<CodesPage>>, BackendError> {
    let (project_id, pool_id, key) = (pool.project_id, pool.pool_id, (status, skip, count));
    if let Some(kept) = context.memory.page(project_id, pool_id, key) {
        return Ok(kept);
    }
    let query = CodesQuery {
        project_id,
        pool_id,
        skip,
        count,
        status,
    };
    let read = context.backend.list_codes(&query, context.on_retry).await?;
    Ok(context.memory.keep_page(project_id, pool_id, key, read))
}

/// A pool record for a question tool, as [`page`] gets a page.
pub async fn pool(
    context: &CallContext<'_>,
    pool: PoolRef<'_>,
) -> Result<Read<Arc<Pool>>, BackendError> {
    if let Some(kept) = context.memory.pool(pool.project_id, pool.pool_id) {
        return Ok(kept);
    }
    let read = context.backend.get_pool(pool, context.on_retry).await?;
    Ok(context
        .memory
        .keep_pool(pool.project_id, pool.pool_id, read))
}

/// `as_of`: the oldest of the instants an answer rests on, in RFC 3339.
pub fn as_of(times: impl IntoIterator<Item = SystemTime>) -> Option<String> {
    let oldest = times.into_iter().min()?;
    let seconds = oldest.duration_since(UNIX_EPOCH).ok()?.as_secs() as f64;
    crate::time::rfc3339_utc(seconds)
}

/// How long a page or a record is used after it was read.
pub const KEPT_FOR: Duration = Duration::from_secs(60);
pub const MAX_KEPT_CODES: usize = 100_000;
const MAX_KEPT_POOLS: usize = 1000;

/// Something read, with when.
#[derive(Clone, Debug)]
pub struct Read<T> {
    pub value: T,
    /// When it was read, for `as_of`.
    pub at: SystemTime,
    fresh_until: Instant,
}

/// Which page of a pool: its status filter, skip and count.
type PageKey = (Option<CodeStatus>, u64, u64);

#[derive(Default)]
struct PoolKept {
    /// When a call last used this pool (a counter, larger is later).
    used: u64,
    record: Option<Read<Arc<Pool>>>,
    pages: HashMap<PageKey, Read<Arc<CodesPage>>>,
}

impl PoolKept {
    fn codes(&self) -> usize {
        self.pages.values().map(|p| p.value.codes.len()).sum()
    }
}

#[derive(Default)]
struct Kept {
    pools: HashMap<(String, String), PoolKept>,
    codes: usize,
    clock: u64,
}

pub struct Memory {
    kept: Mutex<Kept>,
    kept_for: Duration,
    max_codes: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new(KEPT_FOR, MAX_KEPT_CODES)
    }
}

fn key(project_id: &Id, pool_id: &Id) -> (String, String) {
    (project_id.as_str().to_owned(), pool_id.as_str().to_owned())
}

impl Memory {
    pub fn new(kept_for: Duration, max_codes: usize) -> Self {
        Self {
            kept: Mutex::default(),
            kept_for,
            max_codes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn page(
        &self,
        project_id: &Id,
        pool_id: &Id,
        page: PageKey,
    ) -> Option<Read<Arc<CodesPage>>> {
        self.fresh(project_id, pool_id, |pool| pool.pages.get(&page))
    }

    pub fn pool(&self, project_id: &Id, pool_id: &Id) -> Option<Read<Arc<Pool>>> {
        self.fresh(project_id, pool_id, |pool| pool.record.as_ref())
    }

    /// What `pick` finds of a pool if read less than [`KEPT_FOR`] ago; the pool counts as used now.
    fn fresh<T: Clone>(
        &self,
        project_id: &Id,
        pool_id: &Id,
        pick: impl FnOnce(&PoolKept) -> Option<&Read<T>>,
    ) -> Option<Read<T>> {
        let mut kept = self.lock();
        kept.clock += 1;
        let clock = kept.clock;
        let pool = kept.pools.get_mut(&key(project_id, pool_id))?;
        let found = pick(pool)
            .filter(|r| r.fresh_until > Instant::now())?
            .clone();
        pool.used = clock;
        Some(found)
    }

    pub fn keep_page(
        &self,
        project_id: &Id,
        pool_id: &Id,
        page: PageKey,
        codes: CodesPage,
    ) -> Read<Arc<CodesPage>> {
        self.keep(project_id, pool_id, codes, |pool, read| {
            pool.pages.insert(page, read);
        })
    }

    pub fn keep_pool(&self, project_id: &Id, pool_id: &Id, record: Pool) -> Read<Arc<Pool>> {
        self.keep(project_id, pool_id, record, |pool, read| {
            pool.record = Some(read)
        })
    }

    fn keep<T>(
        &self,
        project_id: &Id,
        pool_id: &Id,
        value: T,
        put: impl FnOnce(&mut PoolKept, Read<Arc<T>>),
    ) -> Read<Arc<T>> {
        let read = Read {
            value: Arc::new(value),
            at: SystemTime::now(),
            fresh_until: Instant::now() + self.kept_for,
        };
        let mut kept = self.lock();
        kept.clock += 1;
        let clock = kept.clock;
        let pool = kept.pools.entry(key(project_id, pool_id)).or_default();
        pool.used = clock;
        put(pool, read.clone());
        self.make_room(&mut kept);
        read
    }

    /// Drops what is too old, then the least recently used pools' pages until the codes fit.
    fn make_room(&self, kept: &mut Kept) {
        let now = Instant::now();
        for pool in kept.pools.values_mut() {
            pool.pages.retain(|_, p| p.fresh_until > now);
            if pool.record.as_ref().is_some_and(|r| r.fresh_until <= now) {
                pool.record = None;
            }
        }
        kept.pools
            .retain(|_, p| !p.pages.is_empty() || p.record.is_some());
        kept.codes = kept.pools.values().map(PoolKept::codes).sum();
        // Records of many pools are small, but not without end.
        while kept.pools.len() > MAX_KEPT_POOLS {
            let Some(oldest) = kept
                .pools
                .iter()
                .min_by_key(|(_, p)| p.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(pool) = kept.pools.remove(&oldest) {
                kept.codes -= pool.codes();
            }
        }
        while kept.codes > self.max_codes {
            let Some(oldest) = kept
                .pools
                .iter()
                .filter(|(_, p)| !p.pages.is_empty())
                .min_by_key(|(_, p)| p.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(pool) = kept.pools.get_mut(&oldest) {
                kept.codes -= pool.codes();
                pool.pages.clear();
            }
        }
    }

    /// How many codes are kept.
    #[cfg(test)]
    pub fn codes_kept(&self) -> usize {
        self.lock().codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Code;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn page(n: usize) -> CodesPage {
        CodesPage {
            codes: (0..n)
                .map(|i| Code {
                    code: format!("C{i}").into(),
                    status: "available".into(),
                    assigned_time: None,
                    redeemed_time: None,
                })
                .collect(),
            matched: Some(n as u64),
            matched_limited: Some(false),
            skip: 0,
            limit: n as u64,
        }
    }

    #[test]
    fn a_page_is_used_until_it_is_too_old() {
        let memory = Memory::new(Duration::from_millis(200), 1000);
        let (p, q) = (id("proj"), id("pool"));
        assert!(memory.page(&p, &q, (None, 0, 10)).is_none());
        memory.keep_page(&p, &q, (None, 0, 10), page(10));
        let got = memory.page(&p, &q, (None, 0, 10)).unwrap();
        assert_eq!(got.value.codes.len(), 10);
        // Another filter, skip or count is another page.
        assert!(memory
            .page(&p, &q, (Some(CodeStatus::Redeemed), 0, 10))
            .is_none());
        assert!(memory.page(&p, &q, (None, 10, 10)).is_none());
        assert!(memory.page(&p, &id("other"), (None, 0, 10)).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(memory.page(&p, &q, (None, 0, 10)).is_none());
    }

    #[test]
    fn records_of_many_pools_are_bounded_too() {
        let memory = Memory::default();
        let p = id("proj");
        let record = |i: usize| Pool {
            summary: crate::backend::PoolSummary {
                id: format!("pool-{i}"),
                name: "n".into(),
                total: 1,
                available: 1,
            },
            company_id: None,
            used_by: Vec::new(),
        };
        for i in 0..MAX_KEPT_POOLS + 5 {
            memory.keep_pool(&p, &id(&format!("pool-{i}")), record(i));
        }
        assert_eq!(memory.lock().pools.len(), MAX_KEPT_POOLS);
        // The first ones, used least recently, went.
        assert!(memory.pool(&p, &id("pool-0")).is_none());
        assert!(memory
            .pool(&p, &id(&format!("pool-{}", MAX_KEPT_POOLS + 4)))
            .is_some());
    }

    #[test]
    fn the_least_recently_used_pool_goes_first() {
        let memory = Memory::new(Duration::from_secs(60), 25);
        let p = id("proj");
        memory.keep_page(&p, &id("a"), (None, 0, 10), page(10));
        memory.keep_page(&p, &id("b"), (None, 0, 10), page(10));
        // `a` is used again: `b` is now the least recently used.
        assert!(memory.page(&p, &id("a"), (None, 0, 10)).is_some());
        memory.keep_page(&p, &id("c"), (None, 0, 10), page(10));
        assert_eq!(memory.codes_kept(), 20);
        assert!(memory.page(&p, &id("a"), (None, 0, 10)).is_some());
        assert!(memory.page(&p, &id("b"), (None, 0, 10)).is_none());
        assert!(memory.page(&p, &id("c"), (None, 0, 10)).is_some());
        // A page replaced is not counted twice.
        memory.keep_page(&p, &id("c"), (None, 0, 10), page(5));
        assert_eq!(memory.codes_kept(), 15);
    }
}
