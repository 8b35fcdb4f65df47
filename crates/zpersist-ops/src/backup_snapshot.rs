//! zpersist-backup-snapshot take DATASET VIEW | release DATASET
//!
//! Around a service's restic backup (`restic-backups-zpersist-<service>`,
//! nix/modules/backup.nix): `take` gives the backup a consistent point, a
//! fresh snapshot `DATASET@zpersist-restic-<time>` and a read-only clone
//! of it, `DATASET-zpersist-restic`, mounted on VIEW. The backup unit binds
//! VIEW read-only over the dataset's mountpoint in its own mount namespace,
//! so restic reads the snapshot and records the mountpoint's path (which
//! preseed restores from). `release` destroys the clone and the snapshot.
//! `take` first releases what an interrupted run left (kill -9, a crash),
//! and both destroy only what zpersist made (zpersist_core::backup).
//!
//! Clones, not `.zfs/snapshot`: zfs-fuse has no snapshot directory, and
//! OpenZFS mounts a snapshot directory on demand in the host's namespace,
//! which a bind into another namespace does not reliably trigger. A clone
//! is an ordinary mount on both.
//!
//! Exit 0: done; 1: a zfs step failed (the message says which); 2: bad
//! arguments (zfs was not run).

use serde::Serialize;
use zpersist_core::backup::{
    children_problem, is_ours, judge_view, snapshot_name, view_dataset, ViewFacts, ViewVerdict,
    PROP_VIEW,
};
use zpersist_core::error::Error;
use zpersist_core::mounted::argument_problem;
use zpersist_core::shown;
use zpersist_zfs::dataset::{destroy_retrying, mount_retrying, MountError};
use zpersist_zfs::Zfs;

const HELP_ARGS: &str = "the arguments come from the zpersist NixOS module (zpersist.services.<name>.backup.restic); rebuild the system, or pass a full dataset name and an absolute path";

/// `dataset` is a service's dataset (a filesystem below the pool) and
/// `view` an absolute path; bad input otherwise (zfs is not run).
pub fn check_arguments(dataset: &str, view: &str) -> Result<(), Error> {
    if let Some(problem) = argument_problem(dataset, view) {
        return Err(Error::bad_input(problem).with_help(HELP_ARGS));
    }
    if dataset.contains('@') || !dataset.contains('/') {
        return Err(Error::bad_input(format!(
            "`{}` is not a service's dataset: give a filesystem below the pool, like tank/services/sonarr",
            shown(dataset)
        ))
        .with_help(HELP_ARGS));
    }
    Ok(())
}

/// What `take` did: the `--json` document.
#[derive(Debug, Serialize)]
pub struct Taken {
    pub dataset: String,
    /// Stale views and snapshots of an interrupted run, destroyed first.
    pub released: Vec<String>,
    pub snapshot: String,
    /// The read-only clone, mounted on `mountpoint`.
    pub view: String,
    pub mountpoint: String,
}

/// Releases what an interrupted run left, then snapshots `dataset` and
/// mounts a read-only clone of it on `view`. A dataset with descendants is
/// refused before anything is touched.
pub fn take(zfs: &Zfs, dataset: &str, view: &str) -> Result<Taken, Error> {
    let failed = |(what, help): Failure| Error::failed(what).with_help(help);
    let _lock = lock(dataset)?;
    refuse_children(zfs, dataset).map_err(failed)?;
    let released = release_all(zfs, dataset).map_err(failed)?;
    let (snapshot, clone) = take_view(zfs, dataset, view).map_err(failed)?;
    Ok(Taken {
        dataset: dataset.to_string(),
        released,
        snapshot,
        view: clone,
        mountpoint: view.to_string(),
    })
}

/// Destroys the view clone (when it is ours) and every
/// `DATASET@zpersist-restic-*` snapshot; what it destroyed.
pub fn release(zfs: &Zfs, dataset: &str) -> Result<Vec<String>, Error> {
    let _lock = lock(dataset)?;
    release_all(zfs, dataset).map_err(|(what, help)| Error::failed(what).with_help(help))
}

type Failure = (String, String);

/// The resource lock of the dataset and its view clone: no other mover
/// (preseed's swap, migrate) changes them while a snapshot is taken or
/// released.
fn lock(dataset: &str) -> Result<zpersist_host::resource_lock::DatasetLock, Error> {
    let view = view_dataset(dataset);
    zpersist_host::resource_lock::lock_datasets(
        "zpersist-backup-snapshot",
        &[dataset, &view],
        zpersist_host::resource_lock::wait_bound(),
        &mut std::io::stderr(),
    )
    .map_err(Error::from)
}

