//! Properties 1 and 2: any arguments give an envelope that matches the schema; invalid calls never reach the API, valid ones reach it once.

use super::*;

// ---------------------------------------------------------------------------
// Property 1: any arguments give an envelope that matches the schema
// ---------------------------------------------------------------------------

/// The skip or count an envelope must report when the argument was a plain
/// JSON integer or left out.
pub(crate) fn plain_integer(args: &Map<String, Value>, name: &str, default: i64) -> Option<i64> {
    match args.get(name) {
        None | Some(Value::Null) => Some(default),
        Some(v) => v.as_i64(),
    }
}

/// The argument names `tool`'s inputSchema declares.
fn tool_argument_names(server: &VoucherServer, tool: &str) -> Vec<String> {
    let definition = server
        .tools()
        .iter()
        .find(|t| t.name == tool)
        .expect("a listed tool");
    definition
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
pub(crate) fn any_arguments_give_an_envelope_that_matches_the_output_schema() {
    let rt = runtime();
    let server = VoucherServer::new(Backend::demo(), projects());
    let validators = validators(&server);
    check(
        1500,
        (prop::sample::select(TOOLS.to_vec()), raw_args()),
        |(tool, args)| {
            let outcome = call(&rt, &server, tool, args.clone())?;
            check_envelope(&validators, tool, &outcome)?;
            let envelope = &outcome.envelope;
            // A name the tool does not take is refused, naming it.
            let accepted = tool_argument_names(&server, tool);
            if let Some(unknown) = args.keys().find(|k| !accepted.contains(k)) {
                prop_assert_eq!(&envelope["success"], &json!(false));
                let error = envelope["error"].as_str().unwrap_or_default();
                prop_assert!(
                    error.contains("is not an argument of this tool"),
                    "{} with {:?}: {}",
                    tool,
                    unknown,
                    error
                );
            } else if tool == LIST_PROJECTS {
                prop_assert_eq!(
                    envelope,
                    &json!({"success": true, "data": [
                        {"id": "demo", "name": "Demo store"},
                        {"id": "tok-2", "name": "Été ☀️"}
                    ], "error": null})
                );
            }
            if tool == LIST_VOUCHER_CODES {
                // The demo applies what it is asked, and a failure echoes it.
                if let Some(skip) = plain_integer(&args, "skip", 0) {
                    prop_assert_eq!(envelope.get("skip"), Some(&json!(skip)));
                }
                if let Some(count) = plain_integer(&args, "count", 20) {
                    prop_assert_eq!(envelope.get("limit"), Some(&json!(count)));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Property 2: invalid calls never reach the API; valid ones reach it once
// ---------------------------------------------------------------------------

/// Answers every request with a valid 200 body for the endpoint its path
/// has the shape of.
pub(crate) struct ValidApi;

pub(crate) fn valid_pools_body() -> Value {
    json!({"success": true, "data": [{"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742}]})
}

pub(crate) fn valid_pool_body() -> Value {
    json!({"success": true, "data": {"id": "p1", "name": "SUMMER20", "total": 1000, "available": 742,
        "company_id": "proj", "used_by": [{"type": "campaign", "id": "c9", "name": "Summer"}]}})
}

/// Without `skip`/`limit`: the envelope then reports the ones asked for.
pub(crate) fn valid_codes_body() -> Value {
    json!({"success": true, "data": [{"code": "SUM-0001", "status": "assigned",
        "assigned_time": 1_718_000_000.5, "redeemed_time": null}],
        "matched": 1000, "matched_limited": false, "total": 1000})
}

impl Respond for ValidApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segments = request.url.path_segments().map_or(0, Iterator::count);
        let body = match segments {
            6 => valid_pools_body(),
            7 => valid_pool_body(),
            _ => valid_codes_body(),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// Mounts [`ValidApi`] on a fresh (request log cleared) mock server.
pub(crate) async fn reset_valid(mock: &MockServer) {
    mock.reset().await;
    Mock::given(any_request())
        .respond_with(ValidApi)
        .mount(mock)
        .await;
}

/// An integer argument as written, with the integer it means.
#[derive(Clone, Debug)]
pub(crate) struct IntForm {
    pub(crate) value: i64,
    pub(crate) json: Value,
}

pub(crate) fn int_forms(
    range: impl Strategy<Value = i64> + Clone,
) -> impl Strategy<Value = IntForm> {
    prop_oneof![
        range.clone().prop_map(|v| IntForm {
            value: v,
            json: json!(v)
        }),
        range
            .clone()
            .prop_map(|v| v.min(1 << 53))
            .prop_map(|v| IntForm {
                value: v,
                json: float(v as f64)
            }),
        (range, 0usize..3).prop_map(|(v, zeros)| IntForm {
            value: v,
            json: Value::String(format!("{}{v}", "0".repeat(zeros)))
        }),
    ]
}

pub(crate) fn valid_skip() -> impl Strategy<Value = IntForm> {
    prop_oneof![int_forms(0i64..100), int_forms(0i64..=i64::MAX)]
}

pub(crate) fn valid_count() -> impl Strategy<Value = IntForm> {
    int_forms(1i64..=1000)
}

pub(crate) fn id_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        3 => prop::sample::select(vec![
            '/', '.', '%', '?', '#', ' ', '&', '=', '+', ';', '\\', '\n', '\r', '\0', 'é', '☀',
            '\u{200b}', '\u{a0}', '~', '-', '_', ':', '@', '[', ']', '\u{7f}', '\u{10ffff}',
        ]),
        3 => prop::char::range('a', 'z'),
    ]
}

/// Any non-blank string of at most 1024 characters other than `.`/`..`.
pub(crate) fn valid_id() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "...", "%2e%2e", "%2E", "..%2F", "a/../b", ".%2e", "codes", "vouchers", "%", " padded ",
            "?skip=5", "#frag", "..\u{0}", "é", "\u{200b}",
        ])
        .prop_map(String::from),
        8 => prop::collection::vec(id_char(), 1..24).prop_map(String::from_iter),
        1 => prop::collection::vec(id_char(), 1000..=1024).prop_map(String::from_iter),
    ]
    .prop_filter("a valid id", |s| {
        !s.trim().is_empty() && s != "." && s != ".." && s.chars().count() <= 1024
    })
}

#[derive(Clone, Debug)]
pub(crate) struct ValidCall {
    tool: &'static str,
    project_id: String,
    pool_id: String,
    skip: Option<IntForm>,
    count: Option<IntForm>,
    /// Outer `None`: left out; `Some(None)`: sent as null.
    status: Option<Option<&'static str>>,
}

impl ValidCall {
    fn args(&self) -> Map<String, Value> {
        // Only names the tool takes: any other is refused (property 1).
        let mut args = Map::new();
        args.insert("project_id".into(), json!(self.project_id));
        if self.tool == LIST_VOUCHER_POOLS {
            return args;
        }
        args.insert("pool_id".into(), json!(self.pool_id));
        if self.tool == GET_VOUCHER_POOL {
            return args;
        }
        for key in ["skip", "count", "status"] {
            args.remove(key);
        }
        if let Some(skip) = &self.skip {
            args.insert("skip".into(), skip.json.clone());
        }
        if let Some(count) = &self.count {
            args.insert("count".into(), count.json.clone());
        }
        if let Some(status) = self.status {
            args.insert("status".into(), status.map_or(Value::Null, Value::from));
        }
        args
    }
}

pub(crate) fn valid_call() -> impl Strategy<Value = ValidCall> {
    (
        prop::sample::select(vec![
            LIST_VOUCHER_POOLS,
            GET_VOUCHER_POOL,
            LIST_VOUCHER_CODES,
        ]),
        valid_id(),
        valid_id(),
        prop::option::of(valid_skip()),
        prop::option::of(valid_count()),
        prop::option::of(prop::option::of(prop::sample::select(vec![
            "available",
            "assigned",
            "redeemed",
        ]))),
    )
        .prop_map(
            |(tool, project_id, pool_id, skip, count, status)| ValidCall {
                tool,
                project_id,
                pool_id,
                skip,
                count,
                status,
            },
        )
}

/// An invalid id, or `None` to leave it out.
pub(crate) fn bad_id() -> impl Strategy<Value = Option<Value>> {
    let blank = prop::collection::vec(
        prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{a0}', '\u{2003}', '\u{3000}', '\u{2028}',
        ]),
        0..6,
    )
    .prop_map(|c| Some(Value::String(String::from_iter(c))));
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        tricky_number().prop_filter_map("not null", |v| (!v.is_null()).then_some(Some(v))),
        any::<bool>().prop_map(|b| Some(Value::Bool(b))),
        prop::collection::vec(json_value(), 0..3).prop_map(|v| Some(Value::Array(v))),
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3)
            .prop_map(|kv| Some(Value::Object(kv.into_iter().collect()))),
        blank,
        Just(Some(json!("."))),
        Just(Some(json!(".."))),
        (id_char(), 1025usize..3000)
            .prop_filter("not blank", |(c, _)| !c.is_whitespace())
            .prop_map(|(c, n)| Some(Value::String(std::iter::repeat_n(c, n).collect()))),
    ]
}

/// Strings that are no number at all (nothing `str::parse::<f64>` reads as
/// a finite number, nor a string of digits).
pub(crate) fn non_numeric_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "", " ", "lots", "NaN", "nan", "inf", "-inf", "Infinity", "+inf", "0x10", "1_000",
            "１２", "٣", "twenty", "1,000", "1 000", "e", ".", "-", "+", "--1", "1e", "null",
            "true", "[1]", "{}", "٣٣",
        ])
        .prop_map(Value::from),
        "[a-zA-Z ]{0,20}".prop_map(Value::from),
    ]
}

