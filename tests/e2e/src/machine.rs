//! What a NixOS host evaluates to, installed into a test container
//! ([`crate::container`]) so that its units run under a real systemd.
//!
//! A [`Host`] is an example host (tests/nix/eval.nix) plus modules; its
//! evaluation, a [`Machine`], holds `systemd.services`, `environment.etc`,
//! the tmpfiles rules, users and groups, and the plan. [`Machine::install`]
//! puts them where NixOS would:
//!
//! - **Units**: written by [`systemd::render_service_with_path`], the
//!   renderer the `systemd-analyze verify` tests use, with NixOS's default
//!   `path` (coreutils, findutils, gnugrep, gnused, systemd) as NixOS adds
//!   it to every service. Not edited afterwards: every store path stays as
//!   evaluated. Into `/etc/systemd/system`, each `wantedBy`/`requiredBy`
//!   as a `<target>.wants/` / `.requires/` symlink next to them, as NixOS
//!   links them (no `systemctl enable`). Generated `script`/`preStart`
//!   scripts go to [`UNIT_SCRIPTS`].
//! - **The store, mapped**: the paths the units, scripts and /etc files
//!   name are made to exist at exactly those paths inside the container.
//!   Real store files of the evaluation (the plans, written by
//!   `builtins.toFile`) are copied there, executable when they
//!   start with `#!` (as `writeShellScript` makes them on NixOS). The fake
//!   packages of tests/nix/pkgs.nix (`/nix/store/000…-<name>`) get a
//!   `bin/` of symlinks to the programs the Debian package standing in for
//!   each ships ([`PACKAGES`]: `zfs-user` → zfs-fuse, or OpenZFS's
//!   zfsutils-linux in the guest, `getent` →
//!   libc-bin's getent, `coreutils` → coreutils, ...), so a unit's `PATH`
//!   finds what its package provides and nothing else of Debian's.
//!   `zpersist` gets copies of the workspace's binaries, built fresh for
//!   the test's profile ([`crate::binaries::fresh`]). A store path the
//!   mapping does not know fails the install loudly.
//!   (The OpenZFS guest gets symlinks into its 9p share of the target
//!   directory instead: [`Root::install_binary`].)
//! - **/etc**: each `environment.etc` entry as a read-only file;
//!   `systemd.tmpfiles.rules` as `/etc/tmpfiles.d/00-nixos.conf`.
//! - **/run/current-system/sw/bin**: the programs of
//!   `environment.systemPackages` (the mount checks run
//!   `/run/current-system/sw/bin/zpersist-check-mounted`), and
//!   /run/booted-system/sw/bin the booted system's zfs.
//! - **Users and groups**: created with `groupadd`/`useradd --system`, as
//!   NixOS's activation creates them before any unit starts.
//!
//! The machine beneath (what NixOS's ZFS support gives a host) comes from
//! [`install_zfs`]: the container's own zfs-fuse daemon as a unit, the
//! pool (a file in the container, created on first boot, imported after)
//! through `zfs-import-<pool>.service`, and `zfs-import.target`,
//! `zfs-mount.service` and `zfs.target` with OpenZFS's ordering, in
//! `/usr/local/lib/systemd/system`.
//!
//! zfs-fuse takes neither lz4 nor records over 128K: a [`Host`] adds a
//! module forcing `compression = "on"` and `recordsize = "128K"` on exactly
//! the datasets that declare more (so the plan file is a real evaluation
//! of that configuration, not an edited copy).
//!
//! The installer writes through [`Root`]: the container's root directory,
//! or the OpenZFS guest's ([`crate::guest_system`]), so both run the same
//! rendered units.
//!
//! [`switch`] does what `switch-to-configuration switch` does with units:
//! stop the changed units that are stopped before activation, install the
//! new generation (users, /etc, tmpfiles, units, `daemon-reload`), restart
//! or reload the changed active units, and start the active targets again
//! (which starts new units they want). Not modelled: socket activation,
//! `X-OnlyManualStart`, mounts and swaps, user units.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

use camino::Utf8Path;
use serde_json::Value;

use crate::binaries;
use crate::container::Container;
use crate::nix::Eval;
use crate::stand_in::{self, Daemon};
use crate::systemd::{self, UnitFile, NIXOS_DEFAULT_PATH};
use crate::zfs_fuse::fit_for_zfs_fuse;

/// The fake store prefix of tests/nix/pkgs.nix.
pub const STUB_STORE: &str = "/nix/store/00000000000000000000000000000000-";

/// Where generated unit scripts (`script`, `preStart`) live.
pub const UNIT_SCRIPTS: &str = "/nix/store/00000000000000000000000000000000-unit-scripts";

/// The stand-in service program (see [`stand_in_program`]).
pub const STAND_IN: &str = "/usr/local/lib/zpersist-test/stand-in";

/// The file each stand-in service appends a line to in its data directory.
pub const STAND_IN_LOG: &str = "stand-in.log";

/// What /run/booted-system points to in the container.
pub const BOOTED_SYSTEM: &str = "/nix/var/zpersist-test/booted-system";

