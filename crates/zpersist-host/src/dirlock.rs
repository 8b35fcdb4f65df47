//! The run lock of one directory, for binaries that change a directory
//! (migrate-to-dataset, preseed-restore): one lock per directory however
//! it is spelt, in /run so that a refused run leaves nothing next to the
//! data and a reboot clears what a killed run left; removed when the run
//! ends ([`crate::lock_removed_when_done`]).

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::manifest::hex;
use crate::path::resolved;
use crate::{lock_removed_when_done, Failure, TransientLock};

/// Where run locks live.
pub const LOCK_DIR: &str = "/run/zpersist";

/// `LOCK_DIR/PREFIX-NAME-SHA256.lock`: NAME the end of the path for people
/// to read, SHA256 that of the whole path with the symlinks in its parent
/// resolved. One lock per directory however it is spelt, a different one
/// for every other directory (`/a-b` and `/a/b` too), and a name of at
/// most 78 bytes plus the prefix for any path.
pub fn directory_lock_path(prefix: &str, dir: &str) -> String {
    let canonical = resolved(dir);
    let readable: String = canonical
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    let readable = &readable[readable.len().saturating_sub(48)..];
    let digest = hex(&Sha256::digest(canonical.as_bytes()));
    format!("{LOCK_DIR}/{prefix}-{readable}-{digest}.lock")
}

/// What to do when `program`'s run lock cannot be taken, by the cause.
pub fn lock_help(e: &io::Error, program: &str) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        // The error itself names the holder (pid, command line, since when).
        return format!("another {program} of this directory still holds it: let it finish, or stop it if it is stuck");
    }
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            format!("run as root: the run lock is a file in {LOCK_DIR}")
        }
        Some(libc::EROFS) => format!("{LOCK_DIR} is on a read-only filesystem; {program} needs it writable (it is a tmpfs on a normal boot)"),
        Some(libc::EEXIST | libc::ENOTDIR) => {
            format!("{LOCK_DIR} must be a directory: move away what is there")
        }
        Some(libc::ENOSPC | libc::EDQUOT) => {
            format!("the filesystem holding {LOCK_DIR} is full: free space there")
        }
        _ => format!("make {LOCK_DIR} a writable directory"),
    }
}

/// Takes `program`'s run lock of `dir` (waiting for another holder as
/// [`crate::lock`] does, telling `progress`), or says why not and what to do.
pub fn lock_directory(
    prefix: &str,
    program: &str,
    dir: &str,
    progress: &mut dyn Write,
) -> Result<TransientLock, Failure> {
    let path = directory_lock_path(prefix, dir);
    lock_removed_when_done(path.clone().into(), progress).map_err(|e| Failure {
        error: format!("cannot take the run lock {path} for {dir}: {e}"),
        help: format!("{}, then run again", lock_help(&e, program)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_distinct_bounded_and_readable() {
        let dashed = directory_lock_path("migrate", "/srv/a-b");
        let nested = directory_lock_path("migrate", "/srv/a/b");
        assert_ne!(dashed, nested);
        assert!(
            dashed.starts_with("/run/zpersist/migrate-srv-a-b-"),
            "{dashed}"
        );
        let long = format!("/srv/{}/{}/Séries TV", "l".repeat(250), "m".repeat(250));
        let name = directory_lock_path("migrate", &long);
        let file_name = name.strip_prefix("/run/zpersist/").unwrap();
        assert!(file_name.len() <= 126, "{file_name}");
        assert!(file_name.contains("-S_ries_TV-"), "{file_name}");
    }

    #[test]
    fn a_lock_that_cannot_be_taken_gets_help_for_its_cause() {
        let help = |e: io::Error| lock_help(&e, "migrate-to-dataset");
        assert!(help(io::Error::from_raw_os_error(13)).contains("run as root"));
        assert!(help(io::Error::from_raw_os_error(30)).contains("read-only"));
        let stuck = io::Error::new(io::ErrorKind::TimedOut, "still held after 120 s by pid 7");
        assert!(help(stuck).contains("another migrate-to-dataset of this directory still holds it"));
    }
}
