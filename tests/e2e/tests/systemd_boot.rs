//! The units zpersist generates, running under a real systemd.
//!
//! Each test boots a Debian container with systemd as PID 1 and its own
//! zfs-fuse (zpersist_e2e::container), with forge's units, plan, /etc
//! files, users and stand-in services installed as NixOS would install
//! them (zpersist_e2e::machine), and watches what systemd does.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use zpersist_e2e::container::Container;
use zpersist_e2e::machine::{self, Host, Machine, STAND_IN, STAND_IN_LOG};
use zpersist_e2e::stand_in::Daemon;

/// forge with its notifications in the journal (machine::NOTIFY_TO_JOURNAL).
fn forge() -> Host {
    Host::new("forge").with_module(machine::NOTIFY_TO_JOURNAL)
}

const SETTLE: Duration = Duration::from_secs(60);

#[test]
fn boot_creates_the_datasets_and_starts_each_service_on_its_own() {
    let machine = forge().evaluate();
    let mut c = Container::new("boot");
    machine::boot(&mut c, &machine);

    c.assert_state("zpersist-datasets.service", "active", &[]);
    let listed = c.exec_ok(&["zfs", "list", "-H", "-o", "name", "-r", machine.pool()]);
    for dataset in machine.datasets() {
        assert!(
            listed.lines().any(|l| l == dataset),
            "{dataset} missing:\n{listed}"
        );
    }
    // Owner, group and mode as declared, setgid included (media: 2775).
    for dataset in machine.plan["datasets"].as_array().unwrap() {
        let (Some(mountpoint), Some(mode)) = (
            c.exec(&[
                "zfs",
                "get",
                "-H",
                "-o",
                "value",
                "mountpoint",
                dataset["name"].as_str().unwrap(),
            ])
            .stdout
            .trim()
            .strip_prefix('/')
            .map(|m| format!("/{m}")),
            dataset["mode"].as_str(),
        ) else {
            continue;
        };
        let stat = c.exec_ok(&["stat", "-c", "%a %U %G", &mountpoint]);
        let want = format!(
            "{} {} {}",
            mode.trim_start_matches('0'),
            dataset["owner"].as_str().unwrap_or("root"),
            dataset["group"].as_str().unwrap_or("root")
        );
        assert_eq!(stat.trim(), want, "{mountpoint}");
    }
    for (name, dataset, mountpoint, user, units) in machine.services() {
        let check = format!("zpersist-{name}-mounted.service");
        for unit in std::iter::once(&check).chain(&units) {
            c.assert_state(unit, "active", &[&check]);
        }
        let log = format!("{mountpoint}/{STAND_IN_LOG}");
        let written = c.wait_until(&format!("{log} to be written"), SETTLE, |c| {
            let out = c.exec(&["cat", &log]);
            if out.success() && !out.stdout.is_empty() {
                Ok(out.stdout)
            } else {
                Err(out.stderr)
            }
        });
        let who = user.clone().unwrap_or_else(|| "root".into());
        assert!(
            written.trim_end().ends_with(&format!(" {who}")),
            "{log}: {written}"
        );
        let source = c.exec_ok(&["findmnt", "-n", "-o", "SOURCE", "--target", &log]);
        assert_eq!(source.trim(), dataset, "{log} is not on {dataset}");
        assert!(
            !c.host_path(&log).exists(),
            "{log} was written to the directory under the mountpoint"
        );
        // Ordering: the service started after its check passed, which ran
        // after the datasets unit finished.
        let ts = |unit: &str, prop: &str| -> u64 { c.unit_property(unit, prop).parse().unwrap() };
        let datasets_done = ts("zpersist-datasets.service", "ActiveEnterTimestampMonotonic");
        let check_start = ts(&check, "InactiveExitTimestampMonotonic");
        let check_done = ts(&check, "ActiveEnterTimestampMonotonic");
        for unit in &units {
            let started = ts(unit, "ExecMainStartTimestampMonotonic");
            assert!(
                datasets_done <= check_start && check_done <= started,
                "{unit}: datasets done {datasets_done}, check {check_start}..{check_done}, started {started}"
            );
        }
    }
    // After the pool is imported and mounted.
    let mounted = c.unit_property("zfs-mount.service", "ActiveEnterTimestampMonotonic");
    let datasets_start = c.unit_property(
        "zpersist-datasets.service",
        "InactiveExitTimestampMonotonic",
    );
    assert!(
        mounted.parse::<u64>().unwrap() <= datasets_start.parse::<u64>().unwrap(),
        "zpersist-datasets.service started ({datasets_start}) before zfs-mount.service finished ({mounted})"
    );
    let cycles = c.sh_ok("journalctl -b --no-pager -o cat | grep -i 'ordering cycle' || true");
    assert_eq!(cycles, "", "ordering cycles at boot");
    // The harness itself: this container's systemd alone manages its cgroups.
    let cgroups = c.sh_ok("journalctl -b --no-pager -o cat | grep 'control group' || true");
    assert_eq!(cgroups, "", "the container shares its cgroups with another");
    let failed = c.exec_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(failed, "", "{}", c.diagnostics(&[]));
}

