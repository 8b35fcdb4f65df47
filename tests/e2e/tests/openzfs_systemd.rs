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
use zpersist_e2e::assertions::syncoid_ran_as_its_user;
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

/// Stops every unit of the machine (a shutdown, or the end of a test),
/// and forgets their failures.
fn stop_all(guest: &Guest, machine: &Machine) {
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
    stop_all(guest, &machine);
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
    stop_all(guest, &machine);
}

/// forge replicating to its USB pool only (the NAS is out of reach), with
/// nixpkgs' syncoid sandbox given Debian's /usr (the guest's programs
/// behind the stub store paths: perl and its modules, zfs), and the store
/// of the booted system, which NixOS keeps in /nix/store; sonarr's
/// command slowed to 512 KiB/s (16 MiB: 32 s) so that another unit runs
/// during it.
const USB_ONLY: &str = r#"{ lib, ... }: {
  zpersist.replication.targets = lib.mkForce { usb.dataset = "usbpool/backup/forge"; };
  zpersist.datasets.services.replicateTo = lib.mkForce [ "usb" ];
  services.syncoid.service.serviceConfig.BindReadOnlyPaths = [ "/usr" "/lib" "/lib64" "/nix/var/zpersist-test" ];
  services.syncoid.commands."services-sonarr-to-usb".extraArgs = [ "--source-bwlimit=512k" ];
}"#;

/// The user a unit's main process (ExecStart, not the ExecStartPre
/// scripts before it) runs as, once it runs, and what it runs.
fn main_process_user(guest: &Guest, unit: &str) -> (String, String) {
    wait_until(guest, &format!("{unit}'s main process"), SETTLE, |g| {
        let pid = unit_property(g, unit, "ExecMainPID");
        if pid == "0" {
            return Err(format!(
                "{unit} is {}",
                unit_property(g, unit, "ActiveState")
            ));
        }
        let user = g.run(&["ps", "-o", "user=,args=", "-p", &pid]);
        match user.stdout.trim().split_once(' ') {
            // systemd's "(name)" before the exec.
            Some((_, args)) if args.trim().starts_with('(') => Err(args.to_owned()),
            Some((name, args)) => Ok((name.to_owned(), args.trim().to_owned())),
            None => Err(format!("pid {pid} gone")),
        }
    })
}

/// Waits until `unit` (a oneshot) has run to its end; its Result.
fn wait_for_run(guest: &Guest, unit: &str) -> String {
    wait_until(
        guest,
        &format!("{unit} to finish"),
        SETTLE,
        |g| match unit_property(g, unit, "ActiveState").as_str() {
            "inactive" | "failed" => Ok(unit_property(g, unit, "Result")),
            other => Err(other.to_owned()),
        },
    )
}

