//! A local repository on its own ZFS dataset (zfs-fuse), named in the
//! contract as the module names it, against a real PostgreSQL 15 cluster
//! (issue 18): unmounted, its empty mountpoint is never written to nor read
//! as an empty archive, by the archive command, the restore command,
//! pitr-restore or preseed; WAL without a base backup is no "nothing to
//! restore"; and preseed dates the archive by its last transaction, so a
//! newer local snapshot wins over an archive whose archiving broke.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{bin, preseed_restore, preseed_source, rows, run, wait_mounted, Cluster, Repo};
use zpersist_e2e::pool::{zfs, TestPool};
use zpersist_e2e::postgres::chown_postgres;

/// A repository dataset `pool/pitr` mounted below the pool's mount root,
/// and a cluster archiving into it.
fn cluster_on_dataset(pool: &TestPool, tag: &str) -> (Cluster, String, camino::Utf8PathBuf) {
    let dataset = pool.ds("pitr");
    let mount = pool.mnt().join("pitr");
    zfs(&["create", "-o", &format!("mountpoint={mount}"), &dataset]);
    wait_mounted(mount.as_std_path(), true);
    let c = Cluster::new(
        tag,
        Repo::Dataset {
            dataset: dataset.clone(),
            mount: mount.clone().into(),
        },
        serde_json::json!({ "count": 2 }),
    );
    c.sql("create table rows (n int primary key, at timestamptz)");
    (c, dataset, mount)
}

fn unmount(dataset: &str, mount: &camino::Utf8Path) {
    zfs(&["unmount", dataset]);
    wait_mounted(mount.as_std_path(), false);
    // As the issue found it: the empty mountpoint belongs to postgres, so
    // nothing but the check stops a write there.
    chown_postgres(mount);
}

fn failed_count(c: &Cluster) -> u64 {
    c.sql("select failed_count from pg_stat_archiver")
        .parse()
        .unwrap()
}

/// preseed-restore with `sources` on an empty dataset `pool/pg`; its exit
/// code and what it said.
fn preseed(pool: &TestPool, sources: serde_json::Value) -> (Option<i32>, String, String) {
    let dataset = pool.ds("pg");
    let mount = pool.mnt().join("pg");
    if !zpersist_e2e::pool::exists(&dataset) {
        zfs(&["create", "-o", &format!("mountpoint={mount}"), &dataset]);
        wait_mounted(mount.as_std_path(), true);
    }
    let state = pool.scratch("state");
    fs::create_dir_all(&state).unwrap();
    let plan = serde_json::json!({
        "version": 1, "service": "postgresql", "dataset": dataset, "mountpoint": mount,
        "owner": "postgres", "group": "postgres", "mode": "0750",
        "sources": sources, "stateDir": state, "timeoutSeconds": 30,
    });
    let (code, said) = preseed_restore(&pool.write_plan("preseed.json", &plan));
    (code, said, dataset)
}

