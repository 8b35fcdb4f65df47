//! The units zpersist generates, running under a real systemd.
//!
//! Each test boots a Debian container with systemd as PID 1 and its own
//! zfs-fuse (zpersist_e2e::container), with forge's units, plan, /etc
//! files, users and stand-in services installed as NixOS would install
//! them (zpersist_e2e::machine), and watches what systemd does.

use std::time::Duration;

use zpersist_e2e::container::Container;
use zpersist_e2e::machine::{self, Host, Machine, STAND_IN_LOG};

/// forge with a notification command that writes each event to the
/// journal (tag `zpersist-event`), where the tests read it back.
const NOTIFY_TO_JOURNAL: &str = r#"{
  zpersist.notify.command = "/usr/bin/systemd-cat";
  zpersist.notify.commandArgs = [ "-t" "zpersist-event" ];
}"#;

fn forge() -> Host {
    Host::new("forge").with_module(NOTIFY_TO_JOURNAL)
}

const SETTLE: Duration = Duration::from_secs(60);

/// Every service of services.json: (name, dataset, mountpoint, user, units).
fn services(machine: &Machine) -> Vec<(String, String, String, Option<String>, Vec<String>)> {
    let json = machine.services_json();
    json["services"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                s["dataset"].as_str().unwrap().to_owned(),
                s["mountpoint"].as_str().unwrap().to_owned(),
                s["user"].as_str().map(str::to_owned),
                s["units"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn boot_creates_the_datasets_and_starts_each_service_on_its_own() {
    let machine = forge().evaluate();
    let mut c = Container::new("boot");
    machine::boot(&mut c, &machine);

    let state = c.active_state("zpersist-datasets.service");
    assert_eq!(
        state,
        "active",
        "{}",
        c.diagnostics(&["zpersist-datasets.service"])
    );
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
    for (name, dataset, mountpoint, user, units) in services(&machine) {
        let check = format!("zpersist-{name}-mounted.service");
        for unit in std::iter::once(&check).chain(&units) {
            let state = c.active_state(unit);
            assert_eq!(
                state,
                "active",
                "{}",
                c.diagnostics(&[unit.as_str(), &check])
            );
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
    let cycles = c.sh_ok("journalctl -b --no-pager -o cat | grep -i 'ordering cycle' || true");
    assert_eq!(cycles, "", "ordering cycles at boot");
    let failed = c.exec_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(failed, "", "{}", c.diagnostics(&[]));
}
