//! A service's restic backup (backup.restic) under a real systemd: forge's
//! units installed in a booted container as NixOS would install them
//! (zpersist_e2e::machine), nixpkgs' restic job as tests/nix/model-restic.nix
//! renders it.
//!
//! What it proves that tests without systemd cannot: the snapshot unit
//! runs before the job (Requires=, After=); BindReadOnlyPaths= really puts
//! the snapshot's clone at the mountpoint inside the job's namespace (a
//! file written to the live dataset after the snapshot, by a test drop-in
//! on the snapshot unit, is not in the backup, and the live dataset keeps
//! it); StopWhenUnneeded= releases the clone and the snapshot after the
//! job, after a success and after kill -9, and the failure is notified;
//! zpersist-status.service reads the repository from inside its sandbox;
//! and zpersist-sonarr-preseed.service restores the backup into a lost
//! dataset before Sonarr starts.
//!
//! The container's root has no restic package: this machine's restic (the
//! same Debian 12 build) is copied in, and the fake restic package's
//! `bin/restic` points at it (test scaffolding only).

use std::time::Duration;

use serde_json::Value;
use zpersist_e2e::container::Container;
use zpersist_e2e::machine::{self, Host, STUB_STORE};

const FORGE_WITH_LOCAL_RESTIC: &str = r#"{ lib, ... }: {
  zpersist.notify.command = "/usr/bin/systemd-cat";
  zpersist.notify.commandArgs = [ "-t" "zpersist-event" ];
  zpersist.notify.ntfy.url = lib.mkForce null;
  # The repository on the container's disk; created by the first backup.
  zpersist.restic.repositories.b2 = lib.mkForce {
    repository = "/srv/restic";
    passwordFile = "/etc/zpersist-test/restic-password";
    environmentFile = null;
  };
  zpersist.services.sonarr.backup.restic.initialize = true;
  zpersist.services.sonarr.preseed.sources = lib.mkForce [ { restic = "b2"; } ];
}"#;

const MOUNTPOINT: &str = "/var/lib/sonarr/.config/NzbDrone";
const JOB: &str = "restic-backups-zpersist-sonarr.service";
const SNAPSHOT_UNIT: &str = "zpersist-sonarr-backup-snapshot.service";
const RESTIC: &str = "/usr/local/lib/zpersist-test/restic";

fn restic(c: &Container, args: &[&str]) -> String {
    let mut argv = vec![
        RESTIC,
        "-r",
        "/srv/restic",
        "--password-file",
        "/etc/zpersist-test/restic-password",
    ];
    argv.extend_from_slice(args);
    c.exec_ok(&argv)
}

