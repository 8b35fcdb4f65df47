//! The local repository: a directory (its own dataset) holding `wal/` (the
//! archived segments, flat) and `base/<id>/` (verified base backups, each
//! `data/` plus `zpersist-backup.json`). Files are written under a
//! temporary name, fsynced, published without overwriting and the
//! directory fsynced; nothing half-written ever carries a final name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zpersist_core::pitr::archive::{archive_decision, ArchiveAction, Existing};
use zpersist_core::pitr::BaseBackup;

use crate::run::PgError;

/// Prefix of every temporary name in the repository.
pub const TEMPORARY: &str = ".zpersist-tmp.";
/// A failpoint for the crash tests: `archive-mid-copy` kills the archiver
/// (SIGKILL, as the kernel's OOM killer or a power cut would) after half
/// of a file is written under its temporary name.
pub const FAILPOINT_ENV: &str = "ZPERSIST_PITR_FAILPOINT";
const METADATA: &str = "zpersist-backup.json";

#[derive(Debug, Clone)]
pub struct LocalRepository {
    pub dir: PathBuf,
    /// The dataset `dir` must show (the contract's
    /// `repository.local.dataset`); `None`: any directory (tests, a
    /// repository by hand), which must exist.
    pub dataset: Option<String>,
}

/// How archiving one file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    Stored,
    AlreadyArchived,
}

/// How fetching one file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    Restored,
    /// Not in the archive: the normal end of the archive for PostgreSQL.
    Missing,
}

fn help_repository(dir: &Path) -> String {
    format!(
        "check that {} is mounted (its own dataset), writable by the cluster's user and not full (`zfs list`, `df`); PostgreSQL retries until it works, keeping the WAL in pg_wal meanwhile",
        dir.display()
    )
}

impl LocalRepository {
    pub fn new(dir: impl Into<PathBuf>) -> LocalRepository {
        LocalRepository {
            dir: dir.into(),
            dataset: None,
        }
    }

    /// The repository on `dataset`, which `dir` must show.
    pub fn on_dataset(dir: impl Into<PathBuf>, dataset: Option<String>) -> LocalRepository {
        LocalRepository {
            dir: dir.into(),
            dataset,
        }
    }

