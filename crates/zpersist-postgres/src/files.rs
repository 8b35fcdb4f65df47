//! Files of a restore: the target directory, and copying a backup's data
//! directory into it (modes, symlinks and, when run as root, owners kept).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::run::{is_root, PgError};

/// What the restore target is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetDir {
    Missing,
    Empty,
    /// It holds files; `postmaster` tells whether a postmaster.pid is among them.
    NotEmpty {
        postmaster: bool,
    },
}

pub fn inspect_target(dir: &Path) -> Result<TargetDir, PgError> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TargetDir::Missing),
        Err(e) => Err(PgError::io(
            "inspecting the restore target",
            dir,
            &e,
            "pass a directory zpersist may read and write",
        )),
        Ok(mut entries) => Ok(if entries.next().is_none() {
            TargetDir::Empty
        } else {
            TargetDir::NotEmpty {
                postmaster: dir.join("postmaster.pid").exists(),
            }
        }),
    }
}

/// Makes `dir` an empty directory with mode 0700 (PostgreSQL refuses a data
/// directory others can read), owned like `owner_of` when running as root.
pub fn prepare_target(dir: &Path, owner_of: Option<(u32, u32)>) -> Result<(), PgError> {
    let help = "pass a path whose parent exists and is writable";
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(PgError::io("creating the restore target", dir, &e, help)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| PgError::io("setting the restore target's mode", dir, &e, help))?;
    if let (true, Some((uid, gid))) = (is_root(), owner_of) {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| {
            PgError::io(
                "giving the restore target to the cluster's user",
                dir,
                &e,
                help,
            )
        })?;
    }
    Ok(())
}

/// The owner and group of a path.
pub fn owner(path: &Path) -> Result<(u32, u32), PgError> {
    let meta = fs::metadata(path)
        .map_err(|e| PgError::io("reading an owner", path, &e, "check the repository"))?;
    Ok((meta.uid(), meta.gid()))
}

/// Copies the tree `src` into the existing directory `dst`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<u64, PgError> {
    copy_dir(src, dst).map_err(|(path, e)| {
        PgError::io(
            "copying the base backup",
            &path,
            &e,
            "check the restore target's free space and the repository",
        )
    })
}

fn copy_dir(src: &Path, dst: &Path) -> Result<u64, (std::path::PathBuf, io::Error)> {
    let mut bytes = 0;
    let entries = fs::read_dir(src).map_err(|e| (src.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (src.to_path_buf(), e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(|e| (from.clone(), e))?;
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&from).map_err(|e| (from.clone(), e))?;
            std::os::unix::fs::symlink(link, &to).map_err(|e| (to.clone(), e))?;
        } else if meta.is_dir() {
            fs::create_dir(&to).map_err(|e| (to.clone(), e))?;
            bytes += copy_dir(&from, &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| (to.clone(), e))?;
        } else {
            bytes += fs::copy(&from, &to).map_err(|e| (from.clone(), e))?;
        }
        if is_root() {
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| (to.clone(), e))?;
        }
    }
    Ok(bytes)
}

/// Removes everything inside `dir`, keeping `dir` itself (a mountpoint).
pub fn empty_dir(dir: &Path) -> Result<(), PgError> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| {
            PgError::io(
                "emptying a scratch directory",
                dir,
                &e,
                "check its permissions",
            )
        })?,
    };
    for entry in entries {
        let path = entry
            .map_err(|e| {
                PgError::io(
                    "emptying a scratch directory",
                    dir,
                    &e,
                    "check its permissions",
                )
            })?
            .path();
        let result = if fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(|e| {
            PgError::io(
                "emptying a scratch directory",
                &path,
                &e,
                "check its permissions",
            )
        })?;
    }
    Ok(())
}
