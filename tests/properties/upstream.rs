//! Property 3: whatever the API answers, the tool answers an envelope.

use super::*;

pub(crate) const STATUSES: [u16; 7] = [200, 400, 401, 403, 404, 418, 500];

/// Values that are the wrong type for some field, or just right for another.
pub(crate) fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        2 => prop::sample::select(vec![
            json!("3"),
            json!("742"),
            json!(-1),
            json!(1.5),
            json!(742.0),
            json!(null),
            json!([]),
            json!({}),
            json!(true),
            json!(SECRET),
            json!(format!("Basic {BASIC_TOKEN}")),
            json!(format!("{} {SECRET}", "x".repeat(700))),
            json!({"nested": {"deeper": [1, "two", null]}}),
            json!(1e300),
            json!(18446744073709551615u64),
        ]),
        1 => "[a-z]{500,2000}".prop_map(Value::from),
    ]
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Remove,
    Rename(String),
    Replace(Value),
    Add(String, Value),
}

#[derive(Clone, Debug)]
pub(crate) struct Mutation {
    target: Index,
    key: Index,
    op: Op,
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let new_name = prop_oneof![
        prop::sample::select(vec![
            "Id",
            "ID",
            "name ",
            "totl",
            "availableCount",
            "data_",
            "Data",
            "succes",
            "code",
            "status",
            "total",
            "available",
            "id",
            "name",
            "assigned_time",
            "redeemed_time",
            "used_by",
            "company_id",
            "matched",
            "error",
            "errors",
        ])
        .prop_map(String::from),
        key(),
    ];
    let op = prop_oneof![
        2 => Just(Op::Remove),
        1 => new_name.clone().prop_map(Op::Rename),
        3 => replacement().prop_map(Op::Replace),
        2 => (new_name, replacement()).prop_map(|(k, v)| Op::Add(k, v)),
    ];
    (any::<Index>(), any::<Index>(), op).prop_map(|(target, key, op)| Mutation { target, key, op })
}

/// Applies one mutation to the body's top level, its `data` object or one
/// of the objects in its `data` array.
pub(crate) fn apply(body: &mut Value, m: &Mutation) {
    let mut pointers = vec![String::new()];
    match body.get("data") {
        Some(Value::Object(_)) => pointers.push("/data".to_owned()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if item.is_object() {
                    pointers.push(format!("/data/{i}"));
                }
            }
        }
        _ => {}
    }
    let pointer = m.target.get(&pointers).clone();
    let Some(Value::Object(object)) = body.pointer_mut(&pointer) else {
        return;
    };
    let keys: Vec<String> = object.keys().cloned().collect();
    match &m.op {
        Op::Add(k, v) => {
            object.insert(k.clone(), v.clone());
        }
        _ if keys.is_empty() => {}
        Op::Remove => {
            object.remove(m.key.get(&keys));
        }
        Op::Rename(new) => {
            if let Some(v) = object.remove(m.key.get(&keys)) {
                object.insert(new.clone(), v);
            }
        }
        Op::Replace(v) => {
            object.insert(m.key.get(&keys).clone(), v.clone());
        }
    }
}

pub(crate) fn count_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..100_000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (0u64..100_000).prop_map(|v| float(v as f64)),
    ]
}

pub(crate) fn epoch_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        4 => (0.0f64..2_000_000_000.0).prop_map(float),
        2 => (0i64..2_000_000_000_000).prop_map(|ms| float(ms as f64 / 1000.0)),
        1 => (0i64..2_000_000_000).prop_map(Value::from),
        1 => any::<f64>().prop_map(float),
        1 => prop::sample::select(vec![
            -62_167_219_200.0,
            -62_167_219_200.5,
            253_402_300_799.999_999,
            253_402_300_799.999_999_9,
            253_402_300_800.0,
            -1.5,
            1e20,
            -1e12,
        ])
        .prop_map(float),
    ]
}

pub(crate) fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["p1", "SUMMER20", "Été ☀️", "", "SUM-0001"])
            .prop_map(Value::from),
        tricky_string().prop_map(Value::from),
    ]
}

pub(crate) fn summary() -> impl Strategy<Value = Value> {
    (text(), text(), count_value(), count_value())
        .prop_map(|(id, name, total, available)| json!({"id": id, "name": name, "total": total, "available": available}))
}

