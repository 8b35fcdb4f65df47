//! RFC 3339 UTC timestamps without a date library: formatting, and parsing
//! what restic, ZFS tools and users write (`2026-11-30T10:15:00Z`,
//! fractional seconds, `+01:00` offsets). Pure: the clock is read by callers.

/// `2026-01-31T12:34:56Z` for seconds since the Unix epoch.
pub fn rfc3339(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// How far after `now` a point (a snapshot, a backup) may be dated before
/// it counts as dated in the future: two hosts' clocks (a target's, the
/// one that wrote a backup) disagree by a little.
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// Whether a point dated `at` is in the future by this host's clock `now`
/// (beyond [`CLOCK_SKEW_SECONDS`]): a clock that ran ahead when it was
/// made, or that runs behind now. Its age says nothing, and it must never
/// count as the freshest.
pub fn in_future(at: i64, now: i64) -> bool {
    at > now.saturating_add(CLOCK_SKEW_SECONDS)
}

/// The newest of `items` not dated in the future, and the newest of those
/// that are (`at` gives an item's date).
pub fn newest_by_clock<T>(
    items: impl IntoIterator<Item = T>,
    at: impl Fn(&T) -> i64,
    now: i64,
) -> (Option<T>, Option<T>) {
    let (mut newest, mut future): (Option<T>, Option<T>) = (None, None);
    for item in items {
        let slot = if in_future(at(&item), now) {
            &mut future
        } else {
            &mut newest
        };
        if slot.as_ref().is_none_or(|best| at(&item) > at(best)) {
            *slot = Some(item);
        }
    }
    (newest, future)
}

/// Seconds since the epoch of an RFC 3339 timestamp (fractions of a second
/// are dropped), or why it is not one.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{}` is not an RFC 3339 time like 2026-11-30T10:15:00Z",
            crate::shown(text)
        )
    };
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return Err(bad());
            }
            let (h, m) = (
                rest[1..3].parse::<i64>().map_err(|_| bad())?,
                rest[4..6].parse::<i64>().map_err(|_| bad())?,
            );
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month as u32, day as u32);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

/// Seconds since the epoch of a C `ctime` date as `zpool status` prints
/// it (`Mon Dec  7 10:00:01 2026`, the weekday optional), read as UTC:
/// the caller runs zpool with `TZ=UTC`. `None` when it is not one.
pub fn parse_ctime(text: &str) -> Option<i64> {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words.len() == 5 {
        words.remove(0);
    }
    let [month, day, clock, year] = words[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let day: i64 = day.parse().ok()?;
    let parts: Vec<i64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = parts[..] else { return None };
    if day < 1 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month as u32, day as u32) * 86_400 + h * 3600 + m * 60 + s.min(59))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Its inverse: days since the epoch of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_ahead_of_the_clock_is_in_the_future_and_never_the_newest() {
        let now = 1_000_000;
        assert!(!in_future(now, now));
        assert!(!in_future(now + CLOCK_SKEW_SECONDS, now), "a little skew");
        assert!(in_future(now + CLOCK_SKEW_SECONDS + 1, now));
        let month_ahead = now + 30 * 86_400;
        let (newest, future) = newest_by_clock(
            [now - 10, month_ahead, now - 500, month_ahead - 1],
            |t| *t,
            now,
        );
        assert_eq!((newest, future), (Some(now - 10), Some(month_ahead)));
        assert_eq!(
            newest_by_clock([month_ahead], |t| *t, now),
            (None, Some(month_ahead))
        );
        assert_eq!(
            newest_by_clock(Vec::<i64>::new(), |t| *t, now),
            (None, None)
        );
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn parsing_is_the_inverse_and_reads_what_restic_writes() {
        for t in [0, 951_782_400, 1_767_225_599, 1_796_045_000] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Ok(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-30T13:56:26.933053038Z"),
            parse_rfc3339("2026-11-30T13:56:26Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-30T14:56:26+01:00"),
            parse_rfc3339("2026-11-30T13:56:26Z")
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-30 10:15",
            "2026-11-30T10:15:00",
            "2026-11-30T10:15:00+0100",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
