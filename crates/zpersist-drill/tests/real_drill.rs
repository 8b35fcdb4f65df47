//! zpersist-drill against real components: zfs-fuse pools (a local replica
//! pool and the dataset's own snapshots), real restic, real sqlite3. Every
//! source restores into the scratch dataset and passes its checks, RPO and
//! RTO land in the result file and the textfile; a corrupt database and a
//! failing declared check fail the drill; a killed drill's leftovers are
//! cleaned by the next run; the live dataset is never named by a mutating
//! zfs call; a dataset by the scratch name that is not the drill's is
//! never touched.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::assertions::drill_left_the_live_dataset_untouched;
use zpersist_e2e::pool::{exists, get, run_logged, zfs, Recorded, TestPool};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_zpersist-drill"))
}

const SNAP: &str = "autosnap_2026-11-01_00:00:00_hourly";

/// Sonarr's dataset holding a real SQLite database, a snapshot of it, a
/// replica pool holding that snapshot, and a restic backup of the data.
struct Fixture {
    /// Declared before `pool` so it is dropped first, within its turn.
    replica: TestPool,
    pool: TestPool,
    ds: String,
    mountpoint: Utf8PathBuf,
    copy: String,
    repo: Utf8PathBuf,
    password: Utf8PathBuf,
    state: Utf8PathBuf,
}

impl Fixture {
    fn new(tag: &str, corrupt: bool) -> Fixture {
        let pool = TestPool::new(tag);
        let replica = pool.companion("rep");
        let ds = pool.ds("services/sonarr");
        let mountpoint = pool.mnt().join("var/lib/sonarr");
        zfs(&[
            "create",
            "-p",
            "-o",
            &format!("mountpoint={mountpoint}"),
            &ds,
        ]);
        let db = mountpoint.join("sonarr.db");
        duct::cmd(
            "sqlite3",
            [
                db.as_str(),
                "CREATE TABLE series(id INTEGER PRIMARY KEY, title TEXT, blob BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
                 INSERT INTO series SELECT i, 'series ' || i, randomblob(200) FROM n;
                 CREATE INDEX by_title ON series(title);",
            ],
        )
        .run()
        .expect("sqlite3 makes the database");
        if corrupt {
            // Garbage over pages in the middle of the file: the b-tree breaks.
            let len = std::fs::metadata(&db).unwrap().len();
            let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
            file.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
            file.write_all(&[0xA5; 8192]).unwrap();
        }
        std::fs::write(mountpoint.join("config.xml"), "<Config/>").unwrap();
        zfs(&["snapshot", &format!("{ds}@{SNAP}")]);
        let copy = replica.ds("backup/forge/services/sonarr");
        zfs(&["create", "-p", &replica.ds("backup/forge/services")]);
        duct::cmd("zfs", ["send", &format!("{ds}@{SNAP}")])
            .pipe(duct::cmd("zfs", ["receive", "-u", &copy]))
            .run()
            .expect("the replica receives");
        let repo = pool.scratch("restic-repo");
        let password = pool.scratch("restic-password");
        std::fs::write(&password, "correct horse").unwrap();
        for args in [
            vec!["init"],
            vec!["backup", "--host", "forge", mountpoint.as_str()],
        ] {
            let mut all = vec!["-r", repo.as_str(), "--password-file", password.as_str()];
            all.extend(args);
            duct::cmd("restic", &all)
                .stdout_null()
                .stderr_capture()
                .run()
                .expect("restic runs");
        }
        let state = pool.scratch("state");
        Fixture {
            replica,
            pool,
            ds,
            mountpoint,
            copy,
            repo,
            password,
            state,
        }
    }

    fn sources(&self) -> Vec<Value> {
        vec![
            json!({ "replica": { "target": "usb", "host": null, "dataset": self.copy } }),
            json!({ "local": {} }),
            json!({ "restic": {
                "name": "b2", "repository": self.repo, "passwordFile": self.password,
                "host": "forge", "path": self.mountpoint,
            }}),
        ]
    }

    fn plan(&self, sources: Vec<Value>, check: Value) -> Value {
        json!({
            "version": 1, "service": "sonarr", "profile": "sonarr",
            "preseed": {
                "version": 1, "service": "sonarr", "dataset": self.ds,
                "mountpoint": self.mountpoint, "sources": sources,
                "stateDir": self.pool.scratch("preseed-state"), "timeoutSeconds": 20,
            },
            "sqlite": ["sonarr.db"],
            "check": check,
            "checkTimeoutSeconds": 60,
            "stateDir": self.state,
            "textfile": self.pool.scratch("textfile/zpersist-drill-sonarr.prom"),
            "scratchRoot": self.pool.scratch("run-drill"),
        })
    }