/// What /run/current-system points to in the container.
pub const CURRENT_SYSTEM: &str = "/nix/var/zpersist-test/current-system";

/// The unit that runs the container's zfs-fuse daemon.
pub const ZFS_DAEMON: &str = "zpersist-test-zfs-fuse.service";

/// Each fake package of tests/nix/pkgs.nix and of NixOS's default path,
/// the Debian packages standing in for it, and the programs taken from them
/// (`None`: all it ships in bin and sbin). `zpersist` is the workspace's
/// own binaries. A Debian package the root lacks (openssh-client, curl)
/// gives an empty `bin/`: a unit running it fails, as it would without it.
pub const PACKAGES: &[Package] = &[
    // zfs-fuse in the test container, OpenZFS in the guest: whichever the
    // machine has (the other is not installed there).
    ("zfs-user", &["zfs-fuse", "zfsutils-linux"], None),
    ("getent", &["libc-bin"], Some(&["getent"])),
    ("rsync", &["rsync"], None),
    ("openssh", &["openssh-client"], None),
    ("sanoid", &["sanoid"], Some(&["syncoid"])),
    ("restic", &["restic"], None),
    ("curl", &["curl"], None),
    ("coreutils", &["coreutils"], None),
    // runuser, which zpersist-status runs psql with as the cluster's user.
    ("util-linux", &["util-linux"], Some(&["runuser"])),
    ("findutils", &["findutils"], None),
    ("gnugrep", &["grep"], None),
    ("gnused", &["sed"], None),
    ("systemd", &["systemd"], None),
    // What a PITR test sets services.postgresql.package to (the model's
    // stub, named for Debian's PostgreSQL 15).
    (
        "postgresql-15",
        &["postgresql-15", "postgresql-client-15"],
        None,
    ),
    // barman-cloud-* (an S3 PITR repository): Debian's barman-cli-cloud,
    // as nixpkgs' barman ships them.
    ("barman", &["barman-cli-cloud"], None),
];

/// A fake package, the Debian packages standing in for it, the programs
/// taken from them (`None`: all).
pub type Package = (
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
);

/// Where Debian keeps a PostgreSQL's programs (its /usr/bin has only
/// postgresql-common's wrappers): programs of a package are taken from
/// here too.
pub const POSTGRESQL_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The store paths of NixOS's default service path (fake, like the others).
pub fn default_path() -> Vec<String> {
    NIXOS_DEFAULT_PATH
        .iter()
        .map(|p| format!("{STUB_STORE}{p}"))
        .collect()
}

/// A service of services.json: name, dataset, mountpoint, user, units.
pub type Service = (String, String, String, Option<String>, Vec<String>);

/// An example host and what a test adds to it.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub modules: Vec<String>,
    /// Daemons for services zpersist does not manage (a stand-in is made
    /// for every unit of every enabled `zpersist.services` entry anyway).
    pub extra_daemons: Vec<Daemon>,
    /// Units (without `.service`) that get no stand-in: their nixpkgs
    /// model's definition runs as it is (the real program in the root).
    pub real_units: Vec<String>,
}

/// One `users.users` entry.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct User {
    pub group: Option<String>,
    #[serde(rename = "extraGroups", default)]
    pub extra_groups: Vec<String>,
}

/// One `environment.etc` entry.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct EtcEntry {
    pub text: Option<String>,
    pub source: Option<String>,
}

/// What a host evaluates to (tests/nix/eval.nix's `machine`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Machine {
    pub services: BTreeMap<String, Value>,
    /// `systemd.timers` (timers of `startAt` come with their services).
    #[serde(default)]
    pub timers: BTreeMap<String, Value>,
    pub etc: BTreeMap<String, EtcEntry>,
    pub tmpfiles: Vec<String>,
    pub users: BTreeMap<String, User>,
    pub groups: Vec<String>,
    /// `environment.systemPackages`, as store paths.
    #[serde(rename = "systemPackages")]
    pub system_packages: Vec<String>,
    pub plan: Value,
    #[serde(rename = "failedAssertions")]
    pub failed_assertions: Vec<String>,
    pub warnings: Vec<String>,
}

impl Host {
    pub fn new(name: &str) -> Host {
        Host {
            name: name.to_owned(),
            modules: Vec::new(),
            extra_daemons: Vec::new(),
            real_units: Vec::new(),
        }
    }

    /// A further module (a Nix expression).
    pub fn with_module(mut self, module: &str) -> Host {
        self.modules.push(module.to_owned());
        self
    }

    /// A unit that runs as its nixpkgs model defines it, with no stand-in
    /// (postgresql: Debian's PostgreSQL 15 is in the root).
    pub fn with_real_unit(mut self, unit: &str) -> Host {
        self.real_units.push(unit.to_owned());
        self
    }

    /// A stand-in daemon for a service zpersist does not manage.
    pub fn with_daemon(mut self, daemon: Daemon) -> Host {
        self.extra_daemons.push(daemon);
        self
    }

