//! More of zpersist's promises on real OpenZFS (2.4, the kernel module, in
//! the Debian guest of zpersist_e2e::guest, restored once for this test
//! binary), with the same assertions as their zfs-fuse twins, on small
//! data and few datasets (a zfs call costs about 0.5 s under TCG):
//! migrate-to-dataset (crates/migrate-to-dataset/tests/real_zfs.rs),
//! replication-lag to a local target pool
//! (crates/replication-lag/tests/real_local_replication.rs and
//! real_replication.rs), zpersist-drill (crates/zpersist-drill/tests/
//! real_drill.rs). No zfs-fuse stand-in is used: real syncoid with its
//! resumable receives, real xattrs, lz4.
//!
//! Where qemu cannot start the guest, every test here returns after one
//! loud line saying why (zpersist_e2e::guest::Guest::shared).

use serde_json::{json, Value};
use zpersist_e2e::assertions::{
    drill_left_the_live_dataset_untouched, drill_passed_for_every_source,
    migration_created_once_and_moved_the_mountpoint,
};
use zpersist_e2e::guest::{Guest, GuestPool};
use zpersist_e2e::syncoid::measurement;

fn guest() -> Option<&'static Guest> {
    Guest::shared()
}

// ---------------------------------------------------------------- migrate

/// A service's state directory after months of use, in the guest: a
/// SQLite database, names with spaces and non-ASCII, hidden files and a
/// hidden directory, relative/absolute/dangling symlinks, a hardlink pair,
/// a non-root owner with unusual modes, a setgid directory and user
/// extended attributes on a file and a directory.
fn service_tree(guest: &Guest, root: &str) {
    guest.run_ok(&[
        "sh",
        "-ec",
        r#"R="$1"
mkdir -p "$R/Séries TV/Saison 1" "$R/logs" "$R/Backups" "$R/.config/sonarr" "$R/shared"
sqlite3 "$R/sonarr.db" "create table series(id integer primary key, title text not null); with recursive n(i) as (select 1 union all select i + 1 from n where i < 500) insert into series(title) select 'Série n°' || i from n;"
printf '<episode>Pilote</episode>\n' >"$R/Séries TV/Saison 1/épisode 1.nfo"
head -c 70000 /dev/urandom >"$R/Séries TV/poster large.jpg"
printf '<Config><Port>8989</Port></Config>\n' >"$R/config.xml"
printf '0123456789abcdef\n' >"$R/.api-key"
printf 'theme=dark\n' >"$R/.config/sonarr/settings.ini"
seq 1 2000 >"$R/logs/sonarr.txt"
seq 1 100 >"$R/Backups/nightly.bak"
ln "$R/Backups/nightly.bak" "$R/Backups/latest.bak"
ln -s logs/sonarr.txt "$R/current log"
ln -s /etc/hostname "$R/hostname-link"
ln -s '../nowhere/at all' "$R/.dangling"
chown -hR 1234:1234 "$R"
chmod 0750 "$R"
chmod 0600 "$R/.api-key"
chown 1234:1235 "$R/shared"
chmod 2770 "$R/shared"
printf 'shared\n' >"$R/shared/notes.txt"
chown 0:1235 "$R/shared/notes.txt"
setfattr -n user.sonarr.origin -v import "$R/config.xml"
setfattr -n user.sonarr.kind -v library "$R/Séries TV"
"#,
        "sh",
        root,
    ]);
}

/// Everything a user relies on, by GNU find, sha256sum and getfattr in the
/// guest: path, type, mode, owner, link target, link count; size, mtime and
/// content hash of each file; the user xattrs of the two paths that carry
/// them.
fn listing(guest: &Guest, root: &str) -> String {
    guest.run_ok(&[
        "sh",
        "-ec",
        r#"cd "$1"
find . -printf '%P\t%y\t%m\t%U\t%G\t%l\t%n\n' | LC_ALL=C sort
find . -type f -printf '%P\t%s\t%Ts\n' | LC_ALL=C sort
find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2
getfattr -d -m '^user\.' config.xml 'Séries TV'
"#,
        "sh",
        root,
    ])
}

