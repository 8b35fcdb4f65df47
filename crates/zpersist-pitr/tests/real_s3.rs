//! PITR with barman-cloud against a real S3 server on loopback (moto, which
//! tests/env/start-moto.sh starts): WAL archived by barman-cloud-wal-archive,
//! a base backup by barman-cloud-backup, restores to a time between two
//! commits and to latest through barman-cloud-restore and
//! barman-cloud-wal-restore, retention by barman-cloud-backup-delete, and a
//! drill.

mod common;

use std::time::Duration;

use common::{rows, run, Cluster, Repo, MOTO};

fn require_moto() {
    let out = run(
        &["curl", "-s", "-o", "/dev/null", "--max-time", "3", MOTO],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "no S3 server answers on {MOTO}: start it with tests/env/start-moto.sh (scripts/test does)"
    );
}

#[test]
fn s3_repository_restores_to_a_time_and_to_latest() {
    require_moto();
    let bucket = format!("zpersist-pitr-{}", std::process::id());
    let c = Cluster::new("s3", Repo::S3 { bucket }, serde_json::json!({ "count": 1 }));
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.switch_and_wait_archived();
    let first: serde_json::Value =
        serde_json::from_str(&c.pitr_ok("pitr-base-backup", &["--json"])).unwrap();
    // barman's times have whole seconds: the target comes a second later.
    std::thread::sleep(Duration::from_millis(1100));
    let t2 = c.commit_row(2);
    c.commit_row(3);
    c.switch_and_wait_archived();
    c.commit_row(4);
    c.switch_and_wait_archived();

    let at2 = c.dir.join("at2");
    c.pitr_ok(
        "pitr-restore",
        &["--to", &t2, "--into", at2.to_str().unwrap(), "--start"],
    );
    assert_eq!(c.rows_in(&at2), rows(1..=2));

    let latest = c.dir.join("latest");
    let out = c.pitr_ok(
        "pitr-restore",
        &[
            "--to",
            "latest",
            "--into",
            latest.to_str().unwrap(),
            "--start",
        ],
    );
    assert!(
        out.contains(&format!("base backup {}", first["id"].as_str().unwrap())),
        "{out}"
    );
    assert_eq!(c.rows_in(&latest), rows(1..=4));

    // Retention REDUNDANCY 1: a second backup replaces the first.
    let second: serde_json::Value =
        serde_json::from_str(&c.pitr_ok("pitr-base-backup", &["--json"])).unwrap();
    assert_eq!(
        second["kept"],
        serde_json::json!([second["id"]]),
        "{second}"
    );
    assert_eq!(
        second["removed"],
        serde_json::json!([first["id"]]),
        "{second}"
    );

    c.pitr_ok("pitr-heartbeat", &[]);
    c.switch_and_wait_archived();
    let drill: serde_json::Value =
        serde_json::from_str(&c.pitr_ok("pitr-drill", &["--json"])).unwrap();
    assert!(drill["rpoSeconds"].as_f64().unwrap() < 60.0, "{drill}");
}

/// An S3 archive holding WAL but no base backup is no "nothing to
/// restore" for preseed: its newest point is an error.
#[test]
fn s3_wal_without_a_base_backup_is_not_an_empty_archive() {
    require_moto();
    let bucket = format!("zpersist-pitr-nobase-{}", std::process::id());
    let c = Cluster::new(
        "s3nobase",
        Repo::S3 { bucket },
        serde_json::json!({ "count": 1 }),
    );
    let contract: zpersist_core::pitr::PitrContract =
        serde_json::from_value(c.contract_json.clone()).unwrap();
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.switch_and_wait_archived();
    let e = zpersist_ops::pitr::restore::newest_point(&contract).unwrap_err();
    assert!(e.message.contains("archived WAL but no base backup"), "{e}");
}
