//! Strategies: arbitrary JSON, and arguments of every shape.

use super::*;

pub(crate) const TRICKY_STRINGS: &[&str] = &[
    "",
    " ",
    "20",
    " 5 ",
    "20.0",
    "-1",
    "+3",
    "1e3",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "1_000",
    "99999999999999999999999",
    "-99999999999999999999999",
    "１２",
    "٣",
    "0",
    "1000",
    "1001",
    "-0",
    "5.5",
    ".",
    "..",
    "...",
    "a/b",
    "../x",
    "%2F",
    "%2e%2e",
    "demo",
    "summer20",
    "welcome10",
    "ete-bienvenue",
    "black-friday",
    "available",
    "Assigned",
    " redeemed ",
    "used",
    "null",
    "true",
    "\u{0}",
    "\t\n",
    "\u{a0}",
    "\u{200b}",
    "é\r\n",
    "☀️",
    SECRET,
    BASIC_TOKEN,
];

pub(crate) fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TRICKY_STRINGS).prop_map(String::from),
        3 => any::<String>(),
        2 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => (
            prop::sample::select(vec!['x', 'é', '7', '\u{0}', '☀', ' ', '\n']),
            90_000usize..110_000,
        )
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

pub(crate) fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

pub(crate) fn tricky_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-5i64..1100).prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, 20, 1000, 1001, i64::MAX, i64::MIN])
            .prop_map(Value::from),
        any::<f64>().prop_map(float),
        prop::sample::select(vec![
            0.5,
            -0.0,
            20.0,
            2.5,
            1e300,
            -1e300,
            9.2e18,
            9.3e18,
            1e19,
            1.8e19,
            f64::MIN_POSITIVE,
            1_000.000_000_000_1,
            999.999_999_999_9,
        ])
        .prop_map(float),
        (-2000i64..2000).prop_map(|i| float(i as f64)),
    ]
}

pub(crate) fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => tricky_number(),
        5 => tricky_string().prop_map(Value::String),
    ]
    .boxed()
}

pub(crate) fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "project_id",
            "pool_id",
            "skip",
            "count",
            "status",
            "limit",
            "extra",
            "",
            "__proto__",
            "ПРОЕКТ",
        ])
        .prop_map(String::from),
        any::<String>(),
    ]
}

pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value that suits the argument, so that calls also get past the checks.
pub(crate) fn good_argument(name: &str) -> BoxedStrategy<Value> {
    match name {
        "project_id" => prop::sample::select(vec!["demo", "demo", "demo", "tok-2"])
            .prop_map(Value::from)
            .boxed(),
        "pool_id" => prop::sample::select(vec![
            "summer20",
            "welcome10",
            "ete-bienvenue",
            "black-friday",
            "nope",
        ])
        .prop_map(Value::from)
        .boxed(),
        "skip" => prop_oneof![
            (0i64..3000).prop_map(Value::from),
            Just(json!("7")),
            Just(json!(40.0)),
        ]
        .boxed(),
        "count" => prop_oneof![
            (1i64..=1000).prop_map(Value::from),
            Just(json!("5")),
            Just(json!(5.0)),
        ]
        .boxed(),
        _ => prop::sample::select(vec!["available", "assigned", "redeemed"])
            .prop_map(Value::from)
            .boxed(),
    }
}

/// Arguments where each known name is left out with probability
/// `1 - present` and is otherwise any JSON (weight `wild`) or a suitable
/// value (weight `tame`); plus a few names no tool takes.
pub(crate) fn args_with(present: f64, wild: u32, tame: u32) -> BoxedStrategy<Map<String, Value>> {
    let names = ["project_id", "pool_id", "skip", "count", "status"];
    let known: Vec<BoxedStrategy<Option<Value>>> = names
        .iter()
        .map(|n| {
            prop::option::weighted(
                present,
                prop_oneof![wild => json_value(), tame => good_argument(n)],
            )
            .boxed()
        })
        .collect();
    (prop::collection::vec((key(), json_value()), 0..3), known)
        .prop_map(move |(extras, known)| {
            let mut args: Map<String, Value> = extras.into_iter().collect();
            for (name, value) in names.iter().zip(known) {
                if let Some(value) = value {
                    args.insert((*name).to_owned(), value);
                }
            }
            args
        })
        .boxed()
}

/// Mostly wild arguments, or mostly suitable ones with a few wild.
pub(crate) fn raw_args() -> impl Strategy<Value = Map<String, Value>> {
    prop_oneof![1 => args_with(0.8, 2, 1), 2 => args_with(0.85, 1, 12)]
}
