//! `zpersist restore` and `zpersist drill` against real zfs-fuse pools,
//! with their plans found in a configuration directory as the NixOS module
//! lays it out (`preseed/SERVICE.json`, `drill/SERVICE.json`): a dry run
//! runs no mutating zfs call, data there is refused without `--replace`,
//! `--replace` moves it aside (kept) and restores the point, `--from`
//! restores only that source, a drill from the docs' command works.

use std::collections::BTreeMap;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::pool::{exists, get, run_logged, zfs, Recorded, TestPool};
use zpersist_e2e::syncoid::path_with_wrapper;

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_zpersist"))
}

const FIRST: &str = "autosnap_2026-11-01_00:00:00_hourly";

/// Sonarr's dataset holding `v1` in a local snapshot, its replica in a
/// companion pool, and a configuration directory naming both.
struct Fixture {
    /// Declared before `pool` so it is dropped first, within its turn.
    replica: TestPool,
    pool: TestPool,
    ds: String,
    mountpoint: Utf8PathBuf,
    copy: String,
    config: Utf8PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
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
        let f = Fixture {
            copy: replica.ds("backup/forge/services/sonarr"),
            config: pool.scratch("etc-zpersist"),
            replica,
            pool,
            ds,
            mountpoint,
        };
        f.write("v1");
        zfs(&["snapshot", &format!("{}@{FIRST}", f.ds)]);
        std::thread::sleep(Duration::from_millis(1100));
        zfs(&["create", "-p", &f.replica.ds("backup/forge/services")]);
        duct::cmd("zfs", ["send", &format!("{}@{FIRST}", f.ds)])
            .pipe(duct::cmd("zfs", ["receive", "-u", &f.copy]))
            .run()
            .expect("the replica receives");
        let preseed = f.preseed_plan();
        let drill = json!({
            "version": 1, "service": "sonarr", "profile": "generic",
            "preseed": preseed, "sqlite": [], "check": ["test", "-s", "db/sonarr.db"],
            "checkTimeoutSeconds": 60, "stateDir": f.pool.scratch("drill-state"),
            "scratchRoot": f.pool.scratch("run-drill"),
        });
        for (dir, plan) in [("preseed", &preseed), ("drill", &drill)] {
            std::fs::create_dir_all(f.config.join(dir)).unwrap();
            std::fs::write(
                f.config.join(dir).join("sonarr.json"),
                serde_json::to_vec_pretty(plan).unwrap(),
            )
            .unwrap();
        }
        f
    }

    fn preseed_plan(&self) -> Value {
        json!({
            "version": 1, "service": "sonarr", "dataset": self.ds,
            "mountpoint": self.mountpoint, "owner": "daemon", "group": "daemon", "mode": "0750",
            "properties": { "atime": "off" },
            "sources": [
                { "replica": { "target": "usb", "host": null, "dataset": self.copy } },
                { "local": {} },
            ],
            "stateDir": self.pool.scratch("preseed-state"), "timeoutSeconds": 20,
        })
    }

    fn write(&self, version: &str) {
        std::fs::create_dir_all(self.mountpoint.join("db")).unwrap();
        std::fs::write(
            self.mountpoint.join("db/sonarr.db"),
            format!("database {version}"),
        )
        .unwrap();
    }

    fn read(&self) -> String {
        std::fs::read_to_string(self.mountpoint.join("db/sonarr.db")).unwrap()
    }

    /// `zpersist --config-dir CONFIG ARGS...`, every zfs call recorded.
    fn run(&self, args: &[&str]) -> Recorded {
        let mut all = vec!["--config-dir", self.config.as_str()];
        all.extend_from_slice(args);
        let path_var = path_with_wrapper();
        let env: BTreeMap<&str, &str> = [("PATH", path_var.as_str())].into();
        run_logged(binary(), &all, &env)
    }

    fn asides(&self) -> Vec<String> {
        zfs(&["list", "-H", "-o", "name", "-r", &self.pool.ds("services")])
            .lines()
            .filter(|l| l.contains(".zpersist-empty-"))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn a_dry_run_touches_nothing_and_data_there_is_refused_without_replace() {
    let f = Fixture::new("clirefuse");
    f.write("v2");

    let dry = f.run(&["restore", "sonarr", "--dry-run", "--replace"]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(dry.mutating_calls().is_empty(), "{:?}", dry.zfs_calls);
    assert!(
        dry.stdout
            .contains("zpersist restore: sonarr: would-restore from"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("moves aside"), "{}", dry.stdout);

    let refused = f.run(&["restore", "sonarr"]);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stderr.contains("holds data; nothing was restored")
            && refused.stderr.contains("zpersist restore sonarr --replace"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.mutating_calls().is_empty(),
        "{:?}",
        refused.zfs_calls
    );
    let refused_dry = f.run(&["--json", "restore", "sonarr", "--dry-run"]);
    assert_eq!(refused_dry.code, 1, "{refused_dry:#?}");
    let doc: Value = serde_json::from_str(&refused_dry.stdout).unwrap();
    assert_eq!(doc["outcome"], "refused", "{doc:#}");
    assert!(refused_dry.mutating_calls().is_empty());
    assert_eq!(f.read(), "database v2");
    assert!(f.asides().is_empty(), "{:?}", f.asides());

    // A source that is not declared, or no plan: bad input, no zfs call.
    let unknown = f.run(&["restore", "sonarr", "--from", "restic:b2"]);
    assert_eq!(unknown.code, 2, "{unknown:#?}");
    assert!(
        unknown.stderr.contains("no source is labelled `restic:b2`")
            && unknown.stderr.contains("replica:usb, local"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.zfs_calls.is_empty(), "{:?}", unknown.zfs_calls);
    let missing = f.run(&["restore", "radarr"]);
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(
        missing.stderr.contains("radarr: no plan") && missing.stderr.contains("sonarr"),
        "{}",
        missing.stderr
    );
    assert!(missing.zfs_calls.is_empty());
    drop(f.replica);
}

#[test]
fn replace_moves_the_data_there_aside_and_restores_the_chosen_source() {
    let f = Fixture::new("clireplace");
    f.write("v2");

    // The service still running (a process inside): refused, untouched.
    let mut running = std::process::Command::new("sleep")
        .arg("600")
        .current_dir(f.mountpoint.join("db"))
        .spawn()
        .unwrap();
    let busy = f.run(&["restore", "sonarr", "--from", "local", "--replace"]);
    running.kill().unwrap();
    running.wait().unwrap();
    assert_eq!(busy.code, 1, "{busy:#?}");
    assert!(
        busy.stderr.contains("is in use by sleep (pid ")
            && busy.stderr.contains("stop the service's units first"),
        "{}",
        busy.stderr
    );
    assert!(busy.mutating_calls().is_empty(), "{:?}", busy.zfs_calls);
    assert_eq!(f.read(), "database v2");
    let run = f.run(&["restore", "sonarr", "--from", "local", "--replace"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(f.read(), "database v1");
    assert!(
        run.stdout
            .contains("zpersist restore: sonarr: restored from local:"),
        "{}",
        run.stdout
    );
    // Only the chosen source was asked: nothing of the replica's pool.
    assert!(
        !run.zfs_calls
            .iter()
            .any(|argv| argv.iter().any(|a| a.contains(&f.copy))),
        "{:?}",
        run.zfs_calls
    );
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "restored");
    assert_eq!(get(&f.ds, "mounted"), "yes");
    // The data that was there is kept aside, whole.
    let asides = f.asides();
    assert_eq!(asides.len(), 1, "{asides:?}");
    let aside = &asides[0];
    assert_eq!(get(aside, "mountpoint"), "none");
    let look = f.pool.scratch("aside");
    zfs(&["set", &format!("mountpoint={look}"), aside]);
    zfs(&["mount", aside]);
    assert_eq!(
        std::fs::read_to_string(look.join("db/sonarr.db")).unwrap(),
        "database v2"
    );
    assert!(!exists(&format!("{}.zpersist-preseed", f.ds)));
    drop(f.replica);
}

#[test]
fn drill_and_status_work_from_the_docs_and_an_empty_dataset_restores_without_replace() {
    let f = Fixture::new("clidrill");
    let drill = f.run(&["drill", "sonarr"]);
    assert_eq!(drill.code, 0, "{drill:#?}");
    assert!(
        drill.stdout.contains(
            "zpersist drill: sonarr: every source restored and checked (replica:usb: RPO"
        ),
        "{}",
        drill.stdout
    );
    // Every drilled service, as JSON: a list of results.
    let all = f.run(&["--json", "drill", "--source", "local"]);
    assert_eq!(all.code, 0, "{all:#?}");
    let doc: Value = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(doc[0]["service"], "sonarr", "{doc:#}");
    assert_eq!(doc[0]["sources"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(
        f.read(),
        "database v1",
        "the drill never touches the live data"
    );

    // `zpersist status`: the service, its last drill, the pool.
    let services = json!({ "version": 1, "pool": f.pool.name, "services": {
        "sonarr": { "dataset": f.ds, "mountpoint": f.mountpoint },
    }});
    let status = json!({ "version": 1, "services": { "sonarr": { "drill": {
        "resultFile": f.pool.scratch("drill-state").join("sonarr.json"),
        "unit": "zpersist-sonarr-drill.service",
        "maxAgeSeconds": 3600, "maxRpoSeconds": 100_000_000u64,
    }}}});
    for (file, value) in [("services.json", services), ("status.json", status)] {
        std::fs::write(f.config.join(file), value.to_string()).unwrap();
    }
    let text = f.run(&["status"]);
    assert_eq!(text.code, 0, "{text:#?}");
    for said in [
        "sonarr",
        "  last drill: succeeded at ",
        "    local: ok, RPO ",
        &f.pool.name,
    ] {
        assert!(text.stdout.contains(said), "{said}:\n{}", text.stdout);
    }
    assert!(text.mutating_calls().is_empty(), "{:?}", text.zfs_calls);
    let one = f.run(&["--json", "status", "sonarr"]);
    assert_eq!(one.code, 0, "{one:#?}");
    let doc: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(doc["services"][0]["service"], "sonarr", "{doc:#}");
    assert_eq!(doc["services"][0]["drill"]["ok"], true, "{doc:#}");
    assert!(
        doc["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pool"] == f.pool.name.as_str()),
        "{doc:#}"
    );
    let unknown = f.run(&["status", "lidarr"]);
    assert_eq!(unknown.code, 2, "{unknown:#?}");
    assert!(unknown.zfs_calls.is_empty(), "{:?}", unknown.zfs_calls);

    // Emptied: a restore by hand needs no --replace.
    std::fs::remove_dir_all(f.mountpoint.join("db")).unwrap();
    let run = f.run(&["restore", "sonarr", "--from", "replica:usb"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(f.read(), "database v1");
    assert!(
        get(&f.ds, "com.zpersist:preseed-source").starts_with("replica:usb"),
        "{}",
        get(&f.ds, "com.zpersist:preseed-source")
    );
    drop(f.replica);
}