pub(crate) fn non_integral_number() -> impl Strategy<Value = Value> {
    (
        -1_000_000i64..1_000_000,
        prop::sample::select(vec![0.5, 0.25, 0.1, 0.75, 0.001]),
        any::<bool>(),
    )
        .prop_map(|(whole, frac, as_string)| {
            let f = whole as f64 + frac;
            if as_string {
                Value::String(f.to_string())
            } else {
                float(f)
            }
        })
}

pub(crate) fn not_an_integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        non_integral_number(),
        non_numeric_string(),
        any::<bool>().prop_map(Value::Bool),
        prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
    ]
}

pub(crate) fn bad_skip() -> impl Strategy<Value = Value> {
    prop_oneof![
        (i64::MIN..0).prop_map(Value::from),
        (1i64..1_000_000).prop_map(|v| Value::String(format!("-{v}"))),
        (1i64..1_000_000).prop_map(|v| float(-(v as f64))),
        not_an_integer(),
    ]
}

pub(crate) fn bad_count() -> impl Strategy<Value = Value> {
    prop_oneof![
        (i64::MIN..=0).prop_map(Value::from),
        (1001i64..=i64::MAX).prop_map(Value::from),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::from),
        prop::sample::select(vec![
            json!(0),
            json!(1001),
            json!("0"),
            json!("-5"),
            json!("1001"),
            json!("99999999999999999999"),
            json!(0.0),
            json!(1001.0),
            json!(1e300),
            json!(-1e300),
        ]),
        not_an_integer(),
    ]
}

