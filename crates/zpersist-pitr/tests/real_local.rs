//! PITR against a real PostgreSQL 15 cluster and a local repository: restore
//! to a time between two commits, to latest, to a backup; retention that
//! keeps every kept restore point restorable; the drill and the heartbeat;
//! bad input refused with nothing touched.

mod common;

use std::fs;

use common::{rows, Cluster, Repo};

fn restore(cluster: &Cluster, to: &str, into: &std::path::Path) -> String {
    let into = into.to_str().unwrap();
    cluster.pitr_ok("pitr-restore", &["--to", to, "--into", into, "--start"])
}

#[test]
fn local_repository_restores_to_any_time_latest_and_each_kept_backup() {
    let c = Cluster::new("local", Repo::Local, serde_json::json!({ "count": 2 }));
    c.sql("create table rows (n int primary key, at timestamptz)");
    let t1 = c.commit_row(1);
    let backup1 = c.pitr_ok("pitr-base-backup", &["--json"]);
    let backup1: serde_json::Value = serde_json::from_str(&backup1).unwrap();
    let t2 = c.commit_row(2);
    let t3 = c.commit_row(3);
    c.switch_and_wait_archived();
    let t4 = c.commit_row(4);
    let _ = (t1, t4);
    c.commit_row(5);
    // Row 6 is committed but its segment is never switched out: latest is
    // everything archived, and row 6 is not (yet).
    c.switch_and_wait_archived();
    c.commit_row(6);

    // A time between the commits of rows 2 and 3: exactly rows 1-2.
    let at2 = c.dir.join("at2");
    let out = restore(&c, &t2, &at2);
    assert!(
        out.contains(&format!("base backup {}", backup1["id"].as_str().unwrap())),
        "{out}"
    );
    assert!(
        out.contains("last WAL replayed 0000000100000000000000"),
        "{out}"
    );
    assert_eq!(c.rows_in(&at2), rows(1..=2));
    // Between rows 3 and 4, across a segment switch: rows 1-3.
    let at3 = c.dir.join("at3");
    restore(&c, &t3, &at3);
    assert_eq!(c.rows_in(&at3), rows(1..=3));
    // Latest: every row whose WAL was archived (1-5), never only the
    // base backup's row 1.
    let latest = c.dir.join("latest");
    restore(&c, "latest", &latest);
    assert_eq!(c.rows_in(&latest), rows(1..=5));
    // A scratch restore never archives into the production repository.
    let conf = fs::read_to_string(latest.join("postgresql.auto.conf")).unwrap();
    assert!(
        conf.contains("archive_mode = off") && !conf.contains("restore_command"),
        "{conf}"
    );

    // Two more backups with count = 2: the first is pruned, and the WAL
    // only it needed with it.
    c.switch_and_wait_archived();
    let b2: serde_json::Value =
        serde_json::from_str(&c.pitr_ok("pitr-base-backup", &["--json"])).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.commit_row(7);
    let b3: serde_json::Value =
        serde_json::from_str(&c.pitr_ok("pitr-base-backup", &["--json"])).unwrap();
    assert_eq!(b3["removed"], serde_json::json!([backup1["id"]]), "{b3}");
    assert!(b3["walRemoved"].as_u64().unwrap() > 0, "{b3}");
    assert_eq!(
        c.backup_ids(),
        [b2["id"].as_str().unwrap(), b3["id"].as_str().unwrap()]
    );
    // Every kept restore point still restores: each backup, and latest.
    for (id, expected) in [
        (b2["id"].as_str().unwrap(), rows(1..=6)),
        (b3["id"].as_str().unwrap(), rows(1..=7)),
    ] {
        let dir = c.dir.join(format!("backup-{id}"));
        restore(&c, id, &dir);
        assert_eq!(c.rows_in(&dir), expected, "backup {id}");
    }
    c.switch_and_wait_archived();
    let after = c.dir.join("after-prune");
    restore(&c, "latest", &after);
    assert_eq!(c.rows_in(&after), rows(1..=7));

    // A time before the oldest kept backup is now bad input: exit 2,
    // nothing touched.
    let before = c.dir.join("before");
    let out = c.pitr(
        "pitr-restore",
        &["--to", &t2, "--into", before.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("before the oldest base backup") && stderr.contains("or later"),
        "{stderr}"
    );
    assert!(!before.exists());

    // The heartbeat and the drill: a real restore reporting its RPO.
    c.pitr_ok("pitr-heartbeat", &[]);
    c.switch_and_wait_archived();
    let drill = c.pitr_ok("pitr-drill", &["--json"]);
    let drill: serde_json::Value = serde_json::from_str(&drill).unwrap();
    let rpo = drill["rpoSeconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&rpo), "{drill}");
    let metrics = fs::read_to_string(c.dir.join("metrics/pitr-drill.prom")).unwrap();
    assert!(
        metrics.contains("zpersist_pitr_drill_success 1")
            && metrics.contains("zpersist_pitr_drill_rpo_seconds "),
        "{metrics}"
    );
    let archive = fs::read_to_string(c.dir.join("metrics/pitr-archive.prom")).unwrap();
    assert!(
        archive.contains("zpersist_pitr_archive_failing 0"),
        "{archive}"
    );
    assert_eq!(
        fs::read_dir(c.dir.join("drill")).unwrap().count(),
        0,
        "the drill cleans up"
    );
}

/// NixOS links postgresql.conf from the store (nixpkgs' preStart: `ln
/// -sfn`), and pg_basebackup skips symlinks ("skipping special file"): the
/// base backups of a NixOS cluster hold no postgresql.conf, and a server
/// restored from one would not start. The restore writes one: beside the
/// cluster, a copy of the cluster's configuration (the drill and a restore
/// by hand start and answer).
#[test]
fn a_cluster_whose_postgresql_conf_is_a_symlink_restores_and_drills() {
    let c = Cluster::new(
        "symlinkconf",
        Repo::Local,
        serde_json::json!({ "count": 2 }),
    );
    let conf = c.data.join("postgresql.conf");
    let store = c.dir.join("store-postgresql.conf");
    fs::rename(&conf, &store).unwrap();
    std::os::unix::fs::symlink(&store, &conf).unwrap();
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    let backup = c.backup_ids().pop().expect("a backup");
    assert!(
        !c.repo
            .join(format!("base/{backup}/data/postgresql.conf"))
            .exists(),
        "pg_basebackup skipped the symlink, as it does on NixOS"
    );
    c.commit_row(2);
    c.pitr_ok("pitr-heartbeat", &[]);
    c.switch_and_wait_archived();

    let into = c.dir.join("restored");
    restore(&c, "latest", &into);
    assert_eq!(c.rows_in(&into), rows(1..=2));
    let written = fs::read_to_string(into.join("postgresql.conf")).unwrap();
    assert!(
        written.contains(&format!("a copy of {}", conf.display())),
        "{written}"
    );
    assert!(
        written.contains("archive_command"),
        "the cluster's settings: {written}"
    );

    let drill = c.pitr_ok("pitr-drill", &["--json"]);
    let drill: serde_json::Value = serde_json::from_str(&drill).unwrap();
    assert!(drill["rpoSeconds"].as_f64().is_some(), "{drill}");
}

#[test]
fn bad_input_is_exit_2_and_touches_nothing() {
    let c = Cluster::new("badinput", Repo::Local, serde_json::json!({ "count": 2 }));
    let dir = c.dir.join("target");
    let into = dir.to_str().unwrap();
    for bad in ["yesterday", "2026-11-30 10:15", "2026-11-30T10:15:00"] {
        let out = c.pitr("pitr-restore", &["--to", bad, "--into", into]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    }
    // No base backup yet.
    let out = c.pitr("pitr-restore", &["--into", into]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pitr-base-backup"));
    // The same through zpersist-report: `error:` / `help:`, the binary's
    // closing line, and with --json the errors as the one document.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("error: "))
            && stderr.lines().any(|l| l.starts_with("  help: "))
            && stderr.contains("pitr-restore: nothing was touched"),
        "{stderr}"
    );
    let out = c.pitr("pitr-restore", &["--into", into, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = document["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{document}");
    assert!(
        errors[0]["what"]
            .as_str()
            .unwrap()
            .contains("choosing a base backup")
            && errors[0]["help"].as_str().is_some(),
        "{document}"
    );
    // A non-empty directory, and a cluster's directory.
    let full = c.dir.join("full");
    fs::create_dir_all(&full).unwrap();
    fs::write(full.join("keep"), "mine").unwrap();
    let out = c.pitr("pitr-restore", &["--into", full.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(fs::read_to_string(full.join("keep")).unwrap(), "mine");
    let out = c.pitr("pitr-restore", &["--into", c.data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postmaster.pid"));
    // A repository that is not there.
    let mut missing = c.contract_json.clone();
    missing["repository"]["local"]["dir"] = serde_json::json!(c.dir.join("no-such-repository"));
    let path = c.dir.join("missing.json");
    fs::write(&path, missing.to_string()).unwrap();
    let out = common::run(
        &[
            &common::bin("pitr-restore"),
            "--contract",
            path.to_str().unwrap(),
            "--into",
            into,
        ],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-repository"));
    assert!(!dir.exists(), "nothing was created");
}
