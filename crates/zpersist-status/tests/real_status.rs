//! zpersist-status against real zfs-fuse pools: a service in shape, then
//! each broken promise (a stale snapshot, a lagging local target, an
//! unreachable remote target on a closed port, a missing mount) shown and
//! exit 1; bad input exit 2 touching no zfs; 200 datasets within the bound
//! of two zfs calls (counted by the recording wrapper); pools (a real
//! scrub, a degraded mirror), a stopped sanoid while syncoid ships, and
//! PostgreSQL 15 with PITR archiving.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::pool::{run_recorded, zfs, Recorded, TestPool};
use zpersist_e2e::sshd;

const STATUS: &str = env!("CARGO_BIN_EXE_zpersist-status");

fn config(pool: &TestPool, name: &str, files: &[(&str, Value)]) -> Utf8PathBuf {
    let dir = pool.scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, value) in files {
        std::fs::write(dir.join(file), serde_json::to_string_pretty(value).unwrap()).unwrap();
    }
    dir
}

fn services(pool: &TestPool, names: &[&str]) -> Value {
    let mut s = serde_json::Map::new();
    for n in names {
        s.insert(
            n.to_string(),
            json!({ "dataset": pool.ds(n), "mountpoint": pool.mnt().join(n).as_str() }),
        );
    }
    json!({ "version": 1, "pool": pool.name, "services": s })
}

fn status(dir: &Utf8Path, extra: &[&str]) -> Recorded {
    let mut args = vec!["--config", dir.as_str()];
    args.extend(extra);
    run_recorded(Utf8Path::new(STATUS), &args, &BTreeMap::new())
}

fn objectives(age: u64, lag: u64) -> Value {
    json!({ "version": 1, "services": { "app": {
        "maxSnapshotAgeSeconds": age, "maxReplicationLagSeconds": lag } } })
}

fn local_replication(pool: &TestPool, usb: &TestPool) -> Value {
    json!({ "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
        "targets": { "usb": { "host": null, "dataset": usb.ds("backup"), "identifier": "usb" } },
        "datasets": [ { "source": pool.ds("app"), "target": "usb", "targetDataset": usb.ds("backup/app") } ] })
}

/// `POOL/app` with a snapshot `autosnap_s1_hourly` received into `TARGET/backup/app`;
/// `before` runs on `POOL/app` before the snapshot (to set properties).
fn replicated_app(pool: &TestPool, target: &TestPool, before: impl Fn(&str)) {
    let app = pool.ds("app");
    zfs(&["create", &app]);
    zfs(&["create", &target.ds("backup")]);
    before(&app);
    zfs(&["snapshot", &format!("{app}@autosnap_s1_hourly")]);
    zpersist_e2e::pool::run_ok(
        "sh",
        &[
            "-c",
            &format!(
                "zfs send {app}@autosnap_s1_hourly | zfs receive -u {}",
                target.ds("backup/app")
            ),
        ],
    );
}

