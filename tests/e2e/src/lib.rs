//! Scaffolding for tests against real components. Never used by what users run.
pub mod binaries;
pub mod container;
pub mod delegation;
pub mod generated;
pub mod machine;
pub mod nix;
pub mod pitr_units;
pub mod pool;
pub mod postgres;
pub mod reachable;
pub mod runbook;
pub mod sshd;
pub mod stand_in;
pub mod syncoid;
pub mod systemd;
pub mod timed;
pub mod units;
pub mod zfs_fuse;
pub mod zfs_watchdog;

use camino::{Utf8Path, Utf8PathBuf};

/// The repository root (the directory holding `flake.nix`).
pub fn repo_root() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize_utf8()
        .expect("the repository root exists")
}