    fn eval(&self, modules: &[String]) -> Eval {
        let all = self
            .modules
            .iter()
            .chain(modules)
            .cloned()
            .collect::<Vec<_>>();
        let imports: Vec<String> = all.iter().map(|m| format!("({m})")).collect();
        Eval::host(&self.name)
            .with_module(&format!("{{ imports = [ {} ]; }}", imports.join(" ")))
            .read_write()
    }

    /// The evaluation, with the zfs-fuse fit and the stand-in daemons.
    pub fn evaluate(&self) -> Machine {
        self.evaluate_for(true)
    }

    /// The evaluation as it is, with the stand-in daemons, for a machine
    /// with real OpenZFS (the guest: lz4, zstd and 1M records as declared).
    pub fn evaluate_for_openzfs(&self) -> Machine {
        self.evaluate_for(false)
    }

    fn evaluate_for(&self, zfs_fuse: bool) -> Machine {
        let first = self.eval(&[]);
        let fit = if zfs_fuse {
            zfs_fuse_module(&first.attr("plan"))
        } else {
            "{ }".to_owned()
        };
        let services: Value = first.attr("config.zpersist.internal.servicesPlan");
        let mut daemons = stand_ins(&services);
        daemons.retain(|d| !self.real_units.contains(&d.name));
        daemons.extend(self.extra_daemons.iter().cloned());
        let machine: Machine = serde_json::from_value(
            self.eval(&[fit, stand_in::nixpkgs_module(&daemons)])
                .attr("machine"),
        )
        .expect("tests/nix/eval.nix's machine has the fields Machine reads");
        assert_eq!(
            machine.failed_assertions,
            Vec::<String>::new(),
            "{}: failed assertions",
            self.name
        );
        machine
    }
}

/// A stand-in for every unit of every enabled service, running as the
/// service's user and writing into its data directory.
fn stand_ins(services_plan: &Value) -> Vec<Daemon> {
    let mut daemons = Vec::new();
    for service in services_plan["services"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s)
    {
        let dir = service["mountpoint"].as_str().expect("a mountpoint");
        for unit in service["units"].as_array().into_iter().flatten() {
            let unit = unit.as_str().expect("a unit name");
            daemons.push(Daemon {
                name: unit.trim_end_matches(".service").to_owned(),
                exec_start: format!("{STAND_IN} {dir}"),
                user: service["user"].as_str().map(str::to_owned),
                group: service["group"].as_str().map(str::to_owned),
            });
        }
    }
    daemons
}

/// A module giving zfs-fuse what it can take: `compression = "on"` and
/// `recordsize = "128K"` for the datasets whose plan entry asks for more
/// (zpersist_e2e::zfs_fuse::fit_for_zfs_fuse decides which).
pub fn zfs_fuse_module(plan: &Value) -> String {
    let mut fitted = plan.clone();
    fit_for_zfs_fuse(&mut fitted);
    let pool = plan["pool"].as_str().expect("a pool");
    let mut lines = Vec::new();
    for (before, after) in plan["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .zip(fitted["datasets"].as_array().unwrap())
    {
        let name = before["name"].as_str().unwrap();
        let relative = name
            .strip_prefix(pool)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or_else(|| panic!("{name} is not below {pool}"));
        for property in ["compression", "recordsize"] {
            let value = &after["properties"][property];
            if value != &before["properties"][property] {
                lines.push(format!(
                    "zpersist.datasets.{}.{property} = lib.mkForce {};",
                    stand_in::nix_string(relative),
                    stand_in::nix_string(value.as_str().unwrap())
                ));
            }
        }
    }
    format!("({{ lib, ... }}: {{ {} }})", lines.join(" "))
}

/// The program of the stand-in services: one line per start into its data
/// directory (the unit's invocation id and the user it runs as), then it
/// idles elsewhere, holding nothing open in that directory.
pub fn stand_in_program() -> &'static str {
    "#!/bin/sh\n\
     # A stand-in for a service (Sonarr & co.): writes to its data directory\n\
     # as the service's user, then idles, holding nothing in it.\n\
     set -eu\n\
     echo \"$INVOCATION_ID $(id -un)\" >>\"$1/stand-in.log\"\n\
     cd /\n\
     exec sleep infinity\n"
}

impl Machine {
    /// The unit files as NixOS writes them (with its default path).
    pub fn units(&self) -> Vec<UnitFile> {
        let default_path = default_path();
        self.services
            .iter()
            .flat_map(|(name, def)| {
                systemd::render_service_with_path(
                    name,
                    def,
                    Utf8Path::new(UNIT_SCRIPTS),
                    &default_path,
                )
            })
            .chain(
                self.timers
                    .iter()
                    .filter_map(|(name, def)| systemd::render_timer(name, def)),
            )
            .collect()
    }

    /// The pool the plan is for.
    pub fn pool(&self) -> &str {
        self.plan["pool"].as_str().expect("the plan names its pool")
    }