    /// The repository can be read and written: its directory exists and,
    /// with a dataset, is that dataset's own mount (by the directory's
    /// device in /proc/self/mountinfo), never the empty mountpoint beneath
    /// an unmounted dataset, nor a filesystem covering it. Every command
    /// that reads or writes the repository asks this first.
    pub fn check_reachable(&self) -> Result<(), PgError> {
        let shown = self.dir.display().to_string();
        match fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(PgError::new(
                    "reaching the WAL repository",
                    shown,
                    "it is not a directory",
                    "fix the contract's repository.local.dir (zpersist.postgresql.pitr.repository.local.mountpoint)",
                ))
            }
            Err(e) => {
                return Err(PgError::io(
                    "reaching the WAL repository",
                    &self.dir,
                    &e,
                    "create the repository's dataset (zpersist.postgresql.pitr.repository.local.dataset) and make sure it is mounted (`zfs mount DATASET`)",
                ))
            }
        }
        let Some(dataset) = &self.dataset else {
            return Ok(());
        };
        let mount = zpersist_host::inuse::mount_showing(&self.dir).map_err(|e| {
            PgError::io(
                "reaching the WAL repository",
                &self.dir,
                &e,
                "check /proc/self/mountinfo; the repository must be its dataset's mount",
            )
        })?;
        let view = zpersist_core::mounted::path_view(dataset, &shown, &mount);
        match view.problem(dataset, &shown) {
            None => Ok(()),
            Some(problem) => Err(PgError::new(
                "reaching the WAL repository",
                shown.clone(),
                format!("{problem}: the repository's dataset is not mounted there, so nothing is read from or written to it"),
                format!("mount it (`zfs mount {dataset}`; `zfs get mounted,mountpoint {dataset}`); {}", view.help(&shown)),
            )),
        }
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    pub fn base_dir(&self) -> PathBuf {
        self.dir.join("base")
    }

    /// The repository must exist: it is a mounted dataset, never created
    /// here (an unmounted dataset's empty mountpoint would otherwise
    /// silently receive the archive). Its `wal/` and `base/` are made.
    pub fn open(&self) -> Result<(), PgError> {
        self.check_reachable()?;
        for sub in [self.wal_dir(), self.base_dir()] {
            match fs::create_dir(&sub) {
                // Made by root (a restore or a backup run by hand): it
                // belongs to whoever owns the repository, the cluster.
                Ok(()) => self.give_to_owner(&sub, "opening the WAL repository")?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(PgError::io(
                        "opening the WAL repository",
                        &sub,
                        &e,
                        &help_repository(&self.dir),
                    ))
                }
            }
        }
        Ok(())
    }

    /// archive_command: stores `source` as `wal/<name>` under PostgreSQL's
    /// contract (see `zpersist_core::pitr::archive`).
    pub fn archive(&self, source: &Path, name: &str) -> Result<Archived, PgError> {
        // Before anything is compared or written: an unmounted repository
        // must fail the archive command, and PostgreSQL keeps the segment.
        self.check_reachable()?;
        let final_path = self.wal_dir().join(name);
        let existing = self.compare(source, &final_path)?;
        match archive_decision(name, existing) {
            ArchiveAction::AlreadyArchived => return Ok(Archived::AlreadyArchived),
            ArchiveAction::Refuse { error, help } => {
                return Err(PgError::new(
                    "archiving WAL",
                    final_path.display().to_string(),
                    error,
                    help,
                ))
            }
            ArchiveAction::Store => {}
        }
        self.open()?;
        let temporary = self
            .wal_dir()
            .join(format!("{TEMPORARY}{name}.{}", std::process::id()));
        let result = self.copy_in(source, &temporary).and_then(|()| {
            // A hard link publishes without ever replacing: if another
            // archiver won the race, link fails and the contents decide.
            match fs::hard_link(&temporary, &final_path) {
                Ok(()) => Ok(Archived::Stored),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match self.compare(source, &final_path)? {
                    Existing::Identical => Ok(Archived::AlreadyArchived),
                    _ => Err(PgError::new("archiving WAL", final_path.display().to_string(), "a different file appeared under this name meanwhile; it is never overwritten", "give each cluster its own repository")),
                },
                Err(e) => Err(PgError::io("archiving WAL", &final_path, &e, &help_repository(&self.dir))),
            }
        });
        let _ = fs::remove_file(&temporary);
        let outcome = result?;
        sync_dir(&self.wal_dir()).map_err(|e| {
            PgError::io(
                "archiving WAL",
                &self.wal_dir(),
                &e,
                &help_repository(&self.dir),
            )
        })?;
        Ok(outcome)
    }

    /// Copies `source` to `temporary` (created exclusively) and fsyncs it.
    fn copy_in(&self, source: &Path, temporary: &Path) -> Result<(), PgError> {
        let help = help_repository(&self.dir);
        let mut input = File::open(source).map_err(|e| {
            PgError::io(
                "archiving WAL: reading the segment",
                source,
                &e,
                "PostgreSQL passes %p relative to its data directory; check archive_command",
            )
        })?;
        let mut output = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temporary)
            .map_err(|e| PgError::io("archiving WAL", temporary, &e, &help))?;
        let total = input.metadata().map(|m| m.len()).unwrap_or(0);
        let crash_at = (std::env::var(FAILPOINT_ENV).as_deref() == Ok("archive-mid-copy"))
            .then_some(total / 2);
        let mut buffer = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            let mut n = input.read(&mut buffer).map_err(|e| {
                PgError::io(
                    "archiving WAL: reading the segment",
                    source,
                    &e,
                    "check the data directory's disk",
                )
            })?;
            if n == 0 {
                break;
            }
            if let Some(at) = crash_at {
                n = n.min((at - written) as usize);
            }
            output
                .write_all(&buffer[..n])
                .map_err(|e| PgError::io("archiving WAL", temporary, &e, &help))?;
            written += n as u64;
            if crash_at == Some(written) {
                // SAFETY: raise(2) with SIGKILL ends this process; no memory is touched.
                unsafe {
                    libc::raise(libc::SIGKILL);
                }
            }
        }
        output
            .sync_all()
            .map_err(|e| PgError::io("archiving WAL: fsync", temporary, &e, &help))
    }

    /// What the archive holds under `final_path`, compared with `source`.
    fn compare(&self, source: &Path, final_path: &Path) -> Result<Existing, PgError> {
        match fs::symlink_metadata(final_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Nothing),
            Err(e) => Err(PgError::io(
                "archiving WAL",
                final_path,
                &e,
                &help_repository(&self.dir),
            )),
            Ok(_) => match same_contents(source, final_path) {
                Ok(true) => Ok(Existing::Identical),
                Ok(false) => Ok(Existing::Different),
                Err(e) => Err(PgError::io(
                    "archiving WAL: comparing with the archived copy",
                    final_path,
                    &e,
                    &help_repository(&self.dir),
                )),
            },
        }
    }

    /// restore_command: copies `wal/<name>` to `dest`. `Missing` only
    /// when the repository is reachable, has its `wal/` and that holds no
    /// such file; anything else (unmounted, unreadable) is an error, which
    /// must stop recovery rather than end it there.
    pub fn fetch(&self, name: &str, dest: &Path) -> Result<Fetched, PgError> {
        self.check_reachable()?;
        let help = "mount the repository's dataset and check its permissions; recovery cannot go on without it";
        let wal = self.wal_dir();
        match fs::metadata(&wal) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(PgError::new(
                    "restoring WAL",
                    wal.display().to_string(),
                    "it is not a directory",
                    help,
                ))
            }
            Err(e) => return Err(PgError::io("restoring WAL", &wal, &e, help)),
        }
        let source = wal.join(name);
        match fs::symlink_metadata(&source) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Fetched::Missing),
            Err(e) => return Err(PgError::io("restoring WAL", &source, &e, help)),
        }
        fs::copy(&source, dest).map_err(|e| {
            PgError::io(
                "restoring WAL",
                &source,
                &e,
                "check the repository and the restored directory's disk",
            )
        })?;
        Ok(Fetched::Restored)
    }

    /// The archive's file names (temporaries left out), sorted.
    pub fn list_wal(&self) -> Result<Vec<String>, PgError> {
        let mut names = list_names(&self.wal_dir()).map_err(|e| {
            PgError::io(
                "listing the WAL archive",
                &self.wal_dir(),
                &e,
                &help_repository(&self.dir),
            )
        })?;
        names.retain(|n| !n.starts_with('.'));
        names.sort();
        Ok(names)
    }

    /// The published base backups.
    pub fn list_backups(&self) -> Result<Vec<BaseBackup>, PgError> {
        let base = self.base_dir();
        let mut names = list_names(&base).map_err(|e| {
            PgError::io(
                "listing base backups",
                &base,
                &e,
                &help_repository(&self.dir),
            )
        })?;
        names.retain(|n| !n.starts_with('.'));
        names.sort();
        let mut backups = Vec::new();
        for name in names {
            let file = base.join(&name).join(METADATA);
            let text = fs::read_to_string(&file).map_err(|e| {
                PgError::io(
                    "reading a base backup's metadata",
                    &file,
                    &e,
                    "a published backup always has it: remove the damaged backup directory by hand",
                )
            })?;
            let backup: BaseBackup = serde_json::from_str(&text).map_err(|e| {
                PgError::new(
                    "reading a base backup's metadata",
                    file.display().to_string(),
                    e.to_string(),
                    "remove the damaged backup directory by hand",
                )
            })?;
            backups.push(backup);
        }
        Ok(backups)
    }

    /// Where a backup in progress is written.
    pub fn staging(&self, id: &str) -> PathBuf {
        self.base_dir().join(format!("{TEMPORARY}{id}"))
    }

    /// When running as root, gives `path` to the repository's owner (the
    /// cluster's user), who writes into it.
    fn give_to_owner(&self, path: &Path, what: &str) -> Result<(), PgError> {
        if !crate::run::is_root() {
            return Ok(());
        }
        let (uid, gid) = crate::files::owner(&self.dir)?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| PgError::io(what, path, &e, &help_repository(&self.dir)))
    }

    /// Makes the staging directory of a backup (owned like the repository,
    /// so the cluster's user can write into it) and gives its `data/`.
    pub fn create_staging(&self, id: &str) -> Result<PathBuf, PgError> {
        let staging = self.staging(id);
        fs::create_dir(&staging).map_err(|e| {
            PgError::io(
                "preparing a base backup",
                &staging,
                &e,
                &help_repository(&self.dir),
            )
        })?;
        self.give_to_owner(&staging, "preparing a base backup")?;
        Ok(staging.join("data"))
    }

    /// The data directory of a published backup.
    pub fn backup_data(&self, id: &str) -> PathBuf {
        self.base_dir().join(id).join("data")
    }

    /// Publishes a verified backup: metadata written and fsynced, the
    /// staging directory renamed to its id, the base directory fsynced.
    pub fn publish(&self, backup: &BaseBackup) -> Result<(), PgError> {
        let staging = self.staging(&backup.id);
        let text = serde_json::to_string_pretty(backup).expect("a backup serialises");
        let metadata = staging.join(METADATA);
        zpersist_host::write_atomically(&metadata, text.as_bytes()).map_err(|e| {
            PgError::io(
                "publishing a base backup",
                &metadata,
                &e,
                &help_repository(&self.dir),
            )
        })?;
        let final_dir = self.base_dir().join(&backup.id);
        fs::rename(&staging, &final_dir).map_err(|e| {
            PgError::io(
                "publishing a base backup",
                &final_dir,
                &e,
                &help_repository(&self.dir),
            )
        })?;
        sync_dir(&self.base_dir()).map_err(|e| {
            PgError::io(
                "publishing a base backup",
                &self.base_dir(),
                &e,
                &help_repository(&self.dir),
            )
        })
    }

    /// Removes a backup: renamed aside first (so it is never listed half
    /// deleted), then deleted.
    pub fn remove_backup(&self, id: &str) -> Result<(), PgError> {
        let dir = self.base_dir().join(id);
        let aside = self.base_dir().join(format!("{TEMPORARY}deleting.{id}"));
        fs::rename(&dir, &aside).map_err(|e| {
            PgError::io(
                "pruning a base backup",
                &dir,
                &e,
                &help_repository(&self.dir),
            )
        })?;
        fs::remove_dir_all(&aside).map_err(|e| {
            PgError::io(
                "pruning a base backup",
                &aside,
                &e,
                &help_repository(&self.dir),
            )
        })
    }

    /// Removes leftovers of killed runs: temporaries in `wal/` and `base/`.
    pub fn remove_temporaries(&self) -> Result<usize, PgError> {
        let mut removed = 0;
        for dir in [self.wal_dir(), self.base_dir()] {
            for name in list_names(&dir).map_err(|e| {
                PgError::io(
                    "cleaning the repository",
                    &dir,
                    &e,
                    &help_repository(&self.dir),
                )
            })? {
                if name.starts_with(TEMPORARY) {
                    let path = dir.join(&name);
                    let result = if path.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                    result.map_err(|e| {
                        PgError::io(
                            "cleaning the repository",
                            &path,
                            &e,
                            &help_repository(&self.dir),
                        )
                    })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes archived WAL files no kept restore point needs.
    pub fn remove_wal(&self, names: &[&String]) -> Result<(), PgError> {
        for name in names {
            let path = self.wal_dir().join(name);
            fs::remove_file(&path)
                .map_err(|e| PgError::io("pruning WAL", &path, &e, &help_repository(&self.dir)))?;
        }
        sync_dir(&self.wal_dir()).map_err(|e| {
            PgError::io(
                "pruning WAL",
                &self.wal_dir(),
                &e,
                &help_repository(&self.dir),
            )
        })
    }
}

fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect(),
    }
}

/// fsync of a directory, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Byte-for-byte comparison (sizes first).
pub fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