fn zfs_failure(step: &str, e: MountError) -> Failure {
    let help = match &e {
        MountError::Zfs(z) if z.message().contains("busy") => {
            "something still uses the backup's view (a restic run started by hand?); wait for it, or see `fuser -vm` on the view's mountpoint".to_string()
        }
        _ => "see what zfs says; `zpool status` for the pool's health".to_string(),
    };
    (format!("{step}: {e}"), help)
}

/// Refuses a dataset with descendants before anything is touched: its
/// snapshot's clone would show none of their files (zpersist_core::backup::
/// children_problem).
fn refuse_children(zfs: &Zfs, dataset: &str) -> Result<(), Failure> {
    let listed = match zfs.run(&[
        "list",
        "-H",
        "-o",
        "name",
        "-r",
        "-t",
        "filesystem,volume",
        dataset,
    ]) {
        Ok(listed) => listed,
        // release says so, with its help.
        Err(e) if zpersist_zfs::says_dataset_missing(e.stderr()) => return Ok(()),
        Err(e) => {
            return Err(zfs_failure(
                &format!("listing the datasets below {dataset}"),
                e.into(),
            ))
        }
    };
    let names: Vec<String> = listed.lines().map(str::to_string).collect();
    match children_problem(dataset, &names) {
        None => Ok(()),
        Some(refused) => Err(refused),
    }
}

/// Destroys the view clone (when it is ours) and every snapshot of ours on
/// `dataset`; returns what it destroyed.
fn release_all(zfs: &Zfs, dataset: &str) -> Result<Vec<String>, Failure> {
    let mut destroyed = Vec::new();
    let view = view_dataset(dataset);
    let found = zfs
        .get(&view, &[PROP_VIEW, "origin"])
        .map_err(|e| zfs_failure(&format!("reading {view}"), e.into()))?;
    if let Some(props) = found {
        let present = |p: &str| props.get(p).filter(|v| v.as_str() != "-").cloned();
        let facts = ViewFacts {
            view_of: present(PROP_VIEW),
            origin: present("origin"),
        };
        match judge_view(dataset, &view, &facts) {
            ViewVerdict::Destroy => {
                destroy_retrying(zfs, &view)
                    .map_err(|e| zfs_failure(&format!("destroying the stale view {view}"), e))?;
                destroyed.push(view.clone());
            }
            ViewVerdict::Foreign(why) => {
                return Err((
                    why,
                    format!("rename or destroy {view} yourself if it is not needed; zpersist leaves it alone"),
                ))
            }
        }
    }
    let snapshots = zfs
        .snapshots(dataset)
        .map_err(|e| zfs_failure(&format!("listing the snapshots of {dataset}"), e.into()))?
        .ok_or_else(|| {
            (
                format!("dataset {dataset} does not exist"),
                "zpersist-datasets.service creates it; `systemctl status zpersist-datasets`"
                    .to_string(),
            )
        })?;
    for s in snapshots {
        let full = format!("{dataset}@{}", s.name);
        if is_ours(dataset, &full) {
            destroy_retrying(zfs, &full)
                .map_err(|e| zfs_failure(&format!("destroying the stale snapshot {full}"), e))?;
            destroyed.push(full);
        }
    }
    Ok(destroyed)
}

/// Snapshots `dataset` and mounts a read-only clone of it on `mountpoint`.
fn take_view(zfs: &Zfs, dataset: &str, mountpoint: &str) -> Result<(String, String), Failure> {
    let snapshot = snapshot_name(dataset, zpersist_host::clock::now());
    zfs.run(&["snapshot", &snapshot])
        .map_err(|e| zfs_failure(&format!("taking {snapshot}"), e.into()))?;
    let view = view_dataset(dataset);
    zfs.run(&[
        "clone",
        "-o",
        &format!("mountpoint={mountpoint}"),
        "-o",
        "readonly=on",
        "-o",
        &format!("{PROP_VIEW}={dataset}"),
        &snapshot,
        &view,
    ])
    .map_err(|e| zfs_failure(&format!("cloning {snapshot} to {view}"), e.into()))?;
    mount_retrying(zfs, &view)
        .map_err(|e| zfs_failure(&format!("mounting {view} on {mountpoint}"), e))?;
    Ok((snapshot, view))
}
