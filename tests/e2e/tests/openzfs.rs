//! zpersist's promises on real OpenZFS (2.4, the kernel module, in the
//! Debian guest of zpersist_e2e::guest booted under qemu), with the same
//! assertions as their zfs-fuse twins, on small data and few datasets
//! (a zfs call costs about 0.5 s under TCG). No zfs-fuse stand-in is used
//! here: no `zfs get -t` wrapper, no `--no-resume`, no delegation replay.
//!
//! Where qemu cannot start the guest, every test here returns after one
//! loud line saying why (zpersist_e2e::guest::Guest::shared).

use serde_json::{json, Value};
use zpersist_e2e::assertions::syncoid_ran_as_its_user;
use zpersist_e2e::guest::{Guest, GuestPool};
use zpersist_e2e::pool::Recorded;

/// The guest, or `None` (after the loud line) where qemu cannot start it.
fn guest() -> Option<&'static Guest> {
    Guest::shared()
}

/// `stat -c '%u %g %a'` of a path in the guest.
fn ownership(guest: &Guest, path: &str) -> (u32, u32, u32) {
    let out = guest.run_ok(&["stat", "-c", "%u %g %a", path]);
    let f: Vec<&str> = out.split_whitespace().collect();
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        u32::from_str_radix(f[2], 8).unwrap(),
    )
}

#[test]
fn the_guest_runs_openzfs_2_4() {
    let Some(guest) = guest() else { return };
    let version = guest.run_ok(&["zfs", "version"]);
    println!("guest `zfs version`:\n{version}");
    eprintln!("guest `zfs version`: {}", version.replace('\n', " "));
    assert!(version.starts_with("zfs-2."), "{version}");
    assert!(
        version.lines().any(|l| l.starts_with("zfs-kmod-2.")),
        "the kernel module answers: {version}"
    );
    assert!(
        version.starts_with("zfs-2.4"),
        "OpenZFS 2.4 (trixie-backports) is what the guest is built with: {version}"
    );
    // The real thing: a kernel module behind /dev/zfs, mounts of type zfs.
    assert!(guest.run(&["test", "-c", "/dev/zfs"]).success());
}

#[test]
fn ensure_datasets_applies_lz4_and_zstd_repairs_drift_and_is_idempotent() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "ens");
    let mnt = pool.mnt();
    let (services, app, db) = (
        pool.ds("services"),
        pool.ds("services/app"),
        pool.ds("services/db"),
    );
    let plan = json!({ "version": 1, "pool": pool.name, "datasets": [
        { "name": services, "mountpoint": format!("{mnt}/services"), "canmount": "off",
          "properties": { "compression": "lz4", "atime": "off" } },
        { "name": app, "properties": { "recordsize": "16K", "quota": "1G", "com.zpersist:backup": "hourly" },
          "owner": "daemon", "group": "daemon", "mode": "0750" },
        { "name": db, "mountpoint": format!("{mnt}/pg"),
          "properties": { "compression": "zstd-3", "recordsize": "8K" }, "owner": "nobody", "group": "nogroup", "mode": "0700" },
    ]});
    let first = pool.ensure(&plan);
    assert_eq!(first.code, 0, "{first:#?}");
    assert_eq!(guest.get(&services, "compression"), "lz4");
    assert_eq!(
        guest.get(&app, "compression"),
        "lz4",
        "inherited from services"
    );
    assert_eq!(guest.get(&app, "recordsize"), "16384");
    assert_eq!(guest.get(&app, "quota"), (1u64 << 30).to_string());
    assert_eq!(guest.get(&app, "com.zpersist:backup"), "hourly");
    assert_eq!(guest.get(&db, "compression"), "zstd-3");
    assert_eq!(guest.get(&db, "mountpoint"), format!("{mnt}/pg"));
    assert_eq!(guest.get(&db, "mounted"), "yes");
    assert_eq!(guest.get(&services, "canmount"), "off");
    assert_eq!(
        ownership(guest, &format!("{mnt}/services/app")),
        (1, 1, 0o750)
    );
    assert_eq!(
        ownership(guest, &format!("{mnt}/pg")),
        (65534, 65534, 0o700)
    );
    // One create per dataset, parents first, each with all its properties.
    let creates: Vec<String> = first
        .calls_named("create")
        .iter()
        .map(|a| a.join(" "))
        .collect();
    assert_eq!(creates.len(), 3, "{creates:?}");
    assert!(creates[0].ends_with(&services), "{creates:?}");
    assert!(
        creates
            .iter()
            .any(|c| c.contains("-o compression=zstd-3") && c.ends_with(&db)),
        "{creates:?}"
    );
    // The mounts are OpenZFS's own: fstype zfs, source the dataset.
    let mounts = guest.run_ok(&["findmnt", "-n", "-o", "FSTYPE,SOURCE", &format!("{mnt}/pg")]);
    assert_eq!(
        mounts.split_whitespace().collect::<Vec<_>>(),
        ["zfs", db.as_str()]
    );

    // In shape: one zfs get, nothing changed.
    let second = pool.ensure(&plan);
    assert_eq!(second.code, 0, "{second:#?}");
    assert!(
        second.stdout.contains("3 datasets in shape, nothing to do"),
        "{}",
        second.stdout
    );
    assert!(second.mutating_calls().is_empty(), "{:?}", second.zfs_calls);
    assert_eq!(
        second.zfs_calls.len(),
        1,
        "steady state: {:?}",
        second.zfs_calls
    );
    assert!(!second.zfs_calls[0].contains(&"-r".to_string()));

    // Drift: lz4 and zstd changed behind zpersist's back, mode opened up;
    // an admin's undeclared choices stay.
    guest.zfs(&["set", "compression=off", &services]);
    guest.zfs(&["set", "compression=zstd-19", &db]);
    guest.zfs(&["set", "recordsize=128K", &app]);
    guest.zfs(&["set", "com.example:note=mine", &app]);
    guest.zfs(&["set", "atime=on", &db]);
    guest.run_ok(&["chmod", "0777", &format!("{mnt}/services/app")]);
    let repair = pool.ensure(&plan);
    assert_eq!(repair.code, 0, "{repair:#?}");
    let mut sets: Vec<String> = repair
        .calls_named("set")
        .iter()
        .map(|a| a.join(" "))
        .collect();
    sets.sort();
    assert_eq!(
        sets,
        [
            format!("set compression=lz4 {services}"),
            format!("set compression=zstd-3 {db}"),
            format!("set recordsize=16K {app}"),
        ]
    );
    assert_eq!(repair.mutating_calls().len(), 3, "{:?}", repair.zfs_calls);
    assert_eq!(guest.get(&services, "compression"), "lz4");
    assert_eq!(guest.get(&app, "compression"), "lz4");
    assert_eq!(guest.get(&db, "compression"), "zstd-3");
    assert_eq!(guest.get(&app, "recordsize"), "16384");
    assert_eq!(guest.get(&app, "com.example:note"), "mine");
    assert_eq!(guest.get(&db, "atime"), "on");
    assert_eq!(ownership(guest, &format!("{mnt}/services/app")).2, 0o750);
    let again = pool.ensure(&plan);
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);
}

