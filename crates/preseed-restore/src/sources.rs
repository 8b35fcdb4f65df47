//! Each kind of source: where its restore points are, and how one of them
//! fills the sibling dataset.

use std::path::Path;
use std::time::Duration;

use zpersist_core::preseed::{PreseedPlan, ReplicaSource, RestorePoint, SourceAnswer, SourceSpec};
use zpersist_core::replication::Snapshot;
use zpersist_process::{Command, Location, SshTarget};
use zpersist_restic::Repository;
use zpersist_zfs::Zfs;

/// Where a replica's copy lives: this host, or a pinned ssh target.
pub struct Replica<'a> {
    source: &'a ReplicaSource,
    location: Location,
}

impl<'a> Replica<'a> {
    pub fn of(source: &'a ReplicaSource, timeout: Duration) -> Replica<'a> {
        let location = match &source.host {
            None => Location::Local,
            Some(host) => Location::Ssh(SshTarget {
                host: host.clone(),
                port: source.port.unwrap_or(22),
                user: source.user.clone().unwrap_or_default(),
                identity_file: source.ssh_key.clone().unwrap_or_default(),
                known_hosts: source.known_hosts.clone().unwrap_or_default(),
                timeout,
            }),
        };
        Replica { source, location }
    }

    /// The zfs where the replica is: this host's, or the one over ssh.
    fn zfs(&self, here: &Zfs) -> Zfs {
        match &self.location {
            Location::Local => here.clone(),
            remote => Zfs::at(remote.clone()).unwrap_or_else(|_| here.clone()),
        }
    }

    /// The copy's snapshots; an empty list when the copy does not exist but
    /// its pool does (never replicated), an error when the pool is missing
    /// or the host cannot be asked (that is not "no data").
    fn snapshots(&self, here: &Zfs) -> Result<Vec<Snapshot>, String> {
        let dataset = &self.source.dataset;
        let zfs = self.zfs(here);
        match zfs.snapshots(dataset).map_err(|e| e.to_string())? {
            Some(snapshots) => Ok(snapshots),
            None => {
                let pool = zpersist_core::name::pool_of(dataset).to_string();
                match zfs.exists(&pool) {
                    Ok(true) => Ok(Vec::new()),
                    Ok(false) => Err(format!(
                        "its pool {pool} is not there (on {}): import it, or fix the target",
                        self.location
                    )),
                    Err(e) => Err(format!(
                        "its pool {pool} is not there ({e}): import it, or fix the target"
                    )),
                }
            }
        }
    }

    /// `zfs send SNAPSHOT` as argv, where the replica is.
    pub fn send_argv(&self, snapshot: &str) -> Vec<String> {
        self.location
            .argv_for(&["zfs", "send", snapshot])
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// Asks every source for its restore points.
pub fn ask_all(plan: &PreseedPlan, zfs: &Zfs) -> Vec<SourceAnswer> {
    let timeout = Duration::from_secs(plan.timeout_seconds);
    plan.sources
        .iter()
        .enumerate()
        .map(|(index, source)| {
            let answer = match source {
                SourceSpec::Replica(r) => Replica::of(r, timeout).snapshots(zfs).map(|snapshots| {
                    snapshots
                        .into_iter()
                        .map(|s| RestorePoint {
                            source: index,
                            label: format!("replica:{}:{}@{}", r.target, r.dataset, s.name),
                            created: s.creation,
                            reference: format!("{}@{}", r.dataset, s.name),
                        })
                        .collect()
                }),
                SourceSpec::Local(_) => local_points(plan, zfs, index),
                SourceSpec::Pitr(p) => pitr_points(p, index),
                SourceSpec::Restic(r) => restic(r, plan)
                    .snapshots()
                    .map(|snapshots| {
                        snapshots
                            .into_iter()
                            .map(|s| RestorePoint {
                                source: index,
                                label: format!("restic:{}:{}", r.name, s.short_id),
                                created: s.time,
                                reference: s.id,
                            })
                            .collect()
                    })
                    .map_err(|e| e.to_string()),
            };
            match answer {
                Ok(points) => SourceAnswer::Points { points },
                Err(error) => SourceAnswer::Failed { error },
            }
        })
        .collect()
}

/// This dataset's own snapshots (not a child's), any naming. Which of them
/// hold data is found once one is received: the dataset's `referenced` is
/// no guide (frees are accounted a few seconds late, and a tiny file weighs
/// no more than an empty directory).
fn local_points(plan: &PreseedPlan, zfs: &Zfs, index: usize) -> Result<Vec<RestorePoint>, String> {
    let snapshots = zfs
        .snapshots(&plan.dataset)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    Ok(snapshots
        .into_iter()
        .map(|s| RestorePoint {
            source: index,
            label: format!("local:{}@{}", plan.dataset, s.name),
            created: s.creation,
            reference: format!("{}@{}", plan.dataset, s.name),
        })
        .collect())
}

/// The PITR archive's one restore point: its newest base backup, rolled
/// forward through every archived segment, so it is as fresh as the last
/// archived transaction (dated now: the archive follows the cluster).
fn pitr_points(
    source: &zpersist_core::preseed::PitrSource,
    index: usize,
) -> Result<Vec<RestorePoint>, String> {
    let contract = pitr_contract(source)?;
    let backups = match zpersist_pitr::backend(&contract) {
        zpersist_pitr::Backend::Local(repo) => {
            if !repo.dir.is_dir() {
                return Err(format!(
                    "the PITR repository {} is not there: mount its dataset",
                    repo.dir.display()
                ));
            }
            repo.list_backups()
        }
        zpersist_pitr::Backend::S3(barman) => barman.list(),
    }
    .map_err(|e| e.to_string())?;
    Ok(backups
        .iter()
        .max_by_key(|b| b.end_time)
        .map(|newest| RestorePoint {
            source: index,
            label: format!("pitr:{}", newest.id),
            created: zpersist_pitr::now(),
            reference: newest.id.clone(),
        })
        .into_iter()
        .collect())
}

/// The PITR contract through the one contract loader (strict, versioned).
fn pitr_contract(
    source: &zpersist_core::preseed::PitrSource,
) -> Result<zpersist_core::pitr::PitrContract, String> {
    zpersist_host::read_contract(Path::new(&source.contract)).map_err(|problems| {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        problems.join("; ")
    })
}

/// Restores the archive's latest into `root/<dataDir>` (the sibling's
/// private mount), recovered and cleanly stopped: the provenance.
pub fn pitr_into(plan: &PreseedPlan, point: &RestorePoint, root: &Path) -> Result<String, String> {
    let SourceSpec::Pitr(p) = &plan.sources[point.source] else {
        unreachable!("pitr_into is only called for pitr points");
    };
    let contract = pitr_contract(p)?;
    let mut options = zpersist_pitr::restore::Options::new(&contract, Path::new(&p.contract));
    options.start = true;
    options.archive = true;
    let into = root.join(&p.data_dir);
    zpersist_pitr::restore::restore(
        &contract,
        &zpersist_core::pitr::Target::Latest,
        &into,
        &options,
    )
    .map(|report| report.provenance)
    .map_err(|failure| failure.error.to_string())
}

pub fn restic<'a>(
    source: &'a zpersist_core::preseed::ResticSource,
    plan: &PreseedPlan,
) -> Repository<'a> {
    Repository {
        source,
        timeout: Duration::from_secs(plan.timeout_seconds),
        // The unit's TimeoutStartSec bounds a whole restore.
        restore_timeout: Duration::from_secs(86_400),
    }
}

/// The sending side for a snapshot point (replica or local), not run yet:
/// `zfs send` where the snapshot is (`here` is this host's zfs).
pub fn send_command(plan: &PreseedPlan, point: &RestorePoint, here: &Zfs) -> Option<Command> {
    match &plan.sources[point.source] {
        SourceSpec::Replica(r) => Some(
            Replica::of(r, Duration::from_secs(plan.timeout_seconds))
                .zfs(here)
                .send(&point.reference, &[]),
        ),
        SourceSpec::Local(_) => Some(here.send(&point.reference, &[])),
        SourceSpec::Restic(_) | SourceSpec::Pitr(_) => None,
    }
}

/// The zfs where a snapshot point's snapshot is (replica or local).
pub fn point_zfs(plan: &PreseedPlan, point: &RestorePoint, here: &Zfs) -> Option<Zfs> {
    match &plan.sources[point.source] {
        SourceSpec::Replica(r) => {
            Some(Replica::of(r, Duration::from_secs(plan.timeout_seconds)).zfs(here))
        }
        SourceSpec::Local(_) => Some(here.clone()),
        SourceSpec::Restic(_) | SourceSpec::Pitr(_) => None,
    }
}

/// The argv of the sending side for a snapshot point (replica or local).
pub fn send_argv(plan: &PreseedPlan, point: &RestorePoint) -> Option<Vec<String>> {
    match &plan.sources[point.source] {
        SourceSpec::Replica(r) => Some(
            Replica::of(r, Duration::from_secs(plan.timeout_seconds)).send_argv(&point.reference),
        ),
        SourceSpec::Local(_) => Some(vec!["zfs".into(), "send".into(), point.reference.clone()]),
        SourceSpec::Restic(_) | SourceSpec::Pitr(_) => None,
    }
}

/// Restores a restic point into `root` (the sibling's private mount).
pub fn restic_into(plan: &PreseedPlan, point: &RestorePoint, root: &Path) -> Result<(), String> {
    let SourceSpec::Restic(r) = &plan.sources[point.source] else {
        unreachable!("restic_into is only called for restic points");
    };
    restic(r, plan)
        .restore_into(&point.reference, root)
        .map_err(|e| e.to_string())
}