fn inode(guest: &Guest, path: &str) -> String {
    guest.run_ok(&["stat", "-c", "%i", path])
}

fn sqlite_rows(guest: &Guest, db: &str) -> String {
    guest.run_ok(&[
        "sqlite3",
        db,
        "pragma integrity_check; select count(*), max(title) from series;",
    ])
}

fn exists_path(guest: &Guest, path: &str) -> bool {
    guest.run(&["test", "-e", path]).success()
}

struct Migration {
    pool: GuestPool,
    dataset: String,
    path: String,
    expected: String,
}

impl Migration {
    fn new(guest: &'static Guest, tag: &str, name: &str) -> Migration {
        let pool = GuestPool::new(guest, tag);
        let dataset = pool.ds(&format!("services/{name}"));
        let path = pool.scratch(&format!("var-lib/{name}"));
        service_tree(guest, &path);
        let expected = listing(guest, &path);
        assert!(
            expected.contains("user.sonarr.origin=\"import\""),
            "{expected}"
        );
        Migration {
            pool,
            dataset,
            path,
            expected,
        }
    }

    fn aside(&self) -> String {
        format!("{}.zpersist-old", self.path)
    }

    fn journal(&self) -> String {
        format!("{}.zpersist-migration.json", self.path)
    }

    /// The dataset is mounted at the real path (OpenZFS's own mount, type
    /// zfs) with the original data, xattrs included; the original is kept
    /// aside, untouched.
    fn assert_migrated(&self, guest: &Guest) {
        assert_eq!(guest.get(&self.dataset, "mountpoint"), self.path);
        assert_eq!(guest.get(&self.dataset, "mounted"), "yes");
        assert_eq!(guest.get(&self.dataset, "recordsize"), "16384");
        assert_eq!(guest.get(&self.dataset, "compression"), "lz4");
        assert_eq!(
            listing(guest, &self.path),
            self.expected,
            "the data in the dataset"
        );
        assert_eq!(
            listing(guest, &self.aside()),
            self.expected,
            "the original kept aside"
        );
        assert_eq!(
            inode(guest, &format!("{}/Backups/nightly.bak", self.path)),
            inode(guest, &format!("{}/Backups/latest.bak", self.path)),
            "the hardlink pair is one inode"
        );
        assert!(sqlite_rows(guest, &format!("{}/sonarr.db", self.path)).starts_with("ok\n500|"));
        let mounted_on = guest.run_ok(&["findmnt", "-n", "-o", "FSTYPE,SOURCE", &self.path]);
        assert_eq!(
            mounted_on.split_whitespace().collect::<Vec<_>>(),
            ["zfs", self.dataset.as_str()],
            "the path is the dataset's mount"
        );
    }
}

