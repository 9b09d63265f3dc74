//! Unix timestamps as RFC 3339 text, for the readable `*_at` fields.

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp,
/// e.g. `1718000000.5` as `2024-06-10T06:13:20.5Z`.
///
/// The fraction is kept to the microsecond, without trailing zeros.
/// Returns `None` for values that are not finite or fall outside the years
/// 0000 to 9999.
pub fn rfc3339_utc(epoch_seconds: f64) -> Option<String> {
    if !epoch_seconds.is_finite() {
        return None;
    }
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
    const MIN: f64 = -62_167_219_200.0;
    const MAX: f64 = 253_402_300_800.0;
    if !(MIN..MAX).contains(&epoch_seconds) {
        return None;
    }
    let micros_total = (epoch_seconds * 1_000_000.0).round() as i64;
    let secs = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut out = String::with_capacity(27);
    push_digits(&mut out, year as u32, 4);
    out.push('-');
    push_digits(&mut out, month, 2);
    out.push('-');
    push_digits(&mut out, day, 2);
    out.push('T');
    push_digits(&mut out, (of_day / 3600) as u32, 2);
    out.push(':');
    push_digits(&mut out, (of_day % 3600 / 60) as u32, 2);
    out.push(':');
    push_digits(&mut out, (of_day % 60) as u32, 2);
    if micros != 0 {
        // Six digits, without the trailing zeros.
        let mut digits = 6;
        let mut fraction = micros as u32;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        out.push('.');
        push_digits(&mut out, fraction, digits);
    }
    out.push('Z');
    Some(out)
}

/// Appends `value` as exactly `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

/// Year, month and day of the proleptic Gregorian calendar for a count of
/// days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc;

    #[test]
    fn formats_known_instants() {
        for (epoch, text) in [
            (0.0, "1970-01-01T00:00:00Z"),
            (1_718_000_000.5, "2024-06-10T06:13:20.5Z"),
            (951_782_400.0, "2000-02-29T00:00:00Z"),
            (1_735_689_599.25, "2024-12-31T23:59:59.25Z"),
            (-1.5, "1969-12-31T23:59:58.5Z"),
            (1_700_000_000.123456, "2023-11-14T22:13:20.123456Z"),
            (253_402_300_799.0, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339_utc(epoch).as_deref(), Some(text), "{epoch}");
        }
    }

    #[test]
    fn refuses_what_rfc3339_cannot_say() {
        assert_eq!(rfc3339_utc(f64::NAN), None);
        assert_eq!(rfc3339_utc(f64::INFINITY), None);
        assert_eq!(rfc3339_utc(1e20), None);
        assert_eq!(rfc3339_utc(-1e12), None);
    }
}