pub(crate) fn pool() -> impl Strategy<Value = Value> {
    (
        summary(),
        prop::option::of(prop_oneof![text(), Just(Value::Null)]),
        prop::option::of(prop_oneof![
            prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
            Just(Value::Null),
        ]),
    )
        .prop_map(|(mut pool, company_id, used_by)| {
            let object = pool.as_object_mut().expect("an object");
            if let Some(c) = company_id {
                object.insert("company_id".into(), c);
            }
            if let Some(u) = used_by {
                object.insert("used_by".into(), u);
            }
            pool
        })
}

pub(crate) fn code() -> impl Strategy<Value = Value> {
    (
        text(),
        prop_oneof![
            prop::sample::select(vec!["available", "assigned", "redeemed", "mystery"])
                .prop_map(Value::from),
            text(),
        ],
        prop::option::of(epoch_value()),
        prop::option::of(epoch_value()),
    )
        .prop_map(|(code, status, assigned, redeemed)| {
            let mut object = json!({"code": code, "status": status});
            let map = object.as_object_mut().expect("an object");
            if let Some(a) = assigned {
                map.insert("assigned_time".into(), a);
            }
            if let Some(r) = redeemed {
                map.insert("redeemed_time".into(), r);
            }
            object
        })
}

/// A body of about the right shape for the tool, then mutated.
pub(crate) fn shaped_body(tool: &'static str) -> BoxedStrategy<Value> {
    let data: BoxedStrategy<Value> = match tool {
        LIST_VOUCHER_POOLS => prop::collection::vec(summary(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        GET_VOUCHER_POOL => pool().boxed(),
        _ => prop::collection::vec(code(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
    };
    let success = prop_oneof![
        5 => Just(Some(json!(true))),
        2 => Just(None),
        1 => Just(Some(json!(false))),
        1 => Just(Some(Value::Null)),
        1 => leaf().prop_map(Some),
    ];
    let paging_value = |name: &'static str| {
        let right = if name == "matched_limited" {
            any::<bool>().prop_map(Value::Bool).boxed()
        } else {
            count_value().boxed()
        };
        let value = prop_oneof![8 => right, 1 => Just(Value::Null), 1 => leaf()];
        prop::option::weighted(0.6, value.prop_map(move |v| (name, v)))
    };
    let paging = (
        paging_value("matched"),
        paging_value("matched_limited"),
        paging_value("skip"),
        paging_value("limit"),
        paging_value("total"),
    )
        .prop_map(|(a, b, c, d, e)| [a, b, c, d, e].into_iter().flatten().collect::<Vec<_>>());
    let errors = prop::option::of(prop_oneof![
        Just(json!({"_global": ["project is locked"]})),
        Just(json!(["not authorized to read vouchers"])),
        json_value(),
    ]);
    (
        success,
        data,
        paging,
        errors,
        prop_oneof![Just(Vec::new()), prop::collection::vec(mutation(), 1..4)],
    )
        .prop_map(|(success, data, paging, errors, mutations)| {
            let mut body = Map::new();
            if let Some(s) = success {
                body.insert("success".into(), s);
            }
            body.insert("data".into(), data);
            for (k, v) in paging {
                body.insert(k.into(), v);
            }
            if let Some(e) = errors {
                body.insert("errors".into(), e);
            }
            let mut body = Value::Object(body);
            for m in &mutations {
                apply(&mut body, m);
            }
            body
        })
        .boxed()
}

pub(crate) fn html_page() -> impl Strategy<Value = Vec<u8>> {
    (tricky_string(), tricky_string()).prop_map(|(title, body)| {
        format!(
            "<!DOCTYPE html><html><head><title>{title}</title><style>p{{}}</style></head>\
             <body><h1>{body}</h1><script>var secret = \"{SECRET}\";</script></body></html>"
        )
        .into_bytes()
    })
}

pub(crate) fn body_for(tool: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..2000),
        1 => html_page(),
        1 => (prop::sample::select(vec!['x', ' ', '\n', 'é']), 60_000usize..80_000)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>().into_bytes()),
        2 => json_value().prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
        2 => prop::sample::select(vec![
            json!({"success": false, "error": "access key not found"}),
            json!({"success": false, "errors": ["not authorized to read vouchers"]}),
            json!({"errors": {"code": 404, "description": "pool does not exist"}}),
            json!({"success": false, "errors": {"_global": ["bad skip"]}}),
            json!({"success": false, "error": format!("{} Basic {BASIC_TOKEN} {SECRET}", "y".repeat(290))}),
            json!({"message": "x\ny\r\nz"}),
        ])
        .prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
        // A secret where a quote of 300 (JSON messages) or 200 (other
        // bodies) characters is cut.
        1 => (285usize..300).prop_map(|n| {
            serde_json::to_vec(&json!({"success": false, "error": format!("{} {SECRET}", "y".repeat(n))}))
                .expect("JSON")
        }),
        1 => (185usize..200).prop_map(|n| format!("{} {SECRET}", "y".repeat(n)).into_bytes()),
        8 => shaped_body(tool).prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
    ]
}