#[test]
fn migrate_moves_a_service_tree_with_xattrs_into_its_dataset_and_keeps_the_original_until_cleanup()
{
    let Some(guest) = guest() else { return };
    let m = Migration::new(guest, "mig", "sonarr");
    let services = json!({
        "version": 1,
        "pool": m.pool.name,
        "services": {
            "sonarr": {
                "dataset": m.dataset,
                "mountpoint": m.path,
                "units": ["sonarr.service"],
                "user": null, "group": null, "mode": "0750",
                "properties": { "recordsize": "16K", "compression": "lz4" }
            }
        }
    });
    let file = m.pool.write_plan("services.json", &services);
    let bin = guest.binary("migrate-to-dataset");
    let run = guest.run_recorded(
        &bin,
        &["sonarr", "--services", &file, "--progress-every", "0.1"],
        &[],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    m.assert_migrated(guest);
    for step in [
        "create:",
        "copy:",
        "verify:",
        "move-aside:",
        "mount:",
        "verify-mounted:",
        "done:",
    ] {
        assert!(
            run.stdout.contains(step),
            "no `{step}` in the report:\n{}",
            run.stdout
        );
    }
    // The mutations are exactly one create (at the temporary mountpoint,
    // with the declared properties) and one mountpoint change.
    migration_created_once_and_moved_the_mountpoint(
        &run,
        &m.dataset,
        &m.path,
        &["-o compression=lz4", "-o recordsize=16K"],
    );
    // The xattrs are in the dataset itself (OpenZFS has them; zfs-fuse
    // makes the twin refuse instead).
    assert_eq!(
        guest.run_ok(&[
            "getfattr",
            "--only-values",
            "-n",
            "user.sonarr.origin",
            &format!("{}/config.xml", m.path)
        ]),
        "import"
    );
    assert_eq!(
        guest.run_ok(&["stat", "-c", "%u %g %a", &m.path]).trim(),
        "1234 1234 750"
    );
    assert_eq!(
        guest
            .run_ok(&["stat", "-c", "%g %a", &format!("{}/shared", m.path)])
            .trim(),
        "1235 2770"
    );
    assert!(!exists_path(guest, &format!("{}.zpersist-new", m.path)));

    // Running it again is a no-op.
    let again = guest.run_recorded(&bin, &["sonarr", "--services", &file], &[]);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(
        again.stdout.contains("already migrated"),
        "{}",
        again.stdout
    );
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);

    // The service writes; a dry cleanup keeps the original; cleanup
    // re-verifies the kept original against what was verified, then
    // removes it.
    guest.run_ok(&[
        "sqlite3",
        &format!("{}/sonarr.db", m.path),
        "insert into series(title) values ('new');",
    ]);
    let dry = guest.run_recorded(
        &bin,
        &["sonarr", "--services", &file, "--cleanup", "--dry-run"],
        &[],
    );
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(exists_path(guest, &m.aside()));
    let cleanup = guest.run_recorded(&bin, &["sonarr", "--services", &file, "--cleanup"], &[]);
    assert_eq!(cleanup.code, 0, "{cleanup:#?}");
    assert!(
        cleanup.stdout.contains("changed in the dataset"),
        "{}",
        cleanup.stdout
    );
    assert!(!exists_path(guest, &m.aside()));
    assert!(!exists_path(guest, &m.journal()));
    assert!(cleanup.mutating_calls().is_empty());
    assert!(sqlite_rows(guest, &format!("{}/sonarr.db", m.path)).starts_with("ok\n501|"));
    let after = guest.run_recorded(&bin, &["sonarr", "--services", &file], &[]);
    assert_eq!(after.code, 0, "{after:#?}");
    assert!(
        after.stdout.contains("already migrated"),
        "{}",
        after.stdout
    );
}

/// Aborted at two step boundaries (after the copy, before the journal
/// records it; and once the move aside is journaled: the real path is then
/// empty and not yet the dataset's), then run again without the failpoint:
/// the rerun completes with verified, identical data and the original is
/// never lost.
#[test]
fn migrate_crashed_at_a_step_boundary_resumes_to_a_verified_migration() {
    let Some(guest) = guest() else { return };
    let bin = guest.binary("migrate-to-dataset");
    for (i, point) in ["after:copy", "journaled:move-aside"].iter().enumerate() {
        let m = Migration::new(guest, &format!("migc{i}"), &format!("s{i}"));
        let args = [
            "--dataset",
            &m.dataset,
            "--path",
            &m.path,
            "-o",
            "recordsize=16K",
            "-o",
            "compression=lz4",
        ];
        let crashed = guest.run_recorded(&bin, &args, &[("ZPERSIST_MIGRATE_FAILPOINT", point)]);
        assert_ne!(crashed.code, 0, "{point}: {crashed:#?}");
        assert!(
            crashed.stderr.contains(&format!("failpoint {point}")),
            "{point}: {crashed:#?}"
        );
        // Whatever the crash left, the original data is whole somewhere.
        let original = if exists_path(guest, &m.aside()) {
            m.aside()
        } else {
            m.path.clone()
        };
        assert_eq!(
            listing(guest, &original),
            m.expected,
            "{point}: original after the crash"
        );

        let rerun = guest.run_recorded(&bin, &args, &[]);
        assert_eq!(rerun.code, 0, "{point}: {rerun:#?}");
        assert!(
            rerun.stdout.contains("resuming") || rerun.stdout.contains("already migrated"),
            "{point}: {}",
            rerun.stdout
        );
        m.assert_migrated(guest);
        assert!(
            rerun.calls_named("create").is_empty(),
            "{point}: the dataset was created once: {:?}",
            rerun.zfs_calls
        );
    }
}

