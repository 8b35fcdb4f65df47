//! The snapshots of a dataset here and on a target: the same listing
//! (zpersist-zfs's argv and parser) run locally or over ssh (zpersist-ssh).

use crate::config::Location;
use zpersist_core::replication::Snapshot;
use zpersist_ssh::{SshFailure, SshTarget};
use zpersist_zfs::{parse_snapshots, says_dataset_missing, snapshots_argv, Zfs, ZfsError};

/// The local snapshots of `dataset`; a missing dataset is an error (there
/// is nothing to replicate). `zfs` is `Zfs::from_path()`, found once: when
/// it failed, every check fails with its message.
pub fn local(zfs: &Result<Zfs, ZfsError>, dataset: &str) -> Result<Vec<Snapshot>, String> {
    let zfs = zfs.as_ref().map_err(|e| e.message.clone())?;
    match zfs.snapshots(dataset) {
        Ok(Some(snapshots)) => Ok(snapshots),
        Ok(None) => Err(format!("{dataset} does not exist on this host")),
        Err(e) => Err(format!(
            "listing the snapshots of {dataset} on this host failed: {}",
            e.message
        )),
    }
}

/// The snapshots of `dataset` on a target: `root` is the target's dataset
/// (below which `dataset` lies), `zfs` this host's (see [`local`]).
pub fn on_target(
    zfs: &Result<Zfs, ZfsError>,
    location: &Location,
    root: &str,
    dataset: &str,
) -> Result<Vec<Snapshot>, String> {
    match location {
        Location::Local => on_local_target(zfs, root, dataset),
        Location::Ssh(target) => over_ssh(target, dataset),
    }
}

/// The snapshots of `dataset` in a pool on this host; none when it does not
/// exist (never replicated) while the target root does. A missing root
/// (the backup pool is not imported, the USB disk not plugged in) fails the
/// check instead of passing for "never replicated".
fn on_local_target(
    zfs: &Result<Zfs, ZfsError>,
    root: &str,
    dataset: &str,
) -> Result<Vec<Snapshot>, String> {
    let zfs = zfs.as_ref().map_err(|e| e.message.clone())?;
    let failed = |e: ZfsError| {
        format!(
            "listing the snapshots of {dataset} on this host failed: {}",
            e.message
        )
    };
    match zfs.snapshots(dataset).map_err(failed)? {
        Some(snapshots) => Ok(snapshots),
        None => match zfs.run(&["list", "-H", "-o", "name", root]) {
            Ok(_) => Ok(Vec::new()),
            Err(e) if says_dataset_missing(&e.message) => Err(format!(
                "the local target {root} does not exist: import its pool (is the disk attached?) or create it"
            )),
            Err(e) => Err(failed(e)),
        },
    }
}

/// The snapshots of `dataset` on another host; none when the dataset does
/// not exist there (never replicated).
fn over_ssh(target: &SshTarget, dataset: &str) -> Result<Vec<Snapshot>, String> {
    match target.run(&snapshots_argv(dataset)) {
        Ok(output) => parse_snapshots(dataset, &output),
        Err(e) if says_dataset_missing(e.stderr()) => Ok(Vec::new()),
        Err(e) => Err(match &e.failure {
            SshFailure::Exited { status, stderr } => format!(
                "listing the snapshots of {dataset} on {} failed ({status}): {stderr}",
                e.target
            ),
            SshFailure::NotStarted(_) => e.to_string(),
        }),
    }
}
