use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::args::{self, Declared, RawArgs};
use super::envelope::{Envelope, Failure};
use super::CallContext;
use crate::backend::{Pool, PoolRef};

pub const NAME: &str = "get_voucher_pool";
pub const TITLE: &str = "Get a voucher pool";

pub fn description() -> &'static str {
    "Get one voucher pool in full: its name, code counts, the project it belongs to (`company_id`) and `used_by`, the \
campaigns, scenarios or other resources that draw codes from it. Take `pool_id` from list_voucher_pools. To look \
at the individual codes, call list_voucher_codes next."
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

pub const ARGS: &[&dyn Declared] = &args::POOL;
pub type Output = Envelope<Option<VoucherPool>>;

pub async fn call(context: &CallContext<'_>, args: &RawArgs) -> Output {
    let found = async {
        let (project_id, pool_id) = &args::pool_ids(args)?;
        let pool = PoolRef {
            project_id,
            pool_id,
        };
        let pool = context.backend.get_pool(pool, context.on_retry).await?;
        Ok::<_, Failure>(Some(VoucherPool::from(pool)))
    };
    Output::of(found.await)
}

impl From<Pool> for VoucherPool {
    fn from(p: Pool) -> Self {
        Self {
            id: p.summary.id,
            name: p.summary.name,
            total: p.summary.total,
            available: p.summary.available,
            company_id: p.company_id.unwrap_or_default(),
            used_by: p.used_by,
        }
    }
}