    /// Every dataset of the plan, by full name.
    pub fn datasets(&self) -> Vec<String> {
        self.plan["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every service of services.json.
    pub fn services(&self) -> Vec<Service> {
        let json = self.services_json();
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

    /// `/etc/zpersist/services.json` as data.
    pub fn services_json(&self) -> Value {
        let text = self.etc["zpersist/services.json"]
            .text
            .as_deref()
            .expect("services.json is text");
        serde_json::from_str(text).unwrap()
    }

    /// What `/etc/NAME` holds: the entry's text, or its store file's bytes.
    pub fn etc_contents(&self, name: &str) -> Vec<u8> {
        let entry = &self.etc[name];
        match (&entry.text, &entry.source) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(source)) => {
                fs::read(source).unwrap_or_else(|e| panic!("environment.etc.{name}: {source}: {e}"))
            }
            (None, None) => panic!("environment.etc.{name} has neither text nor source"),
        }
    }

    /// Writes every `/etc` entry below `prefix` (`zpersist/`) into `dir`,
    /// as the host's /etc would hold them (`dir/services.json`,
    /// `dir/preseed/sonarr.json`, ...).
    pub fn write_etc_under(&self, prefix: &str, dir: &std::path::Path) {
        for name in self.etc.keys() {
            if let Some(rest) = name.strip_prefix(prefix) {
                let path = dir.join(rest);
                fs::create_dir_all(path.parent().expect("a file in a directory")).unwrap();
                fs::write(&path, self.etc_contents(name)).unwrap();
            }
        }
    }

    /// Installs this generation into the container's root: users, store
    /// paths, /etc, tmpfiles rules, units (replacing `previous`'s, whose
    /// units that are gone are removed), the stand-in program.
    pub fn install(&self, container: &dyn Root, previous: Option<&Machine>) {
        self.install_users(container);
        let units = self.units();
        let mut store_paths = BTreeSet::new();
        for file in &units {
            store_paths.extend(store_paths_in(&file.text));
        }
        for entry in self.etc.values() {
            if let Some(text) = &entry.text {
                store_paths.extend(store_paths_in(text));
            }
        }
        store_paths.extend(self.system_packages.iter().cloned());
        // A store file may name others (postgresql.conf its pg_hba.conf).
        let mut todo: Vec<String> = store_paths.iter().cloned().collect();
        while let Some(path) = todo.pop() {
            if let Ok(text) = fs::read_to_string(&path) {
                for named in store_paths_in(&text) {
                    if store_paths.insert(named.clone()) {
                        todo.push(named);
                    }
                }
            }
        }
        for path in &store_paths {
            install_store_path(container, path);
        }
        for name in self.etc.keys() {
            container.write(&format!("/etc/{name}"), &self.etc_contents(name), 0o444);
        }
        let mut tmpfiles = self.tmpfiles.join("\n");
        tmpfiles.push('\n');
        container.write("/etc/tmpfiles.d/00-nixos.conf", tmpfiles.as_bytes(), 0o444);
        container.write(STAND_IN, stand_in_program().as_bytes(), 0o755);
        // NixOS's /run/booted-system/sw: the booted system's programs, which
        // zpersist's root commands (and nixpkgs' syncoid unit) run zfs from.
        for program in ["/usr/sbin/zfs", "/usr/sbin/zpool"] {
            let name = program.rsplit('/').next().unwrap();
            container.symlink(&format!("{BOOTED_SYSTEM}/sw/bin/{name}"), program);
        }
        container.write(
            "/etc/tmpfiles.d/00-booted-system.conf",
            format!("L+ /run/booted-system - - - - {BOOTED_SYSTEM}\n").as_bytes(),
            0o444,
        );
        // NixOS's /run/current-system/sw: this generation's systemPackages
        // (activation points it at the new generation before a switch
        // restarts anything; here it is rewritten in place).
        let sw_bin = format!("{CURRENT_SYSTEM}/sw/bin");
        let _ = fs::remove_dir_all(container.host_path(&sw_bin));
        for package in &self.system_packages {
            let bin = container.host_path(&format!("{package}/bin"));
            for entry in fs::read_dir(&bin).into_iter().flatten().flatten() {
                let name = entry.file_name().into_string().expect("a UTF-8 name");
                container.symlink(
                    &format!("{sw_bin}/{name}"),
                    &format!("{package}/bin/{name}"),
                );
            }
        }
        container.write(
            "/etc/tmpfiles.d/00-current-system.conf",
            format!("L+ /run/current-system - - - - {CURRENT_SYSTEM}\n").as_bytes(),
            0o444,
        );

        if let Some(previous) = previous {
            let kept: BTreeSet<String> = units.iter().map(|u| u.name.clone()).collect();
            for old in previous.units() {
                if !kept.contains(&old.name) {
                    remove_unit(container, &old);
                }
            }
        }
        for file in &units {
            install_unit(container, file);
        }
    }

    fn install_users(&self, container: &dyn Root) {
        let mut script = String::from("set -e\n");
        let mut groups: BTreeSet<&str> = self.groups.iter().map(String::as_str).collect();
        for user in self.users.values() {
            groups.extend(user.group.as_deref());
        }
        for group in groups {
            script.push_str(&format!(
                "getent group {group} >/dev/null || groupadd --system {group}\n"
            ));
        }
        for (name, user) in &self.users {
            let mut args = vec![
                "--system".to_owned(),
                "--no-create-home".to_owned(),
                "--shell /usr/sbin/nologin".to_owned(),
            ];
            if let Some(group) = &user.group {
                args.push(format!("--gid {group}"));
            }
            if !user.extra_groups.is_empty() {
                args.push(format!("--groups {}", user.extra_groups.join(",")));
            }
            script.push_str(&format!(
                "getent passwd {name} >/dev/null || useradd {} {name}\n",
                args.join(" ")
            ));
        }
        container.run_script(&script);
    }
}

/// A machine's root file system that a [`Machine`] is installed into: a
/// test container's (written in place) or the OpenZFS guest's
/// ([`crate::guest_system::GuestRoot`]: staged on this machine, then
/// unpacked in the guest in one go). One installer serves both.
pub trait Root {
    /// Where on this machine a file of the root is written (the container's
    /// root itself; the guest's staging directory).
    fn host_path(&self, path: &str) -> camino::Utf8PathBuf;
    /// Writes a file (parents created), replacing what was there.
    fn write(&self, path: &str, contents: &[u8], mode: u32);
    /// A symlink, replacing what was there.
    fn symlink(&self, path: &str, points_to: &str);
    /// Removes a file, if it is there.
    fn remove(&self, path: &str);
    /// Runs a shell script as root in the machine, before its units start
    /// (users and groups, as NixOS's activation creates them).
    fn run_script(&self, script: &str);
    /// The programs a Debian package of the machine ships in bin and sbin
    /// directories (none where the package is not installed).
    fn debian_programs(&self, package: &str) -> Vec<String>;
    /// Puts zpersist's binary `bin`, built fresh for this test, at `path`.
    fn install_binary(&self, path: &str, bin: &str);
}

impl Root for Container {
    fn host_path(&self, path: &str) -> camino::Utf8PathBuf {
        Container::host_path(self, path)
    }