#[test]
fn ensure_datasets_refuses_to_mount_over_files_even_though_openzfs_would() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "hide");
    let busy = pool.scratch("busy");
    guest.write(&format!("{busy}/keep.txt"), b"do not hide me");
    // OpenZFS itself mounts over a non-empty directory (no overlay
    // option needed since 2.0): that is what zpersist must not do.
    let probe = pool.ds("probe");
    let probe_dir = pool.scratch("probe");
    guest.write(&format!("{probe_dir}/file"), b"x");
    guest.zfs(&["create", "-o", &format!("mountpoint={probe_dir}"), &probe]);
    assert_eq!(guest.get(&probe, "mounted"), "yes", "OpenZFS allows it");
    assert!(!guest
        .run(&["test", "-e", &format!("{probe_dir}/file")])
        .success());
    guest.zfs(&["destroy", &probe]);

    let squatter = pool.ds("squatter");
    let taken = format!("{}/taken", pool.mnt());
    guest.zfs(&["create", "-o", &format!("mountpoint={taken}"), &squatter]);
    let plan = json!({ "version": 1, "pool": pool.name, "datasets": [
        { "name": pool.ds("newcomer"), "mountpoint": taken },
        { "name": pool.ds("hider"), "mountpoint": busy },
        { "name": pool.ds("fine") },
    ]});
    let run = pool.ensure(&plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("{taken} is already the mountpoint of {squatter}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("{busy} already holds files")),
        "{}",
        run.stdout
    );
    assert!(!guest.exists(&pool.ds("newcomer")) && !guest.exists(&pool.ds("hider")));
    assert!(
        guest.exists(&pool.ds("fine")),
        "the rest of the plan still applies"
    );
    assert_eq!(
        guest.run_ok(&["cat", &format!("{busy}/keep.txt")]),
        "do not hide me"
    );
}

#[test]
fn the_properties_zpersist_reads_parse_on_openzfs_output() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "props");
    let ds = pool.ds("data");
    guest.zfs(&["create", "-o", "quota=256M", "-o", "compression=zstd", &ds]);
    guest.sh_ok(&format!(
        "head -c 3145728 /dev/urandom >{}/data/blob && sync",
        pool.mnt()
    ));
    guest.zfs(&["snapshot", &format!("{ds}@one")]);
    guest.sh_ok(&format!(
        "head -c 1048576 /dev/urandom >{}/data/more && sync",
        pool.mnt()
    ));
    guest.zfs(&["snapshot", &format!("{ds}@two")]);

    // -p numbers, written, logicalused, as zpersist_zfs::parse_get reads them.
    let out = guest.zfs(&[
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value,source",
        "used,quota,available,written,logicalused,logicalreferenced,receive_resume_token,compression,mounted,mountpoint",
        &ds,
    ]);
    let observed = zpersist_zfs::parse_get(&out);
    let number = |property: &str| -> u64 {
        observed
            .value(&ds, property)
            .unwrap_or_else(|| panic!("{property} missing from {out}"))
            .parse()
            .unwrap_or_else(|_| panic!("{property} is not a -p number in {out}"))
    };
    assert_eq!(number("quota"), 256 << 20);
    assert!(number("used") >= 4 << 20, "{out}");
    assert!(number("logicalused") >= 4 << 20, "{out}");
    assert!(number("logicalreferenced") >= 4 << 20, "{out}");
    assert!(number("available") < 256 << 20, "{out}");
    // written: what changed since the newest snapshot (nothing since @two).
    assert!(number("written") < 1 << 20, "{out}");
    assert_eq!(observed.value(&ds, "compression"), Some("zstd"));
    assert_eq!(observed.value(&ds, "mounted"), Some("yes"));
    // No partial receive: the token is `-`, which parse_get reads as unset.
    assert_eq!(observed.value(&ds, "receive_resume_token"), None, "{out}");

    // written@snapshot of a snapshot, guid and creation as numbers.
    let written = guest.get(&format!("{ds}@two"), "written");
    assert!(written.parse::<u64>().unwrap() >= 1 << 20, "{written}");
    let listing = guest.zfs(
        &zpersist_zfs::snapshots_argv(&ds)[1..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let snapshots = zpersist_zfs::parse_snapshots(&ds, &listing).expect("parses");
    let names: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["one", "two"], "{listing}");
    assert_eq!(
        snapshots[1].guid,
        guest.get(&format!("{ds}@two"), "guid"),
        "{listing}"
    );

    // A partial receive: its token as OpenZFS prints it, long and opaque.
    let target = pool.ds("partial");
    guest.sh_ok(&format!(
        "zfs send {ds}@one | head -c 1048576 | zfs receive -s -u {target}; true"
    ));
    let out = guest.zfs(&[
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value,source",
        "receive_resume_token",
        &target,
    ]);
    let observed = zpersist_zfs::parse_get(&out);
    let token = observed
        .value(&target, "receive_resume_token")
        .unwrap_or_else(|| panic!("no token in {out}"));
    assert!(token.len() > 20 && !token.contains(['\t', ' ']), "{token}");
    // And zfs-send -t takes it: the receive resumes and completes.
    guest.sh_ok(&format!("zfs send -t {token} | zfs receive -s -u {target}"));
    assert_eq!(guest.get(&target, "receive_resume_token"), "-");
    assert_eq!(
        guest.get(&format!("{target}@one"), "guid"),
        guest.get(&format!("{ds}@one"), "guid")
    );
}

