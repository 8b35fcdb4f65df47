//! The units the NixOS modules generate, checked by systemd itself.
//!
//! The example hosts are evaluated (Nix 2.8, flake-locked lib, the stubs of
//! tests/nix) with replication, snapshots and a notification command added,
//! every unit zpersist defines or adds to is written as NixOS writes unit
//! files (zpersist_e2e::systemd::render_service), and systemd 252's
//! `systemd-analyze verify` loads them with their dependencies:
//! unknown keys, values that do not parse, specifiers, calendar events,
//! commands that are not executable and required units that do not exist
//! all fail the test. `systemd-analyze security --offline=true` measures
//! the hardening of zpersist's own long-lived units, which must not
//! regress. systemd is not PID 1 here: nothing is started.
//!
//! Two kinds of stand-ins, both test-only:
//! - zpersist_e2e::stand_in: the part of a unit nixpkgs' modules define (the
//!   services' ExecStart, sanoid's and each syncoid command's unit with the
//!   argv tests/nix/syncoid-argv.nix renders), merged by the module system
//!   with zpersist's additions exactly as on NixOS. It only defines units
//!   zpersist also touches (checked by
//!   `every_unit_zpersist_defines_or_changes_is_verified`).
//! - OpenZFS's units that zfs-fuse does not ship (`zfs-import.target`,
//!   `zfs-mount.service`, `zfs.target`), written as minimal unit files.
//!
//! Store paths of the stub pkgs (tests/nix/pkgs.nix) do not exist; each
//! `Exec*=` program is mapped to this machine's real one (STORE_PATHS):
//! zpersist's binaries (in the package, or in /run/current-system/sw/bin)
//! to the cargo-built ones, ssh/zfs/curl/restic to Debian's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use zpersist_e2e::binaries;
use zpersist_e2e::nix::Eval;
use zpersist_e2e::stand_in::{self, Daemon};
use zpersist_e2e::systemd::{self, UnitFile};

/// forge (which replicates its services to `nas` over ssh and to the
/// local target `usb`) with what the example leaves out: `media/tv`
/// replicated while `media` is not (so its command creates the parent on
/// the target first, ExecStartPre: over ssh for `nas`, with the booted
/// system's zfs as root for `usb`), a target interval (the timer's
/// OnCalendar), and a notification command beside ntfy.
const FORGE_EXTRAS: &str = r#"{
  zpersist.datasets."media/tv".replicateTo = [ "nas" "usb" ];
  zpersist.replication.targets.nas.interval = "*-*-* *:15:00";
  zpersist.notify.command = "/usr/bin/logger";
}"#;

/// luna as it is, plus a notification command.
const LUNA_EXTRAS: &str = r#"{ zpersist.notify.command = "/usr/bin/logger"; }"#;

/// OpenZFS's units (NixOS has them; zfs-fuse ships none), as minimal
/// stand-ins so that verify resolves what zpersist's units name.
const OPENZFS_STAND_INS: &[(&str, &str)] = &[
    (
        "zfs-import.target",
        "[Unit]\nDescription=stand-in for OpenZFS's zfs-import.target\n",
    ),
    (
        "zfs-mount.service",
        "[Unit]\nDescription=stand-in for OpenZFS's zfs-mount.service\nAfter=zfs-import.target\n\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/sbin/zfs mount -a\n",
    ),
    (
        "zfs.target",
        "[Unit]\nDescription=stand-in for OpenZFS's zfs.target\n",
    ),
];

const STUB_STORE: &str = "/nix/store/00000000000000000000000000000000-";

/// Programs of the other stub packages of tests/nix/pkgs.nix, by store path
/// suffix, and the program on this machine that stands for each.
const STORE_PATHS: &[(&str, &str)] = &[
    // OpenZFS's zfs; zfs-fuse's is the same command line.
    ("zfs-user/bin/zfs", "/usr/sbin/zfs"),
    // OpenSSH's client (ExecStartPre of syncoid commands).
    ("openssh/bin/ssh", "/usr/bin/ssh"),
    ("curl/bin/curl", "/usr/bin/curl"),
    // Debian's sanoid package has syncoid.
    ("sanoid/bin/syncoid", "/usr/sbin/syncoid"),
    // nixpkgs' restic jobs (backup.restic).
    ("restic/bin/restic", "/usr/bin/restic"),
];

/// Paths of a booted NixOS system the units name, and this machine's program
/// for each.
const BOOTED_SYSTEM_PATHS: &[(&str, &str)] = &[("/run/booted-system/sw/bin/zfs", "/usr/sbin/zfs")];

