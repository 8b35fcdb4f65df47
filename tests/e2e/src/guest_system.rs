//! A NixOS host's evaluation ([`crate::machine::Machine`]) installed into
//! the OpenZFS guest, so that the guest's own systemd (PID 1) runs
//! zpersist's units, on pools the guest's `zfs-import-cache.service`
//! imports and `zfs-mount.service` mounts.
//!
//! The installer is the test container's ([`Machine::install`] through
//! [`crate::machine::Root`]): the same rendered unit files, store mapping,
//! /etc files, tmpfiles rules and users. What differs is where it goes:
//! [`GuestRoot`] stages the files in a directory on this machine and
//! unpacks them in the guest with one `tar` (a file at a time would cost a
//! 0.3 s agent round trip each); the stub packages link to the guest's
//! Debian trixie programs (OpenZFS's `zfs` for `zfs-user`); zpersist's
//! binaries are symlinks into the 9p share of cargo's target directory
//! ([`Guest::binary`]). The guest's ZFS units are Debian's own
//! (zfs-import-cache, zfs-mount, zfs.target), not the container's models.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use crate::container::Output;
use crate::guest::Guest;
use crate::machine::{is_program_dir, Machine, Root, PACKAGES};

/// The guest's root, staged on this machine (see the module docs).
pub struct GuestRoot {
    guest: &'static Guest,
    staging: Utf8PathBuf,
    removed: RefCell<Vec<String>>,
    scripts: RefCell<Vec<String>>,
}

