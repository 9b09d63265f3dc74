//! Property 5: for any filter over a pool, `find_voucher_codes` returns
//! exactly the codes that filtering the whole pool here returns, in
//! order, however the scan is split into resumed calls.

use super::*;

/// The demo pool the scans run over, read whole through list_voucher_codes.
async fn whole_pool(server: &VoucherServer) -> Vec<Value> {
    let mut codes = Vec::new();
    loop {
        let args = json!({"project_id": "demo", "pool_id": "summer20", "skip": codes.len(), "count": 1000});
        let outcome = server
            .call("list_voucher_codes", args.as_object().cloned(), &quiet)
            .await
            .expect("a tool");
        let page = outcome.envelope["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if page.is_empty() {
            return codes;
        }
        codes.extend(page);
    }
}

/// 2026-06-01T00:00:00Z, where the demo season starts, and 150 days on.
const SEASON: (f64, f64) = (1_780_272_000.0, 1_780_272_000.0 + 150.0 * 86_400.0);

#[derive(Debug, Clone)]
struct Scan {
    status: Option<&'static str>,
    prefix: Option<String>,
    assigned: (Option<f64>, Option<f64>),
    redeemed: (Option<f64>, Option<f64>),
    limit: u64,
    max_scan: u64,
}

fn bound() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        (SEASON.0..SEASON.1).prop_map(|t| Some(t.floor()))
    ]
}

fn ordered(pair: (Option<f64>, Option<f64>)) -> (Option<f64>, Option<f64>) {
    match pair {
        (Some(a), Some(b)) if a >= b => (Some(b), Some(a + 1.0)),
        other => other,
    }
}

fn scan() -> impl Strategy<Value = Scan> {
    (
        prop_oneof![
            Just(None),
            Just(Some("available")),
            Just(Some("assigned")),
            Just(Some("redeemed"))
        ],
        prop_oneof![Just(None), "(sum20-|SUM20-)[A-Z2-9]{0,1}".prop_map(Some)],
        (bound(), bound()),
        (bound(), bound()),
        1u64..400,
        1u64..3000,
    )
        .prop_map(
            |(status, prefix, assigned, redeemed, limit, max_scan)| Scan {
                status,
                prefix,
                assigned: ordered(assigned),
                redeemed: ordered(redeemed),
                limit,
                max_scan,
            },
        )
}

fn admits(scan: &Scan, code: &Value) -> bool {
    let within = |time: &Value, (after, before): (Option<f64>, Option<f64>)| {
        if after.is_none() && before.is_none() {
            return true;
        }
        let Some(t) = time.as_f64() else { return false };
        after.is_none_or(|a| t >= a) && before.is_none_or(|b| t < b)
    };
    scan.status.is_none_or(|s| code["status"] == s)
        && scan.prefix.as_ref().is_none_or(|p| {
            code["code"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .starts_with(&p.to_lowercase())
        })
        && within(&code["assigned_time"], scan.assigned)
        && within(&code["redeemed_time"], scan.redeemed)
}

#[test]
fn resumed_scans_find_exactly_what_filtering_the_whole_pool_finds() {
    let rt = runtime();
    let server = VoucherServer::new(Backend::demo(), vec![]);
    let pool = rt.block_on(whole_pool(&server));
    assert_eq!(pool.len(), 2500);
    check(40, scan(), |scan| {
        let expected: Vec<&Value> = pool.iter().filter(|c| admits(&scan, c)).collect();
        let mut found = Vec::new();
        let mut skip = 0u64;
        for _ in 0..10_000 {
            let mut args = json!({"project_id": "demo", "pool_id": "summer20", "skip": skip,
                "limit": scan.limit, "max_scan": scan.max_scan});
            if let Some(s) = scan.status {
                args["status"] = json!(s);
            }
            if let Some(p) = &scan.prefix {
                args["code_prefix"] = json!(p);
            }
            for (name, value) in [
                ("assigned_after", scan.assigned.0),
                ("assigned_before", scan.assigned.1),
                ("redeemed_after", scan.redeemed.0),
                ("redeemed_before", scan.redeemed.1),
            ] {
                if let Some(v) = value {
                    args[name] = json!(v);
                }
            }
            let outcome = rt
                .block_on(server.call("find_voucher_codes", args.as_object().cloned(), &quiet))
                .expect("a tool");
            let envelope = outcome.envelope;
            prop_assert_eq!(&envelope["success"], &json!(true), "{}", envelope);
            let data = envelope["data"].as_array().unwrap();
            prop_assert!(data.len() as u64 <= scan.limit);
            prop_assert!(envelope["scanned"].as_u64().unwrap() <= scan.max_scan);
            found.extend(data.iter().cloned());
            if envelope["complete"] == json!(true) {
                prop_assert_eq!(&envelope["next_skip"], &Value::Null);
                break;
            }
            let next = envelope["next_skip"].as_u64().expect("a place to resume");
            prop_assert!(next > skip, "the scan moves on");
            skip = next;
        }
        let found: Vec<&Value> = found.iter().collect();
        prop_assert_eq!(found.len(), expected.len(), "{:?}", scan);
        prop_assert!(
            found == expected,
            "{:?}: other codes or another order",
            scan
        );
        Ok(())
    });
}