/// Where the current system has zpersist's binaries (the mount checks run
/// `/run/current-system/sw/bin/zpersist-check-mounted`): the cargo-built ones.
const CURRENT_SYSTEM_BIN: &str = "/run/current-system/sw/bin/";

/// Where the freshly built zpersist binaries are (target/debug).
fn zpersist_binary_dir() -> Utf8PathBuf {
    binaries::fresh(binaries::ALL[0])
        .parent()
        .expect("a binary lives in a directory")
        .to_owned()
}

fn stand_in(daemons: &[&str]) -> String {
    let daemons: Vec<Daemon> = daemons.iter().map(|d| Daemon::sleeping(d)).collect();
    stand_in::nixpkgs_module(&daemons)
}

/// `systemd.services` of a host with `extras` and the nixpkgs stand-in.
/// Read-write: the store files the modules write (the plans) must exist
/// for the units that name them.
fn services(host: &str, extras: &str, daemons: &[&str]) -> BTreeMap<String, Value> {
    let module = format!("{{ imports = [ {extras} ({}) ]; }}", stand_in(daemons));
    let eval = Eval::host(host).with_module(&module).read_write();
    for attr in ["failedAssertions", "warnings"] {
        assert_eq!(eval.attr(attr), serde_json::json!([]), "{host}: {attr}");
    }
    serde_json::from_value(eval.attr("config.systemd.services")).expect("an attribute set")
}

/// The unit files, as NixOS writes them (store paths of the stub pkgs).
fn render(services: &BTreeMap<String, Value>, script_dir: &Utf8Path) -> Vec<UnitFile> {
    services
        .iter()
        .flat_map(|(name, def)| systemd::render_service(name, def, script_dir))
        .collect()
}

/// A unit directory for verify: the units with the stub store paths
/// replaced by this machine's programs, the OpenZFS stand-ins, and copies of
/// store files a unit runs.
struct UnitDir {
    _temp: TempDir,
    dir: Utf8PathBuf,
    /// Our unit files (not the stand-ins), the files verify checks.
    units: Vec<Utf8PathBuf>,
}

fn unit_dir(services: &BTreeMap<String, Value>, bin_dir: &Utf8Path) -> UnitDir {
    let temp = TempDir::new("zpersist-systemd-units");
    let dir = temp.path.join("units");
    let copies = temp.path.join("store-copies");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&copies).unwrap();
    // Generated scripts (script, preStart) live next to the units.
    let files = render(services, &dir);

    let mut substitutions: Vec<(String, String)> = binaries::ALL
        .iter()
        .flat_map(|bin| {
            [
                format!("{STUB_STORE}zpersist/bin/{bin}"),
                format!("{CURRENT_SYSTEM_BIN}{bin}"),
            ]
            .map(|path| (path, bin_dir.join(bin).to_string()))
        })
        .chain(
            STORE_PATHS
                .iter()
                .map(|(stub, real)| (format!("{STUB_STORE}{stub}"), real.to_string())),
        )
        .chain(
            BOOTED_SYSTEM_PATHS
                .iter()
                .map(|(booted, real)| (booted.to_string(), real.to_string())),
        )
        .collect();
    // Files the stub pkgs write with builtins.toFile exist but are not
    // executable (pkgs.writeShellScript makes them so on NixOS): a unit
    // running one gets an executable copy of it.
    for file in &files {
        for program in systemd::exec_programs(&file.text) {
            let path = Utf8Path::new(&program);
            let Ok(meta) = fs::metadata(path) else {
                continue;
            };
            if program.starts_with("/nix/store/") && meta.permissions().mode() & 0o111 == 0 {
                let copy = copies.join(path.file_name().unwrap());
                fs::copy(path, &copy).unwrap();
                fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
                substitutions.push((program.clone(), copy.to_string()));
            }
        }
    }

    let mut units = Vec::new();
    for file in &files {
        let text = substitutions
            .iter()
            .fold(file.text.clone(), |text, (from, to)| text.replace(from, to));
        let path = dir.join(&file.name);
        fs::write(&path, text).unwrap();
        if file.executable {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        } else {
            units.push(path);
        }
    }
    for (name, text) in OPENZFS_STAND_INS {
        fs::write(dir.join(name), text).unwrap();
    }
    UnitDir {
        _temp: temp,
        dir,
        units,
    }
}

/// A directory removed when dropped.
struct TempDir {
    path: Utf8PathBuf,
}