impl GuestRoot {
    pub fn new(guest: &'static Guest) -> GuestRoot {
        static N: AtomicU64 = AtomicU64::new(0);
        let staging = Utf8PathBuf::from(format!(
            "/var/tmp/zpersist-guest-roots/{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).unwrap_or_else(|e| panic!("create {staging}: {e}"));
        GuestRoot {
            guest,
            staging,
            removed: RefCell::new(Vec::new()),
            scripts: RefCell::new(Vec::new()),
        }
    }

    /// Applies what was staged, in the order the container's installer
    /// does it: the scripts (users, groups), the removals, then every
    /// file at once (`tar` keeps the guest's directories and their modes,
    /// and its directory symlinks such as /lib).
    pub fn apply(self) {
        for script in self.scripts.borrow().iter() {
            self.guest.sh_ok(script);
        }
        let removed = self.removed.borrow();
        if !removed.is_empty() {
            let mut argv = vec!["rm", "-f", "--"];
            argv.extend(removed.iter().map(String::as_str));
            self.guest.run_ok(&argv);
        }
        let tar = Command::new("tar")
            .args(["-c", "--owner=0", "--group=0", "-C"])
            .arg(self.staging.as_str())
            .arg(".")
            .output()
            .unwrap_or_else(|e| panic!("cannot run tar on {}: {e}", self.staging));
        assert!(
            tar.status.success(),
            "tar of {} failed: {}",
            self.staging,
            String::from_utf8_lossy(&tar.stderr)
        );
        let out = self.guest.run_full(
            &[
                "tar",
                "-x",
                "-p",
                "--no-overwrite-dir",
                "--keep-directory-symlink",
                "-C",
                "/",
            ],
            Some(&tar.stdout),
            Duration::from_secs(120),
        );
        assert!(
            out.success(),
            "error: unpacking the machine into the guest failed: {out:#?}"
        );
        let _ = fs::remove_dir_all(&self.staging);
    }
}

impl Root for GuestRoot {
    fn host_path(&self, path: &str) -> Utf8PathBuf {
        assert!(path.starts_with('/'), "{path} is not absolute");
        self.staging.join(path.trim_start_matches('/'))
    }

    fn write(&self, path: &str, contents: &[u8], mode: u32) {
        let target = self.host_path(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&target);
        fs::write(&target, contents).unwrap_or_else(|e| panic!("write {target}: {e}"));
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn symlink(&self, path: &str, points_to: &str) {
        let target = self.host_path(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&target);
        std::os::unix::fs::symlink(points_to, &target)
            .unwrap_or_else(|e| panic!("symlink {target} -> {points_to}: {e}"));
    }

    fn remove(&self, path: &str) {
        let _ = fs::remove_file(self.host_path(path));
        self.removed.borrow_mut().push(path.to_owned());
    }

    fn run_script(&self, script: &str) {
        self.scripts.borrow_mut().push(script.to_owned());
    }

    /// From the guest's dpkg file lists, read once for every package of
    /// [`PACKAGES`].
    fn debian_programs(&self, package: &str) -> Vec<String> {
        static PROGRAMS: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
        let programs = PROGRAMS.get_or_init(|| {
            let mut argv = vec![
                "sh",
                "-c",
                "for p in \"$@\"; do for l in /var/lib/dpkg/info/$p.list /var/lib/dpkg/info/$p:amd64.list; do \
                   [ -f \"$l\" ] || continue; \
                   while read -r f; do [ -d \"$f\" ] || echo \"$p $f\"; done <\"$l\"; \
                 done; done",
                "sh",
            ];
            let debians: Vec<&str> = PACKAGES.iter().flat_map(|(_, d, _)| d.iter().copied()).collect();
            argv.extend(debians);
            let listed = self.guest.run_ok(&argv);
            let mut by_package: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for line in listed.lines() {
                if let Some((p, file)) = line.split_once(' ') {
                    if is_program_dir(file) {
                        by_package.entry(p.to_owned()).or_default().push(file.to_owned());
                    }
                }
            }
            by_package
        });
        programs.get(package).cloned().unwrap_or_default()
    }

    /// A symlink to the build in cargo's target directory (the 9p share).
    fn install_binary(&self, path: &str, bin: &str) {
        self.symlink(path, &self.guest.binary(bin));
    }
}

/// Installs `machine` into the guest as NixOS activation would (users,
/// store paths, /etc, tmpfiles, units), creates what its tmpfiles rules
/// declare and reloads the guest's systemd. Starts nothing.
pub fn install(guest: &'static Guest, machine: &Machine) {
    let root = GuestRoot::new(guest);
    machine.install(&root, None);
    root.apply();
    guest.run_ok(&[
        "systemd-tmpfiles",
        "--create",
        "--exclude-prefix=/dev",
        "/etc/tmpfiles.d/00-nixos.conf",
        "/etc/tmpfiles.d/00-booted-system.conf",
        "/etc/tmpfiles.d/00-current-system.conf",
    ]);
    guest.run_ok(&["systemctl", "daemon-reload"]);
}

/// `systemctl show -p PROPERTY --value UNIT` in the guest.
pub fn unit_property(guest: &Guest, unit: &str, property: &str) -> String {
    guest
        .run_ok(&["systemctl", "show", "-p", property, "--value", unit])
        .trim()
        .to_owned()
}

/// What systemd and the journal say about `units`, for failures.
pub fn diagnostics(guest: &Guest, units: &[&str]) -> String {
    let mut text = String::new();
    for unit in units {
        let status = guest.run(&["systemctl", "status", "--no-pager", "-l", "-n", "30", unit]);
        text.push_str(&format!("--- {unit}\n{}{}\n", status.stdout, status.stderr));
    }
    let failed = guest.run(&["systemctl", "--failed", "--no-legend", "--plain"]);
    text.push_str(&format!("--- failed units\n{}", failed.stdout));
    text
}

/// Waits (up to `timeout`) until systemd has no jobs queued.
pub fn wait_for_jobs(guest: &Guest, timeout: Duration) {
    wait_until(guest, "systemd's jobs to finish", timeout, |g| {
        let jobs = g.run(&["systemctl", "list-jobs", "--no-legend", "--plain"]);
        if jobs.stdout.trim().is_empty() {
            Ok(())
        } else {
            Err(jobs.stdout)
        }
    });
}

/// Polls `check` until it gives a value, for at most `timeout`.
pub fn wait_until<T>(
    guest: &Guest,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&Guest) -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check(guest) {
            Ok(value) => return value,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "error: waited {timeout:?} for {what} in the guest; last: {last}\n{}",
                    diagnostics(guest, &[])
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

/// `systemctl VERB UNITS...` in the guest; its output (whatever the status).
pub fn systemctl(guest: &Guest, verb: &str, units: &[&str]) -> Output {
    let mut argv = vec!["systemctl", verb, "--"];
    argv.extend_from_slice(units);
    guest.run(&argv)
}
