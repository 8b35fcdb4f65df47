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
use zpersist_e2e::syncoid::{
    lag_json_with_config, lag_with_config, measurement, path_with_wrapper, snapshots, Replication,
};
use zpersist_e2e::timed::Running;

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
    let out = zpersist_e2e::zfs_watchdog::run_watching_zfs(
        duct::cmd(
            env!("CARGO_BIN_EXE_replication-lag"),
            ["--config", path.to_str().unwrap()],
        )
        .stdin_null()
        .stdout_capture()
        .stderr_capture(),
        "replication-lag with a bad config",
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("names the target \"nas\", which the config does not define"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The remote part of a target (ssh to the loopback sshd).
fn remote(root: &str, identifier: &str) -> Value {
    serde_json::json!({ "host": "127.0.0.1", "port": SSHD_PORT, "user": "root", "dataset": root,
        "sshKey": format!("{SSHD_DIR}/client_ed25519"), "knownHosts": format!("{SSHD_DIR}/known_hosts"),
        "identifier": identifier })
}

/// A target dataset that was never received from this host (made there,
/// with a snapshot newer than every local one) shares no snapshot with the
/// source: no lag can be measured, and that is a failure, not lag 0.
#[test]
fn a_target_dataset_unrelated_to_the_source_is_a_failure_not_lag_0() {
    let _ = sshd::require();
    let pool = TestPool::new("lagunrel");
    let receiving = pool.companion("nas");
    let source = pool.ds("data");
    let target = receiving.ds("nas/data");
    zfs(&["create", &source]);
    zfs(&["snapshot", &format!("{source}@one")]);
    zfs(&["create", "-p", &target]);
    std::thread::sleep(Duration::from_millis(1100));
    zfs(&["snapshot", &format!("{target}@made_there")]);
    let textfile = pool.scratch("lag.prom");
    let config = serde_json::json!({
        "version": 1, "host": "forge", "textfile": textfile.as_str(), "maxLagSeconds": null,
        "targets": { "nas": remote(&receiving.ds("nas"), "nas") },
        "datasets": [ { "source": source, "target": "nas", "targetDataset": target } ]
    });
    let (code, all, stderr) = lag_json_with_config(LAG, &config, &pool, &[]);
    let m = measurement(&all, &source, "nas");
    assert_eq!(m["lagSeconds"], Value::Null, "{m}");
    assert_eq!(m["newestOnTarget"], Value::Null, "{m}");
    assert_eq!(code, 1, "no common snapshot is a failure: {stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {source} -> nas: {target} on root@127.0.0.1:{SSHD_PORT} holds 1 snapshot but none of this host's snapshots of {source} (no common guid)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("help: "), "{stderr}");
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        !text.contains("zpersist_replication_lag_seconds{"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "zpersist_replication_target_has_snapshots{{host=\"forge\",dataset=\"{source}\",target=\"nas\"}} 0\n"
        )),
        "{text}"
    );
}

/// The same state of a target gives the same result whether it is reached
/// over ssh or is a pool on this host: a target root that does not exist
/// (its pool not imported) fails the check; a root that exists without
/// the dataset (never received) is no common snapshot. Both exit 1 and
/// name the target, where it is and the dataset.
#[test]
fn a_remote_target_fails_like_a_local_one_when_its_pool_or_dataset_is_missing() {
    let _ = sshd::require();
    let pool = TestPool::new("laggone");
    let receiving = pool.companion("nas");
    let source = pool.ds("data");
    zfs(&["create", &source]);
    zfs(&["snapshot", &format!("{source}@one")]);
    zfs(&["create", &receiving.ds("nas")]);
    zfs(&["create", &receiving.ds("usb")]);
    let gone = format!("{}-not-imported/backup", receiving.name);
    let textfile = pool.scratch("lag.prom");
    let pair = |target: &str, root: &str| serde_json::json!({ "source": source, "target": target, "targetDataset": format!("{root}/data") });
    let config = serde_json::json!({
        "version": 1, "host": "forge", "textfile": textfile.as_str(), "maxLagSeconds": null,
        "targets": {
            "nasgone": remote(&gone, "nasgone"),
            "usbgone": { "host": null, "dataset": gone, "identifier": "usbgone" },
            "nas": remote(&receiving.ds("nas"), "nas"),
            "usb": { "host": null, "dataset": receiving.ds("usb"), "identifier": "usb" }
        },
        "datasets": [ pair("nasgone", &gone), pair("usbgone", &gone),
                      pair("nas", &receiving.ds("nas")), pair("usb", &receiving.ds("usb")) ]
    });
    let (code, all, stderr) = lag_json_with_config(LAG, &config, &pool, &[]);
    assert_eq!(code, 1, "{stderr}");
    let here = format!("root@127.0.0.1:{SSHD_PORT}");

    // The pool is not imported: a failed check, on both kinds of target.
    for (target, place) in [("nasgone", here.as_str()), ("usbgone", "this host")] {
        let m = measurement(&all, &source, target);
        assert_eq!(m["lagSeconds"], Value::Null, "{m}");
        let error = m["error"].as_str().unwrap_or_else(|| panic!("{m}"));
        assert!(
            error.contains(&format!(
                "{gone} does not exist on {place}: import its pool"
            )),
            "{error}"
        );
        assert!(
            stderr.contains(&format!("error: {source} -> {target}: ")),
            "{stderr}"
        );
    }
    // The dataset was never received: no common snapshot, on both.
    for (target, place) in [("nas", here.as_str()), ("usb", "this host")] {
        let m = measurement(&all, &source, target);
        assert_eq!(m["lagSeconds"], Value::Null, "{m}");
        assert_eq!(m["error"], Value::Null, "the target could be read: {m}");
        let dataset = receiving.ds(&format!("{target}/data"));
        assert!(
            stderr.contains(&format!(
                "error: {source} -> {target}: {dataset} does not exist on {place}: nothing of {source} was ever received there"
            )),
            "{stderr}"
        );
    }
    let text = std::fs::read_to_string(&textfile).unwrap();
    for (target, success) in [("nasgone", 0), ("usbgone", 0), ("nas", 1), ("usb", 1)] {
        assert!(
            text.contains(&format!(
                "zpersist_replication_lag_check_success{{host=\"forge\",dataset=\"{source}\",target=\"{target}\"}} {success}\n"
            )),
            "{target}: {text}"
        );
    }
    assert!(
        !text.contains("zpersist_replication_lag_seconds{"),
        "{text}"
    );
}

/// A listener on loopback that accepts every connection, greets it as an
/// ssh server would, and then never says anything again: the connection
/// stays open, so only a limit on the call ends the wait.
fn hanging_ssh_listener() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = std::io::Write::write_all(&mut stream, b"SSH-2.0-OpenSSH_9.2\r\n");
            open.push(stream);
        }
    });
    port
}

