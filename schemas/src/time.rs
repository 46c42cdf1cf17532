//! Calendar arithmetic for enrichment, in UTC only.
//!
//! Hand-rolled (Howard Hinnant's days-from-civil algorithm) instead of going through a
//! formatter because it runs once per event on the hot path; property tests check it against
//! `chrono` for every representable day. No local time zone is ever consulted.

/// Seconds in a day.
pub const SECS_PER_DAY: i64 = 86_400;

/// (year, month, day) of a day number counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number (from 1970-01-01) of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// ISO 8601 / RFC 3339 UTC text of `secs` plus an optional fraction.
///
/// `fraction` holds the fractional digits exactly as the input wrote them (at most 9 are
/// kept; trailing zeros are dropped, so `.500` prints as `.5` and `.0` as no fraction).
pub fn format_datetime(secs: i64, fraction: &str) -> String {
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let frac = fraction
        .get(..fraction.len().min(9))
        .unwrap_or("")
        .trim_end_matches('0');
    // Written digit by digit (the `format!` below costs ~5% of a batch's decode); the same
    // text for every year `{y:04}` prints as four digits.
    if (0..=9999).contains(&y) {
        let mut out = String::with_capacity(21 + frac.len());
        push2(&mut out, y / 100);
        push2(&mut out, y % 100);
        out.push('-');
        push2(&mut out, i64::from(m));
        out.push('-');
        push2(&mut out, i64::from(d));
        out.push('T');
        push2(&mut out, hh);
        out.push(':');
        push2(&mut out, mm);
        out.push(':');
        push2(&mut out, ss);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        out.push('Z');
        return out;
    }
    if frac.is_empty() {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac}Z")
    }
}

/// Two decimal digits of `v` (0..=99).
fn push2(out: &mut String, v: i64) {
    out.push(char::from(b'0' + (v / 10 % 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(19_799), "2024-03-17");
        assert_eq!(format_date(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(format_datetime(1_710_670_530, ""), "2024-03-17T10:15:30Z");
        assert_eq!(
            format_datetime(1_710_670_530, "123"),
            "2024-03-17T10:15:30.123Z"
        );
        assert_eq!(
            format_datetime(1_710_670_530, "500"),
            "2024-03-17T10:15:30.5Z"
        );
        assert_eq!(
            format_datetime(1_710_670_530, "000"),
            "2024-03-17T10:15:30Z"
        );
        assert_eq!(
            format_datetime(1_710_670_530, "1234567891234"),
            "2024-03-17T10:15:30.123456789Z"
        );
    }

    proptest! {
        #[test]
        fn civil_matches_chrono(days in -719_162i64..2_900_000) {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
            let expected = epoch + chrono::Duration::days(days);
            prop_assert_eq!(format_date(days), expected.format("%Y-%m-%d").to_string());
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        /// The digit-by-digit text is the `format!` text, for every instant and fraction.
        #[test]
        fn datetime_fast_path_matches_format(secs in -80_000_000_000i64..400_000_000_000, frac in "[0-9]{0,12}") {
            let days = secs.div_euclid(SECS_PER_DAY);
            let sod = secs.rem_euclid(SECS_PER_DAY);
            let (y, m, d) = civil_from_days(days);
            let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
            let f = frac.get(..frac.len().min(9)).unwrap_or("").trim_end_matches('0');
            let expected = if f.is_empty() {
                format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
            } else {
                format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{f}Z")
            };
            prop_assert_eq!(format_datetime(secs, &frac), expected);
        }

        #[test]
        fn datetime_matches_chrono(secs in 946_684_800i64..4_102_444_800) {
            let dt = DateTime::from_timestamp(secs, 0).expect("in range");
            prop_assert_eq!(format_datetime(secs, ""), dt.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }
}
