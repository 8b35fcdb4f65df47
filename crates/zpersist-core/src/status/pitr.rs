//! PostgreSQL point-in-time recovery in `zpersist status`: the archiver
//! (`pg_stat_archiver`), the newest base backup in the repository and the
//! last drill (its textfile), each judged against an objective. No I/O,
//! no clock.

use serde::{Deserialize, Serialize};

use super::Problem;
use crate::pitr::health::{ArchiveHealth, ArchiverStats, DrillRecord};

/// What PostgreSQL's recovery promises (`status.json`'s `postgresql`).
/// The archive-age objective is the PITR contract's
/// `maxArchiveAgeSeconds` unless given here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PitrObjectives {
    #[serde(default)]
    pub max_archive_age_seconds: Option<u64>,
    /// The newest base backup ended at most this long ago.
    #[serde(default)]
    pub max_base_backup_age_seconds: Option<u64>,
    /// The last drill ran at most this long ago (and succeeded).
    #[serde(default)]
    pub max_drill_age_seconds: Option<u64>,
    /// The last drill measured at most this much data loss.
    #[serde(default)]
    pub max_rpo_seconds: Option<u64>,
}

/// The newest base backup: its id and when it became restorable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseBackupRef {
    pub id: String,
    pub end_time: i64,
}

/// A fact that could not be read: what failed, and the command to look.
pub type Unread = (String, String);

