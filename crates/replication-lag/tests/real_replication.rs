//! syncoid and replication-lag against real tools: zfs-fuse, the real
//! syncoid (Debian's sanoid package), and ssh to the loopback sshd that
//! tests/env/start-sshd.sh starts. The syncoid argv and the ExecStartPre
//! lines are taken from the evaluated module and run as systemd would
//! (zpersist_e2e::syncoid, which lists what the test machine forces:
//! `--no-resume` for zfs-fuse, the `zfs get -t` wrapper, /etc files in a
//! scratch area, no `zfs allow`), so this proves the generated
//! configuration. Both "hosts" are this machine: the receiving side is a
//! second pool (`<receiving pool>/nas`, `<receiving pool>/nas2`) reached
//! over ssh; the allow lists are checked as data in
//! tests/e2e/tests/nix_replication.rs.

use std::time::Duration;

use serde_json::Value;
use zpersist_e2e::pool::{exists, get, zfs, TestPool};
use zpersist_e2e::sshd;
use zpersist_e2e::syncoid::{lag_with_config, measurement, snapshots, Replication};

const SSHD_DIR: &str = sshd::DIR;
const SSHD_PORT: u16 = sshd::PORT;
const LAG: &str = env!("CARGO_BIN_EXE_replication-lag");

/// The host as the module sees it, with the targets on the loopback sshd.
fn module(pool: &str, receiving: &str, host_key: &str) -> String {
    let target = |name: &str| {
        format!(
            r#"{name} = {{ host = "127.0.0.1"; port = {SSHD_PORT}; user = "root"; dataset = "{receiving}/{name}"; sshKey = "{SSHD_DIR}/client_ed25519"; hostKey = "{host_key}"; }};"#
        )
    };
    format!(
        r#"{{
  networking.hostName = "forge";
  zpersist.pool = "{pool}";
  zpersist.snapshots.templates.services = {{ hourly = 36; daily = 30; monthly = 3; }};
  zpersist.datasets."services" = {{ snapshots = "services"; replicateTo = [ "nas" "nas2" ]; }};
  zpersist.datasets."services/sonarr" = {{ }};
  zpersist.datasets."services/sonarr/cache" = {{ snapshots = "none"; replicateTo = [ ]; }};
  zpersist.datasets."apps/radarr" = {{ replicateTo = [ "nas" ]; }};
  zpersist.replication.targets = {{ {} {} }};
  zpersist.replication.lag.maxLagSeconds = 3600;
}}"#,
        target("nas"),
        target("nas2")
    )
}

struct Setup {
    /// The receiving "NAS" pool; declared first so it is dropped first,
    /// within the source pool's turn.
    receiving: TestPool,
    pool: TestPool,
    generated: Replication,
}

impl Setup {
    fn run_ok(&self, command: &str) -> String {
        self.generated.run_ok(command)
    }

    fn lag(&self) -> (i32, Vec<Value>, String) {
        self.generated.lag(LAG)
    }
}

fn setup() -> Setup {
    let host_key = sshd::require();
    let pool = TestPool::new("repl");
    let receiving = pool.companion("nas");
    for ds in ["services/sonarr/cache", "apps/radarr"] {
        zfs(&["create", "-p", &pool.ds(ds)]);
    }
    for ds in ["nas", "nas2"] {
        zfs(&["create", &receiving.ds(ds)]);
    }
    std::fs::write(pool.mnt().join("services/sonarr/config.xml"), "<sonarr/>").unwrap();
    let generated = Replication::generate(&module(&pool.name, &receiving.name, &host_key), &pool);
    Setup {
        receiving,
        pool,
        generated,
    }
}