/// A local replication target whose pool is not there (a USB disk that is
/// not plugged in): every syncoid run to it fails.
const UNPLUGGED_TARGET: &str = r#"{
  zpersist.replication.targets.usb.dataset = "usbpool/backup/forge";
  zpersist.datasets."media/tv".replicateTo = [ "usb" ];
}"#;

fn events(c: &Container) -> BTreeMap<String, Value> {
    machine::notify_events(c)
}

fn wait_for_event(c: &Container, unit: &str) -> Value {
    machine::wait_for_notification(c, unit, SETTLE)
}

/// The lines a stand-in wrote into its data directory (seen inside).
fn stand_in_lines(c: &Container, dir: &str) -> Vec<String> {
    let out = c.exec(&["cat", &format!("{dir}/{STAND_IN_LOG}")]);
    out.stdout.lines().map(str::to_owned).collect()
}

/// Waits until a stand-in has written `n` lines (a started service
/// writes its line a moment after `systemctl start` returns).
fn wait_for_lines(c: &Container, dir: &str, n: usize, what: &str) {
    c.wait_until(
        &format!("{n} lines in {dir}/{STAND_IN_LOG} ({what})"),
        SETTLE,
        |c| {
            let lines = stand_in_lines(c, dir);
            if lines.len() == n {
                Ok(())
            } else {
                Err(format!("{lines:?}"))
            }
        },
    );
}

/// The service's (dataset, mountpoint).
fn service_dataset(machine: &Machine, name: &str) -> (String, String) {
    let json = machine.services_json();
    let s = &json["services"][name];
    (
        s["dataset"].as_str().unwrap().to_owned(),
        s["mountpoint"].as_str().unwrap().to_owned(),
    )
}

fn assert_on_dataset(c: &Container, dir: &str, dataset: &str) {
    let log = format!("{dir}/{STAND_IN_LOG}");
    let source = c.exec_ok(&["findmnt", "-n", "-o", "SOURCE", "--target", &log]);
    assert_eq!(source.trim(), dataset, "{log} is not on {dataset}");
}

const MIGRATE: &str = "/nix/store/00000000000000000000000000000000-zpersist/bin/migrate-to-dataset";