/// Datasets and snapshots whose names say they are a backup's.
fn views(c: &Container) -> Vec<String> {
    c.exec_ok(&["zfs", "list", "-H", "-o", "name", "-t", "all"])
        .lines()
        .filter(|l| l.contains("zpersist-restic"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_backup_unit_reads_the_snapshot_at_the_mountpoint_and_preseed_restores_it() {
    let machine = Host::new("forge")
        .with_module(FORGE_WITH_LOCAL_RESTIC)
        .evaluate();
    let mut c = Container::new("backup");
    machine::install_zfs(&c, &[machine.pool()]);
    machine.install(&c, None);
    c.write(
        RESTIC,
        std::fs::read("/usr/bin/restic").expect("restic on this machine"),
        0o755,
    );
    c.symlink(&format!("{STUB_STORE}restic/bin/restic"), RESTIC);
    c.write("/etc/zpersist-test/restic-password", "correct horse", 0o600);
    // The live data changes between the snapshot and restic's read.
    c.write(
        &format!("/etc/systemd/system/{SNAPSHOT_UNIT}.d/late-write.conf"),
        format!(
            "[Service]\nExecStartPost=/bin/sh -c 'echo late > {MOUNTPOINT}/written-after-snapshot'\n"
        ),
        0o644,
    );
    c.boot();
    c.wait_for_jobs(Duration::from_secs(60));
    c.exec_ok(&[
        "sh",
        "-c",
        &format!("echo before > {MOUNTPOINT}/written-before"),
    ]);

    // A run, as the timer would start it.
    c.systemctl("start", &[JOB], &[SNAPSHOT_UNIT]);
    assert_eq!(c.unit_property(JOB, "Result"), "success");
    // The snapshot unit ran first and was stopped (released) after.
    let started = |unit: &str| {
        c.unit_property(unit, "ExecMainStartTimestampMonotonic")
            .parse::<u64>()
            .unwrap()
    };
    assert!(started(SNAPSHOT_UNIT) < started(JOB));
    c.wait_until(
        "the snapshot unit to release the view",
        Duration::from_secs(30),
        |c| {
            if c.active_state(SNAPSHOT_UNIT) == "inactive" && views(c).is_empty() {
                Ok(())
            } else {
                Err(format!("{} {:?}", c.active_state(SNAPSHOT_UNIT), views(c)))
            }
        },
    );

    let snapshots: Value = serde_json::from_str(&restic(&c, &["snapshots", "--json"])).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1, "{snapshots:#}");
    assert_eq!(snapshots[0]["paths"], serde_json::json!([MOUNTPOINT]));
    assert_eq!(snapshots[0]["hostname"], "forge");
    let files = restic(&c, &["ls", "latest"]);
    assert!(
        files.contains(&format!("{MOUNTPOINT}/written-before")),
        "{files}"
    );
    assert!(
        !files.contains("written-after-snapshot"),
        "the job read the live files, not the snapshot: {files}"
    );
    assert_eq!(
        c.exec_ok(&["cat", &format!("{MOUNTPOINT}/written-after-snapshot")]),
        "late\n",
        "the live dataset keeps what was written"
    );

    // zpersist-status.service, in its sandbox, reads the repository: the
    // textfile has sonarr's backup age. (The unit fails: forge's other
    // objectives, sanoid's snapshots and the NAS, are not met here.)
    let _ = c.exec(&["systemctl", "start", "zpersist-status.service"]);
    let text = c.exec_ok(&["cat", "/var/lib/zpersist/status.prom"]);
    let labels = format!(
        "service=\"sonarr\",dataset=\"{}/services/sonarr\",repository=\"b2\"",
        machine.pool()
    );
    assert!(
        text.contains(&format!("zpersist_status_backup_reachable{{{labels}}} 1")),
        "{text}\n{}",
        c.diagnostics(&["zpersist-status.service"])
    );
    assert!(
        text.contains(&format!("zpersist_status_backup_age_seconds{{{labels}}} ")),
        "{text}"
    );
    // In the unit's own mount namespace (ProtectSystem=strict, PrivateTmp)
    // the mountpoint still shows the dataset: never a false "covered".
    assert!(
        text.contains(&format!(
            "zpersist_status_mounted{{service=\"sonarr\",dataset=\"{}/services/sonarr\"}} 1",
            machine.pool()
        )),
        "{text}\n{}",
        c.diagnostics(&["zpersist-status.service"])
    );

    // kill -9 in the middle of a run: the job fails, the view is released
    // all the same, and the failure is notified.
    c.write(
        &format!("/etc/systemd/system/{JOB}.d/slow.conf"),
        "[Service]\nExecStartPre=/bin/sleep 300\n",
        0o644,
    );
    c.exec_ok(&["systemctl", "daemon-reload"]);
    c.exec_ok(&["systemctl", "start", "--no-block", JOB]);
    c.wait_until("the view of the slow run", Duration::from_secs(60), |c| {
        if views(c).len() == 2 && c.active_state(JOB) == "activating" {
            Ok(())
        } else {
            Err(format!("{:?} {}", views(c), c.active_state(JOB)))
        }
    });
    c.exec_ok(&["systemctl", "kill", "--signal=SIGKILL", JOB]);
    c.wait_until("the job to fail", Duration::from_secs(30), |c| {
        match c.active_state(JOB).as_str() {
            "failed" => Ok(()),
            other => Err(other.to_owned()),
        }
    });
    c.wait_until(
        "the view of the killed run to be released",
        Duration::from_secs(30),
        |c| {
            if views(c).is_empty() {
                Ok(())
            } else {
                Err(format!("{:?}", views(c)))
            }
        },
    );
    c.wait_until("the failure's notification", Duration::from_secs(30), |c| {
        let journal = c.exec_ok(&["journalctl", "-t", "zpersist-event", "-o", "cat"]);
        if journal.contains(JOB) {
            Ok(())
        } else {
            Err(journal)
        }
    });
    c.remove(&format!("/etc/systemd/system/{JOB}.d/slow.conf"));
    c.exec_ok(&["systemctl", "daemon-reload"]);
    c.exec_ok(&["systemctl", "reset-failed", JOB]);

    // The dataset is lost: Sonarr's preseed restores the backup before
    // Sonarr starts.
    let dataset = format!("{}/services/sonarr", machine.pool());
    machine::wipe_dataset(&c, &dataset, &["sonarr.service"]);
    assert!(!c
        .exec(&["test", "-e", &format!("{MOUNTPOINT}/written-before")])
        .success());
    c.systemctl(
        "start",
        &["sonarr.service"],
        &["zpersist-sonarr-preseed.service"],
    );
    assert_eq!(
        c.exec_ok(&["cat", &format!("{MOUNTPOINT}/written-before")]),
        "before\n"
    );
    assert!(!c
        .exec(&[
            "test",
            "-e",
            &format!("{MOUNTPOINT}/written-after-snapshot")
        ])
        .success());
    let provenance = c.exec_ok(&[
        "zfs",
        "get",
        "-H",
        "-o",
        "value",
        "com.zpersist:preseed,com.zpersist:preseed-source",
        &dataset,
    ]);
    assert!(
        provenance.starts_with("restored\nrestic:b2:"),
        "{provenance}"
    );
    c.poweroff();
}
