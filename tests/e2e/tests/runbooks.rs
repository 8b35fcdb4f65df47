//! The runbooks under docs/runbooks/ run as a person runs them: their ```sh
//! blocks in order, in one `bash -euo pipefail`, with the "set these"
//! block replaced by this test's values (the same variables, checked), on
//! real components: zfs-fuse pools, the loopback sshd
//! (tests/env/start-sshd.sh) as the remote replica host, the real syncoid
//! and restic, PostgreSQL 15, and zpersist's binaries built from this
//! checkout. A runbook that goes stale fails here.
//!
//! Blocks marked `<!-- runbook: skip (why) -->` are not run (systemctl,
//! nixos-rebuild: no systemd as PID 1 and no NixOS here); each test states
//! how many it expects, so a new skip is a change of the test too.
//!
//! What the test machine forces (test-only, tests/env/runbook-bin and
//! tests/env/sanoid-zfs first on PATH; the runbooks show the OpenZFS
//! commands unchanged):
//! - syncoid gets `--no-resume` (zfs-fuse has no resumable receive);
//! - `zfs get -t` is dropped and filtered by the sanoid-zfs wrapper
//!   (syncoid and replication-lag use it; zfs-fuse has no `-t` there);
//! - `zfs rename`/`destroy`/`unmount` are retried on "busy" (zfs-fuse
//!   unmounts asynchronously; OpenZFS answers at once);
//! - host names, pools and paths are the test's (the settings block).

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;
use zpersist_e2e::binaries;
use zpersist_e2e::pool::{exists, get, run_ok, zfs, TestPool};
use zpersist_e2e::postgres::PgCluster;
use zpersist_e2e::reachable;
use zpersist_e2e::runbook::{self, Runbook};
use zpersist_e2e::sshd;
use zpersist_e2e::syncoid::syncoid;
use zpersist_e2e::zfs_watchdog;

const LIMIT: Duration = Duration::from_secs(300);

/// Every file in docs/runbooks is run by a test of this file (or, for a
/// runbook only OpenZFS can run, of the OpenZFS guest's test binary that
/// runs it: openzfs_encryption.rs): its name appears in a
/// `Runbook::load_skipping` call of a `#[test]`'s code path there, and it
/// has a settings block and something to run.
#[test]
fn every_runbook_has_a_test() {
    // Without whitespace, so that rustfmt's line breaks do not matter.
    let this_file: String = [
        include_str!("runbooks.rs"),
        include_str!("openzfs_encryption.rs"),
    ]
    .concat()
    .split_whitespace()
    .collect();
    let names = runbook::all_names();
    assert!(names.len() >= 4, "{names:?}");
    for name in &names {
        assert!(
            this_file.contains(&format!("Runbook::load_skipping(\"{name}\"")),
            "docs/runbooks/{name} has no test: add one to tests/e2e/tests/runbooks.rs that runs it (Runbook::load_skipping)"
        );
        let rb = Runbook::load(name);
        rb.settings();
        assert!(
            rb.blocks
                .iter()
                .any(|b| b.mark == runbook::Mark::Run || matches!(b.mark, runbook::Mark::Only(_))),
            "{name} runs nothing"
        );
    }
}

/// The directories put before PATH: the test-only shims, the zfs wrapper,
/// zpersist's freshly built binaries.
fn path_front() -> Vec<Utf8PathBuf> {
    vec![
        reachable::env_dir("runbook-bin"),
        reachable::env_dir("sanoid-zfs"),
        binaries::fresh("ensure-datasets")
            .parent()
            .unwrap()
            .to_owned(),
    ]
}

fn run_runbook(rb: &Runbook, settings: &str, alternative: Option<&str>) -> String {
    run_script(rb, &rb.script(settings, alternative))
}

/// Runs a script of `rb`'s blocks, which must succeed; its output.
fn run_script(rb: &Runbook, script: &str) -> String {
    let front = path_front();
    let front: Vec<&Utf8Path> = front.iter().map(|p| p.as_path()).collect();
    let started = std::time::Instant::now();
    let ran = rb.run_script(script, &front, LIMIT);
    assert!(
        ran.ok,
        "{} failed; the last ### line names the block:\n{}",
        rb.path, ran.output
    );
    eprintln!(
        "{} ran in {:.1} s:\n{}",
        rb.path,
        started.elapsed().as_secs_f64(),
        ran.output
    );
    ran.output
}

fn metadata(path: &Utf8Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// Sonarr's data: nested files, a hidden file, a symlink, one file owned by
/// another uid than the service's.
fn write_data(root: &Utf8Path, version: &str) {
    std::fs::create_dir_all(root.join("db/wal")).unwrap();
    std::fs::write(root.join("db/sonarr.db"), format!("database {version}")).unwrap();
    std::fs::write(root.join("config.xml"), format!("<v>{version}</v>")).unwrap();
    std::fs::write(root.join(".hidden"), "dot").unwrap();
    let link = root.join("current");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("db/sonarr.db", &link).unwrap();
    run_ok("chown", &["-R", "-h", "daemon:daemon", root.as_str()]);
}

fn assert_data(root: &Utf8Path, version: &str) {
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{root}/{rel}: {e}"))
    };
    assert_eq!(read("db/sonarr.db"), format!("database {version}"));
    assert_eq!(read("config.xml"), format!("<v>{version}</v>"));
    assert_eq!(read(".hidden"), "dot");
    assert_eq!(
        std::fs::read_link(root.join("current"))
            .unwrap()
            .as_os_str(),
        "db/sonarr.db"
    );
    assert!(root.join("db/wal").is_dir());
}