#[test]
fn an_unmounted_repository_is_never_written_to_nor_read_as_an_empty_archive() {
    let pool = TestPool::new("pitrmount");
    let (c, dataset, mount) = cluster_on_dataset(&pool, "unmounted");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    c.commit_row(2);
    c.switch_and_wait_archived();

    unmount(&dataset, &mount);
    let before = failed_count(&c);
    c.commit_row(3);
    let segment = c.sql("select pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(60);
    while failed_count(&c) == before {
        assert!(
            Instant::now() < deadline,
            "archiving {segment} never failed with the repository unmounted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing went to the root filesystem beneath the mountpoint.
    let beneath: Vec<_> = fs::read_dir(mount.as_std_path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        beneath.is_empty(),
        "written beneath the mountpoint: {beneath:?}"
    );

    // The restore command: an exit that stops recovery, never 1 ("not
    // archived", which would end recovery early as if the archive ended).
    let dest = c.dir.join("fetched");
    let contract = c.contract.display().to_string();
    let out = run(
        &[
            &bin("pitr-restore-wal"),
            "--contract",
            &contract,
            &segment,
            dest.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{said}");
    assert!(said.contains(&dataset), "{said}");
    // A bad argument stops recovery too.
    let out = run(
        &[&bin("pitr-restore-wal"), "--contract", &contract],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(126));

    // pitr-restore refuses, naming the dataset, and touches nothing.
    let into = c.dir.join("restored");
    let out = c.pitr(
        "pitr-restore",
        &["--to", "latest", "--into", into.to_str().unwrap()],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&dataset) && said.contains("zfs mount"),
        "{said}"
    );
    assert!(!into.exists());

    // preseed with only this source: a failed source (exit 1), never
    // "fresh" on an empty dataset that PostgreSQL would initdb.
    let (code, said, _) = preseed(
        &pool,
        serde_json::json!([ { "pitr": { "contract": c.contract, "dataDir": "16" } } ]),
    );
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(&dataset), "{said}");

    // Remounted: PostgreSQL's retries archive the segment into the dataset.
    zfs(&["mount", &dataset]);
    wait_mounted(mount.as_std_path(), true);
    c.switch_and_wait_archived();
    assert!(mount.join("wal").join(&segment).exists());
    let latest = c.dir.join("latest");
    c.pitr_ok(
        "pitr-restore",
        &[
            "--to",
            "latest",
            "--into",
            latest.to_str().unwrap(),
            "--start",
        ],
    );
    assert_eq!(c.rows_in(&latest), rows(1..=3));
}

#[test]
fn archived_wal_without_a_base_backup_is_a_failed_source() {
    let pool = TestPool::new("pitrnobase");
    let (c, _dataset, mount) = cluster_on_dataset(&pool, "nobase");
    c.commit_row(1);
    c.switch_and_wait_archived();
    assert!(fs::read_dir(mount.join("wal")).unwrap().count() > 0);
    let (code, said, _) = preseed(
        &pool,
        serde_json::json!([ { "pitr": { "contract": c.contract, "dataDir": "16" } } ]),
    );
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("archived WAL but no base backup"), "{said}");
}

/// The case: archiving broken since row 2, a later local snapshot
/// holding rows 1-4. The archive's point is dated by its last transaction
/// (row 2's time), so the snapshot is fresher and preseed restores it.
#[test]
fn a_local_snapshot_newer_than_the_archives_last_transaction_wins() {
    let pool = TestPool::new("pitrfresh");
    let (c, dataset, mount) = cluster_on_dataset(&pool, "fresh");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    c.commit_row(2);
    c.switch_and_wait_archived();
    // Archiving breaks: the repository is unmounted from here on.
    unmount(&dataset, &mount);
    std::thread::sleep(Duration::from_millis(1100));
    c.commit_row(3);
    c.commit_row(4);
    c.sql("checkpoint");

    // The service's dataset holds a copy of the cluster with rows 1-4 (a
    // snapshot of it, taken now), then is wiped.
    let pg = pool.ds("pg");
    let pg_mount = pool.mnt().join("pg");
    zfs(&["create", "-o", &format!("mountpoint={pg_mount}"), &pg]);
    wait_mounted(pg_mount.as_std_path(), true);
    c.stop();
    let copy = pg_mount.join("16");
    let out = run(
        &["cp", "-a", c.data.to_str().unwrap(), copy.as_str()],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_millis(1100));
    zfs(&["snapshot", &format!("{pg}@later")]);
    fs::remove_dir_all(copy.as_std_path()).unwrap();
    // The archive is back (mounted) but ends at row 2.
    zfs(&["mount", &dataset]);
    wait_mounted(mount.as_std_path(), true);

    let (code, said, _) = preseed(
        &pool,
        serde_json::json!([
            { "pitr": { "contract": c.contract, "dataDir": "16" } },
            { "local": {} }
        ]),
    );
    assert_eq!(code, Some(0), "{said}");
    let source = preseed_source(&pg);
    assert!(source.contains("@later"), "{source}\n{said}");
}