/// Whether `error` quotes the secret or the Authorization token, in full or
/// as a prefix cut off by a shortening (`tops…`).
pub(crate) fn quotes_credential(error: &str) -> bool {
    if error.contains(SECRET) || error.contains(BASIC_TOKEN) {
        return true;
    }
    (3..SECRET.len()).any(|n| error.contains(&format!("{}…", &SECRET[..n])))
}

#[derive(Clone)]
pub(crate) struct UpstreamCase {
    tool: &'static str,
    project_id: &'static str,
    pool_id: &'static str,
    status: u16,
    body: Vec<u8>,
}

impl std::fmt::Debug for UpstreamCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(2000).collect();
        f.debug_struct("UpstreamCase")
            .field("tool", &self.tool)
            .field("project_id", &self.project_id)
            .field("pool_id", &self.pool_id)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("body", &shown)
            .finish()
    }
}

impl UpstreamCase {
    fn args(&self) -> Map<String, Value> {
        let args = match self.tool {
            LIST_VOUCHER_POOLS => json!({"project_id": self.project_id}),
            GET_VOUCHER_POOL => json!({"project_id": self.project_id, "pool_id": self.pool_id}),
            _ => {
                json!({"project_id": self.project_id, "pool_id": self.pool_id, "skip": 40, "count": 7})
            }
        };
        args.as_object().cloned().unwrap_or_default()
    }
}

pub(crate) fn upstream_case() -> impl Strategy<Value = UpstreamCase> {
    prop::sample::select(vec![
        LIST_VOUCHER_POOLS,
        GET_VOUCHER_POOL,
        LIST_VOUCHER_CODES,
    ])
    .prop_flat_map(|tool| {
        (
            prop::sample::select(vec!["proj", "p 1", "é/x"]),
            prop::sample::select(vec!["p1", "../x", "a%2Fb"]),
            prop_oneof![3 => Just(200u16), 2 => prop::sample::select(STATUSES.to_vec())],
            body_for(tool),
        )
            .prop_map(move |(project_id, pool_id, status, body)| UpstreamCase {
                tool,
                project_id,
                pool_id,
                status,
                body,
            })
    })
}

// --- A reference decoder: what the contract and the client's lenient
// --- decoding make of a 200 body. `Err(())` is a fault.

pub(crate) type Decoded<T> = Result<T, ()>;

pub(crate) fn lenient_u64(value: &Value) -> Decoded<u64> {
    let Value::Number(n) = value else {
        return Err(());
    };
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    let f = n.as_f64().ok_or(())?;
    if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 {
        Ok(f as u64)
    } else {
        Err(())
    }
}

pub(crate) fn opt<T>(
    value: Option<&Value>,
    read: impl Fn(&Value) -> Decoded<T>,
) -> Decoded<Option<T>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v).map(Some),
    }
}

pub(crate) fn required<T>(
    value: Option<&Value>,
    read: impl Fn(&Value) -> Decoded<T>,
) -> Decoded<T> {
    value.ok_or(()).and_then(read)
}

pub(crate) fn string(value: &Value) -> Decoded<String> {
    value.as_str().map(str::to_owned).ok_or(())
}

pub(crate) fn boolean(value: &Value) -> Decoded<bool> {
    value.as_bool().ok_or(())
}

pub(crate) fn number(value: &Value) -> Decoded<f64> {
    value.as_f64().ok_or(())
}

