//! Host facts and effects besides ZFS: user and group lookup (NSS),
//! directory ownership, the lock that keeps two runs from interleaving
//! ([`dirlock`] for one per directory), atomic writes and fsync
//! ([`fsync`]), reading a contract file ([`read_contract`]), what is at a
//! path ([`path`]), whether a directory is in use ([`inuse`]: units,
//! processes, mounts), tree manifests ([`manifest`]), journaled steps
//! ([`steps`]) and the failpoints tests crash them with ([`failpoint`]).
//! Running programs is zpersist-process's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camino::Utf8PathBuf;
use zpersist_core::contract::{Contract, Diagnostic};
use zpersist_core::observed::{DirState, HostFacts};

pub mod clock;
pub mod dirlock;
pub mod environment;
pub mod failpoint;
mod failure;
pub mod fsync;
pub mod inuse;
pub mod manifest;
pub mod path;
pub mod resource_lock;
pub mod steps;
pub use failure::Failure;

/// Answers the planner's questions from the real host. Users and groups are
/// looked up through NSS (getpwnam_r/getgrnam_r: /etc/passwd and
/// /etc/group, and LDAP, sssd, systemd's dynamic users... as the host's
/// nsswitch.conf says), each name once.
#[derive(Default)]
pub struct RealHost {
    users: RefCell<HashMap<String, Option<u32>>>,
    groups: RefCell<HashMap<String, Option<u32>>>,
}

impl RealHost {
    pub fn new() -> RealHost {
        RealHost::default()
    }
}

fn lookup(
    cache: &RefCell<HashMap<String, Option<u32>>>,
    name: &str,
    find: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    if let Some(id) = cache.borrow().get(name) {
        return *id;
    }
    let id = find(name);
    cache.borrow_mut().insert(name.to_string(), id);
    id
}

/// The uid of the user `name` (NSS); `None` when there is none (or NSS
/// cannot answer).
pub fn user_id(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|user| user.uid.as_raw())
}

/// The gid of the group `name` (NSS); `None` when there is none.
pub fn group_id(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|group| group.gid.as_raw())
}

impl HostFacts for RealHost {
    fn user_id(&self, name: &str) -> Option<u32> {
        lookup(&self.users, name, user_id)
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        lookup(&self.groups, name, group_id)
    }

    fn directory(&self, path: &str) -> Option<DirState> {
        let meta = fs::metadata(path).ok().filter(|m| m.is_dir())?;
        Some(DirState {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        })
    }

    fn has_entries(&self, path: &str) -> Option<bool> {
        match fs::read_dir(path) {
            Ok(mut entries) => Some(entries.next().is_some()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }
}

/// Reads and checks the contract at `path` (zpersist-core's one loader,
/// `contract::parse`); every problem, an unreadable file included, names
/// the file.
pub fn read_contract<C: Contract>(path: &Path) -> Result<C, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::new(format!("cannot read the {}: {e}", C::KIND)).in_file(&file)]
    })?;
    zpersist_core::contract::parse::<C>(&text).map_err(|problems| {
        problems
            .into_iter()
            .map(|problem| problem.in_file(&file))
            .collect()
    })
}