/// Empties a mounted dataset, keeping it mounted (what a wipe or a new disk
/// leaves after zpersist-datasets made it again).
fn wipe(root: &Utf8Path) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// forge in small: pool `tank` (this test's pool) with services/sonarr made
/// by ensure-datasets from a plan, a NAS pool reached over the loopback
/// sshd, a USB pool, a restic repository of the mountpoint.
struct Forge {
    // Companions first: dropped before the pool whose turn they share.
    nas: TestPool,
    usb: TestPool,
    pool: TestPool,
    ds: String,
    mountpoint: Utf8PathBuf,
    datasets_plan: Utf8PathBuf,
    host_key: String,
}

impl Forge {
    fn new(tag: &str) -> Forge {
        let host_key = sshd::require();
        let pool = TestPool::new(tag);
        let nas = pool.companion("nas");
        let usb = pool.companion("usb");
        let ds = pool.ds("services/sonarr");
        let mountpoint = pool.mnt().join("var/lib/sonarr/.config/NzbDrone");
        let plan = json!({
            "version": 1, "pool": pool.name,
            "datasets": [
                { "name": pool.ds("services"), "mountpoint": "none", "canmount": "off",
                  "properties": { "atime": "off" } },
                { "name": ds, "mountpoint": mountpoint,
                  "properties": { "quota": "100M", "com.example:tier": "gold" },
                  "owner": "daemon", "group": "daemon", "mode": "0700" },
            ]
        });
        let datasets_plan = pool.write_plan("datasets.json", &plan);
        run_ok(
            binaries::fresh("ensure-datasets").as_str(),
            &["--plan", datasets_plan.as_str()],
        );
        let forge = Forge {
            nas,
            usb,
            pool,
            ds,
            mountpoint,
            datasets_plan,
            host_key,
        };
        for pool in [&forge.nas, &forge.usb] {
            zfs(&[
                "create",
                "-p",
                "-o",
                "canmount=off",
                &pool.ds("backup/forge"),
            ]);
        }
        forge
    }

    fn nas_copy(&self) -> String {
        self.nas.ds("backup/forge/services/sonarr")
    }

    fn usb_copy(&self) -> String {
        self.usb.ds("backup/forge/services/sonarr")
    }

    /// syncoid to the NAS over ssh, as the generated command runs it
    /// (identifier, pinned host key, key, port); its output.
    fn sync_nas(&self) -> String {
        syncoid_over_ssh("nas", &sshd::known_hosts(), &self.ds, &self.nas_copy())
    }

    fn sync_usb(&self) -> String {
        let (ok, out) = syncoid(&["--identifier=usb", &self.ds, &self.usb_copy()]);
        assert!(ok, "syncoid to the USB pool failed:\n{out}");
        out
    }

    fn snapshot(&self, name: &str) {
        zfs(&["snapshot", &format!("{}@{name}", self.ds)]);
        // Creation times have one-second resolution: keep them apart.
        std::thread::sleep(Duration::from_millis(1100));
    }
}

/// syncoid from `source` to `target_dataset` over the loopback sshd, as
/// the generated units run it (identifier, key, port, pinned host key in
/// `known_hosts`, received unmounted); it must succeed; its output.
fn syncoid_over_ssh(
    identifier: &str,
    known_hosts: &str,
    source: &str,
    target_dataset: &str,
) -> String {
    let (ok, out) = syncoid(&[
        "--no-privilege-elevation".to_string(),
        format!("--identifier={identifier}"),
        "--sshkey".into(),
        sshd::client_key(),
        format!("--sshport={}", sshd::PORT),
        format!("--sshoption=UserKnownHostsFile={known_hosts}"),
        "--sshoption=StrictHostKeyChecking=yes".into(),
        "--sshoption=BatchMode=yes".into(),
        "--recvoptions=u".into(),
        source.to_owned(),
        format!("{}@{}:{target_dataset}", sshd::USER, sshd::HOST),
    ]);
    assert!(ok, "syncoid {source} -> {identifier} failed:\n{out}");
    out
}

/// [`syncoid_over_ssh`] that must send incrementally (a common snapshot
/// on both sides, no full resend).
fn assert_incremental(identifier: &str, known_hosts: &str, source: &str, target_dataset: &str) {
    let said = syncoid_over_ssh(identifier, known_hosts, source, target_dataset);
    assert!(
        said.contains("incremental") && !said.contains("full"),
        "{said}"
    );
}

