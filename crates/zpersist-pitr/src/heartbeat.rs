//! `pitr-heartbeat`: a row the drill looks for, and the archive's health.

use serde::Serialize;
use zpersist_core::pitr::health::{archive_metrics, ArchiveHealth, ArchiverStats};
use zpersist_core::pitr::PitrContract;
use zpersist_postgres::PgError;

use crate::{cluster, now};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReport {
    pub stats: ArchiverStats,
    pub health: ArchiveHealth,
}

/// Writes the heartbeat (a one-row table holding `now()`), reads
/// `pg_stat_archiver`, writes `pitr-archive.prom`.
pub fn run(contract: &PitrContract) -> Result<HeartbeatReport, PgError> {
    let pg = cluster(contract);
    let table = &contract.heartbeat.table;
    pg.query(&format!(
        "create table if not exists {table} (id int primary key, at timestamptz not null); \
         insert into {table} values (1, now()) on conflict (id) do update set at = excluded.at"
    ))?;
    let row = pg.query(
        "select archived_count, coalesce(last_archived_wal, ''), coalesce(extract(epoch from last_archived_time)::bigint::text, ''), \
         failed_count, coalesce(last_failed_wal, ''), coalesce(extract(epoch from last_failed_time)::bigint::text, '') from pg_stat_archiver",
    )?;
    let stats = parse_archiver(&row).ok_or_else(|| {
        PgError::new(
            "reading pg_stat_archiver",
            pg.label(),
            format!("unexpected answer `{row}`"),
            "is this PostgreSQL 15?",
        )
    })?;
    let at = now();
    let health = stats.health(at, contract.max_archive_age_seconds);
    let path = std::path::Path::new(&contract.metrics_dir).join("pitr-archive.prom");
    zpersist_host::write_atomically(&path, archive_metrics(&stats, &health, at).as_bytes())
        .map_err(|e| {
            PgError::io(
                "writing the archive metrics",
                &path,
                &e,
                "the metrics directory must exist and be writable by the cluster's user",
            )
        })?;
    Ok(HeartbeatReport { stats, health })
}

fn parse_archiver(row: &str) -> Option<ArchiverStats> {
    let f: Vec<&str> = row.trim().split('|').collect();
    if f.len() != 6 {
        return None;
    }
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let time = |s: &str| s.parse::<i64>().ok();
    Some(ArchiverStats {
        archived_count: f[0].parse().ok()?,
        last_archived_wal: text(f[1]),
        last_archived_time: time(f[2]),
        failed_count: f[3].parse().ok()?,
        last_failed_wal: text(f[4]),
        last_failed_time: time(f[5]),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pg_stat_archiver_as_psql_prints_it() {
        let s = super::parse_archiver(
            "4|000000010000000000000008|1796047488|1|00000001000000000000000A|1796047400",
        )
        .unwrap();
        assert_eq!(s.archived_count, 4);
        assert_eq!(s.last_failed_time, Some(1_796_047_400));
        let empty = super::parse_archiver("0|||0||").unwrap();
        assert_eq!(empty.last_archived_wal, None);
    }
}
