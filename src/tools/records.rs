//! The records the tools return, exactly as the contract shapes them.
//! Their serde and schemars derives make both the JSON that is sent and the
//! declared `outputSchema`, so the two cannot drift apart.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::bloomreach::model::{Code, Pool, PoolSummary};
use crate::config::ProjectEntry;
use crate::time::rfc3339_utc;

/// One voucher pool, as listed.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct VoucherPoolSummary {
    /// The pool's id; pass it as `pool_id` to get_voucher_pool and list_voucher_codes.
    pub id: String,
    /// The pool's display name, unique within its project.
    pub name: String,
    /// How many codes the pool holds in all.
    pub total: u64,
    /// How many codes are still free (neither assigned nor redeemed).
    pub available: u64,
}

/// One voucher pool in full.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct VoucherPool {
    /// The pool's id.
    pub id: String,
    /// The pool's display name, unique within its project.
    pub name: String,
    /// How many codes the pool holds in all.
    pub total: u64,
    /// How many codes are still free (neither assigned nor redeemed).
    pub available: u64,
    /// The project the pool belongs to.
    pub company_id: String,
    /// The campaigns, scenarios and other resources that draw codes from this pool, as Bloomreach describes them.
    pub used_by: Vec<Value>,
}

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

/// A project this server is configured for.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ProjectRecord {
    /// The project token; pass it as `project_id` to the other tools.
    pub id: String,
    /// A display name for the project.
    pub name: String,
}

impl From<PoolSummary> for VoucherPoolSummary {
    fn from(p: PoolSummary) -> Self {
        Self {
            id: p.id,
            name: p.name,
            total: p.total,
            available: p.available,
        }
    }
}

impl From<Pool> for VoucherPool {
    fn from(p: Pool) -> Self {
        Self {
            id: p.id,
            name: p.name,
            total: p.total,
            available: p.available,
            company_id: p.company_id.unwrap_or_default(),
            used_by: p.used_by,
        }
    }
}

impl From<Code> for VoucherCode {
    fn from(c: Code) -> Self {
        Self {
            assigned_at: c.assigned_time.and_then(rfc3339_utc),
            redeemed_at: c.redeemed_time.and_then(rfc3339_utc),
            code: c.code,
            status: c.status,
            assigned_time: c.assigned_time,
            redeemed_time: c.redeemed_time,
        }
    }
}

impl From<&ProjectEntry> for ProjectRecord {
    fn from(p: &ProjectEntry) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
        }
    }
}