fn restic(repo: &Utf8Path, password: &Utf8Path, args: &[&str]) {
    let mut all = vec!["-r", repo.as_str(), "--password-file", password.as_str()];
    all.extend_from_slice(args);
    run_ok("restic", &all);
}

/// The restore-service runbook from one source, after the data is lost.
fn restore_service_from(source: &str) {
    let rb = Runbook::load_skipping("restore-service.md", &["systemctl stop", "systemctl start"]);
    assert_eq!(
        rb.alternatives(),
        ["pool", "restic", "snapshot", "ssh"]
            .map(String::from)
            .into(),
        "the sources the runbook covers and this test runs"
    );
    let f = Forge::new(&format!("rs{}", &source[..2]));
    write_data(&f.mountpoint, "v1");
    f.snapshot("autosnap_2026-11-30_09:00:00_hourly");
    for pool in [&f.nas, &f.usb] {
        let level = pool.ds("backup/forge/services");
        zfs(&["create", "-o", "canmount=off", &level]);
    }
    f.sync_nas();
    f.sync_usb();
    let repo = f.pool.scratch("restic-repo");
    let password = f.pool.scratch("restic-password");
    std::fs::write(&password, "correct horse").unwrap();
    restic(&repo, &password, &["init"]);
    restic(
        &repo,
        &password,
        &["backup", "--host", "forge", f.mountpoint.as_str()],
    );
    // Another host's later backup of the same path must not be restored.
    std::fs::write(f.mountpoint.join("db/sonarr.db"), "another host").unwrap();
    restic(
        &repo,
        &password,
        &["backup", "--host", "elsewhere", f.mountpoint.as_str()],
    );
    wipe(&f.mountpoint);

    let known_hosts = f.pool.scratch("known_hosts_nas");
    std::fs::write(
        &known_hosts,
        format!("[{}]:{} {}\n", sshd::HOST, sshd::PORT, f.host_key),
    )
    .unwrap();
    let env_file = f.pool.scratch("restic-b2.env");
    std::fs::write(&env_file, "B2_ACCOUNT_ID=unused-by-a-local-repository\n").unwrap();
    let state = f.pool.scratch("preseed-state");
    let preseed_plan = f.pool.write_plan(
        "preseed.json",
        &json!({
            "version": 1, "service": "sonarr", "dataset": f.ds, "mountpoint": f.mountpoint,
            "owner": "daemon", "group": "daemon", "mode": "0700",
            "properties": { "quota": "100M", "com.example:tier": "gold" },
            "sources": [
                { "replica": { "target": "nas", "host": sshd::HOST, "port": sshd::PORT,
                    "user": sshd::USER, "sshKey": sshd::client_key(),
                    "knownHosts": known_hosts, "dataset": f.nas_copy() } },
                { "replica": { "target": "usb", "host": null, "dataset": f.usb_copy() } },
                { "local": {} },
                { "restic": { "name": "b2", "repository": repo, "passwordFile": password,
                    "host": "forge", "path": f.mountpoint } },
            ],
            "stateDir": state, "timeoutSeconds": 20,
        }),
    );
    let sibling = format!("{}.zpersist-preseed", f.ds);
    let config = f.pool.scratch("etc-zpersist");
    std::fs::create_dir_all(&config).unwrap();
    write_services_json(&config, &f.pool.name, &f.ds, &f.mountpoint);
    // Where `zpersist restore` finds the plan, as the module links it.
    std::fs::create_dir_all(config.join("preseed")).unwrap();
    std::fs::copy(&preseed_plan, config.join("preseed/sonarr.json")).unwrap();
    let settings = format!(
        r#"SERVICE=sonarr
DATASET={ds}
MOUNTPOINT={mp}
OWNER=daemon GROUP=daemon
SIBLING={sibling}
RESTORE_MNT={restore_mnt}
DATASETS_PLAN={datasets_plan}
NAS={user}@{host} NAS_PORT={port}
NAS_KEY={key} NAS_KNOWN_HOSTS={known_hosts}
NAS_DATASET={nas_copy}
USB_DATASET={usb_copy}
export RESTIC_REPOSITORY={repo} RESTIC_PASSWORD_FILE={password}
RESTIC_ENV_FILE={env_file}
BACKUP_HOST=forge
ZPERSIST_CONFIG={config}
"#,
        ds = f.ds,
        mp = f.mountpoint,
        restore_mnt = f.pool.scratch("restore"),
        datasets_plan = f.datasets_plan,
        user = sshd::USER,
        host = sshd::HOST,
        port = sshd::PORT,
        key = sshd::client_key(),
        nas_copy = f.nas_copy(),
        usb_copy = f.usb_copy(),
    );
    let out = run_runbook(&rb, &settings, Some(source));
    // The dry run looked and changed nothing before the restore by hand.
    assert!(
        out.contains("zfs receive -u") || out.contains("restic"),
        "{out}"
    );

    assert_data(&f.mountpoint, "v1");
    assert_eq!(get(&f.ds, "mounted"), "yes");
    assert_eq!(get(&f.ds, "mountpoint"), f.mountpoint.as_str());
    assert_eq!(get(&f.ds, "canmount"), "on");
    assert_eq!(
        get(&f.ds, "com.example:tier"),
        "gold",
        "declared properties"
    );
    assert_eq!(get(&f.ds, "quota"), (100u64 << 20).to_string());
    assert_eq!(
        metadata(&f.mountpoint),
        (1, 1, 0o700),
        "owner daemon, mode 0700"
    );
    assert_eq!(get(&f.ds, "com.zpersist:preseed"), "restored");
    let recorded = get(&f.ds, "com.zpersist:preseed-source");
    let expected = match source {
        "ssh" => format!("replica:nas:{}@syncoid_nas_", f.nas_copy()),
        "pool" => format!("replica:usb:{}@syncoid_usb_", f.usb_copy()),
        "snapshot" => format!("local:{}@syncoid_usb_", f.ds),
        _ => "restic:b2:".into(),
    };
    assert!(recorded.starts_with(&expected), "{recorded} !~ {expected}");
    if source == "restic" {
        // The short id of forge's backup, not "latest" nor another host's.
        let id = &recorded["restic:b2:".len()..];
        assert!(
            id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{recorded}"
        );
        assert!(out.contains(&format!("{id}  ")), "{out}");
    }
    assert!(out.contains("ok sonarr"), "zpersist-status: {out}");
    assert!(!exists(&sibling), "the sibling is swapped in");
    let asides: Vec<String> = zfs(&["list", "-H", "-o", "name", "-r", &f.pool.ds("services")])
        .lines()
        .filter(|l| l.contains(".zpersist-empty-"))
        .map(str::to_owned)
        .collect();
    assert_eq!(asides.len(), 1, "the empty original is kept: {asides:?}");
    assert_eq!(get(&asides[0], "mountpoint"), "none");
    if source == "ssh" {
        // The received snapshot is the common base: the next run is incremental.
        assert_incremental("nas", &sshd::known_hosts(), &f.ds, &f.nas_copy());
    }
}