pub struct PitrInputs {
    /// How messages name the repository (`the repository /srv/pitr`).
    pub repository: String,
    pub archiver: Result<ArchiverStats, Unread>,
    /// The newest base backup; `Ok(None)`: the repository holds none.
    pub base_backup: Result<Option<BaseBackupRef>, Unread>,
    /// The last drill; `Ok(None)`: none has run (no textfile).
    pub drill: Result<Option<DrillRecord>, Unread>,
    pub objectives: PitrObjectives,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PitrStatus {
    pub repository: String,
    /// `pg_stat_archiver`, when it could be read.
    pub archiver: Option<ArchiverStats>,
    pub archive: Option<ArchiveHealth>,
    pub last_archived_age_seconds: Option<i64>,
    pub base_backup: Option<BaseBackupRef>,
    pub base_backup_age_seconds: Option<i64>,
    pub drill: Option<DrillRecord>,
    pub drill_age_seconds: Option<i64>,
    pub objectives: PitrObjectives,
    pub problems: Vec<Problem>,
}

impl PitrStatus {
    pub fn in_shape(&self) -> bool {
        self.problems.is_empty()
    }
}

const ARCHIVE_HELP: &str = "`journalctl -u postgresql` shows archive_command's (pitr-archive-wal's) error; `systemctl status zpersist-pitr-heartbeat` checks archiving every minute";
const BASE_UNIT: &str = "zpersist-pitr-base-backup";
const DRILL_UNIT: &str = "zpersist-pitr-drill";

pub fn evaluate_pitr(inputs: PitrInputs) -> PitrStatus {
    let PitrInputs {
        repository,
        archiver,
        base_backup,
        drill,
        objectives,
        now,
    } = inputs;
    let mut problems = Vec::new();
    let unread = |what: &str, (error, help): Unread| Problem {
        error: format!("{what} cannot be read: {error}"),
        help,
    };
    let archiver = match archiver {
        Ok(stats) => Some(stats),
        Err(e) => {
            problems.push(unread("PostgreSQL's archiver (pg_stat_archiver)", e));
            None
        }
    };
    let max_archive = objectives.max_archive_age_seconds.unwrap_or(u64::MAX);
    let archive = archiver
        .as_ref()
        .map(|s| s.health(now, i64::try_from(max_archive).unwrap_or(i64::MAX)));
    let last_archived_age_seconds = archiver
        .as_ref()
        .and_then(|s| s.last_archived_time)
        .map(|t| (now - t).max(0));
    match (&archive, &archiver) {
        (Some(ArchiveHealth::Failing { wal, since }), Some(s)) => problems.push(Problem {
            error: format!(
                "archiving WAL fails: segment {wal} could not be archived since {} ({} failed attempts in all; the last success {}); pg_wal grows until it succeeds",
                crate::time::rfc3339(*since),
                s.failed_count,
                s.last_archived_time
                    .map(crate::time::rfc3339)
                    .unwrap_or_else(|| "never".into())
            ),
            help: ARCHIVE_HELP.into(),
        }),
        (Some(ArchiveHealth::Stale { age: None }), _) => problems.push(Problem {
            error: "PostgreSQL has archived no WAL segment yet (pg_stat_archiver)".into(),
            help: format!("`psql -c 'select pg_switch_wal()'` archives the current one; {ARCHIVE_HELP}"),
        }),
        (Some(ArchiveHealth::Stale { age: Some(age) }), Some(s)) => problems.push(Problem {
            error: format!(
                "the last archived WAL segment ({}) is {age} s old (objective: at most {max_archive} s)",
                s.last_archived_wal.as_deref().unwrap_or("-")
            ),
            help: ARCHIVE_HELP.into(),
        }),
        _ => {}
    }

    let base_backup = match base_backup {
        Ok(b) => {
            if b.is_none() {
                problems.push(Problem {
                    error: format!("{repository} holds no base backup: nothing can be restored"),
                    help: format!("`systemctl start {BASE_UNIT}` takes one; `journalctl -u {BASE_UNIT}` says why the timer's runs did not"),
                });
            }
            b
        }
        Err(e) => {
            problems.push(unread(&format!("the base backups in {repository}"), e));
            None
        }
    };
    let base_backup_age_seconds = base_backup.as_ref().map(|b| (now - b.end_time).max(0));
    if let (Some(b), Some(age), Some(max)) = (
        &base_backup,
        base_backup_age_seconds,
        objectives.max_base_backup_age_seconds,
    ) {
        if age as u64 > max {
            problems.push(Problem {
                error: format!(
                    "the newest base backup in {repository} ({}, {}) is {age} s old (objective: at most {max} s)",
                    b.id,
                    crate::time::rfc3339(b.end_time)
                ),
                help: format!("`systemctl list-timers {BASE_UNIT}` and `journalctl -u {BASE_UNIT}`: its runs fail or do not run; `systemctl start {BASE_UNIT}` takes one now"),
            });
        }
    }

    let drill = match drill {
        Ok(d) => d,
        Err(e) => {
            problems.push(unread("the last drill's record", e));
            None
        }
    };
    let drill_age_seconds = drill.as_ref().map(|d| (now - d.at).max(0));
    let drill_help = format!(
        "`journalctl -u {DRILL_UNIT}` says why; `systemctl start {DRILL_UNIT}` drills again"
    );
    match &drill {
        None => {
            if let Some(max) = objectives.max_drill_age_seconds {
                problems.push(Problem {
                    error: format!("no restore drill has run (objective: one at most {max} s old): nothing shows the archive restores"),
                    help: format!("`systemctl start {DRILL_UNIT}` restores the newest state for real into its scratch directory"),
                });
            }
        }
        Some(d) => {
            if !d.success {
                problems.push(Problem {
                    error: format!(
                        "the last restore drill ({}) failed: the archive is not shown to restore",
                        crate::time::rfc3339(d.at)
                    ),
                    help: drill_help.clone(),
                });
            }
            if let (Some(age), Some(max)) = (drill_age_seconds, objectives.max_drill_age_seconds) {
                if age as u64 > max {
                    problems.push(Problem {
                        error: format!(
                            "the last restore drill ran {} and is {age} s old (objective: at most {max} s)",
                            crate::time::rfc3339(d.at)
                        ),
                        help: format!("`systemctl list-timers {DRILL_UNIT}`; {drill_help}"),
                    });
                }
            }
            if let (Some(rpo), Some(max)) = (d.rpo_seconds, objectives.max_rpo_seconds) {
                if rpo > max as f64 {
                    problems.push(Problem {
                        error: format!(
                            "the last restore drill ({}) would have lost {rpo:.0} s of data (RPO objective: at most {max} s)",
                            crate::time::rfc3339(d.at)
                        ),
                        help: format!("WAL reaches the archive too late: check archive_timeout and `systemctl status zpersist-pitr-heartbeat`; {drill_help}"),
                    });
                }
            }
        }
    }
    PitrStatus {
        repository,
        archiver,
        archive,
        last_archived_age_seconds,
        base_backup,
        base_backup_age_seconds,
        drill,
        drill_age_seconds,
        objectives,
        problems,
    }
}

/// PostgreSQL's part of the textfile (`zpersist_status_pitr_*`).
pub fn textfile(status: &PitrStatus, out: &mut String) {
    let row = |v: Option<i64>| {
        v.map(|v| vec![(String::from("service=\"postgresql\""), v)])
            .unwrap_or_default()
    };
    let m = |out: &mut String, name: &str, help: &str, v: Option<i64>| {
        super::metric(out, name, help, row(v))
    };
    m(
        out,
        "zpersist_status_pitr_ok",
        "1 when archiving, the base backups and the drill meet their objectives.",
        Some(i64::from(status.in_shape())),
    );
    m(
        out,
        "zpersist_status_pitr_archive_ok",
        "1 when pg_stat_archiver could be read, the last attempt succeeded and the last archived segment is within its objective.",
        Some(i64::from(matches!(status.archive, Some(ArchiveHealth::Ok)))),
    );
    m(
        out,
        "zpersist_status_pitr_last_archived_age_seconds",
        "Age of the last archived WAL segment (pg_stat_archiver.last_archived_time).",
        status.last_archived_age_seconds,
    );
    m(
        out,
        "zpersist_status_pitr_archive_failed_total",
        "Failed archive attempts since the statistics were reset (pg_stat_archiver.failed_count).",
        status.archiver.as_ref().map(|a| a.failed_count as i64),
    );
    m(
        out,
        "zpersist_status_pitr_archive_age_objective_seconds",
        "The most the last archived segment may be old (the PITR contract's maxArchiveAgeSeconds).",
        status.objectives.max_archive_age_seconds.map(|m| m as i64),
    );
    m(
        out,
        "zpersist_status_pitr_base_backup_age_seconds",
        "Age of the newest base backup (since it became restorable); absent when there is none.",
        status.base_backup_age_seconds,
    );
    m(
        out,
        "zpersist_status_pitr_base_backup_age_objective_seconds",
        "The most the newest base backup may be old (status.json).",
        status
            .objectives
            .max_base_backup_age_seconds
            .map(|m| m as i64),
    );
    m(
        out,
        "zpersist_status_pitr_drill_success",
        "1 when the last restore drill succeeded (absent when none has run).",
        status.drill.as_ref().map(|d| i64::from(d.success)),
    );
    m(
        out,
        "zpersist_status_pitr_drill_age_seconds",
        "Age of the last restore drill.",
        status.drill_age_seconds,
    );
    m(
        out,
        "zpersist_status_pitr_drill_age_objective_seconds",
        "The most the last drill may be old (status.json).",
        status.objectives.max_drill_age_seconds.map(|m| m as i64),
    );
    m(
        out,
        "zpersist_status_pitr_rpo_seconds",
        "The recovery point the last drill measured (its time minus the newest heartbeat it restored).",
        status
            .drill
            .as_ref()
            .and_then(|d| d.rpo_seconds)
            .map(|r| r.round() as i64),
    );
    m(
        out,
        "zpersist_status_pitr_rpo_objective_seconds",
        "The most data the last drill may have lost (status.json).",
        status.objectives.max_rpo_seconds.map(|m| m as i64),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(now: i64) -> PitrInputs {
        PitrInputs {
            repository: "the repository /srv/pitr".into(),
            archiver: Ok(ArchiverStats {
                archived_count: 5,
                last_archived_wal: Some("000000010000000000000005".into()),
                last_archived_time: Some(now - 30),
                ..Default::default()
            }),
            base_backup: Ok(Some(BaseBackupRef {
                id: "20261207T100000".into(),
                end_time: now - 3600,
            })),
            drill: Ok(Some(DrillRecord {
                at: now - 7200,
                success: true,
                rpo_seconds: Some(42.0),
            })),
            objectives: PitrObjectives {
                max_archive_age_seconds: Some(600),
                max_base_backup_age_seconds: Some(2 * 86_400),
                max_drill_age_seconds: Some(14 * 86_400),
                max_rpo_seconds: Some(600),
            },
            now,
        }
    }

    #[test]
    fn archive_base_backup_and_drill_each_against_their_objective() {
        let now = 1_000_000;
        let ok = evaluate_pitr(healthy(now));
        assert!(ok.in_shape(), "{ok:?}");
        assert_eq!(ok.last_archived_age_seconds, Some(30));
        assert_eq!(ok.base_backup_age_seconds, Some(3600));
        assert_eq!(ok.drill_age_seconds, Some(7200));

        let errors = |i: PitrInputs| {
            evaluate_pitr(i)
                .problems
                .into_iter()
                .map(|p| format!("{} | {}", p.error, p.help))
                .collect::<Vec<_>>()
        };
        let mut failing = healthy(now);
        if let Ok(a) = &mut failing.archiver {
            a.failed_count = 7;
            a.last_failed_wal = Some("000000010000000000000006".into());
            a.last_failed_time = Some(now - 10);
        }
        let e = errors(failing);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with("archiving WAL fails: segment 000000010000000000000006"),
            "{e:#?}"
        );
        assert!(e[0].contains("7 failed attempts"), "{e:#?}");
        assert!(e[0].contains("journalctl -u postgresql"), "{e:#?}");

        let mut stale = healthy(now);
        if let Ok(a) = &mut stale.archiver {
            a.last_archived_time = Some(now - 4000);
        }
        let e = errors(stale);
        assert!(
            e[0].contains("is 4000 s old (objective: at most 600 s)"),
            "{e:#?}"
        );

        let mut unread = healthy(now);
        unread.archiver = Err((
            "psql: connection refused".into(),
            "`systemctl status postgresql`".into(),
        ));
        unread.base_backup = Ok(None);
        unread.drill = Ok(None);
        let e = errors(unread);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].contains("cannot be read: psql: connection refused"));
        assert!(
            e[1].contains("holds no base backup")
                && e[1].contains("systemctl start zpersist-pitr-base-backup")
        );
        assert!(e[2].contains("no restore drill has run"));

