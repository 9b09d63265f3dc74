//! The voucher data every backend speaks: what the tools ask for
//! ([`CodesQuery`]) and what comes back ([`PoolSummary`], [`Pool`],
//! [`CodesPage`]), decoded from the answer shape that Bloomreach's REST API
//! and Loomi Connect share ([`Reply`]). Unknown fields are ignored; a
//! missing required field fails decoding, which a backend reports as an
//! unexpected answer.

use std::borrow::Cow;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::{BackendError, Service};
use super::id::Id;

/// The top level of every answer. The paging fields are only present on the
/// codes endpoint; `error`/`errors` only on failures.
#[derive(Debug, Deserialize)]
pub struct Reply<D> {
    pub success: Option<bool>,
    #[serde(default = "Option::default")]
    pub data: Option<D>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub matched: Option<u64>,
    pub matched_limited: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub skip: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub limit: Option<u64>,
    pub error: Option<Value>,
    pub errors: Option<Value>,
}

/// A voucher pool as listed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PoolSummary {
    pub id: String,
    pub name: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub available: u64,
}

/// One voucher pool in full: the summary fields, and more.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Pool {
    #[serde(flatten)]
    pub summary: PoolSummary,
    /// The project the pool belongs to; filled with the requested project
    /// when the API leaves it out.
    pub company_id: Option<String>,
    /// Campaigns and other resources that draw from the pool, as given.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub used_by: Vec<Value>,
}

/// One voucher code.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Code {
    /// Kept inline, without an allocation, up to 24 bytes (most codes).
    pub code: CompactString,
    /// As the API spells it; the three known statuses are not allocated.
    #[serde(deserialize_with = "status_text")]
    pub status: Cow<'static, str>,
    pub assigned_time: Option<f64>,
    pub redeemed_time: Option<f64>,
}

/// A page of codes with the paging facts the API reported.
#[derive(Clone, Debug, PartialEq)]
pub struct CodesPage {
    pub codes: Vec<Code>,
    pub matched: Option<u64>,
    pub matched_limited: Option<bool>,
    /// The skip the API applied (the one asked for when it does not say).
    pub skip: u64,
    /// The limit the API applied (the count asked for when it does not say).
    pub limit: u64,
}

impl CodesPage {
    /// The page of `reply`, answering `query`: the paging facts it left out
    /// are the ones asked for.
    pub fn from_reply(
        reply: Reply<Capped<Code, MAX_CODES_PER_PAGE>>,
        query: &CodesQuery<'_>,
    ) -> Self {
        Self {
            codes: reply.data.unwrap_or_default().0,
            matched: reply.matched,
            matched_limited: reply.matched_limited,
            skip: reply.skip.unwrap_or(query.skip),
            limit: reply.limit.unwrap_or(query.count),
        }
    }
}

impl Pool {
    /// The pool, with the project it was asked for where the answer left
    /// `company_id` out.
    pub fn of_project(mut self, project_id: &super::Id) -> Self {
        self.company_id
            .get_or_insert_with(|| project_id.to_string());
        self
    }
}

impl Reply<Pool> {
    /// The pool `service` answered for `project_id`; no data is a failure.
    pub fn pool(self, service: Service, project_id: &super::Id) -> Result<Pool, BackendError> {
        let pool = self.data.ok_or(BackendError::Unexpected {
            service,
            problem: super::AnswerProblem::NoData,
            excerpt: None,
        })?;
        Ok(pool.of_project(project_id))
    }
}

/// One pool of one project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRef<'a> {
    pub project_id: &'a Id,
    pub pool_id: &'a Id,
}

/// What to ask for on the codes endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodesQuery<'a> {
    pub project_id: &'a Id,
    pub pool_id: &'a Id,
    pub skip: u64,
    pub count: u64,
    pub status: Option<CodeStatus>,
}

/// The statuses a code can have, as the API spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeStatus {
    Available,
    Assigned,
    Redeemed,
}

