//! The forge example's replication as NixOS would run it: every syncoid
//! unit (nixpkgs' unit, tests/nix/model-syncoid.nix, with what zpersist adds)
//! and zpersist-syncoid-allow.service, started at once, children first,
//! with the ordering systemd gives them (zpersist_e2e::units), running
//! their real ExecStartPre / ExecStart / ExecStopPost lines: real syncoid on
//! zfs-fuse, over the loopback sshd to `nas`, locally to `usb`.
//!
//! What the test machine forces, and nothing else:
//! - forge's pool and targets point at test pools and the loopback sshd;
//! - zfs-fuse has no `zfs allow`/`unallow`: the booted system's zfs in the
//!   delegation lines is tests/env/delegation-zfs, which logs them; the log
//!   is replayed against what each running unit needs
//!   (zpersist_e2e::delegation) — so permissions are checked as data;
//! - syncoid gets `--no-resume` and the `zfs get -t` wrapper (zfs-fuse);
//! - the /etc/zpersist files are written to a scratch area under /run
//!   (a unit with PrivateTmp= gets a /tmp of its own);
//! - the test runs as root: `User=syncoid` is not switched to.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use serde_json::Value;
use zpersist_e2e::delegation::{lost_permissions, read_log, Need};
use zpersist_e2e::nix::Eval;
use zpersist_e2e::pool::{exists, zfs, TestPool};
use zpersist_e2e::syncoid::{path_with_wrapper, shell_words};
use zpersist_e2e::units::{private_tmp_argv, run_jobs, Unit};
use zpersist_e2e::{reachable, sshd};

/// forge as it is, with its pool and targets on this machine's test pools.
fn forge_here(pool: &str, nas: &str, usb: &str, host_key: &str) -> String {
    format!(
        r#"{{ lib, ... }}: {{
  zpersist.pool = lib.mkForce "{pool}";
  zpersist.replication.targets.nas = {{
    host = lib.mkForce "{host}"; port = {port}; user = lib.mkForce "{user}";
    dataset = lib.mkForce "{nas}/backup/forge";
    sshKey = lib.mkForce "{key}"; hostKey = lib.mkForce "{host_key}";
  }};
  zpersist.replication.targets.usb.dataset = lib.mkForce "{usb}/backup/forge";
}}"#,
        host = sshd::HOST,
        port = sshd::PORT,
        user = sshd::USER,
        key = sshd::client_key(),
    )
}

/// Runs one Exec line as this machine can: store scripts through `sh` with
/// the booted system's zfs replaced, programs of the stub store mapped.
struct LineRunner {
    delegation_zfs: String,
    log: Utf8PathBuf,
    scratch: Utf8PathBuf,
    /// /etc/zpersist/... -> scratch file.
    etc: BTreeMap<String, String>,
}

impl LineRunner {
    fn argv(&self, command: &str) -> Vec<String> {
        let first = command.split(' ').next().unwrap_or_default();
        if first.starts_with("/nix/store/") && !first.contains("00000000000000000000000000000000") {
            // A script the module wrote (pkgs.writeShellScript).
            let text = std::fs::read_to_string(first).unwrap_or_else(|e| panic!("{first}: {e}"));
            let copy = self.scratch.join(first.rsplit('/').next().unwrap());
            std::fs::write(
                &copy,
                text.replace("/run/booted-system/sw/bin/zfs", &self.delegation_zfs),
            )
            .unwrap();
            return vec!["sh".into(), copy.to_string()];
        }
        let mut argv: Vec<String> = shell_words(command)
            .into_iter()
            .map(|arg| {
                self.etc
                    .iter()
                    .fold(arg, |arg, (etc, file)| arg.replace(etc, file))
            })
            .collect();
        match argv[0].as_str() {
            "/run/booted-system/sw/bin/zfs" => argv[0] = self.delegation_zfs.clone(),
            p if p.ends_with("-openssh/bin/ssh") => argv[0] = "ssh".into(),
            p if p.ends_with("-sanoid/bin/syncoid") => {
                argv[0] = "syncoid".into();
                // zfs-fuse cannot resume a receive.
                argv.insert(1, "--no-resume".into());
            }
            other => panic!("no program on this machine stands for {other}"),
        }
        argv
    }