#[test]
fn a_dataset_that_cannot_be_mounted_keeps_only_its_service_down_and_failures_are_notified() {
    let machine = forge().with_module(UNPLUGGED_TARGET).evaluate();
    let (dataset, dir) = service_dataset(&machine, "sonarr");
    let mut c = Container::new("unmountable");
    // Sonarr ran before zpersist: its data directory holds files, which
    // ensure-datasets refuses to hide under a new mount.
    c.write(
        &format!("{dir}/config.xml"),
        "<Config><Port>8989</Port></Config>\n",
        0o644,
    );
    machine::boot(&mut c, &machine);

    let sonarr = [
        "sonarr.service",
        "zpersist-sonarr-mounted.service",
        "zpersist-datasets.service",
    ];
    c.assert_state("zpersist-datasets.service", "failed", &sonarr);
    c.assert_state("zpersist-sonarr-mounted.service", "failed", &sonarr);
    c.assert_state("sonarr.service", "inactive", &sonarr);
    assert_eq!(
        c.unit_property("sonarr.service", "ExecMainStartTimestampMonotonic"),
        "0",
        "sonarr.service ran"
    );
    assert!(stand_in_lines(&c, &dir).is_empty());
    assert!(
        c.exec(&["zfs", "list", &dataset]).code != Some(0),
        "{dataset} was created"
    );
    // The others started, each on its own dataset.
    for (name, other, mountpoint, _, units) in machine.services() {
        if name == "sonarr" {
            continue;
        }
        for unit in &units {
            c.assert_state(unit, "active", &[]);
        }
        wait_for_lines(&c, &mountpoint, 1, &name);
        assert_on_dataset(&c, &mountpoint, &other);
    }

    // Each failure reached zpersist-notify@ with its context.
    let check = wait_for_event(&c, "zpersist-sonarr-mounted.service");
    assert_eq!(check["host"], "forge");
    assert_eq!(check["kind"], "unit-failed");
    assert_eq!(check["datasets"], serde_json::json!([dataset]));
    assert_eq!(
        check["summary"],
        "mount check of sonarr's datasets: sonarr.service does not start until they are mounted"
    );
    let journal = check["journal"].to_string();
    assert!(
        journal.contains(&dataset),
        "the check's journal names {dataset}: {check:#}"
    );
    let datasets = wait_for_event(&c, "zpersist-datasets.service");
    assert!(
        datasets["journal"]
            .to_string()
            .contains("already holds files"),
        "{datasets:#}"
    );
    assert!(datasets["datasets"]
        .as_array()
        .unwrap()
        .contains(&dataset.clone().into()));
    // A failed syncoid, too (its target pool is not imported).
    let syncoid = "syncoid-media-tv-to-usb.service";
    let _ = c.exec(&["systemctl", "start", syncoid]);
    c.assert_state(syncoid, "failed", &[]);
    let replication = wait_for_event(&c, syncoid);
    assert_eq!(
        replication["datasets"],
        serde_json::json!(["tank/media/tv"])
    );
    assert_eq!(
        replication["summary"],
        "replication of tank/media/tv to usb (usbpool/backup/forge/media/tv on this host)"
    );
    assert!(
        !replication["journal"].as_array().unwrap().is_empty(),
        "syncoid's journal tail: {replication:#}"
    );
    for unit in [
        "zpersist-sonarr-mounted.service",
        "zpersist-datasets.service",
        syncoid,
    ] {
        let notify = format!("zpersist-notify@{unit}.service");
        assert_eq!(
            c.unit_property(&notify, "Result"),
            "success",
            "{}",
            c.diagnostics(&[&notify])
        );
    }

    // The way out the message points at: migrate-to-dataset (sonarr is
    // stopped: systemctl says so), then the service starts on its dataset.
    // Once the notifications are done, as an admin would come later.
    c.wait_for_jobs(SETTLE);
    let migrated = c.exec(&[MIGRATE, "sonarr"]);
    assert!(migrated.success(), "{migrated:#?}");
    c.wait_for_mount(&dir, SETTLE);
    c.systemctl("start", &["sonarr.service"], &[]);
    c.assert_state("sonarr.service", "active", &sonarr);
    assert_on_dataset(&c, &dir, &dataset);
    assert_eq!(
        c.exec_ok(&["cat", &format!("{dir}/config.xml")]),
        "<Config><Port>8989</Port></Config>\n"
    );
    c.systemctl("restart", &["zpersist-datasets.service"], &[]);
    c.assert_state("zpersist-datasets.service", "active", &[]);
}

/// forge before zpersist managed Sonarr: Sonarr runs from its nixpkgs
/// unit, its data in a plain directory (nixpkgs' tmpfiles rule makes it).
fn forge_without_sonarr(machine: &Machine) -> Host {
    let (_, dir) = service_dataset(machine, "sonarr");
    forge()
        .with_module(&format!(
            r#"{{ lib, ... }}: {{ zpersist.services.sonarr.enable = lib.mkForce false;
                 systemd.tmpfiles.rules = [ "d '{dir}' 0700 sonarr sonarr - -" ]; }}"#
        ))
        .with_daemon(Daemon {
            name: "sonarr".into(),
            exec_start: format!("{STAND_IN} {dir}"),
            user: Some("sonarr".into()),
            group: Some("sonarr".into()),
        })
}