pub(crate) fn bad_status() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        "[a-zA-Z ]{0,12}".prop_map(Value::from),
        Just(json!("used")),
        Just(json!("available,assigned")),
        Just(json!(["available"])),
    ]
    .prop_filter("not a status", |v| match v {
        Value::Null => false,
        Value::String(s) => {
            !["available", "assigned", "redeemed"].contains(&s.trim().to_ascii_lowercase().as_str())
        }
        _ => true,
    })
}

#[derive(Clone, Debug)]
pub(crate) struct InvalidCall {
    tool: &'static str,
    args: Map<String, Value>,
    /// The arguments that break a rule; the error names one of them.
    broken: Vec<&'static str>,
}

#[derive(Clone, Debug)]
pub(crate) struct Breakage {
    project_id: Option<Option<Value>>,
    pool_id: Option<Option<Value>>,
    skip: Option<Value>,
    count: Option<Value>,
    status: Option<Value>,
}

pub(crate) fn invalid_call() -> impl Strategy<Value = InvalidCall> {
    let breakage = (
        prop::option::weighted(0.3, bad_id()),
        prop::option::weighted(0.3, bad_id()),
        prop::option::weighted(0.3, bad_skip()),
        prop::option::weighted(0.3, bad_count()),
        prop::option::weighted(0.3, bad_status()),
    )
        .prop_map(|(project_id, pool_id, skip, count, status)| Breakage {
            project_id,
            pool_id,
            skip,
            count,
            status,
        });
    (valid_call(), breakage, 0usize..5).prop_filter_map(
        "breaks a rule of the tool",
        |(call, breakage, forced)| {
            let mut breakage = breakage;
            // Make sure at least one argument the tool takes is broken.
            let takes = match call.tool {
                LIST_VOUCHER_POOLS => 1,
                GET_VOUCHER_POOL => 2,
                _ => 5,
            };
            let any_broken = [
                breakage.project_id.is_some(),
                breakage.pool_id.is_some(),
                breakage.skip.is_some(),
                breakage.count.is_some(),
                breakage.status.is_some(),
            ][..takes]
                .iter()
                .any(|b| *b);
            if !any_broken {
                match forced % takes {
                    0 => breakage.project_id = Some(Some(json!(".."))),
                    1 => breakage.pool_id = Some(None),
                    2 => breakage.skip = Some(json!(-1)),
                    3 => breakage.count = Some(json!(0)),
                    _ => breakage.status = Some(json!("used")),
                }
            }
            let mut args = call.args();
            let mut broken = Vec::new();
            let mut put_id = |name: &'static str, value: Option<Option<Value>>| {
                if let Some(value) = value {
                    broken.push(name);
                    match value {
                        None => args.remove(name),
                        Some(v) => args.insert(name.to_owned(), v),
                    };
                }
            };
            put_id("project_id", breakage.project_id);
            if takes >= 2 {
                put_id("pool_id", breakage.pool_id);
            }
            if takes == 5 {
                for (name, value) in [
                    ("skip", breakage.skip),
                    ("count", breakage.count),
                    ("status", breakage.status),
                ] {
                    if let Some(value) = value {
                        broken.push(name);
                        args.insert(name.to_owned(), value);
                    }
                }
            }
            (!broken.is_empty()).then_some(InvalidCall {
                tool: call.tool,
                args,
                broken,
            })
        },
    )
}

