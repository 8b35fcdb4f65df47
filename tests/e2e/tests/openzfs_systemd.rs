//! zpersist's units under the OpenZFS guest's own systemd (PID 1), on real
//! OpenZFS 2.4: the units the modules render for a host (forge), installed
//! as NixOS installs them (zpersist_e2e::guest_system, the installer of
//! the nspawn tests), on a pool the guest's `zfs-import-cache.service`
//! imports and `zfs-mount.service` mounts. One guest for this binary;
//! the tests take turns (they share the guest's /etc/systemd/system).
//!
//! Where qemu cannot start the guest, every test here returns after one
//! loud line saying why (zpersist_e2e::guest::Guest::shared).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use zpersist_e2e::guest::{Guest, GuestPool};
use zpersist_e2e::guest_system::{self, diagnostics, systemctl, unit_property, wait_until};
use zpersist_e2e::machine::{self, Host, Machine, STAND_IN_LOG};

/// The tests install units into the one guest: one at a time.
static SYSTEM: Mutex<()> = Mutex::new(());

const SETTLE: Duration = Duration::from_secs(180);

fn guest() -> Option<&'static Guest> {
    Guest::shared()
}

/// forge with its notifications in the journal (machine::NOTIFY_TO_JOURNAL).
fn forge() -> Host {
    Host::new("forge").with_module(machine::NOTIFY_TO_JOURNAL)
}

/// The units a boot starts: every service the machine links into
/// multi-user.target (zpersist-datasets, the services), with the guest's
/// zfs.target (import, mount) in the same transaction.
fn boot_units(machine: &Machine) -> Vec<String> {
    let mut units = vec!["zfs.target".to_owned()];
    for unit in machine.units() {
        if unit.executable || !unit.name.ends_with(".service") {
            continue;
        }
        let wanted = unit
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("WantedBy="))
            .any(|targets| targets.split_whitespace().any(|t| t == "multi-user.target"));
        if wanted {
            units.push(unit.name);
        }
    }
    units
}

/// A "boot": one start job per boot unit, queued together, until done.
fn boot(guest: &Guest, machine: &Machine) {
    let units = boot_units(machine);
    let mut argv = vec!["systemctl", "start", "--no-block", "--"];
    argv.extend(units.iter().map(String::as_str));
    guest.run_ok(&argv);
    guest_system::wait_for_jobs(guest, SETTLE);
}

fn events(guest: &Guest) -> BTreeMap<String, Value> {
    machine::parse_notify_events(&guest.run_ok(&machine::NOTIFY_EVENTS_ARGV))
}

/// The lines a stand-in wrote into its data directory.
fn stand_in_lines(guest: &Guest, dir: &str) -> Vec<String> {
    let out = guest.run(&["cat", &format!("{dir}/{STAND_IN_LOG}")]);
    out.stdout.lines().map(str::to_owned).collect()
}

fn wait_for_lines(guest: &Guest, dir: &str, n: usize) {
    wait_until(
        guest,
        &format!("{n} lines in {dir}/{STAND_IN_LOG}"),
        SETTLE,
        |g| {
            let lines = stand_in_lines(g, dir);
            if lines.len() == n {
                Ok(())
            } else {
                Err(format!("{lines:?}"))
            }
        },
    );
}

/// The filesystem the stand-in's log is on: its dataset.
fn assert_on_dataset(guest: &Guest, dir: &str, dataset: &str) {
    let log = format!("{dir}/{STAND_IN_LOG}");
    let source = guest.run_ok(&["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", &log]);
    assert_eq!(
        source.split_whitespace().collect::<Vec<_>>(),
        [dataset, "zfs"],
        "{log} is not on {dataset}"
    );
}

fn assert_state(guest: &Guest, unit: &str, state: &str, also: &[&str]) {
    let now = unit_property(guest, unit, "ActiveState");
    let mut units = vec![unit];
    units.extend_from_slice(also);
    assert_eq!(now, state, "{unit}\n{}", diagnostics(guest, &units));
}

/// A monotonic timestamp (µs) of a unit, which must have been set.
fn stamp(guest: &Guest, unit: &str, property: &str) -> u64 {
    let value: u64 = unit_property(guest, unit, property)
        .parse()
        .unwrap_or_else(|e| panic!("{unit} {property}: {e}"));
    assert!(value > 0, "{unit} has no {property}: it did not run");
    value
}

