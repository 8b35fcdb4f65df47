//! zpersist's binaries, freshly built, for tests that cross packages (a
//! test can only name its own package's binaries with CARGO_BIN_EXE_*),
//! and staged where every user and sandbox reaches them
//! ([`crate::reachable`]): PostgreSQL runs `pitr-archive-wal` and
//! `pitr-restore-wal` as postgres, and the target directory may sit in a
//! clone under /root.

use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};

use crate::repo_root;

/// Every binary zpersist ships.
pub const ALL: &[&str] = &[
    "ensure-datasets",
    "migrate-to-dataset",
    "zpersist-notify",
    "replication-lag",
    "preseed-restore",
    "zpersist-drill",
    "zpersist-check-mounted",
    "zpersist-load-key",
    "zpersist-status",
    "zpersist-backup-snapshot",
    "pitr-archive-wal",
    "pitr-restore-wal",
    "pitr-base-backup",
    "pitr-restore",
    "pitr-drill",
    "pitr-heartbeat",
    "zpersist",
    "zpersist-pull-gate",
    "zpersist-pull-base",
];

/// The package a binary is built from: its own name, but for the PITR
/// binaries, which zpersist-pitr ships together.
fn package_of(bin: &str) -> &str {
    if bin.starts_with("pitr-") {
        "zpersist-pitr"
    } else {
        bin
    }
}

/// The target directory's profile folder of the running test
/// (`<target>/debug`), where cargo puts the binaries.
fn profile_dir() -> Utf8PathBuf {
    let exe = Utf8PathBuf::try_from(std::env::current_exe().expect("the test's own path"))
        .expect("a UTF-8 target directory");
    // <target>/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Utf8Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .to_owned()
}

/// The path of a zpersist binary, built from this checkout first (once per
/// test process; cargo makes that a no-op when it is up to date), so a test
/// never runs a stale build; staged with all the others
/// ([`crate::reachable::staged_dir`]), so that a binary that finds another beside itself
/// (pitr-restore's `pitr-restore-wal`) finds the staged one.
pub fn fresh(name: &str) -> Utf8PathBuf {
    built(name);
    static STAGED: OnceLock<Utf8PathBuf> = OnceLock::new();
    STAGED
        .get_or_init(|| crate::reachable::staged_dir(&profile_dir(), Some(ALL)))
        .join(name)
}

/// The path of a zpersist binary in cargo's target directory, built from
/// this checkout first (once per test process), not staged: for what
/// reaches the target directory itself (the OpenZFS guest's 9p share).
pub fn built(name: &str) -> Utf8PathBuf {
    assert!(
        ALL.contains(&name),
        "{name} is not one of zpersist's binaries: {ALL:?}"
    );
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "--quiet", "--bins"];
        let mut packages: Vec<&str> = ALL.iter().map(|bin| package_of(bin)).collect();
        packages.dedup();
        for package in packages {
            args.extend(["-p", package]);
        }
        let output = duct::cmd(&cargo, &args)
            .dir(repo_root())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "error: {cargo} {args:?} failed:\n{}\nhelp: fix the build and run the tests again",
            String::from_utf8_lossy(&output.stderr)
        );
    });
    profile_dir().join(name)
}
