//! Real PostgreSQL 15 clusters for the PITR tests: initdb'd with 1 MiB WAL
//! segments on a high port in a directory of their own, archiving through
//! the freshly built `pitr-archive-wal`, and the binaries run the way the
//! units run them. Everything is removed when the test ends.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const MOTO: &str = "http://127.0.0.1:58300";

/// Runs argv, bounded; panics with its stderr when it cannot start.
pub fn run(argv: &[&str], limit: Duration) -> Output {
    let expression = duct::cmd(argv[0], &argv[1..])
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    let handle = expression
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

pub fn as_postgres(argv: &[&str]) -> Output {
    let mut full = vec!["runuser", "-u", "postgres", "--"];
    full.extend_from_slice(argv);
    run(&full, Duration::from_secs(120))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chown_postgres(path: &Path) {
    ok(
        run(
            &["chown", "-R", "postgres:postgres", path.to_str().unwrap()],
            Duration::from_secs(30),
        ),
        "chown",
    );
}

/// The binaries, copied where the postgres user can run them (the target
/// directory may sit below a home directory it cannot enter).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zpersist-pitr-bin-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let built = PathBuf::from(env!("CARGO_BIN_EXE_pitr-restore"))
            .parent()
            .unwrap()
            .to_path_buf();
        // Every PITR binary zpersist ships (zpersist_e2e::binaries::ALL).
        for name in zpersist_e2e::binaries::ALL
            .iter()
            .filter(|name| name.starts_with("pitr-"))
        {
            fs::copy(built.join(name), dir.join(name)).unwrap();
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    })
}

pub fn bin(name: &str) -> String {
    bin_dir().join(name).display().to_string()
}

/// A unique port per cluster (and one above it for drills).
pub fn port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 40_000 + (std::process::id() % 500) as u16 * 40;
    base + 2 * NEXT.fetch_add(1, Ordering::SeqCst)
}

pub enum Repo {
    Local,
    /// A local repository on a mount of its own (the full-disk test).
    LocalAt(PathBuf),
    S3 {
        bucket: String,
    },
}

/// A running cluster with its contract.
pub struct Cluster {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub contract: PathBuf,
    pub repo: PathBuf,
    pub contract_json: serde_json::Value,
}

