//! WAL file names and log sequence numbers, as PostgreSQL writes them.

/// `0/800028` as a number.
pub fn parse_lsn(text: &str) -> Result<u64, String> {
    let bad = || format!("`{}` is not an LSN like 0/800028", crate::shown(text));
    let (hi, lo) = text.trim().split_once('/').ok_or_else(bad)?;
    let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

/// The number as PostgreSQL prints it.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The name of the segment holding `lsn` on `timeline`.
pub fn segment_name(timeline: u32, lsn: u64, segment_size: u64) -> String {
    let segno = lsn / segment_size;
    let per_xlogid = 0x1_0000_0000 / segment_size;
    format!(
        "{timeline:08X}{:08X}{:08X}",
        segno / per_xlogid,
        segno % per_xlogid
    )
}

/// What a file in a WAL archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalKind {
    /// `000000010000000000000005`
    Segment,
    /// `000000010000000000000005.partial`: the last, incomplete segment of
    /// a timeline that a promotion ended.
    Partial,
    /// `00000002.history`: which timeline branched from which, and where.
    History,
    /// `000000010000000000000005.00000028.backup`: a base backup's history.
    BackupHistory,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
}

/// The kind of an archive file name, or `None` for anything else (PostgreSQL
/// archives nothing else, so anything else is refused as `%f`).
pub fn classify(name: &str) -> Option<WalKind> {
    if is_hex(name, 24) {
        return Some(WalKind::Segment);
    }
    if let Some(stem) = name.strip_suffix(".partial") {
        return is_hex(stem, 24).then_some(WalKind::Partial);
    }
    if let Some(stem) = name.strip_suffix(".history") {
        return is_hex(stem, 8).then_some(WalKind::History);
    }
    if let Some(stem) = name.strip_suffix(".backup") {
        let (segment, offset) = stem.split_once('.')?;
        return (is_hex(segment, 24) && is_hex(offset, 8)).then_some(WalKind::BackupHistory);
    }
    None
}

/// The position of a segment-like file in the WAL stream, timeline left
/// out (the last 16 hex digits), as `pg_archivecleanup` compares them.
pub fn segment_key(name: &str) -> Option<&str> {
    match classify(name)? {
        WalKind::History => None,
        _ => Some(&name[8..24]),
    }
}

/// The timeline of a segment-like file.
pub fn timeline_of(name: &str) -> Option<u32> {
    classify(name)?;
    u32::from_str_radix(&name[..8], 16).ok()
}

/// The segment after `name` on the same timeline.
pub fn next_segment(name: &str, segment_size: u64) -> Option<String> {
    if classify(name)? != WalKind::Segment {
        return None;
    }
    let timeline = u32::from_str_radix(&name[..8], 16).ok()?;
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_xlogid = 0x1_0000_0000 / segment_size;
    let segno = hi * per_xlogid + lo + 1;
    Some(segment_name(timeline, segno * segment_size, segment_size))
}

/// The commit time (microseconds since the epoch) of the last transaction
/// `pg_waldump` shows committed (`desc: COMMIT 2026-12-07 23:40:01.123456
/// UTC`, run with `TZ=UTC`), or `None` when it shows none.
pub fn last_commit(waldump: &str) -> Option<i64> {
    waldump
        .lines()
        .filter_map(|line| {
            let rest = line.split("desc: COMMIT ").nth(1)?;
            let stamp = rest.get(..26)?;
            let zone = rest.get(26..30)?;
            if zone != " UTC" {
                return None;
            }
            super::target::parse_time_micros(&format!("{}Z", stamp.replacen(' ', "T", 1))).ok()
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_commit_of_a_waldump_is_found() {
        let out = "rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/01000E10, prev 0/01000DD8, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/5/16384 blk 0\n\
rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/01000E50, prev 0/01000E10, desc: COMMIT 2026-12-07 23:40:01.123456 UTC\n\
rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/01000E78, prev 0/01000E50, desc: COMMIT 2026-12-07 23:41:02.000001 UTC; inval msgs: catcache 7\n\
rmgr: Transaction len (rec/tot):     34/    34, tx:        737, lsn: 0/01000EA0, prev 0/01000E78, desc: ABORT 2026-12-07 23:42:00.000000 UTC\n";
        assert_eq!(
            last_commit(out),
            Some(super::super::target::parse_time_micros("2026-12-07T23:41:02.000001Z").unwrap())
        );
        assert_eq!(last_commit("rmgr: XLOG desc: SWITCH\n"), None);
    }

    #[test]
    fn lsns_and_segment_names_match_postgresql() {
        assert_eq!(parse_lsn("0/800028"), Ok(0x800028));
        assert_eq!(format_lsn(0x1_0000_0100), "1/100");
        // select pg_walfile_name('0/800028') with 1 MiB and 16 MiB segments.
        assert_eq!(
            segment_name(1, 0x800028, 1 << 20),
            "000000010000000000000008"
        );
        assert_eq!(
            segment_name(1, 0x1_0500_0000, 16 << 20),
            "000000010000000100000005"
        );
        assert_eq!(
            segment_name(2, 0x1_0500_0000, 1 << 20),
            "000000020000000100000050"
        );
        assert!(parse_lsn("0/zz").is_err());
        assert!(parse_lsn("800028").is_err());
    }

    #[test]
    fn archive_names_are_classified_and_anything_else_refused() {
        assert_eq!(classify("000000010000000000000005"), Some(WalKind::Segment));
        assert_eq!(
            classify("000000010000000000000005.partial"),
            Some(WalKind::Partial)
        );
        assert_eq!(classify("00000002.history"), Some(WalKind::History));
        assert_eq!(
            classify("000000010000000000000008.00000028.backup"),
            Some(WalKind::BackupHistory)
        );
        for bad in [
            "",
            "../etc/passwd",
            "00000001000000000000000g",
            "0000000100000000000000051",
            "a/000000010000000000000005",
            "000000010000000000000005.tmp",
        ] {
            assert_eq!(classify(bad), None, "{bad}");
        }
        assert_eq!(
            segment_key("000000020000000000000005.partial"),
            Some("0000000000000005")
        );
        assert_eq!(segment_key("00000002.history"), None);
    }

    #[test]
    fn the_next_segment_carries_into_the_next_log_id() {
        assert_eq!(
            next_segment("0000000100000000000000FF", 16 << 20).unwrap(),
            "000000010000000100000000"
        );
        assert_eq!(
            next_segment("000000010000000000000FFF", 1 << 20).unwrap(),
            "000000010000000100000000"
        );
        assert_eq!(next_segment("00000001.history", 1 << 20), None);
    }
}
