//! The one resource lock every mover takes on the datasets it changes
//! (ensure-datasets, migrate-to-dataset, preseed-restore,
//! zpersist-backup-snapshot, pitr-base-backup, the drill), so that two
//! movers never interleave on one dataset.
//!
//! One file per dataset in [`LOCK_DIR`], named from the dataset name
//! escaped ([`lock_file_name`]), locked with `flock`: the kernel releases
//! it when its holder exits, `kill -9` included, and the files are never
//! removed (so no waiter ever locks a file someone else unlinked).
//!
//! Nested datasets: a mover changing `tank/a` takes `tank/a` exclusively
//! and every ancestor (`tank`) shared. A mover on `tank/a/b` then waits
//! for it (it needs `tank/a` shared), a mover on `tank/a` waits for one on
//! `tank/a/b`, and movers on `tank/a/b` and `tank/a/c` go on side by side.
//! A mover taking several datasets takes all their files at once, each in
//! the strongest mode it needs, in name order (ancestors first): two
//! movers never wait for each other in a circle.
//!
//! The wait is bounded ([`DEFAULT_WAIT`], or `ZPERSIST_LOCK_WAIT_SECONDS`);
//! a mover that gives up says which dataset and who holds it: the holder
//! of an exclusive lock writes its pid, unit, command line and dataset
//! into the file and empties it when done.
//!
//! Movers run as different users (pitr-base-backup as `postgres`, the
//! rest as root), so the directory is sticky and world-writable like
//! /run/lock (`1777`, also made by the module's tmpfiles rule) and each
//! file `0666`: `flock` needs only an open file, and a file someone else
//! made read-only is still locked through a read-only open (its holder
//! line is then not written).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Failure;

/// Where the resource locks live (a tmpfs: a reboot clears them).
pub const LOCK_DIR: &str = "/run/zpersist/locks";

/// How long a mover waits for another before it gives up.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// The environment variable that overrides [`DEFAULT_WAIT`] (seconds).
pub const WAIT_VAR: &str = "ZPERSIST_LOCK_WAIT_SECONDS";

/// The bounded wait: `ZPERSIST_LOCK_WAIT_SECONDS` when it is a number,
/// else [`DEFAULT_WAIT`].
pub fn wait_bound() -> Duration {
    std::env::var(WAIT_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_WAIT, Duration::from_secs)
}

/// The lock file's name of `dataset`: every byte but `[A-Za-z0-9_:-]`
/// as `%XX` (so `/`, `.` and `%` too), then `.lock`. Distinct datasets get
/// distinct names, and a dataset's descendants' names start with its own
/// followed by `%2F`.
pub fn lock_file_name(dataset: &str) -> String {
    let mut name = String::new();
    for b in dataset.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-') {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(".lock");
    name
}

/// `tank/a/b` → `tank`, `tank/a`.
fn ancestors(dataset: &str) -> impl Iterator<Item = &str> {
    dataset.match_indices('/').map(move |(i, _)| &dataset[..i])
}

/// Held resource locks: released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DatasetLock {
    datasets: Vec<String>,
    /// The exclusive files, emptied on release.
    exclusive: Vec<File>,
    _shared: Vec<File>,
}

impl DatasetLock {
    /// The datasets held exclusively.
    pub fn datasets(&self) -> &[String] {
        &self.datasets
    }
}

impl Drop for DatasetLock {
    fn drop(&mut self) {
        // Still locked: no one reads a half-emptied file as its holder.
        for file in &self.exclusive {
            let _ = file.set_len(0);
        }
    }
}

/// Takes `mover`'s lock of `datasets` (each exclusively, their ancestors
/// shared) in [`LOCK_DIR`], waiting at most `wait` (a mover without a
/// bound of its own passes [`wait_bound`]); tells `progress` once, naming
/// the holder, if it has to wait. On giving up: which dataset, who holds
/// it, and what to do.
pub fn lock_datasets(
    mover: &str,
    datasets: &[&str],
    wait: Duration,
    progress: &mut dyn Write,
) -> Result<DatasetLock, Failure> {
    lock_datasets_in(Path::new(LOCK_DIR), mover, datasets, wait, progress)
}

