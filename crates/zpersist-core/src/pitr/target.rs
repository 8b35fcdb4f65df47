//! Where a restore should end, and which base backup it starts from.

use serde::{Deserialize, Serialize};

use super::timeline::History;
use crate::time::{parse_rfc3339, rfc3339};

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum Target {
    /// Everything the archive holds: the newest base backup and every
    /// archived segment after it.
    Latest,
    /// A moment, in microseconds since the epoch: recovery replays every
    /// transaction committed up to it and stops before the first later one.
    Time(i64),
    /// The end of one base backup (its id), nothing after it.
    Backup(String),
}

/// The forms `--to` accepts, for messages.
pub const TARGET_FORMS: &str = "`latest`, an RFC 3339 time with its zone like 2026-11-30T10:15:00Z (fractions of a second allowed), or a base backup id like 20261130T101500";

/// A base backup id: `YYYYMMDDTHHMMSS`, as barman-cloud and zpersist name them.
pub fn is_backup_id(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 15
        && b[8] == b'T'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// The id of a backup started at `unix_seconds` (UTC).
pub fn backup_id(unix_seconds: i64) -> String {
    rfc3339(unix_seconds)
        .trim_end_matches('Z')
        .replace(['-', ':'], "")
}

/// Parses `--to`.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let text = text.trim();
    if text == "latest" {
        return Ok(Target::Latest);
    }
    if is_backup_id(text) {
        return Ok(Target::Backup(text.to_string()));
    }
    parse_time_micros(text).map(Target::Time).map_err(|_| {
        format!(
            "`{}` is not a restore target: use {TARGET_FORMS}",
            crate::shown(text)
        )
    })
}

/// An RFC 3339 time to microseconds since the epoch (digits past the sixth
/// of a fraction are dropped).
pub fn parse_time_micros(text: &str) -> Result<i64, String> {
    // The fraction, if any, stands between the seconds and the zone.
    let (whole, micros) = match text.get(19..).and_then(|rest| rest.strip_prefix('.')) {
        Some(fraction) => {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            let mut padded: String = fraction[..digits.min(6)].to_string();
            while padded.len() < 6 {
                padded.push('0');
            }
            let micros: i64 = padded.parse().map_err(|_| "fraction".to_string())?;
            (format!("{}{}", &text[..19], &fraction[digits..]), micros)
        }
        None => (text.to_string(), 0),
    };
    let seconds = parse_rfc3339(&whole)?;
    Ok(seconds * 1_000_000 + micros)
}

/// Microseconds as RFC 3339 (`2026-11-30T10:15:00.250000Z`; whole seconds
/// without a fraction).
pub fn format_micros(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let text = rfc3339(seconds);
    if fraction == 0 {
        text
    } else {
        format!("{}.{fraction:06}Z", text.trim_end_matches('Z'))
    }
}

/// `recovery_target_time` as PostgreSQL reads it, in UTC.
pub fn postgres_time(micros: i64) -> String {
    let text = format_micros(micros);
    format!("{}+00", text.trim_end_matches('Z').replace('T', " "))
}

/// One base backup in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseBackup {
    pub id: String,
    /// Seconds since the epoch when it started.
    pub start_time: i64,
    /// Seconds since the epoch when it was complete: the first moment it
    /// can be restored to (rounded up).
    pub end_time: i64,
    /// The segment where replay starts.
    pub start_wal: String,
    /// The last segment it needs to be consistent.
    pub end_wal: String,
    pub timeline: u32,
    /// The end more precisely, in microseconds, where it is known (local
    /// backups: taken right after pg_basebackup returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_micros: Option<i64>,
    /// The LSN where it was consistent (its manifest's last WAL range),
    /// where known: whether it lies before a timeline's switch point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_lsn: Option<u64>,
    /// WAL segment size of the cluster, in bytes.
    #[serde(default = "default_segment_size")]
    pub segment_size: u64,
}

