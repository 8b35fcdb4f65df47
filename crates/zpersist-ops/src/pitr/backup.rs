//! `pitr-base-backup`: a verified base backup, published atomically, then
//! retention.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use zpersist_core::pitr::label::{end_segment, manifest_wal_end, parse_backup_label};
use zpersist_core::pitr::retention::prunable_wal;
use zpersist_core::pitr::target::backup_id;
use zpersist_core::pitr::{retention, BaseBackup, PitrContract, Repository};
use zpersist_postgres::cluster::Pg;
use zpersist_postgres::local::LocalRepository;
use zpersist_postgres::PgError;

use crate::pitr::{backend, cluster, now, Backend, Failure};

/// What a run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    pub id: String,
    pub seconds: f64,
    /// What was checked before the backup was published.
    pub verified: String,
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    pub wal_removed: usize,
}

/// The lock every pitr-base-backup of one repository takes first, so that
/// the timer's run and a manual one never overlap: in the local
/// repository itself, or for S3 (barman-cloud's bucket has no lock of its
/// own) in the metrics directory, which every run of this host writes.
pub fn lock_path(contract: &PitrContract) -> camino::Utf8PathBuf {
    match &contract.repository {
        Repository::Local { dir, .. } => camino::Utf8PathBuf::from(format!("{dir}/.zpersist-lock")),
        Repository::S3(_) => {
            camino::Utf8PathBuf::from(format!("{}/base-backup.lock", contract.metrics_dir))
        }
    }
}

/// Takes [`lock_path`], waiting up to the contract's command timeout for a
/// run holding it; then fails naming the holder (pid, command, since).
fn lock(contract: &PitrContract) -> Result<zpersist_host::RunLock, PgError> {
    let path = lock_path(contract);
    let wait = Duration::from_secs(contract.timeouts.command_seconds);
    zpersist_host::lock_within(path.clone(), &mut std::io::stderr(), wait).map_err(|e| {
        PgError::new(
            "locking the repository for a base backup",
            path.to_string(),
            e.to_string(),
            "another pitr-base-backup of this repository runs (the timer's or a manual one); wait for it, or stop it if it is stuck",
        )
    })
}

/// The resource lock of the local repository's dataset, when it has one
/// (zpersist_host::resource_lock): no other mover changes it while a base
/// backup writes into it and prunes it.
fn lock_dataset(
    contract: &PitrContract,
) -> Result<Option<zpersist_host::resource_lock::DatasetLock>, PgError> {
    let Repository::Local {
        dataset: Some(dataset),
        ..
    } = &contract.repository
    else {
        return Ok(None);
    };
    zpersist_host::resource_lock::lock_datasets(
        "pitr-base-backup",
        &[dataset],
        Duration::from_secs(contract.timeouts.command_seconds),
        &mut std::io::stderr(),
    )
    .map(Some)
    .map_err(|f| PgError::new("locking the repository's dataset", dataset, f.error, f.help))
}

pub fn run(contract: &PitrContract) -> Result<BackupReport, Failure> {
    let pg = cluster(contract);
    let limit = Duration::from_secs(contract.timeouts.base_backup_seconds);
    let started = Instant::now();
    match backend(contract) {
        Backend::Local(repo) => {
            repo.open().map_err(Failure::failed)?;
            let _lock = lock(contract)?;
            let _dataset = lock_dataset(contract)?;
            let leftovers = repo.remove_temporaries()?;
            if leftovers > 0 {
                eprintln!("removed {leftovers} leftover(s) of an interrupted run");
            }
            let backup = take_local(
                &pg,
                &repo,
                limit,
                Duration::from_secs(contract.timeouts.command_seconds),
            )?;
            let plan = retention(&repo.list_backups()?, contract.retention.policy(), now());
            for id in &plan.remove {
                repo.remove_backup(id)?;
            }
            let mut wal_removed = 0;
            if let Some(horizon) = &plan.wal_horizon {
                let names = repo.list_wal()?;
                let prunable = prunable_wal(&names, horizon);
                wal_removed = prunable.len();
                repo.remove_wal(&prunable)?;
            }
            Ok(BackupReport {
                id: backup.id,
                seconds: started.elapsed().as_secs_f64(),
                verified: "pg_verifybackup: every file against the manifest's CRC-32C checksums, and the WAL from its start to its end parsed from the archive".into(),
                kept: plan.keep,
                removed: plan.remove,
                wal_removed,
            })
        }
        Backend::S3(barman) => {
            let _lock = lock(contract)?;
            let before: Vec<String> = barman.list()?.into_iter().map(|b| b.id).collect();
            barman.backup(&pg, limit)?;
            let after = barman.list()?;
            let new = after
                .iter()
                .filter(|b| !before.contains(&b.id))
                .max_by_key(|b| b.end_time)
                .ok_or_else(|| PgError::new("checking the new base backup", contract.repository_label(), "barman-cloud-backup succeeded but barman-cloud-backup-list shows no new completed backup", "look at the bucket; run pitr-base-backup again"))?
                .id
                .clone();
            let policy = contract.retention.policy().barman();
            barman.delete_by_policy(&policy)?;
            let kept: Vec<String> = barman.list()?.into_iter().map(|b| b.id).collect();
            let removed = after
                .iter()
                .map(|b| b.id.clone())
                .filter(|id| !kept.contains(id))
                .collect();
            Ok(BackupReport {
                id: new,
                seconds: started.elapsed().as_secs_f64(),
                verified: "barman-cloud-backup-list: the backup completed (status DONE)".into(),
                kept,
                removed,
                wal_removed: 0,
            })
        }
    }
}