#[test]
pub(crate) fn invalid_arguments_never_reach_the_api_and_the_error_names_them() {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start());
    let server = api_server(&mock, 0);
    let validators = validators(&server);
    check(1000, invalid_call(), |case| {
        rt.block_on(reset_valid(&mock));
        let outcome = call(&rt, &server, case.tool, case.args.clone())?;
        check_envelope(&validators, case.tool, &outcome)?;
        let received = rt
            .block_on(mock.received_requests())
            .expect("request recording is on");
        prop_assert!(
            received.is_empty(),
            "{} sent {} request(s) for invalid arguments: {:?}",
            case.tool,
            received.len(),
            received
                .iter()
                .map(|r| r.url.to_string())
                .collect::<Vec<_>>()
        );
        prop_assert!(outcome.is_error);
        let error = outcome.error().unwrap_or_default();
        prop_assert!(
            case.broken.iter().any(|name| error.contains(name)),
            "the error names none of {:?}: {error}",
            case.broken
        );
        Ok(())
    });
}

/// The ids and query of a request to the voucher endpoints.
#[derive(Debug, PartialEq)]
pub(crate) struct Endpoint {
    ids: Vec<String>,
    codes: bool,
    query: Vec<(String, String)>,
}

pub(crate) fn endpoint(request: &Request) -> Result<Endpoint, TestCaseError> {
    let segments: Vec<&str> = request
        .url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let fail = || TestCaseError::fail(format!("unexpected path {}", request.url.path()));
    if segments.len() < 6 || segments[..3] != ["data", "v2", "projects"] {
        return Err(fail());
    }
    if segments[4..6] != ["vouchers", "pools"] {
        return Err(fail());
    }
    // Only unreserved characters and `%XX` escapes: nothing left raw.
    let encoded = |s: &str| {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                if i + 2 >= b.len() {
                    return false;
                }
                if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                    return false;
                }
                i += 3;
            } else if b[i].is_ascii_alphanumeric() || b"-._~".contains(&b[i]) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    };
    let decode = |s: &str| {
        if !encoded(s) {
            return Err(fail());
        }
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| fail())
    };
    let mut ids = vec![decode(segments[3])?];
    let codes = match segments.len() {
        6 => false,
        7 => {
            ids.push(decode(segments[6])?);
            false
        }
        8 if segments[7] == "codes" => {
            ids.push(decode(segments[6])?);
            true
        }
        _ => return Err(fail()),
    };
    Ok(Endpoint {
        ids,
        codes,
        query: request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    })
}

