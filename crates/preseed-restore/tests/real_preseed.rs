//! preseed-restore against real components: zfs-fuse pools, the loopback
//! sshd (a "remote" replica on this machine), real restic and syncoid. The
//! decision matrix end to end: data present, each source freshest, snapshots
//! of the emptied dataset, unreachable sources, nothing anywhere, kill -9 at
//! every step, another host's uids, a DEGRADED pool, two services at once,
//! bad plans, and syncoid incremental after a restore.
//!
//! What zfs-fuse forces: syncoid gets `--no-resume` and the `zfs get -t`
//! wrapper (tests/env/sanoid-zfs); nothing of preseed itself differs.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::pool::{exists, get, run_logged, zfs, Recorded, TestPool};
use zpersist_e2e::sshd;
use zpersist_e2e::syncoid::path_with_wrapper;
use zpersist_e2e::zfs_watchdog::{self as watchdog, Hung};

/// restic with `args`, bounded, which must succeed.
fn restic_ok(args: &[&str]) {
    let out = watchdog::run_bounded(
        duct::cmd("restic", args)
            .stdin_null()
            .stdout_null()
            .stderr_capture(),
        &format!("restic {}", args.join(" ")),
        watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(Hung::fail);
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_preseed-restore"))
}

/// A service's dataset with data, a local snapshot of it, and a replica
/// pool holding a copy of that snapshot.
struct Fixture {
    /// Declared before `pool` so it is dropped first, within its turn.
    replica: TestPool,
    pool: TestPool,
    ds: String,
    mountpoint: Utf8PathBuf,
    /// The replica's copy of `ds`.
    copy: String,
    state: Utf8PathBuf,
}

const FIRST: &str = "autosnap_2026-11-01_00:00:00_hourly";

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
        let state = pool.scratch("state");
        std::fs::create_dir_all(&state).unwrap();
        let f = Fixture {
            copy: replica.ds("backup/forge/services/sonarr"),
            replica,
            pool,
            ds,
            mountpoint,
            state,
        };
        f.write_data("v1");
        f.snapshot(FIRST);
        zfs(&["create", "-p", &f.replica.ds("backup/forge/services")]);
        f.send_to_replica(FIRST);
        f
    }

    fn write_data(&self, version: &str) {
        std::fs::create_dir_all(self.mountpoint.join("db/wal")).unwrap();
        std::fs::write(
            self.mountpoint.join("db/sonarr.db"),
            format!("database {version}"),
        )
        .unwrap();
        std::fs::write(
            self.mountpoint.join("config.xml"),
            format!("<v>{version}</v>"),
        )
        .unwrap();
        let link = self.mountpoint.join("current");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("db/sonarr.db", link).unwrap();
    }

    fn snapshot(&self, name: &str) {
        zfs(&["snapshot", &format!("{}@{name}", self.ds)]);
        // Creation times have one-second resolution: keep them apart.
        std::thread::sleep(Duration::from_millis(1100));
    }

    /// The snapshot `name` (full, or incremental from `base`) into the copy.
    fn send(&self, name: &str, base: Option<&str>) {
        let mut send = vec!["send".to_string()];
        if let Some(base) = base {
            send.extend(["-i".into(), format!("{}@{base}", self.ds)]);
        }
        send.push(format!("{}@{name}", self.ds));
        let what = format!("zfs {} | zfs receive -u -F {}", send.join(" "), self.copy);
        let out = watchdog::run_watching_zfs(
            duct::cmd("zfs", &send)
                .pipe(duct::cmd("zfs", ["receive", "-u", "-F", &self.copy]))
                .stdin_null()
                .stderr_capture(),
            &what,
            watchdog::zfs_limit(),
        )
        .unwrap_or_else(Hung::fail);
        assert!(out.status.success(), "{what}: {out:?}");
    }

    fn send_to_replica(&self, name: &str) {
        self.send(name, None);
    }

    /// What a wipe leaves: the dataset, mounted, with empty directories.
    fn wipe(&self) {
        for entry in std::fs::read_dir(&self.mountpoint).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        // tmpfiles would recreate an empty directory: that is still empty.
        std::fs::create_dir_all(self.mountpoint.join("logs")).unwrap();
    }

    fn remote_replica(&self, host_key: &str) -> Value {
        let known_hosts = self.pool.scratch("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[{}]:{} {host_key}\n", sshd::HOST, sshd::PORT),
        )
        .unwrap();
        json!({ "replica": {
            "target": "nas", "host": sshd::HOST, "port": sshd::PORT, "user": sshd::USER,
            "sshKey": sshd::client_key(), "knownHosts": known_hosts, "dataset": self.copy,
        }})
    }

    fn local_replica(&self) -> Value {
        json!({ "replica": { "target": "usb", "host": null, "dataset": self.copy } })
    }

    fn plan(&self, sources: Vec<Value>) -> Value {
        json!({
            "version": 1, "service": "sonarr", "dataset": self.ds,
            "mountpoint": self.mountpoint, "owner": "daemon", "group": "daemon", "mode": "0750",
            "properties": { "atime": "off", "com.example:tier": "gold" },
            "sources": sources, "stateDir": self.state, "timeoutSeconds": 10,
        })
    }

    fn run(&self, plan: &Value, env: &[(&str, &str)]) -> Recorded {
        self.run_args(plan, &[], env)
    }

    fn run_args(&self, plan: &Value, extra: &[&str], env: &[(&str, &str)]) -> Recorded {
        let path = self.pool.write_plan("preseed.json", plan);
        let mut args = vec!["--plan", path.as_str()];
        args.extend_from_slice(extra);
        let mut env: BTreeMap<&str, &str> = env.iter().copied().collect();
        let path_var = path_with_wrapper();
        env.insert("PATH", &path_var);
        let recorded = run_logged(binary(), &args, &env);
        let dataset = plan["dataset"].as_str().unwrap_or(&self.ds).to_owned();
        assert_touched_only_its_own(&dataset, &recorded);
        recorded
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.mountpoint.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn asides(&self) -> Vec<String> {
        zfs(&["list", "-H", "-o", "name", "-r", &self.pool.ds("services")])
            .lines()
            .filter(|l| l.contains(".zpersist-empty-"))
            .map(str::to_owned)
            .collect()
    }

    /// Nothing was received, renamed or destroyed, and no journal is left:
    /// a run that refused, or found data.
    fn assert_nothing_moved(&self, run: &Recorded) {
        for sub in ["rename", "receive", "recv", "destroy"] {
            assert!(run.calls_named(sub).is_empty(), "{:?}", run.zfs_calls);
        }
        assert!(self.asides().is_empty(), "{:?}", self.asides());
        assert!(
            !self.state.join("sonarr.json").exists(),
            "the journal is left"
        );
    }

    /// The restore went through: data, provenance, nothing left behind.
    fn assert_restored(&self, run: &Recorded, version: &str, source: &str) {
        assert_eq!(run.code, 0, "{run:#?}");
        assert_eq!(self.read("db/sonarr.db"), format!("database {version}"));
        assert_eq!(
            std::fs::read_link(self.mountpoint.join("current"))
                .unwrap()
                .to_str(),
            Some("db/sonarr.db")
        );
        assert_eq!(get(&self.ds, "com.zpersist:preseed"), "restored");
        let recorded = get(&self.ds, "com.zpersist:preseed-source");
        assert!(
            recorded.starts_with(source),
            "{recorded} is not from {source}"
        );
        assert_eq!(get(&self.ds, "mounted"), "yes");
        assert_eq!(get(&self.ds, "mountpoint"), self.mountpoint.as_str());
        assert_eq!(get(&self.ds, "atime"), "off");
        assert_eq!(get(&self.ds, "com.example:tier"), "gold");
        assert_eq!(get(&self.ds, "com.zpersist:preseed-sibling"), "-");
        assert!(
            !exists(&format!("{}.zpersist-preseed", self.ds)),
            "the sibling is left"
        );
        let asides = self.asides();
        assert_eq!(asides.len(), 1, "{asides:?}");
        assert_eq!(get(&asides[0], "mountpoint"), "none");
        assert!(
            !self.state.join("sonarr.json").exists(),
            "the journal is left"
        );
        let meta = std::fs::metadata(&self.mountpoint).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1, 1, 0o750)
        );
    }
}