#[test]
fn in_shape_then_each_broken_promise_is_shown_and_exits_1() {
    let pool = TestPool::new("status");
    let usb = pool.companion("susb");
    replicated_app(&pool, &usb, |app| {
        zfs(&["set", "com.zpersist:preseed=replica", app]);
    });
    let svc = services(&pool, &["app"]);
    let repl = local_replication(&pool, &usb);

    // In shape: mounted, a fresh snapshot, the target holds it.
    let dir = config(
        &pool,
        "ok",
        &[
            ("services.json", svc.clone()),
            ("replication.json", repl.clone()),
            ("status.json", objectives(3600, 3600)),
        ],
    );
    let r = status(&dir, &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.starts_with("ok app"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("target usb: holds autosnap_s1_hourly (lag 0 s)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("preseed: replica"), "{}", r.stdout);
    // Properties, snapshots, and one listing of the local target's tree.
    assert_eq!(r.zfs_calls.len(), 3, "{:?}", r.zfs_calls);
    let j = status(&dir, &["--json"]);
    assert_eq!(j.code, 0, "{j:#?}");
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    let app = &report["services"][0];
    assert_eq!(app["service"], "app");
    assert_eq!(app["facts"]["mounted"], true);
    assert_eq!(app["facts"]["mountpoint"], pool.mnt().join("app").as_str());
    assert_eq!(app["facts"]["preseed"], "replica");
    assert_eq!(app["newestSnapshot"]["name"], "autosnap_s1_hourly");
    assert_eq!(app["targets"]["usb"]["state"], "reached");
    assert_eq!(app["targets"]["usb"]["lagSeconds"], 0);
    assert_eq!(app["problems"], json!([]));

    // A lagging target: a newer local snapshot the target lacks.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_s2_hourly", pool.ds("app")),
    ]);
    let dir = config(
        &pool,
        "lag",
        &[
            ("services.json", svc.clone()),
            ("replication.json", repl.clone()),
            ("status.json", objectives(3600, 1)),
        ],
    );
    let r = status(&dir, &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.starts_with("FAIL app"), "{}", r.stdout);
    assert!(r.stdout.contains("error: target usb is "), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("help: `systemctl list-units 'syncoid-*'`"),
        "{}",
        r.stdout
    );

    // A stale snapshot: the newest (autosnap_s2_hourly) older than the objective.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let dir = config(
        &pool,
        "stale",
        &[
            ("services.json", svc.clone()),
            ("status.json", objectives(1, 3600)),
        ],
    );
    let r = status(&dir, &["--json"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let problems = report["services"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0]["error"]
        .as_str()
        .unwrap()
        .contains("the newest policy snapshot of"));
    assert!(problems[0]["help"].as_str().unwrap().contains("sanoid"));

    // An unreachable target: the pinned ssh to a closed port on 127.0.0.1.
    let unreachable = json!({ "version": 1, "host": "forge", "textfile": null,
        "maxLagSeconds": null, "timeoutSeconds": 10,
        "targets": { "nas": { "host": "127.0.0.1", "port": 1, "user": "root",
            "dataset": "backup", "sshKey": sshd::client_key(),
            "knownHosts": sshd::known_hosts(), "identifier": "nas" } },
        "datasets": [ { "source": pool.ds("app"), "target": "nas", "targetDataset": "backup/app" } ] });
    let dir = config(
        &pool,
        "unreachable",
        &[
            ("services.json", svc.clone()),
            ("replication.json", unreachable),
        ],
    );
    let r = status(&dir, &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("target nas: unreachable"), "{}", r.stdout);
    assert!(r.stdout.contains("error: target nas of"), "{}", r.stdout);
    let j = status(&dir, &["--json"]);
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(
        report["services"][0]["targets"]["nas"]["state"],
        "unreachable"
    );

    // A missing mount.
    zfs(&["unmount", &pool.ds("app")]);
    let dir = config(&pool, "unmounted", &[("services.json", svc.clone())]);
    let r = status(&dir, &["app"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("mounted: no"), "{}", r.stdout);
    assert!(
        r.stdout.contains("is not mounted (it should be at"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("help: `zfs mount {}`", pool.ds("app"))),
        "{}",
        r.stdout
    );
    zfs(&["mount", &pool.ds("app")]);
    drop(usb);
}

#[test]
fn bad_input_exits_2_and_runs_no_zfs() {
    let pool = TestPool::new("sbad");
    let dir = config(
        &pool,
        "bad",
        &[("services.json", services(&pool, &["app"]))],
    );
    let r = status(&dir, &["nosuch"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("error: no service \"nosuch\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("help: the declared services are: app"),
        "{}",
        r.stderr
    );
    assert!(r.zfs_calls.is_empty(), "{r:#?}");
    std::fs::write(dir.join("status.json"), "{\"version\": 2}").unwrap();
    let r = status(&dir, &[]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains(
            "status.json is not valid: status objectives file version 2 is not supported"
        ),
        "{}",
        r.stderr
    );
    assert!(r.zfs_calls.is_empty(), "{r:#?}");
}

#[test]
fn two_hundred_datasets_take_two_zfs_calls() {
    let pool = TestPool::new("s200");
    let names: Vec<String> = (0..200).map(|i| format!("svc{i:03}")).collect();
    for n in &names {
        zfs(&["create", &pool.ds(n)]);
    }
    zfs(&[
        "snapshot",
        "-r",
        &format!("{}@autosnap_now_hourly", pool.name),
    ]);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = config(&pool, "many", &[("services.json", services(&pool, &refs))]);
    let r = status(&dir, &["--json"]);
    assert_eq!(
        r.code,
        0,
        "{}\n{}",
        r.stderr,
        &r.stdout[..r.stdout.len().min(2000)]
    );
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["services"].as_array().unwrap().len(), 200);
    assert_eq!(r.zfs_calls.len(), 2, "{:?}", r.zfs_calls);
    assert!(
        r.zfs_calls.iter().all(|c| c.contains(&"-r".to_string())),
        "{:?}",
        r.zfs_calls
    );
}

/// The textfile's numbers are `--json`'s: snapshot age, lag per target,
/// reachability, preseed provenance, written by the same run.
#[test]
fn the_textfile_numbers_match_json() {
    let pool = TestPool::new("stext");
    let usb = pool.companion("stusb");
    replicated_app(&pool, &usb, |app| {
        zfs(&["set", "com.zpersist:preseed=restic", app]);
        zfs(&["set", "com.zpersist:preseed-source=repo:abc", app]);
        zfs(&["set", "com.zpersist:preseed-at=2026-11-30T10:00:00Z", app]);
    });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_s2_hourly", pool.ds("app")),
    ]);
    let mut repl = local_replication(&pool, &usb);
    repl["targets"]["nas"] = json!({ "host": "127.0.0.1", "port": 1, "user": "root",
        "dataset": "backup", "sshKey": sshd::client_key(),
        "knownHosts": sshd::known_hosts(), "identifier": "nas" });
    repl["datasets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "source": pool.ds("app"), "target": "nas", "targetDataset": "backup/app" }));
    let dir = config(
        &pool,
        "text",
        &[
            ("services.json", services(&pool, &["app"])),
            ("replication.json", repl),
            ("status.json", objectives(3600, 3600)),
        ],
    );
    let prom = pool.scratch("status.prom");
    let r = status(&dir, &["--json", "--textfile", prom.as_str()]);
    assert_eq!(r.code, 1, "the unreachable target: {r:#?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let app = &report["services"][0];
    let text = std::fs::read_to_string(&prom).unwrap();
    let value = |series: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    };
    let ds = pool.ds("app");
    let base = format!("service=\"app\",dataset=\"{ds}\"");
    assert_eq!(
        value(&format!("zpersist_status_snapshot_age_seconds{{{base}}}")),
        app["snapshotAgeSeconds"].as_i64().unwrap()
    );
    let lag = app["targets"]["usb"]["lagSeconds"].as_i64().unwrap();
    assert!(
        lag >= 1,
        "autosnap_s2_hourly is newer than what usb holds: {app}"
    );
    assert_eq!(
        value(&format!(
            "zpersist_status_replication_lag_seconds{{{base},target=\"usb\"}}"
        )),
        lag
    );
    assert_eq!(
        value(&format!(
            "zpersist_status_target_reachable{{{base},target=\"usb\"}}"
        )),
        1
    );
    assert_eq!(
        value(&format!(
            "zpersist_status_target_reachable{{{base},target=\"nas\"}}"
        )),
        0
    );
    // An unreachable target has no lag series: never shown as in sync.
    assert!(!text.contains(&format!(
        "zpersist_status_replication_lag_seconds{{{base},target=\"nas\"}}"
    )));
    assert_eq!(value(&format!("zpersist_status_ok{{{base}}}")), 0);
    assert_eq!(value(&format!("zpersist_status_mounted{{{base}}}")), 1);
    assert_eq!(
        value(&format!(
            "zpersist_status_snapshot_age_objective_seconds{{{base}}}"
        )),
        app["objectives"]["maxSnapshotAgeSeconds"].as_i64().unwrap()
    );
    assert_eq!(
        value(&format!(
            "zpersist_status_preseed_info{{{base},preseed=\"restic\",source=\"repo:abc\",at=\"2026-11-30T10:00:00Z\"}}"
        )),
        1
    );
    assert_eq!(app["facts"]["preseedSource"], "repo:abc");
    drop(usb);
}

/// A remote target over the pinned ssh (the loopback sshd): what it holds
/// is read over ssh and matched by guid; a snapshot made on the target
/// itself (same name, another guid) does not count.
#[test]
fn a_remote_target_is_read_over_the_pinned_ssh_by_guid() {
    sshd::require();
    let pool = TestPool::new("sremote");
    let nas = pool.companion("snas");
    replicated_app(&pool, &nas, |_| {});
    std::thread::sleep(std::time::Duration::from_millis(1100));
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_s2_hourly", pool.ds("app")),
    ]);
    // Same name on the target, made there: another guid.
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_s2_hourly", nas.ds("backup/app")),
    ]);
    let repl = json!({ "version": 1, "host": "forge", "textfile": null,
        "maxLagSeconds": null, "timeoutSeconds": 20,
        "targets": { "nas": { "host": sshd::HOST, "port": sshd::PORT, "user": sshd::USER,
            "dataset": nas.ds("backup"), "sshKey": sshd::client_key(),
            "knownHosts": sshd::known_hosts(), "identifier": "nas" } },
        "datasets": [ { "source": pool.ds("app"), "target": "nas", "targetDataset": nas.ds("backup/app") } ] });
    let dir = config(
        &pool,
        "remote",
        &[
            ("services.json", services(&pool, &["app"])),
            ("replication.json", repl),
            ("status.json", objectives(3600, 3600)),
        ],
    );
    let r = status(&dir, &["--json"]);
    assert_eq!(r.code, 0, "{r:#?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let nas_facts = &report["services"][0]["targets"]["nas"];
    assert_eq!(nas_facts["state"], "reached", "{nas_facts}");
    assert_eq!(
        nas_facts["newestHeld"]["name"], "autosnap_s1_hourly",
        "{nas_facts}"
    );
    assert!(
        nas_facts["lagSeconds"].as_i64().unwrap() >= 1,
        "{nas_facts}"
    );
    // Locally only the property get and the snapshot listing: the target
    // was read over ssh.
    assert_eq!(r.zfs_calls.len(), 2, "{:?}", r.zfs_calls);
    drop(nas);
}

