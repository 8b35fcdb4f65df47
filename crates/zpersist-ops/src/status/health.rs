//! The host-wide facts of `zpersist status`: every pool's health and last
//! scrub (zpersist-zfs's `pool`, two bounded zpool calls), and PostgreSQL's
//! recovery (pitr.json: `pg_stat_archiver` through zpersist-postgres, the
//! newest base backup in the repository, the last drill's textfile), each
//! read only and bounded, judged by zpersist-core.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use zpersist_core::pitr::health::read_drill_metrics;
use zpersist_core::pitr::PitrContract;
use zpersist_core::status::pitr::{
    evaluate_pitr, BaseBackupRef, PitrInputs, PitrObjectives, PitrStatus,
};
use zpersist_core::status::pools::{evaluate_pool, PoolObjectives, PoolStatus};
use zpersist_postgres::PgError;
use zpersist_zfs::pool::Zpool;

/// Each of `pools` with its objective, judged.
pub fn pools(
    pools: &BTreeMap<String, PoolObjectives>,
    timeout: Duration,
    now: i64,
) -> Vec<PoolStatus> {
    let names: Vec<String> = pools.keys().cloned().collect();
    let read = Zpool::from_path()
        .map(|z| z.with_timeout(timeout))
        .and_then(|z| z.pools(&names));
    pools
        .iter()
        .map(|(name, objectives)| {
            let facts = match &read {
                Ok(found) => match found.get(name).cloned().flatten() {
                    Some(f) => Ok(f),
                    None => Err((
                        "it is not imported".to_string(),
                        format!("`zpool import` lists the pools that can be imported; `zpool import {name}`"),
                    )),
                },
                Err(e) => Err((
                    e.message(),
                    format!("run `{}` and see what zpool says", e.argv.join(" ")),
                )),
            };
            evaluate_pool(name, facts, objectives.clone(), now)
        })
        .collect()
}

fn unread(e: PgError) -> (String, String) {
    (format!("{} ({}): {}", e.what, e.on, e.message), e.help)
}

/// PostgreSQL's recovery as the PITR contract describes it.
pub fn postgresql(
    contract: &PitrContract,
    objectives: Option<&PitrObjectives>,
    timeout: Duration,
    now: i64,
) -> PitrStatus {
    let mut objectives = objectives.cloned().unwrap_or_default();
    if objectives.max_archive_age_seconds.is_none() {
        objectives.max_archive_age_seconds = u64::try_from(contract.max_archive_age_seconds).ok();
    }
    let mut pg = crate::pitr::cluster(contract);
    pg.timeout = pg.timeout.min(timeout);
    let archiver = pg.archiver_stats().map_err(unread);
    let listed = match crate::pitr::backend(contract) {
        crate::pitr::Backend::Local(repo) => {
            repo.check_reachable().and_then(|()| repo.list_backups())
        }
        crate::pitr::Backend::S3(mut barman) => {
            barman.timeout = barman.timeout.min(timeout);
            barman.list()
        }
    };
    let base_backup = listed.map_err(unread).map(|backups| {
        backups
            .into_iter()
            .max_by_key(|b| b.end_time)
            .map(|b| BaseBackupRef {
                id: b.id,
                end_time: b.end_time,
            })
    });
    let file = Path::new(&contract.metrics_dir).join("pitr-drill.prom");
    let drill = match std::fs::read_to_string(&file) {
        Ok(text) => read_drill_metrics(&text).map(Some).map_err(|e| {
            (
                format!("{}: {e}", file.display()),
                "pitr-drill writes it at the end of each drill: `systemctl start zpersist-pitr-drill`".into(),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err((
            format!("cannot read {}: {e}", file.display()),
            "check the metrics directory's permissions".into(),
        )),
    };
    evaluate_pitr(PitrInputs {
        repository: format!("the repository {}", contract.repository_label()),
        archiver,
        base_backup,
        drill,
        objectives,
        now,
    })
}