    fn write(&self, path: &str, contents: &[u8], mode: u32) {
        Container::write(self, path, contents, mode)
    }

    fn symlink(&self, path: &str, points_to: &str) {
        Container::symlink(self, path, points_to)
    }

    fn remove(&self, path: &str) {
        Container::remove(self, path)
    }

    fn run_script(&self, script: &str) {
        self.chroot(&["sh", "-c", script]);
    }

    /// From dpkg's file list in the container's root.
    fn debian_programs(&self, package: &str) -> Vec<String> {
        let info = self.host_path("/var/lib/dpkg/info");
        let list = [format!("{package}.list"), format!("{package}:amd64.list")]
            .iter()
            .map(|f| info.join(f))
            .find(|p| p.exists());
        let Some(list) = list else {
            return Vec::new();
        };
        fs::read_to_string(list)
            .unwrap()
            .lines()
            .filter(|line| is_program_dir(line))
            .filter(|line| !self.host_path(line).is_dir())
            .map(str::to_owned)
            .collect()
    }

    /// A copy of the staged build.
    fn install_binary(&self, path: &str, bin: &str) {
        let built = binaries::fresh(bin);
        let bytes = fs::read(&built).unwrap_or_else(|e| panic!("{built}: {e}"));
        Container::write(self, path, bytes, 0o555);
    }
}

/// Whether a file a Debian package ships lies in a directory of programs
/// (bin, sbin, a PostgreSQL's bin).
pub fn is_program_dir(file: &str) -> bool {
    let dir = Utf8Path::new(file).parent().map(Utf8Path::as_str);
    matches!(
        dir,
        Some("/bin" | "/sbin" | "/usr/bin" | "/usr/sbin") | Some(POSTGRESQL_BIN)
    )
}

/// Store paths (`/nix/store/<hash>-<name>`, without what follows) in a text.
fn store_paths_in(text: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("/nix/store/") {
        let tail = &rest[at + "/nix/store/".len()..];
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || "'\";:".contains(c))
            .unwrap_or(tail.len());
        paths.insert(format!("/nix/store/{}", &tail[..end]));
        rest = &tail[end..];
    }
    paths
}

