//! The README's test command (scripts/test, issue 19 part 1): its last
//! step, scripts/lib/cargo-test-all, runs every test binary even when one
//! fails, names every failed test at the end, keeps cargo's closing lines
//! last and exits non-zero. Shown with the real cargo on a scratch
//! workspace of two packages: a test binary that fails first, one that
//! crashes, and tests that pass after them.

use std::time::Duration;

use camino::Utf8PathBuf;
use zpersist_e2e::{repo_root, zfs_watchdog};

fn write(path: &Utf8PathBuf, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_test_binary_runs_and_the_summary_names_every_failure() {
    let dir = Utf8PathBuf::from(format!(
        "/var/tmp/zpersist-test-command-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"alpha\", \"beta\"]\nresolver = \"2\"\n",
    );
    for package in ["alpha", "beta"] {
        write(
            &dir.join(format!("{package}/Cargo.toml")),
            &format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        );
        write(&dir.join(format!("{package}/src/lib.rs")), "");
    }
    // alpha's binaries run first: one fails a test, one crashes.
    write(
        &dir.join("alpha/tests/first.rs"),
        "#[test] fn passes() {}\n#[test] fn breaks() { panic!(\"broken on purpose\") }\n",
    );
    write(
        &dir.join("alpha/tests/second.rs"),
        "#[test] fn aborts() { std::process::abort() }\n",
    );
    write(
        &dir.join("beta/tests/last.rs"),
        "#[test] fn runs_after_the_failures() {}\n#[test] fn fails_too() { assert_eq!(1, 2) }\n",
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let locked = duct::cmd(&cargo, ["generate-lockfile", "--offline"])
        .dir(&dir)
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap();
    assert!(locked.status.success(), "{locked:?}");

    let script = repo_root().join("scripts/lib/cargo-test-all");
    let out = zfs_watchdog::run_bounded(
        duct::cmd(script.as_str(), [] as [&str; 0])
            .dir(&dir)
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture(),
        "scripts/lib/cargo-test-all",
        Duration::from_secs(300),
    )
    .unwrap_or_else(zfs_watchdog::Hung::fail);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{said}");

    assert_ne!(out.status.code(), Some(0), "failures exit non-zero");
    // Every binary ran, the passing tests after the failures included.
    assert!(
        said.contains("test runs_after_the_failures ... ok"),
        "{said}"
    );
    let summary = said
        .split("== scripts/test: summary ==")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{said}"));
    assert!(
        summary.contains("2 passed, 2 failed, 0 ignored, in 7 test binaries; 3 binaries failed:"),
        "{summary}"
    );
    for (binary, tests) in [
        ("-p alpha --test first", "        breaks\n"),
        (
            "-p alpha --test second",
            "        (no test reported FAILED: the binary itself failed",
        ),
        ("-p beta --test last", "        fails_too\n"),
    ] {
        assert!(
            summary.contains(&format!("    {binary}\n{tests}")),
            "{binary}: {summary}"
        );
    }
    // cargo's own closing lines stay last.
    let closing = said.trim_end().lines().rev().take(4).collect::<Vec<_>>();
    assert_eq!(
        closing,
        [
            "    `-p beta --test last`",
            "    `-p alpha --test second`",
            "    `-p alpha --test first`",
            "error: 3 targets failed:",
        ],
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