// ------------------------------------------------------------ replication

/// `replication-lag --config CONFIG --json EXTRA...` in the guest, under
/// the recording zfs: its exit code, its measurements, its stderr, and
/// every zfs call it made (none of which may change anything).
fn lag(
    guest: &Guest,
    pool: &GuestPool,
    config: &Value,
    extra: &[&str],
) -> (i32, Vec<Value>, String) {
    let path = pool.write_plan("replication.json", config);
    let mut args = vec!["--config", path.as_str(), "--json"];
    args.extend_from_slice(extra);
    let run = guest.run_recorded(&guest.binary("replication-lag"), &args, &[]);
    assert!(
        run.mutating_calls().is_empty(),
        "replication-lag only reads: {:?}",
        run.zfs_calls
    );
    let all: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("replication-lag printed no JSON ({e}): {run:#?}"));
    (run.code, all.as_array().unwrap().clone(), run.stderr)
}

fn snapshots(guest: &Guest, dataset: &str) -> Vec<String> {
    guest.snapshots(dataset)
}

/// Lag by guid into a local target pool (a real syncoid run, resumable
/// receives on); a stale partial receive on the target (an interrupted
/// incremental, `receive_resume_token` set) neither blocks nor hides the
/// measurement; a target that lost the base is a failure, not lag 0.
#[test]
fn replication_lag_to_a_local_pool_by_guid_through_a_stale_partial_receive_and_a_lost_base() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "lag");
    let usb = GuestPool::new(guest, "lagusb");
    let source = pool.ds("data");
    let root = usb.ds("backup");
    let target = usb.ds("backup/data");
    guest.zfs(&["create", &source]);
    guest.zfs(&["create", &root]);
    guest.write(&format!("{}/data/config.xml", pool.mnt()), b"<sonarr/>");
    let synced = guest.run(&[
        "syncoid",
        "--identifier=usb",
        "--no-privilege-elevation",
        &source,
        &target,
    ]);
    assert!(synced.success(), "{synced:#?}");
    let base = snapshots(guest, &target)
        .into_iter()
        .find(|s| s.starts_with("syncoid_usb_"))
        .unwrap_or_else(|| panic!("syncoid sent its sync snapshot: {synced:#?}"));
    assert_eq!(
        guest.get(&format!("{target}@{base}"), "guid"),
        guest.get(&format!("{source}@{base}"), "guid")
    );
    let textfile = pool.scratch("lag.prom");
    let config = json!({
        "version": 1, "host": "forge", "textfile": textfile, "maxLagSeconds": null,
        "targets": { "usb": { "host": null, "dataset": root, "identifier": "usb" } },
        "datasets": [ { "source": source, "target": "usb", "targetDataset": target } ]
    });

    // Everything sent: lag 0, read from the local pool.
    let (code, all, stderr) = lag(guest, &pool, &config, &[]);
    assert_eq!(code, 0, "{all:?} {stderr}");
    let m = measurement(&all, &source, "usb");
    assert_eq!(m["lagSeconds"], 0, "{m}");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");
    let text = guest.run_ok(&["cat", &textfile]);
    assert!(
        text.contains(&format!(
            "zpersist_replication_lag_check_success{{host=\"forge\",dataset=\"{source}\",target=\"usb\"}} 1\n"
        )),
        "{text}"
    );

    // A newer local snapshot whose incremental was cut mid-stream: the
    // target keeps a partial receive with a resume token. The lag is still
    // measured against the base, by guid, and is above --max-lag.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    guest.sh_ok(&format!(
        "head -c 4194304 /dev/urandom >{}/data/noise.bin && sync",
        pool.mnt()
    ));
    guest.zfs(&["snapshot", &format!("{source}@autosnap_missed")]);
    guest.sh_ok(&format!(
        "zfs send -i {source}@{base} {source}@autosnap_missed | head -c 1048576 | zfs receive -s -u {target}; true"
    ));
    let token = guest.get(&target, "receive_resume_token");
    assert!(
        token != "-" && token.len() > 20,
        "a partial receive: {token:?}"
    );
    let (code, all, stderr) = lag(guest, &pool, &config, &["--max-lag", "1"]);
    let m = measurement(&all, &source, "usb");
    assert_eq!(m["error"], Value::Null, "the target could be read: {m}");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");
    assert_eq!(m["newestLocal"]["name"], "autosnap_missed", "{m}");
    assert!(m["lagSeconds"].as_i64().unwrap() >= 2, "{m}");
    assert_eq!(
        code, 1,
        "a lag of 2 s or more is above --max-lag 1: {stderr}"
    );
    assert!(
        stderr.contains(&format!("error: {source} is ")) && stderr.contains("behind on usb"),
        "{stderr}"
    );

    // The target lost the base: the partial receive abandoned, a snapshot
    // made there, the one it shared with the source destroyed. No lag can
    // be measured, and that is a failure, not lag 0.
    guest.zfs(&["receive", "-A", &target]);
    guest.zfs(&["snapshot", &format!("{target}@made_there")]);
    guest.zfs(&["destroy", &format!("{target}@{base}")]);
    let (code, all, stderr) = lag(guest, &pool, &config, &[]);
    let m = measurement(&all, &source, "usb");
    assert_eq!(m["lagSeconds"], Value::Null, "{m}");
    assert_eq!(m["newestOnTarget"], Value::Null, "{m}");
    assert_eq!(code, 1, "no common snapshot is a failure: {stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {source} -> usb: {target} on this host holds 1 snapshot but none of this host's snapshots of {source} (no common guid)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("help: "), "{stderr}");
    let text = guest.run_ok(&["cat", &textfile]);
    assert!(
        !text.contains("zpersist_replication_lag_seconds{"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "zpersist_replication_target_has_snapshots{{host=\"forge\",dataset=\"{source}\",target=\"usb\"}} 0\n"
        )),
        "{text}"
    );
    drop(usb);
}