#[test]
fn migrate_to_dataset_refuses_while_systemd_says_the_unit_is_active() {
    let with_sonarr = forge().evaluate();
    let before = forge_without_sonarr(&with_sonarr).evaluate();
    let (dataset, dir) = service_dataset(&with_sonarr, "sonarr");
    let mut c = Container::new("migrate");
    machine::boot(&mut c, &before);
    c.assert_state("sonarr.service", "active", &[]);
    wait_for_lines(&c, &dir, 1, "Sonarr, before zpersist");
    assert!(
        c.host_path(&format!("{dir}/{STAND_IN_LOG}")).exists(),
        "a plain directory"
    );

    // The services file of the configuration to come (activation writes
    // /etc before the switch restarts units). The stand-in holds nothing
    // in the directory, so only systemd can tell that Sonarr runs.
    let services = with_sonarr.etc["zpersist/services.json"]
        .text
        .clone()
        .unwrap();
    c.write("/etc/zpersist/services.json", services, 0o444);
    let refused = c.exec(&[MIGRATE, "sonarr"]);
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert_eq!(refused.code, Some(1), "{said}");
    assert!(said.contains("sonarr.service is active"), "{said}");
    assert!(said.contains("systemctl stop sonarr.service"), "{said}");
    assert!(
        !said.contains("process(es) use"),
        "the process scan found something: {said}"
    );
    assert!(!said.contains("systemd did not answer"), "{said}");
    assert!(
        c.exec(&["zfs", "list", &dataset]).code != Some(0),
        "{dataset} was created"
    );
    assert_eq!(stand_in_lines(&c, &dir).len(), 1);
    assert!(!c.host_path(&format!("{dir}.zpersist-new")).exists());

    // Stopped, it moves; the switch then starts Sonarr on its dataset.
    c.systemctl("stop", &["sonarr.service"], &[]);
    let migrated = c.exec(&[MIGRATE, "sonarr"]);
    assert!(migrated.success(), "{migrated:#?}");
    c.wait_for_mount(&dir, SETTLE);
    let switched = machine::switch(&c, &before, &with_sonarr);
    assert!(
        switched
            .restarted
            .contains(&"zpersist-datasets.service".to_string()),
        "{switched:?}"
    );
    c.assert_state(
        "sonarr.service",
        "active",
        &["zpersist-sonarr-mounted.service"],
    );
    c.assert_state("zpersist-datasets.service", "active", &[]);
    assert_on_dataset(&c, &dir, &dataset);
    wait_for_lines(&c, &dir, 2, "the first line was migrated");
}

/// An invocation id per unit: it changes whenever a unit is (re)started.
fn invocations(c: &Container, units: &[String]) -> BTreeMap<String, String> {
    units
        .iter()
        .map(|u| (u.clone(), c.unit_property(u, "InvocationID")))
        .collect()
}

/// Every unit a service of `machine` has: its mount check and its units.
fn service_units(machine: &Machine) -> Vec<String> {
    machine
        .services()
        .into_iter()
        .flat_map(|(name, _, _, _, units)| {
            std::iter::once(format!("zpersist-{name}-mounted.service")).chain(units)
        })
        .collect()
}

#[test]
fn a_switch_creates_new_datasets_and_leaves_running_services_alone() {
    let before = forge().evaluate();
    let after = forge()
        .with_module(
            r#"{
              zpersist.datasets."media/music" = { group = "media"; mode = "2775"; };
              zpersist.services.navidrome = { enable = true; user = "navidrome"; group = "navidrome"; mode = "0750"; };
              users.users.navidrome = { isSystemUser = true; group = "navidrome"; };
              users.groups.navidrome = { };
            }"#,
        )
        .evaluate();
    let mut c = Container::new("switch");
    machine::boot(&mut c, &before);
    let units = service_units(&before);
    let running = invocations(&c, &units);
    for (unit, id) in &running {
        assert!(
            !id.is_empty() && c.active_state(unit) == "active",
            "{}",
            c.diagnostics(&[unit])
        );
    }

    let switched = machine::switch(&c, &before, &after);
    assert_eq!(
        switched.restarted,
        ["zpersist-datasets.service"],
        "{switched:?}"
    );
    assert!(switched.stopped.is_empty(), "{switched:?}");
    c.assert_state("zpersist-datasets.service", "active", &[]);
    for dataset in ["tank/media/music", "tank/services/navidrome"] {
        let mounted = c.exec_ok(&["zfs", "get", "-H", "-o", "value", "mounted", dataset]);
        assert_eq!(mounted.trim(), "yes", "{dataset}");
    }
    assert_eq!(
        c.exec_ok(&["stat", "-c", "%a %G", "/srv/media/music"])
            .trim(),
        "2775 media"
    );
    c.assert_state(
        "navidrome.service",
        "active",
        &["zpersist-navidrome-mounted.service"],
    );
    assert_on_dataset(&c, "/var/lib/navidrome", "tank/services/navidrome");
    // Its user came with the switch's activation, before the datasets unit ran.
    assert_eq!(
        c.exec_ok(&["stat", "-c", "%U %a", "/var/lib/navidrome"])
            .trim(),
        "navidrome 750"
    );
    assert_eq!(
        invocations(&c, &units),
        running,
        "a running service was restarted"
    );
}

