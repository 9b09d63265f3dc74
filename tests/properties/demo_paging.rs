//! Property 4: the demo data pages and filters consistently.

use super::*;

pub(crate) const DEMO_POOLS: [&str; 4] = ["summer20", "welcome10", "ete-bienvenue", "black-friday"];
pub(crate) const CODE_STATUSES: [&str; 3] = ["available", "assigned", "redeemed"];

pub(crate) fn demo_codes(
    rt: &tokio::runtime::Runtime,
    server: &VoucherServer,
    pool: &str,
    status: Option<&str>,
) -> (Vec<Value>, u64) {
    let mut all = Vec::new();
    let mut matched = None;
    loop {
        let mut args =
            json!({"project_id": "demo", "pool_id": pool, "skip": all.len(), "count": 1000});
        if let Some(s) = status {
            args["status"] = json!(s);
        }
        let outcome = rt
            .block_on(server.call(LIST_VOUCHER_CODES, args.as_object().cloned(), &quiet))
            .expect("a tool");
        assert!(!outcome.is_error, "{}", outcome.envelope);
        matched = matched.or(outcome.envelope["matched"].as_u64());
        let page = outcome.envelope["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    (all, matched.expect("matched is given"))
}

#[derive(Clone, Debug)]
pub(crate) struct DemoCase {
    pool: &'static str,
    status: Option<&'static str>,
    skip: IntForm,
    count: IntForm,
}

#[test]
pub(crate) fn demo_pages_are_slices_of_the_matching_codes_with_consistent_timestamps() {
    let rt = runtime();
    let server = VoucherServer::new(Backend::demo(), projects());
    let validators = validators(&server);

    // The full lists, and how they agree with the pool counts.
    let pools = rt
        .block_on(server.call(
            LIST_VOUCHER_POOLS,
            json!({"project_id": "demo"}).as_object().cloned(),
            &quiet,
        ))
        .expect("a tool")
        .envelope;
    let mut full: BTreeMap<(&str, Option<&str>), Vec<Value>> = BTreeMap::new();
    for pool in DEMO_POOLS {
        let summary = pools["data"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == pool))
            .unwrap_or_else(|| panic!("{pool} is listed"));
        let (all, matched) = demo_codes(&rt, &server, pool, None);
        assert_eq!(matched, all.len() as u64, "{pool}");
        assert_eq!(summary["total"], json!(matched), "{pool}");
        let mut sum = 0;
        for status in CODE_STATUSES {
            let (codes, matched) = demo_codes(&rt, &server, pool, Some(status));
            assert_eq!(matched, codes.len() as u64, "{pool} {status}");
            if status == "available" {
                assert_eq!(summary["available"], json!(matched), "{pool}");
            }
            let expected: Vec<Value> = all
                .iter()
                .filter(|c| c["status"] == status)
                .cloned()
                .collect();
            assert_eq!(
                codes, expected,
                "{pool} {status}: the filter keeps the order"
            );
            sum += matched;
            full.insert((pool, Some(status)), codes);
        }
        assert_eq!(
            sum, matched,
            "{pool}: every code has one of the three statuses"
        );
        full.insert((pool, None), all);
    }

    let case = (
        prop::sample::select(DEMO_POOLS.to_vec()),
        prop::option::of(prop::sample::select(CODE_STATUSES.to_vec())),
        prop_oneof![
            4 => int_forms(0i64..3000),
            1 => int_forms(0i64..=i64::MAX),
        ],
        valid_count(),
    )
        .prop_map(|(pool, status, skip, count)| DemoCase {
            pool,
            status,
            skip,
            count,
        });
    check(600, case, |case| {
        let mut args = json!({"project_id": "demo", "pool_id": case.pool,
            "skip": case.skip.json, "count": case.count.json});
        if let Some(s) = case.status {
            args["status"] = json!(s);
        }
        let outcome = call(
            &rt,
            &server,
            LIST_VOUCHER_CODES,
            args.as_object().cloned().unwrap_or_default(),
        )?;
        check_envelope(&validators, LIST_VOUCHER_CODES, &outcome)?;
        prop_assert!(!outcome.is_error, "{}", short(&outcome.envelope));
        let envelope = &outcome.envelope;
        let all = &full[&(case.pool, case.status)];
        let matched = all.len() as i64;
        let (skip, count) = (case.skip.value, case.count.value);
        let data = envelope["data"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(&envelope["matched"], &json!(matched));
        prop_assert_eq!(&envelope["matched_limited"], &json!(false));
        prop_assert_eq!(&envelope["skip"], &json!(skip));
        prop_assert_eq!(&envelope["limit"], &json!(count));
        prop_assert_eq!(
            data.len() as i64,
            count.min((matched - skip.min(matched)).max(0))
        );
        let start = usize::try_from(skip).unwrap_or(usize::MAX).min(all.len());
        prop_assert_eq!(&data[..], &all[start..start + data.len()]);
        for code in &data {
            if let Some(status) = case.status {
                prop_assert_eq!(&code["status"], &json!(status));
            }
            for (time, at) in [
                ("assigned_time", "assigned_at"),
                ("redeemed_time", "redeemed_at"),
            ] {
                let t = code[time].as_f64();
                prop_assert_eq!(t.is_none(), code[at].is_null(), "{} and {}", time, at);
                if let Some(text) = code[at].as_str() {
                    prop_assert!(text.ends_with('Z'), "{text}");
                    let t = t.unwrap_or_default();
                    let whole = parse_rfc3339(text).map(|m| m.div_euclid(1_000_000));
                    let micros = (t * 1_000_000.0).round() as i64;
                    prop_assert_eq!(whole, Some(micros.div_euclid(1_000_000)), "{}", text);
                }
            }
        }
        check_codes_at(&envelope["data"])?;
        Ok(())
    });
}