/// A struct's fields as serde's derive reads them: by name from an object,
/// by position from an array no longer than the field list.
pub(crate) fn fields<'a>(value: &'a Value, names: &[&str]) -> Decoded<Vec<Option<&'a Value>>> {
    match value {
        Value::Object(map) => Ok(names.iter().map(|n| map.get(*n)).collect()),
        Value::Array(items) if items.len() <= names.len() => {
            Ok((0..names.len()).map(|i| items.get(i)).collect())
        }
        _ => Err(()),
    }
}

pub(crate) fn array<T>(value: &Value, item: impl Fn(&Value) -> Decoded<T>) -> Decoded<Vec<T>> {
    value.as_array().ok_or(())?.iter().map(item).collect()
}

pub(crate) fn summary_record(value: &Value) -> Decoded<Value> {
    let f = fields(value, &["id", "name", "total", "available"])?;
    Ok(json!({
        "id": required(f[0], string)?,
        "name": required(f[1], string)?,
        "total": required(f[2], lenient_u64)?,
        "available": required(f[3], lenient_u64)?,
    }))
}

pub(crate) fn pool_record(value: &Value, project_id: &str) -> Decoded<Value> {
    let f = fields(
        value,
        &["id", "name", "total", "available", "company_id", "used_by"],
    )?;
    Ok(json!({
        "id": required(f[0], string)?,
        "name": required(f[1], string)?,
        "total": required(f[2], lenient_u64)?,
        "available": required(f[3], lenient_u64)?,
        "company_id": opt(f[4], string)?.unwrap_or_else(|| project_id.to_owned()),
        "used_by": opt(f[5], |v| v.as_array().cloned().ok_or(()))?.unwrap_or_default(),
    }))
}

/// A code's fields except the `*_at` ones, which [`check_at`] checks.
pub(crate) fn code_record(value: &Value) -> Decoded<Value> {
    let f = fields(value, &["code", "status", "assigned_time", "redeemed_time"])?;
    Ok(json!({
        "code": required(f[0], string)?,
        "status": required(f[1], string)?,
        "assigned_time": opt(f[2], number)?,
        "redeemed_time": opt(f[3], number)?,
    }))
}

/// The envelope fields a well-formed 200 body must give, or `Err` when the
/// body is a fault (not JSON, `success: false`, no data, a field missing or
/// of the wrong type).
pub(crate) fn reference(case: &UpstreamCase) -> Decoded<Map<String, Value>> {
    let body: Value = serde_json::from_slice(&case.body).map_err(|_| ())?;
    let f = fields(
        &body,
        &[
            "success",
            "data",
            "matched",
            "matched_limited",
            "skip",
            "limit",
            "error",
            "errors",
        ],
    )?;
    if opt(f[0], boolean)? == Some(false) {
        return Err(());
    }
    let matched = opt(f[2], lenient_u64)?;
    let matched_limited = opt(f[3], boolean)?;
    let skip = opt(f[4], lenient_u64)?;
    let limit = opt(f[5], lenient_u64)?;
    let data = match f[1] {
        None | Some(Value::Null) => return Err(()),
        Some(d) => d,
    };
    let mut out = Map::new();
    out.insert("success".into(), json!(true));
    out.insert("error".into(), Value::Null);
    match case.tool {
        LIST_VOUCHER_POOLS => {
            out.insert("data".into(), Value::Array(array(data, summary_record)?));
        }
        GET_VOUCHER_POOL => {
            out.insert("data".into(), pool_record(data, case.project_id)?);
        }
        _ => {
            let saturate = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            out.insert("data".into(), Value::Array(array(data, code_record)?));
            out.insert("matched".into(), json!(matched));
            out.insert("matched_limited".into(), json!(matched_limited));
            out.insert("skip".into(), json!(saturate(skip.unwrap_or(40))));
            out.insert("limit".into(), json!(saturate(limit.unwrap_or(7))));
        }
    }
    Ok(out)
}

/// Replaces `*_at` with nothing, so the rest compares with the reference.
pub(crate) fn without_at(mut envelope: Value) -> Value {
    if let Some(Value::Array(codes)) = envelope.get_mut("data") {
        for code in codes.iter_mut().filter_map(Value::as_object_mut) {
            code.remove("assigned_at");
            code.remove("redeemed_at");
        }
    }
    envelope
}