/// Creation time and guid of every dataset: what changes if one is recreated.
fn identities(c: &Container, machine: &Machine) -> String {
    c.exec_ok(&[
        "zfs",
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value",
        "-r",
        "guid,creation",
        machine.pool(),
    ])
}

/// Mounts of zfs-fuse in the container (mountpoint and source).
fn zfs_mounts(c: &Container) -> Vec<String> {
    let mut mounts: Vec<String> = c
        .exec_ok(&[
            "findmnt",
            "-n",
            "-r",
            "-t",
            "fuse.zfs",
            "-o",
            "TARGET,SOURCE",
        ])
        .lines()
        .map(str::to_owned)
        .collect();
    mounts.sort();
    mounts
}

#[test]
fn stop_start_and_reboot_recreate_nothing_and_leak_nothing() {
    let machine = forge().evaluate();
    let (dataset, dir) = service_dataset(&machine, "sonarr");
    let mut c = Container::new("cycles");
    machine::boot(&mut c, &machine);
    let datasets = identities(&c, &machine);
    let mounts = zfs_mounts(&c);
    // The pool's root and every dataset but `services` (canmount=off).
    assert_eq!(mounts.len(), 10, "{mounts:#?}");
    let units = service_units(&machine);
    let others: Vec<String> = units
        .iter()
        .filter(|u| !u.contains("sonarr"))
        .cloned()
        .collect();
    let running = invocations(&c, &others);

    for round in 1..=3 {
        // systemd's start limit (5 in 10 s) is for crash loops, not for this.
        c.exec_ok(&["systemctl", "reset-failed", "sonarr.service"]);
        c.systemctl(
            "restart",
            &["sonarr.service"],
            &["zpersist-sonarr-preseed.service"],
        );
        c.systemctl("restart", &["zpersist-datasets.service"], &[]);
        // Stopping the check stops Sonarr (Requires=); starting Sonarr
        // runs the check again.
        c.systemctl("stop", &["zpersist-sonarr-mounted.service"], &[]);
        assert_eq!(
            c.active_state("sonarr.service"),
            "inactive",
            "round {round}"
        );
        c.systemctl("start", &["sonarr.service"], &[]);
        c.assert_state("sonarr.service", "active", &[]);
        wait_for_lines(&c, &dir, 1 + 2 * round, &format!("round {round}"));
    }
    let last = c.exec_ok(&[
        "journalctl",
        "--no-pager",
        "-o",
        "cat",
        "-n",
        "1",
        "-u",
        "zpersist-datasets.service",
        "_COMM=ensure-datasets",
    ]);
    assert!(last.contains("datasets in shape, nothing to do"), "{last}");
    assert_eq!(
        identities(&c, &machine),
        datasets,
        "a dataset was recreated"
    );
    assert_eq!(zfs_mounts(&c), mounts, "mounts changed");
    assert_on_dataset(&c, &dir, &dataset);
    assert_eq!(
        invocations(&c, &others),
        running,
        "another service was restarted"
    );
    let failed = c.exec_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(failed, "", "{}", c.diagnostics(&[]));
    // Nothing left running in the oneshots, no notification.
    for unit in [
        "zpersist-datasets.service",
        "zpersist-sonarr-mounted.service",
    ] {
        let tasks = c.unit_property(unit, "TasksCurrent");
        assert!(
            tasks == "0" || tasks == "[not set]",
            "{unit}: {tasks} tasks"
        );
    }
    assert_eq!(events(&c), BTreeMap::new());

    // A reboot finds the pool in shape and every service on its data.
    c.reboot();
    c.wait_for_jobs(SETTLE);
    assert_eq!(
        identities(&c, &machine),
        datasets,
        "a dataset was recreated at boot"
    );
    assert_eq!(zfs_mounts(&c), mounts, "mounts changed at boot");
    let log = c.exec_ok(&[
        "journalctl",
        "-b",
        "--no-pager",
        "-o",
        "cat",
        "-u",
        "zpersist-datasets.service",
        "_COMM=ensure-datasets",
    ]);
    assert!(log.contains("datasets in shape, nothing to do"), "{log}");
    for unit in &units {
        c.assert_state(unit, "active", &[]);
    }
    wait_for_lines(&c, &dir, 8, "Sonarr's data survived the reboot");
    assert_on_dataset(&c, &dir, &dataset);

    // Lost data: the dataset comes back empty and Sonarr starts on it.
    // Preseeding (not there yet) will restore it first; its test starts
    // from machine::wipe_dataset too, and turns this 1 into 8.
    machine::wipe_dataset(&c, &dataset, &["sonarr.service"]);
    c.systemctl("start", &["sonarr.service"], &[]);
    wait_for_lines(&c, &dir, 1, "a fresh, empty dataset");
    assert_on_dataset(&c, &dir, &dataset);
}

