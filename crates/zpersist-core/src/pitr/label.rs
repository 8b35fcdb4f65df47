//! What a base backup says about itself: `backup_label` (where replay
//! starts) and `backup_manifest` (where the backup's WAL ends).

/// `START WAL LOCATION: 0/800028 (file 000000010000000000000008)` and
/// `START TIMELINE: 1`.
pub fn parse_backup_label(text: &str) -> Result<(String, u32), String> {
    let start_wal = text
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|rest| rest.split("(file ").nth(1))
        .map(|rest| rest.trim_end_matches(')').trim().to_string())
        .ok_or("backup_label has no `START WAL LOCATION: ... (file ...)` line")?;
    let timeline = text
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE: "))
        .and_then(|t| t.trim().parse().ok())
        .ok_or("backup_label has no `START TIMELINE:` line")?;
    Ok((start_wal, timeline))
}

/// The timeline and end LSN of the last `WAL-Ranges` entry of a manifest.
pub fn manifest_wal_end(text: &str) -> Result<(u32, u64), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("backup_manifest is not JSON: {e}"))?;
    let last = value
        .get("WAL-Ranges")
        .and_then(|r| r.as_array())
        .and_then(|r| r.last())
        .ok_or("backup_manifest has no WAL-Ranges")?;
    let timeline = last
        .get("Timeline")
        .and_then(|t| t.as_u64())
        .ok_or("WAL-Ranges entry without Timeline")? as u32;
    let end = last
        .get("End-LSN")
        .and_then(|t| t.as_str())
        .ok_or("WAL-Ranges entry without End-LSN")?;
    Ok((timeline, super::wal::parse_lsn(end)?))
}

/// The last segment a backup needs: the one holding the byte before its end.
pub fn end_segment(timeline: u32, end_lsn: u64, segment_size: u64) -> String {
    super::wal::segment_name(timeline, end_lsn.saturating_sub(1), segment_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_manifest_as_postgresql_15_writes_them() {
        let label = "START WAL LOCATION: 0/800028 (file 000000010000000000000008)\nCHECKPOINT LOCATION: 0/800060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-30 14:04:43 UTC\nLABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n";
        assert_eq!(
            parse_backup_label(label),
            Ok(("000000010000000000000008".into(), 1))
        );
        assert!(parse_backup_label("LABEL: x\n").is_err());
        let manifest = r#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [], "WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/800028", "End-LSN": "0/900000" }], "Manifest-Checksum": "x"}"#;
        let (timeline, end) = manifest_wal_end(manifest).unwrap();
        assert_eq!(
            end_segment(timeline, end, 1 << 20),
            "000000010000000000000008"
        );
        assert_eq!(
            end_segment(1, 0x900100, 1 << 20),
            "000000010000000000000009"
        );
    }
}