impl Fixture {
    /// A restore from the local snapshot of 32 MiB, started in the
    /// background and under way (its journal written): its plan and run.
    fn restoring(&self) -> (Utf8PathBuf, duct::Handle) {
        std::fs::write(self.mountpoint.join("big.bin"), vec![7u8; 32 << 20]).unwrap();
        self.snapshot("autosnap_2026-11-02_00:00:00_hourly");
        self.wipe();
        let plan = self
            .pool
            .write_plan("preseed.json", &self.plan(vec![json!({ "local": {} })]));
        let journal = self.state.join("sonarr.json");
        let run = start(&plan);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !journal.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the restore wrote no journal"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        (plan, run)
    }
}

/// A run started in the background (outside the recording wrapper), for
/// runs at once.
fn start(plan: &Utf8Path) -> duct::Handle {
    duct::cmd(binary().as_str(), ["--plan", plan.as_str()])
        .env("PATH", path_with_wrapper())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .unwrap()
}

/// preseed renames only the dataset (aside) and its sibling, receives
/// only into the sibling, destroys only the sibling; never a rollback.
fn assert_touched_only_its_own(ds: &str, run: &Recorded) {
    let sibling = format!("{}.zpersist-preseed", ds);
    for argv in &run.zfs_calls {
        match argv[0].as_str() {
            "rollback" | "promote" => panic!("preseed ran zfs {argv:?}"),
            "destroy" => assert_eq!(argv.last(), Some(&sibling), "{argv:?}"),
            "receive" | "recv" => assert_eq!(argv.last(), Some(&sibling), "{argv:?}"),
            "rename" => assert!(
                (argv[1] == ds && argv[2].starts_with(&format!("{}.zpersist-empty-", ds)))
                    || (argv[1] == sibling && argv[2] == ds),
                "{argv:?}"
            ),
            _ => {}
        }
    }
}

#[test]
fn data_present_is_never_touched_and_costs_at_most_two_zfs_calls() {
    let f = Fixture::new("present");
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    let first = f.run(&plan, &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    assert!(
        first.stdout.contains("holds data; nothing to do"),
        "{}",
        first.stdout
    );
    assert!(first.zfs_calls.len() <= 2, "{:?}", first.zfs_calls);
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "existing");
    let second = f.run(&plan, &[]);
    assert_eq!(second.code, 0);
    assert_eq!(second.zfs_calls.len(), 1, "{:?}", second.zfs_calls);
    assert!(second.mutating_calls().is_empty(), "{:?}", second.zfs_calls);
    assert_eq!(f.read("db/sonarr.db"), "database v1");
    assert!(f.asides().is_empty());
}