#[test]
fn syncoid_units_run_as_nixpkgs_runs_them_with_the_modules_grants_and_lag_reads_them() {
    let Some(guest) = guest() else { return };
    let _turn = SYSTEM.lock().unwrap_or_else(|p| p.into_inner());
    let machine = forge().with_module(USB_ONLY).evaluate_for_openzfs();
    let pool = GuestPool::new(guest, machine.pool());
    let usb = GuestPool::new(guest, "usbpool");
    // The target's root, made by the admin (docs/replication.md).
    guest.zfs(&["create", "-p", "usbpool/backup/forge"]);
    guest_system::install(guest, &machine);
    boot(guest, &machine);
    assert_state(guest, "zpersist-datasets.service", "active", &[]);
    let sonarr_dir = "/var/lib/sonarr/.config/NzbDrone";
    guest.sh_ok(&format!(
        "head -c 16777216 /dev/urandom >{sonarr_dir}/big && sync"
    ));

    // The grants zpersist-syncoid-allow gives the syncoid group, as the
    // module renders the unit (its ExecStart lines).
    let allow_unit = machine
        .units()
        .into_iter()
        .find(|u| u.name == "zpersist-syncoid-allow.service")
        .expect("the module renders zpersist-syncoid-allow.service");
    let grants: Vec<(String, String)> = allow_unit
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .map(|l| {
            let words: Vec<&str> = l.trim_start_matches('-').split_whitespace().collect();
            assert_eq!(&words[1..4], ["allow", "-g", "syncoid"], "{l}");
            (words[4].to_owned(), words[5].to_owned())
        })
        .collect();
    assert!(
        grants.iter().any(|(_, d)| d == "tank/services/sonarr")
            && grants.iter().any(|(_, d)| d == "usbpool/backup/forge"),
        "{grants:?}"
    );

    // The parent's first run (its children are ordered after it).
    let parent = "syncoid-services-to-usb.service";
    let child = "syncoid-services-sonarr-to-usb.service";
    let started = systemctl(guest, "start", &[parent]);
    assert!(
        started.success(),
        "{started:#?}\n{}",
        diagnostics(guest, &[parent, "zpersist-syncoid-allow.service"])
    );
    assert_state(guest, "zpersist-syncoid-allow.service", "active", &[]);
    for (perms, dataset) in &grants {
        let shown = guest.zfs(&["allow", dataset]);
        for perm in perms.split(',') {
            assert!(
                shown
                    .lines()
                    .any(|l| l.contains("group syncoid") && l.contains(perm)),
                "{dataset}: the group lacks {perm}:\n{shown}"
            );
        }
    }
    assert!(guest.exists("usbpool/backup/forge/services"));

    // Parent and child at once: the child's first run, slow, receives
    // under the parent's copy (nixpkgs grants the user there for it); the
    // parent's second run starts meanwhile and its ExecStopPost revokes
    // the user on exactly that dataset while the child still receives.
    guest.run_ok(&["systemctl", "start", "--no-block", child]);
    let (user, args) = main_process_user(guest, child);
    assert!(args.contains("-sanoid/bin/syncoid"), "{args}");
    assert_eq!(user, "syncoid", "{args}");
    let started = systemctl(guest, "start", &[parent]);
    assert!(
        started.success(),
        "{started:#?}\n{}",
        diagnostics(guest, &[parent])
    );
    assert_eq!(
        wait_for_run(guest, child),
        "success",
        "{}",
        diagnostics(guest, &[child])
    );
    let parent_done = stamp(guest, parent, "InactiveEnterTimestampMonotonic");
    let child_main_end = stamp(guest, child, "ExecMainExitTimestampMonotonic");
    assert!(
        parent_done < child_main_end,
        "the child's syncoid ended before the parent's revoke: nothing overlapped"
    );
    // Neither lost a permission: the user's per-run grants are gone, the
    // group's standing ones all there.
    for (perms, dataset) in &grants {
        let shown = guest.zfs(&["allow", dataset]);
        assert!(!shown.contains("user syncoid"), "{dataset}: {shown}");
        for perm in perms.split(',') {
            assert!(
                shown
                    .lines()
                    .any(|l| l.contains("group syncoid") && l.contains(perm)),
                "{dataset}: the group lost {perm}:\n{shown}"
            );
        }
    }
    let copy = "usbpool/backup/forge/services/sonarr";
    assert!(
        guest.get(copy, "logicalreferenced").parse::<u64>().unwrap() >= 16 << 20,
        "{copy} lacks sonarr's data"
    );
    // None ran as root: OpenZFS's pool history names the user of every
    // snapshot, hold, send and receive.
    for history_pool in [&pool.name, &usb.name] {
        let history = guest.run_ok(&["zpool", "history", "-l", history_pool]);
        // preseed-restore marks sonarr's new dataset fresh, as root.
        syncoid_ran_as_its_user(&history, "usb", &["zfs set com.zpersist:preseed"]);
    }
    let failed = guest.run_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(failed, "", "{}", diagnostics(guest, &[]));

    // replication-lag's unit after them reads the lag of what they sent
    // (none: the newest snapshot on each side is the same), and fails,
    // naming each, for the services whose units never ran (a person's
    // business: exit 1).
    let lag = "zpersist-replication-lag.service";
    let started = systemctl(guest, "start", &[lag]);
    assert!(!started.success(), "{started:#?}");
    assert_eq!(unit_property(guest, lag, "Result"), "exit-code");
    let journal = guest.run_ok(&["journalctl", "--no-pager", "-o", "cat", "-u", lag]);
    for (source, copy) in [
        ("tank/services/sonarr", copy),
        ("tank/services", "usbpool/backup/forge/services"),
    ] {
        let line = journal
            .lines()
            .find(|l| l.starts_with(&format!("{source} -> usb ({copy}): ")))
            .unwrap_or_else(|| panic!("no lag line for {source}:\n{journal}"));
        let newest = guest.snapshots(source).pop().unwrap();
        assert!(
            line.contains("lag 0 s")
                && line.contains(&format!("newest local {newest} "))
                && line.contains(&format!("newest on target {newest} ")),
            "{line}"
        );
    }
    for never in ["home-assistant", "jellyfin", "plex", "postgresql", "radarr"] {
        assert!(
            journal.contains(&format!(
                "error: tank/services/{never} -> usb: usbpool/backup/forge/services/{never} does not exist on this host"
            )),
            "{never}:\n{journal}"
        );
    }

    stop_all(guest, &machine);
}