// ------------------------------------------------------------------ drill

const SNAP: &str = "autosnap_2026-11-01_00:00:00_hourly";

/// A drill from a local replica pool and from the dataset's own snapshots:
/// both restore into the scratch dataset and pass their checks, RPO and
/// RTO land in the result file and the textfile, the live dataset is never
/// touched and nothing of the drill is left.
#[test]
fn drill_from_a_local_replica_and_local_snapshots_leaves_the_live_dataset_untouched() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "dri");
    let replica = GuestPool::new(guest, "drirep");
    let ds = pool.ds("services/sonarr");
    let mountpoint = format!("{}/var/lib/sonarr", pool.mnt());
    guest.zfs(&[
        "create",
        "-p",
        "-o",
        &format!("mountpoint={mountpoint}"),
        &ds,
    ]);
    guest.run_ok(&[
        "sqlite3",
        &format!("{mountpoint}/sonarr.db"),
        "CREATE TABLE series(id INTEGER PRIMARY KEY, title TEXT, blob BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
         INSERT INTO series SELECT i, 'series ' || i, randomblob(200) FROM n;
         CREATE INDEX by_title ON series(title);",
    ]);
    guest.write(&format!("{mountpoint}/config.xml"), b"<Config/>");
    guest.zfs(&["snapshot", &format!("{ds}@{SNAP}")]);
    let copy = replica.ds("backup/forge/services/sonarr");
    guest.zfs(&["create", "-p", &replica.ds("backup/forge/services")]);
    guest.sh_ok(&format!("zfs send {ds}@{SNAP} | zfs receive -u {copy}"));
    let state = pool.scratch("state");
    let textfile = pool.scratch("textfile/zpersist-drill-sonarr.prom");
    let plan = json!({
        "version": 1, "service": "sonarr", "profile": "sonarr",
        "preseed": {
            "version": 1, "service": "sonarr", "dataset": ds,
            "mountpoint": mountpoint,
            "sources": [
                { "replica": { "target": "usb", "host": null, "dataset": copy } },
                { "local": {} },
            ],
            "stateDir": pool.scratch("preseed-state"), "timeoutSeconds": 120,
        },
        "sqlite": ["sonarr.db"],
        "check": ["test", "-s", "sonarr.db"],
        "checkTimeoutSeconds": 60,
        "stateDir": state,
        "textfile": textfile,
        "scratchRoot": pool.scratch("run-drill"),
    });
    let path = pool.write_plan("drill.json", &plan);
    let run = guest.run_logged(&guest.binary("zpersist-drill"), &["--plan", &path], &[]);
    drill_left_the_live_dataset_untouched(&ds, &run);
    assert_eq!(run.code, 0, "{run:#?}");
    let result: Value =
        serde_json::from_str(&guest.run_ok(&["cat", &format!("{state}/sonarr.json")])).unwrap();
    drill_passed_for_every_source(&result, &["replica:usb", "local"]);
    let text = guest.run_ok(&["cat", &textfile]);
    for series in [
        "zpersist_drill_success{service=\"sonarr\",source=\"replica:usb\"} 1",
        "zpersist_drill_success{service=\"sonarr\",source=\"local\"} 1",
        "zpersist_drill_rpo_seconds{service=\"sonarr\",source=\"local\"}",
        "zpersist_drill_rto_seconds{service=\"sonarr\",source=\"replica:usb\"}",
        "zpersist_drill_last_run_timestamp_seconds{service=\"sonarr\",source=\"local\"}",
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }
    // The replica's copy was received below the scratch dataset.
    assert!(
        !run.calls_named("receive").is_empty(),
        "{:?}",
        run.zfs_calls
    );

    // The live dataset as it was: mounted where it was, its data there,
    // its snapshot kept, nothing of the drill left in the pool.
    assert_eq!(guest.get(&ds, "mounted"), "yes");
    assert_eq!(guest.get(&ds, "mountpoint"), mountpoint);
    assert_eq!(
        guest.run_ok(&["cat", &format!("{mountpoint}/config.xml")]),
        "<Config/>"
    );
    let left: Vec<String> = guest
        .zfs(&["list", "-H", "-r", "-t", "all", "-o", "name", &pool.name])
        .lines()
        .filter(|n| n.contains(".zpersist-drill"))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "the drill left {left:?}");
    assert!(guest.exists(&format!("{ds}@{SNAP}")));
    drop(replica);
}

