//! Unix timestamps as RFC 3339 text, for the readable `*_at` fields.

/// Seconds since the Unix epoch as RFC 3339 UTC, e.g. `1718000000.5` as `2024-06-10T06:13:20.5Z`:
/// the fraction to the microsecond, without trailing zeros; `None` outside the years 0000 to 9999.
pub fn rfc3339_utc(epoch_seconds: f64) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let micros = (epoch_seconds * 1_000_000.0).round();
    // Far beyond the years RFC 3339 can say (0000 to 9999).
    if !micros.is_finite() || micros.abs() > 1.0e18 {
        return None;
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
        .ok()?
        .format(&Rfc3339)
        .ok()
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