#[test]
fn restore_service_from_a_replica_over_ssh() {
    restore_service_from("ssh");
}

#[test]
fn restore_service_from_a_local_pool() {
    restore_service_from("pool");
}

#[test]
fn restore_service_from_a_local_snapshot() {
    restore_service_from("snapshot");
}

#[test]
fn restore_service_from_restic() {
    restore_service_from("restic");
}

/// /etc/zpersist/services.json as the module writes it, for sonarr on
/// `dataset`.
fn write_services_json(dir: &Utf8Path, pool: &str, dataset: &str, mountpoint: &Utf8Path) {
    let services = json!({ "version": 1, "pool": pool, "services": { "sonarr": {
        "dataset": dataset, "mountpoint": mountpoint, "units": ["sonarr.service"],
        "user": "daemon", "group": "daemon", "mode": "0700" } } });
    std::fs::write(dir.join("services.json"), services.to_string()).unwrap();
}

/// /etc/zpersist as the module writes it, in a scratch directory:
/// services.json (sonarr), and replication.json plus known_hosts/<target>
/// for one remote target reached over the loopback sshd.
fn write_config(f: &Forge, dir: &Utf8Path, target: &str, root: &str, datasets: &[&str]) {
    std::fs::create_dir_all(dir.join("known_hosts")).unwrap();
    let known_hosts = dir.join("known_hosts").join(target);
    std::fs::write(
        &known_hosts,
        format!("[{}]:{} {}\n", sshd::HOST, sshd::PORT, f.host_key),
    )
    .unwrap();
    write_services_json(dir, &f.pool.name, &f.ds, &f.mountpoint);
    let pool_prefix = format!("{}/", f.pool.name);
    let replication = json!({
        "version": 1, "host": "forge",
        "targets": { target: {
            "host": sshd::HOST, "port": sshd::PORT, "user": sshd::USER, "dataset": root,
            "identifier": target, "sshKey": sshd::client_key(), "knownHosts": known_hosts,
        } },
        "datasets": datasets.iter().map(|ds| json!({
            "source": ds, "target": target,
            "targetDataset": format!("{root}/{}", ds.strip_prefix(&pool_prefix).unwrap()),
        })).collect::<Vec<_>>(),
        "textfile": dir.join("replication-lag.prom"), "maxLagSeconds": null, "timeoutSeconds": 20,
    });
    std::fs::write(dir.join("replication.json"), replication.to_string()).unwrap();
}

