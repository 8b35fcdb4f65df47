//! The snapshots of a dataset here and on a target: the same listing
//! (zpersist-zfs's argv and parser) run locally or over ssh (zpersist-ssh).

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

/// The snapshots of `dataset` on `target`; none when the dataset does not
/// exist there (never replicated).
pub fn on_target(target: &SshTarget, dataset: &str) -> Result<Vec<Snapshot>, String> {
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
