//! PostgreSQL point-in-time recovery to S3 under a real systemd: forge with
//! `zpersist.postgresql.pitr.repository.s3`, booted in a container
//! (zpersist_e2e::container) with the units exactly as the modules render
//! them, the barman-cloud-* they run Debian's barman-cli-cloud
//! (machine::PACKAGES), and postgresql.service the model of nixpkgs' unit
//! running Debian's PostgreSQL 15, as in systemd_pitr.rs.
//!
//! The container has no network but its loopback, so the S3 server runs
//! inside: moto's server from the venv tests/env/install.sh builds, bound
//! read-only at its path (its python is the root's python3, which
//! barman-cli-cloud brings), started by the test as a transient unit on
//! 127.0.0.1. WAL reaches the bucket through barman-cloud-wal-archive
//! from inside nixpkgs' sandbox; the base backup and the drill units
//! succeed against it; with the server stopped, a base backup fails and
//! reaches zpersist-notify@ through OnFailure.

use std::env;

use camino::Utf8PathBuf;
use zpersist_e2e::container::Container;
use zpersist_e2e::machine::{self, Host};
use zpersist_e2e::pitr_units::{
    base_backup_fails_and_notifies, drill_ok, journal, psql, start_ok, switch_and_wait_archived,
    METRICS, SETTLE,
};

const PORT: &str = "58300";
const ENDPOINT: &str = "http://127.0.0.1:58300";
const BUCKET: &str = "forge-pitr";
/// The bucket's folder of forge's cluster: the prefix, then barman's
/// server name (the host name by default).
const FOLDER: &str = "postgresql/forge";
const CREDENTIALS: &str = "/etc/zpersist-test/pitr-s3.env";
const MOTO_UNIT: &str = "zpersist-test-moto.service";

/// PITR to S3 (moto inside the container), with the PostgreSQL package the
/// stub the container maps to Debian's PostgreSQL 15.
fn pitr() -> String {
    format!(
        r#"{{
  services.postgresql.package = {{
    type = "derivation";
    name = "postgresql-15";
    outPath = "/nix/store/00000000000000000000000000000000-postgresql-15";
    psqlSchema = "15";
  }};
  zpersist.postgresql.pitr = {{
    enable = true;
    repository.s3 = {{
      destination = "s3://{BUCKET}/postgresql";
      endpointUrl = "{ENDPOINT}";
      environmentFile = "{CREDENTIALS}";
    }};
    retention = {{ recoveryWindow = null; count = 2; }};
  }};
}}"#
    )
}

/// moto's venv on this machine (tests/env/install.sh, as
/// tests/env/start-moto.sh finds it).
fn moto_venv() -> Utf8PathBuf {
    if let Ok(venv) = env::var("ZPERSIST_MOTO_VENV") {
        return venv.into();
    }
    let cache = env::var("XDG_CACHE_HOME")
        .unwrap_or_else(|_| format!("{}/.cache", env::var("HOME").expect("HOME is set")));
    let venv = Utf8PathBuf::from(cache).join("zpersist-test/moto-venv");
    assert!(
        venv.join("bin/moto_server").is_file(),
        "error: {venv}/bin/moto_server is missing; run tests/env/install.sh (it builds moto's venv)"
    );
    venv
}

/// Runs `script` with the venv's python inside the container (boto3 comes
/// with moto), with the test's credentials.
fn python(c: &Container, venv: &Utf8PathBuf, script: &str) -> String {
    let python = venv.join("bin/python3");
    c.exec_ok(&[
        "env",
        "AWS_ACCESS_KEY_ID=test",
        "AWS_SECRET_ACCESS_KEY=test",
        "AWS_DEFAULT_REGION=us-east-1",
        python.as_str(),
        "-c",
        script,
    ])
}

/// The keys of the bucket below `prefix`, read with boto3 (none while
/// the bucket does not exist: barman creates it).
fn keys(c: &Container, venv: &Utf8PathBuf, prefix: &str) -> Vec<String> {
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='{ENDPOINT}')\n\
         try:\n\
         \x20   for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}', Prefix='{prefix}'):\n\
         \x20       for o in page.get('Contents', []):\n\
         \x20           print(o['Key'])\n\
         except s3.exceptions.NoSuchBucket:\n\
         \x20   pass\n"
    );
    python(c, venv, &script)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Starts moto's S3 server as a transient unit and waits until it answers.
