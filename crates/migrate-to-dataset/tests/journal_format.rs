//! The on-disk journal stays readable across versions: a migration
//! interrupted by an earlier migrate-to-dataset resumes with this one.
//!
//! `tests/fixtures/journal-v1-verified.json` is the journal the binary of
//! commit "migrate-to-dataset: a journal fixture of the binary before the
//! host/zfs split" wrote when it was aborted at `journaled:verify` on the
//! tree `fixed_tree` makes (its dataset and path replaced by `@DATASET@`
//! and `@PATH@`). The tree is the same on every run (contents, owners,
//! modes, mtimes), so its digest is too: the fixture also pins the
//! verification digest, which `--cleanup` and `verify-mounted` compare.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use zpersist_e2e::pool::{get, run_ok, run_recorded, TestPool};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_migrate-to-dataset"))
}

const FIXTURE: &str = include_str!("fixtures/journal-v1-verified.json");

/// A small tree that is identical on every run, mtimes included.
fn fixed_tree(root: &Utf8Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("state.db"), "state\n".repeat(100)).unwrap();
    std::fs::write(root.join("sub/config.xml"), "<Config/>\n").unwrap();
    std::fs::hard_link(root.join("sub/config.xml"), root.join("sub/hard.xml")).unwrap();
    std::os::unix::fs::symlink("sub/config.xml", root.join("link")).unwrap();
    run_ok("chown", &["-hR", "1234:1234", root.as_str()]);
    run_ok("chmod", &["0750", root.as_str()]);
    run_ok("chmod", &["0755", root.join("sub").as_str()]);
    run_ok("chmod", &["0640", root.join("state.db").as_str()]);
    run_ok("chmod", &["0600", root.join("sub/config.xml").as_str()]);
    for file in ["state.db", "sub/config.xml"] {
        run_ok("touch", &["-d", "@1700000000", root.join(file).as_str()]);
    }
}

fn args<'a>(dataset: &'a str, path: &'a Utf8Path) -> [&'a str; 4] {
    ["--dataset", dataset, "--path", path.as_str()]
}

fn journal_path(path: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{path}.zpersist-migration.json"))
}

/// A journal with its timestamps zeroed: they are the only part that
/// differs between two runs on the same tree.
fn without_times(mut journal: Value) -> Value {
    for entry in journal["history"].as_array_mut().unwrap() {
        entry[1] = 0.into();
    }
    journal
}

/// A migration of `fixed_tree` into `services/NAME`, aborted at `point`:
/// its dataset, its path, and the fixture's journal for them.
fn crashed_at(pool: &TestPool, name: &str, point: &str) -> (String, Utf8PathBuf, String) {
    let dataset = pool.ds(&format!("services/{name}"));
    let path = pool.scratch(&format!("var-lib/{name}"));
    fixed_tree(&path);
    let env = BTreeMap::from([("ZPERSIST_MIGRATE_FAILPOINT", point)]);
    let crashed = run_recorded(binary(), &args(&dataset, &path), &env);
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    assert!(
        crashed.stderr.contains(&format!("failpoint {point}")),
        "{crashed:#?}"
    );
    let journal = FIXTURE
        .replace("@DATASET@", &dataset)
        .replace("@PATH@", path.as_str());
    (dataset, path, journal)
}

#[test]
fn a_migration_interrupted_by_the_previous_binary_resumes_with_this_one() {
    let pool = TestPool::new("migfmt");

    // This binary, aborted at the same point, writes the same journal.
    let (_, path, expected) = crashed_at(&pool, "same", "journaled:verify");
    let written = std::fs::read_to_string(journal_path(&path)).unwrap();
    assert_eq!(
        without_times(serde_json::from_str(&written).unwrap()),
        without_times(serde_json::from_str(&expected).unwrap()),
        "the journal this binary writes:\n{written}"
    );

    // A tree the previous binary copied and verified (the same state this
    // binary leaves right after the verification), with its journal.
    let (dataset, path, old) = crashed_at(&pool, "old", "after:verify");
    std::fs::write(journal_path(&path), &old).unwrap();

    let rerun = run_recorded(binary(), &args(&dataset, &path), &BTreeMap::new());
    assert_eq!(rerun.code, 0, "{rerun:#?}");
    assert!(
        rerun.stdout.contains("after stage Verified"),
        "{}",
        rerun.stdout
    );
    assert!(rerun.stdout.contains("verify-mounted:"), "{}", rerun.stdout);
    assert!(rerun.calls_named("create").is_empty(), "{rerun:#?}");
    assert_eq!(get(&dataset, "mountpoint"), path.as_str());
    let done: Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path(&path)).unwrap()).unwrap();
    assert_eq!(done["stage"], "done");
    // What the previous binary recorded is kept, and the new stages follow.
    let old: Value = serde_json::from_str(&old).unwrap();
    assert_eq!(done["verified"], old["verified"]);
    let history = done["history"].as_array().unwrap();
    assert_eq!(history[..4], old["history"].as_array().unwrap()[..]);
    let stages: Vec<&str> = history.iter().map(|h| h[0].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        [
            "started",
            "created",
            "copied",
            "verified",
            "moved-aside",
            "mounted",
            "done"
        ]
    );

    // And --cleanup accepts the original the previous binary verified.
    let cleanup = run_recorded(
        binary(),
        &[&args(&dataset, &path)[..], &["--cleanup"]].concat(),
        &BTreeMap::new(),
    );
    assert_eq!(cleanup.code, 0, "{cleanup:#?}");
    assert!(cleanup.stdout.contains("identical"), "{}", cleanup.stdout);
}
