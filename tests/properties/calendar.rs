//! A reference for the readable timestamps: RFC 3339 text read back with the `time` crate's calendar, independent of the server's own conversion.

use super::*;

/// The first instant RFC 3339 can write (0000-01-01T00:00:00Z) and the
/// first it cannot (10000-01-01T00:00:00Z), in Unix seconds, from the
/// `time` crate.
pub(crate) fn rfc3339_bounds() -> (i64, i64) {
    let second = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .expect("an instant the time crate can hold")
            .unix_timestamp()
    };
    (
        second("0000-01-01T00:00:00Z"),
        second("9999-12-31T23:59:59Z") + 1,
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` back into microseconds since the
/// epoch: the shape is checked here (UTC `Z`, a `T`, at most six fraction
/// digits without trailing zeros), the calendar is the `time` crate's.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let b = whole.as_bytes();
    let digits_at = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !digits_at.iter().all(|&i| b[i].is_ascii_digit())
    {
        return None;
    }
    if let Some(f) = fraction {
        let ok = (1..=6).contains(&f.len())
            && f.bytes().all(|c| c.is_ascii_digit())
            && !f.ends_with('0');
        if !ok {
            return None;
        }
    }
    let instant =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(instant.unix_timestamp_nanos() / 1000).ok()
}

/// `at` is null exactly when `time` is null (or names an instant outside
/// the years 0000 to 9999, which RFC 3339 cannot write), and otherwise the
/// same instant to the microsecond, in UTC.
pub fn check_at(time: Option<f64>, at: &Value) -> Result<(), String> {
    let Some(t) = time else {
        return if at.is_null() {
            Ok(())
        } else {
            Err(format!("{at} for a null time"))
        };
    };
    let micros = (t * 1_000_000.0).round();
    let writable = t.is_finite()
        && micros >= (MIN_RFC3339_SECS * 1_000_000) as f64
        && micros < (END_RFC3339_SECS * 1_000_000) as f64;
    match at {
        Value::Null if !writable => Ok(()),
        Value::Null => Err(format!("null for the time {t}")),
        Value::String(s) if writable => match parse_rfc3339(s) {
            Some(parsed) if parsed == micros as i64 => Ok(()),
            Some(parsed) => Err(format!("{s} is {parsed} µs, not {t} s")),
            None => Err(format!("{s} is not RFC 3339 UTC")),
        },
        other => Err(format!("{other} for the unwritable time {t}")),
    }
}

pub fn check_codes_at(data: &Value) -> Result<(), TestCaseError> {
    for code in data.as_array().into_iter().flatten() {
        for (time, at) in [
            ("assigned_time", "assigned_at"),
            ("redeemed_time", "redeemed_at"),
        ] {
            let t = code.get(time).and_then(Value::as_f64);
            let a = code.get(at).unwrap_or(&Value::Null);
            check_at(t, a).map_err(|e| TestCaseError::fail(format!("{at}: {e} in {code}")))?;
        }
    }
    Ok(())
}

#[test]
pub(crate) fn the_reference_calendar_reads_known_instants() {
    assert_eq!(rfc3339_bounds(), (MIN_RFC3339_SECS, END_RFC3339_SECS));
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2000-03-01T00:00:00Z"),
        Some(11_017 * 86_400 * 1_000_000)
    );
    assert_eq!(
        parse_rfc3339("2024-06-10T06:13:20.5Z"),
        Some(1_718_000_000_500_000)
    );
    assert_eq!(parse_rfc3339("1969-12-31T23:59:58.5Z"), Some(-1_500_000));
    assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("2024-06-10T06:13:20.50Z"), None);
    assert_eq!(parse_rfc3339("2024-06-10 06:13:20Z"), None);
    assert!(check_at(Some(1e20), &Value::Null).is_ok());
    assert!(check_at(Some(0.0), &Value::Null).is_err());
    assert!(check_at(None, &json!("1970-01-01T00:00:00Z")).is_err());
}