/// Ordered before postgresql.service, so that a poweroff stops it after
/// PostgreSQL, whose shutdown archives its last segment (with the server
/// gone first, each try of that waits on botocore's retries and the
/// poweroff takes a minute). A server stopped before leaves its unit
/// failed: that goes first.
fn start_moto(c: &Container, venv: &Utf8PathBuf) {
    let server = venv.join("bin/moto_server");
    c.exec(&["systemctl", "reset-failed", MOTO_UNIT]);
    c.exec_ok(&[
        "systemd-run",
        &format!("--unit={MOTO_UNIT}"),
        "--service-type=exec",
        "--property=Before=postgresql.service",
        server.as_str(),
        "-H",
        "127.0.0.1",
        "-p",
        PORT,
    ]);
    let python = venv.join("bin/python3");
    c.wait_until("moto's S3 server to answer", SETTLE, |c| {
        let probe = c.exec(&[
            python.as_str(),
            "-c",
            &format!("import urllib.request; urllib.request.urlopen('{ENDPOINT}/', timeout=2)"),
        ]);
        if probe.success() {
            Ok(())
        } else {
            Err(format!(
                "{}; {}",
                probe.stderr.trim(),
                c.active_state(MOTO_UNIT)
            ))
        }
    });
}

#[test]
fn pitr_units_archive_back_up_and_drill_to_s3_under_systemd_and_a_failed_backup_notifies() {
    let venv = moto_venv();
    let machine = Host::new("forge")
        .with_module(machine::NOTIFY_TO_JOURNAL)
        .with_module(&pitr())
        .with_real_unit("postgresql")
        .evaluate();
    let mut c = Container::new("pitrs3");
    c.bind_ro(&venv);
    // The credentials: readable by postgres, never in the store.
    c.write(
        CREDENTIALS,
        "AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nAWS_DEFAULT_REGION=us-east-1\n",
        0o644,
    );
    machine::boot(&mut c, &machine);
    start_moto(&c, &venv);

    // PostgreSQL runs as nixpkgs' unit defines it, archiving to S3 through
    // the module's archive_command.
    c.wait_for_state("postgresql.service", "active", SETTLE);
    assert_eq!(c.unit_property("postgresql.service", "Type"), "notify");
    let archive_command = psql(&c, "show archive_command");
    assert!(
        archive_command.ends_with("/bin/pitr-archive-wal --contract /etc/zpersist/pitr.json %p %f"),
        "{archive_command}"
    );
    let contract = c.exec_ok(&["cat", "/etc/zpersist/pitr.json"]);
    assert!(
        contract.contains(&format!("s3://{BUCKET}/postgresql")),
        "{contract}"
    );

    // A switched segment reaches the bucket (barman's wals folder).
    let wals = format!("{FOLDER}/wals/");
    let in_bucket = |c: &Container, segment: &str| {
        keys(c, &venv, &wals)
            .iter()
            .any(|k| k.rsplit('/').next().is_some_and(|f| f.starts_with(segment)))
    };
    psql(&c, "create table rows (n int primary key)");
    psql(&c, "insert into rows select generate_series(1, 100)");
    switch_and_wait_archived(&c, in_bucket);

    // Heartbeat: a row and archive health.
    start_ok(&c, "zpersist-pitr-heartbeat.service");
    let archive = c.exec_ok(&["cat", &format!("{METRICS}/pitr-archive.prom")]);
    assert!(
        archive.contains("zpersist_pitr_archive_failing 0"),
        "{archive}"
    );

    // A base backup in the bucket, which barman lists as completed.
    start_ok(&c, "zpersist-pitr-base-backup.service");
    let infos: Vec<String> = keys(&c, &venv, &format!("{FOLDER}/base/"))
        .into_iter()
        .filter(|k| k.ends_with("/backup.info"))
        .collect();
    assert_eq!(infos.len(), 1, "{infos:?}");
    let printed = journal(&c, "zpersist-pitr-base-backup.service");
    assert!(
        printed.contains("barman-cloud-backup-list: the backup completed"),
        "{printed}"
    );

    // A heartbeat after the backup, archived: the drill restores it from
    // the bucket.
    start_ok(&c, "zpersist-pitr-heartbeat.service");
    psql(&c, "insert into rows values (101)");
    switch_and_wait_archived(&c, in_bucket);
    drill_ok(&c);

    // With the S3 server gone, a base backup fails, saying which bucket,
    // and zpersist-notify@ tells (OnFailure).
    c.systemctl("stop", &[MOTO_UNIT], &[]);
    let (event, printed) = base_backup_fails_and_notifies(&c, "with the S3 server stopped");
    // No dataset of the host holds this repository.
    assert_eq!(event["datasets"], serde_json::json!([]), "{event}");
    assert!(
        printed.contains(&format!("s3://{BUCKET}/postgresql")),
        "the error names the bucket:\n{printed}"
    );
    // S3 back (empty: moto keeps its buckets in memory), for PostgreSQL's
    // shutdown to archive its last segment.
    start_moto(&c, &venv);
}
