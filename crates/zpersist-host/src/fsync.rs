//! Making what was written durable, and telling a full disk from other
//! write errors. ([`crate::write_atomically`] replaces a file durably.)

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// fsync of a directory: a rename or removal in it is on disk after this.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// syncfs(2) of the filesystem holding `path` (what `sync -f PATH` does):
/// everything written to it is on disk after this.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: syncfs takes an open descriptor, which `file` keeps open for
    // the call; it touches no memory of ours.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// ENOSPC or EDQUOT: the filesystem is full or over its quota.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_and_its_filesystem_sync_and_a_full_disk_is_recognised() {
        let dir = std::env::temp_dir();
        sync_dir(&dir).unwrap();
        sync_filesystem(&dir).unwrap();
        assert!(sync_filesystem(Path::new("/nonexistent/zpersist")).is_err());
        assert!(is_out_of_space(&io::Error::from_raw_os_error(28)));
        assert!(is_out_of_space(&io::Error::from_raw_os_error(122)));
        assert!(!is_out_of_space(&io::Error::from_raw_os_error(13)));
    }
}