#[test]
fn the_replica_over_ssh_is_freshest_and_the_next_syncoid_run_is_incremental() {
    let host_key = sshd::require();
    let f = Fixture::new("replicafresh");
    f.write_data("v2");
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    f.send("autosnap_2026-11-02_00:00:00_hourly", Some(FIRST));
    // The dataset dies on this host; the local snapshots hold only v1.
    zfs(&[
        "destroy",
        &format!("{}@autosnap_2026-11-02_00:00:00_hourly", f.ds),
    ]);
    f.wipe();

    let plan = f.plan(vec![json!({ "local": {} }), f.remote_replica(&host_key)]);
    let dry = f.run_args(&plan, &["--dry-run"], &[]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(dry.mutating_calls().is_empty(), "{:?}", dry.zfs_calls);
    assert!(dry.stdout.contains("zfs receive -u"), "{}", dry.stdout);

    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v2", "replica:nas:");
    assert!(
        get(&f.ds, "com.zpersist:preseed-source").ends_with("@autosnap_2026-11-02_00:00:00_hourly")
    );

    // syncoid to the same replica afterwards: incremental from what was
    // received, no full resend and no "no matching snapshots".
    let out = duct::cmd(
        "syncoid",
        [
            "--no-resume",
            "--no-privilege-elevation",
            "--identifier=nas",
            "--sshkey",
            &sshd::client_key(),
            &format!("--sshport={}", sshd::PORT),
            &format!("--sshoption=UserKnownHostsFile={}", sshd::known_hosts()),
            &f.ds,
            &format!("{}@{}:{}", sshd::USER, sshd::HOST, f.copy),
        ],
    )
    .env("PATH", path_with_wrapper())
    .stdin_null()
    .stderr_to_stdout()
    .stdout_capture();
    let out = watchdog::run_watching_zfs(out, "syncoid to the replica", watchdog::OTHER_LIMIT)
        .unwrap_or_else(Hung::fail);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("incremental"), "{said}");
    assert!(!said.contains("full"), "{said}");
}

#[test]
fn a_local_snapshot_fresher_than_the_replica_wins() {
    let f = Fixture::new("localfresh");
    f.write_data("v2");
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    f.wipe();
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v2", &format!("local:{}@autosnap_2026-11-02", f.ds));
}

/// Issue 18: the target snapshots its own old copy after the last
/// receive. By creation that snapshot is fresher than a local snapshot
/// holding newer data, and preseed restored the older data from it. It
/// counts by the snapshot from this host it holds (matched by guid), so
/// the local snapshot wins, whichever source is listed first.
#[test]
fn a_snapshot_the_target_made_of_its_old_copy_never_beats_newer_local_data() {
    let f = Fixture::new("targetmade");
    f.write_data("v2");
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    // Taken on the target, of the copy that holds v1 only.
    let mine = format!("{}@manual-on-nas", f.copy);
    zfs(&["snapshot", &mine]);
    let creation = |s: &str| -> i64 {
        zfs(&["get", "-Hp", "-o", "value", "creation", s])
            .trim()
            .parse()
            .unwrap()
    };
    let local_v2 = format!("{}@autosnap_2026-11-02_00:00:00_hourly", f.ds);
    assert!(
        creation(&mine) > creation(&local_v2),
        "the target's snapshot is the newer by creation"
    );
    f.wipe();
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v2", &format!("local:{}@autosnap_2026-11-02", f.ds));
}

/// A point dated in the future (here: preseed's clock set 30 days back,
/// as on a host whose clock ran ahead when its snapshots were taken) never
/// wins "freshest": its source fails naming it, and nothing is restored.
#[test]
fn a_point_dated_in_the_future_is_refused_not_restored() {
    let f = Fixture::new("future");
    f.wipe();
    let plan = f.plan(vec![json!({ "local": {} })]);
    let run = f.run(
        &plan,
        &[
            (
                "LD_PRELOAD",
                "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            ),
            ("FAKETIME", "-30d"),
        ],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "local: its point local:{}@{FIRST} is dated ",
            f.ds
        )) && run.stderr.contains("s ahead of this host's clock"),
        "{}",
        run.stderr
    );
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "-");
}

/// Restic backups of the data directory, at the right depth, with names
/// that are hard to carry (spaces, quotes, non-ASCII), newer than the rest.
#[test]
fn restic_freshest_restores_the_contents_at_the_dataset_root() {
    let f = Fixture::new("resticfresh");
    f.write_data("v3");
    std::fs::write(f.mountpoint.join("odd name 'quoted' été.txt"), "odd").unwrap();
    let repo = f.pool.scratch("restic-repo");
    let password = f.pool.scratch("restic-password");
    std::fs::write(&password, "correct horse").unwrap();
    let restic = |args: &[&str]| {
        let mut all = vec!["-r", repo.as_str(), "--password-file", password.as_str()];
        all.extend_from_slice(args);
        restic_ok(&all)
    };
    restic(&["init"]);
    restic(&["backup", "--host", "forge", f.mountpoint.as_str()]);
    // Another host's backup of the same path, later: it must not count.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        f.mountpoint.join("db/sonarr.db"),
        "database of another host",
    )
    .unwrap();
    restic(&["backup", "--host", "elsewhere", f.mountpoint.as_str()]);
    f.wipe();

    let source = json!({ "restic": {
        "name": "b2", "repository": repo, "passwordFile": password,
        "host": "forge", "path": f.mountpoint,
    }});
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} }), source]);
    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v3", "restic:b2:");
    assert_eq!(f.read("odd name 'quoted' été.txt"), "odd");
    assert!(!f.mountpoint.join(".zpersist-restic-staging").exists());
    assert!(
        !f.mountpoint
            .join(f.mountpoint.as_str().trim_start_matches('/'))
            .exists(),
        "one level too deep"
    );
}

