//! Which base backups and WAL files a repository keeps. A kept restore
//! point is a kept base backup plus every archived file from its start
//! segment on; nothing a kept point needs is ever pruned.

use serde::{Deserialize, Serialize};

use super::target::BaseBackup;
use super::wal::{classify, segment_key, WalKind};

/// How many restore points to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RetentionPolicy {
    /// The newest N base backups (at least 1).
    Count(u32),
    /// Every moment of the last N seconds stays restorable: the backups
    /// completed within the window, plus the newest one before it (the
    /// window's start replays from there).
    RecoveryWindow(i64),
}

impl RetentionPolicy {
    /// barman-cloud-backup-delete's `--retention-policy` for the same rule.
    pub fn barman(&self) -> String {
        match self {
            RetentionPolicy::Count(n) => format!("REDUNDANCY {}", (*n).max(1)),
            RetentionPolicy::RecoveryWindow(seconds) => {
                // barman counts in days, weeks or months; round up so it
                // never keeps less than asked.
                let days = (seconds + 86_399) / 86_400;
                format!("RECOVERY WINDOW OF {} DAYS", days.max(1))
            }
        }
    }
}

/// What pruning keeps and removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPlan {
    /// Backup ids kept, oldest first.
    pub keep: Vec<String>,
    /// Backup ids removed, oldest first.
    pub remove: Vec<String>,
    /// The oldest segment a kept backup starts from: WAL before it is
    /// needed by no kept restore point. `None` when nothing is kept.
    pub wal_horizon: Option<String>,
}

/// Applies `policy` at `now` (seconds). The newest backup is always kept.
pub fn retention(backups: &[BaseBackup], policy: RetentionPolicy, now: i64) -> RetentionPlan {
    let mut sorted: Vec<&BaseBackup> = backups.iter().collect();
    sorted.sort_by(|a, b| a.end_time.cmp(&b.end_time).then(a.id.cmp(&b.id)));
    let n = sorted.len();
    let first_kept = match policy {
        RetentionPolicy::Count(count) => n.saturating_sub((count.max(1)) as usize),
        RetentionPolicy::RecoveryWindow(window) => {
            let start = now - window;
            // The newest backup complete at the window's start, or the
            // oldest one when none is (the window reaches past them all).
            sorted
                .iter()
                .rposition(|b| b.end_time <= start)
                .unwrap_or_default()
        }
    };
    let first_kept = first_kept.min(n.saturating_sub(1));
    let keep: Vec<&BaseBackup> = sorted[first_kept..].to_vec();
    let wal_horizon = keep
        .iter()
        .filter_map(|b| segment_key(&b.start_wal).map(|key| (key, &b.start_wal)))
        .min()
        .map(|(_, name)| name.clone());
    RetentionPlan {
        keep: keep.iter().map(|b| b.id.clone()).collect(),
        remove: sorted[..first_kept].iter().map(|b| b.id.clone()).collect(),
        wal_horizon,
    }
}

