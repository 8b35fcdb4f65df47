//! Two pitr-base-backup runs of one repository (the timer's and a manual
//! one) never overlap, for either backend: the second waits for the first
//! up to the contract's command timeout, then fails naming the holder, and
//! touches nothing. The holder here is this test process, through the one
//! lock (zpersist_host::lock_within at zpersist_ops::pitr::backup::lock_path):
//! what it names is this process's pid. No cluster runs: a run that gets
//! past the lock fails later, connecting to it, which tells the two apart.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use zpersist_core::pitr::PitrContract;

struct Setup {
    dir: PathBuf,
    contract: PathBuf,
    parsed: PitrContract,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A contract for `repository` ("local" or "s3") whose commands wait
/// `wait_seconds`, with a cluster on a port nothing listens on.
fn setup(tag: &str, repository: &str, wait_seconds: u64) -> Setup {
    let dir = std::env::temp_dir().join(format!("zpersist-pitr-lock-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for sub in ["repo", "metrics", "drill"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let repository = match repository {
        "local" => serde_json::json!({ "local": { "dir": dir.join("repo") } }),
        _ => serde_json::json!({ "s3": {
            "destination": "s3://zpersist-lock-test/pitr",
            "serverName": tag,
            // Nothing listens there: a run past the lock fails on it.
            "endpointUrl": "http://127.0.0.1:9",
        } }),
    };
    let json = serde_json::json!({
        "version": 1,
        "cluster": { "pgBin": "/usr/lib/postgresql/15/bin", "dataDir": dir.join("data"),
                     "socketDir": dir, "port": 9, "user": "postgres" },
        "repository": repository,
        "retention": { "count": 2 },
        "timeouts": { "commandSeconds": wait_seconds, "baseBackupSeconds": 60, "restoreSeconds": 60 },
        "drill": { "scratchDir": dir.join("drill"), "port": 10 },
        "metricsDir": dir.join("metrics"),
    });
    let contract = dir.join("pitr.json");
    fs::write(&contract, json.to_string()).unwrap();
    let parsed = PitrContract::parse(&json.to_string()).expect("a valid contract");
    Setup {
        dir,
        contract,
        parsed,
    }
}

fn base_backup(contract: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pitr-base-backup"))
        .arg("--contract")
        .arg(contract)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pitr-base-backup starts")
}

fn finish(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("pitr-base-backup still ran after {limit:?}");
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A second run waits the whole limit, then fails naming the holder.
fn second_run_waits_then_names_the_holder(repository: &str) {
    let s = setup(&format!("held-{repository}"), repository, 2);
    let path = zpersist_ops::pitr::backup::lock_path(&s.parsed);
    let held = zpersist_host::lock_within(path.clone(), &mut std::io::sink(), Duration::ZERO)
        .expect("the test takes the lock");

    let started = Instant::now();
    let out = finish(base_backup(&s.contract), Duration::from_secs(60));
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took >= Duration::from_secs(2),
        "it gave up after {took:?}, before the 2 s limit: {err}"
    );
    assert!(took < Duration::from_secs(30), "it waited {took:?}: {err}");
    // What it waits for, then who holds it and what to do.
    assert!(err.contains("waiting up to 2 s"), "{err}");
    assert!(err.contains(path.as_str()), "the lock file is named: {err}");
    let holder = format!("pid {}", std::process::id());
    assert!(
        err.contains(&holder),
        "the holder ({holder}) is named: {err}"
    );
    assert!(err.contains("another pitr-base-backup"), "{err}");
    // Nothing was taken: no backup, nothing staged.
    if repository == "local" {
        let base = s.dir.join("repo/base");
        let entries: Vec<_> = fs::read_dir(&base)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(entries.is_empty(), "{base:?} holds {entries:?}");
    }
    drop(held);
}

#[test]
fn a_second_local_base_backup_waits_then_fails_naming_the_holder() {
    second_run_waits_then_names_the_holder("local");
}

#[test]
fn a_second_s3_base_backup_waits_then_fails_naming_the_holder() {
    second_run_waits_then_names_the_holder("s3");
}

/// A run that waits takes the lock once the holder is done, and goes on
/// (here to the cluster, which does not run: a different failure).
#[test]
fn a_waiting_base_backup_goes_on_when_the_holder_finishes() {
    for repository in ["local", "s3"] {
        let s = setup(&format!("released-{repository}"), repository, 30);
        let path = zpersist_ops::pitr::backup::lock_path(&s.parsed);
        let held = zpersist_host::lock_within(path, &mut std::io::sink(), Duration::ZERO)
            .expect("the test takes the lock");
        let child = base_backup(&s.contract);
        std::thread::sleep(Duration::from_secs(1));
        drop(held);
        let out = finish(child, Duration::from_secs(120));
        let err = stderr(&out);
        assert!(err.contains("waiting up to 30 s"), "{repository}: {err}");
        assert!(
            !err.contains("still held"),
            "{repository}: it took the lock once free: {err}"
        );
        assert!(
            !out.status.success(),
            "{repository}: no cluster runs: {err}"
        );
    }
}