impl TempDir {
    fn new(prefix: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = Utf8PathBuf::try_from(std::env::temp_dir())
            .expect("a UTF-8 temporary directory")
            .join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // ZPERSIST_KEEP_UNITS=1 keeps the unit files for a look by hand.
        if std::env::var_os("ZPERSIST_KEEP_UNITS").is_some() {
            eprintln!("kept {}", self.path);
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Every line verify prints is a finding (it prints nothing for a clean
/// set of units); the test shows all of them.
fn assert_verifies(host: &str, units: &UnitDir) {
    let analysis = systemd::verify(&units.dir, &units.units);
    let findings: Vec<&str> = analysis
        .output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        analysis.success && findings.is_empty(),
        "systemd-analyze verify found problems in {host}'s units (exit ok: {}):\n{}\nunits:\n{}",
        analysis.success,
        analysis.output,
        units
            .units
            .iter()
            .map(|u| format!("--- {u}\n{}", fs::read_to_string(u).unwrap()))
            .collect::<String>()
    );
}

/// verify only reports missing units that are required; a typo in
/// `Wants=`, `After=` or `OnFailure=` would pass it. Every unit named must
/// be ours, a stand-in, or one of this machine's: the names that are not.
fn unresolved_references(units: &UnitDir) -> BTreeSet<String> {
    let mut dirs: Vec<&Utf8Path> = vec![&units.dir];
    dirs.extend(systemd::SYSTEM_UNIT_DIRS.iter().map(Utf8Path::new));
    let mut missing = BTreeSet::new();
    for unit in &units.units {
        let name = unit.file_name().unwrap();
        let text = fs::read_to_string(unit).unwrap();
        for referenced in systemd::referenced_units(name, &text) {
            if !systemd::unit_exists(&referenced, &dirs) {
                missing.insert(format!("{name} names {referenced}"));
            }
        }
    }
    missing
}

fn assert_references_resolve(units: &UnitDir) {
    let missing = unresolved_references(units);
    assert!(
        missing.is_empty(),
        "units named but defined nowhere: {missing:#?}"
    );
}

fn forge_services() -> BTreeMap<String, Value> {
    services(
        "forge",
        FORGE_EXTRAS,
        &[
            "sonarr",
            "radarr",
            "plex",
            "home-assistant",
            "postgresql",
            "jellyfin",
        ],
    )
}

fn joined(files: &[UnitFile]) -> String {
    files
        .iter()
        .map(|f| format!("### {}\n{}\n", f.name, f.text))
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn forge_units_render_as_nixos_writes_them() {
    // No unit uses script/preStart, so the script directory never shows.
    let files = render(&forge_services(), Utf8Path::new("/run/unit-scripts"));
    insta::assert_snapshot!("forge_units", joined(&files));
}

#[test]
fn every_unit_zpersist_defines_or_changes_is_verified() {
    // Without the stand-in, config.systemd.services holds exactly what the
    // zpersist modules define or add to.
    let eval = Eval::host("forge").with_module(FORGE_EXTRAS);
    let ours: BTreeSet<String> = match eval.attr("config.systemd.services") {
        Value::Object(units) => units.keys().cloned().collect(),
        other => panic!("not an attribute set: {other}"),
    };
    let verified: BTreeSet<String> = forge_services().keys().cloned().collect();
    assert_eq!(verified, ours, "the stand-in must add no unit of its own");
    for expected in [
        "zpersist-datasets",
        "zpersist-sonarr-mounted",
        "zpersist-notify@",
        "zpersist-replication-lag",
        "syncoid-media-tv-to-nas",
        "syncoid-media-tv-to-usb",
        "sanoid",
        "sonarr",
    ] {
        assert!(ours.contains(expected), "{expected} is not among {ours:?}");
    }
}

#[test]
fn forge_units_pass_systemd_analyze_verify() {
    let units = unit_dir(&forge_services(), &zpersist_binary_dir());
    assert_references_resolve(&units);
    assert_verifies("forge", &units);
}

#[test]
fn luna_units_pass_systemd_analyze_verify() {
    let services = services("luna", LUNA_EXTRAS, &["home-assistant", "syncthing"]);
    let units = unit_dir(&services, &zpersist_binary_dir());
    assert_references_resolve(&units);
    assert_verifies("luna", &units);
}

/// The harness itself: a misspelt key, a program that does not exist and
/// a unit named nowhere must each be reported.
#[test]
fn verify_reports_what_is_wrong_with_a_unit() {
    let bin_dir = zpersist_binary_dir();
    let mut services = forge_services();
    let datasets = services.get_mut("zpersist-datasets").unwrap();
    datasets["serviceConfig"]["ProtectSystm"] = "strict".into();
    datasets["serviceConfig"]["ExecStartPre"] = "/nix/store/nothing-here/bin/zfs list".into();
    datasets["wants"]
        .as_array_mut()
        .unwrap()
        .push("zfs-imports.target".into());
    let units = unit_dir(&services, &bin_dir);

    let analysis = systemd::verify(&units.dir, &units.units);
    assert!(
        analysis
            .output
            .contains("Unknown key name 'ProtectSystm' in section 'Service'")
            || analysis
                .output
                .contains("Unknown key 'ProtectSystm' in section [Service]"),
        "{}",
        analysis.output
    );
    assert!(
        analysis
            .output
            .contains("Command /nix/store/nothing-here/bin/zfs is not executable"),
        "{}",
        analysis.output
    );
    assert_eq!(
        unresolved_references(&units),
        BTreeSet::from(["zpersist-datasets.service names zfs-imports.target".to_string()])
    );
}

/// `systemd-analyze security --offline=true` (0.0 = fully sandboxed,
/// 10.0 = no sandbox), measured with systemd 252 when this test was written:
///
/// | unit | exposure |
/// | --- | --- |
/// | zpersist-datasets.service | 4.2 OK (keeps the host's mount namespace on purpose, and may set setgid modes; see nix/modules/service.nix) |
/// | zpersist-<service>-mounted.service | 1.6 OK |
/// | zpersist-notify@.service | 6.3 MEDIUM (root, network, user-supplied command and sendmail) |
/// | zpersist-replication-lag.service | 2.7 OK (root for the key, ssh) |
///
/// A change that drops or loosens a hardening option raises a score above
/// its ceiling and fails here; a change that tightens one should lower the
/// ceiling.
#[test]
fn hardening_exposure_does_not_regress() {
    let units = unit_dir(&forge_services(), &zpersist_binary_dir());
    let mut failures = Vec::new();
    for (unit, ceiling) in [
        ("zpersist-datasets.service", 4.2),
        ("zpersist-sonarr-mounted.service", 1.6),
        ("zpersist-notify@.service", 6.3),
        ("zpersist-replication-lag.service", 2.7),
    ] {
        let (score, analysis) = systemd::exposure(&units.dir, &units.dir.join(unit));
        println!("{unit}: exposure {score:.1} (ceiling {ceiling:.1})");
        // The scores are printed with one decimal.
        if score > ceiling + 0.01 {
            failures.push(format!(
                "{unit}: exposure {score:.1} is above {ceiling:.1}, the level measured when this \
                 test was written; a hardening option was dropped or loosened:\n{}",
                analysis.output
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fields no zpersist unit uses yet, written as NixOS writes them, and
/// accepted by verify (the generated script must exist and be executable).
#[test]
fn renderer_writes_the_other_fields_as_nixos_does() {
    let def = serde_json::json!({
        "description": "example",
        "environment": { "B": "two words", "A": "1" },
        "path": [ "/opt/p", "/opt/q" ],
        "restartIfChanged": false,
        "stopIfChanged": false,
        "script": "echo hello",
        "serviceConfig": { "Type": "oneshot", "PrivateTmp": true, "TimeoutStartSec": 30 },
        "unitConfig": { "DefaultDependencies": false },
        "requiredBy": [ "multi-user.target" ],
        "startAt": [ "daily", "Mon *-*-* 04:00" ],
    });
    let units = unit_dir(
        &BTreeMap::from([("example".to_string(), def)]),
        &zpersist_binary_dir(),
    );
    let service = fs::read_to_string(units.dir.join("example.service")).unwrap();
    assert_eq!(
        service,
        format!(
            "[Unit]\nDefaultDependencies=false\nDescription=example\n\n\
             [Service]\nEnvironment=\"A=1\"\nEnvironment=\"B=two words\"\n\
             Environment=\"PATH=/opt/p/bin:/opt/q/bin:/opt/p/sbin:/opt/q/sbin\"\n\
             X-RestartIfChanged=false\nX-StopIfChanged=false\n\
             ExecStart={}/unit-script-example-start\nPrivateTmp=true\nTimeoutStartSec=30\nType=oneshot\n\n\
             [Install]\nRequiredBy=multi-user.target\n",
            units.dir
        )
    );
    assert_eq!(
        fs::read_to_string(units.dir.join("example.timer")).unwrap(),
        "[Unit]\n\n[Timer]\nOnCalendar=daily\nOnCalendar=Mon *-*-* 04:00\n\n\
         [Install]\nWantedBy=timers.target\n"
    );
    assert_verifies("example", &units);
}
