//! Real PostgreSQL 15 clusters for tests: initdb'd as postgres with 1 MiB
//! WAL segments on a high port in a directory of their own, archiving
//! through a `pitr-archive-wal` with a PITR contract (/etc/zpersist/pitr.json's
//! format), started and stopped with a bounded pg_ctl; every server started
//! below that directory is stopped, and the directory removed, when the
//! cluster is dropped. Used by tests/e2e/tests/runbooks.rs (`PgCluster::new`)
//! and, under its repository variants, by crates/zpersist-pitr/tests/common
//! (`PgCluster::create`).

use std::process::Output;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};

use crate::{binaries, reachable};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs argv, bounded by `limit` (killed after it), in
/// [`reachable::NEUTRAL_CWD`] (what it runs as postgres, itself or through
/// runuser, inherits the directory, and the test's own is in the clone);
/// panics when it cannot start or still runs.
pub fn run_bounded(argv: &[&str], limit: Duration) -> Output {
    let handle = duct::cmd(argv[0], &argv[1..])
        .dir(reachable::NEUTRAL_CWD)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    match handle.wait_timeout(limit).unwrap() {
        Some(out) => out.clone(),
        None => {
            let _ = handle.kill();
            panic!("{argv:?} still ran after {limit:?}");
        }
    }
}

/// Runs argv as postgres (bounded: 120 s), whatever its exit.
pub fn as_postgres_output(argv: &[&str]) -> Output {
    let mut full = vec!["runuser", "-u", "postgres", "--"];
    full.extend_from_slice(argv);
    run_bounded(&full, Duration::from_secs(120))
}

/// Runs argv as postgres (bounded); its stdout, which must succeed.
pub fn as_postgres(argv: &[&str]) -> String {
    ok(as_postgres_output(argv), &format!("{argv:?}"))
}

/// The stdout of `out`, which must have succeeded (`what` failed, with its
/// stderr and stdout, otherwise).
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Gives `path` (recursively) to postgres.
pub fn chown_postgres(path: &Utf8Path) {
    ok(
        run_bounded(
            &["chown", "-R", "postgres:postgres", path.as_str()],
            Duration::from_secs(30),
        ),
        &format!("chown -R postgres:postgres {path}"),
    );
}

/// A port per cluster of this process, with the three above it free for
/// what runs beside it (a drill, a restored copy, a runbook's check).
pub fn port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    assert!(
        n < 10,
        "a test process took more than 10 cluster ports (its range of 40 is used up)"
    );
    40_000 + (std::process::id() % 500) as u16 * 40 + 4 * n
}

/// The PITR contract of a cluster in `dir` (data in `data`, on `port`, its
/// drill on `port + 1`), with this repository and retention.
pub fn contract_json(
    dir: &Utf8Path,
    data: &Utf8Path,
    port: u16,
    repository: Value,
    retention: Value,
) -> Value {
    json!({
        "version": 1,
        "cluster": { "pgBin": PG_BIN, "dataDir": data, "socketDir": dir, "port": port, "user": "postgres" },
        "repository": repository,
        "retention": retention,
        "timeouts": { "commandSeconds": 60, "baseBackupSeconds": 120, "restoreSeconds": 120 },
        "drill": { "scratchDir": dir.join("drill"), "port": port + 1 },
        "metricsDir": dir.join("metrics"),
        "maxArchiveAgeSeconds": 600
    })
}

/// A running PostgreSQL 15 cluster archiving through pitr-archive-wal with
/// its contract.
pub struct PgCluster {
    /// Everything of the cluster (its data, the servers' logs
    /// `<data dir name>.log`, its socket); removed when dropped.
    pub dir: Utf8PathBuf,
    pub data: Utf8PathBuf,
    pub port: u16,
    /// Its contract, /etc/zpersist/pitr.json's format.
    pub contract: Utf8PathBuf,
}

