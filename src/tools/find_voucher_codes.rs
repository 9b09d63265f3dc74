//! `find_voucher_codes`: the codes of a pool that meet a filter, found by a
//! scan in the server, so that an assistant gets the few codes it asked about
//! instead of every page. Each page is filtered as it arrives and never kept
//! whole.

use schemars::JsonSchema;
use serde::Serialize;

use super::args::{
    self, ArgError, ArgProblem, Declared, InstantArg, IntRule, RawArgs, StatusArg, TextArg, LIMIT,
    MAX_SCAN, SKIP,
};
use super::envelope::{Envelope, Extras, Failure};
use super::list_voucher_codes::VoucherCode;
use super::read_ahead::{ReadAhead, Span};
use super::{memory, words, CallContext, ScanProgress};
use crate::backend::{Code, CodeStatus, PoolRef, SkipCheck, MAX_CODES_PER_PAGE};

pub const NAME: &str = "find_voucher_codes";
pub const TITLE: &str = "Find voucher codes";

pub fn description() -> String {
    format!(
        "Find the codes of one voucher pool that meet a filter, in one call: the server pages through the pool \
         and returns only the matches. Take `pool_id` from list_voucher_pools. Filter by `code` (an exact code, \
         case ignored: \"is ABC-123 still valid?\"), `code_prefix`, `status`, and when codes were assigned or \
         redeemed (`assigned_after`, `assigned_before`, `redeemed_after`, `redeemed_before`: RFC 3339 times with \
         an offset, like 2026-07-01T00:00:00+02:00, or Unix seconds; `_after` includes the instant, `_before` \
         excludes it: \"which were redeemed yesterday?\"). At most `limit` matches come back (default {}, at \
         most {}); at most `max_scan` codes are examined (default {}, at most {}). `scanned` says how many were \
         examined; when `complete` is false, call again with `skip` set to `next_skip` to go on.",
        LIMIT.default, LIMIT.max, MAX_SCAN.default, MAX_SCAN.max
    )
}

const CODE: TextArg = TextArg::new(
    "code",
    "An exact code to look for; upper and lower case are the same.",
);
const CODE_PREFIX: TextArg = TextArg::new(
    "code_prefix",
    "Only codes that start with this text; case is ignored.",
);
const STATUS: StatusArg = StatusArg::new("status", "Only codes with this status: `available`, `assigned` or `redeemed` (filtered by the API where it can, so only those pages are read; otherwise each page is filtered here).");
const ASSIGNED_AFTER: InstantArg = InstantArg::new("assigned_after", "Only codes assigned at or after this instant: RFC 3339 with an offset or `Z`, or Unix seconds.");
const ASSIGNED_BEFORE: InstantArg = InstantArg::new(
    "assigned_before",
    "Only codes assigned before this instant (not at it).",
);
const REDEEMED_AFTER: InstantArg = InstantArg::new(
    "redeemed_after",
    "Only codes redeemed at or after this instant.",
);
const REDEEMED_BEFORE: InstantArg = InstantArg::new(
    "redeemed_before",
    "Only codes redeemed before this instant (not at it).",
);
const SCAN_SKIP: IntRule = IntRule {
    about: "Where the scan starts, as an offset among the pool's codes (those of `status`, when given and the backend filters by it); to go on with a scan, pass the `next_skip` of the call before",
    ..SKIP
};

pub const ARGS: &[&dyn Declared] = &[
    &args::PROJECT_ID,
    &args::POOL_ID,
    &CODE,
    &CODE_PREFIX,
    &STATUS,
    &ASSIGNED_AFTER,
    &ASSIGNED_BEFORE,
    &REDEEMED_AFTER,
    &REDEEMED_BEFORE,
    &SCAN_SKIP,
    &LIMIT,
    &MAX_SCAN,
];

/// Beside the matching codes: where the scan stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct Scan {
    /// How many codes were examined.
    pub scanned: u64,
    /// How many codes the pool holds in the population scanned (all codes, or those of `status`), as the API counts them; null when unknown or on failure.
    pub matched: Option<u64>,
    /// Whether every code of that population from `skip` on was examined.
    pub complete: bool,
    /// Where a follow-up call resumes (pass it as `skip`); null when `complete`.
    pub next_skip: Option<u64>,
    /// When the oldest page this answer rests on was read from Bloomreach (RFC 3339, UTC): a page read less than a minute before is used again. Null on failure.
    pub as_of: Option<String>,
}

impl Extras for Scan {
    fn failed(self) -> Self {
        Self {
            scanned: self.scanned,
            ..Self::default()
        }
    }
}

