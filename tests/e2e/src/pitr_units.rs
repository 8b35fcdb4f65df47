//! What the systemd PITR tests (tests/e2e/tests/systemd_pitr*.rs) do with a
//! booted forge: psql as the cluster's user, a WAL switch waited for until
//! the repository holds the segment, oneshots started with systemctl that
//! must succeed, and a unit's journal.

use std::time::Duration;

use crate::container::Container;
use crate::machine::{self, STUB_STORE};

/// How long the cluster, archiving and notifications may take to settle.
pub const SETTLE: Duration = Duration::from_secs(90);

/// Where the PITR units write their textfiles.
pub const METRICS: &str = "/var/lib/zpersist/pitr";

/// `sql` through psql as postgres (the stub package's psql: Debian's);
/// its trimmed output, unaligned and without headers.
pub fn psql(c: &Container, sql: &str) -> String {
    let psql = format!("{STUB_STORE}postgresql-15/bin/psql");
    c.exec_ok(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        &psql,
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        "postgres",
        "-c",
        sql,
    ])
    .trim()
    .to_owned()
}

/// Forces the current WAL segment out and waits until `archived` says the
/// repository holds it (pg_stat_archiver shown meanwhile); returns its name.
pub fn switch_and_wait_archived(
    c: &Container,
    archived: impl Fn(&Container, &str) -> bool,
) -> String {
    let segment = psql(c, "select pg_walfile_name(pg_switch_wal())");
    c.wait_until(&format!("{segment} to be archived"), SETTLE, |c| {
        if archived(c, &segment) {
            Ok(())
        } else {
            Err(psql(
                c,
                "select last_archived_wal, failed_count, last_failed_wal from pg_stat_archiver",
            ))
        }
    });
    segment
}

/// `systemctl start` of a oneshot, which waits for it to finish: it must
/// succeed (the panic shows its status and journal, and PostgreSQL's).
pub fn start_ok(c: &Container, unit: &str) {
    c.systemctl("start", &[unit], &["postgresql.service"]);
    assert_eq!(c.unit_property(unit, "Result"), "success", "{unit}");
}

/// What a unit printed (its journal, messages only).
pub fn journal(c: &Container, unit: &str) -> String {
    c.exec_ok(&["journalctl", "--no-pager", "-o", "cat", "-u", unit])
}

/// The recovery point the drill's textfile reports, which must be a number.
fn drill_rpo_seconds(drill: &str) -> f64 {
    drill
        .lines()
        .find_map(|l| l.strip_prefix("zpersist_pitr_drill_rpo_seconds "))
        .unwrap_or_else(|| panic!("no RPO in the drill's textfile:\n{drill}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("the drill's RPO is not a number ({e}):\n{drill}"))
}

/// Starts the drill, which must succeed: its textfile says so with a
/// recovery point minutes old at most, its scratch directory is empty
/// again and the cluster still runs.
pub fn drill_ok(c: &Container) {
    start_ok(c, "zpersist-pitr-drill.service");
    let drill = c.exec_ok(&["cat", &format!("{METRICS}/pitr-drill.prom")]);
    assert!(drill.contains("zpersist_pitr_drill_success 1"), "{drill}");
    let rpo = drill_rpo_seconds(&drill);
    assert!(
        (0.0..300.0).contains(&rpo),
        "the restored heartbeat is minutes old at most: {rpo}"
    );
    let scratch = c.exec_ok(&["ls", "-A", "/var/lib/zpersist-pitr-drill"]);
    assert_eq!(scratch.trim(), "", "scratch left: {scratch}");
    c.assert_state("postgresql.service", "active", &[]);
}

/// Starts a base backup that must fail (`why` says what should make it
/// fail): the unit ends failed and zpersist-notify@ tells (OnFailure).
/// Returns the notification and what the unit printed.
pub fn base_backup_fails_and_notifies(c: &Container, why: &str) -> (serde_json::Value, String) {
    let unit = "zpersist-pitr-base-backup.service";
    let failed = c.exec(&["systemctl", "start", unit]);
    assert!(!failed.success(), "a base backup succeeded {why}");
    c.assert_state(unit, "failed", &[]);
    let event = machine::wait_for_notification(c, unit, SETTLE);
    assert_eq!(event["unit"], unit, "{event}");
    (event, journal(c, unit))
}