/// Makes `path` exist in the container (see the module docs).
fn install_store_path(container: &dyn Root, path: &str) {
    if path == UNIT_SCRIPTS {
        return;
    }
    if let Some(package) = path.strip_prefix(STUB_STORE) {
        if package == "zpersist" {
            for bin in binaries::ALL {
                container.install_binary(&format!("{path}/bin/{bin}"), bin);
            }
            return;
        }
        let Some((_, debians, only)) = PACKAGES.iter().find(|(name, _, _)| *name == package) else {
            panic!(
                "a unit names {path}, a package of tests/nix/pkgs.nix that has no stand-in in the \
                 test container; add it to zpersist_e2e::machine::PACKAGES"
            );
        };
        fs::create_dir_all(container.host_path(&format!("{path}/bin"))).unwrap();
        for program in debians
            .iter()
            .flat_map(|debian| container.debian_programs(debian))
        {
            let name = Utf8Path::new(&program).file_name().unwrap().to_owned();
            if only.is_none_or(|only| only.contains(&name.as_str())) {
                container.symlink(&format!("{path}/bin/{name}"), &program);
            }
        }
        // zfs-fuse's zfs runs `umount` from PATH to unmount; NixOS's zfs
        // finds util-linux itself (and OpenZFS unmounts with umount2), so a
        // unit's PATH need not hold it: the stand-in brings it along.
        if package == "zfs-user" {
            for program in ["/bin/mount", "/bin/umount"] {
                let name = Utf8Path::new(program).file_name().unwrap();
                container.symlink(&format!("{path}/bin/{name}"), program);
            }
        }
        return;
    }
    let host = Utf8Path::new(path);
    assert!(
        host.is_file(),
        "a unit names {path}, which is neither a package of tests/nix/pkgs.nix nor a file the \
         evaluation wrote to this machine's store"
    );
    let bytes = fs::read(host).unwrap();
    let mode = if bytes.starts_with(b"#!") {
        0o555
    } else {
        0o444
    };
    container.write(path, &bytes, mode);
}

/// The `[Install]` keys of a rendered unit: (directory suffix, target).
fn install_links(text: &str) -> Vec<(&'static str, String)> {
    let Some((_, install)) = text.split_once("\n[Install]\n") else {
        return Vec::new();
    };
    let mut links = Vec::new();
    for line in install.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let suffix = match key {
            "WantedBy" => "wants",
            "RequiredBy" => "requires",
            _ => continue,
        };
        links.extend(value.split_whitespace().map(|t| (suffix, t.to_owned())));
    }
    links
}

const UNIT_DIR: &str = "/etc/systemd/system";

fn install_unit(container: &dyn Root, file: &UnitFile) {
    if file.executable {
        container.write(
            &format!("{UNIT_SCRIPTS}/{}", file.name),
            file.text.as_bytes(),
            0o555,
        );
        return;
    }
    let path = format!("{UNIT_DIR}/{}", file.name);
    container.write(&path, file.text.as_bytes(), 0o444);
    for (suffix, target) in install_links(&file.text) {
        container.symlink(
            &format!("{UNIT_DIR}/{target}.{suffix}/{}", file.name),
            &path,
        );
    }
}

fn remove_unit(container: &dyn Root, file: &UnitFile) {
    if file.executable {
        container.remove(&format!("{UNIT_SCRIPTS}/{}", file.name));
        return;
    }
    for (suffix, target) in install_links(&file.text) {
        container.remove(&format!("{UNIT_DIR}/{target}.{suffix}/{}", file.name));
    }
    container.remove(&format!("{UNIT_DIR}/{}", file.name));
}

// ---------------------------------------------------------------- ZFS beneath

/// Where the pools' image files are, inside the container.
pub const POOL_DIR: &str = "/var/lib/zpersist-test";

/// What NixOS's ZFS support gives a host, for zfs-fuse in the container:
/// the daemon, `zfs-import-<pool>.service` for each pool (a 512 MiB file,
/// created on first boot), `zfs-import.target`, `zfs-mount.service`,
/// `zfs.target`, with OpenZFS's ordering (all before `local-fs.target`).
pub fn install_zfs(container: &Container, pools: &[&str]) {
    let dir = "/usr/local/lib/systemd/system";
    let daemon = "[Unit]\n\
        Description=zfs-fuse, the test machine's ZFS (a daemon in user space)\n\
        DefaultDependencies=no\n\
        After=systemd-remount-fs.service\n\
        Before=zfs-import.target zfs-mount.service local-fs.target shutdown.target\n\
        Conflicts=shutdown.target\n\n\
        [Service]\n\
        Type=simple\n\
        ExecStart=/usr/sbin/zfs-fuse --no-daemon --no-kstat-mount --max-arc-size 64\n\
        ExecStartPost=/bin/sh -c 'for i in $(seq 200); do zpool list >/dev/null 2>&1 && exit 0; sleep 0.1; done; echo zfs-fuse does not answer >&2; exit 1'\n\
        TimeoutStopSec=60\n";
    container.write(&format!("{dir}/{ZFS_DAEMON}"), daemon, 0o444);
    container.write(
        &format!("{dir}/zfs-import.target"),
        "[Unit]\nDescription=ZFS pool import target\n\n[Install]\nWantedBy=zfs.target\n",
        0o444,
    );
    container.symlink(
        &format!("{dir}/zfs.target.wants/zfs-import.target"),
        &format!("{dir}/zfs-import.target"),
    );
    container.write(
        &format!("{dir}/zfs-mount.service"),
        format!(
            "[Unit]\nDescription=Mount ZFS filesystems\nDefaultDependencies=no\n\
             After=zfs-import.target systemd-remount-fs.service {ZFS_DAEMON}\n\
             Requires={ZFS_DAEMON}\nBefore=local-fs.target\n\n\
             [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/sbin/zfs mount -a\n\n\
             [Install]\nWantedBy=zfs.target\n"
        ),
        0o444,
    );
    container.symlink(
        &format!("{dir}/zfs.target.wants/zfs-mount.service"),
        &format!("{dir}/zfs-mount.service"),
    );
    container.write(
        &format!("{dir}/zfs.target"),
        "[Unit]\nDescription=ZFS startup target\n\n[Install]\nWantedBy=multi-user.target\n",
        0o444,
    );
    container.symlink(
        &format!("{dir}/multi-user.target.wants/zfs.target"),
        &format!("{dir}/zfs.target"),
    );
    for pool in pools {
        let image = format!("{POOL_DIR}/{pool}.img");
        let unit = format!("zfs-import-{pool}.service");
        container.write(
            &format!("{dir}/{unit}"),
            format!(
                "[Unit]\nDescription=Import ZFS pool \"{pool}\" (a file-backed zfs-fuse pool)\n\
                 DefaultDependencies=no\nRequires={ZFS_DAEMON}\nAfter={ZFS_DAEMON}\n\
                 Before=zfs-import.target\n\n\
                 [Service]\nType=oneshot\nRemainAfterExit=yes\n\
                 ExecStart=/bin/sh -c 'zpool list {pool} >/dev/null 2>&1 && exit 0; \
                 if [ -e {image} ]; then exec zpool import -d {POOL_DIR} {pool}; fi; \
                 mkdir -p {POOL_DIR} && truncate -s 512M {image} && exec zpool create {pool} {image}'\n\n\
                 [Install]\nWantedBy=zfs-import.target\n"
            ),
            0o444,
        );
        container.symlink(
            &format!("{dir}/zfs-import.target.wants/{unit}"),
            &format!("{dir}/{unit}"),
        );
    }
}

