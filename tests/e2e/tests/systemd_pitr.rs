//! PostgreSQL point-in-time recovery under a real systemd: forge with
//! `zpersist.postgresql.pitr` on a local repository (its own dataset,
//! tank/backup/pitr), booted in a container (zpersist_e2e::container) with
//! the units exactly as the modules render them. postgresql.service is no
//! stand-in: it is the model of nixpkgs' unit (tests/nix/model-postgresql.nix:
//! Type=notify, `postgres` with PGDATA, initdb and the configuration link in
//! ExecStartPre, the wait in ExecStartPost, nixpkgs' sandbox) running
//! Debian's PostgreSQL 15, with the archive_command the module generates.
//! The heartbeat, base-backup and drill units are started with systemctl
//! and must succeed; a base backup that cannot write its repository fails
//! and reaches zpersist-notify@ through OnFailure.

use zpersist_e2e::container::Container;
use zpersist_e2e::machine::{self, Host};
use zpersist_e2e::pitr_units::{
    base_backup_fails_and_notifies, drill_ok, journal, psql, start_ok, switch_and_wait_archived,
    METRICS, SETTLE,
};

/// PITR on a local repository, with the PostgreSQL package the stub that
/// the container maps to Debian's PostgreSQL 15 (machine::PACKAGES).
const PITR: &str = r#"{
  services.postgresql.package = {
    type = "derivation";
    name = "postgresql-15";
    outPath = "/nix/store/00000000000000000000000000000000-postgresql-15";
    psqlSchema = "15";
  };
  zpersist.postgresql.pitr = {
    enable = true;
    repository.local.dataset = "backup/pitr";
    retention = { recoveryWindow = null; count = 2; };
  };
}"#;

const REPO: &str = "/var/lib/zpersist-pitr";

/// The repository holds `segment` under its final name.
fn in_repository(c: &Container, segment: &str) -> bool {
    c.exec(&["test", "-f", &format!("{REPO}/wal/{segment}")])
        .success()
}

#[test]
fn pitr_units_archive_back_up_and_drill_under_systemd_and_a_failed_backup_notifies() {
    let machine = Host::new("forge")
        .with_module(machine::NOTIFY_TO_JOURNAL)
        .with_module(PITR)
        .with_real_unit("postgresql")
        .evaluate();
    let mut c = Container::new("pitr");
    machine::boot(&mut c, &machine);

    // PostgreSQL runs as nixpkgs' unit defines it: the real server.
    c.wait_for_state("postgresql.service", "active", SETTLE);
    assert_eq!(c.unit_property("postgresql.service", "Type"), "notify");
    let main_pid = c.unit_property("postgresql.service", "MainPID");
    let exe = c.exec_ok(&["readlink", &format!("/proc/{main_pid}/exe")]);
    assert_eq!(exe.trim(), "/usr/lib/postgresql/15/bin/postgres");
    let settings = &machine.services["postgresql"];
    assert!(
        settings["serviceConfig"]["ProtectSystem"] == "strict",
        "nixpkgs' sandbox: {settings}"
    );
    // The archive_command the module generates is the one in effect.
    let archive_command = psql(&c, "show archive_command");
    assert!(
        archive_command.ends_with("/bin/pitr-archive-wal --contract /etc/zpersist/pitr.json %p %f"),
        "{archive_command}"
    );
    assert_eq!(psql(&c, "show archive_mode"), "on");

    // The repository is its own dataset, mounted, and WAL reaches it.
    let mounted = c.exec_ok(&["findmnt", "-n", "-o", "SOURCE", REPO]);
    assert_eq!(mounted.trim(), "tank/backup/pitr");
    psql(&c, "create table rows (n int primary key)");
    psql(&c, "insert into rows select generate_series(1, 100)");
    let first = switch_and_wait_archived(&c, in_repository);
    // Archived under the final name only, owned by the cluster's user.
    let owner = c.exec_ok(&["stat", "-c", "%U", &format!("{REPO}/wal/{first}")]);
    assert_eq!(owner.trim(), "postgres");

    // The timers are loaded and waiting.
    for timer in [
        "zpersist-pitr-heartbeat.timer",
        "zpersist-pitr-base-backup.timer",
        "zpersist-pitr-drill.timer",
    ] {
        c.assert_state(timer, "active", &[]);
    }

    // Heartbeat: a row and archive health, as a textfile.
    start_ok(&c, "zpersist-pitr-heartbeat.service");
    assert_eq!(
        psql(&c, "select count(*) from zpersist_pitr_heartbeat"),
        "1"
    );
    let archive = c.exec_ok(&["cat", &format!("{METRICS}/pitr-archive.prom")]);
    assert!(
        archive.contains("zpersist_pitr_archive_failing 0"),
        "{archive}"
    );

    // A verified base backup, published in the repository.
    start_ok(&c, "zpersist-pitr-base-backup.service");
    let backups = c.exec_ok(&["ls", &format!("{REPO}/base")]);
    assert_eq!(backups.lines().count(), 1, "{backups}");
    let printed = journal(&c, "zpersist-pitr-base-backup.service");
    assert!(printed.contains("verified: pg_verifybackup"), "{printed}");

    // A heartbeat after the backup, archived: the drill must restore it.
    start_ok(&c, "zpersist-pitr-heartbeat.service");
    psql(&c, "insert into rows values (101)");
    switch_and_wait_archived(&c, in_repository);

    // The drill restores it, and left nothing behind.
    drill_ok(&c);

    // A base backup that cannot write its repository fails, and says so
    // through zpersist-notify@ (OnFailure).
    c.exec_ok(&["zfs", "set", "readonly=on", "tank/backup/pitr"]);
    let (event, printed) = base_backup_fails_and_notifies(&c, "into a read-only repository");
    assert_eq!(
        event["datasets"],
        serde_json::json!(["tank/backup/pitr"]),
        "{event}"
    );
    assert!(
        printed.contains(REPO),
        "the error names the repository:\n{printed}"
    );
    c.exec_ok(&["zfs", "set", "readonly=off", "tank/backup/pitr"]);
}
