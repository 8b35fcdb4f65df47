//! `pitr-drill`: restores the newest state into a scratch directory for
//! real, reads the newest heartbeat from it and reports the recovery point
//! objective that really holds.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use zpersist_core::pitr::health::{drill_metrics, DrillFacts};
use zpersist_core::pitr::{PitrContract, Target};
use zpersist_postgres::files::empty_dir;
use zpersist_postgres::PgError;

use crate::restore::{restore_running, Options, RestoreReport};
use crate::{now, Failure};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub restore: RestoreReport,
    pub facts: DrillFacts,
    pub rpo_seconds: Option<f64>,
}

pub fn run(contract: &PitrContract, contract_path: &Path) -> Result<DrillReport, Failure> {
    let scratch = Path::new(&contract.drill.scratch_dir);
    let started = Instant::now();
    let at = now();
    let metrics = Path::new(&contract.metrics_dir).join("pitr-drill.prom");
    let result = (|| {
        // The scratch directory is the drill's own: a killed drill's
        // leftovers go first.
        empty_dir(scratch)?;
        let into = scratch.join("data");
        let mut options = Options::new(contract, contract_path);
        options.start = true;
        options.archive = false;
        let (restore, running) = restore_running(contract, &Target::Latest, &into, &options)?;
        let running = running.expect("started");
        let table = &contract.heartbeat.table;
        let read = running.pg.query(&format!(
            "select (extract(epoch from at) * 1000000)::bigint from {table} where id = 1"
        ));
        let stopped = running.stop();
        let heartbeat = match read {
            Ok(text) => text.trim().parse::<i64>().ok(),
            Err(e) => {
                return Err(Failure::failed(PgError::new("reading the heartbeat from the restored cluster", into.display().to_string(), e.message, "is pitr-heartbeat's timer running? The restored cluster has no heartbeat table or row")));
            }
        };
        stopped?;
        let facts = DrillFacts {
            at,
            backup_id: restore.backup.id.clone(),
            heartbeat,
            restore_seconds: started.elapsed().as_secs_f64(),
        };
        if heartbeat.is_none() {
            return Err(Failure::failed(PgError::new(
                "reading the heartbeat from the restored cluster",
                into.display().to_string(),
                "no heartbeat row",
                "is pitr-heartbeat's timer running?",
            )));
        }
        Ok(DrillReport {
            rpo_seconds: facts.rpo_seconds(),
            restore,
            facts,
        })
    })();
    let _ = empty_dir(scratch);
    let (facts, success) = match &result {
        Ok(report) => (report.facts.clone(), true),
        Err(_) => (
            DrillFacts {
                at,
                backup_id: String::new(),
                heartbeat: None,
                restore_seconds: started.elapsed().as_secs_f64(),
            },
            false,
        ),
    };
    zpersist_host::write_atomically(&metrics, drill_metrics(&facts, success).as_bytes()).map_err(
        |e| {
            Failure::failed(PgError::io(
                "writing the drill metrics",
                &metrics,
                &e,
                "the metrics directory must exist and be writable by the cluster's user",
            ))
        },
    )?;
    result
}
