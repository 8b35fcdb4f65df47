//! PITR's promises under hostile cases (issue 18), against a real
//! PostgreSQL 15 cluster and a local repository: a base backup altered
//! after it was published is never restored (an older one with more WAL
//! is, and the drill fails naming the file); after a restore to before a
//! mistake continued on timeline 2, restores and the drill follow timeline
//! 2's history, never a timeline-1 backup taken after the switch; and the
//! drill removes only what it made.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{rows, Cluster, Repo};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Flips the last byte of `path` (a heap file: the first tuple's data).
fn alter(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// A cluster with the `rows` and heartbeat tables, row 1 committed and a
/// first base backup taken (its id).
fn with_first_backup(tag: &str, count: u32) -> (Cluster, String) {
    let c = Cluster::new(tag, Repo::Local, serde_json::json!({ "count": count }));
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.sql("create table zpersist_pitr_heartbeat (id int primary key, at timestamptz)");
    c.sql("insert into zpersist_pitr_heartbeat values (1, now())");
    c.commit_row(1);
    let id = backup(&c);
    (c, id)
}

/// A base backup's id.
fn backup(c: &Cluster) -> String {
    json(&c.pitr_ok("pitr-base-backup", &["--json"]))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_altered_base_backup_is_never_restored_and_the_drill_names_the_file() {
    let (c, b1) = with_first_backup("corrupt", 3);
    std::thread::sleep(Duration::from_millis(1100));
    c.commit_row(2);
    let b2 = backup(&c);
    c.commit_row(3);
    c.sql("update zpersist_pitr_heartbeat set at = now() where id = 1");
    c.switch_and_wait_archived();

    // One changed value in the newest published backup.
    let file = c.sql("select pg_relation_filepath('rows')");
    let altered = c.repo.join("base").join(&b2).join("data").join(&file);
    alter(&altered);

    // latest: the altered backup is skipped, the older one replays more
    // WAL, and every row comes back as committed.
    let into = c.dir.join("latest");
    let out = c.pitr(
        "pitr-restore",
        &[
            "--to",
            "latest",
            "--into",
            into.to_str().unwrap(),
            "--start",
            "--json",
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["backup"]["id"], b1.as_str(), "{report}");
    let rejected = report["rejected"][0].as_str().unwrap();
    assert!(
        rejected.contains(&b2) && rejected.contains(&file),
        "{rejected}"
    );
    assert_eq!(c.rows_in(&into), rows(1..=3));

    // Restoring that very backup fails, naming the file.
    let named = c.dir.join("named");
    let out = c.pitr(
        "pitr-restore",
        &["--to", &b2, "--into", named.to_str().unwrap(), "--start"],
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&file) && said.contains(&b2), "{said}");

    // The drill does not pass over a damaged backup.
    let out = c.pitr("pitr-drill", &[]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&b2) && said.contains(&file), "{said}");
    let metrics = fs::read_to_string(c.dir.join("metrics/pitr-drill.prom")).unwrap();
    assert!(
        metrics.contains("zpersist_pitr_drill_success 0"),
        "{metrics}"
    );
}

/// Waits (bounded: 60 s) until the server on `port` has archived the
/// segment it switches out now.
fn switch_on(c: &Cluster, port: u16) -> String {
    let segment = c.sql_on(port, "select pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = c.sql_on(
            port,
            "select coalesce(last_archived_wal, '') from pg_stat_archiver",
        );
        if last.len() >= 24 && last[..24] >= *segment.as_str() {
            return segment;
        }
        assert!(Instant::now() < deadline, "{segment} not archived: {last}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn after_a_restore_to_before_a_mistake_restores_follow_the_new_timeline() {
    let (c, b1) = with_first_backup("timeline", 3);
    let before_mistake = c.commit_row(2);
    // The mistake, then a timeline-1 backup taken after it.
    c.sql("delete from rows where n = 1");
    c.switch_and_wait_archived();
    std::thread::sleep(Duration::from_millis(1100));
    let b2 = backup(&c);
    c.switch_and_wait_archived();

    // The runbook: stop the cluster, restore to before the mistake with
    // archiving on, and run the restored copy: it continues on timeline 2.
    c.stop();
    let tl2 = c.dir.join("tl2");
    c.pitr_ok(
        "pitr-restore",
        &[
            "--to",
            &before_mistake,
            "--into",
            tl2.to_str().unwrap(),
            "--start",
            "--archive",
        ],
    );
    let port = c.port + 2;
    c.start_on(camino::Utf8Path::from_path(&tl2).unwrap(), port);
    assert_eq!(
        c.sql_on(port, "select timeline_id from pg_control_checkpoint()"),
        "2"
    );
    c.sql_on(
        port,
        "update zpersist_pitr_heartbeat set at = now() where id = 1",
    );
    c.sql_on(port, "insert into rows values (4, now())");
    switch_on(&c, port);
    c.sql_on(port, "checkpoint");
    let on_tl2 = c.sql_on(
        port,
        "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(50));
    c.sql_on(port, "insert into rows values (5, now())");
    switch_on(&c, port);
    assert!(c.repo.join("wal/00000002.history").exists());

    // A time on timeline 2, and latest: from b1 along timeline 2's
    // history, never from b2 (timeline 1, after the switch point).
    for (to, expected) in [
        (on_tl2.as_str(), vec![1, 2, 4]),
        ("latest", vec![1, 2, 4, 5]),
    ] {
        let into = c.dir.join(format!("restored-{}", expected.len()));
        let out = c.pitr_ok(
            "pitr-restore",
            &[
                "--to",
                to,
                "--into",
                into.to_str().unwrap(),
                "--start",
                "--json",
            ],
        );
        let report = json(&out);
        assert_eq!(
            report["backup"]["id"],
            b1.as_str(),
            "{to}: {report} (b2 {b2})"
        );
        assert_eq!(c.rows_in(&into), expected, "{to}");
    }
    // The drill too (its contract's cluster is the timeline-2 server now).
    let mut contract = c.contract_json.clone();
    contract["cluster"]["dataDir"] = serde_json::json!(tl2);
    contract["cluster"]["port"] = serde_json::json!(port);
    contract["drill"]["port"] = serde_json::json!(port + 1);
    fs::write(&c.contract, serde_json::to_string(&contract).unwrap()).unwrap();
    let drill = json(&c.pitr_ok("pitr-drill", &["--json"]));
    assert_eq!(drill["restore"]["backup"]["id"], b1.as_str(), "{drill}");
}

#[test]
fn the_drill_removes_only_what_it_made() {
    let (c, _) = with_first_backup("scratch", 2);
    c.switch_and_wait_archived();
    let scratch = c.dir.join("drill");

    // Someone's file beside the drill's restore stays.
    let theirs = scratch.join("notes.txt");
    fs::write(&theirs, "not the drill's").unwrap();
    c.pitr_ok("pitr-drill", &[]);
    assert_eq!(fs::read_to_string(&theirs).unwrap(), "not the drill's");
    assert!(!scratch.join("data").exists());

    // A data/ the drill did not make is refused, untouched (exit 2).
    fs::create_dir(scratch.join("data")).unwrap();
    fs::write(scratch.join("data/keep"), "x").unwrap();
    let out = c.pitr("pitr-drill", &[]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("was not made by a drill"), "{said}");
    assert_eq!(fs::read_to_string(scratch.join("data/keep")).unwrap(), "x");
    fs::remove_dir_all(scratch.join("data")).unwrap();

    // A contract whose scratch directory is the repository, or the data
    // directory's parent, is refused before anything is touched.
    for (what, dir) in [
        ("the repository", c.repo.clone()),
        ("the data directory", c.data.parent().unwrap().to_path_buf()),
    ] {
        let mut contract = c.contract_json.clone();
        contract["drill"]["scratchDir"] = serde_json::json!(dir);
        fs::write(&c.contract, serde_json::to_string(&contract).unwrap()).unwrap();
        let out = c.pitr("pitr-drill", &[]);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{what}: {said}");
        assert!(said.contains(what), "{said}");
    }
    assert!(!c.backup_ids().is_empty(), "the repository is intact");
    assert!(c.data.join("PG_VERSION").exists(), "the cluster is intact");
    assert!(fs::read_dir(c.repo.join("wal")).unwrap().count() > 0);
}