    fn scratch(&self) -> String {
        format!("{}.zpersist-drill", self.ds)
    }

    /// A run under the recording zfs; it never names the live dataset in a
    /// call that changes something but as the snapshot a send or a clone
    /// reads, and never destroys or receives outside the scratch dataset.
    fn run(&self, plan: &Value, extra: &[&str], env: &[(&str, &str)]) -> Recorded {
        let path = self.pool.write_plan("drill.json", plan);
        let mut args = vec!["--plan", path.as_str()];
        args.extend_from_slice(extra);
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        let run = run_logged(binary(), &args, &env);
        drill_left_the_live_dataset_untouched(&self.ds, &run);
        run
    }

    fn result(&self) -> Value {
        let text =
            std::fs::read_to_string(self.state.join("sonarr.json")).expect("the result file");
        serde_json::from_str(&text).unwrap()
    }

    /// The live dataset as it was: mounted where it was, its data there.
    fn assert_live_as_it_was(&self) {
        assert_eq!(get(&self.ds, "mounted"), "yes");
        assert_eq!(get(&self.ds, "mountpoint"), self.mountpoint.as_str());
        assert_eq!(
            std::fs::read_to_string(self.mountpoint.join("config.xml")).unwrap(),
            "<Config/>"
        );
        let left: Vec<String> = zfs(&[
            "list",
            "-H",
            "-r",
            "-t",
            "all",
            "-o",
            "name",
            &self.pool.name,
        ])
        .lines()
        .filter(|n| n.contains(".zpersist-drill"))
        .map(str::to_owned)
        .collect();
        assert!(left.is_empty(), "the drill left {left:?}");
        assert!(exists(&format!("{}@{SNAP}", self.ds)));
    }
}

#[test]
fn every_source_restores_into_scratch_checks_and_is_measured_the_live_dataset_untouched() {
    let f = Fixture::new("drillall", false);
    let plan = f.plan(f.sources(), json!(["test", "-s", "sonarr.db"]));
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let result = f.result();
    zpersist_e2e::assertions::drill_passed_for_every_source(
        &result,
        &["replica:usb", "local", "restic:b2"],
    );
    let textfile =
        std::fs::read_to_string(f.pool.scratch("textfile/zpersist-drill-sonarr.prom")).unwrap();
    for series in [
        "zpersist_drill_success{service=\"sonarr\",source=\"restic:b2\"} 1",
        "zpersist_drill_rpo_seconds{service=\"sonarr\",source=\"local\"}",
        "zpersist_drill_rto_seconds{service=\"sonarr\",source=\"replica:usb\"}",
        "zpersist_drill_last_run_timestamp_seconds{service=\"sonarr\",source=\"local\"}",
    ] {
        assert!(textfile.contains(series), "{series} in\n{textfile}");
    }
    // The copies were made and received below the scratch dataset.
    assert!(
        !run.calls_named("receive").is_empty(),
        "{:?}",
        run.zfs_calls
    );
    assert!(!run.calls_named("clone").is_empty(), "{:?}", run.zfs_calls);
    f.assert_live_as_it_was();

    // One source alone; a label the plan does not have is bad input.
    let run = f.run(&plan, &["--source", "local", "--json"], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["sources"].as_array().unwrap().len(), 1, "{doc:#}");
    let run = f.run(&plan, &["--source", "restic:s3", "--json"], &[]);
    assert_eq!(run.code, 2, "{run:#?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        doc["errors"][0]["what"]
            .as_str()
            .unwrap()
            .contains("restic:s3"),
        "{doc:#}"
    );
    assert!(run.zfs_calls.is_empty(), "{:?}", run.zfs_calls);
    drop(f.replica);
}

#[test]
fn a_corrupt_sqlite_database_fails_the_drill() {
    let f = Fixture::new("drillcorrupt", true);
    let plan = f.plan(vec![json!({ "local": {} })], Value::Null);
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("sonarr.db: PRAGMA integrity_check fails on the restored copy"),
        "{}",
        run.stderr
    );
    let result = f.result();
    assert_eq!(result["success"], false);
    assert_eq!(result["sources"][0]["success"], false);
    let textfile =
        std::fs::read_to_string(f.pool.scratch("textfile/zpersist-drill-sonarr.prom")).unwrap();
    assert!(
        textfile.contains("zpersist_drill_success{service=\"sonarr\",source=\"local\"} 0"),
        "{textfile}"
    );
    f.assert_live_as_it_was();
}

