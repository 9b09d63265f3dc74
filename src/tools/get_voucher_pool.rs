//! `get_voucher_pool`: one voucher pool in full, with the campaigns and
//! other resources that draw codes from it.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::args::{self, RawArgs};
use super::envelope::{Envelope, ToolOutcome};
use super::schema::{schema_for, Face};
use super::{read_only_tool, words, CallContext, ToolFuture, ToolSpec};
use crate::backend::Pool;

pub const TOOL: ToolSpec = ToolSpec {
    name: "get_voucher_pool",
    definition,
    run,
};

const TITLE: &str = "Get a voucher pool";

const DESCRIPTION: &str = "\
Get one voucher pool in full: its name, code counts, the project it belongs to (`company_id`) and `used_by`, the \
campaigns, scenarios or other resources that draw codes from it. Take `pool_id` from list_voucher_pools. To look \
at the individual codes, call list_voucher_codes next.";

/// Declared shape of the arguments.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Input {
    /// The project token (project ID) the pool belongs to.
    #[schemars(length(min = 1))]
    project_id: String,
    /// The pool's id, as given by list_voucher_pools.
    #[schemars(length(min = 1))]
    pool_id: String,
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

type Output = Envelope<Option<VoucherPool>>;

fn definition() -> rmcp::model::Tool {
    read_only_tool(
        TOOL.name,
        TITLE,
        DESCRIPTION,
        schema_for::<Input>(Face::Input),
        schema_for::<Output>(Face::Output),
    )
}

fn run<'a>(context: &'a CallContext<'a>, args: &'a RawArgs) -> ToolFuture<'a> {
    Box::pin(async move {
        let envelope = match args::pool_ids(args) {
            Err(e) => Output::failed(None, words::arg_error(&e)),
            Ok((project_id, pool_id)) => match context
                .backend
                .get_pool(&project_id, &pool_id, context.on_retry)
                .await
            {
                Ok(pool) => Output::ok(Some(VoucherPool::from(pool))),
                Err(e) => Output::failed(None, words::backend_error(&e)),
            },
        };
        ToolOutcome::new(&envelope)
    })
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