#[test]
fn replace_a_failed_replica_target() {
    let rb = Runbook::load_skipping(
        "replace-replica-target.md",
        &["zfs allow", "nixos-rebuild switch", "systemctl start"],
    );
    let f = Forge::new("rrt");
    write_data(&f.mountpoint, "v1");
    f.snapshot("autosnap_2026-11-30_09:00:00_hourly");
    // forge replicated to the old target (`nas`), parents first, as the
    // units do; then the old target dies.
    let services = f.pool.ds("services");
    for (source, copy) in [
        (services.clone(), f.nas.ds("backup/forge/services")),
        (f.ds.clone(), f.nas_copy()),
    ] {
        syncoid_over_ssh("nas", &sshd::known_hosts(), &source, &copy);
    }
    let old_sync_snapshots = || -> Vec<String> {
        zfs(&[
            "list",
            "-H",
            "-t",
            "snapshot",
            "-o",
            "name",
            "-r",
            &f.pool.name,
        ])
        .lines()
        .filter(|l| l.contains("@syncoid_nas_"))
        .map(str::to_owned)
        .collect()
    };
    assert_eq!(old_sync_snapshots().len(), 2, "one per dataset");
    // zfs-fuse calls a pool busy for a moment after a receive.
    let destroyed = (0..30).any(|_| {
        let gone = zfs_watchdog::run("zpool", &["destroy", "-f", &f.nas.name])
            .unwrap_or_else(zfs_watchdog::Hung::fail)
            .status
            .success();
        if !gone {
            std::thread::sleep(Duration::from_millis(300));
        }
        gone
    });
    assert!(destroyed, "the old target's pool could not be destroyed");
    // A newer local snapshot the old target never got.
    write_data(&f.mountpoint, "v2");
    f.snapshot("autosnap_2026-11-30_10:00:00_hourly");

    // nas-2: a pool reached over the same loopback sshd.
    let new_root = f.usb.ds("newnas/forge");
    let config = f.pool.scratch("etc-zpersist");
    write_config(&f, &config, "nas2", &new_root, &[&services, &f.ds]);
    let settings = format!(
        r#"POOL={pool}
SERVICE=sonarr
OLD_TARGET=nas
NEW_TARGET=nas2
NEW_HOST={host} NEW_PORT={port} NEW_USER={user}
NEW_ROOT={new_root}
SSH_KEY={key}
NEW_HOST_KEY_FILE={dir}/host_ed25519.pub
ZPERSIST_CONFIG={config}
"#,
        pool = f.pool.name,
        host = sshd::HOST,
        port = sshd::PORT,
        user = sshd::USER,
        key = sshd::client_key(),
        dir = sshd::DIR,
    );
    let out = run_runbook(&rb, &settings, None);

    // The fingerprint read on nas-2 is the one forge sees.
    let fingerprint = run_ok(
        "ssh-keygen",
        &["-lf", &format!("{}/host_ed25519.pub", sshd::DIR)],
    );
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap();
    assert_eq!(out.matches(fingerprint).count(), 2, "{out}");
    // Every dataset on the new target, with forge's newest data.
    assert_eq!(get(&new_root, "canmount"), "off");
    let copy = format!("{new_root}/services/sonarr");
    assert!(exists(&format!("{new_root}/services")));
    assert_eq!(get(&copy, "mounted"), "no", "received unmounted");
    let check = f.pool.scratch("check");
    zfs(&[
        "clone",
        "-o",
        &format!("mountpoint={check}"),
        &format!(
            "{copy}@{}",
            zpersist_e2e::syncoid::snapshots(&copy).last().unwrap()
        ),
        &f.usb.ds("check"),
    ]);
    assert_data(&check, "v2");
    // The clone goes with the pool (zfs-fuse may call it busy for a moment).
    assert!(
        out.contains("nas2"),
        "replication-lag names the target: {out}"
    );
    // No sync snapshot of the old target is left on forge; the new
    // target's are there, and the next run (the units') is incremental.
    assert_eq!(old_sync_snapshots(), Vec::<String>::new());
    assert!(zpersist_e2e::syncoid::snapshots(&f.ds)
        .iter()
        .any(|s| s.starts_with("syncoid_nas2_")));
    f.snapshot("autosnap_2026-11-30_11:00:00_hourly");
    assert_incremental(
        "nas2",
        config.join("known_hosts/nas2").as_str(),
        &f.ds,
        &copy,
    );
}

/// `(property, value)` of every property a dataset sets or inherits,
/// canmount aside (the move sets it on purpose).
fn effective_properties(ds: &str) -> Vec<(String, String)> {
    zfs(&["get", "-H", "-o", "property,value,source", "all", ds])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let set = f[2] == "local" || f[2] == "received" || f[2].starts_with("inherited");
            (set && f[0] != "canmount").then(|| (f[0].to_owned(), f[1].to_owned()))
        })
        .collect()
}