/// Makes `path` exist as a directory and gives it the owner, group and mode
/// asked for (`None` leaves that part alone).
pub fn set_ownership(
    path: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
) -> io::Result<()> {
    fs::create_dir_all(path)?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)?;
    }
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Replaces `path` with `contents` so that a crash leaves the old file or
/// the new one, never half of one: a temporary file beside it, fsync,
/// rename, fsync of the directory. The temporary is removed on failure.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp.{}", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        let directory = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(directory)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Gives every entry under `root` (symlinks themselves included) owned by
/// `uid.0`/`gid.0` the ids `uid.1`/`gid.1`: data restored from a host
/// where the service's ids differ. `changed` is told the count after each
/// entry changed; the number of entries changed.
pub fn remap_ownership(
    root: &Path,
    uid: Option<(u32, u32)>,
    gid: Option<(u32, u32)>,
    changed: &mut dyn FnMut(usize),
) -> io::Result<usize> {
    let mut count = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let new_uid = uid
            .filter(|(old, _)| *old == meta.uid())
            .map(|(_, new)| new);
        let new_gid = gid
            .filter(|(old, _)| *old == meta.gid())
            .map(|(_, new)| new);
        if new_uid.is_some() || new_gid.is_some() {
            std::os::unix::fs::lchown(&path, new_uid, new_gid)?;
            count += 1;
            changed(count);
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(count)
}

/// A [`RunLock`] whose file is removed when it is released: for locks
/// named after what they protect (one per directory), which would
/// otherwise pile up. See [`lock_removed_when_done`].
pub struct TransientLock(RunLock);

/// Takes the lock at `path` like [`lock`]; its file is removed when the
/// returned lock is dropped.
///
/// Why removing a lock file is safe here (with flock alone it is not: a
/// waiter can be granted the lock of a file already unlinked while a
/// newcomer creates and locks a fresh one at the same path, and both go on):
/// - only the holder removes the file, as its very last act, while it still
///   holds the lock;
/// - whoever is granted the lock checks that the path still names the very
///   file it locked (same device and inode; the inode number of a file
///   still open cannot be reused), and otherwise lets go and starts over.
///
/// So a run goes on only while it holds the lock of the file the path
/// names; two runs doing so at once would hold the lock of one file, which
/// flock rules out. The one overlap, a holder between its unlink and its
/// release, has nothing left to do.
pub fn lock_removed_when_done(
    path: Utf8PathBuf,
    progress: &mut dyn Write,
) -> io::Result<TransientLock> {
    loop {
        let held = lock(path.clone(), progress)?;
        let locked = held._file.metadata()?;
        match fs::metadata(&path) {
            Ok(named) if named.dev() == locked.dev() && named.ino() == locked.ino() => {
                return Ok(TransientLock(held));
            }
            // Its holder removed it: lock the file there now.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

impl Drop for TransientLock {
    fn drop(&mut self) {
        // Still locked: the file is closed, and the lock released, after.
        let _ = fs::remove_file(&self.0.path);
    }
}

/// An exclusive lock on a file, held until dropped.
pub struct RunLock {
    _file: File,
    pub path: Utf8PathBuf,
}

/// How long [`lock`] waits for another holder before it gives up.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);

/// Takes the lock at `path`, waiting at most [`DEFAULT_LOCK_WAIT`].
pub fn lock(path: Utf8PathBuf, progress: &mut dyn Write) -> io::Result<RunLock> {
    lock_within(path, progress, DEFAULT_LOCK_WAIT)
}

/// Takes the lock at `path`, telling `progress` once (naming the holder) if
/// it has to wait, and giving up after `wait` with an error of kind
/// `TimedOut` that names the holder: a stuck run must not block every
/// later one (a `nixos-rebuild switch`, say) for ever. The holder writes
/// its pid, command line and start time into the file, for the next one.
pub fn lock_within(
    path: Utf8PathBuf,
    progress: &mut dyn Write,
    wait: Duration,
) -> io::Result<RunLock> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    let started = Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) => {
                if !said {
                    let _ = writeln!(
                        progress,
                        "waiting up to {} s for another run to finish (lock {path}, held by {})",
                        wait.as_secs(),
                        holder(&path)
                    );
                    said = true;
                }
                if started.elapsed() >= wait {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "still held after {} s by {}; if that run is stuck, stop it (kill PID) and try again",
                            wait.as_secs(),
                            holder(&path)
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    write_holder(&mut file, "")?;
    Ok(RunLock { _file: file, path })
}

/// Writes who holds a lock into its file, for the next one to name:
/// `pid N[EXTRA] (COMMAND LINE), since T (unix time)`.
pub(crate) fn write_holder(file: &mut File, extra: &str) -> io::Result<()> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let command: Vec<String> = std::env::args().collect();
    file.set_len(0)?;
    file.write_all(
        format!(
            "pid {}{extra} ({}), since {since} (unix time)\n",
            std::process::id(),
            zpersist_core::shown(&command.join(" "))
        )
        .as_bytes(),
    )
}

/// Who holds the lock, as its holder wrote it.
fn holder(path: &Utf8PathBuf) -> String {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "a process that did not say who it is".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_are_looked_up_through_nss() {
        // Debian's base system: root 0, daemon 1, nobody:nogroup 65534.
        assert_eq!(user_id("root"), Some(0));
        assert_eq!(user_id("daemon"), Some(1));
        assert_eq!(group_id("nogroup"), Some(65534));
        assert_eq!(user_id("no-such-user-zp"), None);
        assert_eq!(group_id("no-such-group-zp"), None);
        let host = RealHost::new();
        assert_eq!(host.user_id("nobody"), Some(65534));
        assert_eq!(host.user_id("nobody"), Some(65534), "cached");
    }

    #[test]
    fn a_contract_is_read_naming_its_file_in_every_problem() {
        use zpersist_core::contract::services::ServicesFile;
        let dir = std::env::temp_dir().join(format!("zpersist-contract-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("services.json");
        let missing = read_contract::<ServicesFile>(&path).unwrap_err();
        assert!(
            missing[0].to_string().starts_with(&format!(
                "{}: cannot read the services file: ",
                path.display()
            )),
            "{}",
            missing[0]
        );
        fs::write(&path, r#"{"version":1,"pool":"tank","services":{}}"#).unwrap();
        assert_eq!(read_contract::<ServicesFile>(&path).unwrap().pool, "tank");
        fs::write(&path, r#"{"version":9,"pool":"tank","services":{}}"#).unwrap();
        let problems = read_contract::<ServicesFile>(&path).unwrap_err();
        assert_eq!(problems[0].at.file.as_deref(), path.to_str());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("zpersist-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "a temporary was left behind"
        );
        let missing = dir.join("no-such-dir/state.json");
        assert!(write_atomically(&missing, b"x").is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lock_removed_when_done_excludes_every_later_holder() {
        let dir = std::env::temp_dir().join(format!("zpersist-lock-rm-{}", std::process::id()));
        let path = Utf8PathBuf::from_path_buf(dir.join("x.lock")).unwrap();
        // Many threads at once, each holding the lock for a moment and
        // removing the file: never two inside at the same time.
        let inside = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, inside) = (path.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let _held = lock_removed_when_done(path.clone(), &mut io::sink()).unwrap();
                        let others = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(others, 0, "two holders at once");
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(!path.exists(), "the lock file was left behind");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = std::env::temp_dir().join(format!("zpersist-lock-{}", std::process::id()));
        let path = Utf8PathBuf::from_path_buf(dir.join("x.lock")).unwrap();
        let first = lock(path.clone(), &mut io::sink()).unwrap();
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut said = Vec::new();
                let _second = lock(path, &mut said).unwrap();
                String::from_utf8(said).unwrap()
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(first);
        let said = waiter.join().unwrap();
        assert!(
            said.contains("waiting up to 120 s for another run"),
            "{said}"
        );
        assert!(
            said.contains(&format!("held by pid {}", std::process::id())),
            "{said}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lock_never_released_is_given_up_on_naming_its_holder() {
        let dir = std::env::temp_dir().join(format!("zpersist-stuck-{}", std::process::id()));
        let path = Utf8PathBuf::from_path_buf(dir.join("x.lock")).unwrap();
        let _stuck = lock(path.clone(), &mut io::sink()).unwrap();
        let started = Instant::now();
        let error = std::thread::spawn(move || {
            lock_within(path, &mut io::sink(), Duration::from_millis(300)).err()
        })
        .join()
        .unwrap()
        .expect("a second lock while the first is held");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let message = error.to_string();
        assert!(message.contains("still held after 0 s"), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
