//! The sanoid configuration the modules generate, rendered as nixpkgs'
//! sanoid module renders it (tests/nix/sanoid-ini.nix), run by the real
//! sanoid on a zfs-fuse pool: take, prune (with faketime moving the clock
//! 40 days on) and monitor. zfs-fuse's `zfs get` has no `-t`, so the
//! test-only wrapper tests/env/sanoid-zfs/zfs is first on PATH.

use camino::Utf8PathBuf;
use serde_json::Value;
use zpersist_e2e::nix::eval_expr;
use zpersist_e2e::pool::{zfs, TestPool};

fn sanoid_conf(pool: &str) -> String {
    // Small counts so that one later set of snapshots makes the first
    // one prunable; the inheritance is the issue's example.
    let v = eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; extraModule = {{
    zpersist.pool = "{pool}";
    zpersist.snapshots.templates.services = {{ hourly = 1; daily = 1; monthly = 1; }};
    zpersist.datasets."services".snapshots = "services";
    zpersist.datasets."services/sonarr" = {{ }};
    zpersist.datasets."services/sonarr/cache".snapshots = "none";
  }}; }};
in {{ conf = import ./tests/nix/sanoid-ini.nix {{ inherit lib; sanoid = e.config.services.sanoid; }}; failed = e.failedAssertions; }}"#
    ));
    assert_eq!(v["failed"], Value::Array(vec![]));
    v["conf"].as_str().unwrap().to_owned()
}

struct Sanoid {
    configdir: Utf8PathBuf,
    pool: TestPool,
}

impl Sanoid {
    /// Runs sanoid (optionally under faketime) with fresh cache and run
    /// directories: sanoid caches the snapshot list for 15 minutes.
    fn run(&self, faketime: Option<&str>, args: &[&str]) -> (i32, String) {
        let cache = self.pool.scratch("cache");
        let run = self.pool.scratch("run");
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let mut argv: Vec<String> = Vec::new();
        if let Some(offset) = faketime {
            argv.extend(["faketime".into(), offset.into()]);
        }
        argv.push("sanoid".into());
        argv.extend(
            [
                "--configdir",
                self.configdir.as_str(),
                "--cache-dir",
                cache.as_str(),
                "--run-dir",
                run.as_str(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        argv.extend(args.iter().map(|s| s.to_string()));
        let out = duct::cmd(&argv[0], &argv[1..])
            .env("PATH", zpersist_e2e::syncoid::path_with_wrapper())
            .env("TZ", "UTC") // as nixpkgs' unit sets it
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .expect("sanoid runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

fn snapshots(dataset: &str) -> Vec<String> {
    let mut names: Vec<String> = zfs(&["get", "-H", "-o", "name", "-d", "1", "creation", dataset])
        .lines()
        .filter_map(|l| l.split_once('@').map(|(_, s)| s.to_owned()))
        .collect();
    names.sort();
    names
}

fn kinds(names: &[String]) -> Vec<String> {
    let mut kinds: Vec<String> = names
        .iter()
        .map(|n| n.rsplit('_').next().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn real_sanoid_takes_prunes_and_monitors_with_the_generated_config() {
    let pool = TestPool::new("sanoid");
    zfs(&["create", "-p", &pool.ds("services/sonarr/cache")]);
    let configdir = pool.scratch("sanoid");
    std::fs::create_dir_all(&configdir).unwrap();
    std::fs::write(configdir.join("sanoid.conf"), sanoid_conf(&pool.name)).unwrap();
    let sanoid = Sanoid { configdir, pool };
    let ds = |rest: &str| sanoid.pool.ds(rest);

    // Take: every dataset on the policy gets hourly, daily and monthly
    // snapshots; the opted-out cache gets none.
    let (code, out) = sanoid.run(None, &["--take-snapshots", "--verbose"]);
    assert_eq!(code, 0, "{out}");
    let first = snapshots(&ds("services/sonarr"));
    assert_eq!(kinds(&first), ["daily", "hourly", "monthly"], "{out}");
    assert!(
        first.iter().all(|n| n.starts_with("autosnap_")),
        "{first:?}"
    );
    assert_eq!(
        kinds(&snapshots(&ds("services"))),
        ["daily", "hourly", "monthly"]
    );
    assert_eq!(
        snapshots(&ds("services/sonarr/cache")),
        Vec::<String>::new()
    );

    // Fresh snapshots: the monitor is content.
    let (code, out) = sanoid.run(None, &["--monitor-snapshots"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK"), "{out}");

    // 40 days later, nothing new: the monitor reports it (nagios CRIT = 2).
    let (code, out) = sanoid.run(Some("+40 days"), &["--monitor-snapshots"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("CRIT") && out.contains(&ds("services/sonarr")),
        "{out}"
    );

    // 40 days later sanoid takes a new set, and the next prune removes the
    // old one: one of each kind is all the template keeps. (In one run
    // sanoid prunes against the list from before it took snapshots.)
    // sanoid orders snapshots by their `creation` property, which the zfs
    // daemon stamps with the real clock (faketime only moves sanoid's), in
    // whole seconds: the new set must be at least a second younger, or the
    // prune below may keep either set.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, out) = sanoid.run(Some("+40 days"), &["--take-snapshots"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sanoid.run(Some("+40 days"), &["--prune-snapshots", "--verbose"]);
    assert_eq!(code, 0, "{out}");
    let later = snapshots(&ds("services/sonarr"));
    assert_eq!(kinds(&later), ["daily", "hourly", "monthly"], "{out}");
    assert!(
        later.iter().all(|n| !first.contains(n)),
        "the first set was not pruned: {first:?} -> {later:?}\n{out}"
    );
    assert_eq!(
        snapshots(&ds("services/sonarr/cache")),
        Vec::<String>::new()
    );
}