#[test]
fn move_a_service_to_another_pool() {
    let rb = Runbook::load_skipping(
        "move-service-pool.md",
        &["systemctl stop", "nixos-rebuild switch", "systemctl start"],
    );
    let f = Forge::new("mv");
    // A second service, on 16K records, beside sonarr.
    let radarr_mnt = f.pool.mnt().join("var/lib/radarr");
    let plan = |pool: &str| {
        json!({
            "version": 1, "pool": pool,
            "datasets": [
                { "name": format!("{pool}/services"), "mountpoint": "none", "canmount": "off",
                  "properties": { "atime": "off" } },
                { "name": format!("{pool}/services/sonarr"), "mountpoint": f.mountpoint,
                  "properties": { "quota": "100M", "com.example:tier": "gold" },
                  "owner": "daemon", "group": "daemon", "mode": "0700" },
                { "name": format!("{pool}/services/radarr"), "mountpoint": radarr_mnt,
                  "properties": { "recordsize": "16K" },
                  "owner": "bin", "group": "bin", "mode": "0750" },
            ]
        })
    };
    let old_plan = f.pool.write_plan("datasets-old.json", &plan(&f.pool.name));
    run_ok(
        binaries::fresh("ensure-datasets").as_str(),
        &["--plan", old_plan.as_str()],
    );
    write_data(&f.mountpoint, "v1");
    std::fs::write(radarr_mnt.join("radarr.db"), "radarr").unwrap();
    f.snapshot("autosnap_2026-11-30_09:00:00_hourly");
    zfs(&[
        "create",
        "-o",
        "canmount=off",
        &f.nas.ds("backup/forge/services"),
    ]);
    f.sync_nas();
    // The new pool, made like the old one.
    let new = f.pool.companion("ssd");
    let services = |pool: &str| format!("{pool}/services");
    let datasets = ["", "/sonarr", "/radarr"];
    let before: Vec<Vec<(String, String)>> = datasets
        .iter()
        .map(|d| effective_properties(&format!("{}{d}", services(&f.pool.name))))
        .collect();
    let snapshots_before = zpersist_e2e::syncoid::snapshots(&f.ds);
    let guid = |snapshot: &str| get(snapshot, "guid");
    let synced = snapshots_before
        .iter()
        .find(|s| s.starts_with("syncoid_nas_"))
        .unwrap()
        .clone();
    let synced_guid = guid(&format!("{}@{synced}", f.ds));

    let new_plan = f.pool.write_plan("datasets-new.json", &plan(&new.name));
    let config = f.pool.scratch("etc-zpersist");
    std::fs::create_dir_all(&config).unwrap();
    write_services_json(
        &config,
        &new.name,
        &format!("{}/services/sonarr", new.name),
        &f.mountpoint,
    );
    let settings = format!(
        r#"OLD_POOL={old}
NEW_POOL={new}
TREES="services"
SERVICES="sonarr radarr"
SERVICE=sonarr
ZPERSIST_CONFIG={config}
DATASETS_PLAN={new_plan}
"#,
        old = f.pool.name,
        new = new.name,
    );
    // The bulk copy while the services run; they write on; the rest.
    let last_copy = rb.block_with("zpersist-move-2");
    run_script(&rb, &rb.script_range(&settings, None, 0..last_copy));
    assert_eq!(
        get(&format!("{}/services/sonarr", new.name), "mounted"),
        "no",
        "the bulk copy is received unmounted"
    );
    std::fs::write(f.mountpoint.join("written-during-the-copy"), "late").unwrap();
    std::fs::remove_file(f.mountpoint.join("config.xml")).unwrap();
    let out = run_script(
        &rb,
        &rb.script_range(&settings, None, last_copy..rb.blocks.len()),
    );
    assert!(out.contains("every dataset and property arrived"), "{out}");
    assert!(
        !out.contains("create"),
        "ensure-datasets found everything there: {out}"
    );

    // Every dataset on the new pool, mounted where the old one was, with
    // every file written up to the stop, every property and snapshot.
    let new_sonarr = format!("{}/services/sonarr", new.name);
    let new_radarr = format!("{}/services/radarr", new.name);
    assert_eq!(get(&new_sonarr, "mounted"), "yes");
    assert_eq!(get(&new_sonarr, "mountpoint"), f.mountpoint.as_str());
    assert_eq!(get(&new_radarr, "mounted"), "yes");
    assert_eq!(get(&services(&new.name), "canmount"), "off");
    assert_eq!(get(&new_sonarr, "canmount"), "on");
    assert_eq!(
        std::fs::read_to_string(f.mountpoint.join("written-during-the-copy")).unwrap(),
        "late"
    );
    assert!(
        !f.mountpoint.join("config.xml").exists(),
        "a deletion arrives too"
    );
    assert_eq!(
        std::fs::read_to_string(f.mountpoint.join("db/sonarr.db")).unwrap(),
        "database v1"
    );
    assert_eq!(
        std::fs::read_link(f.mountpoint.join("current"))
            .unwrap()
            .as_os_str(),
        "db/sonarr.db"
    );
    assert_eq!(metadata(&f.mountpoint), (1, 1, 0o700));
    assert_eq!(metadata(&f.mountpoint.join(".hidden")).0, 1);
    assert_eq!(
        std::fs::read_to_string(radarr_mnt.join("radarr.db")).unwrap(),
        "radarr"
    );
    assert_eq!(metadata(&radarr_mnt), (2, 2, 0o750));
    for (d, props) in datasets.iter().zip(&before) {
        assert_eq!(
            &effective_properties(&format!("{}{d}", services(&new.name))),
            props,
            "properties of services{d}"
        );
    }
    assert_eq!(get(&new_radarr, "recordsize"), "16384");
    let after = zpersist_e2e::syncoid::snapshots(&new_sonarr);
    for s in &snapshots_before {
        assert!(after.contains(s), "{s} did not move: {after:?}");
    }
    assert!(
        !after.iter().any(|s| s.starts_with("zpersist-move")),
        "{after:?}"
    );
    assert_eq!(guid(&format!("{new_sonarr}@{synced}")), synced_guid);
    // The old tree is gone at the end.
    assert!(!exists(&services(&f.pool.name)));
    // Replication goes on from the new pool, incrementally.
    assert_incremental("nas", &sshd::known_hosts(), &new_sonarr, &f.nas_copy());
}