#[test]
fn a_target_that_accepts_and_then_hangs_fails_in_about_the_timeout() {
    let pool = TestPool::new("laghang");
    let port = hanging_ssh_listener();
    let textfile = pool.scratch("lag.prom");
    for ds in ["a", "b"] {
        zfs(&["create", &pool.ds(ds)]);
        zfs(&["snapshot", &format!("{}@one", pool.ds(ds))]);
    }
    let mut hung = remote("backup", "hung");
    hung["port"] = port.into();
    let config = serde_json::json!({
        "version": 1, "host": "forge", "textfile": textfile.as_str(), "maxLagSeconds": null,
        "timeoutSeconds": 3,
        "targets": { "hung": hung },
        "datasets": [ { "source": pool.ds("a"), "target": "hung", "targetDataset": "backup/a" },
                      { "source": pool.ds("b"), "target": "hung", "targetDataset": "backup/b" } ]
    });
    let path = pool.scratch("replication.json");
    std::fs::write(&path, config.to_string()).unwrap();

    // The old replication-lag waited forever here; one timeout for the
    // target, not one per dataset.
    let run = Running::start(
        duct::cmd(LAG, ["--config", path.as_str()]).env("PATH", path_with_wrapper()),
        "replication-lag",
    );
    let stderr = run
        .finish()
        .assert_exit(1, Duration::from_secs(3)..Duration::from_secs(6));
    assert!(
        stderr.contains(&format!(
            "error: {} -> hung: listing the snapshots of backup/a on root@127.0.0.1:{port} did not finish within 3 s; ssh was killed",
            pool.ds("a")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: 127.0.0.1:")
            && stderr.contains("raise zpersist.replication.lag.timeoutSeconds"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {} -> hung: not checked: a call for backup/a on root@127.0.0.1:{port} did not finish within 3 s earlier in this run",
            pool.ds("b")
        )),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&textfile).unwrap();
    for ds in ["a", "b"] {
        assert!(
            text.contains(&format!(
                "zpersist_replication_lag_check_success{{host=\"forge\",dataset=\"{}\",target=\"hung\"}} 0\n",
                pool.ds(ds)
            )),
            "{text}"
        );
    }
}
