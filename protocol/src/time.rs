//! Timestamps: parsing CLI/API times and Feast's adaptive-precision output format.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Parses an ISO-8601 time; a time without offset is UTC (Feast treats naive as UTC). A bare
/// date means midnight UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    Err(format!(
        "`{s}` is not an ISO-8601 time (e.g. 2024-01-01T00:00:00 or 2024-01-01T00:00:00Z)"
    ))
}

/// Earliest event or created time accepted on a write: 1900-01-01T00:00:00Z, in ns.
pub const MIN_EVENT_NS: i64 = -2_208_988_800_000_000_000;
/// Latest event or created time accepted on a write (exclusive): 2200-01-01T00:00:00Z, in ns.
///
/// Times outside `[MIN_EVENT_NS, MAX_EVENT_NS)` are refused rather than clamped: a clamped far
/// future time would win over every later real write of its key ("newest event time wins").
pub const MAX_EVENT_NS: i64 = 7_258_118_400_000_000_000;

/// The accepted range of event times, for messages.
pub const EVENT_RANGE: &str = "1900-01-01T00:00:00Z (inclusive) to 2200-01-01T00:00:00Z (exclusive)";

/// `ns` if it lies in the accepted range of event times, else an error naming the range.
pub fn check_event_nanos(ns: i64) -> Result<i64, String> {
    if (MIN_EVENT_NS..MAX_EVENT_NS).contains(&ns) {
        Ok(ns)
    } else {
        Err(format!(
            "time {} is outside the accepted range, {EVENT_RANGE}",
            format_feast(ns)
        ))
    }
}

/// Nanoseconds since the epoch of a time (saturating outside 1677..2262).
pub fn to_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// Formats ns since the epoch as Feast's JSON does: no fraction, `.mmm`, `.uuuuuu` or
/// `.nnnnnnnnn` depending on precision, always with `Z`.
pub fn format_feast(nanos: i64) -> String {
    let mut out = Vec::with_capacity(30);
    write_feast(nanos, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`format_feast`]'s text to `out`, without allocating: the serving path writes one
/// per (entity row, view).
pub fn write_feast(nanos: i64, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let t = DateTime::<Utc>::from_timestamp_nanos(nanos);
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    // i64 nanoseconds span the years 1677 to 2262: always four digits.
    let mut buf = [0u8; 30];
    let year = t.year() as u32;
    let mut put = |at: usize, v: u32, digits: usize| {
        let mut v = v;
        for i in (0..digits).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    // AutoSi: no fraction for whole seconds, else 3, 6 or 9 digits, as Feast prints them.
    let len = if frac == 0 {
        19
    } else if frac.is_multiple_of(1_000_000) {
        put(20, frac / 1_000_000, 3);
        23
    } else if frac.is_multiple_of(1_000) {
        put(20, frac / 1_000, 6);
        26
    } else {
        put(20, frac, 9);
        29
    };
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.')] {
        buf[at] = c;
    }
    buf[len] = b'Z';
    out.extend_from_slice(&buf[..=len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feast_timestamp_precision_is_adaptive() {
        assert_eq!(format_feast(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_feast(1_618_225_182_000_000_000), "2021-04-12T10:59:42Z");
        assert_eq!(format_feast(1_618_225_182_500_000_000), "2021-04-12T10:59:42.500Z");
        assert_eq!(format_feast(1_618_225_182_000_001_000), "2021-04-12T10:59:42.000001Z");
        assert_eq!(
            format_feast(1_618_225_182_000_000_001),
            "2021-04-12T10:59:42.000000001Z"
        );
    }

    /// The hand-written formatter agrees with chrono's RFC 3339 output (the one Feast's format
    /// was matched with) over the whole range of i64 nanoseconds.
    #[test]
    fn the_fast_formatter_equals_chronos() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut cases = vec![i64::MIN, i64::MAX, -1, 0, 1, 999_999_999, -1_000_000_000];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x as i64;
            // Whole seconds, milli-, micro- and nanosecond precision.
            cases.extend([v, v - v % 1_000_000_000, v - v % 1_000_000, v - v % 1_000]);
        }
        for n in cases {
            let expected =
                DateTime::<Utc>::from_timestamp_nanos(n).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(format_feast(n), expected, "{n}");
        }
    }

    #[test]
    fn naive_times_are_utc() {
        assert_eq!(
            parse_time("2024-01-01T00:00:00").unwrap(),
            parse_time("2024-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("2024-01-01T02:00:00+02:00").unwrap(),
            parse_time("2024-01-01").unwrap()
        );
        assert!(parse_time("yesterday").is_err());
    }
}