/// What `--dry-run` prints as "the same restore by hand" is run as it is
/// (but its two lines that need a running system: stopping the units and
/// ensure-datasets), and brings the data back, hidden files included.
#[test]
fn the_dry_runs_restore_by_hand_restores_from_restic() {
    let f = Fixture::new("byhand");
    f.write_data("v7");
    std::fs::write(f.mountpoint.join(".hidden"), "dot").unwrap();
    let repo = f.pool.scratch("restic-repo");
    let password = f.pool.scratch("restic-password");
    std::fs::write(&password, "correct horse").unwrap();
    for args in [
        vec!["init"],
        vec!["backup", "--host", "forge", f.mountpoint.as_str()],
    ] {
        let mut all = vec!["-r", repo.as_str(), "--password-file", password.as_str()];
        all.extend(args);
        restic_ok(&all);
    }
    f.wipe();
    let source = json!({ "restic": {
        "name": "b2", "repository": repo, "passwordFile": password,
        "host": "forge", "path": f.mountpoint,
    }});
    let plan = f.plan(vec![source]);
    let dry = f.run_args(&plan, &["--dry-run", "--json"], &[]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    let report: Value = serde_json::from_str(&dry.stdout).unwrap();
    let lines: Vec<&str> = report["byHand"]
        .as_array()
        .unwrap_or_else(|| panic!("no byHand in {report}"))
        .iter()
        .map(|l| l.as_str().unwrap())
        .filter(|l| !l.starts_with("systemctl stop") && !l.starts_with("ensure-datasets"))
        .collect();
    assert!(lines.iter().any(|l| l.starts_with("restic ")), "{lines:#?}");
    let script = format!("set -euo pipefail\n{}\n", lines.join("\n"));
    let ran = watchdog::run_watching_zfs(
        duct::cmd("bash", ["-c", script.as_str()])
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture(),
        "the by-hand restic lines",
        watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(Hung::fail);
    assert!(
        ran.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&ran.stdout)
    );
    assert_eq!(f.read("db/sonarr.db"), "database v7");
    assert_eq!(f.read(".hidden"), "dot");
    let source = zfs(&[
        "get",
        "-H",
        "-o",
        "value",
        "com.zpersist:preseed-source",
        &f.ds,
    ]);
    assert!(
        source.trim().starts_with("restic:b2:"),
        "the provenance names the restic snapshot: {source}"
    );
    assert!(
        f.asides().iter().any(|a| a.contains(".zpersist-empty-")),
        "the emptied original is kept aside: {:?}",
        f.asides()
    );
}

#[test]
fn snapshots_of_the_emptied_dataset_are_never_chosen() {
    let f = Fixture::new("emptysnaps");
    f.wipe();
    // sanoid and syncoid keep taking and shipping snapshots of the emptied
    // dataset: the newest point of every source is empty.
    f.snapshot("autosnap_2026-11-03_00:00:00_hourly");
    f.send("autosnap_2026-11-03_00:00:00_hourly", Some(FIRST));
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v1", "replica:usb:");
    assert!(get(&f.ds, "com.zpersist:preseed-source").ends_with(FIRST));
    assert!(run.stdout.contains("holds no data"), "{}", run.stdout);
}

#[test]
fn an_unreachable_source_fails_the_run_unless_stale_restores_are_allowed() {
    let f = Fixture::new("unreachable");
    f.wipe();
    let mut dead = f.remote_replica("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st");
    dead["replica"]["port"] = json!(1);
    let mut plan = f.plan(vec![dead, json!({ "local": {} })]);
    let refused = f.run(&plan, &[]);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(refused.stderr.contains("replica:nas"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("allowStaleOnSourceError"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        get(&f.ds, "com.zpersist:preseed"),
        "-",
        "nothing is recorded"
    );
    assert!(
        refused.mutating_calls().is_empty(),
        "{:?}",
        refused.zfs_calls
    );

    plan["allowStaleOnSourceError"] = json!(true);
    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v1", "local:");
    assert!(
        run.stderr.contains("warning: replica:nas"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_source_failing_is_exit_1_and_a_later_run_restores() {
    let host_key = sshd::require();
    let f = Fixture::new("allfail");
    f.wipe();
    let mut replica = f.remote_replica(&host_key);
    replica["replica"]["port"] = json!(1);
    let plan = f.plan(vec![replica]);
    let failed = f.run(&plan, &[]);
    assert_eq!(failed.code, 1, "{failed:#?}");
    assert!(
        failed.stderr.contains("no source answered"),
        "{}",
        failed.stderr
    );
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "-");
    let fixed = f.plan(vec![f.remote_replica(&host_key)]);
    let run = f.run(&fixed, &[]);
    f.assert_restored(&run, "v1", "replica:nas:");
}

#[test]
fn nothing_anywhere_is_fresh() {
    let f = Fixture::new("fresh");
    let new = f.pool.ds("services/newapp");
    let mountpoint = f.pool.mnt().join("var/lib/newapp");
    zfs(&["create", "-o", &format!("mountpoint={mountpoint}"), &new]);
    let mut plan = f.plan(vec![
        json!({ "replica": { "target": "usb", "host": null, "dataset": f.replica.ds("backup/forge/services/newapp") } }),
        json!({ "local": {} }),
    ]);
    plan["dataset"] = json!(new);
    plan["mountpoint"] = json!(mountpoint);
    plan["service"] = json!("newapp");
    let run = f.run(&plan, &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(get(&new, "com.zpersist:preseed"), "fresh");
    assert!(
        run.stdout.contains("no source has ever held data"),
        "{}",
        run.stdout
    );
}

/// Killed between any two steps (and mid-stream), the next run converges.
#[test]
fn killed_at_every_step_a_rerun_converges() {
    for point in [
        "journaled:chosen",
        "during:fill",
        "after:receive",
        "after:fill",
        "after:verify",
        "journaled:filled",
        "after:move-aside",
        "journaled:aside",
        "after:swap-in",
        "journaled:swappedin",
        "after:finish",
    ] {
        let f = Fixture::new("crash");
        // Enough data that the stream is still running at the failpoint.
        std::fs::write(f.mountpoint.join("big.bin"), vec![7u8; 8 << 20]).unwrap();
        f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
        f.wipe();
        let plan = f.plan(vec![json!({ "local": {} })]);
        let crashed = f.run(&plan, &[("ZPERSIST_PRESEED_FAILPOINT", point)]);
        assert_ne!(crashed.code, 0, "{point}: {crashed:#?}");
        assert!(
            crashed.stderr.contains(&format!("failpoint {point}")),
            "{point}: {}",
            crashed.stderr
        );
        let rerun = f.run(&plan, &[]);
        f.assert_restored(&rerun, "v1", "local:");
        assert_eq!(
            std::fs::read(f.mountpoint.join("big.bin")).unwrap().len(),
            8 << 20,
            "{point}"
        );
    }
}

#[test]
fn data_from_a_host_with_other_uids_is_given_to_the_declared_owner() {
    let f = Fixture::new("uids");
    for rel in ["db/sonarr.db", "config.xml", "db"] {
        std::os::unix::fs::chown(f.mountpoint.join(rel), Some(4242), Some(4243)).unwrap();
    }
    std::os::unix::fs::chown(&f.mountpoint, Some(4242), Some(4243)).unwrap();
    std::fs::write(f.mountpoint.join("root-owned"), "keep root").unwrap();
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    f.wipe();
    let run = f.run(&f.plan(vec![json!({ "local": {} })]), &[]);
    f.assert_restored(&run, "v1", "local:");
    for rel in ["db/sonarr.db", "config.xml", "db"] {
        let meta = std::fs::metadata(f.mountpoint.join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1, 1), "{rel}");
    }
    assert_eq!(
        std::fs::metadata(f.mountpoint.join("root-owned"))
            .unwrap()
            .uid(),
        0
    );
}

#[test]
fn a_degraded_pool_restores_a_missing_source_pool_is_an_error_not_fresh() {
    let f = Fixture::new("degraded");
    // A mirror with one side gone: DEGRADED, and still restored into.
    let mirror = format!("{}m", f.pool.name);
    let (a, b) = (f.pool.scratch("m-a.img"), f.pool.scratch("m-b.img"));
    for img in [&a, &b] {
        std::fs::File::create(img)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
    }
    let mnt = f.pool.scratch("m-mnt");
    zpersist_e2e::pool::run_ok(
        "zpool",
        &[
            "create",
            "-m",
            mnt.as_str(),
            &mirror,
            "mirror",
            a.as_str(),
            b.as_str(),
        ],
    );
    zpersist_e2e::pool::run_ok("zpool", &["offline", &mirror, b.as_str()]);
    let health = zpersist_e2e::pool::run_ok("zpool", &["list", "-H", "-o", "health", &mirror]);
    assert_eq!(health.trim(), "DEGRADED");
    let ds = format!("{mirror}/sonarr");
    let mountpoint = mnt.join("sonarr");
    zfs(&["create", "-o", &format!("mountpoint={mountpoint}"), &ds]);
    let mut plan = f.plan(vec![f.local_replica()]);
    plan["dataset"] = json!(ds);
    plan["mountpoint"] = json!(mountpoint);
    let run = f.run(&plan, &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("db/sonarr.db")).unwrap(),
        "database v1"
    );
    // A replica whose pool is not there is a failure, never "fresh".
    let empty = format!("{mirror}/radarr");
    let radarr_mnt = mnt.join("radarr");
    zfs(&["create", "-o", &format!("mountpoint={radarr_mnt}"), &empty]);
    plan["dataset"] = json!(empty);
    plan["mountpoint"] = json!(radarr_mnt);
    plan["service"] = json!("radarr");
    plan["sources"] = json!([{ "replica": { "target": "usb", "host": null, "dataset": "nosuchpool/backup/radarr" } }]);
    let missing = f.run(&plan, &[]);
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert!(missing.stderr.contains("nosuchpool"), "{}", missing.stderr);
    for _ in 0..20 {
        if watchdog::run("zpool", &["destroy", "-f", &mirror])
            .unwrap_or_else(Hung::fail)
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_services_preseed_at_once() {
    let f = Fixture::new("two");
    let other = f.pool.ds("services/radarr");
    let other_mnt = f.pool.mnt().join("var/lib/radarr");
    zfs(&["create", "-o", &format!("mountpoint={other_mnt}"), &other]);
    std::fs::write(other_mnt.join("radarr.db"), "radarr data").unwrap();
    zfs(&["snapshot", &format!("{other}@autosnap_1")]);
    std::fs::remove_file(other_mnt.join("radarr.db")).unwrap();
    f.wipe();
    let sonarr = f
        .pool
        .write_plan("sonarr.json", &f.plan(vec![json!({ "local": {} })]));
    let mut radarr_plan = f.plan(vec![json!({ "local": {} })]);
    radarr_plan["dataset"] = json!(other);
    radarr_plan["mountpoint"] = json!(other_mnt);
    radarr_plan["service"] = json!("radarr");
    let radarr = f.pool.write_plan("radarr.json", &radarr_plan);
    // Two receive-and-mount runs at once: where zfs-fuse once deadlocked.
    let handles: Vec<_> = [sonarr, radarr].iter().map(|plan| start(plan)).collect();
    for handle in handles {
        let out = watchdog::wait_watching_zfs(&handle, "preseed-restore", watchdog::OTHER_LIMIT)
            .unwrap_or_else(Hung::fail);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(f.read("db/sonarr.db"), "database v1");
    assert_eq!(
        std::fs::read_to_string(other_mnt.join("radarr.db")).unwrap(),
        "radarr data"
    );
}

#[test]
fn bad_plans_exit_2_and_run_no_zfs_command() {
    let f = Fixture::new("badplan");
    let good = f.plan(vec![json!({ "local": {} })]);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no sources", json!({"sources": []}), "no sources"),
        (
            "pool root",
            json!({"dataset": f.pool.name}),
            "pool's root dataset",
        ),
        (
            "relative mountpoint",
            json!({"mountpoint": "var/lib/x"}),
            "mountpoint",
        ),
        ("bad mode", json!({"mode": "0999"}), "octal"),
        (
            "unknown source",
            json!({"sources": [{"tape": {}}]}),
            "unknown variant",
        ),
        (
            "replica inside",
            json!({"sources": [{"replica": {"target": "x", "host": null, "dataset": format!("{}/inner", f.ds)}}]}),
            "lies inside",
        ),
        ("future version", json!({"version": 9}), "version 9"),
    ];
    for (case, patch, expected) in cases {
        let mut plan = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            plan[k] = v.clone();
        }
        let run = f.run(&plan, &[]);
        assert_eq!(run.code, 2, "{case}: {run:#?}");
        assert!(run.stderr.contains(expected), "{case}: {}", run.stderr);
        assert!(run.zfs_calls.is_empty(), "{case}: {:?}", run.zfs_calls);
    }
    let dup = f.pool.scratch("dup.json");
    std::fs::write(&dup, r#"{"version":1,"version":1}"#).unwrap();
    let run = run_logged(binary(), &["--plan", dup.as_str()], &BTreeMap::new());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("given twice"), "{}", run.stderr);
    assert!(run.zfs_calls.is_empty());
}

/// A filesystem mounted over a path for a test, unmounted when dropped
/// (declared after the fixture, so it goes first).
struct Cover(Utf8PathBuf);

impl Cover {
    fn tmpfs(path: &Utf8Path) -> Cover {
        zpersist_e2e::pool::run_ok("mount", &["-t", "tmpfs", "preseed-cover", path.as_str()]);
        Cover(path.to_owned())
    }
}

impl Drop for Cover {
    fn drop(&mut self) {
        let _ = duct::cmd("umount", [self.0.as_str()])
            .stderr_null()
            .unchecked()
            .run();
    }
}

/// The issue's class 1: zfs says the dataset is mounted on its path, but
/// the path shows something else (an empty tmpfs over it, or one over a
/// directory inside it): that is a failure naming the cover, never
/// "empty"; nothing is moved, received or recorded. The move-aside
/// step's own "holds data now?" look is the same look.
#[test]
fn a_path_that_does_not_show_the_dataset_fails_and_nothing_moves() {
    let f = Fixture::new("covered");
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    {
        let _cover = Cover::tmpfs(&f.mountpoint);
        let run = f.run(&plan, &[]);
        assert_eq!(run.code, 1, "{run:#?}");
        assert!(
            run.stderr.contains("does not show") && run.stderr.contains("tmpfs"),
            "{}",
            run.stderr
        );
        assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
        f.assert_nothing_moved(&run);
    }
    assert_eq!(
        f.read("db/sonarr.db"),
        "database v1",
        "the data is untouched"
    );
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "-");

    // A mount inside the dataset hides what it holds there.
    f.wipe();
    std::fs::create_dir_all(f.mountpoint.join("db")).unwrap();
    std::fs::write(f.mountpoint.join("db/sonarr.db"), "database v9").unwrap();
    {
        let _cover = Cover::tmpfs(&f.mountpoint.join("db"));
        let run = f.run(&plan, &[]);
        assert_eq!(run.code, 1, "{run:#?}");
        assert!(run.stderr.contains("mounted inside"), "{}", run.stderr);
        assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    }
    assert_eq!(f.read("db/sonarr.db"), "database v9");

    // Killed once the sibling is filled; then data appears in the dataset
    // and an empty tmpfs covers it: the resumed run's move-aside fails too.
    f.wipe();
    let crashed = f.run(&plan, &[("ZPERSIST_PRESEED_FAILPOINT", "journaled:filled")]);
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    std::fs::write(f.mountpoint.join("written-meanwhile"), "new").unwrap();
    {
        let _cover = Cover::tmpfs(&f.mountpoint);
        let resumed = f.run(&plan, &[]);
        assert_eq!(resumed.code, 1, "{resumed:#?}");
        assert!(
            resumed.stderr.contains("does not show"),
            "{}",
            resumed.stderr
        );
        assert!(
            resumed.calls_named("rename").is_empty(),
            "{:?}",
            resumed.zfs_calls
        );
    }
    assert!(f.asides().is_empty(), "{:?}", f.asides());
    assert_eq!(f.read("written-meanwhile"), "new");
}

/// Class 2: a dataset holding only directories, with an undeclared child
/// dataset (made by hand) holding the files, holds data: `existing`,
/// the child named, nothing moved.
#[test]
fn data_in_a_child_dataset_is_data() {
    let f = Fixture::new("child");
    f.wipe();
    let child = format!("{}/extra", f.ds);
    zfs(&["create", &child]);
    std::fs::write(f.mountpoint.join("extra/episodes.db"), "child data").unwrap();
    let run = f.run(
        &f.plan(vec![f.local_replica(), json!({ "local": {} })]),
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains(&child) && run.stdout.contains("nothing to do"),
        "{}",
        run.stdout
    );
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "existing");
    f.assert_nothing_moved(&run);
    assert_eq!(f.read("extra/episodes.db"), "child data");
}

/// Class 3: a user's own dataset named `<ds>.zpersist-preseed` (files, a
/// snapshot, no mark; then another service's mark) is never destroyed,
/// received into or renamed: the run stops with the command to inspect
/// it, and once it is out of the way the restore goes on.
#[test]
fn a_dataset_by_the_siblings_name_that_is_not_ours_is_never_touched() {
    let f = Fixture::new("notours");
    f.wipe();
    let sibling = format!("{}.zpersist-preseed", f.ds);
    let own_mnt = f.pool.mnt().join("users-own");
    zfs(&["create", "-o", &format!("mountpoint={own_mnt}"), &sibling]);
    std::fs::write(own_mnt.join("mine.txt"), "the user's").unwrap();
    zfs(&["snapshot", &format!("{sibling}@mine")]);
    let plan = f.plan(vec![json!({ "local": {} })]);
    for mark in [None, Some("radarr")] {
        if let Some(mark) = mark {
            zfs(&[
                "set",
                &format!("com.zpersist:preseed-sibling={mark}"),
                &sibling,
            ]);
        }
        let run = f.run(&plan, &[]);
        assert_eq!(run.code, 1, "{mark:?}: {run:#?}");
        assert!(
            run.stderr.contains("zfs list -r -t all -o name,")
                && run.stderr.contains(&sibling)
                && run.stderr.contains("not preseed's own"),
            "{mark:?}: {}",
            run.stderr
        );
        let on_it: Vec<_> = run
            .mutating_calls()
            .into_iter()
            .filter(|argv| argv.iter().any(|a| a.starts_with(&sibling)))
            .collect();
        assert!(on_it.is_empty(), "{mark:?}: {on_it:?}");
        assert_eq!(
            std::fs::read_to_string(own_mnt.join("mine.txt")).unwrap(),
            "the user's"
        );
        assert!(exists(&format!("{sibling}@mine")));
        assert!(f.asides().is_empty(), "{:?}", f.asides());
    }
    // The user moves theirs away; the next start restores. (zfs-fuse
    // calls a just-unmounted dataset busy for a moment.)
    zfs(&["set", "mountpoint=none", &sibling]);
    let renamed = (0..40).any(|_| {
        let done = duct::cmd("zfs", ["rename", &sibling, &format!("{}-mine", f.ds)])
            .stderr_null()
            .unchecked()
            .run()
            .is_ok_and(|o| o.status.success());
        if !done {
            std::thread::sleep(Duration::from_millis(250));
        }
        done
    });
    assert!(renamed, "{sibling} cannot be renamed");
    zfs(&[
        "set",
        &format!("mountpoint={own_mnt}"),
        &format!("{}-mine", f.ds),
    ]);
    let run = f.run(&plan, &[]);
    f.assert_restored(&run, "v1", "local:");
    assert_eq!(
        std::fs::read_to_string(own_mnt.join("mine.txt")).unwrap(),
        "the user's"
    );
}

/// Class 4: a second run started while the first restores waits for the
/// lock, then reads what the first left (data, no journal): exit 0,
/// nothing done twice, no journal left behind.
#[test]
fn a_second_run_started_during_a_restore_finds_it_done() {
    let f = Fixture::new("tworuns");
    let (plan, first) = f.restoring();
    let journal = f.state.join("sonarr.json");
    let second = start(&plan);
    let finished = |handle: &duct::Handle| {
        watchdog::wait_watching_zfs(handle, "preseed-restore", watchdog::OTHER_LIMIT)
            .unwrap_or_else(Hung::fail)
    };
    let (first, second) = (finished(&first), finished(&second));
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("holds data; nothing to do"),
        "the second run finds the first one's work: {}",
        text(&second)
    );
    assert!(!journal.exists(), "a journal is left");
    assert_eq!(f.read("db/sonarr.db"), "database v1");
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "restored");
    assert!(!exists(&format!("{}.zpersist-preseed", f.ds)));
    assert_eq!(f.asides().len(), 1, "{:?}", f.asides());
    let later = f.run(&f.plan(vec![json!({ "local": {} })]), &[]);
    assert_eq!(later.code, 0, "{later:#?}");

    // Lost again, and two runs started at the same moment: one restores,
    // the other waits and finds it done; both exit 0, no journal left.
    f.wipe();
    let both = [start(&plan), start(&plan)].map(|h| {
        watchdog::wait_watching_zfs(&h, "preseed-restore", watchdog::OTHER_LIMIT)
            .unwrap_or_else(Hung::fail)
    });
    for out in &both {
        assert!(out.status.success(), "{}", text(out));
    }
    let outcomes: Vec<bool> = both
        .iter()
        .map(|o| text(o).contains("holds data; nothing to do"))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|&&found| found).count(),
        1,
        "{outcomes:?}"
    );
    assert!(!journal.exists(), "a journal is left");
    assert_eq!(f.read("db/sonarr.db"), "database v1");
    assert_eq!(f.asides().len(), 2, "{:?}", f.asides());
}

