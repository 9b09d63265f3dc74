//! A built-in sample dataset for `--demo`: one project, `demo`, with pools
//! of several shapes, generated the same way on every run. It answers
//! through the same tools, checks and envelope as the live API, with no
//! network and no credentials.

use serde_json::{json, Value};

use super::error::{BackendError, Subject};
use super::id::Id;
use super::model::{Code, CodeStatus, CodesPage, CodesQuery, Pool, PoolSummary};
use crate::backend::ProjectEntry;

pub const PROJECT_ID: &str = "demo";
pub const PROJECT_NAME: &str = "Demo store (sample data)";

/// The demo project, as `list_projects` shows it.
pub fn project() -> ProjectEntry {
    ProjectEntry::named(PROJECT_ID, PROJECT_NAME)
}

/// 2026-06-01T00:00:00Z, in milliseconds.
const SEASON_START_MS: i64 = 1_780_272_000_000;
const DAY_MS: i64 = 86_400_000;

/// The generated pools and their codes.
#[derive(Debug)]
pub struct DemoData {
    pools: Vec<DemoPool>,
}

#[derive(Debug)]
struct DemoPool {
    pool: Pool,
    codes: Vec<Code>,
}

struct PoolSpec {
    id: &'static str,
    name: &'static str,
    prefix: &'static str,
    size: usize,
    /// Shares of assigned and redeemed codes, in percent; the rest are available.
    assigned_pct: u64,
    redeemed_pct: u64,
    /// Days after the season start when codes began to be handed out.
    start_day: f64,
    used_by: fn() -> Value,
}

const SPECS: &[PoolSpec] = &[
    PoolSpec {
        id: "summer20",
        name: "SUMMER20",
        prefix: "SUM20",
        size: 2500,
        assigned_pct: 34,
        redeemed_pct: 23,
        start_day: 0.0,
        used_by: || {
            json!([
                {"type": "campaign", "id": "cmp-summer-newsletter", "name": "Summer sale newsletter"},
                {"type": "scenario", "id": "scn-cart-abandonment", "name": "Cart abandonment — 20 % off"}
            ])
        },
    },
    PoolSpec {
        id: "welcome10",
        name: "WELCOME10",
        prefix: "WELC10",
        size: 400,
        assigned_pct: 45,
        redeemed_pct: 30,
        start_day: -60.0,
        used_by: || json!([{"type": "scenario", "id": "scn-welcome-series", "name": "Welcome series"}]),
    },
    PoolSpec {
        id: "ete-bienvenue",
        name: "Été bienvenue ☀️ — 15 % de réduction",
        prefix: "ETE15",
        size: 120,
        assigned_pct: 20,
        redeemed_pct: 10,
        start_day: 30.0,
        used_by: || json!([{"type": "campaign", "id": "cmp-ete-fr", "name": "Campagne d'été (FR)"}]),
    },
    PoolSpec {
        id: "black-friday",
        name: "BLACKFRIDAY (not yet filled)",
        prefix: "BF30",
        size: 0,
        assigned_pct: 0,
        redeemed_pct: 0,
        start_day: 0.0,
        used_by: || json!([]),
    },
];

impl Default for DemoData {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoData {
    /// Generates the dataset. The same every time.
    pub fn new() -> Self {
        let mut rng = SplitMix64(0x5EED_B100_0000_0001);
        let pools = SPECS
            .iter()
            .map(|spec| {
                let codes: Vec<Code> = (0..spec.size)
                    .map(|i| make_code(spec, i, &mut rng))
                    .collect();
                let available = codes.iter().filter(|c| c.status == "available").count() as u64;
                DemoPool {
                    pool: Pool {
                        summary: PoolSummary {
                            id: spec.id.to_owned(),
                            name: spec.name.to_owned(),
                            total: codes.len() as u64,
                            available,
                        },
                        company_id: Some(PROJECT_ID.to_owned()),
                        used_by: (spec.used_by)().as_array().cloned().unwrap_or_default(),
                    },
                    codes,
                }
            })
            .collect();
        Self { pools }
    }

    pub fn list_pools(&self, project_id: &Id) -> Result<Vec<PoolSummary>, BackendError> {
        self.check_project(project_id)?;
        Ok(self.pools.iter().map(|p| p.pool.summary.clone()).collect())
    }

    pub fn get_pool(&self, project_id: &Id, pool_id: &Id) -> Result<Pool, BackendError> {
        Ok(self.find(project_id, pool_id)?.pool.clone())
    }