// --------------------------------------------------------------- runbooks

/// docs/runbooks/restore-service.md, from the replica on a local pool and
/// from a local snapshot, run in the guest as a person would type it on
/// OpenZFS: no zfs wrapper retrying busy datasets, no `--no-resume` syncoid
/// (tests/e2e/tests/runbooks.rs's twin needs both for zfs-fuse). The
/// `systemctl stop`/`start` blocks are skipped as there: no sonarr unit.
#[test]
fn restore_service_runbook_from_a_local_pool_and_a_local_snapshot_without_stand_ins() {
    let Some(guest) = guest() else { return };
    for source in ["pool", "snapshot"] {
        restore_service_from(guest, source);
    }
}

fn restore_service_from(guest: &'static Guest, source: &str) {
    let rb = zpersist_e2e::runbook::Runbook::load_skipping(
        "restore-service.md",
        &["systemctl stop", "systemctl start"],
    );
    let tag = format!("rb{}", &source[..2]);
    let pool = GuestPool::new(guest, &tag);
    let usb = GuestPool::new(guest, &format!("{tag}usb"));
    let ds = pool.ds("services/sonarr");
    let mountpoint = format!("{}/var/lib/sonarr/.config/NzbDrone", pool.mnt());
    let datasets_plan = pool.write_plan(
        "datasets.json",
        &json!({
            "version": 1, "pool": pool.name,
            "datasets": [
                { "name": pool.ds("services"), "mountpoint": "none", "canmount": "off",
                  "properties": { "atime": "off" } },
                { "name": ds, "mountpoint": mountpoint,
                  "properties": { "quota": "100M", "com.example:tier": "gold" },
                  "owner": "daemon", "group": "daemon", "mode": "0700" },
            ]
        }),
    );
    guest.run_ok(&[&guest.binary("ensure-datasets"), "--plan", &datasets_plan]);
    guest.zfs(&[
        "create",
        "-p",
        "-o",
        "canmount=off",
        &usb.ds("backup/forge"),
    ]);
    guest.zfs(&[
        "create",
        "-o",
        "canmount=off",
        &usb.ds("backup/forge/services"),
    ]);
    let usb_copy = usb.ds("backup/forge/services/sonarr");
    // Sonarr's data: nested files, a hidden file, a symlink.
    guest.run_ok(&[
        "sh",
        "-ec",
        r#"mkdir -p "$1/db/wal"
printf 'database v1' >"$1/db/sonarr.db"
printf '<v>v1</v>' >"$1/config.xml"
printf dot >"$1/.hidden"
ln -s db/sonarr.db "$1/current"
chown -R -h daemon:daemon "$1""#,
        "sh",
        &mountpoint,
    ]);
    guest.zfs(&[
        "snapshot",
        &format!("{ds}@autosnap_2026-11-30_09:00:00_hourly"),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let synced = guest.run(&[
        "syncoid",
        "--identifier=usb",
        "--no-privilege-elevation",
        &ds,
        &usb_copy,
    ]);
    assert!(synced.success(), "{synced:#?}");
    // Wiped: the dataset is empty and still mounted.
    guest.run_ok(&["find", &mountpoint, "-mindepth", "1", "-delete"]);

    let preseed_plan = pool.write_plan(
        "preseed.json",
        &json!({
            "version": 1, "service": "sonarr", "dataset": ds, "mountpoint": mountpoint,
            "owner": "daemon", "group": "daemon", "mode": "0700",
            "properties": { "quota": "100M", "com.example:tier": "gold" },
            "sources": [
                { "replica": { "target": "usb", "host": null, "dataset": usb_copy } },
                { "local": {} },
            ],
            "stateDir": pool.scratch("preseed-state"), "timeoutSeconds": 120,
        }),
    );
    let config = pool.scratch("etc-zpersist");
    guest.write(
        &format!("{config}/services.json"),
        json!({ "version": 1, "pool": pool.name, "services": { "sonarr": {
            "dataset": ds, "mountpoint": mountpoint, "units": ["sonarr.service"],
            "user": "daemon", "group": "daemon", "mode": "0700" } } })
        .to_string()
        .as_bytes(),
    );
    // Where `zpersist restore` finds the plan, as the module links it.
    guest.run_ok(&["mkdir", "-p", &format!("{config}/preseed")]);
    guest.run_ok(&[
        "cp",
        &preseed_plan,
        &format!("{config}/preseed/sonarr.json"),
    ]);
    let sibling = format!("{ds}.zpersist-preseed");
    // The ssh and restic settings are not used by these two alternatives;
    // the runbook's settings block names them, so they are set.
    let settings = format!(
        r#"SERVICE=sonarr
DATASET={ds}
MOUNTPOINT={mountpoint}
OWNER=daemon GROUP=daemon
SIBLING={sibling}
RESTORE_MNT={restore_mnt}
DATASETS_PLAN={datasets_plan}
NAS=unused@unused NAS_PORT=22
NAS_KEY=/nonexistent NAS_KNOWN_HOSTS=/nonexistent
NAS_DATASET=unused/unused
USB_DATASET={usb_copy}
export RESTIC_REPOSITORY=/nonexistent RESTIC_PASSWORD_FILE=/nonexistent
RESTIC_ENV_FILE=/nonexistent
BACKUP_HOST=forge
ZPERSIST_CONFIG={config}
"#,
        restore_mnt = pool.scratch("restore"),
    );
    let script = rb.script(&settings, Some(source));
    let bin = guest.binary("ensure-datasets");
    let bin_dir = bin.rsplit_once('/').unwrap().0;
    let path =
        format!("PATH={bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let ran = guest.run_timeout(
        &["env", &path, "bash", "-euo", "pipefail", "-c", &script],
        std::time::Duration::from_secs(300),
    );
    assert!(
        ran.success(),
        "{}: the runbook failed; the last ### line names the block:\n{ran:#?}",
        source
    );
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert!(out.contains("zfs receive -u"), "the dry run: {out}");

    let read = |rel: &str| guest.run_ok(&["cat", &format!("{mountpoint}/{rel}")]);
    assert_eq!(read("db/sonarr.db"), "database v1");
    assert_eq!(read("config.xml"), "<v>v1</v>");
    assert_eq!(read(".hidden"), "dot");
    assert_eq!(
        guest
            .run_ok(&["readlink", &format!("{mountpoint}/current")])
            .trim(),
        "db/sonarr.db"
    );
    assert!(guest
        .run(&["test", "-d", &format!("{mountpoint}/db/wal")])
        .success());
    assert_eq!(guest.get(&ds, "mounted"), "yes");
    assert_eq!(guest.get(&ds, "mountpoint"), mountpoint);
    assert_eq!(guest.get(&ds, "canmount"), "on");
    assert_eq!(guest.get(&ds, "com.example:tier"), "gold");
    assert_eq!(guest.get(&ds, "quota"), (100u64 << 20).to_string());
    assert_eq!(
        guest
            .run_ok(&["stat", "-c", "%u %g %a", &mountpoint])
            .trim(),
        "1 1 700",
        "owner daemon, mode 0700"
    );
    assert_eq!(guest.get(&ds, "com.zpersist:preseed"), "restored");
    let recorded = guest.get(&ds, "com.zpersist:preseed-source");
    let expected = match source {
        "pool" => format!("replica:usb:{usb_copy}@syncoid_usb_"),
        _ => format!("local:{ds}@syncoid_usb_"),
    };
    assert!(recorded.starts_with(&expected), "{recorded} !~ {expected}");
    assert!(out.contains("ok sonarr"), "zpersist-status: {out}");
    assert!(!guest.exists(&sibling), "the sibling is swapped in");
    let asides: Vec<String> = guest
        .zfs(&["list", "-H", "-o", "name", "-r", &pool.ds("services")])
        .lines()
        .filter(|l| l.contains(".zpersist-empty-"))
        .map(str::to_owned)
        .collect();
    assert_eq!(asides.len(), 1, "the empty original is kept: {asides:?}");
    assert_eq!(guest.get(&asides[0], "mountpoint"), "none");
    drop(usb);
}