impl CodeStatus {
    pub const ALL: [CodeStatus; 3] = [Self::Available, Self::Assigned, Self::Redeemed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Assigned => "assigned",
            Self::Redeemed => "redeemed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The most codes one page holds (the API's own page limit); codes beyond
/// it in an answer are skipped unread.
pub const MAX_CODES_PER_PAGE: usize = 1000;
/// The most pools listed for one project: a project with more is an
/// error that names this bound, never a part of the list.
pub const MAX_POOLS: usize = 10_000;
/// The most `used_by` entries read for one pool; more is an error that
/// names this bound.
pub const MAX_USED_BY: usize = 1000;
/// The most organizations, or projects of one organization, read.
pub const MAX_PROJECTS: usize = 5000;

/// Notices an API that ignores `skip`: a page after the first that begins
/// with the same record as the page before would count its records twice.
#[derive(Debug)]
pub struct SkipCheck<T>(Option<T>);

impl<T> Default for SkipCheck<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: PartialEq> SkipCheck<T> {
    /// The page asked for at `skip` (`later`: not the first of the read)
    /// begins with `first`: the failure when it repeats the page before.
    pub fn page(&mut self, skip: u64, later: bool, first: Option<T>) -> Result<(), BackendError> {
        if later && first.is_some() && first == self.0 {
            return Err(BackendError::SkipIgnored { skip });
        }
        self.0 = first;
        Ok(())
    }
}

/// Marks the decoder's error of a [`Bounded`] list that holds more than
/// its bound: [`too_many`] finds it again in the error's text.
const BOUND_MARK: &str = "\u{1}more than ";

/// At most `N` items of a JSON array, or an error that says there are more
/// (found by [`too_many`]): for lists of which part would be a wrong
/// answer (the pools of a project, a pool's `used_by`).
#[derive(Clone, Debug, PartialEq)]
pub struct Bounded<T, const N: usize>(pub Vec<T>);

impl<T, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Capped(items) = Capped::<T, { usize::MAX }>::read(deserializer, Some(N))?;
        Ok(Self(items))
    }
}

/// The bound a [`Bounded`] list went over, read from a decoder's error.
pub fn too_many(error: &str) -> Option<usize> {
    let at = error.find(BOUND_MARK)? + BOUND_MARK.len();
    let digits: String = error[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The failure for a decoder's error that [`too_many`] recognizes.
pub fn bound_error(error: &str) -> Option<BackendError> {
    too_many(error).map(|bound| BackendError::TooMany {
        what: match bound {
            MAX_USED_BY => "used_by entries of the pool",
            MAX_POOLS => "voucher pools in the project",
            _ => "records",
        },
        bound,
    })
}

/// At most `N` items of a JSON array: the rest are skipped as they are
/// read, so that no answer, however many records it holds, is kept whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Capped<T, const N: usize>(pub Vec<T>);

impl<T, const N: usize> Default for Capped<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::read(deserializer, None)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Capped<T, N> {
    /// Up to `N` items, the rest skipped; with `bound`, an error instead
    /// when there are more than `bound`.
    fn read<D: Deserializer<'de>>(deserializer: D, bound: Option<usize>) -> Result<Self, D::Error> {
        struct Items<T, const N: usize>(Option<usize>, std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Items<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let keep = self.0.unwrap_or(N).min(N);
                let mut items =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(keep).min(1024));
                while items.len() < keep {
                    match seq.next_element()? {
                        Some(item) => items.push(item),
                        None => return Ok(Capped(items)),
                    }
                }
                if let Some(bound) = self.0 {
                    if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                        return Err(serde::de::Error::custom(format!("{BOUND_MARK}{bound}")));
                    }
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Capped(items))
            }
        }
        deserializer.deserialize_seq(Items(bound, std::marker::PhantomData))
    }
}

/// A status as given, without an allocation when it is one of the three
/// the API documents (a page holds a thousand of them).
fn status_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'static, str>, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = Cow<'static, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(known(text).unwrap_or_else(|| Cow::Owned(text.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(known(&text).unwrap_or(Cow::Owned(text)))
        }
    }
    fn known(text: &str) -> Option<Cow<'static, str>> {
        CodeStatus::parse(text).map(|status| Cow::Borrowed(status.as_str()))
    }
    deserializer.deserialize_str(Text)
}