#[test]
fn check_mounted_tells_mounted_from_not_mounted() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "mnt");
    let at = |name: &str| format!("{}/{name}", pool.mnt());
    let (ok, unmounted, missing) = (pool.ds("ok"), pool.ds("unmounted"), pool.ds("missing"));
    guest.zfs(&["create", "-o", &format!("mountpoint={}", at("ok")), &ok]);
    guest.zfs(&[
        "create",
        "-o",
        "canmount=noauto",
        "-o",
        &format!("mountpoint={}", at("unmounted")),
        &unmounted,
    ]);
    let check =
        |args: &[&str]| guest.run_recorded(&guest.binary("zpersist-check-mounted"), args, &[]);

    // Mounted where it should be: exit 0, one line on stdout, one zfs get.
    let run = check(&["sonarr", &ok, &at("ok")]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.stdout, format!("{ok} is mounted on {}\n", at("ok")));
    assert_eq!(run.stderr, "");
    assert_eq!(run.zfs_calls.len(), 1, "{run:#?}");
    assert_eq!(run.zfs_calls[0][0], "get");

    let run = check(&["sonarr", &unmounted, &at("unmounted")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: {unmounted} is not mounted on {} (mounted: no, mountpoint: {}); not starting sonarr, which would write to the directory beneath\n  \
             help: journalctl -u zpersist-datasets.service says why; fix it, run `systemctl restart zpersist-datasets.service` and start sonarr's units again\n",
            at("unmounted"),
            at("unmounted")
        )
    );

    let run = check(&["sonarr", &missing, &at("missing")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.starts_with(&format!(
            "error: sonarr keeps its data on {missing}, which zfs cannot read: the dataset does not exist\n"
        )),
        "{run:#?}"
    );
}

#[test]
fn check_mounted_refuses_a_dataset_covered_by_a_tmpfs() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "cov");
    let path = format!("{}/covered", pool.mnt());
    let covered = pool.ds("covered");
    guest.zfs(&["create", "-o", &format!("mountpoint={path}"), &covered]);
    guest.run_ok(&["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", &path]);
    let check =
        |args: &[&str]| guest.run_recorded(&guest.binary("zpersist-check-mounted"), args, &[]);
    // zfs says mounted on that path, but what the path shows is a tmpfs:
    // a service started now would write to the tmpfs.
    assert_eq!(guest.get(&covered, "mounted"), "yes");
    let run = check(&["sonarr", &covered, &path]);
    guest.run_ok(&["umount", &path]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("{path} does not show {covered}: tmpfs")),
        "{run:#?}"
    );
    assert!(run.stderr.contains("not starting sonarr"), "{run:#?}");
    let run = check(&["sonarr", &covered, &path]);
    assert_eq!(run.code, 0, "uncovered again: {run:#?}");
}

const FIRST: &str = "autosnap_2026-11-01_00:00:00_hourly";

/// preseed's fixture (crates/preseed-restore/tests/real_preseed.rs) in the
/// guest: a service's dataset with data, a local snapshot, and a replica
/// pool (another disk) holding a copy of that snapshot.
struct Preseed {
    guest: &'static Guest,
    /// Declared before `pool` so it is destroyed first.
    replica: GuestPool,
    pool: GuestPool,
    ds: String,
    mountpoint: String,
    copy: String,
    state: String,
}

impl Preseed {
    fn new(guest: &'static Guest, tag: &str) -> Preseed {
        let pool = GuestPool::new(guest, tag);
        let replica = GuestPool::new(guest, &format!("{tag}rep"));
        let ds = pool.ds("services/sonarr");
        let mountpoint = format!("{}/var/lib/sonarr", pool.mnt());
        guest.zfs(&[
            "create",
            "-p",
            "-o",
            &format!("mountpoint={mountpoint}"),
            &ds,
        ]);
        let state = pool.scratch("state");
        guest.run_ok(&["mkdir", "-p", &state]);
        let f = Preseed {
            guest,
            copy: replica.ds("backup/forge/services/sonarr"),
            replica,
            pool,
            ds,
            mountpoint,
            state,
        };
        f.write_data("v1");
        f.snapshot(FIRST);
        guest.zfs(&["create", "-p", &f.replica.ds("backup/forge/services")]);
        f.send(FIRST, None);
        f
    }

    fn write_data(&self, version: &str) {
        let m = &self.mountpoint;
        self.guest.sh_ok(&format!(
            "mkdir -p {m}/db/wal && printf 'database {version}' >{m}/db/sonarr.db && \
             printf '<v>{version}</v>' >{m}/config.xml && ln -sfn db/sonarr.db {m}/current"
        ));
    }

