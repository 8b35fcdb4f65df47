//! Scaffolding for tests against real components. Never used by what users run.
pub mod assertions;
pub mod binaries;
pub mod container;
pub mod cover;
pub mod delegation;
pub mod generated;
pub mod guest;
pub mod guest_system;
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

/// Runs a tests/env script that builds something once and caches it
/// (`script`, relative to the repository), and returns the path it prints.
/// Panics, naming `what` and the `tools` it needs, when it fails.
pub fn cached_by(script: &str, what: &str, tools: &str) -> Utf8PathBuf {
    let script = repo_root().join(script);
    let output = std::process::Command::new(&script)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("error: cannot run {script}: {e}"));
    assert!(
        output.status.success(),
        "error: {script} could not build {what} (see above)\n\
         help: it needs {tools} (tests/env/install.sh installs them) and apt's Debian mirror"
    );
    let path = String::from_utf8(output.stdout).expect("a UTF-8 path");
    Utf8PathBuf::from(path.trim())
}