fn take_local(
    pg: &Pg,
    repo: &LocalRepository,
    limit: Duration,
    wait: Duration,
) -> Result<BaseBackup, PgError> {
    let start_time = now();
    let id = backup_id(start_time);
    if repo.base_dir().join(&id).exists() {
        return Err(PgError::new(
            "taking a base backup",
            repo.base_dir().join(&id).display().to_string(),
            "a backup with this id (the start second) exists",
            "run it again in a second",
        ));
    }
    let staging = repo.staging(&id);
    let result = (|| {
        let data = repo.create_staging(&id)?;
        pg.base_backup(&data, limit)?;
        let end_micros = crate::pitr::now_micros();
        let end_time = end_micros.div_euclid(1_000_000) + 1;
        let read = |name: &str| {
            let path = data.join(name);
            fs::read_to_string(&path).map_err(|e| {
                PgError::io(
                    "reading the new backup",
                    &path,
                    &e,
                    "pg_basebackup wrote an incomplete backup; run it again",
                )
            })
        };
        let bad = |what: &str, e: String| {
            PgError::new(
                "reading the new backup",
                data.join(what).display().to_string(),
                e,
                "pg_basebackup wrote an unexpected file; is this PostgreSQL 13 or newer?",
            )
        };
        let (start_wal, timeline) =
            parse_backup_label(&read("backup_label")?).map_err(|e| bad("backup_label", e))?;
        // Overlapped, as it is safe: the checksums of every file need only
        // the finished backup, so they are checked while the backup's last
        // segment is archived; the WAL is parsed from the archive once it
        // is there. Nothing is published unless both pass.
        let (end_wal, segment_size, end_lsn) = std::thread::scope(|scope| {
            let files = scope.spawn(|| pg.verify_backup_files(&data, limit));
            let archived = (|| {
                let (end_timeline, end_lsn) = manifest_wal_end(&read("backup_manifest")?)
                    .map_err(|e| bad("backup_manifest", e))?;
                let segment_size = wal_segment_size(pg)?;
                let end_wal = end_segment(end_timeline, end_lsn, segment_size);
                wait_archived(repo, &end_wal, wait)?;
                Ok::<_, PgError>((end_wal, segment_size, end_lsn))
            })();
            let files = files.join().unwrap_or_else(|_| {
                Err(PgError::new(
                    "verifying a base backup",
                    data.display().to_string(),
                    "the verification thread panicked",
                    "report this as a bug; the backup was not published",
                ))
            });
            files.and(archived)
        })?;
        pg.verify_backup_wal(&data, &repo.wal_dir(), limit)?;
        let backup = BaseBackup {
            id: id.clone(),
            start_time,
            end_time,
            start_wal,
            end_wal,
            timeline,
            end_micros: Some(end_micros),
            end_lsn: Some(end_lsn),
            segment_size,
        };
        repo.publish(&backup)?;
        Ok(backup)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// The cluster's WAL segment size (bytes).
fn wal_segment_size(pg: &Pg) -> Result<u64, PgError> {
    pg.query("select setting from pg_settings where name = 'wal_segment_size'")?
        .trim()
        .parse()
        .map_err(|_| {
            PgError::new(
                "reading wal_segment_size",
                pg.label(),
                "not a number",
                "is this PostgreSQL 11 or newer?",
            )
        })
}

/// pg_basebackup returns once the backup's last segment is handed to the
/// archiver; wait (bounded) until it is in the repository.
fn wait_archived(repo: &LocalRepository, segment: &str, wait: Duration) -> Result<(), PgError> {
    let path = repo.wal_dir().join(segment);
    let deadline = Instant::now() + wait;
    while !Path::new(&path).exists() {
        if Instant::now() >= deadline {
            return Err(PgError::new(
                "waiting for the backup's last WAL segment to be archived",
                path.display().to_string(),
                format!("not archived within {} s", wait.as_secs()),
                "archiving is failing or stuck: pg_stat_archiver and the server log say why (pitr-heartbeat reports it too)",
            ));
        }
        // The archiver copies a segment in tens of milliseconds: a short
        // poll keeps the backup from waiting longer than it.
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