/// The archive files no kept restore point needs: segments, partial
/// segments and backup histories before the horizon. Timeline histories
/// are always kept (recovery reads them to follow timelines), and so is
/// anything that is not an archive file.
pub fn prunable_wal<'a>(names: &'a [String], horizon: &str) -> Vec<&'a String> {
    let Some(horizon) = segment_key(horizon) else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|name| {
            matches!(
                classify(name),
                Some(WalKind::Segment | WalKind::Partial | WalKind::BackupHistory)
            ) && segment_key(name).is_some_and(|key| key < horizon)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pitr::target::{choose_base_backup, Target};
    use crate::pitr::wal::segment_name;

    const SEG: u64 = 1 << 20;

    fn backup(id: usize, end: i64, start_segment: u64) -> BaseBackup {
        BaseBackup {
            id: format!("b{id:04}"),
            start_time: end - 1,
            end_time: end,
            start_wal: segment_name(1, start_segment * SEG, SEG),
            end_wal: segment_name(1, start_segment * SEG, SEG),
            timeline: 1,
            end_micros: None,
            end_lsn: None,
            segment_size: SEG,
        }
    }

    /// A tiny deterministic generator, so the schedules are the same on every run.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }
    }

    /// Many simulated schedules: backups at irregular intervals, WAL
    /// segments archived in between, pruning after every backup. After each
    /// prune, every kept backup still has all the WAL from its start to the
    /// newest segment, and with a recovery window every second of the
    /// window still has a base backup to start from.
    #[test]
    fn over_many_schedules_every_kept_restore_point_still_restores() {
        let mut rng = Lcg(42);
        for schedule in 0..120 {
            let policy = if schedule % 2 == 0 {
                RetentionPolicy::Count(1 + rng.next(5) as u32)
            } else {
                RetentionPolicy::RecoveryWindow(3600 * (1 + rng.next(200) as i64))
            };
            let mut now = 1_000_000i64;
            let mut segment = 2u64;
            let mut archive: Vec<String> = vec!["00000001.history".into()];
            let mut backups: Vec<BaseBackup> = Vec::new();
            for id in 0..40 {
                // Hours pass, segments are archived.
                for _ in 0..rng.next(30) {
                    now += 60 * (1 + rng.next(120) as i64);
                    archive.push(segment_name(1, segment * SEG, SEG));
                    segment += 1;
                }
                now += 1;
                backups.push(backup(id, now, segment));
                archive.push(segment_name(1, segment * SEG, SEG));
                archive.push(format!(
                    "{}.00000028.backup",
                    segment_name(1, segment * SEG, SEG)
                ));
                segment += 1;

                let plan = retention(&backups, policy, now);
                assert!(!plan.keep.is_empty());
                assert!(
                    plan.keep.contains(&backups.last().unwrap().id),
                    "the newest is kept"
                );
                let prunable: Vec<String> =
                    prunable_wal(&archive, plan.wal_horizon.as_deref().unwrap())
                        .into_iter()
                        .cloned()
                        .collect();
                archive.retain(|name| !prunable.contains(name));
                backups.retain(|b| plan.keep.contains(&b.id));
                assert!(archive.contains(&"00000001.history".to_string()));

                // Every kept backup replays from its start to the newest segment.
                for kept in &backups {
                    let first = u64::from_str_radix(&kept.start_wal[16..], 16).unwrap();
                    for needed in first..segment {
                        let name = segment_name(1, needed * SEG, SEG);
                        assert!(
                            archive.contains(&name),
                            "schedule {schedule}: {name} needed by {} was pruned",
                            kept.id
                        );
                    }
                }
                if let RetentionPolicy::RecoveryWindow(window) = policy {
                    let oldest_end = backups.iter().map(|b| b.end_time).min().unwrap();
                    let mut t = (now - window).max(oldest_end);
                    while t <= now {
                        let chosen =
                            choose_base_backup(&backups, &Target::Time(t * 1_000_000), now);
                        assert!(
                            chosen.is_ok(),
                            "schedule {schedule}: {t} in the window has no base backup"
                        );
                        t += 997;
                    }
                    // The window's start itself, once backups reach that far back.
                    let first = backups.iter().map(|b| b.end_time).min().unwrap();
                    let had_older = first <= now - window;
                    if had_older {
                        assert!(choose_base_backup(
                            &backups,
                            &Target::Time((now - window) * 1_000_000),
                            now
                        )
                        .is_ok());
                    }
                }
                if let RetentionPolicy::Count(count) = policy {
                    assert_eq!(backups.len(), (id + 1).min(count as usize));
                }
            }
        }
    }

    #[test]
    fn a_window_keeps_the_backup_before_it_and_barman_gets_the_same_rule() {
        let backups = [backup(1, 100, 2), backup(2, 200, 5), backup(3, 300, 9)];
        let plan = retention(&backups, RetentionPolicy::RecoveryWindow(50), 260);
        assert_eq!(plan.keep, ["b0002", "b0003"]);
        assert_eq!(plan.remove, ["b0001"]);
        assert_eq!(
            plan.wal_horizon.as_deref(),
            Some("000000010000000000000005")
        );
        let all_old = retention(&backups, RetentionPolicy::RecoveryWindow(10), 10_000);
        assert_eq!(all_old.keep, ["b0003"]);
        let count = retention(&backups, RetentionPolicy::Count(0), 0);
        assert_eq!(count.keep, ["b0003"], "at least one is kept");
        assert_eq!(
            RetentionPolicy::RecoveryWindow(14 * 86_400).barman(),
            "RECOVERY WINDOW OF 14 DAYS"
        );
        assert_eq!(
            RetentionPolicy::RecoveryWindow(3600).barman(),
            "RECOVERY WINDOW OF 1 DAYS"
        );
        assert_eq!(RetentionPolicy::Count(3).barman(), "REDUNDANCY 3");
    }

    #[test]
    fn histories_and_foreign_files_are_never_pruned() {
        let names: Vec<String> = [
            "000000010000000000000001",
            "000000010000000000000002.partial",
            "000000010000000000000002.00000028.backup",
            "00000002.history",
            "000000020000000000000003",
            "README",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let pruned: Vec<&String> = prunable_wal(&names, "000000020000000000000003");
        assert_eq!(pruned, [&names[0], &names[1], &names[2]]);
    }
}