/// Class 5: restoring another host's uids, killed after the root and one
/// entry got the declared owner: the rerun finishes the whole tree.
#[test]
fn killed_during_the_ownership_fix_up_a_rerun_gives_every_entry_the_declared_owner() {
    let f = Fixture::new("uidcrash");
    for i in 0..200 {
        std::fs::write(f.mountpoint.join(format!("db/entry-{i}")), "x").unwrap();
    }
    let walk = |root: &Utf8Path| -> Vec<std::path::PathBuf> {
        let mut all = Vec::new();
        let mut pending = vec![root.as_std_path().to_path_buf()];
        while let Some(path) = pending.pop() {
            if path.is_dir() && !path.is_symlink() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    pending.push(entry.unwrap().path());
                }
            }
            all.push(path);
        }
        all
    };
    for path in walk(&f.mountpoint) {
        std::os::unix::fs::lchown(&path, Some(4242), Some(4243)).unwrap();
    }
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    f.wipe();
    let plan = f.plan(vec![json!({ "local": {} })]);
    let crashed = f.run(&plan, &[("ZPERSIST_PRESEED_FAILPOINT", "during:ownership")]);
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    assert!(
        crashed.stderr.contains("failpoint during:ownership"),
        "{}",
        crashed.stderr
    );
    let rerun = f.run(&plan, &[]);
    f.assert_restored(&rerun, "v1", "local:");
    let foreign: Vec<_> = walk(&f.mountpoint)
        .into_iter()
        .filter(|p| {
            let meta = std::fs::symlink_metadata(p).unwrap();
            (meta.uid(), meta.gid()) != (1, 1)
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "{} entries keep a foreign owner: {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(5)]
    );
}

