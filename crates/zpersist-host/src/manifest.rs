//! Tree manifests, for verification independent of whatever copied the
//! data (rsync, zfs receive): walk a tree in Rust and list every entry's
//! name, type, owner, mode, size, mtime (files), SHA-256 (files), link
//! target (symlinks), device number (devices), hardlink group and extended
//! attributes ([`walk`], [`Tree::hash_contents`], [`hash_trees`] with
//! progress lines); compare two such lists ([`differences`]) or their
//! digests ([`Tree::summary`]). And the cheap question before any of that:
//! does a tree hold data at all ([`holds_data`], [`look_for_data`] saying
//! where, and which mounts inside it hide part of it).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
pub use zpersist_core::facts::TreeSummary;
use zpersist_core::human_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// One entry of a tree; `path` is relative to the root (empty for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Regular files only: rsync -a keeps it, services may rely on it.
    pub mtime: i64,
    pub rdev: u64,
    pub target: Option<Vec<u8>>,
    /// Another entry of the same tree this one is a hardlink of (the first
    /// in walk order); its content is that entry's.
    pub hardlink_of: Option<Vec<u8>>,
    /// The inode of a file with several links (0 otherwise): groups them.
    pub inode: u64,
    pub sha256: Option<[u8; 32]>,
    /// Extended attribute names with the SHA-256 of their values.
    pub xattrs: Vec<(Vec<u8>, [u8; 32])>,
    /// Allocated bytes (st_blocks * 512): reported, never compared.
    pub allocated: u64,
}

/// Counters shared with the progress printer.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_done: AtomicU64,
    pub files_total: AtomicU64,
    pub bytes_done: AtomicU64,
    pub bytes_total: AtomicU64,
}

impl Progress {
    pub fn add_totals(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

fn rel_display(path: &[u8]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsString::from_vec(rel.to_vec()))
    }
}

/// Lists the tree's entries (metadata only, no contents).
pub fn walk(root: &Path) -> io::Result<Tree> {
    let root_meta = fs::symlink_metadata(root)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
    let device = root_meta.dev();
    let mut entries = Vec::new();
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let full = join(root, &rel);
        let meta = fs::symlink_metadata(&full)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
        let kind = kind_of(&meta.file_type());
        if meta.dev() != device {
            return Err(io::Error::other(format!(
                "{} is on another filesystem (a mount inside the tree)",
                full.display()
            )));
        }
        let target = if kind == Kind::Symlink {
            Some(fs::read_link(&full)?.into_os_string().into_vec())
        } else {
            None
        };
        let xattrs = read_xattrs(&full)?;
        entries.push(Entry {
            path: rel.clone(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: if kind == Kind::File { meta.size() } else { 0 },
            mtime: if kind == Kind::File { meta.mtime() } else { 0 },
            rdev: if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
                meta.rdev()
            } else {
                0
            },
            target,
            hardlink_of: None,
            inode: if kind == Kind::File && meta.nlink() > 1 {
                meta.ino()
            } else {
                0
            },
            sha256: None,
            xattrs,
            allocated: meta.blocks() * 512,
        });
        if kind == Kind::Dir {
            let mut children: Vec<Vec<u8>> = fs::read_dir(&full)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?
                .map(|entry| entry.map(|e| e.file_name().as_bytes().to_vec()))
                .collect::<io::Result<_>>()?;
            // Reverse order on the stack gives a sorted, depth-first walk.
            children.sort();
            for name in children.into_iter().rev() {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&name);
                stack.push(child);
            }
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    // Every member of a hardlink group points at the group's smallest path,
    // which alone carries the content hash.
    let mut group_first: HashMap<u64, Vec<u8>> = HashMap::new();
    for entry in entries.iter_mut().filter(|e| e.inode != 0) {
        match group_first.get(&entry.inode) {
            Some(first) => entry.hardlink_of = Some(first.clone()),
            None => {
                group_first.insert(entry.inode, entry.path.clone());
            }
        }
    }
    Ok(Tree { entries })
}

