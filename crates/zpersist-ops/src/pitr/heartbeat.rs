//! `pitr-heartbeat`: a row the drill looks for, and the archive's health.

use serde::Serialize;
use zpersist_core::pitr::health::{archive_metrics, ArchiveHealth, ArchiverStats};
use zpersist_core::pitr::PitrContract;
use zpersist_postgres::PgError;

use crate::pitr::{cluster, now};

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
    let stats = pg.archiver_stats()?;
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