#[test]
fn forge_boots_under_the_guests_systemd_each_service_on_its_dataset_in_order() {
    let Some(guest) = guest() else { return };
    let _turn = SYSTEM.lock().unwrap_or_else(|p| p.into_inner());
    let machine = forge().evaluate_for_openzfs();
    let pool = GuestPool::new(guest, machine.pool());
    assert_eq!(pool.name, "tank");
    guest_system::install(guest, &machine);

    // The first boot: zpersist-datasets creates the datasets, each
    // service's mount check passes, sonarr's preseed finds nothing to do,
    // each service starts on its own dataset.
    boot(guest, &machine);
    assert_state(guest, "zpersist-datasets.service", "active", &[]);
    let listed = guest.zfs(&["list", "-H", "-o", "name", "-r", "tank"]);
    for dataset in machine.datasets() {
        assert!(
            listed.lines().any(|l| l == dataset),
            "{dataset} missing:\n{listed}"
        );
    }
    // The declared properties as declared: OpenZFS takes them as they are.
    assert_eq!(guest.get("tank/media", "recordsize"), "1048576");
    let all = machine.services();
    for (_, dataset, mountpoint, _, units) in &all {
        for unit in units {
            assert_state(guest, unit, "active", &[]);
        }
        wait_for_lines(guest, mountpoint, 1);
        assert_on_dataset(guest, mountpoint, dataset);
    }
    let (_, sonarr_ds, sonarr_dir, _, _) = all
        .iter()
        .find(|(name, ..)| name == "sonarr")
        .cloned()
        .unwrap();
    assert_eq!(
        unit_property(guest, "zpersist-sonarr-preseed.service", "Result"),
        "success"
    );
    let failed = guest.run_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(failed, "", "{}", diagnostics(guest, &[]));

    // Its dataset unmounted (a pool half there, an admin's slip): a start
    // of sonarr runs its mount check again, which fails; sonarr stays
    // down, its data directory untouched, and zpersist-notify@ reports it.
    let sonarr = [
        "sonarr.service",
        "zpersist-sonarr-mounted.service",
        "zpersist-sonarr-preseed.service",
    ];
    guest.run_ok(&["systemctl", "stop", "--", sonarr[0], sonarr[1], sonarr[2]]);
    guest.zfs(&["unmount", &sonarr_ds]);
    let started = systemctl(guest, "start", &["sonarr.service"]);
    assert!(!started.success(), "sonarr started: {started:#?}");
    assert_state(guest, "zpersist-sonarr-mounted.service", "failed", &sonarr);
    assert_ne!(
        unit_property(guest, "sonarr.service", "ActiveState"),
        "active",
        "{}",
        diagnostics(guest, &sonarr)
    );
    assert!(
        stand_in_lines(guest, &sonarr_dir).is_empty(),
        "sonarr wrote into the unmounted directory"
    );
    let event = wait_until(
        guest,
        "the notification about zpersist-sonarr-mounted.service",
        SETTLE,
        |g| {
            let events = events(g);
            events
                .get("zpersist-sonarr-mounted.service")
                .cloned()
                .ok_or_else(|| format!("events about {:?}", events.keys().collect::<Vec<_>>()))
        },
    );
    assert_eq!(event["kind"], "unit-failed");
    assert_eq!(event["host"], "forge");
    assert_eq!(event["datasets"], serde_json::json!([sonarr_ds]));
    assert!(
        event["journal"].to_string().contains(&sonarr_ds),
        "the check's journal names {sonarr_ds}: {event:#}"
    );
    let notify = "zpersist-notify@zpersist-sonarr-mounted.service.service";
    wait_until(
        guest,
        &format!("{notify} to finish"),
        SETTLE,
        |g| match unit_property(g, notify, "Result").as_str() {
            "success" if unit_property(g, notify, "ActiveState") == "inactive" => Ok(()),
            other => Err(other.to_owned()),
        },
    );

    // A reboot: everything stops, the pool goes away (exported, its
    // cache file kept as a reboot keeps it), and one boot transaction
    // brings it all back: zfs-import-cache imports the pool,
    // zfs-mount mounts it, then zpersist's units, then the services.
    let units: Vec<String> = machine
        .units()
        .into_iter()
        .filter(|u| !u.executable && !u.name.contains("@."))
        .map(|u| u.name)
        .collect();
    let mut stop = vec!["systemctl", "stop", "--"];
    stop.extend(units.iter().map(String::as_str));
    guest.run_ok(&stop);
    guest_system::wait_for_jobs(guest, SETTLE);
    guest.run_ok(&["systemctl", "reset-failed"]);
    // 0 when the guest booted without pools (no cache file: the unit's
    // condition skipped it).
    let imported_before: u64 = unit_property(
        guest,
        "zfs-import-cache.service",
        "ActiveEnterTimestampMonotonic",
    )
    .parse()
    .unwrap();
    guest.sh_ok(
        "cp /etc/zfs/zpool.cache /var/tmp/zpool.cache.reboot && zpool export tank && \
         mv /var/tmp/zpool.cache.reboot /etc/zfs/zpool.cache",
    );
    assert!(!guest.run(&["zpool", "list", "tank"]).success());
    guest.run_ok(&[
        "systemctl",
        "stop",
        "zfs-mount.service",
        "zfs-import-cache.service",
        "zfs-import.target",
        "zfs.target",
    ]);
    boot(guest, &machine);
    let failed = guest.run_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(failed, "", "{}", diagnostics(guest, &[]));
    let imported = stamp(
        guest,
        "zfs-import-cache.service",
        "ActiveEnterTimestampMonotonic",
    );
    assert!(
        imported > imported_before,
        "zfs-import-cache did not run again"
    );
    // OpenZFS logs each import internally (`zpool history -i`).
    let history = guest.run_ok(&["zpool", "history", "-i", "tank"]);
    let after_export: Vec<&str> = history
        .lines()
        .rev()
        .take_while(|l| !l.contains("zpool export tank"))
        .collect();
    assert!(
        after_export
            .iter()
            .any(|l| l.contains("] import pool version")),
        "the pool was not imported by zfs-import-cache: {history}"
    );
    let mount_start = stamp(guest, "zfs-mount.service", "InactiveExitTimestampMonotonic");
    let mounted = stamp(guest, "zfs-mount.service", "ActiveEnterTimestampMonotonic");
    assert!(
        imported <= mount_start,
        "zfs-mount started before the import ended"
    );
    let datasets_start = stamp(
        guest,
        "zpersist-datasets.service",
        "InactiveExitTimestampMonotonic",
    );
    let datasets_done = stamp(
        guest,
        "zpersist-datasets.service",
        "ActiveEnterTimestampMonotonic",
    );
    assert!(
        mounted <= datasets_start,
        "zpersist-datasets started ({datasets_start}) before zfs-mount finished ({mounted})"
    );
    for (name, dataset, mountpoint, _, units) in &all {
        let check = format!("zpersist-{name}-mounted.service");
        let check_start = stamp(guest, &check, "InactiveExitTimestampMonotonic");
        let mut ready = stamp(guest, &check, "ActiveEnterTimestampMonotonic");
        assert!(
            datasets_done <= check_start,
            "{check} started before zpersist-datasets finished"
        );
        if name == "sonarr" {
            let preseed = "zpersist-sonarr-preseed.service";
            let preseed_start = stamp(guest, preseed, "ExecMainStartTimestampMonotonic");
            assert!(
                ready <= preseed_start,
                "{preseed} started before {check} ended"
            );
            ready = stamp(guest, preseed, "ExecMainExitTimestampMonotonic");
        }
        for unit in units {
            let start = stamp(guest, unit, "ExecMainStartTimestampMonotonic");
            assert!(
                ready <= start,
                "{unit} started ({start}) before its checks were done ({ready})"
            );
            assert_state(guest, unit, "active", &[]);
        }
        wait_for_lines(guest, mountpoint, 2);
        assert_on_dataset(guest, mountpoint, dataset);
    }
    // What systemd itself said (the agent logs the commands it runs).
    let cycles =
        guest.sh_ok("journalctl -b --no-pager -o cat _PID=1 | grep -i 'ordering cycle' || true");
    assert_eq!(cycles, "", "ordering cycles");

    // Leave the guest's systemd as it was for the next test.
    guest.run_ok(&stop);
    guest_system::wait_for_jobs(guest, SETTLE);
    guest.run_ok(&["systemctl", "reset-failed"]);
}