/// Whether the tree at `root` holds data: any entry but a directory (a
/// regular file, a symlink, a FIFO, a socket, a device), on `root`'s own
/// filesystem (a mount inside it is another filesystem's data). Stops at
/// the first one found; directories alone, however many, are no data.
pub fn holds_data(root: &Path) -> io::Result<bool> {
    Ok(look_for_data(root)?.data.is_some())
}

/// What [`look_for_data`] found on a tree's own filesystem.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// The first entry that is data (anything but a directory).
    pub data: Option<PathBuf>,
    /// Directories another filesystem is mounted on, seen before `data`
    /// was (all of them when there is none): what the tree's own
    /// filesystem holds beneath them is hidden, so "no data" is not known.
    pub mounts_inside: Vec<PathBuf>,
}

/// [`holds_data`], saying where: the first entry that is data, and the
/// mounts inside the tree that hide part of it.
pub fn look_for_data(root: &Path) -> io::Result<Found> {
    let device = fs::symlink_metadata(root)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?
        .dev();
    let mut found = Found::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if !meta.is_dir() {
                found.data = Some(path);
                return Ok(found);
            }
            if meta.dev() == device {
                stack.push(path);
            } else {
                found.mounts_inside.push(path);
            }
        }
    }
    Ok(found)
}

/// Walks and hashes the trees at `roots` side by side (a thread each),
/// printing `LABEL: 12/30 files, 1.0 KiB of 2.0 KiB hashed` on stderr
/// every `every` and once more at the end with the totals reached.
pub fn hash_trees(roots: &[&str], every: Duration, label: &str) -> Result<Vec<Tree>, String> {
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let progress = &progress;
        let done = &done;
        let print = move || {
            eprintln!(
                "{label}: {}/{} files, {} of {} hashed",
                progress.files_done.load(Ordering::Relaxed),
                progress.files_total.load(Ordering::Relaxed),
                human_bytes(progress.bytes_done.load(Ordering::Relaxed)),
                human_bytes(progress.bytes_total.load(Ordering::Relaxed)),
            )
        };
        let printer = scope.spawn(move || {
            let mut last = Instant::now();
            let tick = Duration::from_millis(50).min(every.max(Duration::from_millis(10)));
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                if last.elapsed() >= every && !done.load(Ordering::Relaxed) {
                    print();
                    last = Instant::now();
                }
            }
            // The last line gives the totals, however quick the run was.
            print();
        });
        let workers: Vec<_> = roots
            .iter()
            .map(|root| {
                scope.spawn(move || -> Result<Tree, String> {
                    let mut tree =
                        walk(Path::new(root)).map_err(|e| format!("reading {root}: {e}"))?;
                    progress.add_totals(tree.files(), tree.bytes());
                    tree.hash_contents(Path::new(root), progress)
                        .map_err(|e| format!("reading {root}: {e}"))?;
                    Ok(tree)
                })
            })
            .collect();
        let trees: Result<Vec<Tree>, String> = workers
            .into_iter()
            .map(|w| w.join().expect("a hashing thread panicked"))
            .collect();
        done.store(true, Ordering::Relaxed);
        let _ = printer.join();
        trees
    })
}

/// Up to 20 differences, separated by `; ` (an error is one line: see
/// zpersist-report), and how many more there are.
pub fn list_differences(differences: &[String]) -> String {
    let mut shown: Vec<String> = differences.iter().take(20).cloned().collect();
    if differences.len() > 20 {
        shown.push(format!("... and {} more", differences.len() - 20));
    }
    shown.join("; ")
}

fn kind_of(file_type: &fs::FileType) -> Kind {
    if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else if file_type.is_socket() {
        Kind::Socket
    } else if file_type.is_char_device() {
        Kind::CharDevice
    } else if file_type.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::File
    }
}

/// A filesystem without xattr support (zfs-fuse, xattr=off) has none.
fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, [u8; 32])>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{}: xattrs: {e}", path.display()),
            ))
        }
    };
    let mut xattrs = Vec::new();
    for name in names {
        let value = xattr::get(path, &name)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: xattr: {e}", path.display())))?
            .unwrap_or_default();
        xattrs.push((name.as_bytes().to_vec(), Sha256::digest(&value).into()));
    }
    xattrs.sort();
    Ok(xattrs)
}

