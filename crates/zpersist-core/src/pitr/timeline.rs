//! Timelines: which base backups a recovery to the archive's newest
//! timeline can start from (the `.history` files), and how far the
//! archive's WAL replays without a gap from a backup.
//!
//! After a restore to before a mistake, the restored cluster continues on
//! timeline 2, which branched from timeline 1 at a switch point; a
//! timeline-1 backup taken later (after the mistake) is on no history of
//! timeline 2, and recovery from it fails ("could not locate required
//! checkpoint record"). Recovery follows `recovery_target_timeline =
//! 'latest'`: the newest timeline the archive has a history file of.

use super::target::BaseBackup;
use super::wal::{classify, segment_name, WalKind};

/// One line of a `.history` file: `parent` ended at `switchpoint` (an LSN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Branch {
    pub parent: u32,
    pub switchpoint: u64,
}

/// A timeline and the branches leading to it, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub timeline: u32,
    pub branches: Vec<Branch>,
}

impl History {
    /// Timeline 1: no branches.
    pub fn first() -> History {
        History {
            timeline: 1,
            branches: Vec::new(),
        }
    }

    /// Parses `NNNNNNNN.history` of `timeline` (`parent<TAB>lsn<TAB>reason`
    /// lines; `#` comments and blank lines skipped).
    pub fn parse(timeline: u32, text: &str) -> Result<History, String> {
        let mut branches = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let bad = || {
                format!(
                    "`{}` is not a history line (parent timeline, switch point, reason)",
                    crate::shown(line)
                )
            };
            let parent: u32 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            let switchpoint = super::wal::parse_lsn(fields.next().ok_or_else(bad)?)?;
            if parent >= timeline {
                return Err(format!(
                    "timeline {timeline}'s history names {parent} as a parent: parents are older"
                ));
            }
            branches.push(Branch {
                parent,
                switchpoint,
            });
        }
        Ok(History { timeline, branches })
    }

    /// The timeline whose WAL holds the segment `segno` on this history:
    /// the switch segment itself is the child's (PostgreSQL copies the
    /// segment's beginning to the new timeline).
    pub fn timeline_of_segment(&self, segno: u64, segment_size: u64) -> u32 {
        self.branches
            .iter()
            .find(|b| segno < b.switchpoint / segment_size)
            .map(|b| b.parent)
            .unwrap_or(self.timeline)
    }

    /// Whether recovery along this history can start from `backup`: it is
    /// on this timeline, or on an ancestor and ended before that
    /// ancestor's switch point (its end LSN where known, else its last
    /// segment wholly before the switch point's).
    pub fn holds(&self, backup: &BaseBackup) -> bool {
        if backup.timeline == self.timeline {
            return true;
        }
        let Some(branch) = self.branches.iter().find(|b| b.parent == backup.timeline) else {
            return false;
        };
        match backup.end_lsn {
            Some(end) => end <= branch.switchpoint,
            None => segno_of(&backup.end_wal, backup.segment_size)
                .is_some_and(|end| end < branch.switchpoint / backup.segment_size),
        }
    }
}

/// The newest timeline with a history file among the archive's names
/// (what `recovery_target_timeline = 'latest'` recovers to), or `None`
/// when the archive has none (timeline 1, or the backups' own).
pub fn newest_history(names: &[String]) -> Option<(u32, &str)> {
    names
        .iter()
        .filter(|n| classify(n) == Some(WalKind::History))
        .filter_map(|n| Some((u32::from_str_radix(&n[..8], 16).ok()?, n.as_str())))
        .max_by_key(|(timeline, _)| *timeline)
}

/// The segment number (position in the WAL stream) of a segment name.
pub fn segno_of(name: &str, segment_size: u64) -> Option<u64> {
    if classify(name) != Some(WalKind::Segment) {
        return None;
    }
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some(hi * (0x1_0000_0000 / segment_size) + lo)
}

/// The last segment recovery from `backup` along `history` replays before
/// the archive's first gap (`names`: the archive's file names), or `None`
/// when even the backup's first segment is missing.
pub fn replay_end(backup: &BaseBackup, history: &History, names: &[String]) -> Option<String> {
    let size = backup.segment_size;
    let have: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut segno = segno_of(&backup.start_wal, size)?;
    let mut last = None;
    loop {
        let timeline = history.timeline_of_segment(segno, size);
        let name = segment_name(timeline, segno * size, size);
        if !have.contains(name.as_str()) {
            return last;
        }
        last = Some(name);
        segno += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 1 << 20;

    fn backup(id: &str, timeline: u32, start: u64, end_lsn: Option<u64>) -> BaseBackup {
        BaseBackup {
            id: id.into(),
            start_time: 0,
            end_time: 1,
            start_wal: segment_name(timeline, start * SEG, SEG),
            end_wal: segment_name(timeline, start * SEG, SEG),
            timeline,
            end_micros: None,
            end_lsn,
            segment_size: SEG,
        }
    }

    #[test]
    fn a_history_file_reads_and_follows_its_branches() {
        let h = History::parse(3, "1\t0/3000148\tbefore 2026-12-07 10:00:00+00\n\n# x\n2\t0/5800000\tno recovery target specified\n").unwrap();
        assert_eq!(
            h.branches,
            [
                Branch {
                    parent: 1,
                    switchpoint: 0x3000148
                },
                Branch {
                    parent: 2,
                    switchpoint: 0x5800000
                }
            ]
        );
        assert_eq!(h.timeline_of_segment(2, SEG), 1);
        assert_eq!(h.timeline_of_segment(0x30, SEG), 2);
        assert_eq!(h.timeline_of_segment(0x57, SEG), 2);
        assert_eq!(h.timeline_of_segment(0x58, SEG), 3);
        assert!(History::parse(2, "2\t0/1\tx").is_err());
        assert!(History::parse(2, "one\t0/1\tx").is_err());
    }

    #[test]
    fn a_backup_after_the_switch_on_the_old_timeline_is_not_on_the_history() {
        let h = History::parse(2, "1\t0/3000148\tbefore the mistake\n").unwrap();
        // Before the switch point: recovery can start there and follow
        // the branch.
        assert!(h.holds(&backup("early", 1, 2, Some(0x2000100))));
        // Taken on timeline 1 after the switch point (after the mistake):
        // its checkpoint is on no history of timeline 2.
        assert!(!h.holds(&backup("late", 1, 0x40, Some(0x4000100))));
        assert!(!h.holds(&backup("late-no-lsn", 1, 0x40, None)));
        // The switch segment itself, without the end LSN: not sure, so not.
        assert!(!h.holds(&backup("same-segment", 1, 0x30, None)));
        assert!(h.holds(&backup("on-2", 2, 0x50, None)));
        assert!(!h.holds(&backup("on-3", 3, 0x50, None)));
    }

    #[test]
    fn replay_follows_the_history_and_stops_at_the_first_gap() {
        let h = History::parse(2, "1\t0/300148\tx\n").unwrap();
        let names: Vec<String> = [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000004",
            "000000020000000000000003",
            "000000020000000000000004",
            "000000020000000000000006",
            "00000002.history",
        ]
        .map(String::from)
        .to_vec();
        let b = backup("b", 1, 1, Some(0x1000100));
        assert_eq!(
            replay_end(&b, &h, &names).as_deref(),
            Some("000000020000000000000004")
        );
        assert_eq!(newest_history(&names), Some((2, "00000002.history")));
        assert_eq!(
            replay_end(&b, &History::first(), &names).as_deref(),
            Some("000000010000000000000004")
        );
        assert_eq!(replay_end(&backup("c", 1, 9, None), &h, &names), None);
    }
}
