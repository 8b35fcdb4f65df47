//! The PITR tests' clusters: zpersist_e2e::postgres::PgCluster (a real
//! PostgreSQL 15 cluster in a directory of its own, archiving through the
//! `pitr-archive-wal` built here) with what is PITR's: the repository
//! (local, on a mount of its own, or S3 on moto), the contract with its
//! retention, the pitr binaries run the way the units run them, the rows
//! a restored copy holds and the base backups the repository lists.
//! Everything is removed when the test ends.

#![allow(dead_code)]

use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use zpersist_e2e::postgres::{chown_postgres, ok, port, PgCluster};
// Not every test file uses both.
#[allow(unused_imports)]
pub use zpersist_e2e::postgres::{run_bounded as run, PG_BIN};

pub const MOTO: &str = "http://127.0.0.1:58300";

/// The binaries, staged where the postgres user can run them (the target
/// directory may sit below a home directory it cannot enter): every
/// PITR binary (this package's), so that pitr-restore finds the staged
/// pitr-restore-wal beside itself.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let built = Utf8Path::new(env!("CARGO_BIN_EXE_pitr-restore"))
            .parent()
            .unwrap()
            .to_owned();
        let pitr: Vec<&str> = zpersist_e2e::binaries::ALL
            .iter()
            .copied()
            .filter(|name| name.starts_with("pitr-"))
            .collect();
        zpersist_e2e::reachable::staged_dir(&built, Some(&pitr)).into_std_path_buf()
    })
}

pub fn bin(name: &str) -> String {
    bin_dir().join(name).display().to_string()
}

pub enum Repo {
    Local,
    /// A local repository on a mount of its own (the full-disk test).
    LocalAt(PathBuf),
    /// A local repository on a ZFS dataset mounted at the path, named in
    /// the contract as the module names it (`repository.local.dataset`).
    Dataset {
        dataset: String,
        mount: PathBuf,
    },
    S3 {
        bucket: String,
    },
}

/// A running cluster with its contract (the PgCluster's `sql`,
/// `commit_row`, `switch_and_wait_archived` through Deref).
pub struct Cluster {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub contract: PathBuf,
    pub repo: PathBuf,
    pub contract_json: serde_json::Value,
    pg: PgCluster,
}

impl Deref for Cluster {
    type Target = PgCluster;
    fn deref(&self) -> &PgCluster {
        &self.pg
    }
}

fn utf8(path: &Path) -> &Utf8Path {
    Utf8Path::from_path(path).unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

impl Cluster {
    pub fn new(tag: &str, repo: Repo, retention: serde_json::Value) -> Cluster {
        let dir = Utf8PathBuf::from_path_buf(
            std::env::temp_dir().join(format!("zpersist-pitr-{tag}-{}", std::process::id())),
        )
        .unwrap();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let port = port();
        let data = dir.join("data");
        let repo_dir = match &repo {
            Repo::LocalAt(path) | Repo::Dataset { mount: path, .. } => utf8(path).to_owned(),
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
            Repo::Dataset { dataset, .. } => {
                serde_json::json!({ "local": { "dir": repo_dir, "dataset": dataset } })
            }
            Repo::S3 { bucket } => {
                let env = dir.join("s3.env");
                fs::write(&env, "AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nAWS_DEFAULT_REGION=us-east-1\n").unwrap();
                chown_postgres(&env);
                serde_json::json!({ "s3": { "destination": format!("s3://{bucket}/pitr"), "serverName": tag, "endpointUrl": MOTO, "environmentFile": env } })
            }
        };
        let contract_json =
            zpersist_e2e::postgres::contract_json(&dir, &data, port, repository, retention);
        let contract = dir.join("pitr.json");
        fs::write(
            &contract,
            serde_json::to_string_pretty(&contract_json).unwrap(),
        )
        .unwrap();
        let archive_wal = bin("pitr-archive-wal");
        let pg = PgCluster::create(dir, data, port, contract, Utf8Path::new(&archive_wal));
        Cluster {
            dir: pg.dir.clone().into(),
            data: pg.data.clone().into(),
            port,
            contract: pg.contract.clone().into(),
            repo: repo_dir.into(),
            contract_json,
            pg,
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
        let data = utf8(data);
        let port = self.port + 1;
        self.pg.start_on(data, port);
        let rows = self.sql_on(
            port,
            "select coalesce(string_agg(n::text, ',' order by n), '') from rows",
        );
        self.pg.stop_on(data);
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

/// Waits (bounded: 30 s) until `path` is, or is no longer, a mountpoint
/// in /proc/self/mountinfo (zfs-fuse mounts and unmounts asynchronously).
pub fn wait_mounted(path: &Path, mounted: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let wanted = format!(" {} ", path.display());
    loop {
        let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
        if table.lines().any(|l| l.contains(&wanted)) == mounted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} still {} after 30 s",
            path.display(),
            if mounted { "unmounted" } else { "mounted" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// preseed-restore (freshly built) with the plan at `plan`: its exit code
/// and everything it said.
pub fn preseed_restore(plan: &Utf8Path) -> (Option<i32>, String) {
    let preseed = zpersist_e2e::binaries::fresh("preseed-restore");
    let out = zpersist_e2e::zfs_watchdog::run_watching_zfs(
        duct::cmd(preseed.as_str(), ["--plan", plan.as_str()])
            .dir(zpersist_e2e::reachable::NEUTRAL_CWD)
            .env("PATH", zpersist_e2e::syncoid::path_with_wrapper())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture(),
        &format!("preseed-restore --plan {plan}"),
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("preseed-restore: {}\n{said}", out.status);
    (out.status.code(), said)
}

/// The provenance preseed recorded on `dataset`.
pub fn preseed_source(dataset: &str) -> String {
    zpersist_e2e::pool::zfs(&[
        "get",
        "-H",
        "-o",
        "value",
        "com.zpersist:preseed-source",
        dataset,
    ])
}

pub fn rows(range: std::ops::RangeInclusive<u32>) -> Vec<u32> {
    range.collect()
}