        let mut old = healthy(now);
        old.base_backup = Ok(Some(BaseBackupRef {
            id: "old".into(),
            end_time: now - 3 * 86_400,
        }));
        old.drill = Ok(Some(DrillRecord {
            at: now - 20 * 86_400,
            success: false,
            rpo_seconds: Some(1200.0),
        }));
        let e = errors(old);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e[0].contains("newest base backup") && e[0].contains("259200 s old"));
        assert!(e[1].contains("failed") && e[1].contains("journalctl -u zpersist-pitr-drill"));
        assert!(e[2].contains("1728000 s old"));
        assert!(e[3].contains("lost 1200 s of data (RPO objective: at most 600 s)"));

        let mut text = String::new();
        textfile(&ok, &mut text);
        for row in [
            "zpersist_status_pitr_ok{service=\"postgresql\"} 1",
            "zpersist_status_pitr_last_archived_age_seconds{service=\"postgresql\"} 30",
            "zpersist_status_pitr_archive_failed_total{service=\"postgresql\"} 0",
            "zpersist_status_pitr_base_backup_age_seconds{service=\"postgresql\"} 3600",
            "zpersist_status_pitr_drill_success{service=\"postgresql\"} 1",
            "zpersist_status_pitr_rpo_seconds{service=\"postgresql\"} 42",
            "zpersist_status_pitr_rpo_objective_seconds{service=\"postgresql\"} 600",
        ] {
            assert!(text.contains(row), "{row}\n{text}");
        }
    }
}