    /// Runs it to the end, at most 3 minutes.
    fn run(&self, unit: &Unit, command: &str) -> (bool, String) {
        let mut argv = self.argv(command);
        if unit.private_tmp {
            argv = private_tmp_argv(&argv);
        }
        let handle = duct::cmd(&argv[0], &argv[1..])
            .env("PATH", path_with_wrapper())
            .env("ZFS_DELEGATION_LOG", self.log.as_str())
            .env("ZPERSIST_UNIT", &unit.name)
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .start()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(out) = handle.try_wait().unwrap() {
                return (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                );
            }
            if Instant::now() > deadline {
                let _ = handle.kill();
                return (false, format!("{argv:?} still ran after 180 s: killed"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn forge_replicates_in_any_start_order_and_no_run_loses_its_permissions() {
    let host_key = sshd::require();
    let source = TestPool::new("forge");
    let nas = source.companion("nas");
    let usb = source.companion("usb");

    let eval = Eval::host("forge")
        .with_module(&forge_here(&source.name, &nas.name, &usb.name, &host_key))
        .read_write();
    assert_eq!(eval.attr("failedAssertions"), serde_json::json!([]));
    let services: BTreeMap<String, Value> =
        serde_json::from_value(eval.attr("config.systemd.services")).unwrap();
    let syncoid = eval.attr("config.services.syncoid");
    let etc = eval.attr("config.environment.etc");

    // The datasets forge replicates, holding data; the targets' roots.
    let commands = syncoid["commands"].as_object().unwrap();
    for command in commands.values() {
        let dataset = command["source"].as_str().unwrap();
        zfs(&["create", "-p", dataset]);
    }
    for command in commands.values() {
        let dataset = command["source"].as_str().unwrap();
        let mountpoint = zfs(&["get", "-H", "-o", "value", "mountpoint", dataset]);
        std::fs::write(format!("{}/data", mountpoint.trim()), dataset).unwrap();
    }
    for root in [nas.ds("backup/forge"), usb.ds("backup/forge")] {
        zfs(&["create", "-p", &root]);
    }

    let scratch = Utf8PathBuf::from(format!("/run/zpersist-e2e/{}", source.name));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let mut etc_files = BTreeMap::new();
    for (name, file) in etc.as_object().unwrap() {
        let path = scratch.join(name.replace('/', "_"));
        let text = file["text"].as_str().unwrap_or_default();
        std::fs::write(&path, text).unwrap();
        etc_files.insert(format!("/etc/{name}"), path.to_string());
    }
    let runner = LineRunner {
        delegation_zfs: reachable::env_dir("delegation-zfs").join("zfs").to_string(),
        log: scratch.join("delegation.log"),
        scratch: scratch.clone(),
        etc: etc_files,
    };
    std::fs::write(&runner.log, "").unwrap();

    // Every syncoid unit and the unit holding the group's permissions;
    // started deepest source first (the reverse of parent-first), 50 ms
    // apart.
    let units: Vec<Unit> = services
        .iter()
        .filter(|(name, _)| name.starts_with("syncoid-") || *name == "zpersist-syncoid-allow")
        .map(|(name, def)| Unit::from_definition(name, def))
        .collect();
    let depth = |unit: &Unit| -> usize {
        let name = unit
            .name
            .trim_end_matches(".service")
            .trim_start_matches("syncoid-");
        commands
            .iter()
            .find(|(command, _)| *command == name || command.replace('/', "-") == name)
            .map_or(0, |(_, c)| {
                c["source"].as_str().unwrap().matches('/').count()
            })
    };
    let mut order: Vec<&Unit> = units.iter().collect();
    order.sort_by_key(|u| std::cmp::Reverse((depth(u), u.name.clone())));
    let order: Vec<String> = order.iter().map(|u| u.name.clone()).collect();
    assert!(
        order.len() > 8,
        "forge replicates its services to two targets: {order:?}"
    );

    let runs = run_jobs(
        &units,
        &order,
        Duration::from_millis(50),
        Duration::from_secs(600),
        &|unit, line| runner.run(unit, line),
    );

    // Every first run succeeds, whatever the start order.
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| !r.succeeded)
        .map(|r| format!("--- {}\n{}", r.unit, r.log))
        .collect();
    assert!(failed.is_empty(), "units failed:\n{}", failed.join("\n"));
    for command in commands.values() {
        let target = command["target"].as_str().unwrap();
        let dataset = target.rsplit(':').next().unwrap();
        assert!(exists(dataset), "{target} was not received");
    }

    // A dataset's parent on a target is received before it: the run of
    // the command sending the parent ended before the child's began.
    let run_of = |unit: &str| runs.iter().find(|r| r.unit == unit).unwrap();
    let mut early = Vec::new();
    for unit in &units {
        for after in unit.after.iter().filter(|a| a.starts_with("syncoid-")) {
            let (parent, child) = (run_of(after), run_of(&unit.name));
            if child.main_started < parent.main_ended {
                early.push(format!(
                    "{} began before {} had ended",
                    child.unit, parent.unit
                ));
            }
        }
    }
    assert!(
        early.is_empty(),
        "children were sent before their parents:\n{}",
        early.join("\n")
    );

    // No run lost a permission it needed while it ran.
    let user = syncoid["user"].as_str().unwrap();
    let groups = vec![syncoid["group"].as_str().unwrap().to_owned()];
    let needs: Vec<Need> = commands
        .iter()
        .flat_map(|(name, c)| {
            let unit = format!("syncoid-{}.service", name.replace('/', "-"));
            let perms = |key: &str| -> Vec<String> {
                c[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_owned())
                    .collect()
            };
            let mut needs = vec![Need {
                unit: unit.clone(),
                dataset: c["source"].as_str().unwrap().to_owned(),
                perms: perms("localSourceAllow"),
            }];
            let target = c["target"].as_str().unwrap();
            if !target.contains('@') {
                needs.push(Need {
                    unit,
                    dataset: target.to_owned(),
                    perms: perms("localTargetAllow"),
                });
            }
            needs
        })
        .collect();
    let events = read_log(&std::fs::read_to_string(&runner.log).unwrap());
    let lost = lost_permissions(&events, &runs, &needs, user, &groups);
    assert!(
        lost.is_empty(),
        "syncoid runs lost permissions they needed while running:\n{}",
        lost.join("\n")
    );
    drop(usb);
    drop(nas);
    let _ = std::fs::remove_dir_all(&scratch);
}