#[test]
fn syncoid_replicates_to_two_targets_over_ssh_incrementally_and_lag_follows_the_target() {
    let s = setup();
    let p = |rest: &str| s.pool.ds(rest);
    let r = |rest: &str| s.receiving.ds(rest);

    // The commands the module generated: inheritance gave services/sonarr
    // both targets, the cache opted out, radarr goes to nas only.
    let mut commands: Vec<&String> = s.generated.eval["argv"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    commands.sort();
    assert_eq!(
        commands,
        [
            "apps-radarr-to-nas",
            "services-sonarr-to-nas",
            "services-sonarr-to-nas2",
            "services-to-nas",
            "services-to-nas2"
        ]
    );
    // A replicated parent is received first: the child's unit is ordered
    // after it; unreplicated levels (apps) are created by ExecStartPre.
    assert_eq!(
        s.generated.eval["units"]["syncoid-services-sonarr-to-nas"]["after"],
        serde_json::json!([
            "zfs.target",
            "zpersist-syncoid-allow.service",
            "syncoid-services-to-nas.service"
        ])
    );
    assert_eq!(
        s.generated.eval["units"]["syncoid-apps-radarr-to-nas"]["pre"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|line| !line.as_str().unwrap().contains("-zfs-allow-"))
            .count(),
        1,
        "one level created, besides nixpkgs' delegation"
    );

    // First run, in the order systemd's After= gives.
    for command in [
        "services-to-nas",
        "services-sonarr-to-nas",
        "apps-radarr-to-nas",
        "services-to-nas2",
        "services-sonarr-to-nas2",
    ] {
        s.run_ok(command);
    }
    for ds in [
        "nas/services",
        "nas/services/sonarr",
        "nas/apps/radarr",
        "nas2/services/sonarr",
    ] {
        assert!(exists(&r(ds)), "{ds} was not received");
    }
    assert_eq!(
        get(&r("nas/apps"), "canmount"),
        "off",
        "the level zpersist creates never mounts"
    );
    assert!(
        !exists(&r("nas/services/sonarr/cache")),
        "the opted-out cache was sent"
    );
    assert!(!exists(&r("nas2/apps")), "radarr only goes to nas");

    // Second run, one second later (sync snapshot names have 1-second
    // resolution): incremental on both targets, and neither target's run
    // deleted the other's base snapshot.
    std::thread::sleep(Duration::from_millis(1100));
    for target in ["nas", "nas2"] {
        s.run_ok(&format!("services-to-{target}"));
        let out = s.run_ok(&format!("services-sonarr-to-{target}"));
        assert!(
            out.contains("incremental"),
            "second run to {target} was not incremental:\n{out}"
        );
    }
    let local = snapshots(&p("services/sonarr"));
    let count = |prefix: &str| local.iter().filter(|s| s.starts_with(prefix)).count();
    assert_eq!(count("syncoid_nas_"), 1, "{local:?}");
    assert_eq!(count("syncoid_nas2_"), 1, "{local:?}");
    for target in ["nas", "nas2"] {
        let remote = snapshots(&r(&format!("{target}/services/sonarr")));
        let base = local
            .iter()
            .find(|s| s.starts_with(&format!("syncoid_{target}_")))
            .unwrap();
        assert!(
            remote.contains(base),
            "{target} lacks its base {base}: {remote:?}"
        );
    }

    // Everything sent: no lag anywhere, and the textfile says so.
    let (code, all, _) = s.lag();
    assert_eq!(code, 0, "{all:?}");
    for m in &all {
        assert_eq!(m["lagSeconds"], 0, "{m}");
    }

    // A missed run: a newer local snapshot the targets do not hold yet.
    std::thread::sleep(Duration::from_millis(2100));
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_missed", p("services/sonarr")),
    ]);
    let (code, all, textfile) = s.lag();
    let sonarr_nas = measurement(&all, &p("services/sonarr"), "nas");
    let lag = sonarr_nas["lagSeconds"].as_i64().unwrap();
    assert!(lag >= 2, "{sonarr_nas}");
    assert_eq!(sonarr_nas["newestLocal"]["name"], "autosnap_missed");
    let on_target = sonarr_nas["newestOnTarget"]["name"].as_str().unwrap();
    assert!(on_target.starts_with("syncoid_nas_"), "{sonarr_nas}");
    assert_eq!(measurement(&all, &p("apps/radarr"), "nas")["lagSeconds"], 0);
    assert!(
        textfile.contains(&format!(
            "zpersist_replication_lag_seconds{{host=\"forge\",dataset=\"{}\",target=\"nas\"}} {lag}\n",
            p("services/sonarr")
        )),
        "{textfile}"
    );
    assert_eq!(code, 0, "a lag of {lag} s is within maxLagSeconds = 3600");

    // The next run to nas catches up; nas2 is still behind.
    s.run_ok("services-sonarr-to-nas");
    let (_, all, _) = s.lag();
    assert_eq!(
        measurement(&all, &p("services/sonarr"), "nas")["lagSeconds"],
        0
    );
    assert!(
        measurement(&all, &p("services/sonarr"), "nas2")["lagSeconds"]
            .as_i64()
            .unwrap()
            >= 2
    );
}

#[test]
fn an_unreachable_target_is_a_failed_check_not_a_zero_lag() {
    let _ = sshd::require();
    let pool = TestPool::new("lagfail");
    zfs(&["create", &pool.ds("data")]);
    zfs(&["snapshot", &format!("{}@one", pool.ds("data"))]);
    let config = serde_json::json!({
        "version": 1, "host": "forge", "textfile": pool.scratch("lag.prom").as_str(), "maxLagSeconds": null,
        "targets": { "nas": { "host": "127.0.0.1", "port": 1, "user": "root", "dataset": "backup",
            "sshKey": format!("{SSHD_DIR}/client_ed25519"), "knownHosts": format!("{SSHD_DIR}/known_hosts"), "identifier": "nas" } },
        "datasets": [ { "source": pool.ds("data"), "target": "nas", "targetDataset": "backup/data" } ]
    });
    let (code, stderr) = lag_with_config(LAG, &config, &pool);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {} -> nas: listing the snapshots of backup/data on root@127.0.0.1:1 failed",
            pool.ds("data")
        )),
        "{stderr}"
    );
    let textfile = std::fs::read_to_string(pool.scratch("lag.prom")).unwrap();
    assert!(
        textfile.contains("zpersist_replication_lag_check_success{host=\"forge\",dataset=\""),
        "{textfile}"
    );
    assert!(textfile.contains("target=\"nas\"} 0\n"), "{textfile}");
    assert!(
        !textfile.contains("zpersist_replication_lag_seconds{"),
        "{textfile}"
    );
}

#[test]
fn bad_config_is_exit_2_and_touches_nothing() {
    let dir = std::env::temp_dir().join(format!("zpersist-lag-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("replication.json");
    std::fs::write(&path, r#"{"version": 1, "host": "h", "targets": {}, "datasets": [{"source": "t/a", "target": "nas", "targetDataset": "b/a"}], "textfile": null, "maxLagSeconds": null}"#).unwrap();
    let out = duct::cmd(
        env!("CARGO_BIN_EXE_replication-lag"),
        ["--config", path.to_str().unwrap()],
    )
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("names the target \"nas\", which the config does not define"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