#[test]
pub(crate) fn any_upstream_answer_gives_an_envelope_and_faults_give_short_errors() {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start());
    let server = api_server(&mock, 0);
    let validators = validators(&server);
    check(1000, upstream_case(), |case| {
        rt.block_on(async {
            mock.reset().await;
            Mock::given(any_request())
                .respond_with(ResponseTemplate::new(case.status).set_body_bytes(case.body.clone()))
                .mount(&mock)
                .await;
        });
        let outcome = call(&rt, &server, case.tool, case.args())?;
        check_envelope(&validators, case.tool, &outcome)?;
        let received = rt.block_on(mock.received_requests()).unwrap_or_default();
        prop_assert_eq!(received.len(), 1, "one attempt, no retries");
        let expected = if case.status == 200 {
            reference(&case)
        } else {
            Err(())
        };
        match expected {
            Ok(fields) => {
                prop_assert!(
                    !outcome.is_error,
                    "a well-formed answer failed: {}",
                    short(&outcome.envelope)
                );
                if case.tool == LIST_VOUCHER_CODES {
                    check_codes_at(&outcome.envelope["data"])?;
                }
                prop_assert_eq!(without_at(outcome.envelope.clone()), Value::Object(fields));
            }
            Err(()) => {
                prop_assert!(
                    outcome.is_error,
                    "a faulty answer (HTTP {}) succeeded: {}",
                    case.status,
                    short(&outcome.envelope)
                );
                let error = outcome.error().unwrap_or_default();
                let chars = error.chars().count();
                prop_assert!(
                    chars <= MAX_ERROR_CHARS,
                    "error of {chars} characters: {}…",
                    error.chars().take(300).collect::<String>()
                );
                prop_assert!(
                    !quotes_credential(error),
                    "error quotes a credential: {error}"
                );
                if case.status != 200 {
                    prop_assert!(
                        error.contains(&case.status.to_string()),
                        "error does not say the status: {error}"
                    );
                }
                if case.status == 401 {
                    prop_assert!(
                        error.contains("BLOOMREACH_API_KEY_ID")
                            && error.contains("BLOOMREACH_API_SECRET"),
                        "a 401 names the settings: {error}"
                    );
                }
                if case.status == 404 {
                    let id = if case.tool == LIST_VOUCHER_POOLS {
                        case.project_id
                    } else {
                        case.pool_id
                    };
                    prop_assert!(error.contains(id), "a 404 names {id:?}: {error}");
                }
            }
        }
        Ok(())
    });
}

/// `Retry-After` values as a hostile API writes them: seconds up to 30
/// digits, fractions, HTTP dates from the past to the year 9999, junk.
/// None that the server would wait out for long: values of a second or
/// less are left out, so each case ends quickly.
fn retry_after_value() -> impl Strategy<Value = String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    prop_oneof![
        (2u64..).prop_map(|n| n.to_string()),
        "[1-9][0-9]{1,29}",
        (2.0f64..1e308).prop_map(|f| f.to_string()),
        "[1-9][0-9]{0,3}\\.[0-9]{1,6}[1-9]",
        Just("0".to_owned()),
        (
            0usize..7,
            1u32..29,
            0usize..12,
            prop_oneof![1970u32..2000, 2100u32..=9999]
        )
            .prop_map(|(d, day, m, year)| format!(
                "{}, {day:02} {} {year} 12:00:00 GMT",
                DAYS[d], MONTHS[m]
            )),
        "[ -~]{0,40}",
    ]
}

#[test]
fn any_retry_after_gives_an_envelope_quickly_and_never_a_panic() {
    let rt = runtime();
    let args = json!({"project_id": "proj"});
    check(
        48,
        (prop_oneof![Just(429u16), Just(503u16)], retry_after_value()),
        |(status, value)| {
            rt.block_on(async {
                let mock = MockServer::start().await;
                Mock::given(any_request())
                    .respond_with(
                        ResponseTemplate::new(status).insert_header("Retry-After", value.as_str()),
                    )
                    .mount(&mock)
                    .await;
                let outcome = api_server(&mock, 1)
                    .call(LIST_VOUCHER_POOLS, args.as_object().cloned(), &quiet)
                    .await
                    .expect("a tool");
                prop_assert!(outcome.is_error, "{value}: {:?}", outcome.envelope);
                let error = outcome.error().unwrap_or_default();
                prop_assert!(error.contains(&status.to_string()), "{value}: {error}");
                let requests = mock.received_requests().await.map_or(0, |r| r.len());
                prop_assert!(requests <= 2, "{value}: {requests} requests");
                Ok(())
            })
        },
    );
}
