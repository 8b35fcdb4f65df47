//! The archive command's contract, for real: an identical duplicate is
//! success, a differing one is refused, a SIGKILL in the middle of a copy
//! leaves nothing under the final name, and a full repository fails (so
//! PostgreSQL retries) and loses nothing once space returns.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{bin, rows, run, Cluster, Repo};

const SEGMENT: &str = "000000010000000000000042";

fn archive(
    contract: &Path,
    source: &Path,
    name: &str,
    failpoint: Option<&str>,
) -> std::process::Output {
    let binary = bin("pitr-archive-wal");
    let mut expression = duct::cmd(
        &binary,
        [
            "--contract",
            contract.to_str().unwrap(),
            source.to_str().unwrap(),
            name,
        ],
    )
    .stdin_null()
    .stdout_capture()
    .stderr_capture();
    if let Some(point) = failpoint {
        expression = expression.env("ZPERSIST_PITR_FAILPOINT", point);
    }
    zpersist_e2e::zfs_watchdog::run_bounded(
        expression,
        &format!("pitr-archive-wal {name}"),
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail)
}

#[test]
fn duplicates_and_a_kill_mid_copy() {
    let dir = std::env::temp_dir().join(format!("zpersist-pitr-contract-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("repo")).unwrap();
    let contract = dir.join("pitr.json");
    let json = serde_json::json!({
        "version": 1,
        "cluster": { "pgBin": common::PG_BIN, "dataDir": dir.join("data"), "socketDir": dir, "port": 5999, "user": "postgres" },
        "repository": { "local": { "dir": dir.join("repo") } },
        "retention": { "count": 1 },
        "drill": { "scratchDir": dir.join("drill"), "port": 5998 },
        "metricsDir": dir
    });
    fs::write(&contract, json.to_string()).unwrap();
    let segment: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let source = dir.join("segment");
    fs::write(&source, &segment).unwrap();
    let archived = dir.join("repo/wal").join(SEGMENT);

    // SIGKILL after half the bytes: nothing under the final name.
    let out = archive(&contract, &source, SEGMENT, Some("archive-mid-copy"));
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    assert!(
        !archived.exists(),
        "a partial file is never visible under the final name"
    );
    let leftovers: Vec<_> = fs::read_dir(dir.join("repo/wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the half-written temporary: {leftovers:?}"
    );
    // PostgreSQL's retry succeeds and stores every byte.
    let out = archive(&contract, &source, SEGMENT, None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::read(&archived).unwrap(), segment);

    // The same segment again (a retry after a crash before PostgreSQL
    // heard of success): success, nothing rewritten.
    let before = fs::metadata(&archived).unwrap().modified().unwrap();
    let out = archive(&contract, &source, SEGMENT, None);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("archived already"));
    assert_eq!(fs::metadata(&archived).unwrap().modified().unwrap(), before);

    // A different file under the same name: refused, the archived one kept.
    let mut other = segment.clone();
    other[4096] ^= 0xff;
    let different = dir.join("different");
    fs::write(&different, &other).unwrap();
    let out = archive(&contract, &different, SEGMENT, None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already holds a different")
            && stderr.contains(SEGMENT)
            && stderr.contains("help:"),
        "{stderr}"
    );
    assert_eq!(fs::read(&archived).unwrap(), segment);

    // Not a WAL name: refused before anything is written.
    let out = archive(&contract, &source, "../../etc/passwd", None);
    assert_eq!(out.status.code(), Some(1));
    fs::remove_dir_all(&dir).unwrap();
}

/// A tmpfs of its own as the repository, unmounted when the test ends.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(
            &["umount", "-l", self.0.to_str().unwrap()],
            Duration::from_secs(30),
        );
    }
}

#[test]
fn a_full_repository_fails_then_recovers_with_nothing_lost() {
    let mount = std::env::temp_dir().join(format!("zpersist-pitr-tmpfs-{}", std::process::id()));
    fs::create_dir_all(&mount).unwrap();
    let out = run(
        &[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=40m,mode=0755",
            "tmpfs",
            mount.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "mount tmpfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _guard = Tmpfs(mount.clone());
    let c = Cluster::new(
        "fulldisk",
        Repo::LocalAt(mount.clone()),
        serde_json::json!({ "count": 1 }),
    );
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    c.pitr_ok("pitr-heartbeat", &[]);

    // Fill what is left of the repository.
    let filler = mount.join("filler");
    let _ = run(
        &[
            "dd",
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1M",
            "count=64",
        ],
        Duration::from_secs(30),
    );
    for n in 2..=4 {
        c.commit_row(n);
        c.sql("select pg_switch_wal()");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.sql("select failed_count from pg_stat_archiver") == "0" {
        assert!(
            Instant::now() < deadline,
            "archiving never failed on a full repository"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The heartbeat sees it and fails (its unit notifies).
    let out = c.pitr("pitr-heartbeat", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fails"),
        "{out:?}"
    );
    let metrics = fs::read_to_string(c.dir.join("metrics/pitr-archive.prom")).unwrap();
    assert!(
        metrics.contains("zpersist_pitr_archive_failing 1"),
        "{metrics}"
    );
    // No temporaries are left behind under final names.
    for entry in fs::read_dir(mount.join("wal")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with('.') || zpersist_core::pitr::wal::classify(&name).is_some(),
            "{name}"
        );
    }

    // Space returns: PostgreSQL's retries archive everything, and latest
    // restores every row.
    fs::remove_file(&filler).unwrap();
    c.switch_and_wait_archived();
    c.pitr_ok("pitr-heartbeat", &[]);
    let restored = c.dir.join("restored");
    c.pitr_ok(
        "pitr-restore",
        &[
            "--to",
            "latest",
            "--into",
            restored.to_str().unwrap(),
            "--start",
        ],
    );
    assert_eq!(c.rows_in(&restored), rows(1..=4));
    drop(c);
}