impl Cluster {
    pub fn new(tag: &str, repo: Repo, retention: serde_json::Value) -> Cluster {
        let dir = std::env::temp_dir().join(format!("zpersist-pitr-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let port = port();
        let data = dir.join("data");
        let repo_dir = match &repo {
            Repo::LocalAt(path) => path.clone(),
            _ => dir.join("repo"),
        };
        for sub in ["repo", "drill", "metrics"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::create_dir_all(&repo_dir).unwrap();
        chown_postgres(&dir);
        chown_postgres(&repo_dir);
        let repository = match &repo {
            Repo::Local | Repo::LocalAt(_) => serde_json::json!({ "local": { "dir": repo_dir } }),
            Repo::S3 { bucket } => {
                let env = dir.join("s3.env");
                fs::write(&env, "AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nAWS_DEFAULT_REGION=us-east-1\n").unwrap();
                chown_postgres(&env);
                serde_json::json!({ "s3": { "destination": format!("s3://{bucket}/pitr"), "serverName": tag, "endpointUrl": MOTO, "environmentFile": env } })
            }
        };
        let contract_json = serde_json::json!({
            "version": 1,
            "cluster": { "pgBin": PG_BIN, "dataDir": data, "socketDir": dir, "port": port, "user": "postgres" },
            "repository": repository,
            "retention": retention,
            "timeouts": { "commandSeconds": 60, "baseBackupSeconds": 120, "restoreSeconds": 120 },
            "drill": { "scratchDir": dir.join("drill"), "port": port + 1 },
            "metricsDir": dir.join("metrics"),
            "maxArchiveAgeSeconds": 600
        });
        let contract = dir.join("pitr.json");
        fs::write(
            &contract,
            serde_json::to_string_pretty(&contract_json).unwrap(),
        )
        .unwrap();
        let initdb = format!("{PG_BIN}/initdb");
        ok(
            as_postgres(&[
                &initdb,
                "-D",
                data.to_str().unwrap(),
                "--wal-segsize=1",
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]),
            "initdb",
        );
        let conf = format!(
            "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\nwal_level = replica\narchive_mode = on\narchive_command = '{} --contract {} %p %f'\nmax_wal_size = 32MB\nshared_buffers = 16MB\n",
            dir.display(),
            bin("pitr-archive-wal"),
            contract.display()
        );
        let mut text = fs::read_to_string(data.join("postgresql.conf")).unwrap();
        text.push_str(&conf);
        fs::write(data.join("postgresql.conf"), text).unwrap();
        let cluster = Cluster {
            dir: dir.clone(),
            data,
            port,
            contract,
            repo: repo_dir,
            contract_json,
        };
        cluster.start(&cluster.data.clone(), port);
        cluster
    }

    pub fn start(&self, data: &Path, port: u16) {
        let pg_ctl = format!("{PG_BIN}/pg_ctl");
        let log = self.dir.join(format!(
            "{}.log",
            data.file_name().unwrap().to_string_lossy()
        ));
        let options = format!(
            "-c port={port} -c unix_socket_directories='{}' -c listen_addresses=''",
            self.dir.display()
        );
        ok(
            as_postgres(&[
                &pg_ctl,
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
            ]),
            "pg_ctl start",
        );
    }

    pub fn stop(&self, data: &Path) {
        let pg_ctl = format!("{PG_BIN}/pg_ctl");
        let _ = as_postgres(&[
            &pg_ctl,
            "stop",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-D",
            data.to_str().unwrap(),
        ]);
    }

    /// SQL on the cluster listening on `port`; unaligned, tuples only.
    pub fn sql_on(&self, port: u16, sql: &str) -> String {
        let psql = format!("{PG_BIN}/psql");
        let port = port.to_string();
        ok(
            as_postgres(&[
                &psql,
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ]),
            sql,
        )
        .trim()
        .to_string()
    }

    pub fn sql(&self, sql: &str) -> String {
        self.sql_on(self.port, sql)
    }

    /// Inserts row `n` in its own transaction, then returns a time taken
    /// after its commit (and before any later one): a restore to it holds
    /// rows 1..=n exactly.
    pub fn commit_row(&self, n: u32) -> String {
        self.sql(&format!("insert into rows values ({n}, clock_timestamp())"));
        self.sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    }

    /// Ends the current segment and waits (bounded) until it is archived.
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
                self.data.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a pitr binary with this contract (as root, as a person would).
    pub fn pitr(&self, name: &str, args: &[&str]) -> Output {
        let binary = bin(name);
        let contract = self.contract.display().to_string();
        let mut argv = vec![binary.as_str(), "--contract", contract.as_str()];
        argv.extend_from_slice(args);
        let out = run(&argv, Duration::from_secs(180));
        eprintln!(
            "{name} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn pitr_ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.pitr(name, args);
        ok(out, name)
    }

    /// Rows of a restored directory, started on a spare port and stopped.
    pub fn rows_in(&self, data: &Path) -> Vec<u32> {
        let port = self.port + 1;
        self.start(data, port);
        let rows = self.sql_on(
            port,
            "select coalesce(string_agg(n::text, ',' order by n), '') from rows",
        );
        self.stop(data);
        rows.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    }

    /// The base backup ids the repository lists.
    pub fn backup_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.repo.join("base"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Every postmaster started below this directory.
        let pg_ctl = format!("{PG_BIN}/pg_ctl");
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.join("postmaster.pid").exists() {
                    let _ = as_postgres(&[
                        &pg_ctl,
                        "stop",
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                        "-D",
                        path.to_str().unwrap(),
                    ]);
                }
            }
        }
        let drill = self.dir.join("drill/data");
        if drill.join("postmaster.pid").exists() {
            let _ = as_postgres(&[
                &pg_ctl,
                "stop",
                "-m",
                "immediate",
                "-D",
                drill.to_str().unwrap(),
            ]);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn rows(range: std::ops::RangeInclusive<u32>) -> Vec<u32> {
    range.collect()
}
