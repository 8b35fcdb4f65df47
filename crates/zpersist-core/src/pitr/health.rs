//! Archive health and the drill's recovery point, as figures and as a
//! Prometheus textfile.

use serde::Serialize;

/// `pg_stat_archiver`, times in seconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiverStats {
    pub archived_count: u64,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<i64>,
    pub failed_count: u64,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<i64>,
}

/// Is archiving working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ArchiveHealth {
    Ok,
    /// The last attempt failed (PostgreSQL keeps retrying that segment, and
    /// pg_wal grows until it succeeds).
    Failing {
        wal: String,
        since: i64,
    },
    /// Nothing archived for longer than allowed (or ever).
    Stale {
        age: Option<i64>,
    },
}

impl ArchiverStats {
    pub fn health(&self, now: i64, max_age: i64) -> ArchiveHealth {
        if let (Some(failed), Some(wal)) = (self.last_failed_time, &self.last_failed_wal) {
            if self.last_archived_time.is_none_or(|ok| failed > ok) {
                return ArchiveHealth::Failing {
                    wal: wal.clone(),
                    since: failed,
                };
            }
        }
        match self.last_archived_time {
            Some(t) if now - t <= max_age => ArchiveHealth::Ok,
            Some(t) => ArchiveHealth::Stale { age: Some(now - t) },
            None => ArchiveHealth::Stale { age: None },
        }
    }
}

/// The archive's metrics (`zpersist_pitr_archive_*`).
pub fn archive_metrics(stats: &ArchiverStats, health: &ArchiveHealth, now: i64) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "zpersist_pitr_archive_archived_total",
        "Segments archived since the statistics were reset (pg_stat_archiver.archived_count).",
        stats.archived_count as f64,
    );
    gauge(
        &mut out,
        "zpersist_pitr_archive_failed_total",
        "Failed archive attempts since the statistics were reset (pg_stat_archiver.failed_count).",
        stats.failed_count as f64,
    );
    if let Some(t) = stats.last_archived_time {
        gauge(
            &mut out,
            "zpersist_pitr_archive_last_archived_age_seconds",
            "Seconds since the last file was archived.",
            (now - t) as f64,
        );
    }
    gauge(
        &mut out,
        "zpersist_pitr_archive_failing",
        "1 when the last archive attempt failed.",
        f64::from(u8::from(matches!(health, ArchiveHealth::Failing { .. }))),
    );
    out
}

/// What a drill proved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillFacts {
    /// When the drill ran (seconds).
    pub at: i64,
    pub backup_id: String,
    /// The newest heartbeat in the restored cluster, in microseconds.
    pub heartbeat: Option<i64>,
    /// How long restore and replay took, in seconds.
    pub restore_seconds: f64,
}

impl DrillFacts {
    /// The recovery point objective the archive really gives: how much
    /// would be lost if the host died now (now − newest restored heartbeat).
    pub fn rpo_seconds(&self) -> Option<f64> {
        self.heartbeat
            .map(|h| (self.at as f64 - h as f64 / 1e6).max(0.0))
    }
}

/// The drill's metrics (`zpersist_pitr_drill_*`).
pub fn drill_metrics(facts: &DrillFacts, success: bool) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "zpersist_pitr_drill_success",
        "1 when the last drill restored the newest state and read a heartbeat.",
        f64::from(u8::from(success)),
    );
    gauge(
        &mut out,
        "zpersist_pitr_drill_timestamp_seconds",
        "When the last drill ran.",
        facts.at as f64,
    );
    if let Some(rpo) = facts.rpo_seconds() {
        gauge(&mut out, "zpersist_pitr_drill_rpo_seconds", "Recovery point objective the last drill measured: its time minus the newest heartbeat it restored.", rpo);
    }
    gauge(
        &mut out,
        "zpersist_pitr_drill_restore_seconds",
        "How long the last drill's restore and replay took.",
        facts.restore_seconds,
    );
    out
}

/// What the last drill's textfile (`pitr-drill.prom`, [`drill_metrics`])
/// says: when it ran, whether it succeeded and the RPO it measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillRecord {
    pub at: i64,
    pub success: bool,
    pub rpo_seconds: Option<f64>,
}

/// Reads back what [`drill_metrics`] wrote; why not, when it cannot.
pub fn read_drill_metrics(text: &str) -> Result<DrillRecord, String> {
    let value = |name: &str| {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let at = value("zpersist_pitr_drill_timestamp_seconds")
        .ok_or("no zpersist_pitr_drill_timestamp_seconds")?;
    let success =
        value("zpersist_pitr_drill_success").ok_or("no zpersist_pitr_drill_success")? == 1.0;
    Ok(DrillRecord {
        at: at as i64,
        success,
        rpo_seconds: value("zpersist_pitr_drill_rpo_seconds"),
    })
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_stale_and_ok() {
        let mut stats = ArchiverStats {
            archived_count: 10,
            last_archived_wal: Some("000000010000000000000009".into()),
            last_archived_time: Some(1000),
            ..Default::default()
        };
        assert_eq!(stats.health(1100, 600), ArchiveHealth::Ok);
        assert_eq!(
            stats.health(2000, 600),
            ArchiveHealth::Stale { age: Some(1000) }
        );
        stats.failed_count = 3;
        stats.last_failed_wal = Some("00000001000000000000000A".into());
        stats.last_failed_time = Some(1050);
        let failing = stats.health(1100, 600);
        assert_eq!(
            failing,
            ArchiveHealth::Failing {
                wal: "00000001000000000000000A".into(),
                since: 1050
            }
        );
        stats.last_archived_time = Some(1060);
        assert_eq!(
            stats.health(1100, 600),
            ArchiveHealth::Ok,
            "recovered after a failure"
        );
        assert_eq!(
            ArchiverStats::default().health(5, 600),
            ArchiveHealth::Stale { age: None }
        );
        insta::assert_snapshot!(archive_metrics(&stats, &failing, 1100));
    }

    #[test]
    fn the_drill_reports_its_rpo() {
        let facts = DrillFacts {
            at: 1000,
            backup_id: "20261130T100000".into(),
            heartbeat: Some(940_500_000),
            restore_seconds: 2.5,
        };
        assert_eq!(facts.rpo_seconds(), Some(59.5));
        insta::assert_snapshot!(drill_metrics(&facts, true));
        assert_eq!(
            read_drill_metrics(&drill_metrics(&facts, true)),
            Ok(DrillRecord {
                at: 1000,
                success: true,
                rpo_seconds: Some(59.5)
            })
        );
        let failed = DrillFacts {
            heartbeat: None,
            ..facts
        };
        assert_eq!(
            read_drill_metrics(&drill_metrics(&failed, false)),
            Ok(DrillRecord {
                at: 1000,
                success: false,
                rpo_seconds: None
            })
        );
        assert!(read_drill_metrics("garbage").is_err());
    }
}