#[test]
fn a_declared_check_that_fails_fails_the_drill() {
    let f = Fixture::new("drillcheck", false);
    let plan = f.plan(
        vec![json!({ "local": {} })],
        json!([
            "sh",
            "-c",
            "echo no series.csv here >&2; test -f series.csv"
        ]),
    );
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("the check `sh -c") && run.stderr.contains("no series.csv here"),
        "{}",
        run.stderr
    );
    f.assert_live_as_it_was();
}

#[test]
fn killed_mid_drill_a_rerun_cleans_up_and_passes() {
    let f = Fixture::new("drillkill", false);
    let plan = f.plan(f.sources(), Value::Null);
    // Aborts (as kill -9 would) with the first copy received and mounted.
    let run = f.run(&plan, &[], &[("ZPERSIST_DRILL_FAILPOINT", "during:check")]);
    assert_ne!(run.code, 0, "{run:#?}");
    assert_eq!(get(&f.scratch(), "com.zpersist:drill"), "sonarr");
    assert!(exists(&format!("{}/s0", f.scratch())));
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let result = f.result();
    let cleaned: Vec<&str> = result["cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cleaned.contains(&format!("{}/s0", f.scratch()).as_str()),
        "{cleaned:?}"
    );
    f.assert_live_as_it_was();
    drop(f.replica);
}

#[test]
fn a_dataset_by_the_scratch_name_without_the_mark_is_never_touched() {
    let f = Fixture::new("drillnotours", false);
    zfs(&["create", "-o", "mountpoint=none", &f.scratch()]);
    let plan = f.plan(vec![json!({ "local": {} })], Value::Null);
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("{} is in the drill's way", f.scratch())),
        "{}",
        run.stderr
    );
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert!(exists(&f.scratch()));
    // The source the run did not reach failed, in the result and the textfile.
    assert_eq!(f.result()["sources"][0]["success"], false);
    let textfile =
        std::fs::read_to_string(f.pool.scratch("textfile/zpersist-drill-sonarr.prom")).unwrap();
    assert!(
        textfile.contains("zpersist_drill_success{service=\"sonarr\",source=\"local\"} 0"),
        "{textfile}"
    );
}

#[test]
fn postgresql_is_refused_pointing_to_pitr_drill_and_nothing_is_touched() {
    let f = Fixture::new("drillpg", false);
    let mut plan = f.plan(vec![json!({ "local": {} })], Value::Null);
    plan["profile"] = "postgresql".into();
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("pitr-drill"), "{}", run.stderr);
    assert!(run.zfs_calls.is_empty(), "{:?}", run.zfs_calls);
}

/// A real `kill -9` while the declared check runs in the copy (the local
/// snapshot's clone made too), then the rest of the unit's cgroup killed
/// as systemd does: the next run destroys what the killed one made and
/// passes.
#[test]
fn kill_9_during_the_check_the_next_run_cleans_the_copy_and_the_clone() {
    let f = Fixture::new("drillsigkill", false);
    let marker = f.pool.scratch("check-started");
    let slow = json!(["sh", "-c", format!("echo $$ > {marker}; exec sleep 60")]);
    let plan = f.plan(vec![json!({ "local": {} })], slow);
    let path = f.pool.write_plan("drill-slow.json", &plan);
    let handle = duct::cmd(binary().as_str(), ["--plan", path.as_str()])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let check_pid = loop {
        if let Ok(text) = std::fs::read_to_string(&marker) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                break pid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the check never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for pid in handle.pids() {
        duct::cmd("kill", ["-9", &pid.to_string()]).run().unwrap();
    }
    let _ = handle.wait();
    duct::cmd("kill", ["-9", &check_pid.to_string()])
        .run()
        .unwrap();
    assert_eq!(get(&f.scratch(), "com.zpersist:drill"), "sonarr");
    assert!(exists(&format!("{}/o0", f.scratch())), "the clone is there");

    let plan = f.plan(vec![json!({ "local": {} })], Value::Null);
    let run = f.run(&plan, &[], &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    let cleaned = f.result()["cleaned"].clone();
    for name in ["o0", "s0"] {
        let full = format!("{}/{name}", f.scratch());
        assert!(
            cleaned
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == &Value::from(full.clone())),
            "{full} in {cleaned}"
        );
    }
    f.assert_live_as_it_was();
}
