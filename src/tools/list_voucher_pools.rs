use schemars::JsonSchema;
use serde::Serialize;

use super::args::{self, Declared, IdArg, RawArgs};
use super::envelope::{Envelope, Failure};
use super::CallContext;
use crate::backend::PoolSummary;

pub const NAME: &str = "list_voucher_pools";
pub const TITLE: &str = "List voucher pools";

pub fn description() -> &'static str {
    "List all voucher pools of a Bloomreach project. A voucher pool is a named set of unique discount or promo codes \
that campaigns hand out to customers. For each pool you get its `id`, its `name`, how many codes it holds \
(`total`) and how many are still free to hand out (`available`). Use this to answer \"how many codes are left\" \
questions, and to find the `pool_id` that get_voucher_pool and list_voucher_codes need."
}

const PROJECT_ID: IdArg = IdArg {
    about: "The project token (project ID) to read from; list_projects shows the configured ones.",
    ..args::PROJECT_ID
};

pub const ARGS: &[&dyn Declared] = &[&PROJECT_ID];

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

pub type Output = Envelope<Vec<VoucherPoolSummary>>;

pub async fn call(context: &CallContext<'_>, args: &RawArgs) -> Output {
    let listed = async {
        let project_id = args::id(args, PROJECT_ID.name)?;
        let pools = context
            .backend
            .list_pools(&project_id, context.on_retry)
            .await?;
        Ok::<_, Failure>(pools.into_iter().map(VoucherPoolSummary::from).collect())
    };
    Output::of(listed.await)
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