pub type Output = Envelope<Vec<VoucherCode>, Scan>;

struct Filter {
    /// Applied here only where the backend cannot filter by status.
    status: Option<CodeStatus>,
    code: Option<String>,
    code_prefix: Option<String>,
    assigned: Bounds,
    redeemed: Bounds,
}

/// `[after, before)` in microseconds since the epoch.
#[derive(Default)]
struct Bounds {
    after: Option<i64>,
    before: Option<i64>,
}

impl Bounds {
    fn read(args: &RawArgs, after: &InstantArg, before: &InstantArg) -> Result<Self, ArgError> {
        let bounds = Self {
            after: args::instant(args, after.name)?.map(|i| i.0),
            before: args::instant(args, before.name)?.map(|i| i.0),
        };
        if bounds.after.zip(bounds.before).is_some_and(|(a, b)| a >= b) {
            return Err(ArgError {
                name: after.name,
                problem: ArgProblem::NotBefore {
                    other: before.name,
                    got: args::show(args.get(after.name).unwrap_or_default()),
                },
            });
        }
        Ok(bounds)
    }

    fn admit(&self, time: Option<f64>) -> bool {
        let within =
            |us: i64| self.after.is_none_or(|a| us >= a) && self.before.is_none_or(|b| us < b);
        (self.after.is_none() && self.before.is_none())
            || time.and_then(args::micros).is_some_and(within)
    }
}

fn lower(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

/// Whether `text`, in lower case, is `wanted` (given in lower case).
fn same_code(text: &str, wanted: &str) -> bool {
    if text.is_ascii() && wanted.is_ascii() {
        return text.eq_ignore_ascii_case(wanted);
    }
    lower(text).eq(wanted.chars())
}

/// Whether `text`, in lower case, starts with `prefix` (given in lower case).
fn starts_with(text: &str, prefix: &str) -> bool {
    if text.is_ascii() && prefix.is_ascii() {
        return text
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()));
    }
    let mut letters = lower(text);
    prefix.chars().all(|p| letters.next() == Some(p))
}

impl Filter {
    fn admit(&self, code: &Code) -> bool {
        self.status.is_none_or(|s| code.status == s.as_str())
            && self.code.as_ref().is_none_or(|w| same_code(&code.code, w))
            && self
                .code_prefix
                .as_ref()
                .is_none_or(|p| starts_with(&code.code, p))
            && self.assigned.admit(code.assigned_time)
            && self.redeemed.admit(code.redeemed_time)
    }
}

pub async fn call(context: &CallContext<'_>, args: &RawArgs) -> Output {
    match find(context, args).await {
        Ok(envelope) => envelope,
        Err((scanned, failure)) => Output::failed(
            words::failure(&failure),
            Scan {
                scanned,
                ..Scan::default()
            },
        ),
    }
}