    fn snapshot(&self, name: &str) {
        self.guest
            .zfs(&["snapshot", &format!("{}@{name}", self.ds)]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }

    fn send(&self, name: &str, base: Option<&str>) {
        let incremental = base
            .map(|b| format!("-i {}@{b}", self.ds))
            .unwrap_or_default();
        self.guest.sh_ok(&format!(
            "zfs send {incremental} {}@{name} | zfs receive -u -F {}",
            self.ds, self.copy
        ));
    }

    fn wipe(&self) {
        let m = &self.mountpoint;
        self.guest.sh_ok(&format!(
            "rm -rf {m}/* {m}/.[!.]* 2>/dev/null; mkdir -p {m}/logs"
        ));
    }

    fn plan(&self, sources: Vec<Value>) -> Value {
        json!({
            "version": 1, "service": "sonarr", "dataset": self.ds,
            "mountpoint": self.mountpoint, "owner": "daemon", "group": "daemon", "mode": "0750",
            "properties": { "atime": "off", "com.example:tier": "gold" },
            "sources": sources, "stateDir": self.state, "timeoutSeconds": 30,
        })
    }

    fn local_replica(&self) -> Value {
        json!({ "replica": { "target": "usb", "host": null, "dataset": self.copy } })
    }

    fn run(&self, plan: &Value) -> Recorded {
        let path = self.pool.write_plan("preseed.json", plan);
        let run = self.guest.run_logged(
            &self.guest.binary("preseed-restore"),
            &["--plan", &path],
            &[],
        );
        let sibling = format!("{}.zpersist-preseed", self.ds);
        for argv in &run.zfs_calls {
            match argv[0].as_str() {
                "rollback" | "promote" => panic!("preseed ran zfs {argv:?}"),
                "destroy" | "receive" | "recv" => {
                    assert_eq!(argv.last(), Some(&sibling), "{argv:?}")
                }
                "rename" => assert!(
                    (argv[1] == self.ds
                        && argv[2].starts_with(&format!("{}.zpersist-empty-", self.ds)))
                        || (argv[1] == sibling && argv[2] == self.ds),
                    "{argv:?}"
                ),
                _ => {}
            }
        }
        run
    }

    fn read(&self, rel: &str) -> String {
        self.guest
            .run_ok(&["cat", &format!("{}/{rel}", self.mountpoint)])
    }

    fn asides(&self) -> Vec<String> {
        self.guest
            .zfs(&["list", "-H", "-o", "name", "-r", &self.pool.ds("services")])
            .lines()
            .filter(|l| l.contains(".zpersist-empty-"))
            .map(str::to_owned)
            .collect()
    }

    fn assert_restored(&self, run: &Recorded, version: &str, source: &str) {
        let g = self.guest;
        assert_eq!(run.code, 0, "{run:#?}");
        assert_eq!(self.read("db/sonarr.db"), format!("database {version}"));
        assert_eq!(
            g.run_ok(&["readlink", &format!("{}/current", self.mountpoint)])
                .trim(),
            "db/sonarr.db"
        );
        assert_eq!(g.get(&self.ds, "com.zpersist:preseed"), "restored");
        let recorded = g.get(&self.ds, "com.zpersist:preseed-source");
        assert!(
            recorded.starts_with(source),
            "{recorded} is not from {source}"
        );
        assert_eq!(g.get(&self.ds, "mounted"), "yes");
        assert_eq!(g.get(&self.ds, "mountpoint"), self.mountpoint);
        assert_eq!(g.get(&self.ds, "atime"), "off");
        assert_eq!(g.get(&self.ds, "com.example:tier"), "gold");
        assert_eq!(g.get(&self.ds, "com.zpersist:preseed-sibling"), "-");
        assert!(
            !g.exists(&format!("{}.zpersist-preseed", self.ds)),
            "the sibling is left"
        );
        let asides = self.asides();
        assert_eq!(asides.len(), 1, "{asides:?}");
        assert_eq!(g.get(&asides[0], "mountpoint"), "none");
        assert!(
            !g.run(&["test", "-e", &format!("{}/sonarr.json", self.state)])
                .success(),
            "the journal is left"
        );
        assert_eq!(ownership(g, &self.mountpoint), (1, 1, 0o750));
        // The mount is the restored dataset's, by OpenZFS.
        let shown = g.run_ok(&["findmnt", "-n", "-o", "FSTYPE,SOURCE", &self.mountpoint]);
        assert_eq!(
            shown.split_whitespace().collect::<Vec<_>>(),
            ["zfs", self.ds.as_str()]
        );
    }
}

#[test]
fn preseed_restores_from_a_local_replica_pool_never_from_snapshots_of_the_emptied_dataset() {
    let Some(guest) = guest() else { return };
    let f = Preseed::new(guest, "pre");
    f.wipe();
    // sanoid and syncoid keep taking and shipping snapshots of the emptied
    // dataset: the newest point of every source is empty.
    f.snapshot("autosnap_2026-11-03_00:00:00_hourly");
    f.send("autosnap_2026-11-03_00:00:00_hourly", Some(FIRST));
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    let run = f.run(&plan);
    f.assert_restored(&run, "v1", "replica:usb:");
    assert!(guest
        .get(&f.ds, "com.zpersist:preseed-source")
        .ends_with(FIRST));
    assert!(run.stdout.contains("holds no data"), "{}", run.stdout);

    // Data present now: never touched, at most one zfs call, nothing changed.
    let again = f.run(&plan);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);
    assert_eq!(again.zfs_calls.len(), 1, "{:?}", again.zfs_calls);
    assert_eq!(f.read("db/sonarr.db"), "database v1");
}

