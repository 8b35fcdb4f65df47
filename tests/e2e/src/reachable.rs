//! What another user or a sandbox runs, staged where it can reach it.
//!
//! A clone may live anywhere. Under /root (mode 0700) the `postgres` user,
//! whom the PITR tests' servers, `archive_command` and `restore_command`
//! run as, cannot enter it; under /tmp a unit with `PrivateTmp=` (as
//! [`crate::units::private_tmp_argv`] runs one, and as systemd does) sees
//! an empty /tmp of its own. So nothing another user or a sandboxed
//! process runs or reads is named by its path in the checkout or the
//! target directory:
//!
//! - [`staged_dir`] copies the files of a directory (zpersist's freshly
//!   built binaries: [`crate::binaries::fresh`]; the wrapper scripts of
//!   tests/env: [`env_dir`]) into [`STAGE`], world-readable, on the disk
//!   and outside /tmp and /var/tmp (which `PrivateTmp=` hides). A copy is
//!   a hard link when the checkout shares STAGE's file system, else a copy
//!   with the source's modification time; it is renewed (atomically, by
//!   rename) whenever the source changes, so parallel test processes share
//!   one staged set per source directory.
//! - [`NEUTRAL_CWD`] is the working directory of everything a test starts
//!   as another user (`runuser -u postgres`), and of what a test starts
//!   that switches users itself (the pitr binaries, preseed-restore, the
//!   runbooks): a test's own working directory is its package's directory
//!   in the clone.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};

use camino::{Utf8Path, Utf8PathBuf};

use crate::repo_root;

/// Where staged files live: one directory per source directory,
/// `<source's name>-<hash of its path>`, each holding a `.source` file
/// naming where its files come from.
pub const STAGE: &str = "/var/cache/zpersist-test-reachable";

/// The working directory of what runs as another user.
pub const NEUTRAL_CWD: &str = "/";

/// 64-bit FNV-1a: a stable name for a source directory.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The staged copy of the directory `source`, holding its files `names`
/// (every regular file in it when `None`), each up to date with the
/// source, and reachable by every user: a world-traversable path, the
/// files' own modes kept. Panics, naming the file, when it cannot.
pub fn staged_dir(source: &Utf8Path, names: Option<&[&str]>) -> Utf8PathBuf {
    let source = source
        .canonicalize_utf8()
        .unwrap_or_else(|e| panic!("error: {source}: {e}\nhelp: stage an existing directory"));
    let stage = Utf8Path::new(STAGE);
    let dir = stage.join(format!(
        "{}-{:016x}",
        source.file_name().unwrap_or("root"),
        fnv1a(source.as_str().as_bytes())
    ));
    for made in [stage, dir.as_path()] {
        fs::create_dir_all(made).unwrap_or_else(|e| panic!("error: {made}: {e}"));
        fs::set_permissions(made, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("error: chmod 0755 {made}: {e}"));
    }
    let record = dir.join(".source");
    if fs::read_to_string(&record).ok().as_deref() != Some(source.as_str()) {
        write_replacing(&record, source.as_str());
    }
    let names: Vec<String> = match names {
        Some(names) => names.iter().map(|n| n.to_string()).collect(),
        None => fs::read_dir(&source)
            .unwrap_or_else(|e| panic!("error: {source}: {e}"))
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    };
    for name in &names {
        stage_file(&source.join(name), &dir.join(name));
    }
    prune_stale(stage);
    assert_reachable(&dir);
    dir
}