/// forge with Sonarr preseeded from its USB replica only (a second pool in
/// the container; the NAS is out of reach there).
const PRESEED_FROM_USB: &str = r#"{ lib, ... }: {
  zpersist.services.sonarr.preseed.sources = lib.mkOverride 40 [ { replica = "usb"; } ];
}"#;

/// Preseed under systemd: a new service starts fresh; a lost dataset is
/// restored by zpersist-sonarr-preseed.service before Sonarr starts; with
/// the replica out of reach the preseed fails, Sonarr stays down and the
/// failure is notified; the next start, once the replica is back, restores.
#[test]
fn a_lost_dataset_is_restored_before_its_service_starts_and_a_failed_preseed_keeps_it_down() {
    let machine = forge().with_module(PRESEED_FROM_USB).evaluate();
    let mut c = Container::new("preseed");
    machine::install_zfs(&c, &[machine.pool(), "usbpool"]);
    machine.install(&c, None);
    c.boot();
    c.wait_for_jobs(SETTLE);
    let (dataset, dir) = service_dataset(&machine, "sonarr");
    wait_for_lines(&c, &dir, 1, "the first start");
    // Nothing anywhere yet (the USB pool holds no copy): a new service.
    let provenance = |c: &Container| {
        c.exec_ok(&[
            "zfs",
            "get",
            "-H",
            "-o",
            "value",
            "com.zpersist:preseed,com.zpersist:preseed-source",
            &dataset,
        ])
    };
    assert!(provenance(&c).starts_with("fresh"), "{}", provenance(&c));

    // A copy on the USB pool, then the dataset is lost.
    c.sh_ok(&format!(
        "zfs create -p usbpool/backup/forge/services && zfs snapshot {dataset}@before && \
         zfs send {dataset}@before | zfs receive -u usbpool/backup/forge/services/sonarr"
    ));
    machine::wipe_dataset(&c, &dataset, &["sonarr.service"]);
    c.systemctl(
        "start",
        &["sonarr.service"],
        &["zpersist-sonarr-preseed.service"],
    );
    // The line written before the copy is back, and the new start's.
    wait_for_lines(&c, &dir, 2, "the restored data and one more start");
    assert_on_dataset(&c, &dir, &dataset);
    let restored = provenance(&c);
    assert!(
        restored.starts_with("restored\nreplica:usb:usbpool/backup/forge/services/sonarr@before"),
        "{restored}"
    );
    let started = |unit: &str| {
        c.unit_property(unit, "ExecMainStartTimestampMonotonic")
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        started("sonarr.service") > started("zpersist-sonarr-preseed.service"),
        "sonarr started before its preseed"
    );

    // The replica out of reach (the disk unplugged) and the data lost
    // again: the preseed fails, Sonarr stays down, the failure is notified.
    c.exec_ok(&["zpool", "export", "usbpool"]);
    machine::wipe_dataset(&c, &dataset, &["sonarr.service"]);
    let _ = c.exec(&["systemctl", "start", "sonarr.service"]);
    c.assert_state("zpersist-sonarr-preseed.service", "failed", &[]);
    assert_ne!(c.active_state("sonarr.service"), "active");
    let event = wait_for_event(&c, "zpersist-sonarr-preseed.service");
    assert_eq!(event["datasets"], serde_json::json!([dataset]));
    assert!(
        event["journal"].to_string().contains("usbpool"),
        "{event:#}"
    );
    assert!(
        stand_in_lines(&c, &dir).is_empty(),
        "sonarr wrote onto the empty dataset"
    );

    // Plugged back in, the next start restores (no restart loop in between).
    c.exec_ok(&["zpool", "import", "-d", machine::POOL_DIR, "usbpool"]);
    c.systemctl(
        "start",
        &["sonarr.service"],
        &["zpersist-sonarr-preseed.service"],
    );
    wait_for_lines(&c, &dir, 2, "restored on the next start");
    assert!(provenance(&c).starts_with("restored"), "{}", provenance(&c));
}
