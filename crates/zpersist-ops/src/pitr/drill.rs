//! `pitr-drill`: restores the newest state into a scratch directory for
//! real, reads the newest heartbeat from it and reports the recovery point
//! objective that really holds.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use zpersist_core::pitr::health::{drill_metrics, DrillFacts};
use zpersist_core::pitr::{PitrContract, Target};
use zpersist_postgres::files::empty_dir;
use zpersist_postgres::PgError;

use crate::pitr::restore::{restore_running, Options, RestoreReport};
use crate::pitr::{now, Failure};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub restore: RestoreReport,
    pub facts: DrillFacts,
    pub rpo_seconds: Option<f64>,
}

/// The file that marks `data/` in the scratch directory as a drill's
/// restore (written before `data/` is made): only a marked `data/` is ever
/// removed, a killed drill's included.
pub const MARKER: &str = ".zpersist-pitr-drill";

/// Removes a previous drill's restore (`data/`, marked by [`MARKER`]),
/// stopping a server a killed drill left running on it; refuses (bad
/// input) a `data/` the drill did not make. Nothing else in the scratch
/// directory is touched.
fn remove_own(contract: &PitrContract, scratch: &Path) -> Result<(), Failure> {
    let into = scratch.join("data");
    let marker = scratch.join(MARKER);
    let data_there = fs::symlink_metadata(&into).is_ok();
    if data_there && fs::symlink_metadata(&marker).is_err() {
        return Err(Failure::bad_input(PgError::new(
            "preparing the drill",
            into.display().to_string(),
            format!("it exists and was not made by a drill (no {MARKER} beside it): the drill removes only its own restores"),
            "move it away or remove it yourself, or point zpersist.postgresql.pitr.drill.scratchDir at a directory of the drill's own",
        )));
    }
    if data_there {
        if into.join("postmaster.pid").exists() {
            let pg = crate::pitr::cluster(contract);
            let _ = pg.stop(
                &into,
                Duration::from_secs(contract.timeouts.command_seconds),
            );
        }
        if fs::symlink_metadata(&into).is_ok_and(|m| m.is_dir()) {
            empty_dir(&into)?;
            fs::remove_dir(&into)
        } else {
            fs::remove_file(&into)
        }
        .map_err(|e| {
            Failure::failed(PgError::io(
                "removing the previous drill's restore",
                &into,
                &e,
                "check its permissions",
            ))
        })?;
    }
    match fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Failure::failed(PgError::io(
            "removing the drill's marker",
            &marker,
            &e,
            "check the scratch directory's permissions",
        ))),
        _ => Ok(()),
    }
}

pub fn run(contract: &PitrContract, contract_path: &Path) -> Result<DrillReport, Failure> {
    let scratch = Path::new(&contract.drill.scratch_dir);
    let started = Instant::now();
    let at = now();
    let metrics = Path::new(&contract.metrics_dir).join("pitr-drill.prom");
    // A killed drill's restore goes first; anything else there is not
    // the drill's, and stops it before it touches anything.
    remove_own(contract, scratch)?;
    let result = (|| {
        let into = scratch.join("data");
        let marker = scratch.join(MARKER);
        fs::write(
            &marker,
            "zpersist pitr-drill: data/ beside this file is a drill's restore; the next drill removes it\n",
        )
        .map_err(|e| {
            Failure::failed(PgError::io(
                "preparing the drill",
                &marker,
                &e,
                "the scratch directory (zpersist.postgresql.pitr.drill.scratchDir) must exist and be writable by the cluster's user",
            ))
        })?;
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
        if let Some(first) = restore.rejected.first() {
            return Err(Failure::failed(PgError::new(
                "drilling a restore",
                contract.repository_label(),
                format!(
                    "the newest base backup failed its verification, so the drill restored from older backup {}: {first}",
                    restore.backup.id
                ),
                "the repository holds a damaged backup: take a new base backup (pitr-base-backup) and remove the damaged one by hand, then drill again",
            )));
        }
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
    let cleaned = remove_own(contract, scratch);
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
    let report = result?;
    cleaned?;
    Ok(report)
}

impl DrillReport {
    /// The report as a person reads it (pitr-drill's and `zpersist pitr
    /// drill`'s text).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "drill: {} in {:.1} s",
            self.restore.provenance, self.facts.restore_seconds
        )];
        if let Some(rpo) = self.rpo_seconds {
            lines.push(format!(
                "recovery point objective: {rpo:.1} s (now minus the newest heartbeat restored)"
            ));
        }
        lines
    }
}