/// A container with `machine` installed on top of ZFS, booted.
pub fn boot(container: &mut Container, machine: &Machine) {
    install_zfs(container, &[machine.pool()]);
    machine.install(container, None);
    container.boot();
    container.wait_for_jobs(Duration::from_secs(120));
}

// ---------------------------------------------------------------- switch

/// How a unit file changed, as switch-to-configuration judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Reload,
    Restart,
}

/// `[Unit]` keys whose change restarts nothing (switch-to-configuration's
/// `unit_section_ignores`); `X-Reload-Triggers` reloads.
const UNIT_SECTION_IGNORES: &[&str] = &[
    "Description",
    "Documentation",
    "OnFailure",
    "OnSuccess",
    "OnFailureJobMode",
    "IgnoreOnIsolate",
    "StopWhenUnneeded",
    "RefuseManualStart",
    "RefuseManualStop",
    "AllowIsolate",
    "CollectMode",
    "SourcePath",
];

type Sections = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            sections.entry(current.clone()).or_default();
        } else if let Some((key, value)) = line.split_once('=') {
            sections
                .entry(current.clone())
                .or_default()
                .entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    sections
}

/// Compares two versions of a unit file as switch-to-configuration does.
pub fn compare_units(old: &str, new: &str) -> Change {
    let (mut old, mut new) = (parse_unit(old), parse_unit(new));
    let mut change = Change::None;
    if let (Some(o), Some(n)) = (old.get_mut("Unit"), new.get_mut("Unit")) {
        if o.remove("X-Reload-Triggers") != n.remove("X-Reload-Triggers") {
            change = Change::Reload;
        }
        for key in UNIT_SECTION_IGNORES {
            o.remove(*key);
            n.remove(*key);
        }
    }
    if old != new {
        change = Change::Restart;
    }
    change
}

/// What a switch did to which units.
#[derive(Debug, Clone, Default)]
pub struct Switched {
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    pub reloaded: Vec<String>,
    pub started: Vec<String>,
}

fn key_is(sections: &Sections, section: &str, key: &str, value: &str) -> bool {
    sections
        .get(section)
        .and_then(|s| s.get(key))
        .is_some_and(|v| v.iter().any(|x| x == value))
}