impl BaseBackup {
    /// When it was complete, in microseconds.
    pub fn end_micros(&self) -> i64 {
        self.end_micros.unwrap_or(self.end_time * 1_000_000)
    }
}

fn default_segment_size() -> u64 {
    16 << 20
}

/// Why no base backup fits a target; nothing was touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoBackup {
    pub error: String,
    pub help: String,
}

/// The base backup a restore to `target` starts from: the newest one that
/// was complete at the target (for `latest`, the newest of all). `now` (in
/// seconds) refuses targets in the future, which no archive can reach yet.
pub fn choose_base_backup(
    backups: &[BaseBackup],
    target: &Target,
    now: i64,
) -> Result<BaseBackup, NoBackup> {
    candidate_backups(backups, target, now, None).map(|mut list| list.remove(0))
}

/// The base backups a restore to `target` may start from, the best first:
/// those complete at the target and, with `history` (the timeline recovery
/// follows), on that timeline's history, newest first. A backup that fails
/// its verification gives way to the next (older, with more WAL to
/// replay). `Target::Backup` names one backup: only that one.
pub fn candidate_backups(
    backups: &[BaseBackup],
    target: &Target,
    now: i64,
    history: Option<&History>,
) -> Result<Vec<BaseBackup>, NoBackup> {
    if backups.is_empty() {
        return Err(NoBackup {
            error: "the repository holds no base backup".into(),
            help: "take one with pitr-base-backup (its timer runs it on schedule); restores start from a base backup".into(),
        });
    }
    let newest_first = |mut list: Vec<&BaseBackup>| {
        list.sort_by(|a, b| b.end_time.cmp(&a.end_time).then(b.id.cmp(&a.id)));
        list.into_iter().cloned().collect::<Vec<_>>()
    };
    if let Target::Backup(id) = target {
        return backups
            .iter()
            .find(|b| &b.id == id)
            .map(|b| vec![b.clone()])
            .ok_or_else(|| {
                let mut ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
                ids.sort();
                NoBackup {
                    error: format!("the repository has no base backup {id}"),
                    help: format!("choose one of {}", ids.join(", ")),
                }
            });
    }
    let on_history: Vec<&BaseBackup> = backups
        .iter()
        .filter(|b| history.is_none_or(|h| h.holds(b)))
        .collect();
    if on_history.is_empty() {
        let history = history.expect("only a history filters backups out");
        let mut ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
        ids.sort();
        return Err(NoBackup {
            error: format!(
                "no base backup lies on the history of timeline {}, the archive's newest (its backups {} are on other branches)",
                history.timeline,
                ids.join(", ")
            ),
            help: format!(
                "take a base backup of the cluster now (pitr-base-backup), which runs on timeline {}",
                history.timeline
            ),
        });
    }
    let oldest = on_history
        .iter()
        .min_by(|a, b| a.end_time.cmp(&b.end_time).then(a.id.cmp(&b.id)))
        .expect("not empty");
    match target {
        Target::Backup(_) => unreachable!("handled above"),
        Target::Latest => Ok(newest_first(on_history)),
        Target::Time(micros) => {
            if micros.div_euclid(1_000_000) > now {
                return Err(NoBackup {
                    error: format!("the target {} is in the future", format_micros(*micros)),
                    help: "no archive holds transactions that have not happened; use `--to latest` for everything archived so far".into(),
                });
            }
            let fitting: Vec<&BaseBackup> = on_history
                .iter()
                .copied()
                .filter(|b| b.end_micros() <= *micros)
                .collect();
            if fitting.is_empty() {
                return Err(NoBackup {
                    error: format!(
                        "the target {} is before the oldest base backup was complete ({}, backup {})",
                        format_micros(*micros),
                        rfc3339(oldest.end_time),
                        oldest.id
                    ),
                    help: format!(
                        "the repository can restore to {} or later; older states were pruned by retention (or never backed up)",
                        rfc3339(oldest.end_time)
                    ),
                });
            }
            Ok(newest_first(fitting))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, end: i64) -> BaseBackup {
        BaseBackup {
            id: id.into(),
            start_time: end - 5,
            end_time: end,
            start_wal: "000000010000000000000002".into(),
            end_wal: "000000010000000000000002".into(),
            timeline: 1,
            end_micros: None,
            end_lsn: None,
            segment_size: 1 << 20,
        }
    }

    #[test]
    fn targets_parse_in_three_forms_and_anything_else_is_refused() {
        assert_eq!(parse_target("latest"), Ok(Target::Latest));
        assert_eq!(
            parse_target("20261130T101500"),
            Ok(Target::Backup("20261130T101500".into()))
        );
        let t = parse_rfc3339("2026-11-30T10:15:00Z").unwrap();
        assert_eq!(
            parse_target("2026-11-30T10:15:00Z"),
            Ok(Target::Time(t * 1_000_000))
        );
        assert_eq!(
            parse_target("2026-11-30T11:15:00.25+01:00"),
            Ok(Target::Time(t * 1_000_000 + 250_000))
        );
        assert_eq!(
            parse_target("2026-11-30T10:15:00.123456789Z"),
            Ok(Target::Time(t * 1_000_000 + 123_456))
        );
        for bad in [
            "yesterday",
            "2026-11-30 10:15",
            "2026-11-30T10:15:00",
            "2026-13-30T10:15:00Z",
            "",
            "LATEST",
            "20261130T1015",
        ] {
            let e = parse_target(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn times_print_as_postgresql_and_people_read_them() {
        let t = parse_time_micros("2026-11-30T10:15:00.000250Z").unwrap();
        assert_eq!(format_micros(t), "2026-11-30T10:15:00.000250Z");
        assert_eq!(postgres_time(t), "2026-11-30 10:15:00.000250+00");
        assert_eq!(postgres_time(t - 250), "2026-11-30 10:15:00+00");
        assert_eq!(
            backup_id(parse_rfc3339("2026-11-30T10:15:07Z").unwrap()),
            "20261130T101507"
        );
        assert!(is_backup_id(&backup_id(0)));
    }

    #[test]
    fn the_newest_backup_complete_at_the_target_is_chosen() {
        let backups = [backup("b1", 100), backup("b3", 300), backup("b2", 200)];
        let at = |s: i64| Target::Time(s * 1_000_000);
        assert_eq!(
            choose_base_backup(&backups, &at(250), 1000).unwrap().id,
            "b2"
        );
        assert_eq!(
            choose_base_backup(&backups, &at(200), 1000).unwrap().id,
            "b2"
        );
        assert_eq!(
            choose_base_backup(&backups, &Target::Time(199_999_999), 1000)
                .unwrap()
                .id,
            "b1"
        );
        assert_eq!(
            choose_base_backup(&backups, &Target::Latest, 1000)
                .unwrap()
                .id,
            "b3"
        );
        assert_eq!(
            choose_base_backup(&backups, &Target::Backup("b1".into()), 1000)
                .unwrap()
                .id,
            "b1"
        );
    }

    #[test]
    fn no_fitting_backup_says_what_the_repository_can_do() {
        let backups = [backup("b1", 100), backup("b2", 200)];
        let before = choose_base_backup(&backups, &Target::Time(50_000_000), 1000).unwrap_err();
        assert!(
            before.error.contains("before the oldest base backup"),
            "{}",
            before.error
        );
        assert!(
            before.help.contains("1970-01-01T00:01:40Z or later"),
            "{}",
            before.help
        );
        let future = choose_base_backup(&backups, &Target::Time(2_000_000_000), 1000).unwrap_err();
        assert!(future.error.contains("in the future"), "{}", future.error);
        let unknown = choose_base_backup(&backups, &Target::Backup("b9".into()), 1000).unwrap_err();
        assert_eq!(unknown.help, "choose one of b1, b2");
        let none = choose_base_backup(&[], &Target::Latest, 1000).unwrap_err();
        assert!(none.help.contains("pitr-base-backup"));
    }
}