fn postgresql_restore_to_a_time(way: &str) {
    let rb = Runbook::load_skipping(
        "postgresql-restore.md",
        &["systemctl stop postgresql", "systemctl start postgresql"],
    );
    assert_eq!(
        rb.alternatives(),
        ["archive", "move"].map(String::from).into()
    );
    let pg = PgCluster::new(way);
    pg.sql("create table rows (n int primary key)");
    pg.commit_row(1);
    pg.pitr("pitr-base-backup", &[]);
    pg.commit_row(2);
    let target = pg.commit_row(3);
    // The mistake, after the target: rows 4 and 5, then a dropped table.
    pg.commit_row(4);
    pg.switch_and_wait_archived();
    pg.commit_row(5);
    pg.sql("drop table rows");
    pg.switch_and_wait_archived();

    let check_port = pg.port + 2;
    let settings = format!(
        r#"PITR_CONTRACT={contract}
PGDATA={data}
RESTORE_DIR={dir}/pg/restore
TARGET={target}
CHECK_PORT={check_port} CHECK_SOCKET={dir}
CHECK_SQL='select string_agg(n::text, '"'"','"'"' order by n) as restored_rows from rows'
REPO={dir}/repo
BYHAND_DIR={dir}/pg/restore-byhand
"#,
        contract = pg.contract,
        data = pg.data,
        dir = pg.dir,
    );
    let stop = rb
        .blocks
        .iter()
        .position(|b| b.code.contains("systemctl stop postgresql"))
        .unwrap();
    let start = rb
        .blocks
        .iter()
        .position(|b| b.code.contains("systemctl start postgresql"))
        .unwrap();
    // Sections 1-2: restore into a new directory and look at it.
    let out = run_script(&rb, &rb.script_range(&settings, Some(way), 0..stop));
    assert!(
        out.contains("restored_rows") && out.contains(" 1,2,3\n"),
        "{out}"
    );
    // Section 3, with the cluster stopped as `systemctl stop` would.
    pg.stop();
    run_script(&rb, &rb.script_range(&settings, Some(way), stop..start));
    pg.start();
    assert_eq!(
        pg.sql("select string_agg(n::text, ',' order by n) from rows"),
        "1,2,3"
    );
    assert!(
        pg.dir.join("pg/15.before-restore/PG_VERSION").exists(),
        "the old cluster is kept"
    );
    // The cluster in place archives again.
    assert_eq!(pg.sql("show archive_mode"), "on");
    let failed_before = pg.sql("select failed_count from pg_stat_archiver");
    pg.commit_row(6);
    pg.switch_and_wait_archived();
    assert_eq!(
        pg.sql("select failed_count from pg_stat_archiver"),
        failed_before
    );
    // The way by hand (and the rest).
    let out = run_script(
        &rb,
        &rb.script_range(&settings, Some(way), start..rb.blocks.len()),
    );
    assert!(out.contains(" 1,2,3\n"), "{out}");
    assert!(out.contains("recovery stopping"), "{out}");
}

#[test]
fn postgresql_restore_to_a_time_moving_the_checked_copy() {
    postgresql_restore_to_a_time("move");
}

#[test]
fn postgresql_restore_to_a_time_straight_into_place() {
    postgresql_restore_to_a_time("archive");
}

/// A runbook's "set these" block as literal values.
fn settings_of(name: &str) -> std::collections::BTreeMap<String, String> {
    runbook::literal_values(&Runbook::load(name).settings().code)
}

