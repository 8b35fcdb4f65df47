//! A service's restic backup against real components: zfs-fuse, restic
//! 0.14, preseed-restore and zpersist-status, built from this checkout.
//!
//! The backup unit's mount namespace (BindReadOnlyPaths= of the view over
//! the mountpoint, nix/modules/backup.nix) is reproduced here with
//! `unshare --mount` and a read-only bind mount: the same kernel mechanism
//! systemd uses, without systemd (tests/e2e/tests/systemd_backup.rs runs
//! the real units in a booted container).
//!
//! What the tests hold the code to: the backup holds the snapshot's
//! content, not the live files changed after it; restic records the
//! dataset's mountpoint, so preseed-restore restores it into a wiped
//! dataset; a killed run's snapshot and clone are destroyed by the next,
//! and nothing zpersist did not make is; zpersist status shows the backup's
//! age, and goes red (exit 1) when it is too old or the repository cannot
//! be read, with a textfile that says the same.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::binaries;
use zpersist_e2e::pool::{exists, run_logged, run_recorded, zfs, Recorded, TestPool};

const BIN: &str = env!("CARGO_BIN_EXE_zpersist-backup-snapshot");

struct Fixture {
    pool: TestPool,
    ds: String,
    mountpoint: Utf8PathBuf,
    view: Utf8PathBuf,
    repo: Utf8PathBuf,
    password: Utf8PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let pool = TestPool::new(tag);
        let ds = pool.ds("services/wiki");
        let mountpoint = pool.mnt().join("var/lib/wiki");
        zfs(&[
            "create",
            "-p",
            "-o",
            &format!("mountpoint={mountpoint}"),
            &ds,
        ]);
        let repo = pool.scratch("restic-repo");
        let password = pool.scratch("restic-password");
        std::fs::write(&password, "correct horse").unwrap();
        let f = Fixture {
            view: pool.scratch("view/wiki"),
            pool,
            ds,
            mountpoint,
            repo,
            password,
        };
        f.restic(&["init"]);
        f
    }

    fn write(&self, version: &str) {
        std::fs::create_dir_all(self.mountpoint.join("pages")).unwrap();
        std::fs::write(
            self.mountpoint.join("pages/home.md"),
            format!("home {version}"),
        )
        .unwrap();
        std::fs::write(self.mountpoint.join("wiki.db"), format!("db {version}")).unwrap();
    }

    fn restic(&self, args: &[&str]) -> String {
        let mut all = vec![
            "-r",
            self.repo.as_str(),
            "--password-file",
            self.password.as_str(),
        ];
        all.extend_from_slice(args);
        let out = zpersist_e2e::zfs_watchdog::run_bounded(
            duct::cmd("restic", &all)
                .stdin_null()
                .stdout_capture()
                .stderr_capture(),
            &format!("restic {}", args.join(" ")),
            zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
        )
        .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
        assert!(
            out.status.success(),
            "restic {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    }

    /// Runs the binary; whatever it destroys is its own view or one of
    /// its own snapshots, never anything else.
    fn step(&self, args: &[&str]) -> Recorded {
        let r = run_logged(Utf8Path::new(BIN), args, &BTreeMap::new());
        for call in &r.zfs_calls {
            if zpersist_e2e::pool::DESTRUCTIVE.contains(&call[0].as_str()) {
                assert_eq!(call[0], "destroy", "{r:#?}");
                assert_eq!(call.len(), 2, "no flags (-r, -R, -f): {r:#?}");
                let target = &call[1];
                assert!(
                    target == &format!("{}-zpersist-restic", self.ds)
                        || target.starts_with(&format!("{}@zpersist-restic-", self.ds)),
                    "destroyed {target}: {r:#?}"
                );
            }
        }
        r
    }

    fn take(&self) -> Recorded {
        self.step(&["take", &self.ds, self.view.as_str()])
    }

    fn release(&self) -> Recorded {
        self.step(&["release", &self.ds])
    }

    /// What restic-backups-zpersist-wiki.service runs, in a mount namespace
    /// of its own where the view is bound read-only over the mountpoint.
    fn backup_in_namespace(&self) {
        // Test scaffolding: the namespace's two steps as one sh -c with
        // positional arguments (data, never spliced into the script).
        let out = duct::cmd(
            "unshare",
            [
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                r#"mount --bind -o ro "$1" "$2" && exec restic -r "$3" --password-file "$4" backup --host forge "$2""#,
                "sh",
                self.view.as_str(),
                self.mountpoint.as_str(),
                self.repo.as_str(),
                self.password.as_str(),
            ],
        )
        .stdin_null()
        .stdout_capture()
        .stderr_capture();
        let out = zpersist_e2e::zfs_watchdog::run_bounded(
            out,
            "restic backup in a mount namespace",
            zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
        )
        .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
        assert!(
            out.status.success(),
            "restic backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ours(&self) -> Vec<String> {
        zfs(&[
            "list",
            "-H",
            "-o",
            "name",
            "-t",
            "all",
            "-r",
            &self.pool.name,
        ])
        .lines()
        .filter(|l| l.contains("zpersist-restic"))
        .map(str::to_owned)
        .collect()
    }
}

#[test]
fn a_backup_holds_the_snapshot_at_the_mountpoint_and_preseed_restores_it() {
    let f = Fixture::new("bkround");
    f.write("v1");
    let took = f.take();
    assert_eq!(took.code, 0, "{took:#?}");
    assert!(took.stdout.contains("took "), "{}", took.stdout);
    // The service keeps writing while the backup runs.
    f.write("v2-live");
    std::fs::write(f.mountpoint.join("written-after.txt"), "late").unwrap();
    // The view is the snapshot, and read-only.
    assert_eq!(
        std::fs::read_to_string(f.view.join("pages/home.md")).unwrap(),
        "home v1"
    );
    assert!(std::fs::write(f.view.join("x"), "no").is_err());

    f.backup_in_namespace();
    let snapshots: Value = serde_json::from_str(&f.restic(&["snapshots", "--json"])).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    assert_eq!(
        snapshots[0]["paths"],
        json!([f.mountpoint]),
        "recorded at the mountpoint, not at the view"
    );
    assert_eq!(snapshots[0]["hostname"], "forge");
    let dumped = f.restic(&[
        "dump",
        "latest",
        f.mountpoint.join("pages/home.md").as_str(),
    ]);
    assert_eq!(
        dumped, "home v1",
        "the snapshot's content, not the live file"
    );
    // The live dataset was never touched by the backup.
    assert_eq!(
        std::fs::read_to_string(f.mountpoint.join("pages/home.md")).unwrap(),
        "home v2-live"
    );

    let released = f.release();
    assert_eq!(released.code, 0, "{released:#?}");
    assert_eq!(
        f.ours(),
        Vec::<String>::new(),
        "clone and snapshot destroyed"
    );
    assert!(!f.view.join("pages").exists(), "the view is unmounted");

    // The disk dies: an empty dataset. Preseed finds the backup by host
    // and path (the mountpoint) and restores its contents at the root.
    for entry in std::fs::read_dir(&f.mountpoint).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let state = f.pool.scratch("preseed-state");
    std::fs::create_dir_all(&state).unwrap();
    let plan = json!({
        "version": 1, "service": "wiki", "dataset": f.ds, "mountpoint": f.mountpoint,
        "owner": "root", "group": "root", "mode": "0750", "properties": {},
        "sources": [ { "restic": {
            "name": "b2", "repository": f.repo, "passwordFile": f.password,
            "host": "forge", "path": f.mountpoint,
        } } ],
        "stateDir": state, "timeoutSeconds": 30,
    });
    let plan_path = f.pool.write_plan("preseed.json", &plan);
    let run = run_logged(
        &binaries::fresh("preseed-restore"),
        &["--plan", plan_path.as_str()],
        &BTreeMap::new(),
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(
        std::fs::read_to_string(f.mountpoint.join("pages/home.md")).unwrap(),
        "home v1"
    );
    assert_eq!(
        std::fs::read_to_string(f.mountpoint.join("wiki.db")).unwrap(),
        "db v1"
    );
    assert!(!f.mountpoint.join("written-after.txt").exists());
}

#[test]
fn a_killed_run_is_cleaned_by_the_next_and_nothing_foreign_is_destroyed() {
    let f = Fixture::new("bkstale");
    f.write("v1");
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_2026-11-30_00:00:00_hourly", f.ds),
    ]);
    assert_eq!(f.take().code, 0);
    let first = f.ours();
    assert_eq!(first.len(), 2, "{first:?}");
    // kill -9 of the backup: no release ran. The next run's take destroys
    // the stale clone and snapshot first.
    std::thread::sleep(Duration::from_millis(1100));
    f.write("v2");
    let took = f.take();
    assert_eq!(took.code, 0, "{took:#?}");
    for stale in &first {
        assert!(
            took.stdout.contains(&format!("destroyed {stale}")),
            "{}",
            took.stdout
        );
    }
    let second = f.ours();
    assert_eq!(second.len(), 2, "one clone, one snapshot: {second:?}");
    assert_ne!(second, first);
    assert_eq!(
        std::fs::read_to_string(f.view.join("pages/home.md")).unwrap(),
        "home v2"
    );
    // Releasing twice is fine.
    assert_eq!(f.release().code, 0);
    assert_eq!(f.release().code, 0);
    assert!(exists(&format!(
        "{}@autosnap_2026-11-30_00:00:00_hourly",
        f.ds
    )));

    // A dataset of that name that zpersist did not make: refused, and
    // nothing is touched (no snapshot taken either).
    let foreign = format!("{}-zpersist-restic", f.ds);
    zfs(&["create", "-o", "mountpoint=none", &foreign]);
    let refused = f.take();
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stderr.contains("is not a backup view of") && refused.stderr.contains("help: "),
        "{}",
        refused.stderr
    );
    assert!(exists(&foreign));
    assert_eq!(
        refused
            .zfs_calls
            .iter()
            .filter(|c| c[0] != "get" && c[0] != "list")
            .count(),
        0,
        "{:?}",
        refused.zfs_calls
    );

    // Bad arguments: exit 2, zfs never run.
    let bad = f.step(&["take", &format!("{}@x", f.ds), "/tmp/v"]);
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(bad.zfs_calls.is_empty());
    let relative = f.step(&["take", &f.ds, "relative/view"]);
    assert_eq!(relative.code, 2, "{relative:#?}");
}

