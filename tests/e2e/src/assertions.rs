//! Assertions on what a zpersist binary ran, shared by a zfs-fuse test and
//! its OpenZFS twin (tests/e2e/tests/openzfs_more.rs), so both hold the
//! binary to the same promise.

use crate::pool::Recorded;

/// migrate-to-dataset's mutations are exactly one create (at the temporary
/// mountpoint `PATH.zpersist-new`, with `canmount=on` and the declared
/// `options`) and one mountpoint change to `path`.
pub fn migration_created_once_and_moved_the_mountpoint(
    run: &Recorded,
    dataset: &str,
    path: &str,
    options: &[&str],
) {
    let mutations: Vec<String> = run.mutating_calls().iter().map(|a| a.join(" ")).collect();
    assert_eq!(mutations.len(), 2, "{mutations:?}");
    assert!(mutations[0].starts_with("create -p "), "{mutations:?}");
    let temporary = format!("-o mountpoint={path}.zpersist-new");
    for option in ["-o canmount=on", temporary.as_str()]
        .into_iter()
        .chain(options.iter().copied())
    {
        assert!(
            mutations[0].contains(option),
            "{option} missing: {mutations:?}"
        );
    }
    assert_eq!(mutations[1], format!("set mountpoint={path} {dataset}"));
}

/// zpersist-drill never names the live dataset `ds` in a call that changes
/// something but as the snapshot a send or a clone reads, and never
/// destroys, receives, creates or sets outside its scratch dataset
/// (`DS.zpersist-drill`).
pub fn drill_left_the_live_dataset_untouched(ds: &str, run: &Recorded) {
    let scratch = format!("{ds}.zpersist-drill");
    let snapshot = format!("{ds}@");
    for argv in run.mutating_calls() {
        match argv[0].as_str() {
            "send" | "clone" => {}
            "destroy" | "receive" | "recv" | "create" | "set" | "mount" | "unmount" | "umount"
            | "inherit" | "load-key" | "unload-key" => assert!(
                argv.last()
                    .is_some_and(|n| *n == scratch || n.starts_with(&format!("{scratch}/"))),
                "zfs {argv:?} is not below the scratch dataset"
            ),
            _ => panic!("the drill ran zfs {argv:?}"),
        }
        for arg in &argv[1..] {
            assert!(
                arg != ds && !arg.starts_with(&format!("{ds}/")),
                "zfs {argv:?} names the live dataset"
            );
            if arg.starts_with(&snapshot) {
                assert!(
                    matches!(argv[0].as_str(), "send" | "clone"),
                    "zfs {argv:?} names the live dataset's snapshot"
                );
            }
        }
    }
}

/// A drill's result file (`result`, parsed) says success for every source,
/// in the plan's order (`labels`), each with an RPO, an RTO and the checks
/// of sonarr's profile (data, `sonarr.db`'s integrity, the declared
/// `test -s sonarr.db`), and the local snapshot's manifest check.
pub fn drill_passed_for_every_source(result: &serde_json::Value, labels: &[&str]) {
    assert_eq!(result["success"], true, "{result:#}");
    let sources = result["sources"].as_array().unwrap();
    let found: Vec<&str> = sources
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(found, labels);
    for s in sources {
        assert_eq!(s["success"], true, "{s:#}");
        assert!(s["rpoSeconds"].as_i64().unwrap() >= 0, "{s:#}");
        assert!(s["rtoSeconds"].as_f64().unwrap() > 0.0, "{s:#}");
        let checks: Vec<&str> = s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(checks.contains(&"holds data"), "{checks:?}");
        assert!(
            checks.contains(&"sqlite: sonarr.db: integrity_check ok"),
            "{checks:?}"
        );
        assert!(
            checks
                .iter()
                .any(|c| c.starts_with("check: `test -s sonarr.db`")),
            "{checks:?}"
        );
        if s["source"] == "local" {
            assert!(
                checks.iter().any(|c| c.starts_with("manifest: ")),
                "{checks:?}"
            );
        }
    }
}

/// OpenZFS's `zpool history -l` of a pool syncoid replicated from or into
/// (identifier `identifier`): every command but the setup (pool and
/// dataset creation, grants) and `also_root` (what zpersist's root units
/// ran there) ran as the user `syncoid`, never root, and syncoid's own
/// snapshots are among them.
pub fn syncoid_ran_as_its_user(history: &str, identifier: &str, also_root: &[&str]) {
    let setup = ["zpool create", "zfs create", "zfs allow", "zfs unallow"];
    let syncoid_lines: Vec<&str> = history
        .lines()
        .filter(|l| l.contains("[user "))
        .filter(|l| !setup.iter().chain(also_root).any(|s| l.contains(s)))
        .collect();
    assert!(
        syncoid_lines
            .iter()
            .any(|l| l.contains(&format!("syncoid_{identifier}"))),
        "{history}"
    );
    for line in &syncoid_lines {
        assert!(
            !line.contains("[user 0 ") && line.contains("(syncoid)"),
            "run as another user than syncoid: {line}"
        );
    }
}