#[test]
fn a_preseed_receive_killed_mid_stream_restarts_cleanly_and_stale_resume_tokens_never_block() {
    let Some(guest) = guest() else { return };
    // Killed mid-stream (the failpoint inside the pump of send | receive).
    let f = Preseed::new(guest, "kil");
    guest.sh_ok(&format!(
        "head -c 8388608 /dev/urandom >{}/big.bin",
        f.mountpoint
    ));
    let sum = guest.sh_ok(&format!("sha256sum <{}/big.bin", f.mountpoint));
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    f.wipe();
    let plan = f.plan(vec![json!({ "local": {} })]);
    let path = f.pool.write_plan("preseed.json", &plan);
    let crashed = guest.run_logged(
        &guest.binary("preseed-restore"),
        &["--plan", &path],
        &[("ZPERSIST_PRESEED_FAILPOINT", "during:fill")],
    );
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    assert!(
        crashed.stderr.contains("failpoint during:fill"),
        "{}",
        crashed.stderr
    );
    let rerun = f.run(&plan);
    f.assert_restored(&rerun, "v1", "local:");
    assert_eq!(
        guest.sh_ok(&format!("sha256sum <{}/big.bin", f.mountpoint)),
        sum
    );
    drop(f);

    // A partial receive left with a resume token (`zfs receive -s` cut
    // short) in the replica's copy (an interrupted incremental) never
    // blocks the restore; one in a dataset by the sibling's name that
    // preseed did not make (it never receives with -s) is not preseed's
    // to destroy: the run stops, says how to discard it, and touches it
    // not; once discarded, the restore goes on.
    let f = Preseed::new(guest, "stl");
    let sibling = format!("{}.zpersist-preseed", f.ds);
    guest.sh_ok(&format!(
        "head -c 4194304 /dev/urandom >{}/noise.bin",
        f.mountpoint
    ));
    f.snapshot("autosnap_2026-11-02_00:00:00_hourly");
    guest.sh_ok(&format!(
        "zfs send {ds}@autosnap_2026-11-02_00:00:00_hourly | head -c 1048576 | zfs receive -s -u {sibling}; \
         zfs send -i {ds}@{FIRST} {ds}@autosnap_2026-11-02_00:00:00_hourly | head -c 1048576 | zfs receive -s -u {copy}; true",
        ds = f.ds,
        copy = f.copy
    ));
    assert_ne!(guest.get(&sibling, "receive_resume_token"), "-");
    assert_ne!(guest.get(&f.copy, "receive_resume_token"), "-");
    guest.zfs(&[
        "destroy",
        &format!("{}@autosnap_2026-11-02_00:00:00_hourly", f.ds),
    ]);
    f.wipe();
    let plan = f.plan(vec![f.local_replica(), json!({ "local": {} })]);
    let refused = f.run(&plan);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains(&format!("discard it with `zfs receive -A {sibling}`")),
        "{}",
        refused.stderr
    );
    assert!(
        refused.zfs_calls.iter().all(|argv| !matches!(
            argv[0].as_str(),
            "destroy" | "rename" | "receive" | "recv" | "set" | "inherit"
        ) || !argv.contains(&sibling)),
        "{:?}",
        refused.zfs_calls
    );
    assert_ne!(guest.get(&sibling, "receive_resume_token"), "-");
    guest.zfs(&["receive", "-A", &sibling]);
    let run = f.run(&plan);
    f.assert_restored(&run, "v1", "replica:usb:");
    assert!(guest
        .get(&f.ds, "com.zpersist:preseed-source")
        .ends_with(FIRST));
}

/// syncoid between two local pools, as the replication units run it (but
/// for ssh): no `--no-resume`, no wrapper in front of zfs.
fn syncoid(
    guest: &Guest,
    extra: &[&str],
    source: &str,
    target: &str,
) -> zpersist_e2e::container::Output {
    let mut argv = vec!["syncoid", "--no-sync-snap", "--no-privilege-elevation"];
    argv.extend_from_slice(extra);
    argv.extend([source, target]);
    guest.run(&argv)
}

#[test]
fn an_interrupted_syncoid_transfer_resumes_on_the_next_run() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "syn");
    let replica = GuestPool::new(guest, "synrep");
    let ds = pool.ds("services/app");
    guest.zfs(&["create", "-p", &ds]);
    guest.sh_ok(&format!(
        "head -c 33554432 /dev/urandom >{}/services/app/blob && sync",
        pool.mnt()
    ));
    let snap = "autosnap_2026-11-01_00:00:00_hourly";
    guest.zfs(&["snapshot", &format!("{ds}@{snap}")]);
    guest.zfs(&["create", "-p", &replica.ds("backup")]);
    let target = replica.ds("backup/app");

    // Killed mid-stream: syncoid and its whole pipeline (its process
    // group), at 2 MiB/s, two seconds after the receive began to land.
    let killed = guest.sh(&format!(
        "setsid syncoid --no-sync-snap --no-privilege-elevation --source-bwlimit=2m {ds} {target} \
         >/tmp/syncoid-killed.log 2>&1 & p=$!; \
         for i in $(seq 1 300); do zfs list {target} >/dev/null 2>&1 && break; sleep 0.2; done; \
         sleep 2; /usr/bin/kill -KILL -- -$p; wait $p; sleep 2; true"
    ));
    assert!(killed.success(), "{killed:#?}");
    let token = guest.get(&target, "receive_resume_token");
    assert!(
        token != "-" && token.len() > 20,
        "the cut transfer left a resume token on {target}: {token:?}\n{}",
        guest.run_ok(&["cat", "/tmp/syncoid-killed.log"])
    );

    // The next run resumes that stream instead of starting over.
    let resumed = syncoid(guest, &[], &ds, &target);
    assert!(resumed.success(), "{resumed:#?}");
    let said = format!("{}{}", resumed.stdout, resumed.stderr);
    assert!(
        said.contains("Resuming interrupted zfs send/receive"),
        "{said}"
    );
    assert_eq!(guest.get(&target, "receive_resume_token"), "-");
    assert_eq!(
        guest.get(&format!("{target}@{snap}"), "guid"),
        guest.get(&format!("{ds}@{snap}"), "guid")
    );
    // And the next one is incremental from there.
    let next = "autosnap_2026-11-01_01:00:00_hourly";
    guest.sh_ok(&format!("echo more >{}/services/app/more", pool.mnt()));
    guest.zfs(&["snapshot", &format!("{ds}@{next}")]);
    let incremental = syncoid(guest, &[], &ds, &target);
    assert!(incremental.success(), "{incremental:#?}");
    assert_eq!(
        guest.get(&format!("{target}@{next}"), "guid"),
        guest.get(&format!("{ds}@{next}"), "guid")
    );
}

/// What zpersist's replication module grants the syncoid group for good
/// (zpersist-syncoid-allow.service: nix/modules/replication.nix's
/// `sourceAllow` on each source, `defaultTargetAllow` on a local target's
/// root) and what nixpkgs' syncoid module grants the syncoid *user* around
/// each run (`localSourceAllow` = sourceAllow, `localTargetAllow` = the
/// target's allow).
const SOURCE_ALLOW: &str = "bookmark,hold,send,snapshot,destroy,mount";
const TARGET_ALLOW: &str =
    "change-key,compression,create,mount,mountpoint,receive,rollback,destroy,canmount,send";

