//! zpersist-status against real zfs-fuse pools: a service in shape, then
//! each broken promise (a stale snapshot, a lagging local target, an
//! unreachable remote target on a closed port, a missing mount) shown and
//! exit 1; bad input exit 2 touching no zfs; 200 datasets within the bound
//! of two zfs calls (counted by the recording wrapper).

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

/// `POOL/app` with a snapshot `s1` received into `TARGET/backup/app`;
/// `before` runs on `POOL/app` before the snapshot (to set properties).
fn replicated_app(pool: &TestPool, target: &TestPool, before: impl Fn(&str)) {
    let app = pool.ds("app");
    zfs(&["create", &app]);
    zfs(&["create", &target.ds("backup")]);
    before(&app);
    zfs(&["snapshot", &format!("{app}@s1")]);
    zpersist_e2e::pool::run_ok(
        "sh",
        &[
            "-c",
            &format!(
                "zfs send {app}@s1 | zfs receive -u {}",
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
        r.stdout.contains("target usb: holds s1 (lag 0 s)"),
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
    assert_eq!(app["newestSnapshot"]["name"], "s1");
    assert_eq!(app["targets"]["usb"]["state"], "reached");
    assert_eq!(app["targets"]["usb"]["lagSeconds"], 0);
    assert_eq!(app["problems"], json!([]));

    // A lagging target: a newer local snapshot the target lacks.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    zfs(&["snapshot", &format!("{}@s2", pool.ds("app"))]);
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

    // A stale snapshot: the newest (s2) older than the objective.
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
        .contains("the newest snapshot of"));
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
    zfs(&["snapshot", "-r", &format!("{}@now", pool.name)]);
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
    zfs(&["snapshot", &format!("{}@s2", pool.ds("app"))]);
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
    assert!(lag >= 1, "s2 is newer than what usb holds: {app}");
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
    zfs(&["snapshot", &format!("{}@s2", pool.ds("app"))]);
    // Same name on the target, made there: another guid.
    zfs(&["snapshot", &format!("{}@s2", nas.ds("backup/app"))]);
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
    assert_eq!(nas_facts["newestHeld"]["name"], "s1", "{nas_facts}");
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
    zfs(&["snapshot", &format!("{}@s1", pool.ds("app"))]);
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
        r.stdout
            .contains(&format!("error: the snapshot {app}@s1 is dated ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("s ahead of this host's clock"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("snapshot dated in the future: s1"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("timedatectl status"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "error: the snapshot s1 on target usb (the copy of {app}) is dated"
        )),
        "{}",
        r.stdout
    );
    let j = run(&["--json"]);
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    let s = &report["services"][0];
    assert_eq!(s["newestSnapshot"], Value::Null, "{s:#}");
    assert_eq!(s["snapshotAgeSeconds"], Value::Null, "never 0: {s:#}");
    assert_eq!(s["futureSnapshot"]["name"], "s1");
    assert_eq!(s["targets"]["usb"]["newestHeld"], Value::Null, "{s:#}");
    assert_eq!(s["targets"]["usb"]["futureSnapshot"]["name"], "s1");
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
