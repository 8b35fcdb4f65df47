//! Host facts and effects besides ZFS: user and group lookup, directory
//! ownership, the lock that keeps two runs from interleaving, and running
//! a child with a wall-clock limit ([`run_with_timeout`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use camino::Utf8PathBuf;
use zpersist_core::observed::{DirState, HostFacts};

mod timeout;
pub use timeout::{run_with_timeout, seconds, Bounded};

/// Answers the planner's questions from the real host. Users and groups come
/// from /etc/passwd and /etc/group, then from `getent` (NSS: LDAP, sssd...),
/// each name looked up once.
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
    database: &str,
    name: &str,
) -> Option<u32> {
    if let Some(id) = cache.borrow().get(name) {
        return *id;
    }
    let id =
        id_in_file(&format!("/etc/{database}"), name).or_else(|| id_from_getent(database, name));
    cache.borrow_mut().insert(name.to_string(), id);
    id
}

/// The id (third field) of `name` in a passwd- or group-format file.
fn id_in_file(path: &str, name: &str) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    id_in_entries(&text, name)
}

pub fn id_in_entries(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 2 && fields[0] == name)
        .and_then(|fields| fields[2].parse().ok())
}

fn id_from_getent(database: &str, name: &str) -> Option<u32> {
    let output = duct::cmd("getent", [database, name])
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    id_in_entries(&String::from_utf8_lossy(&output.stdout), name)
}

impl HostFacts for RealHost {
    fn user_id(&self, name: &str) -> Option<u32> {
        lookup(&self.users, "passwd", name)
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        lookup(&self.groups, "group", name)
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

/// An exclusive lock on a file, held until dropped.
pub struct RunLock {
    _file: File,
    pub path: Utf8PathBuf,
}

/// Takes the lock at `path`, telling `progress` once if it has to wait for
/// another holder.
pub fn lock(path: Utf8PathBuf, progress: &mut dyn Write) -> io::Result<RunLock> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let _ = writeln!(progress, "waiting for another run to finish (lock {path})");
            file.lock()?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    Ok(RunLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_third_field() {
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\nsonarr:x:274:274::/var/lib/sonarr:/sbin/nologin\n";
        assert_eq!(id_in_entries(passwd, "sonarr"), Some(274));
        assert_eq!(id_in_entries(passwd, "sonar"), None);
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
        assert!(waiter.join().unwrap().contains("waiting for another run"));
        fs::remove_dir_all(dir).unwrap();
    }
}