/// Class 6: a dataset name whose aside (`.zpersist-empty-<time>`) and a
/// snapshot of it would not fit ZFS's 255 bytes is refused with the plan
/// (exit 2, no zfs call); the longest accepted one whose own snapshot's
/// name is too long for the aside fails before anything is touched
/// (exit 1, no journal), never half-way.
#[test]
fn names_near_zfss_limit_are_refused_before_anything_is_touched() {
    let f = Fixture::new("longname");
    let base = f.pool.ds("services/");
    let longest = format!(
        "{base}{}",
        "n".repeat(zpersist_core::preseed::MAX_PRESEED_DATASET_LEN - base.len())
    );
    let mountpoint = f.pool.mnt().join("var/lib/long");
    let mut plan = f.plan(vec![json!({ "local": {} })]);
    plan["dataset"] = json!(format!("{longest}n"));
    plan["mountpoint"] = json!(mountpoint);
    let refused = f.run(&plan, &[]);
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains("at most 165 bytes"),
        "{}",
        refused.stderr
    );
    assert!(refused.zfs_calls.is_empty(), "{:?}", refused.zfs_calls);

    zfs(&[
        "create",
        "-o",
        &format!("mountpoint={mountpoint}"),
        &longest,
    ]);
    std::fs::write(mountpoint.join("data"), "long").unwrap();
    // Fits the dataset itself (and the sibling), not the aside.
    let snapshot = format!("{longest}@{}", "s".repeat(70));
    zfs(&["snapshot", &snapshot]);
    std::fs::remove_file(mountpoint.join("data")).unwrap();
    plan["dataset"] = json!(longest);
    let run = f.run(&plan, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("longer than ZFS's 255 bytes"),
        "{}",
        run.stderr
    );
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    f.assert_nothing_moved(&run);
}