/// The error of a filesystem that has no extended attributes.
pub fn is_unsupported(e: &io::Error) -> bool {
    // EOPNOTSUPP (95) / ENOTSUP
    e.raw_os_error() == Some(95) || e.kind() == io::ErrorKind::Unsupported
}

impl Tree {
    pub fn files(&self) -> u64 {
        self.entries.iter().filter(|e| e.kind == Kind::File).count() as u64
    }

    /// Bytes of content (a hardlinked file counted once).
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::File && e.hardlink_of.is_none())
            .map(|e| e.size)
            .sum()
    }

    pub fn allocated(&self) -> u64 {
        self.entries.iter().map(|e| e.allocated).sum()
    }

    pub fn with_xattrs(&self) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| !e.xattrs.is_empty())
            .collect()
    }

    /// Reads every file's content (once per hardlink group) into its SHA-256.
    /// `progress` counts what `files()` and `bytes()` count: every name of
    /// a regular file, and each content once.
    pub fn hash_contents(&mut self, root: &Path, progress: &Progress) -> io::Result<()> {
        let mut buffer = vec![0u8; 1 << 20];
        for entry in &mut self.entries {
            if entry.kind != Kind::File {
                continue;
            }
            if entry.hardlink_of.is_some() {
                // Its content is its group's first name's, hashed already
                // (that name sorts first); the name itself is a file done.
                progress.files_done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let full = join(root, &entry.path);
            let mut file = fs::File::open(&full)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
            let mut hasher = Sha256::new();
            loop {
                let n = file
                    .read(&mut buffer)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                progress.bytes_done.fetch_add(n as u64, Ordering::Relaxed);
            }
            entry.sha256 = Some(hasher.finalize().into());
            progress.files_done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// SHA-256 over the canonical listing: equal digests, equal trees.
    pub fn summary(&self) -> TreeSummary {
        let mut hasher = Sha256::new();
        for entry in &self.entries {
            hasher.update(canonical_line(entry));
        }
        TreeSummary {
            entries: self.entries.len() as u64,
            files: self.files(),
            bytes: self.bytes(),
            digest: hex(&hasher.finalize()),
        }
    }
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One entry as bytes; lengths prefix every variable field so no two
/// different entries serialise alike.
fn canonical_line(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    field(&entry.path);
    field(format!("{:?}", entry.kind).as_bytes());
    field(
        format!(
            "{:o} {} {} {} {} {}",
            entry.mode, entry.uid, entry.gid, entry.size, entry.mtime, entry.rdev
        )
        .as_bytes(),
    );
    field(entry.target.as_deref().unwrap_or(b"-"));
    field(entry.hardlink_of.as_deref().unwrap_or(b"-"));
    field(entry.sha256.as_ref().map_or(&[][..], |h| &h[..]));
    for (name, value) in &entry.xattrs {
        field(name);
        field(value);
    }
    field(b"\n");
    out
}

/// How two trees differ, entry by entry, for the report.
pub fn differences(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (a, b) = (&expected.entries, &actual.entries);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.path.cmp(&y.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push(format!(
                    "{}: missing from the copy",
                    rel_display(&a[i].path)
                ));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(format!("{}: only in the copy", rel_display(&b[j].path)));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let changed = changed_fields(&a[i], &b[j]);
                if !changed.is_empty() {
                    out.push(format!(
                        "{}: {} differ",
                        rel_display(&a[i].path),
                        changed.join(", ")
                    ));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn changed_fields(x: &Entry, y: &Entry) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let checks: [(&str, bool); 11] = [
        ("type", x.kind != y.kind),
        ("mode", x.mode != y.mode),
        ("owner (uid)", x.uid != y.uid),
        ("group (gid)", x.gid != y.gid),
        ("size", x.size != y.size),
        ("mtime", x.mtime != y.mtime),
        ("device number", x.rdev != y.rdev),
        ("symlink target", x.target != y.target),
        ("hardlinks", x.hardlink_of != y.hardlink_of),
        ("content (SHA-256)", x.sha256 != y.sha256),
        ("extended attributes", x.xattrs != y.xattrs),
    ];
    for (name, differs) in checks {
        if differs {
            changed.push(name);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("zpersist-manifest-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn hashed(root: &Path) -> Tree {
        let mut tree = walk(root).unwrap();
        let progress = Progress::default();
        tree.hash_contents(root, &progress).unwrap();
        // What was counted done is what the totals count.
        assert_eq!(progress.files_done.load(Ordering::Relaxed), tree.files());
        assert_eq!(progress.bytes_done.load(Ordering::Relaxed), tree.bytes());
        tree
    }

    #[test]
    fn equal_trees_have_equal_digests_and_any_change_shows() {
        let dir = scratch("eq");
        for side in ["a", "b"] {
            let root = dir.join(side);
            fs::create_dir_all(root.join("sub dir")).unwrap();
            fs::write(root.join("sub dir/épisode.nfo"), "same").unwrap();
            fs::hard_link(root.join("sub dir/épisode.nfo"), root.join("link")).unwrap();
            std::os::unix::fs::symlink("sub dir", root.join("s")).unwrap();
            let t = fs::metadata(dir.join("a/sub dir/épisode.nfo"))
                .unwrap()
                .modified()
                .unwrap();
            fs::File::options()
                .write(true)
                .open(root.join("sub dir/épisode.nfo"))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let (a, b) = (hashed(&dir.join("a")), hashed(&dir.join("b")));
        assert_eq!(differences(&a, &b), Vec::<String>::new());
        assert_eq!(a.summary(), b.summary());
        assert_eq!(
            a.entries.iter().filter(|e| e.hardlink_of.is_some()).count(),
            1
        );

        // Same size and mtime, different content: only the hash sees it.
        let file = dir.join("b/sub dir/épisode.nfo");
        let t = fs::metadata(&file).unwrap().modified().unwrap();
        fs::write(&file, "diff").unwrap();
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let b = hashed(&dir.join("b"));
        assert_ne!(a.summary(), b.summary());
        let diffs = differences(&a, &b);
        assert!(diffs[0].contains("content (SHA-256)"), "{diffs:?}");

        // A broken hardlink (two separate files) shows too.
        fs::remove_file(dir.join("b/link")).unwrap();
        fs::write(dir.join("b/link"), "same").unwrap();
        let diffs = differences(&a, &hashed(&dir.join("b")));
        assert!(diffs.iter().any(|d| d.contains("hardlinks")), "{diffs:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tree_of_directories_only_holds_no_data_and_any_other_entry_does() {
        let dir = scratch("holds");
        fs::create_dir_all(dir.join("a/b/c")).unwrap();
        fs::create_dir_all(dir.join("d")).unwrap();
        assert!(!holds_data(&dir).unwrap());
        std::os::unix::fs::symlink("nowhere", dir.join("a/b/c/dangling")).unwrap();
        assert!(holds_data(&dir).unwrap());
        fs::remove_file(dir.join("a/b/c/dangling")).unwrap();
        fs::write(dir.join("d/empty file"), "").unwrap();
        assert!(holds_data(&dir).unwrap(), "an empty file is data");
        assert!(holds_data(&dir.join("missing")).is_err());
        let found = look_for_data(&dir).unwrap();
        assert_eq!(found.data, Some(dir.join("d/empty file")));
        assert!(found.mounts_inside.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn trees_hashed_side_by_side_come_back_in_order() {
        let dir = scratch("side");
        for (side, text) in [("a", "one"), ("b", "two!")] {
            fs::create_dir_all(dir.join(side)).unwrap();
            fs::write(dir.join(side).join("f"), text).unwrap();
        }
        let roots = [dir.join("a"), dir.join("b")];
        let roots: Vec<&str> = roots.iter().map(|r| r.to_str().unwrap()).collect();
        let trees = hash_trees(&roots, Duration::from_secs(60), "test").unwrap();
        assert_eq!((trees[0].bytes(), trees[1].bytes()), (3, 4));
        let diffs = differences(&trees[0], &trees[1]);
        assert!(diffs.iter().any(|d| d.starts_with("f: ")), "{diffs:?}");
        assert!(hash_trees(&["/nonexistent/zpersist"], Duration::from_secs(60), "t").is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
