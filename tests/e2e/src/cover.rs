//! Another filesystem mounted over a path (a dataset's mountpoint): what a
//! stray tmpfs or bind mount does to a service's data directory. The cover
//! is unmounted when dropped, a failed assertion included.

/// A tmpfs mounted over a path until dropped.
pub struct Tmpfs {
    path: String,
}

impl Tmpfs {
    /// Mounts a tmpfs whose source is `source` (what mountinfo shows) over
    /// `path`.
    pub fn over(path: &str, source: &str) -> Tmpfs {
        crate::pool::run_ok("mount", &["-t", "tmpfs", source, path]);
        Tmpfs { path: path.into() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = duct::cmd("umount", [&self.path]).unchecked().run();
    }
}