fn status_config(f: &Fixture, name: &str, max_age: u64, repository: &str) -> Utf8PathBuf {
    let dir = f.pool.scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let services = json!({ "version": 1, "pool": f.pool.name, "services": {
        "wiki": { "dataset": f.ds, "mountpoint": f.mountpoint } } });
    let objectives = json!({ "version": 1, "services": { "wiki": {
        "maxBackupAgeSeconds": max_age,
        "resticBackup": { "name": "b2", "repository": repository,
            "passwordFile": f.password, "host": "forge", "path": f.mountpoint } } } });
    std::fs::write(dir.join("services.json"), services.to_string()).unwrap();
    std::fs::write(dir.join("status.json"), objectives.to_string()).unwrap();
    dir
}

fn status(dir: &Utf8Path, extra: &[&str]) -> Recorded {
    let mut args = vec!["--config", dir.as_str()];
    args.extend_from_slice(extra);
    run_recorded(&binaries::fresh("zpersist-status"), &args, &BTreeMap::new())
}

#[test]
fn status_shows_the_backup_age_and_goes_red_when_stale_or_unreachable() {
    let f = Fixture::new("bkstatus");
    f.write("v1");
    let dir = status_config(&f, "none-yet", 3600, f.repo.as_str());
    // No backup yet: red.
    let r = status(&dir, &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stdout.contains("restic backup: none in b2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("holds no backup of wiki's data"),
        "{}",
        r.stdout
    );

    assert_eq!(f.take().code, 0);
    f.backup_in_namespace();
    assert_eq!(f.release().code, 0);
    // Our transient snapshot never counts as the dataset's newest one.
    zfs(&[
        "snapshot",
        &format!("{}@zpersist-restic-20000101T000000Z", f.ds),
    ]);

    let textfile = f.pool.scratch("status.prom");
    let r = status(&dir, &["--json", "--textfile", textfile.as_str()]);
    assert_eq!(r.code, 0, "{r:#?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let wiki = &report["services"][0];
    assert_eq!(wiki["backup"]["state"], "reached", "{wiki:#}");
    assert_eq!(wiki["backup"]["repository"], "b2");
    let age = wiki["backupAgeSeconds"].as_i64().unwrap();
    assert!((0..60).contains(&age), "{age}");
    assert_eq!(wiki["objectives"]["maxBackupAgeSeconds"], 3600);
    assert_eq!(wiki["newestSnapshot"], Value::Null, "{wiki:#}");
    assert_eq!(wiki["problems"], json!([]));
    let text = std::fs::read_to_string(&textfile).unwrap();
    let labels = format!("service=\"wiki\",dataset=\"{}\",repository=\"b2\"", f.ds);
    assert!(
        text.contains(&format!(
            "zpersist_status_backup_age_seconds{{{labels}}} {age}"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("zpersist_status_backup_reachable{{{labels}}} 1")));
    assert!(text.contains(&format!(
        "zpersist_status_backup_age_objective_seconds{{service=\"wiki\",dataset=\"{}\"}} 3600",
        f.ds
    )));
    // One restic listing for the repository, whatever the number of paths.
    let r = status(&dir, &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("restic backup: "), "{}", r.stdout);

    // Stale: older than the objective.
    std::thread::sleep(Duration::from_millis(2100));
    let stale = status_config(&f, "stale", 1, f.repo.as_str());
    let r = status(&stale, &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stdout.contains("s old (objective: at most 1 s)")
            && r.stdout
                .contains("journalctl -u restic-backups-zpersist-wiki"),
        "{}",
        r.stdout
    );

    // A repository that cannot be read: unreachable, never fine.
    let gone = status_config(&f, "gone", 3600, f.pool.scratch("no-such-repo").as_str());
    let r = status(&gone, &["--json", "--textfile", textfile.as_str()]);
    assert_eq!(r.code, 1, "{r:#?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["services"][0]["backup"]["state"], "unreachable");
    assert_eq!(report["services"][0]["backupAgeSeconds"], Value::Null);
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert!(text.contains(&format!(
        "zpersist_status_backup_reachable{{service=\"wiki\",dataset=\"{}\",repository=\"b2\"}} 0",
        f.ds
    )));
    assert!(!text.contains("zpersist_status_backup_age_seconds{"));

    // A repository that hangs: the call is bounded by --timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        // Read each request, never answer.
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf);
            held.push(c);
        }
    });
    let hung = status_config(&f, "hung", 3600, &format!("rest:http://127.0.0.1:{port}/"));
    let started = std::time::Instant::now();
    let r = status(&hung, &["--timeout", "3"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        r.stdout.contains("restic backup: b2 unreachable"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("did not finish within 3 s"),
        "{}",
        r.stdout
    );
}

/// Issue 18: a backed-up dataset with a child. The service sees the
/// child's files under its mountpoint, the view restic reads would not
/// (a clone of the parent's snapshot shows none of a child's): take
/// refuses, naming the child, before any snapshot or clone is made.
#[test]
fn a_dataset_with_a_child_is_refused_before_anything_is_snapshotted() {
    let f = Fixture::new("bkchild");
    f.write("v1");
    let child = format!("{}/media", f.ds);
    zfs(&["create", &child]);
    std::fs::write(f.mountpoint.join("media/film.mkv"), "film").unwrap();
    let refused = f.take();
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains(&format!("has child dataset(s) {child}"))
            && refused.stderr.contains("help: "),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .zfs_calls
            .iter()
            .all(|c| c[0] == "list" || c[0] == "get"),
        "nothing snapshotted, cloned or destroyed: {:?}",
        refused.zfs_calls
    );
    assert!(f.ours().is_empty(), "{:?}", f.ours());
}

/// Issue 18: a restic backup dated 30 days ahead (`restic backup --time`)
/// made the backup age 0 and status green while no real backup was made.
/// It is an alarm now, and the age is judged from the newest backup that
/// is not in the future: here an older real one, stale by the objective.
#[test]
fn a_backup_dated_in_the_future_is_an_alarm_and_the_age_is_the_real_ones() {
    let f = Fixture::new("bkfuture");
    f.write("v1");
    assert_eq!(f.take().code, 0);
    f.backup_in_namespace();
    assert_eq!(f.release().code, 0);
    std::thread::sleep(Duration::from_millis(2100));
    let ahead = duct::cmd("date", ["-d", "+30 days", "+%Y-%m-%d %H:%M:%S"])
        .read()
        .unwrap();
    f.restic(&[
        "backup",
        "--host",
        "forge",
        "--time",
        &ahead,
        f.mountpoint.as_str(),
    ]);
    let dir = status_config(&f, "future", 1, f.repo.as_str());
    let textfile = f.pool.scratch("future.prom");
    let r = status(&dir, &["--textfile", textfile.as_str()]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stdout.contains("error: the restic backup ")
            && r.stdout.contains(" of wiki in b2 is dated ")
            && r.stdout.contains("s ahead of this host's clock"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("restic backup dated in the future: "),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("s old (objective: at most 1 s)"),
        "the real backup's age is judged: {}",
        r.stdout
    );
    let j = status(&dir, &["--json"]);
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    let wiki = &report["services"][0];
    let age = wiki["backupAgeSeconds"].as_i64().unwrap();
    assert!((2..120).contains(&age), "{age}: {wiki:#}");
    assert!(
        wiki["backup"]["inFuture"]["time"].as_i64().unwrap()
            > report["now"].as_i64().unwrap() + 29 * 86_400
    );
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "zpersist_status_future_dated_seconds{{service=\"wiki\",dataset=\"{}\",repository=\"b2\",kind=\"backup\"}} 259",
            f.ds
        ))),
        "{text}"
    );
}