/// Switches the running container from `from` to `to`, as
/// `switch-to-configuration switch` does with units (module docs).
pub fn switch(container: &Container, from: &Machine, to: &Machine) -> Switched {
    let unit_texts = |m: &Machine| -> BTreeMap<String, String> {
        m.units()
            .into_iter()
            .filter(|u| !u.executable && !u.name.contains("@."))
            .map(|u| (u.name, u.text))
            .collect()
    };
    let (old, new) = (unit_texts(from), unit_texts(to));
    let active = |unit: &str| {
        matches!(
            container.active_state(unit).as_str(),
            "active" | "activating" | "reloading"
        )
    };
    let mut switched = Switched::default();
    let mut start_again = Vec::new();
    for (name, old_text) in &old {
        if !active(name) {
            continue;
        }
        let Some(new_text) = new.get(name) else {
            switched.stopped.push(name.clone());
            continue;
        };
        let sections = parse_unit(new_text);
        match compare_units(old_text, new_text) {
            Change::None => {}
            Change::Reload => switched.reloaded.push(name.clone()),
            Change::Restart if key_is(&sections, "Service", "X-RestartIfChanged", "false") => {}
            Change::Restart if key_is(&sections, "Service", "X-ReloadIfChanged", "true") => {
                switched.reloaded.push(name.clone())
            }
            Change::Restart if key_is(&sections, "Service", "X-StopIfChanged", "false") => {
                switched.restarted.push(name.clone())
            }
            Change::Restart => {
                switched.stopped.push(name.clone());
                start_again.push(name.clone());
            }
        }
    }
    let systemctl = |verb: &str, units: &[String]| {
        if units.is_empty() {
            return;
        }
        let mut args = vec!["systemctl", verb, "--"];
        args.extend(units.iter().map(String::as_str));
        // A unit failing to start is for the test to look at, not a failed switch.
        let _ = container.exec(&args);
    };
    systemctl("stop", &switched.stopped);

    // Activation: users, /etc, store paths, tmpfiles, units.
    to.install(container, Some(from));
    container.exec_ok(&[
        "systemd-tmpfiles",
        "--create",
        "--remove",
        "--exclude-prefix=/dev",
    ]);
    container.exec_ok(&["systemctl", "daemon-reload"]);

    systemctl("reload", &switched.reloaded);
    systemctl("restart", &switched.restarted);
    let targets = container.exec_ok(&[
        "systemctl",
        "list-units",
        "--type=target",
        "--state=active",
        "--plain",
        "--no-legend",
    ]);
    let mut start: Vec<String> = targets
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    start.extend(start_again);
    systemctl("start", &start);
    switched.started = start;
    container.wait_for_jobs(Duration::from_secs(120));
    switched
}

// ---------------------------------------------------------------- lost data

/// A dataset lost and given back empty, as after a replaced disk: stops
/// `units`, destroys the dataset, and lets `zpersist-datasets.service`
/// create it again (empty, with its declared properties and owner). The
/// units are left stopped for the test to start.
///
/// The hook for preseeding (restore-if-empty from a replica, a snapshot
/// or restic, announced in the README): its test wipes a dataset with
/// this, starts the service, and checks that the service's pre-start
/// (`ExecStartPre=`) restored the data before the stand-in wrote its line,
/// and that a failed restore keeps the service down. Until then the
/// service starts on the empty dataset (stop_start_and_reboot_... in
/// tests/systemd_boot.rs checks exactly that).
pub fn wipe_dataset(container: &Container, dataset: &str, units: &[&str]) {
    let mut stop = vec!["systemctl", "stop", "--"];
    stop.extend(units);
    container.exec_ok(&stop);
    // zfs-fuse unmounts asynchronously: "busy" passes after a moment.
    container.wait_until(
        &format!("{dataset} to be destroyed"),
        Duration::from_secs(30),
        |c| {
            let out = c.exec(&["zfs", "destroy", "-r", dataset]);
            if out.success() {
                Ok(())
            } else {
                Err(out.stderr)
            }
        },
    );
    container.systemctl("restart", &["zpersist-datasets.service"], &[]);
    let mountpoint = container.exec_ok(&["zfs", "get", "-H", "-o", "value", "mountpoint", dataset]);
    container.wait_for_mount(mountpoint.trim(), Duration::from_secs(60));
}

// ---------------------------------------------------------------- notifications

/// A module sending zpersist's notifications to the journal (tag
/// `zpersist-event`, read back by [`notify_events`]) instead of forge's
/// ntfy server (the container has no network), and keeping Sonarr's
/// preseed to its local source (the NAS and the USB pool are out of reach;
/// a test that wants them adds them).
pub const NOTIFY_TO_JOURNAL: &str = r#"{ lib, ... }: {
  zpersist.notify.command = "/usr/bin/systemd-cat";
  zpersist.notify.commandArgs = [ "-t" "zpersist-event" ];
  zpersist.notify.ntfy.url = lib.mkForce null;
  zpersist.services.sonarr.preseed.sources = lib.mkForce [ { local = true; } ];
}"#;

/// The notification events in the journal (see [`NOTIFY_TO_JOURNAL`]), by
/// failed unit.
pub fn notify_events(c: &Container) -> BTreeMap<String, Value> {
    parse_notify_events(&c.exec_ok(&NOTIFY_EVENTS_ARGV))
}

/// The command that prints [`NOTIFY_TO_JOURNAL`]'s events.
pub const NOTIFY_EVENTS_ARGV: [&str; 6] = [
    "journalctl",
    "--no-pager",
    "-o",
    "cat",
    "-t",
    "zpersist-event",
];

/// The events [`NOTIFY_EVENTS_ARGV`] printed, by failed unit.
pub fn parse_notify_events(journal: &str) -> BTreeMap<String, Value> {
    journal
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|e| (e["unit"].as_str().unwrap().to_owned(), e))
        .collect()
}

/// Waits (up to `timeout`) for the notification about `unit`'s failure.
pub fn wait_for_notification(c: &Container, unit: &str, timeout: Duration) -> Value {
    c.wait_until(&format!("the notification about {unit}"), timeout, |c| {
        let events = notify_events(c);
        events
            .get(unit)
            .cloned()
            .ok_or_else(|| format!("events about {:?}", events.keys().collect::<Vec<_>>()))
    })
}
