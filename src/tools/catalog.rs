//! The tool list: names, titles, descriptions, schemas and annotations.
//! Built once when the server starts; `tools/list` hands out clones.

use rmcp::model::{Tool, ToolAnnotations};

use super::args::{GetVoucherPoolInput, ListVoucherCodesInput, ListVoucherPoolsInput, NoInput};
use super::envelope::{CodesEnvelope, PoolEnvelope, PoolsEnvelope, ProjectsEnvelope};
use super::schema::{schema_for, Face};

pub const LIST_PROJECTS: &str = "list_projects";
pub const LIST_VOUCHER_POOLS: &str = "list_voucher_pools";
pub const GET_VOUCHER_POOL: &str = "get_voucher_pool";
pub const LIST_VOUCHER_CODES: &str = "list_voucher_codes";

/// Every tool name, in the order a workflow uses them.
pub const TOOL_NAMES: [&str; 4] = [
    LIST_PROJECTS,
    LIST_VOUCHER_POOLS,
    GET_VOUCHER_POOL,
    LIST_VOUCHER_CODES,
];

const LIST_PROJECTS_DESCRIPTION: &str = "\
List the Bloomreach projects this server is set up to read. Each entry's `id` is the project token that every \
other tool takes as `project_id`. Start here when you do not know the project. The list comes from the server's \
configuration, not from Bloomreach; if it is empty, ask the user for their project token.";

const LIST_VOUCHER_POOLS_DESCRIPTION: &str = "\
List all voucher pools of a Bloomreach project. A voucher pool is a named set of unique discount or promo codes \
that campaigns hand out to customers. For each pool you get its `id`, its `name`, how many codes it holds \
(`total`) and how many are still free to hand out (`available`). Use this to answer \"how many codes are left\" \
questions, and to find the `pool_id` that get_voucher_pool and list_voucher_codes need.";

const GET_VOUCHER_POOL_DESCRIPTION: &str = "\
Get one voucher pool in full: its name, code counts, the project it belongs to (`company_id`) and `used_by`, the \
campaigns, scenarios or other resources that draw codes from it. Take `pool_id` from list_voucher_pools. To look \
at the individual codes, call list_voucher_codes next.";

const LIST_VOUCHER_CODES_DESCRIPTION: &str = "\
List the codes inside a voucher pool, one page at a time. Each code has a `status`: `available` (not handed out), \
`assigned` (given to a customer but not yet used) or `redeemed` (used), with the Unix times it was assigned and \
redeemed (`assigned_time`, `redeemed_time`) and the same instants as readable UTC timestamps (`assigned_at`, \
`redeemed_at`); times are null where they do not apply. Page with `skip` (offset, default 0) and `count` (page \
size, 1 to 1000, default 20); `matched` tells how many codes match in all, so you know whether more pages follow. \
Pass `status` to list only codes with that status. This is the only way to see individual codes: there is no \
lookup of a single code.";

/// Builds the tool definitions.
pub fn tools() -> Vec<Tool> {
    vec![
        tool(
            LIST_PROJECTS,
            "List configured Bloomreach projects",
            LIST_PROJECTS_DESCRIPTION,
            schema_for::<NoInput>(Face::Input),
            schema_for::<ProjectsEnvelope>(Face::Output),
        ),
        tool(
            LIST_VOUCHER_POOLS,
            "List voucher pools",
            LIST_VOUCHER_POOLS_DESCRIPTION,
            schema_for::<ListVoucherPoolsInput>(Face::Input),
            schema_for::<PoolsEnvelope>(Face::Output),
        ),
        tool(
            GET_VOUCHER_POOL,
            "Get a voucher pool",
            GET_VOUCHER_POOL_DESCRIPTION,
            schema_for::<GetVoucherPoolInput>(Face::Input),
            schema_for::<PoolEnvelope>(Face::Output),
        ),
        tool(
            LIST_VOUCHER_CODES,
            "List voucher codes",
            LIST_VOUCHER_CODES_DESCRIPTION,
            schema_for::<ListVoucherCodesInput>(Face::Input),
            schema_for::<CodesEnvelope>(Face::Output),
        ),
    ]
}

fn tool(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    input: std::sync::Arc<rmcp::model::JsonObject>,
    output: std::sync::Arc<rmcp::model::JsonObject>,
) -> Tool {
    Tool::new(name, description, input)
        .with_title(title)
        .with_raw_output_schema(output)
        .with_annotations(
            ToolAnnotations::with_title(title)
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(true),
        )
}