#[test]
pub(crate) fn valid_arguments_reach_the_intended_endpoint_once_with_each_id_as_one_segment() {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start());
    let server = api_server(&mock, 0);
    let validators = validators(&server);
    check(800, valid_call(), |case| {
        rt.block_on(reset_valid(&mock));
        let outcome = call(&rt, &server, case.tool, case.args())?;
        check_envelope(&validators, case.tool, &outcome)?;
        prop_assert!(
            !outcome.is_error,
            "valid call failed: {}",
            short(&outcome.envelope)
        );
        let received = rt
            .block_on(mock.received_requests())
            .expect("request recording is on");
        prop_assert_eq!(received.len(), 1, "exactly one request");
        let request = &received[0];
        prop_assert_eq!(request.method.as_str(), "GET");
        let got = endpoint(request)?;
        let skip = case.skip.as_ref().map_or(0, |s| s.value);
        let count = case.count.as_ref().map_or(20, |c| c.value);
        let expected = match case.tool {
            LIST_VOUCHER_POOLS => Endpoint {
                ids: vec![case.project_id.clone()],
                codes: false,
                query: vec![],
            },
            GET_VOUCHER_POOL => Endpoint {
                ids: vec![case.project_id.clone(), case.pool_id.clone()],
                codes: false,
                query: vec![],
            },
            _ => {
                let mut query = vec![
                    ("skip".to_owned(), skip.to_string()),
                    ("count".to_owned(), count.to_string()),
                ];
                if let Some(Some(status)) = case.status {
                    query.push(("status".to_owned(), status.to_owned()));
                }
                Endpoint {
                    ids: vec![case.project_id.clone(), case.pool_id.clone()],
                    codes: true,
                    query,
                }
            }
        };
        prop_assert_eq!(got, expected, "request {}", request.url);
        if case.tool == LIST_VOUCHER_CODES {
            prop_assert_eq!(outcome.envelope.get("skip"), Some(&json!(skip)));
            prop_assert_eq!(outcome.envelope.get("limit"), Some(&json!(count)));
        }
        Ok(())
    });
}