async fn find(context: &CallContext<'_>, args: &RawArgs) -> Result<Output, (u64, Failure)> {
    let fail = |e: ArgError| (0, Failure::from(e));
    let (project_id, pool_id) = args::pool_ids(args).map_err(fail)?;
    let lowered = |arg: TextArg| args::text(args, arg.name).map(|t| t.map(|c| lower(&c).collect()));
    let filter = Filter {
        code: lowered(CODE).map_err(fail)?,
        code_prefix: lowered(CODE_PREFIX).map_err(fail)?,
        assigned: Bounds::read(args, &ASSIGNED_AFTER, &ASSIGNED_BEFORE).map_err(fail)?,
        redeemed: Bounds::read(args, &REDEEMED_AFTER, &REDEEMED_BEFORE).map_err(fail)?,
        status: None,
    };
    let status: Option<CodeStatus> = args::status(args).map_err(fail)?;
    let skip = args::integer(args, SCAN_SKIP).checked().map_err(fail)? as u64;
    let limit = args::integer(args, LIMIT).checked().map_err(fail)? as usize;
    let max_scan = args::integer(args, MAX_SCAN).checked().map_err(fail)? as u64;

    // Page `n` of the scan, unless it lies beyond `max_scan`.
    let page_span = |n: u64| {
        let start = n * MAX_CODES_PER_PAGE as u64;
        (start < max_scan).then(|| Span {
            skip: skip + start,
            count: (max_scan - start).min(MAX_CODES_PER_PAGE as u64),
        })
    };
    // Where the backend cannot filter a page by status, the status is applied here.
    let pushed = status.is_none()
        || context
            .backend
            .filters_by_status()
            .await
            .map_err(|e| (0, Failure::from(e)))?;
    let (filter, status) = if pushed {
        (filter, status)
    } else {
        (Filter { status, ..filter }, None)
    };
    let pool = PoolRef {
        project_id: &project_id,
        pool_id: &pool_id,
    };
    let mut pages =
        ReadAhead::new(|span: Span| memory::page(context, pool, status, span.skip, span.count));
    let mut read_at = Vec::new();
    let mut data = Vec::new();
    let mut scanned = 0u64;
    let mut matched: Option<u64> = None;
    let mut densest = 0usize; // the most matches one page has given so far
    let mut requested = 0u64;
    let mut repeats = SkipCheck::default();
    let complete = loop {
        // The next page is needed (at first, the first). The one after it is
        // asked for now too (on its way while this one is decoded) when the
        // backend gains by it, the API counted that far and the matches so far
        // leave room for two more pages as dense as the densest yet: a request
        // ahead is rarely left unread.
        let room_for_two = context.backend.reads_ahead() && data.len() + 2 * densest < limit;
        while pages.in_flight() < 2 {
            let Some(next) = page_span(requested) else {
                break;
            };
            let ahead = pages.in_flight() == 1;
            if ahead && !(room_for_two && matched.is_some_and(|m| next.skip < m)) {
                break;
            }
            pages.request(next);
            requested += 1;
        }
        // Nothing is left to ask for only when `max_scan` codes have been
        // examined (the population did not end, or the loop would have).
        let Some((span, page)) = pages.next().await else {
            break false;
        };
        let page = page.map_err(|e| (scanned, Failure::from(e)))?;
        read_at.push(page.at);
        let page = &*page.value;
        // An API that ignores `skip` answers the same page again: its codes would be counted twice.
        let first = page.codes.first().map(|c| c.code.clone());
        repeats
            .page(span.skip, span.skip > skip, first)
            .map_err(|e| (scanned, Failure::from(e)))?;
        matched = page.matched;
        let count = span.count as usize;
        let on_page = page.codes.len().min(count) as u64;
        let mut examined = 0u64;
        let found_before = data.len();
        for code in page.codes.iter().take(count) {
            examined += 1;
            if filter.admit(code) {
                data.push(VoucherCode::from(code.clone()));
                if data.len() == limit {
                    break;
                }
            }
        }
        densest = densest.max(data.len() - found_before);
        scanned += examined;
        (context.on_progress)(ScanProgress {
            examined: scanned,
            total: matched,
        })
        .await;
        let short = examined == on_page && on_page < span.count;
        // The scan is complete only when the API's own count says so; a
        // short page is the end only where the API gives no count.
        match matched {
            Some(m) if skip + scanned >= m => break true,
            None if short => break true,
            // Fewer codes than asked while the count says more: the rest is for `next_skip`.
            Some(_) if short => break false,
            _ => {}
        }
        if data.len() == limit {
            break false;
        }
    };
    Ok(Output::ok(
        data,
        Scan {
            scanned,
            matched,
            complete,
            next_skip: (!complete).then_some(skip + scanned),
            as_of: memory::as_of(read_at),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(text: &str) -> String {
        lower(text).collect()
    }

    #[test]
    fn codes_compare_without_case_in_ascii_and_beyond() {
        for (code, wanted, same) in [
            ("SUM20-AB12", "sum20-ab12", true),
            ("sum20-ab12", "SUM20-AB12", true),
            ("SUM20-AB12", "sum20-ab1", false),
            ("SUM20-AB1", "sum20-ab12", false),
            ("", "", true),
            // The Kelvin sign is K in lower case: a code that is not ASCII
            // can equal one that is.
            ("\u{212A}AB", "kab", true),
            ("ÄBC", "äbc", true),
            ("ÄBC", "abc", false),
            // One letter whose lower case is two.
            ("\u{130}X", "i\u{307}x", true),
        ] {
            assert_eq!(
                same_code(code, &lowered(wanted)),
                same,
                "{code} vs {wanted}"
            );
        }
    }

    #[test]
    fn prefixes_compare_without_case_in_ascii_and_beyond() {
        for (code, prefix, starts) in [
            ("SUM20-AB12", "sum", true),
            ("SUM20-AB12", "SUM20-AB12", true),
            ("SUM20-AB12", "sum20-ab123", false),
            ("SUM20-AB12", "", true),
            ("SUM", "sum20", false),
            ("SUM20", "um", false),
            ("\u{212A}AB", "ka", true),
            ("ÄBC", "ä", true),
            ("ÄBC", "a", false),
            ("\u{130}X", "i", true),
        ] {
            assert_eq!(
                starts_with(code, &lowered(prefix)),
                starts,
                "{code} vs {prefix}"
            );
        }
    }
}
