//! What preseed will do with a PITR source (issue 13, part 4): restore
//! `latest` into an empty, freshly created ZFS dataset (as preseed's sibling
//! is), recover it there, keep archiving on (the restored cluster becomes
//! the host's), and record the provenance. preseed-restore itself does not
//! call it yet; this is the call it will make, on a real zfs-fuse dataset.

mod common;

use std::fs;

use common::{rows, Cluster, Repo};
use zpersist_e2e::pool::{zfs, TestPool};

#[test]
fn latest_restores_into_a_wiped_dataset_with_its_provenance() {
    let c = Cluster::new("preseed", Repo::Local, serde_json::json!({ "count": 2 }));
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    for n in 2..=5 {
        c.commit_row(n);
    }
    c.switch_and_wait_archived();
    // The host is lost; its dataset comes back empty.
    let pool = TestPool::new("pitr");
    let dataset = pool.ds("postgresql");
    let mount = pool.mnt().join("postgresql");
    zfs(&["create", "-o", &format!("mountpoint={mount}"), &dataset]);
    assert_eq!(fs::read_dir(mount.as_std_path()).unwrap().count(), 0);
    let into = mount.join("16");

    let out = c.pitr_ok(
        "pitr-restore",
        &[
            "--to",
            "latest",
            "--into",
            into.as_str(),
            "--start",
            "--archive",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let provenance = report["provenance"].as_str().unwrap();
    assert!(
        provenance.starts_with("base backup 20")
            && provenance.contains(" + last WAL replayed 0000000100000000000000"),
        "{provenance}"
    );
    assert_eq!(report["recovered"], true);
    // Recovered, cleanly stopped, recovery settings gone, archiving kept.
    let conf = fs::read_to_string(into.join("postgresql.auto.conf")).unwrap();
    assert!(
        !conf.contains("restore_command") && !conf.contains("archive_mode"),
        "{conf}"
    );
    assert!(!into.join("recovery.signal").exists());
    assert_eq!(
        c.rows_in(into.as_std_path()),
        rows(1..=5),
        "the last archived transaction is back"
    );
}

/// preseed-restore with `{ pitr = ...; }` as a source: the wiped dataset
/// comes back through preseed's verified swap, recovered to the last
/// archived transaction, with the provenance recorded on the dataset.
#[test]
fn preseed_restores_a_wiped_postgresql_dataset_from_the_pitr_archive() {
    let c = Cluster::new("preseedsrc", Repo::Local, serde_json::json!({ "count": 2 }));
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    for n in 2..=4 {
        c.commit_row(n);
    }
    c.switch_and_wait_archived();
    let pool = TestPool::new("pitrseed");
    let dataset = pool.ds("services/postgresql");
    let mount = pool.mnt().join("var/lib/postgresql");
    zfs(&[
        "create",
        "-p",
        "-o",
        &format!("mountpoint={mount}"),
        &dataset,
    ]);
    let state = pool.scratch("state");
    fs::create_dir_all(&state).unwrap();
    let plan = serde_json::json!({
        "version": 1, "service": "postgresql", "dataset": dataset, "mountpoint": mount,
        "owner": "postgres", "group": "postgres", "mode": "0750",
        "sources": [ { "local": {} }, { "pitr": { "contract": c.contract, "dataDir": "16" } } ],
        "stateDir": state, "timeoutSeconds": 30,
    });
    let plan_path = pool.write_plan("preseed.json", &plan);
    let preseed = zpersist_e2e::binaries::fresh("preseed-restore");
    let out = zpersist_e2e::zfs_watchdog::run_watching_zfs(
        duct::cmd(preseed.as_str(), ["--plan", plan_path.as_str()])
            .dir(zpersist_e2e::reachable::NEUTRAL_CWD)
            .env("PATH", zpersist_e2e::syncoid::path_with_wrapper())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture(),
        &format!("preseed-restore --plan {plan_path}"),
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        c.rows_in(mount.join("16").as_std_path()),
        rows(1..=4),
        "{said}"
    );
    let source = zfs(&[
        "get",
        "-H",
        "-o",
        "value",
        "com.zpersist:preseed-source",
        &dataset,
    ]);
    assert!(source.starts_with("pitr:base backup 20"), "{source}");
    assert!(source.contains("last WAL replayed"), "{source}");
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "com.zpersist:preseed", &dataset]).trim(),
        "restored"
    );
}