/// The one resource lock (zpersist_host::resource_lock): while preseed
/// restores a dataset, another mover on it (a backup snapshot, a
/// migration) waits its bound and fails with exit 1 naming the dataset
/// and the holder, touching nothing; once the holder is killed with -9 the
/// lock is free and the next mover goes on.
#[test]
fn a_second_mover_on_the_dataset_waits_for_preseed_and_fails_naming_it() {
    let f = Fixture::new("movers");
    let (_plan, holder) = f.restoring();
    // Held still, mid-restore, with its locks.
    let pid = holder.pids()[0];
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let view = f.pool.scratch("view");
    let mover = |program: &str, args: &[&str]| {
        let out = watchdog::run_watching_zfs(
            duct::cmd(
                zpersist_e2e::binaries::built(program).as_str(),
                args.iter().copied(),
            )
            .env("ZPERSIST_LOCK_WAIT_SECONDS", "2")
            .stdout_capture()
            .stderr_capture()
            .unchecked(),
            program,
            watchdog::OTHER_LIMIT,
        )
        .unwrap_or_else(Hung::fail);
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let take = ["take", f.ds.as_str(), view.as_str()];
    let (code, text) = mover("zpersist-backup-snapshot", &take);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("another mover still holds {} after 2 s", f.ds))
            && text.contains(&format!("pid {pid}"))
            && text.contains("preseed-restore changing"),
        "the error names the dataset and the holder: {text}"
    );
    assert!(
        !zfs(&["list", "-H", "-r", "-t", "snapshot", "-o", "name", &f.ds])
            .contains("zpersist-restic"),
        "the refused mover took no snapshot"
    );
    let migrate = ["--dataset", f.ds.as_str(), "--path", f.mountpoint.as_str()];
    let (code, text) = mover("migrate-to-dataset", &migrate);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("another mover still holds {}", f.ds))
            && text.contains(&format!("pid {pid}")),
        "{text}"
    );

    // kill -9 releases it: the next mover goes on, and preseed resumes.
    signal("-KILL");
    let _ = holder.wait();
    let (code, text) = mover("zpersist-backup-snapshot", &take);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = mover("zpersist-backup-snapshot", &["release", f.ds.as_str()]);
    assert_eq!(code, Some(0), "{text}");
    let rerun = f.run(&f.plan(vec![json!({ "local": {} })]), &[]);
    assert_eq!(rerun.code, 0, "{rerun:#?}");
    assert_eq!(f.read("db/sonarr.db"), "database v1");
}