/// A wrapper directory of tests/env (`sanoid-zfs`, `delegation-zfs`,
/// `recording-zfs`, `runbook-bin`), staged.
pub fn env_dir(name: &str) -> Utf8PathBuf {
    staged_dir(&repo_root().join("tests/env").join(name), None)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name beside `path` that no other thread or process uses.
fn temporary_beside(path: &Utf8Path) -> Utf8PathBuf {
    path.with_file_name(format!(
        ".{}.{}.{}",
        path.file_name().unwrap_or("file"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
}

fn write_replacing(path: &Utf8Path, text: &str) {
    let temporary = temporary_beside(path);
    fs::write(&temporary, text).unwrap_or_else(|e| panic!("error: {temporary}: {e}"));
    fs::rename(&temporary, path).unwrap_or_else(|e| panic!("error: rename to {path}: {e}"));
}

/// Makes `staged` the same file as `source`: a hard link, or a copy with
/// its modification time; left alone when it already is.
fn stage_file(source: &Utf8Path, staged: &Utf8Path) {
    let meta = fs::metadata(source).unwrap_or_else(|e| {
        panic!("error: {source}: {e}\nhelp: build it first (the test builds zpersist's binaries itself)")
    });
    if let Ok(have) = fs::metadata(staged) {
        let same_inode = (have.dev(), have.ino()) == (meta.dev(), meta.ino());
        let same_copy = have.len() == meta.len()
            && have.mtime() == meta.mtime()
            && have.mtime_nsec() == meta.mtime_nsec()
            && have.mode() == meta.mode();
        if same_inode || same_copy {
            return;
        }
    }
    let temporary = temporary_beside(staged);
    let _ = fs::remove_file(&temporary);
    if fs::hard_link(source, &temporary).is_err() {
        fs::copy(source, &temporary)
            .unwrap_or_else(|e| panic!("error: copying {source} to {temporary}: {e}"));
        let modified = meta.modified().expect("a modification time");
        fs::File::options()
            .write(true)
            .open(&temporary)
            .and_then(|f| f.set_modified(modified))
            .unwrap_or_else(|e| panic!("error: setting the time of {temporary}: {e}"));
    }
    fs::rename(&temporary, staged)
        .unwrap_or_else(|e| panic!("error: rename {temporary} to {staged}: {e}"));
}

/// Removes staged directories whose source directory is gone (a removed
/// clone); a directory being made (no `.source` yet) is left alone.
fn prune_stale(stage: &Utf8Path) {
    let Ok(entries) = fs::read_dir(stage) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(source) = fs::read_to_string(path.join(".source")) else {
            continue;
        };
        if !Utf8Path::new(&source).exists() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Panics, naming the directory, unless every user can traverse every
/// directory from / down to `path`.
pub fn assert_reachable(path: &Utf8Path) {
    for dir in path.ancestors() {
        let meta = fs::metadata(dir).unwrap_or_else(|e| panic!("error: {dir}: {e}"));
        assert!(
            meta.mode() & 0o001 != 0,
            "error: {dir}: other users cannot enter it (mode {:o}), so they cannot reach {path}\n\
             help: chmod o+x {dir}",
            meta.mode() & 0o7777
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under 0700, as a clone under /root is: its staged copy
    /// is reachable, renewed when the source changes, and a file another
    /// user can run.
    #[test]
    fn a_file_below_a_private_directory_is_staged_where_postgres_reaches_it() {
        let private = Utf8PathBuf::from(format!(
            "/var/tmp/zpersist-reachable-test-{}/home",
            std::process::id()
        ));
        let source = private.join("clone/tests/env/wrapper");
        fs::create_dir_all(&source).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let script = source.join("hello");
        fs::write(&script, "#!/bin/sh\necho one\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

        let staged = staged_dir(&source, None);
        assert!(staged.starts_with(STAGE), "{staged}");
        let as_postgres = |path: &Utf8Path| {
            duct::cmd("runuser", ["-u", "postgres", "--", path.as_str()])
                .dir(NEUTRAL_CWD)
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
                .unwrap()
        };
        let direct = as_postgres(&script);
        assert!(!direct.status.success(), "postgres cannot run {script}");
        let out = as_postgres(&staged.join("hello"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");

        std::thread::sleep(std::time::Duration::from_millis(20));
        let replacement = source.join(".hello.new");
        fs::write(&replacement, "#!/bin/sh\necho two\n").unwrap();
        fs::set_permissions(&replacement, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&replacement, &script).unwrap();
        assert_eq!(staged_dir(&source, None), staged);
        let out = as_postgres(&staged.join("hello"));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "two\n");

        fs::remove_dir_all(private.parent().unwrap()).unwrap();
        prune_stale(Utf8Path::new(STAGE));
        assert!(!staged.exists(), "{staged} outlived its source");
    }

    /// From another file system (a clone on a tmpfs) no hard link is
    /// possible: the staged file is a copy, kept as long as the source is
    /// unchanged and renewed when it changes.
    #[test]
    fn a_file_on_another_file_system_is_copied_and_renewed() {
        let source = Utf8PathBuf::from(format!(
            "/dev/shm/zpersist-reachable-test-{}",
            std::process::id()
        ));
        fs::create_dir_all(&source).unwrap();
        let file = source.join("tool");
        fs::write(&file, "one").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();

        let staged = staged_dir(&source, None).join("tool");
        let (a, b) = (fs::metadata(&file).unwrap(), fs::metadata(&staged).unwrap());
        assert_ne!(a.dev(), b.dev(), "{staged} is on another file system");
        assert_eq!(fs::read_to_string(&staged).unwrap(), "one");
        assert_eq!(b.mode() & 0o7777, 0o755);
        let inode = b.ino();
        staged_dir(&source, None);
        assert_eq!(fs::metadata(&staged).unwrap().ino(), inode, "left alone");

        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&file, "two!").unwrap();
        staged_dir(&source, None);
        assert_eq!(fs::read_to_string(&staged).unwrap(), "two!");
        fs::remove_dir_all(&source).unwrap();
        prune_stale(Utf8Path::new(STAGE));
    }
}