/// One syncoid command as nixpkgs' unit runs it: ExecStartPre (as root)
/// `zfs allow USER` on the dataset, or on its parent when the dataset does
/// not exist yet, for source and target; ExecStart syncoid as the syncoid
/// user; ExecStopPost (as root) `zfs unallow USER` on the dataset and on
/// its parent, for both. Its exit status goes to /tmp/dlg-NAME.rc.
fn nixpkgs_syncoid_unit(name: &str, source: &str, target: &str, extra: &str) -> String {
    let parent = |d: &str| {
        d.rsplit_once('/')
            .map_or(d.to_owned(), |(p, _)| p.to_owned())
    };
    let allow = |perms: &str, d: &str| {
        format!(
            "if zfs list {d} >/dev/null 2>&1; then zfs allow syncoid {perms} {d}; else zfs allow syncoid {perms} {p}; fi",
            p = parent(d)
        )
    };
    let unallow = |perms: &str, d: &str| {
        format!(
            "zfs unallow syncoid {perms} {d}; zfs unallow syncoid {perms} {p}",
            p = parent(d)
        )
    };
    format!(
        "( {pre_s}; {pre_t}; \
           setpriv --reuid=syncoid --regid=syncoid --init-groups \
             syncoid --identifier=usb {extra} --sendoptions '' --recvoptions u --no-privilege-elevation {source} {target} \
             >/tmp/dlg-{name}.log 2>&1; echo $? >/tmp/dlg-{name}.rc; date +%s.%N >/tmp/dlg-{name}.main-end; \
           {post_s}; {post_t}; date +%s.%N >/tmp/dlg-{name}.post-end ) >/tmp/dlg-{name}.unit.log 2>&1",
        pre_s = allow(SOURCE_ALLOW, source),
        pre_t = allow(TARGET_ALLOW, target),
        post_s = unallow(SOURCE_ALLOW, source),
        post_t = unallow(TARGET_ALLOW, target),
    )
}

#[test]
fn delegation_as_nixpkgs_runs_it_no_run_loses_a_permission_none_runs_as_root() {
    let Some(guest) = guest() else { return };
    guest.sh_ok(
        "getent group syncoid >/dev/null || groupadd -r syncoid; \
         id syncoid >/dev/null 2>&1 || useradd -r -g syncoid -M -d /var/lib/syncoid -s /usr/sbin/nologin syncoid",
    );
    let pool = GuestPool::new(guest, "dlg");
    let usb = GuestPool::new(guest, "dlgusb");
    let (parent, child) = (pool.ds("services"), pool.ds("services/app"));
    guest.zfs(&["create", "-p", &child]);
    let root = usb.ds("backup/forge");
    guest.zfs(&["create", "-p", &root]);
    let (parent_copy, child_copy) = (format!("{root}/services"), format!("{root}/services/app"));
    // zpersist-syncoid-allow.service: the group's standing grants.
    for source in [&parent, &child] {
        guest.zfs(&["allow", "-g", "syncoid", SOURCE_ALLOW, source]);
    }
    guest.zfs(&["allow", "-g", "syncoid", TARGET_ALLOW, &root]);

    // The first runs, parent before child (the units' order).
    guest.sh_ok(&format!("echo parent >{}/services/data", pool.mnt()));
    guest.sh_ok(&format!("echo child >{}/services/app/data", pool.mnt()));
    guest.sh_ok(&nixpkgs_syncoid_unit("p1", &parent, &parent_copy, ""));
    guest.sh_ok(&nixpkgs_syncoid_unit("c1", &child, &child_copy, ""));
    for (name, copy) in [("p1", &parent_copy), ("c1", &child_copy)] {
        assert_eq!(
            guest
                .run_ok(&["cat", &format!("/tmp/dlg-{name}.rc")])
                .trim(),
            "0",
            "{name}: {}",
            guest.run_ok(&["cat", &format!("/tmp/dlg-{name}.log")])
        );
        assert!(guest.exists(copy), "{copy} was not received");
    }

    // Then both at once: the parent's run slow (16 MiB at 1 MiB/s), the
    // child's quick, so the child's ExecStopPost revokes the user's grants
    // on the parent (its dataset's parent) while the parent's run still
    // sends. The group's grants keep it going.
    guest.sh_ok(&format!(
        "head -c 16777216 /dev/urandom >{}/services/big && sync",
        pool.mnt()
    ));
    guest.sh_ok(&format!("echo child2 >{}/services/app/data", pool.mnt()));
    let both = guest.sh(&format!(
        "{p} & sleep 3; {c}; wait",
        p = nixpkgs_syncoid_unit("p2", &parent, &parent_copy, "--source-bwlimit=1m"),
        c = nixpkgs_syncoid_unit("c2", &child, &child_copy, ""),
    ));
    assert!(both.success(), "{both:#?}");
    let log = |name: &str| guest.run_ok(&["cat", &format!("/tmp/dlg-{name}.log")]);
    let rc = |name: &str| {
        guest
            .run_ok(&["cat", &format!("/tmp/dlg-{name}.rc")])
            .trim()
            .to_owned()
    };
    assert_eq!(rc("c2"), "0", "child: {}", log("c2"));
    assert_eq!(
        rc("p2"),
        "0",
        "parent lost a permission mid-run: {}",
        log("p2")
    );
    // The child's revoke really ran while the parent still sent: the user
    // holds nothing on the parent now, the group still does.
    let perms = guest.zfs(&["allow", &parent]);
    assert!(!perms.contains("user syncoid"), "{perms}");
    assert!(perms.contains("group syncoid"), "{perms}");
    assert_eq!(
        guest
            .run_ok(&["sha256sum", &format!("{}/services/big", pool.mnt())])
            .split_whitespace()
            .next(),
        {
            guest.zfs(&["mount", &parent_copy]);
            let copy_mnt = guest.get(&parent_copy, "mountpoint");
            guest
                .run_ok(&["sha256sum", &format!("{copy_mnt}/big")])
                .split_whitespace()
                .next()
                .map(str::to_owned)
        }
        .as_deref()
    );

    // None ran as root: OpenZFS's pool history names the user of every
    // snapshot, send-side hold and receive.
    for history_pool in [&pool.name, &usb.name] {
        let history = guest.run_ok(&["zpool", "history", "-l", history_pool]);
        syncoid_ran_as_its_user(&history, "usb", &[]);
    }
}