/// [`lock_datasets`] in `dir`, waiting at most `wait`.
pub fn lock_datasets_in(
    dir: &Path,
    mover: &str,
    datasets: &[&str],
    wait: Duration,
    progress: &mut dyn Write,
) -> Result<DatasetLock, Failure> {
    // Each file in the strongest mode it is needed in; name order.
    let mut modes: BTreeMap<String, bool> = BTreeMap::new();
    for dataset in datasets {
        for ancestor in ancestors(dataset) {
            modes.entry(ancestor.to_string()).or_insert(false);
        }
        modes.insert(dataset.to_string(), true);
    }
    let cannot = |e: io::Error, path: &Path, dataset: &str| {
        Failure {
        error: format!(
            "{dataset}: cannot take {mover}'s lock {}: {e}",
            path.display()
        ),
        help: format!("{} must be a directory of mode 1777 (zpersist's module makes it at boot; `systemd-tmpfiles --create` makes it now) that the unit may write (ReadWritePaths=)", dir.display()),
    }
    };
    fs::create_dir_all(dir).map_err(|e| cannot(e, dir, datasets.first().unwrap_or(&"")))?;
    // Only its owner can; for anyone else it is already what it must be.
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o1777));
    let started = Instant::now();
    let mut said = false;
    let mut exclusive = Vec::new();
    let mut shared = Vec::new();
    let mut held = Vec::new();
    for (dataset, exclusively) in &modes {
        let path = dir.join(lock_file_name(dataset));
        let (file, writable) = open_lock_file(&path).map_err(|e| cannot(e, &path, dataset))?;
        loop {
            let tried = if *exclusively {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match tried {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    let holders = holders(dir, dataset, *exclusively);
                    if !said {
                        let _ = writeln!(
                            progress,
                            "{mover}: waiting up to {} s for {holders}, which is changing {dataset}",
                            wait.as_secs()
                        );
                        said = true;
                    }
                    if started.elapsed() >= wait {
                        let wanted = datasets.join(", ");
                        return Err(Failure {
                            error: format!(
                                "{wanted}: {mover} cannot change {wanted}: another mover still holds {dataset} after {} s: {holders}",
                                wait.as_secs()
                            ),
                            help: "two operations must not change one dataset at once: let that one finish and run again (if it is stuck, stop its unit or kill its pid)".to_string(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::Error(e)) => return Err(cannot(e, &path, dataset)),
            }
        }
        if *exclusively && !writable {
            exclusive.push(file);
            held.push(dataset.clone());
        } else if *exclusively {
            let mut file = file;
            let unit = own_unit()
                .map(|u| format!(", unit {u}"))
                .unwrap_or_default();
            let written =
                crate::write_holder(&mut file, &format!("{unit}, {mover} changing {dataset}"));
            written.map_err(|e| cannot(e, &path, dataset))?;
            exclusive.push(file);
            held.push(dataset.clone());
        } else {
            shared.push(file);
        }
    }
    Ok(DatasetLock {
        datasets: held,
        exclusive,
        _shared: shared,
    })
}

/// The lock file at `path`, made `0666` when this process creates it,
/// and whether it could be opened for writing (the holder line).
fn open_lock_file(path: &Path) -> io::Result<(File, bool)> {
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o666)
        .open(path);
    match opened {
        Ok(file) => {
            // The umask took bits off: put them back (only the owner can).
            let _ = file.set_permissions(fs::Permissions::from_mode(0o666));
            Ok((file, true))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok((File::open(path)?, false)),
        Err(e) => Err(e),
    }
}

/// Who holds what `dataset`'s lock waits for, as the holders wrote it:
/// its own file's (or an ancestor's) exclusive holder, and, when it wants
/// the dataset exclusively, the holders of its descendants.
fn holders(dir: &Path, dataset: &str, exclusively: bool) -> String {
    let own = lock_file_name(dataset);
    let below = format!("{}%2F", own.trim_end_matches(".lock"));
    let mut files: Vec<PathBuf> = vec![dir.join(&own)];
    if exclusively {
        if let Ok(entries) = fs::read_dir(dir) {
            let mut more: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&below))
                .map(|e| e.path())
                .collect();
            more.sort();
            files.extend(more);
        }
    }
    let said: Vec<String> = files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && holder_alive(t))
        .collect();
    if said.is_empty() {
        "a process that did not say who it is".to_string()
    } else {
        said.join("; ")
    }
}