fn s(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The runbooks' "set these" blocks hold forge's real values, as the
/// module evaluates them from examples/hosts/forge/default.nix: a renamed
/// option default, target layout or unit breaks this, not only the reader.
#[test]
fn the_runbooks_settings_are_forges_values() {
    let forge = zpersist_e2e::nix::Eval::host("forge");
    let plan = forge.attr("config.zpersist.internal.preseedPlans.sonarr");
    let pool = s(&forge.attr("config.zpersist.pool"));
    let nas = forge.attr("config.zpersist.replication.targets.nas");
    let source = |kind: &str, target: Option<&str>| {
        plan["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| {
                x.get(kind)
                    .is_some_and(|k| target.is_none_or(|t| k["target"] == t))
            })
            .unwrap()[kind]
            .clone()
    };
    let nas_source = source("replica", Some("nas"));
    let restic = source("restic", None);

    let set = settings_of("restore-service.md");
    let expected = [
        ("SERVICE", s(&plan["service"])),
        ("DATASET", s(&plan["dataset"])),
        ("MOUNTPOINT", s(&plan["mountpoint"])),
        ("OWNER", s(&plan["owner"])),
        ("GROUP", s(&plan["group"])),
        (
            "SIBLING",
            format!("{}.zpersist-preseed", s(&plan["dataset"])),
        ),
        (
            "NAS",
            format!("{}@{}", s(&nas_source["user"]), s(&nas_source["host"])),
        ),
        ("NAS_PORT", s(&nas_source["port"])),
        ("NAS_KEY", s(&nas_source["sshKey"])),
        ("NAS_KNOWN_HOSTS", s(&nas_source["knownHosts"])),
        ("NAS_DATASET", s(&nas_source["dataset"])),
        ("USB_DATASET", s(&source("replica", Some("usb"))["dataset"])),
        ("RESTIC_REPOSITORY", s(&restic["repository"])),
        ("RESTIC_PASSWORD_FILE", s(&restic["passwordFile"])),
        ("RESTIC_ENV_FILE", s(&restic["environmentFile"])),
        ("BACKUP_HOST", s(&restic["host"])),
        ("ZPERSIST_CONFIG", "/etc/zpersist".into()),
    ];
    for (name, value) in &expected {
        assert_eq!(
            set.get(*name),
            Some(value),
            "restore-service.md sets {name}"
        );
    }
    // `zpersist restore SERVICE` reads the plan the preseed unit runs, which
    // the module links as ZPERSIST_CONFIG/preseed/SERVICE.json.
    let linked = forge.clone().read_write().attr(&format!(
        r#"config.environment.etc."zpersist/preseed/{}.json".source"#,
        s(&plan["service"])
    ));
    assert!(
        s(&linked).ends_with(&format!("-zpersist-preseed-{}.json", s(&plan["service"]))),
        "{linked}"
    );

    let set = settings_of("replace-replica-target.md");
    let text = std::fs::read_to_string(runbook::dir().join("replace-replica-target.md")).unwrap();
    assert_eq!(set["POOL"], pool);
    assert_eq!(set["OLD_TARGET"], "nas");
    assert_eq!(set["NEW_USER"], s(&nas["user"]));
    assert_eq!(set["NEW_ROOT"], s(&nas["dataset"]));
    assert_eq!(set["SSH_KEY"], s(&nas["sshKey"]));
    assert_eq!(set["ZPERSIST_CONFIG"], "/etc/zpersist");
    // The permissions to grant: the target's allow list, which has send
    // (restoring from the target reads it back).
    let allow: Vec<String> = nas["allow"].as_array().unwrap().iter().map(s).collect();
    assert!(allow.contains(&"send".to_string()), "{allow:?}");
    assert!(
        text.contains(&format!(
            "zfs allow -u \"$NEW_USER\" {} \"$NEW_ROOT\"",
            allow.join(",")
        )),
        "the zfs allow line of replace-replica-target.md is the target's allow list: {allow:?}"
    );
    let replicate_to = forge.attr("config.zpersist.datasets.services.replicateTo");
    let was: Vec<String> = replicate_to
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("\"{}\"", s(t)))
        .collect();
    assert!(
        text.contains(&format!("# was [ {} ]", was.join(" "))),
        "replicateTo as forge declares it: {was:?}"
    );

    let set = settings_of("move-service-pool.md");
    let text = std::fs::read_to_string(runbook::dir().join("move-service-pool.md")).unwrap();
    assert_eq!(set["OLD_POOL"], pool);
    let services_json: serde_json::Value = serde_json::from_str(&s(
        &forge.attr(r#"config.environment.etc."zpersist/services.json".text"#)
    ))
    .unwrap();
    let names: Vec<&String> = services_json["services"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let listed: std::collections::BTreeSet<&str> = set["SERVICES"].split(' ').collect();
    assert_eq!(
        listed,
        names.iter().map(|n| n.as_str()).collect(),
        "SERVICES lists forge's services"
    );
    // Every service's dataset lies in one of the trees the runbook moves
    // on forge (its comment names them).
    for service in services_json["services"].as_object().unwrap().values() {
        let dataset = s(&service["dataset"]);
        assert!(
            ["services", "media"]
                .iter()
                .any(|t| dataset.starts_with(&format!("{pool}/{t}/"))),
            "{dataset}"
        );
    }
    assert!(text.contains("\"services media\" on forge"));
    let set = settings_of("postgresql-restore.md");
    assert_eq!(
        set["PGDATA"],
        s(&forge.attr("config.services.postgresql.dataDir"))
    );
    assert_eq!(
        set["REPO"],
        s(&forge.attr("config.zpersist.postgresql.pitr.repository.local.mountpoint"))
    );
    assert_eq!(set["PITR_CONTRACT"], "/etc/zpersist/pitr.json");

    let extra_pools = forge.attr("config.boot.zfs.extraPools");
    assert_eq!(extra_pools, json!([pool]));
    assert!(text.contains(&format!("# was [ \"{pool}\" ]")));
    assert!(text.contains(&format!("# was \"{pool}\"")));
}