/// zpersist-status's config directory in the guest.
fn status_config(guest: &Guest, pool: &GuestPool, name: &str, files: &[(&str, Value)]) -> String {
    let dir = pool.scratch(name);
    for (file, value) in files {
        guest.write(
            &format!("{dir}/{file}"),
            serde_json::to_string_pretty(value).unwrap().as_bytes(),
        );
    }
    dir
}

/// Policy snapshots (sanoid's names): only they count for freshness.
const S1: &str = "autosnap_2026-12-01_00:00:00_hourly";
const S2: &str = "autosnap_2026-12-01_01:00:00_hourly";

#[test]
fn status_in_shape_then_a_lagging_target_a_stale_snapshot_and_a_missing_mount() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "sts");
    let usb = GuestPool::new(guest, "stsusb");
    let app = pool.ds("app");
    guest.zfs(&["create", "-o", "com.zpersist:preseed=replica", &app]);
    guest.zfs(&["create", &usb.ds("backup")]);
    guest.zfs(&["snapshot", &format!("{app}@{S1}")]);
    guest.sh_ok(&format!(
        "zfs send {app}@{S1} | zfs receive -u {}",
        usb.ds("backup/app")
    ));
    let svc = json!({ "version": 1, "pool": pool.name, "services": {
        "app": { "dataset": app, "mountpoint": format!("{}/app", pool.mnt()) } } });
    let repl = json!({ "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
        "targets": { "usb": { "host": null, "dataset": usb.ds("backup"), "identifier": "usb" } },
        "datasets": [ { "source": app, "target": "usb", "targetDataset": usb.ds("backup/app") } ] });
    let objectives = |age: u64, lag: u64| {
        json!({ "version": 1, "services": { "app": {
            "maxSnapshotAgeSeconds": age, "maxReplicationLagSeconds": lag } } })
    };
    let status = |dir: &str, extra: &[&str]| {
        let mut args = vec!["--config", dir];
        args.extend(extra);
        guest.run_recorded(&guest.binary("zpersist-status"), &args, &[])
    };

    let dir = status_config(
        guest,
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
            .contains(&format!("target usb: holds {S1} (lag 0 s)")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("preseed: replica"), "{}", r.stdout);
    assert_eq!(r.zfs_calls.len(), 3, "{:?}", r.zfs_calls);
    let j = status(&dir, &["--json"]);
    assert_eq!(j.code, 0, "{j:#?}");
    let report: Value = serde_json::from_str(&j.stdout).unwrap();
    let s = &report["services"][0];
    assert_eq!(s["facts"]["mounted"], true);
    assert_eq!(s["facts"]["mountpoint"], format!("{}/app", pool.mnt()));
    assert_eq!(s["newestSnapshot"]["name"], S1);
    assert_eq!(s["targets"]["usb"]["state"], "reached");
    assert_eq!(s["targets"]["usb"]["lagSeconds"], 0);
    assert_eq!(s["problems"], json!([]));

    // A lagging target: a newer local snapshot the target lacks.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    guest.zfs(&["snapshot", &format!("{app}@{S2}")]);
    let dir = status_config(
        guest,
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

    // A stale snapshot.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let dir = status_config(
        guest,
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

    // A missing mount.
    guest.zfs(&["unmount", &app]);
    let dir = status_config(guest, &pool, "unmounted", &[("services.json", svc.clone())]);
    let r = status(&dir, &["app"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("mounted: no"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("help: `zfs mount {app}`")),
        "{}",
        r.stdout
    );
    guest.zfs(&["mount", &app]);
}

/// Not a test: `ZPERSIST_GUEST_SH='...' cargo test -p zpersist-e2e --test
/// openzfs guest_shell -- --ignored --nocapture` runs a script in a
/// restored guest and prints what it said (for looking around).
#[test]
#[ignore = "a tool for looking around in the guest, not a test"]
fn guest_shell() {
    let Some(guest) = guest() else { return };
    let script = std::env::var("ZPERSIST_GUEST_SH").unwrap_or_else(|_| "zfs version".into());
    let out = guest.sh(&script);
    println!("{}{}exit {:?}", out.stdout, out.stderr, out.code);
}

#[test]
fn a_backup_holds_the_snapshot_at_the_mountpoint_and_preseed_restores_it() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "bk");
    let ds = pool.ds("services/wiki");
    let mountpoint = format!("{}/var/lib/wiki", pool.mnt());
    guest.zfs(&[
        "create",
        "-p",
        "-o",
        &format!("mountpoint={mountpoint}"),
        &ds,
    ]);
    let (repo, password, view) = (
        pool.scratch("restic-repo"),
        pool.scratch("restic-password"),
        pool.scratch("view/wiki"),
    );
    guest.write(&password, b"correct horse");
    let restic = |args: &[&str]| {
        let mut argv = vec!["restic", "-r", &repo, "--password-file", &password];
        argv.extend_from_slice(args);
        guest.run_ok(&argv)
    };
    restic(&["init"]);
    let write = |version: &str| {
        guest.sh_ok(&format!(
            "mkdir -p {mountpoint}/pages && printf 'home {version}' >{mountpoint}/pages/home.md && \
             printf 'db {version}' >{mountpoint}/wiki.db"
        ));
    };
    let bin = guest.binary("zpersist-backup-snapshot");
    let step = |args: &[&str]| {
        let r = guest.run_logged(&bin, args, &[]);
        for call in r.mutating_calls() {
            if zpersist_e2e::pool::DESTRUCTIVE.contains(&call[0].as_str()) {
                assert_eq!(call[0], "destroy", "{r:#?}");
                assert_eq!(call.len(), 2, "no flags (-r, -R, -f): {r:#?}");
                assert!(
                    call[1] == format!("{ds}-zpersist-restic")
                        || call[1].starts_with(&format!("{ds}@zpersist-restic-")),
                    "destroyed {}: {r:#?}",
                    call[1]
                );
            }
        }
        r
    };
    let ours = || -> Vec<String> {
        guest
            .zfs(&["list", "-H", "-o", "name", "-t", "all", "-r", &pool.name])
            .lines()
            .filter(|l| l.contains("zpersist-restic"))
            .map(str::to_owned)
            .collect()
    };

    write("v1");
    let took = step(&["take", &ds, &view]);
    assert_eq!(took.code, 0, "{took:#?}");
    assert!(took.stdout.contains("took "), "{}", took.stdout);
    write("v2-live");
    guest.write(&format!("{mountpoint}/written-after.txt"), b"late");
    assert_eq!(
        guest.run_ok(&["cat", &format!("{view}/pages/home.md")]),
        "home v1"
    );
    assert!(
        !guest.sh(&format!("echo no >{view}/x")).success(),
        "the view is read-only"
    );

    // restic-backups-zpersist-wiki.service's namespace: the view bound
    // read-only over the mountpoint.
    guest.run_ok(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        r#"mount --bind -o ro "$1" "$2" && exec restic -r "$3" --password-file "$4" backup --host forge "$2""#,
        "sh",
        &view,
        &mountpoint,
        &repo,
        &password,
    ]);
    let snapshots: Value = serde_json::from_str(&restic(&["snapshots", "--json"])).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    assert_eq!(
        snapshots[0]["paths"],
        json!([mountpoint]),
        "recorded at the mountpoint"
    );
    assert_eq!(snapshots[0]["hostname"], "forge");
    assert_eq!(
        restic(&["dump", "latest", &format!("{mountpoint}/pages/home.md")]),
        "home v1",
        "the snapshot's content, not the live file"
    );
    assert_eq!(
        guest.run_ok(&["cat", &format!("{mountpoint}/pages/home.md")]),
        "home v2-live"
    );

    let released = step(&["release", &ds]);
    assert_eq!(released.code, 0, "{released:#?}");
    assert_eq!(ours(), Vec::<String>::new(), "clone and snapshot destroyed");
    assert!(
        !guest
            .run(&["test", "-e", &format!("{view}/pages")])
            .success(),
        "the view is unmounted"
    );

    // The disk dies: an empty dataset; preseed restores the backup.
    guest.sh_ok(&format!("rm -rf {mountpoint}/*"));
    let state = pool.scratch("preseed-state");
    guest.run_ok(&["mkdir", "-p", &state]);
    let plan = json!({
        "version": 1, "service": "wiki", "dataset": ds, "mountpoint": mountpoint,
        "owner": "root", "group": "root", "mode": "0750", "properties": {},
        "sources": [ { "restic": {
            "name": "b2", "repository": repo, "passwordFile": password,
            "host": "forge", "path": mountpoint,
        } } ],
        "stateDir": state, "timeoutSeconds": 60,
    });
    let plan_path = pool.write_plan("preseed.json", &plan);
    let run = guest.run_logged(
        &guest.binary("preseed-restore"),
        &["--plan", &plan_path],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(
        guest.run_ok(&["cat", &format!("{mountpoint}/pages/home.md")]),
        "home v1"
    );
    assert_eq!(
        guest.run_ok(&["cat", &format!("{mountpoint}/wiki.db")]),
        "db v1"
    );
    assert!(!guest
        .run(&["test", "-e", &format!("{mountpoint}/written-after.txt")])
        .success());
}

