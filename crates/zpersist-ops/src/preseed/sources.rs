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

/// Asks every source for its restore points. A source offering a point
/// dated in the future by this host's clock fails
/// (`zpersist_core::preseed::refuse_future`).
pub fn ask_all(plan: &PreseedPlan, zfs: &Zfs) -> Vec<SourceAnswer> {
    ask(plan, zfs, None)
}

/// The index of the source labelled `label` (`local`, `replica:nas`,
/// `restic:b2`, `pitr`), or what to say: no such source, and the labels
/// there are.
pub fn source_index(plan: &PreseedPlan, label: &str) -> Result<usize, (String, String)> {
    plan.sources
        .iter()
        .position(|s| s.label() == label)
        .ok_or_else(|| {
            let labels: Vec<String> = plan.sources.iter().map(|s| s.label()).collect();
            (
                format!(
                    "{}: no source is labelled `{label}`; nothing was touched",
                    plan.service
                ),
                format!("give one of {}", labels.join(", ")),
            )
        })
}

/// [`ask_all`], or only the source at `only`: the others are not asked
/// (an unreachable replica does not hold up a restore from a local
/// snapshot) and answer no points.
pub fn ask(plan: &PreseedPlan, zfs: &Zfs, only: Option<usize>) -> Vec<SourceAnswer> {
    let timeout = Duration::from_secs(plan.timeout_seconds);
    let answers = plan
        .sources
        .iter()
        .enumerate()
        .map(|(index, source)| {
            if only.is_some_and(|only| only != index) {
                return SourceAnswer::Points { points: Vec::new() };
            }
            let answer = match source {
                SourceSpec::Replica(r) => replica_points(plan, r, zfs, timeout, index),
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
        .collect();
    // Read after every source answered: a point dated "now" while asking
    // is never ahead of it.
    zpersist_core::preseed::refuse_future(answers, zpersist_host::clock::now())
}

/// A replica's snapshots as restore points, each dated by the data from
/// this host it holds (`zpersist_core::replication::replica_points`:
/// matched by guid to this host's snapshots of the dataset, as
/// replication-lag does), never by a snapshot the target made itself.
fn replica_points(
    plan: &PreseedPlan,
    r: &ReplicaSource,
    zfs: &Zfs,
    timeout: Duration,
    index: usize,
) -> Result<Vec<RestorePoint>, String> {
    let held = Replica::of(r, timeout).snapshots(zfs)?;
    let local = zfs
        .snapshots(&plan.dataset)
        .map_err(|e| {
            format!(
                "cannot list this host's snapshots of {} to tell which of the replica's came from here: {e}",
                plan.dataset
            )
        })?
        .unwrap_or_default();
    // The name syncoid puts in its sync snapshots (`hostname`).
    let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    Ok(
        zpersist_core::replication::replica_points(&local, &held, this_host.as_deref())
            .into_iter()
            .map(|p| RestorePoint {
                source: index,
                label: format!("replica:{}:{}@{}", r.target, r.dataset, p.snapshot.name),
                created: p.data_from,
                reference: format!("{}@{}", r.dataset, p.snapshot.name),
            })
            .collect(),
    )
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

/// The PITR archive's one restore point: its newest base backup (on the
/// newest timeline's history), rolled forward through every archived
/// segment up to the first gap, dated by the last transaction those hold
/// (the data's age, never "now": an archive whose archiving broke long ago
/// loses to a newer snapshot). An unreachable repository, or WAL without a
/// base backup, is a failed source, not "nothing to restore".
fn pitr_points(
    source: &zpersist_core::preseed::PitrSource,
    index: usize,
) -> Result<Vec<RestorePoint>, String> {
    let contract = pitr_contract(source)?;
    let newest = crate::pitr::restore::newest_point(&contract).map_err(|e| {
        if e.help.is_empty() {
            e.to_string()
        } else {
            format!("{e}; {}", e.help)
        }
    })?;
    Ok(newest
        .map(|point| RestorePoint {
            source: index,
            label: format!("pitr:{}", point.backup.id),
            created: point.dated,
            reference: point.backup.id,
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
    let mut options = crate::pitr::restore::Options::new(&contract, Path::new(&p.contract));
    options.start = true;
    options.archive = true;
    let into = root.join(&p.data_dir);
    crate::pitr::restore::restore(
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
/// `zfs send` where the snapshot is (`here` is this host's zfs); `raw`:
/// `zfs send -w`, for an encrypted dataset (docs/encryption.md).
pub fn send_command(
    plan: &PreseedPlan,
    point: &RestorePoint,
    here: &Zfs,
    raw: bool,
) -> Option<Command> {
    let options: &[&str] = if raw { &["-w"] } else { &[] };
    match &plan.sources[point.source] {
        SourceSpec::Replica(r) => Some(
            Replica::of(r, Duration::from_secs(plan.timeout_seconds))
                .zfs(here)
                .send(&point.reference, options),
        ),
        SourceSpec::Local(_) => Some(here.send(&point.reference, options)),
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