/// Whether the pid a holder wrote (`pid N...`) is a live process (a holder
/// killed with -9 left its line behind, and its lock went with it).
fn holder_alive(line: &str) -> bool {
    line.strip_prefix("pid ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// The systemd unit this process runs in, from its cgroup.
fn own_unit() -> Option<String> {
    let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .find(|u| u.ends_with(".service") || u.ends_with(".scope"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_names_escape_everything_but_plain_characters() {
        assert_eq!(lock_file_name("tank/a-b"), "tank%2Fa-b.lock");
        assert_eq!(lock_file_name("tank/a.b%2F"), "tank%2Fa%2Eb%252F.lock");
        assert_ne!(lock_file_name("tank/a/b"), lock_file_name("tank/a%2Fb"));
        assert_eq!(
            ancestors("tank/a/b").collect::<Vec<_>>(),
            ["tank", "tank/a"]
        );
    }

    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Movers of other users (pitr-base-backup runs as postgres) can open
    /// what root made: the directory is sticky and world-writable, each
    /// file 0666 whatever the umask.
    #[test]
    fn the_lock_directory_and_files_are_open_to_every_mover() {
        let dir = Dir(std::env::temp_dir().join(format!(
            "zpersist-resource-lock-modes-{}",
            std::process::id()
        )));
        let locks = dir.path().join("locks");
        let held = lock_datasets_in(
            &locks,
            "test",
            &["tank/a"],
            Duration::from_secs(1),
            &mut io::sink(),
        )
        .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&locks), 0o1777);
        for name in ["tank.lock", "tank%2Fa.lock"] {
            assert_eq!(mode(&locks.join(name)), 0o666, "{name}");
        }
        drop(held);
    }

    #[test]
    fn a_dataset_and_its_descendants_exclude_each_other_siblings_do_not() {
        let dir =
            std::env::temp_dir().join(format!("zpersist-resource-lock-{}", std::process::id()));
        let dir = Dir(dir);
        let wait = Duration::from_millis(300);
        let mut quiet = io::sink();
        let parent = lock_datasets_in(dir.path(), "one", &["tank/a"], wait, &mut quiet).unwrap();
        let child = lock_datasets_in(dir.path(), "two", &["tank/a/b"], wait, &mut quiet);
        let e = child.unwrap_err();
        assert!(
            e.error.contains("tank/a/b: two cannot change tank/a/b"),
            "{}",
            e.error
        );
        assert!(
            e.error.contains(&format!("pid {}", std::process::id())),
            "{}",
            e.error
        );
        drop(parent);
        let b = lock_datasets_in(dir.path(), "two", &["tank/a/b"], wait, &mut quiet).unwrap();
        let c = lock_datasets_in(dir.path(), "three", &["tank/a/c"], wait, &mut quiet).unwrap();
        let e = lock_datasets_in(dir.path(), "four", &["tank/a"], wait, &mut quiet).unwrap_err();
        assert!(e.error.contains("changing tank/a/b"), "{}", e.error);
        drop((b, c));
        // Several at once, ancestors among them: one file, the strongest mode.
        lock_datasets_in(
            dir.path(),
            "five",
            &["tank/a/b", "tank/a"],
            wait,
            &mut quiet,
        )
        .unwrap();
    }
}