    pub fn list_codes(&self, query: &CodesQuery<'_>) -> Result<CodesPage, BackendError> {
        let pool = self.find(query.project_id, query.pool_id)?;
        let wanted = query.status.map(CodeStatus::as_str);
        let matching = pool
            .codes
            .iter()
            .filter(|c| wanted.is_none_or(|s| c.status == s));
        let matched = matching.clone().count() as u64;
        let codes = matching
            .skip(usize::try_from(query.skip).unwrap_or(usize::MAX))
            .take(usize::try_from(query.count).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        Ok(CodesPage {
            codes,
            matched: Some(matched),
            matched_limited: Some(false),
            skip: query.skip,
            limit: query.count,
        })
    }

    fn check_project(&self, project_id: &Id) -> Result<(), BackendError> {
        if project_id.as_str() == PROJECT_ID {
            Ok(())
        } else {
            Err(BackendError::NotFound {
                subject: Subject::Project {
                    project_id: project_id.clone(),
                },
                message: Some(format!("the demo data has only the project {PROJECT_ID:?}")),
            })
        }
    }

    fn find(&self, project_id: &Id, pool_id: &Id) -> Result<&DemoPool, BackendError> {
        self.check_project(project_id)?;
        self.pools
            .iter()
            .find(|p| p.pool.summary.id == pool_id.as_str())
            .ok_or_else(|| BackendError::NotFound {
                subject: Subject::Pool {
                    project_id: project_id.clone(),
                    pool_id: pool_id.clone(),
                },
                message: Some("no such pool in the demo data".to_owned()),
            })
    }
}

fn make_code(spec: &PoolSpec, index: usize, rng: &mut SplitMix64) -> Code {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let suffix: String = (0..6)
        .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
        .collect();
    let roll = rng.next() % 100;
    // Codes are handed out roughly in order over 90 days; millisecond precision.
    let progress = index as f64 / spec.size.max(1) as f64;
    let day = (spec.start_day + (progress * 90.0).floor()) as i64;
    let assigned_ms = SEASON_START_MS + day * DAY_MS + (rng.next() % DAY_MS as u64) as i64;
    let assigned_at = assigned_ms as f64 / 1000.0;
    let (status, assigned, redeemed) = if roll < spec.redeemed_pct {
        let delay_ms = 600_000 + (rng.next() % (14 * DAY_MS as u64)) as i64;
        let redeemed_at = (assigned_ms + delay_ms) as f64 / 1000.0;
        (CodeStatus::Redeemed, Some(assigned_at), Some(redeemed_at))
    } else if roll < spec.redeemed_pct + spec.assigned_pct {
        (CodeStatus::Assigned, Some(assigned_at), None)
    } else {
        (CodeStatus::Available, None, None)
    };
    Code {
        code: compact_str::format_compact!("{}-{suffix}", spec.prefix),
        status: status.as_str().into(),
        assigned_time: assigned,
        redeemed_time: redeemed,
    }
}

/// A small deterministic generator (SplitMix64), so the demo data is the
/// same on every machine and every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Id {
        Id::new(text).unwrap()
    }

    fn page(
        demo: &DemoData,
        pool: &str,
        skip: u64,
        count: u64,
        status: Option<CodeStatus>,
    ) -> CodesPage {
        let (project_id, pool_id) = (id(PROJECT_ID), id(pool));
        demo.list_codes(&CodesQuery {
            project_id: &project_id,
            pool_id: &pool_id,
            skip,
            count,
            status,
        })
        .unwrap()
    }

    #[test]
    fn pools_have_the_promised_shapes() {
        let demo = DemoData::new();
        let pools = demo.list_pools(&id("demo")).unwrap();
        assert_eq!(pools.len(), 4);
        assert_eq!(pools[0].name, "SUMMER20");
        assert_eq!(pools[0].total, 2500);
        assert!(pools.iter().any(|p| p.total == 0));
        assert!(pools.iter().any(|p| !p.name.is_ascii()));
        for pool in &pools {
            let available = page(&demo, &pool.id, 0, 1000, Some(CodeStatus::Available));
            assert_eq!(available.matched, Some(pool.available), "{}", pool.id);
        }
    }

    #[test]
    fn the_same_data_every_time() {
        let a = page(&DemoData::new(), "summer20", 100, 5, None);
        let b = page(&DemoData::new(), "summer20", 100, 5, None);
        assert_eq!(a, b);
        assert_eq!(a.codes.len(), 5);
    }

    #[test]
    fn codes_of_all_statuses_with_consistent_times() {
        let demo = DemoData::new();
        let all = page(&demo, "summer20", 0, 1000, None);
        assert_eq!(all.matched, Some(2500));
        for status in CodeStatus::ALL {
            assert!(all.codes.iter().any(|c| c.status == status.as_str()));
        }
        for code in &all.codes {
            match &*code.status {
                "available" => assert_eq!((code.assigned_time, code.redeemed_time), (None, None)),
                "assigned" => assert!(code.assigned_time.is_some() && code.redeemed_time.is_none()),
                _ => assert!(code.redeemed_time.unwrap() > code.assigned_time.unwrap()),
            }
        }
    }

    #[test]
    fn status_filter_and_paging() {
        let demo = DemoData::new();
        let redeemed = page(&demo, "summer20", 10, 20, Some(CodeStatus::Redeemed));
        assert_eq!(redeemed.codes.len(), 20);
        assert!(redeemed.codes.iter().all(|c| c.status == "redeemed"));
        assert_eq!((redeemed.skip, redeemed.limit), (10, 20));
        let past_end = page(&demo, "summer20", 5000, 20, None);
        assert!(past_end.codes.is_empty());
    }

    #[test]
    fn unknown_ids_are_not_found() {
        let demo = DemoData::new();
        assert!(matches!(
            demo.list_pools(&id("other")),
            Err(BackendError::NotFound {
                subject: Subject::Project { .. },
                ..
            })
        ));
        assert!(matches!(
            demo.get_pool(&id("demo"), &id("nope")),
            Err(BackendError::NotFound {
                subject: Subject::Pool { .. },
                ..
            })
        ));
    }
}