impl PgCluster {
    /// The runbooks' cluster: `/tmp/zpersist-tests/runbook-pg-<tag>-<pid>`
    /// with its data in `pg/15`, a local repository `repo` keeping 2
    /// base backups, `drill`, `metrics` and `pitr.json`.
    pub fn new(tag: &str) -> PgCluster {
        let dir = Utf8PathBuf::from(format!(
            "/tmp/zpersist-tests/runbook-pg-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["pg", "repo", "drill", "metrics"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        chown_postgres(&dir);
        let port = port();
        let data = dir.join("pg/15");
        let contract = dir.join("pitr.json");
        let contract_json = contract_json(
            &dir,
            &data,
            port,
            json!({ "local": { "dir": dir.join("repo") } }),
            json!({ "count": 2 }),
        );
        std::fs::write(&contract, contract_json.to_string()).unwrap();
        PgCluster::create(
            dir,
            data,
            port,
            contract,
            &binaries::fresh("pitr-archive-wal"),
        )
    }

    /// initdb's `data` (as postgres, who owns `dir`), configures it to
    /// listen on `port` and a socket in `dir` only and to archive through
    /// `archive_wal --contract <contract>`, and starts it. The cluster owns
    /// `dir` from here: dropping it stops its servers and removes `dir`.
    pub fn create(
        dir: Utf8PathBuf,
        data: Utf8PathBuf,
        port: u16,
        contract: Utf8PathBuf,
        archive_wal: &Utf8Path,
    ) -> PgCluster {
        let cluster = PgCluster {
            dir,
            data,
            port,
            contract,
        };
        as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            cluster.data.as_str(),
            "--wal-segsize=1",
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let conf = format!(
            "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\nwal_level = replica\narchive_mode = on\narchive_command = '{archive_wal} --contract {} %p %f'\nmax_wal_size = 32MB\nshared_buffers = 16MB\n",
            cluster.dir, cluster.contract,
        );
        let conf_path = cluster.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        cluster.start();
        cluster
    }

    /// The server log of the server on `data`.
    pub fn log_of(&self, data: &Utf8Path) -> Utf8PathBuf {
        self.dir
            .join(format!("{}.log", data.file_name().unwrap_or("server")))
    }

    /// What `systemctl start postgresql` does here.
    pub fn start(&self) {
        self.start_on(&self.data, self.port);
    }

    /// Starts a server on `data` (the cluster or a copy of it) listening on
    /// `port` and this cluster's socket directory (bounded: 60 s).
    pub fn start_on(&self, data: &Utf8Path, port: u16) {
        let options = format!(
            "-c port={port} -c unix_socket_directories='{}' -c listen_addresses=''",
            self.dir
        );
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            data.as_str(),
            "-l",
            self.log_of(data).as_str(),
            "-o",
            &options,
        ]);
    }

    /// What `systemctl stop postgresql` does here.
    pub fn stop(&self) {
        self.stop_on(&self.data);
    }

    /// Stops the server on `data` (fast, bounded: 60 s).
    pub fn stop_on(&self, data: &Utf8Path) {
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "stop",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-D",
            data.as_str(),
        ]);
    }

    /// SQL on the server listening on `port`; unaligned, tuples only.
    pub fn sql_on(&self, port: u16, sql: &str) -> String {
        as_postgres(&[
            &format!("{PG_BIN}/psql"),
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.dir.as_str(),
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-c",
            sql,
        ])
        .trim()
        .to_owned()
    }

    pub fn sql(&self, sql: &str) -> String {
        self.sql_on(self.port, sql)
    }

    /// Inserts row `n` (into `rows (n, ...)`) in its own transaction, then
    /// returns a time taken after its commit and before any later one: a
    /// restore to it holds rows up to n exactly.
    pub fn commit_row(&self, n: u32) -> String {
        self.sql(&format!("insert into rows (n) values ({n})"));
        let at = self.sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
        std::thread::sleep(Duration::from_millis(50));
        at
    }

    /// Ends the current segment and waits (bounded: 60 s) until it is
    /// archived.
    pub fn switch_and_wait_archived(&self) {
        let segment = self.sql("select pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
            if last.len() >= 24 && last[..24] >= *segment.as_str() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{segment} was not archived within 60 s (last: {last}); see {}",
                self.log_of(&self.data)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a freshly built pitr binary with this contract (as root, as a
    /// person would; bounded: 180 s); its stdout, which must succeed.
    pub fn pitr(&self, name: &str, args: &[&str]) -> String {
        let binary = binaries::fresh(name);
        let mut argv = vec![binary.as_str(), "--contract", self.contract.as_str()];
        argv.extend_from_slice(args);
        ok(
            run_bounded(&argv, Duration::from_secs(180)),
            &format!("{argv:?}"),
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Every server started on a directory in `dir` or one level below
        // (the cluster, the copies a test restores beside it, a drill's).
        let children = |dir: &Utf8Path| -> Vec<Utf8PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| Utf8PathBuf::from_path_buf(e.path()).ok())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default()
        };
        let candidates = children(&self.dir).into_iter().flat_map(|child| {
            let below = children(&child);
            std::iter::once(child).chain(below)
        });
        for data in candidates {
            if data.join("postmaster.pid").exists() {
                let _ = as_postgres_output(&[
                    &format!("{PG_BIN}/pg_ctl"),
                    "stop",
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "-D",
                    data.as_str(),
                ]);
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