/// A local target whose pool is not imported (the USB disk unplugged) is
/// unreachable, with the listing's own help, never in sync.
#[test]
fn a_local_target_without_its_pool_is_unreachable() {
    let pool = TestPool::new("sunplug");
    zfs(&["create", &pool.ds("app")]);
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_s1_hourly", pool.ds("app")),
    ]);
    let gone = format!("{}gone/backup", pool.name);
    let repl = json!({ "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
        "targets": { "usb": { "host": null, "dataset": gone, "identifier": "usb" } },
        "datasets": [ { "source": pool.ds("app"), "target": "usb", "targetDataset": format!("{gone}/app") } ] });
    let dir = config(
        &pool,
        "unplugged",
        &[
            ("services.json", services(&pool, &["app"])),
            ("replication.json", repl),
        ],
    );
    let r = status(&dir, &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("target usb: unreachable"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "the local target {gone} does not exist on this host"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("help: import the pool holding"),
        "{}",
        r.stdout
    );
}

/// Issue 18: a tmpfs mounted over the dataset's path. zfs still says the
/// dataset is mounted there, but the service would see the tmpfs: status
/// is red (exit 1), names the cover, and the textfile's mounted is 0.
#[test]
fn a_dataset_covered_by_another_mount_is_red_naming_the_cover() {
    let pool = TestPool::new("stcover");
    let app = pool.ds("app");
    zfs(&["create", &app]);
    let at = pool.mnt().join("app");
    let textfile = pool.scratch("cover.prom");
    let dir = config(
        &pool,
        "cover",
        &[("services.json", services(&pool, &["app"]))],
    );
    assert_eq!(status(&dir, &[]).code, 0);

    let cover = zpersist_e2e::cover::Tmpfs::over(at.as_str(), "zpersist-cover");
    let r = status(&dir, &["--textfile", textfile.as_str()]);
    let j = status(&dir, &["--json"]);
    drop(cover);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.starts_with("FAIL app"), "{}", r.stdout);
    assert!(
        r.stdout.contains("mounted: covered (zfs says yes)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "error: {app} is mounted (zfs says so), but {at} does not show {app}: tmpfs from zpersist-cover is mounted over it, hiding the dataset; app would not see its data"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("(`umount {at}`)")),
        "{}",
        r.stdout
    );
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    let facts = &report["services"][0]["facts"];
    assert_eq!(facts["pathState"]["state"], "not-shown", "{facts}");
    assert_eq!(
        facts["pathState"]["view"]["by"],
        "tmpfs from zpersist-cover"
    );
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        text.contains(&format!(
            "zpersist_status_mounted{{service=\"app\",dataset=\"{app}\"}} 0"
        )),
        "{text}"
    );
    // Uncovered, green again.
    assert_eq!(status(&dir, &[]).code, 0);
}