#[test]
fn syncoid_replicates_into_a_local_pool_incrementally_and_lag_follows_it() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "lrp");
    let usb = GuestPool::new(guest, "lrpusb");
    let source = pool.ds("services/sonarr");
    let target = usb.ds("backup/forge/services/sonarr");
    guest.zfs(&["create", "-p", &source]);
    guest.zfs(&[
        "create",
        "-p",
        "-o",
        "canmount=off",
        &usb.ds("backup/forge/services"),
    ]);
    guest.write(
        &format!("{}/services/sonarr/config.xml", pool.mnt()),
        b"<sonarr/>",
    );
    // The module's argv for a local target (no ssh), without --no-resume.
    let run = |what: &str| {
        let out = guest.run(&[
            "syncoid",
            "--identifier=usb",
            "--sendoptions",
            "",
            "--recvoptions",
            "u",
            "--no-privilege-elevation",
            &source,
            &target,
        ]);
        assert!(out.success(), "{what}: {out:#?}");
        format!("{}{}", out.stdout, out.stderr)
    };
    let first = run("first run");
    assert!(!first.contains("incremental"), "first run:\n{first}");
    assert!(guest.exists(&target));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = run("second run");
    assert!(second.contains("incremental"), "second run:\n{second}");
    let local = guest.zfs(&[
        "list", "-H", "-o", "name", "-t", "snapshot", "-s", "creation", &source,
    ]);
    let base = local
        .lines()
        .filter_map(|l| l.split_once('@').map(|(_, s)| s.to_owned()))
        .find(|s| s.starts_with("syncoid_usb_"))
        .unwrap_or_else(|| panic!("no sync snapshot for usb: {local}"));

    let config = pool.write_plan(
        "replication.json",
        &json!({ "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
            "targets": { "usb": { "host": null, "dataset": usb.ds("backup/forge"), "identifier": "usb" } },
            "datasets": [ { "source": source, "target": "usb", "targetDataset": target } ] }),
    );
    let lag = || {
        let r = guest.run_recorded(
            &guest.binary("replication-lag"),
            &["--config", &config, "--json"],
            &[],
        );
        let all: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("replication-lag printed no JSON ({e}): {r:#?}"));
        let m = all
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["source"] == source.as_str() && m["target"] == "usb")
            .unwrap_or_else(|| panic!("no measurement: {all}"))
            .clone();
        (r.code, m)
    };
    let (code, m) = lag();
    assert_eq!(code, 0, "{m}");
    assert_eq!(m["lagSeconds"], 0, "{m}");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");

    std::thread::sleep(std::time::Duration::from_millis(2100));
    guest.zfs(&["snapshot", &format!("{source}@autosnap_missed")]);
    let (code, m) = lag();
    assert!(m["lagSeconds"].as_i64().unwrap() >= 2, "{m}");
    assert_eq!(m["newestLocal"]["name"], "autosnap_missed", "{m}");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");
    assert_eq!(code, 0, "no maxLagSeconds is set: {m}");
}
