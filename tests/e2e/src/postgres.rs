//! A real PostgreSQL 15 cluster for tests: initdb'd with 1 MiB WAL
//! segments on a high port, archiving through the freshly built
//! `pitr-archive-wal` into a local repository, with its PITR contract.
//! Used by tests/e2e/tests/runbooks.rs. (crates/zpersist-pitr/tests/common
//! has its own, richer cluster, written before this one; the two could be
//! one.)

use std::time::Duration;

use camino::Utf8PathBuf;
use serde_json::json;

use crate::binaries;
use crate::pool::run_ok;

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs argv as postgres (bounded); its stdout, which must succeed.
pub fn as_postgres(argv: &[&str]) -> String {
    let mut full = vec!["-u", "postgres", "--"];
    full.extend_from_slice(argv);
    let handle = duct::cmd("runuser", &full)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .unwrap();
    let out = handle
        .wait_timeout(Duration::from_secs(120))
        .unwrap()
        .unwrap_or_else(|| {
            let _ = handle.kill();
            panic!("{argv:?} still ran after 120 s")
        })
        .clone();
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PostgreSQL 15 cluster archiving through pitr-archive-wal into a local
/// repository, with its contract (/etc/zpersist/pitr.json's format).
pub struct PgCluster {
    /// Everything of the cluster: `pg/15` (its data), `repo`, `drill`,
    /// `metrics`, `pitr.json`, `server.log`; removed when dropped.
    pub dir: Utf8PathBuf,
    pub data: Utf8PathBuf,
    pub port: u16,
    /// Its contract, /etc/zpersist/pitr.json's format.
    pub contract: Utf8PathBuf,
}

impl PgCluster {
    pub fn new(tag: &str) -> PgCluster {
        let dir = Utf8PathBuf::from(format!(
            "/tmp/zpersist-tests/runbook-pg-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["pg", "repo", "drill", "metrics"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        run_ok("chown", &["-R", "postgres:postgres", dir.as_str()]);
        let port = 45_000 + (std::process::id() % 400) as u16 * 10 + tag.len() as u16;
        let data = dir.join("pg/15");
        let contract = dir.join("pitr.json");
        let contract_json = json!({
            "version": 1,
            "cluster": { "pgBin": PG_BIN, "dataDir": data, "socketDir": dir, "port": port, "user": "postgres" },
            "repository": { "local": { "dir": dir.join("repo") } },
            "retention": { "count": 2 },
            "timeouts": { "commandSeconds": 60, "baseBackupSeconds": 120, "restoreSeconds": 120 },
            "drill": { "scratchDir": dir.join("drill"), "port": port + 1 },
            "metricsDir": dir.join("metrics"),
            "maxArchiveAgeSeconds": 600
        });
        std::fs::write(&contract, contract_json.to_string()).unwrap();
        as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            data.as_str(),
            "--wal-segsize=1",
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let conf = format!(
            "port = {port}\nunix_socket_directories = '{dir}'\nlisten_addresses = ''\nwal_level = replica\narchive_mode = on\narchive_command = '{} --contract {contract} %p %f'\nmax_wal_size = 32MB\nshared_buffers = 16MB\n",
            binaries::fresh("pitr-archive-wal"),
        );
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        text.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text).unwrap();
        let pg = PgCluster {
            dir,
            data,
            port,
            contract,
        };
        pg.start();
        pg
    }

    /// What `systemctl start postgresql` does here.
    pub fn start(&self) {
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            self.data.as_str(),
            "-l",
            self.dir.join("server.log").as_str(),
        ]);
    }

    /// What `systemctl stop postgresql` does here.
    pub fn stop(&self) {
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "stop",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-D",
            self.data.as_str(),
        ]);
    }

    pub fn sql(&self, sql: &str) -> String {
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
            &self.port.to_string(),
            "-U",
            "postgres",
            "-c",
            sql,
        ])
        .trim()
        .to_owned()
    }

    /// Row `n` in its own transaction; a time after its commit.
    pub fn commit_row(&self, n: u32) -> String {
        self.sql(&format!("insert into rows values ({n})"));
        let at = self.sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
        std::thread::sleep(Duration::from_millis(50));
        at
    }

    pub fn switch_and_wait_archived(&self) {
        let segment = self.sql("select pg_walfile_name(pg_switch_wal())");
        for _ in 0..1200 {
            let last = self.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
            if last.len() >= 24 && last[..24] >= *segment.as_str() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{segment} was not archived within 60 s");
    }

    pub fn pitr(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["--contract", self.contract.as_str()];
        all.extend_from_slice(args);
        run_ok(binaries::fresh(name).as_str(), &all)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Every server started on a directory of `pg/` (the cluster, and
        // the copies a test restores beside it).
        let dirs: Vec<Utf8PathBuf> = std::fs::read_dir(self.dir.join("pg"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| Utf8PathBuf::from_path_buf(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        for data in dirs {
            if data.join("postmaster.pid").exists() {
                let _ = duct::cmd(
                    "runuser",
                    [
                        "-u",
                        "postgres",
                        "--",
                        &format!("{PG_BIN}/pg_ctl"),
                        "stop",
                        "-m",
                        "immediate",
                        "-w",
                        "-D",
                        data.as_str(),
                    ],
                )
                .stdout_null()
                .stderr_null()
                .unchecked()
                .run();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