/// Issue 18: a snapshot dated 30 days ahead of the clock status runs by
/// (here: status's clock set 30 days back with libfaketime, the same as a
/// host whose clock ran ahead when the snapshot was taken). Its age was 0
/// (clamped) and status green; now it is an alarm, the age is judged from
/// the newest snapshot not in the future (none here), and the target's
/// copy of it does not count as held.
#[test]
fn a_snapshot_dated_in_the_future_is_an_alarm_not_a_fresh_snapshot() {
    let pool = TestPool::new("stfuture");
    let usb = pool.companion("sfusb");
    replicated_app(&pool, &usb, |_| {});
    let app = pool.ds("app");
    let textfile = pool.scratch("future.prom");
    let dir = config(
        &pool,
        "future",
        &[
            ("services.json", services(&pool, &["app"])),
            ("replication.json", local_replication(&pool, &usb)),
            ("status.json", objectives(3600, 3600)),
        ],
    );
    assert_eq!(status(&dir, &[]).code, 0, "in shape by the true clock");
    let behind: BTreeMap<&str, &str> = [
        (
            "LD_PRELOAD",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        ),
        ("FAKETIME", "-30d"),
    ]
    .into();
    let run = |extra: &[&str]| {
        let mut args = vec!["--config", dir.as_str()];
        args.extend(extra);
        run_recorded(Utf8Path::new(STATUS), &args, &behind)
    };
    let r = run(&["--textfile", textfile.as_str()]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stdout.contains(&format!(
            "error: the snapshot {app}@autosnap_s1_hourly is dated "
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("s ahead of this host's clock"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("snapshot dated in the future: autosnap_s1_hourly"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("timedatectl status"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "error: the snapshot autosnap_s1_hourly on target usb (the copy of {app}) is dated"
        )),
        "{}",
        r.stdout
    );
    let j = run(&["--json"]);
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    let s = &report["services"][0];
    assert_eq!(s["newestSnapshot"], Value::Null, "{s:#}");
    assert_eq!(s["snapshotAgeSeconds"], Value::Null, "never 0: {s:#}");
    assert_eq!(s["futureSnapshot"]["name"], "autosnap_s1_hourly");
    assert_eq!(s["targets"]["usb"]["newestHeld"], Value::Null, "{s:#}");
    assert_eq!(
        s["targets"]["usb"]["futureSnapshot"]["name"],
        "autosnap_s1_hourly"
    );
    let text = std::fs::read_to_string(&textfile).unwrap();
    let ahead = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "zpersist_status_future_dated_seconds{{service=\"app\",dataset=\"{app}\",kind=\"snapshot\"}} "
            ))
        })
        .unwrap_or_else(|| panic!("{text}"));
    let seconds: i64 = ahead.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((29 * 86_400..31 * 86_400).contains(&seconds), "{seconds}");
    assert!(
        !text.contains("zpersist_status_snapshot_age_seconds{"),
        "{text}"
    );
}