/// Accepts a non-negative integer, also when written as an integral float.
fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    to_u64(serde_json::Number::deserialize(deserializer)?)
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<serde_json::Number>::deserialize(deserializer)?;
    value.map(to_u64).transpose()
}

fn to_u64<E: serde::de::Error>(n: serde_json::Number) -> Result<u64, E> {
    let f = n.as_f64().unwrap_or(f64::NAN);
    let integral = f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19;
    let value = n.as_u64().or(integral.then_some(f as u64));
    value.ok_or_else(|| E::custom(format!("expected a non-negative integer, got {n}")))
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Value>, D::Error> {
    let list = Option::<Bounded<Value, MAX_USED_BY>>::deserialize(deserializer)?;
    Ok(list.unwrap_or_default().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pool_reply_decodes_and_ignores_unknown_fields() {
        let reply: Reply<Pool> = serde_json::from_value(json!({
            "success": true,
            "data": {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742.0,
                     "company_id": "proj", "used_by": [{"type": "campaign", "id": "c9"}],
                     "extra": {"nested": true}}
        }))
        .unwrap();
        assert_eq!(
            reply.data.unwrap(),
            Pool {
                summary: PoolSummary {
                    id: "p1".into(),
                    name: "SUMMER20".into(),
                    total: 1000,
                    available: 742,
                },
                company_id: Some("proj".into()),
                used_by: vec![json!({"type": "campaign", "id": "c9"})],
            }
        );
    }

    #[test]
    fn missing_required_field_fails() {
        let r = serde_json::from_value::<Reply<Vec<PoolSummary>>>(json!({
            "success": true, "data": [{"id": "p1", "name": "x", "total": 3}]
        }));
        assert!(r.unwrap_err().to_string().contains("available"));
    }

    #[test]
    fn negative_or_fractional_counts_fail() {
        for bad in [json!(-1), json!(1.5), json!("3")] {
            let r = serde_json::from_value::<PoolSummary>(
                json!({"id": "p", "name": "n", "total": bad, "available": 0}),
            );
            assert!(r.is_err());
        }
    }

    #[test]
    fn codes_reply_reads_paging_and_null_times() {
        let reply: Reply<Vec<Code>> = serde_json::from_value(json!({
            "success": true,
            "data": [{"code": "A", "status": "assigned", "assigned_time": 1718000000.5, "redeemed_time": null},
                     {"code": "B", "status": "mystery"}],
            "matched": 2, "matched_limited": false, "skip": 0, "limit": 20, "total": 2
        }))
        .unwrap();
        let codes = reply.data.unwrap();
        assert_eq!(codes[0].assigned_time, Some(1718000000.5));
        assert_eq!(codes[1].redeemed_time, None);
        assert_eq!(codes[1].status, "mystery");
        assert_eq!(
            (
                reply.matched,
                reply.matched_limited,
                reply.skip,
                reply.limit
            ),
            (Some(2), Some(false), Some(0), Some(20))
        );
    }

    #[test]
    fn used_by_null_becomes_empty() {
        let pool: Pool = serde_json::from_value(
            json!({"id": "p", "name": "n", "total": 0, "available": 0, "used_by": null}),
        )
        .unwrap();
        assert!(pool.used_by.is_empty());
        assert_eq!(pool.company_id, None);
    }

    #[test]
    fn capped_arrays_keep_the_first_items_and_skip_the_rest() {
        let capped: Capped<u32, 3> =
            serde_json::from_str("[1, 2, 3, 4, {\"x\": [5]}, \"y\"]").unwrap();
        assert_eq!(capped.0, vec![1, 2, 3]);
        let short: Capped<u32, 3> = serde_json::from_str("[7]").unwrap();
        assert_eq!(short.0, vec![7]);
        assert!(serde_json::from_str::<Capped<u32, 3>>("[1, \"a\"]").is_err());
        assert!(serde_json::from_str::<Capped<u32, 3>>("{}").is_err());
    }

    #[test]
    fn status_parses_only_the_three_names() {
        assert_eq!(CodeStatus::parse("redeemed"), Some(CodeStatus::Redeemed));
        assert_eq!(CodeStatus::parse("used"), None);
    }
}