fn zpool(args: &[&str]) -> String {
    zpersist_e2e::pool::run_ok("zpool", args)
}

/// Waits (at most 120 s) until the pool's last scan is a completed scrub.
fn scrub_and_wait(pool: &str) {
    zpool(&["scrub", pool]);
    for _ in 0..240 {
        let s = zpool(&["status", pool]);
        if s.contains("scrub completed") || s.contains("scrub repaired") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!(
        "the scrub of {pool} did not complete: {}",
        zpool(&["status", pool])
    );
}

/// Issue 22: every pool's health and last scrub, judged: never scrubbed
/// is red, a real scrub makes it green (age and errors shown), a mirror
/// with one side offline is DEGRADED and red, in text, JSON and textfile.
#[test]
fn pool_health_and_scrub_age_are_judged_a_degraded_mirror_is_red() {
    let pool = TestPool::new("stscrub");
    zfs(&["create", &pool.ds("app")]);
    let mirror = format!("{}m", pool.name);
    let (a, b) = (pool.scratch("m-a.img"), pool.scratch("m-b.img"));
    for img in [&a, &b] {
        std::fs::File::create(img)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
    }
    let mnt = pool.scratch("m-mnt");
    zpool(&[
        "create",
        "-m",
        mnt.as_str(),
        &mirror,
        "mirror",
        a.as_str(),
        b.as_str(),
    ]);
    let dir = config(
        &pool,
        "scrub",
        &[
            ("services.json", services(&pool, &["app"])),
            (
                "status.json",
                json!({ "version": 1, "pools": {
                    pool.name.clone(): { "maxScrubAgeSeconds": 3600 },
                    mirror.clone(): { "maxScrubAgeSeconds": 3600 } } }),
            ),
        ],
    );
    let textfile = pool.scratch("scrub.prom");
    let json_of = |r: &Recorded| -> Value { serde_json::from_str(&r.stdout).unwrap() };

    // Never scrubbed: red, with the command that fixes it.
    let never = status(&dir, &["--json"]);
    assert_eq!(never.code, 1, "{never:#?}");
    let v = json_of(&never);
    let pools = v["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "{v}");
    for p in pools {
        assert_eq!(p["facts"]["health"], "ONLINE", "{p}");
        assert_eq!(p["facts"]["scan"]["state"], "none", "{p}");
        let problem = &p["problems"][0];
        assert!(
            problem["error"]
                .as_str()
                .unwrap()
                .contains("has never been scrubbed"),
            "{p}"
        );
        assert!(
            problem["help"]
                .as_str()
                .unwrap()
                .contains(&format!("`zpool scrub {}`", p["pool"].as_str().unwrap())),
            "{p}"
        );
    }

    // A real scrub of each: green, its age and errors shown.
    scrub_and_wait(&pool.name);
    scrub_and_wait(&mirror);
    let scrubbed = status(&dir, &["--json", "--textfile", textfile.as_str()]);
    assert_eq!(scrubbed.code, 0, "{scrubbed:#?}");
    let v = json_of(&scrubbed);
    for p in v["pools"].as_array().unwrap() {
        assert_eq!(p["problems"], json!([]), "{p}");
        assert_eq!(p["scrubErrors"], 0, "{p}");
        let age = p["scrubAgeSeconds"].as_i64().unwrap();
        assert!((0..300).contains(&age), "the scrub just ran: {p}");
    }
    let text = std::fs::read_to_string(&textfile).unwrap();
    let age = v["pools"][0]["scrubAgeSeconds"].as_i64().unwrap();
    for row in [
        format!("zpersist_status_pool_healthy{{pool=\"{mirror}\"}} 1"),
        format!("zpersist_status_pool_scrub_errors{{pool=\"{mirror}\"}} 0"),
        format!(
            "zpersist_status_pool_scrub_age_seconds{{pool=\"{}\"}} {age}",
            v["pools"][0]["pool"].as_str().unwrap()
        ),
        format!("zpersist_status_pool_scrub_age_objective_seconds{{pool=\"{mirror}\"}} 3600"),
    ] {
        assert!(text.contains(&row), "{row}\n{text}");
    }

    // One side of the mirror offline: DEGRADED, red, with the command
    // that names the device.
    zpool(&["offline", &mirror, b.as_str()]);
    let degraded = status(&dir, &["--textfile", textfile.as_str()]);
    assert_eq!(degraded.code, 1, "{degraded:#?}");
    assert!(
        degraded
            .stdout
            .contains(&format!("FAIL pool {mirror}\n  health: DEGRADED\n")),
        "{}",
        degraded.stdout
    );
    assert!(
        degraded.stdout.contains(&format!(
            "  error: the pool {mirror} is DEGRADED\n    help: `zpool status -v {mirror}`"
        )),
        "{}",
        degraded.stdout
    );
    assert!(
        degraded
            .stdout
            .contains(&format!("ok pool {}\n", pool.name)),
        "{}",
        degraded.stdout
    );
    let text = std::fs::read_to_string(&textfile).unwrap();
    for row in [
        format!("zpersist_status_pool_healthy{{pool=\"{mirror}\"}} 0"),
        format!("zpersist_status_pool_health_info{{pool=\"{mirror}\",health=\"DEGRADED\"}} 1"),
        format!("zpersist_status_pool_ok{{pool=\"{mirror}\"}} 0"),
        format!("zpersist_status_pool_ok{{pool=\"{}\"}} 1", pool.name),
    ] {
        assert!(text.contains(&row), "{row}\n{text}");
    }
    for _ in 0..20 {
        if duct::cmd("zpool", ["destroy", "-f", &mirror])
            .stderr_null()
            .unchecked()
            .run()
            .is_ok_and(|o| o.status.success())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Runs `program args` (sanoid, syncoid) with `path` as PATH (their
/// zfs-fuse wrapper first) and TZ=UTC as nixpkgs' units: it must succeed.
fn run_tool(program: &str, args: &[&str], path: String) {
    let out = duct::cmd(program, args)
        .env("PATH", path)
        .env("TZ", "UTC")
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Real sanoid --take-snapshots with `conf` as its sanoid.conf.
fn sanoid_take(pool: &TestPool, conf: &str) {
    let configdir = pool.scratch("sanoid");
    let (cache, run) = (pool.scratch("sanoid-cache"), pool.scratch("sanoid-run"));
    for d in [&configdir, &cache, &run] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(configdir.join("sanoid.conf"), conf).unwrap();
    let path = format!(
        "{}:{}",
        zpersist_e2e::repo_root().join("tests/env/sanoid-zfs"),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = [
        "--configdir",
        configdir.as_str(),
        "--cache-dir",
        cache.as_str(),
        "--run-dir",
        run.as_str(),
        "--take-snapshots",
    ];
    run_tool("sanoid", &args, path);
}

/// Real syncoid from `source` to the local `target`, as the usb target.
fn syncoid(source: &str, target: &str) {
    let args = [
        "--no-resume",
        "--no-privilege-elevation",
        "--identifier=usb",
        source,
        target,
    ];
    run_tool("syncoid", &args, zpersist_e2e::syncoid::path_with_wrapper());
}

/// Issue 22: sanoid stops while syncoid keeps shipping: its fresh
/// `syncoid_usb_*` sync snapshots never count as the dataset's newest
/// (only the policy's autosnap_*_hourly do), so status goes red naming
/// them; the target is judged by the policy snapshots it holds.
#[test]
fn a_stopped_sanoid_is_red_while_syncoid_keeps_shipping_sync_snapshots() {
    let pool = TestPool::new("stsanoid");
    let usb = pool.companion("stsusb");
    let app = pool.ds("app");
    zfs(&["create", &app]);
    zfs(&["create", &usb.ds("backup")]);
    sanoid_take(
        &pool,
        &format!(
            "[{app}]\n  use_template = hourly\n\n[template_hourly]\n  frequently = 0\n  hourly = 24\n  daily = 0\n  weekly = 0\n  monthly = 0\n  yearly = 0\n  autosnap = yes\n  autoprune = no\n"
        ),
    );
    let target = usb.ds("backup/app");
    syncoid(&app, &target);
    let objective = 20;
    let dir = config(
        &pool,
        "sanoid-stopped",
        &[
            ("services.json", services(&pool, &["app"])),
            ("replication.json", local_replication(&pool, &usb)),
            (
                "status.json",
                json!({ "version": 1, "services": { "app": {
                    "maxSnapshotAgeSeconds": objective, "maxReplicationLagSeconds": 3600 } } }),
            ),
        ],
    );
    let fresh = status(&dir, &["--json"]);
    assert_eq!(fresh.code, 0, "sanoid just ran: {fresh:#?}");
    let v: Value = serde_json::from_str(&fresh.stdout).unwrap();
    let newest = v["services"][0]["newestSnapshot"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        newest.starts_with("autosnap_") && newest.ends_with("_hourly"),
        "{v}"
    );

    // sanoid stops; syncoid keeps shipping (a new sync snapshot each run).
    std::thread::sleep(std::time::Duration::from_secs(objective + 2));
    syncoid(&app, &target);
    let stale = status(&dir, &["--json"]);
    assert_eq!(stale.code, 1, "{stale:#?}");
    let v: Value = serde_json::from_str(&stale.stdout).unwrap();
    let s = &v["services"][0];
    assert_eq!(s["newestSnapshot"]["name"], newest.as_str(), "{s}");
    let problems = s["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{s}");
    let error = problems[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "the newest policy snapshot of {app} ({newest}) is "
        )),
        "{error}"
    );
    assert!(
        error.contains("not taken by the snapshot policy"),
        "{error}"
    );
    assert!(error.contains("syncoid_usb_"), "{error}");
    assert!(
        problems[0]["help"].as_str().unwrap().contains("sanoid"),
        "{s}"
    );
    // The target holds the policy snapshot too: what it holds of the
    // policy is judged, not syncoid's sync snapshot.
    assert_eq!(
        s["targets"]["usb"]["newestHeld"]["name"],
        newest.as_str(),
        "{s}"
    );
    assert_eq!(s["targets"]["usb"]["lagSeconds"], 0, "{s}");
}

/// Issue 22: PostgreSQL's recovery in status, from a real PostgreSQL 15
/// archiving through pitr-archive-wal: no base backup and no drill yet is
/// red; after pitr-base-backup and a real pitr-drill it is green with the
/// last archived segment, the base backup, the drill and its RPO (text,
/// JSON, textfile); archiving that fails is red with the command to look.
#[test]
fn postgresql_archive_base_backup_and_drill_are_judged() {
    use zpersist_e2e::postgres::PgCluster;
    let pool = TestPool::new("stpg");
    let pg = PgCluster::new("status");
    pg.sql("create table rows (n int primary key)");
    pg.commit_row(1);
    pg.switch_and_wait_archived();
    let contract: Value =
        serde_json::from_str(&std::fs::read_to_string(&pg.contract).unwrap()).unwrap();
    let dir = config(
        &pool,
        "pg",
        &[
            ("services.json", services(&pool, &[])),
            ("pitr.json", contract),
            (
                "status.json",
                json!({ "version": 1, "postgresql": {
                    "maxBaseBackupAgeSeconds": 3600, "maxDrillAgeSeconds": 3600, "maxRpoSeconds": 600 } }),
            ),
        ],
    );
    let textfile = pool.scratch("pg.prom");
    let pg_of = |r: &Recorded| -> Value {
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["postgresql"].clone()
    };

    // Archiving works, but nothing can be restored yet.
    let bare = status(&dir, &["--json"]);
    assert_eq!(bare.code, 1, "{bare:#?}");
    let p = pg_of(&bare);
    assert_eq!(p["archive"]["state"], "ok", "{p}");
    assert!(
        p["archiver"]["lastArchivedWal"].as_str().unwrap().len() == 24,
        "{p}"
    );
    let errors: Vec<&str> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{p}");
    assert!(errors[0].contains("holds no base backup"), "{errors:?}");
    assert!(errors[1].contains("no restore drill has run"), "{errors:?}");

    // A base backup and a real drill: green.
    pg.pitr("pitr-heartbeat", &[]);
    pg.pitr("pitr-base-backup", &[]);
    pg.pitr("pitr-heartbeat", &[]);
    pg.switch_and_wait_archived();
    pg.pitr("pitr-drill", &[]);
    let good = status(&dir, &["--json", "--textfile", textfile.as_str()]);
    assert_eq!(good.code, 0, "{good:#?}");
    let p = pg_of(&good);
    assert_eq!(p["problems"], json!([]), "{p}");
    let backup = p["baseBackup"]["id"].as_str().unwrap().to_string();
    assert!(!backup.is_empty(), "{p}");
    assert_eq!(p["drill"]["success"], true, "{p}");
    let rpo = p["drill"]["rpoSeconds"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&rpo), "{p}");
    let text = std::fs::read_to_string(&textfile).unwrap();
    for row in [
        "zpersist_status_pitr_ok{service=\"postgresql\"} 1".to_string(),
        "zpersist_status_pitr_archive_ok{service=\"postgresql\"} 1".to_string(),
        "zpersist_status_pitr_drill_success{service=\"postgresql\"} 1".to_string(),
        format!(
            "zpersist_status_pitr_base_backup_age_seconds{{service=\"postgresql\"}} {}",
            p["baseBackupAgeSeconds"]
        ),
        format!(
            "zpersist_status_pitr_rpo_seconds{{service=\"postgresql\"}} {}",
            rpo.round() as i64
        ),
        "zpersist_status_pitr_archive_age_objective_seconds{service=\"postgresql\"} 600"
            .to_string(),
    ] {
        assert!(text.contains(&row), "{row}\n{text}");
    }
    let shown = status(&dir, &[]);
    assert_eq!(shown.code, 0, "{shown:#?}");
    assert!(
        shown.stdout.contains(&format!("  base backup: {backup} (")),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("  last drill: succeeded at "),
        "{}",
        shown.stdout
    );

    // Archiving fails (the repository's WAL directory unwritable): red.
    let wal = pg.dir.join("repo/wal");
    zpersist_e2e::pool::run_ok("chmod", &["000", wal.as_str()]);
    pg.commit_row(2);
    pg.sql("select pg_switch_wal()");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let failing = loop {
        let r = status(&dir, &["--json"]);
        if pg_of(&r)["archive"]["state"] == "failing" {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "archiving never failed: {r:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    zpersist_e2e::pool::run_ok("chmod", &["755", wal.as_str()]);
    assert_eq!(failing.code, 1, "{failing:#?}");
    let p = pg_of(&failing);
    let problem = &p["problems"][0];
    assert!(
        problem["error"]
            .as_str()
            .unwrap()
            .starts_with("archiving WAL fails: segment "),
        "{p}"
    );
    assert!(
        problem["help"]
            .as_str()
            .unwrap()
            .contains("journalctl -u postgresql"),
        "{p}"
    );
    assert!(p["archiver"]["failedCount"].as_u64().unwrap() >= 1, "{p}");
}
