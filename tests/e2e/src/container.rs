//! A booted Debian 12 with systemd as PID 1 and a zfs-fuse daemon of its
//! own, for tests of the units zpersist generates under a real systemd.
//!
//! The machine running the tests has no systemd as PID 1, so each test
//! boots a container:
//!
//! - **Root**: `tests/env/container-root.sh` builds a minimal Debian root
//!   (debootstrap: systemd, dbus, zfs-fuse, rsync, sanoid, PostgreSQL 15,
//!   barman-cli-cloud) once, cached in
//!   `/var/cache/zpersist-test-root/<hash of the recipe>`. A container never
//!   writes to it: it boots an overlay (`mount -t overlay`, the cached root
//!   read-only below, an upper directory of its own), so tests can share
//!   the machine and the cache, and a container can be booted again with
//!   what it wrote (a reboot).
//! - **Boot**: `systemd-nspawn --boot --register=no --keep-unit
//!   --private-network --bind=/dev/fuse` (without a registered scope,
//!   `--property=DeviceAllow=` would have no effect, so there is none),
//!   started through `setpriv
//!   --pdeathsig TERM` so that a killed test still shuts its container
//!   down (nspawn turns SIGTERM into an orderly poweroff), from a cgroup
//!   of its own (`zpersist-containers/<name>` in each process-tracking
//!   hierarchy), so that parallel containers never share one. Commands run
//!   inside with `nsenter -t <container's systemd> -a`, with a clean
//!   environment.
//! - **Names**: `zc<test pid>x<n><tag>`, the directory
//!   `/var/tmp/zpersist-containers/<name>` (upper, work, merged root,
//!   console log). [`Drop`] powers the container off, unmounts the overlay
//!   and removes the directory, also when the test panics; a container of
//!   a test process that no longer exists (killed) is removed by the next
//!   [`Container::new`].
//!
//! Files are written from outside, through the merged root
//! ([`Container::write`]): before boot (units, users, the test's data),
//! and while it runs for what systemd reads again (a switch). That view is
//! the root file system alone: what the container mounts (zfs-fuse
//! datasets, its `/run`) is not in it, so [`Container::host_path`] of a
//! mountpoint shows the directory *under* the dataset, which is how tests
//! prove a service wrote to its dataset and not to that directory.
//!
//! Everything waits with a deadline ([`Container::wait_until`]) and, on
//! timeout, panics with what it saw and [`Container::diagnostics`]
//! (`systemctl status`, `journalctl -u`). A machine that cannot boot a
//! container (no /dev/fuse, no overlayfs, no systemd-nspawn) fails the
//! test saying so; nothing is skipped.

use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

/// Where containers live while they run.
const CONTAINERS: &str = "/var/tmp/zpersist-containers";

/// How long a boot may take until `systemctl is-system-running` answers
/// `running` or `degraded` (about 5 s here; a loaded CI machine is slower).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a poweroff may take (zfs-fuse takes about 5 s to stop).
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment of every command run inside: nothing of the test's.
const INSIDE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
    ("HOME", "/root"),
    ("SYSTEMD_PAGER", ""),
    ("SYSTEMD_COLORS", "0"),
    ("SYSTEMD_LESS", ""),
];

/// What a command run inside printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The cached root, built first when it is missing (tests/env/container-root.sh).
pub fn cached_root() -> Utf8PathBuf {
    crate::cached_by(
        "tests/env/container-root.sh",
        "the Debian root the systemd tests boot",
        "debootstrap and systemd-nspawn",
    )
}

fn require_machine() {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "error: booting a container for the systemd tests needs root\nhelp: run the tests as root (scripts/test asks sudo)"
    );
    assert!(
        Utf8Path::new("/dev/fuse").exists(),
        "error: /dev/fuse does not exist, so zfs-fuse cannot run inside the test container\n\
         help: load the fuse module (`modprobe fuse`) or give this machine /dev/fuse"
    );
    for tool in ["systemd-nspawn", "nsenter", "setpriv"] {
        assert!(
            which(tool).is_some(),
            "error: {tool} is not installed; the systemd tests boot a container with it\n\
             help: tests/env/install.sh (apt-get install systemd-container util-linux)"
        );
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    assert!(
        filesystems.lines().any(|l| l.ends_with("\toverlay")),
        "error: this kernel has no overlayfs, which the test containers boot from\n\
         help: `modprobe overlay`"
    );
}

fn which(tool: &str) -> Option<Utf8PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .map(|dir| Utf8Path::new(dir).join(tool))
        .find(|p| p.is_file())
}

fn pid_alive(pid: u32) -> bool {
    Utf8Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs a host command (argv), panicking with its output on failure.
fn host(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn is_mounted(path: &Utf8Path) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(path.as_str()))
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL. Only for processes
/// this module started (their pids are recorded in the container's directory).
fn stop_process(pid: u32, grace: Duration) {
    if !pid_alive(pid) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if pid_alive(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// The cgroups a container runs in, one per hierarchy that tracks
/// processes: the cgroup2 hierarchy and, on a machine with the legacy or
/// hybrid layout (this one), the named `systemd` hierarchy. Without a
/// systemd on the machine, `--keep-unit` leaves nspawn in the cgroup it
/// was started in; were that the same for two containers, their systemds
/// would manage one tree (`system.slice/<unit>` of one container killed
/// with the other's: "219/CGROUP"). So each gets its own.
fn cgroups(name: &str) -> Vec<Utf8PathBuf> {
    let unified = if Utf8Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Utf8Path::new("/sys/fs/cgroup")
    } else {
        Utf8Path::new("/sys/fs/cgroup/unified")
    };
    [unified, Utf8Path::new("/sys/fs/cgroup/systemd")]
        .iter()
        .filter(|root| root.join("cgroup.procs").exists())
        .map(|root| root.join("zpersist-containers").join(name))
        .collect()
}

/// Removes a cgroup tree, deepest first (what the container's systemd
/// left in it; empty once everything in it has exited).
fn remove_cgroup(dir: &Utf8Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if let Ok(path) = Utf8PathBuf::try_from(entry.path()) {
                    remove_cgroup(&path);
                }
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Removes what a container left: its nspawn (by the pid it recorded), the
/// overlay mount, its cgroups and the directory.
fn remove_leftovers(dir: &Utf8Path) {
    if let Ok(pid) = fs::read_to_string(dir.join("nspawn.pid")) {
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "systemd-nspawn" {
                stop_process(pid, POWEROFF_TIMEOUT);
            }
        }
    }
    let merged = dir.join("root");
    if is_mounted(&merged) {
        let unmounted = Command::new("umount")
            .arg(merged.as_str())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .args(["-l", merged.as_str()])
                .status();
        }
    }
    if let Some(name) = dir.file_name() {
        for cgroup in cgroups(name) {
            remove_cgroup(&cgroup);
        }
    }
    let _ = fs::remove_dir_all(dir);
}

/// Containers of test processes that no longer run (killed before their
/// Drop), named zc<pid>x...
fn remove_stale() {
    let Ok(entries) = fs::read_dir(CONTAINERS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("zc")
            .and_then(|rest| rest.split('x').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !pid_alive(pid) {
            eprintln!("removing the container {name} of a test process that no longer runs");
            remove_leftovers(&Utf8Path::new(CONTAINERS).join(&name));
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One container: an overlay of the cached root, booted or not.
pub struct Container {
    pub name: String,
    dir: Utf8PathBuf,
    root: Utf8PathBuf,
    nspawn: RefCell<Option<Child>>,
    /// The container's systemd, as a pid of this machine.
    leader: Option<u32>,
    boots: u32,
    /// Directories of this machine bound read-only at the same path.
    binds: Vec<Utf8PathBuf>,
}

impl Container {
    /// A new container (not booted yet): its root is ready for files.
    pub fn new(tag: &str) -> Container {
        require_machine();
        let lower = cached_root();
        remove_stale();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("zc{}x{n}{tag}", std::process::id());
        let dir = Utf8Path::new(CONTAINERS).join(&name);
        remove_leftovers(&dir);
        let root = dir.join("root");
        for sub in ["upper", "work", "root"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let options = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            dir.join("upper"),
            dir.join("work")
        );
        let mounted = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options, root.as_str()])
            .output()
            .expect("mount runs");
        assert!(
            mounted.status.success(),
            "error: cannot mount the overlay root of the test container ({options}): {}\n\
             help: the systemd tests need overlayfs on {CONTAINERS}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        Container {
            name,
            dir,
            root,
            nspawn: RefCell::new(None),
            leader: None,
            boots: 0,
            binds: Vec::new(),
        }
    }

    /// The path on this machine of `path` in the container's root file
    /// system (without what the container mounted: see the module docs).
    pub fn host_path(&self, path: &str) -> Utf8PathBuf {
        assert!(path.starts_with('/'), "{path} is not absolute");
        self.root.join(path.trim_start_matches('/'))
    }

    /// Binds a directory of this machine read-only at the same path inside
    /// (`--bind-ro`), from the next boot on: programs the root lacks that
    /// only tests run (moto's S3 server in its venv, whose scripts name
    /// their interpreter by that path).
    pub fn bind_ro(&mut self, dir: &Utf8Path) {
        assert!(
            dir.is_absolute() && dir.is_dir(),
            "error: cannot bind {dir} into {}: not an existing absolute directory",
            self.name
        );
        self.binds.push(dir.to_owned());
    }

    /// Writes a file into the root file system (parents created).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>, mode: u32) {
        let target = self.host_path(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        // A symlink or read-only file of an earlier generation is replaced.
        let _ = fs::remove_file(&target);
        fs::write(&target, contents).unwrap_or_else(|e| panic!("write {target}: {e}"));
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A symlink in the root file system, replacing what was there.
    pub fn symlink(&self, path: &str, points_to: &str) {
        let target = self.host_path(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&target);
        std::os::unix::fs::symlink(points_to, &target)
            .unwrap_or_else(|e| panic!("symlink {target} -> {points_to}: {e}"));
    }

    /// Removes a file of the root file system, if it is there.
    pub fn remove(&self, path: &str) {
        let _ = fs::remove_file(self.host_path(path));
    }

    /// Runs a command in the root file system with `chroot` (users and
    /// groups before boot, as NixOS's activation creates them).
    pub fn chroot(&self, args: &[&str]) -> String {
        let mut argv = vec![self.root.as_str()];
        argv.extend(args);
        host("chroot", &argv)
    }

    pub fn is_running(&self) -> bool {
        match &mut *self.nspawn.borrow_mut() {
            Some(child) => child.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Boots the container and waits until systemd says the boot is over
    /// (`running` or `degraded`: tests look at the units themselves).
    pub fn boot(&mut self) {
        assert!(!self.is_running(), "{} is already running", self.name);
        self.boots += 1;
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("console.log"))
            .unwrap();
        writeln!(&console, "===== boot {} =====", self.boots).unwrap();
        // Into a cgroup of its own first (see cgroups()), then setpriv, then nspawn.
        let procs: Vec<String> = cgroups(&self.name)
            .iter()
            .map(|dir| {
                fs::create_dir_all(dir)
                    .unwrap_or_else(|e| panic!("error: cannot create the cgroup {dir}: {e}"));
                dir.join("cgroup.procs").to_string()
            })
            .collect();
        let child = Command::new("sh")
            .args([
                "-c",
                "for procs in $ZPERSIST_CGROUP_PROCS; do echo $$ >\"$procs\" || exit 1; done; exec \"$@\"",
                "sh",
                "setpriv",
                "--pdeathsig",
                "TERM",
                "systemd-nspawn",
            ])
            .env("ZPERSIST_CGROUP_PROCS", procs.join(" "))
            .args(["--directory", self.root.as_str()])
            .arg(format!("--machine={}", self.name))
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=pipe",
                "--private-network",
                "--bind=/dev/fuse",
            ])
            .args(self.binds.iter().map(|dir| format!("--bind-ro={dir}")))
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start systemd-nspawn: {e}"));
        fs::write(self.dir.join("nspawn.pid"), child.id().to_string()).unwrap();
        let nspawn_pid = child.id();
        *self.nspawn.get_mut() = Some(child);
        self.leader = None;

        // The container's systemd: nspawn's child running systemd.
        let leader = self.wait_until(
            "the container's systemd to start",
            Duration::from_secs(30),
            |c| {
                if !c.is_running() {
                    panic!(
                        "error: systemd-nspawn exited while booting {}:\n{}",
                        c.name,
                        c.console_tail()
                    );
                }
                children_of(nspawn_pid)
                    .into_iter()
                    .find(|pid| {
                        fs::read_to_string(format!("/proc/{pid}/comm"))
                            .is_ok_and(|comm| comm.trim() == "systemd")
                    })
                    .ok_or_else(|| "no systemd child yet".to_string())
            },
        );
        self.leader = Some(leader);
        self.wait_until("the boot to finish", BOOT_TIMEOUT, |c| {
            if !c.is_running() {
                panic!(
                    "error: systemd-nspawn exited while booting {}:\n{}",
                    c.name,
                    c.console_tail()
                );
            }
            let state = c.exec(&["systemctl", "is-system-running"]);
            match state.stdout.trim() {
                "running" | "degraded" => Ok(()),
                other => Err(format!("{other} {}", state.stderr.trim())),
            }
        });
    }

    /// `systemctl poweroff`, waiting until nspawn has exited.
    pub fn poweroff(&mut self) {
        if !self.is_running() {
            return;
        }
        let _ = self.exec(&["systemctl", "poweroff", "--no-block"]);
        let deadline = Instant::now() + POWEROFF_TIMEOUT;
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.is_running() {
            let console = self.console_tail();
            if let Some(child) = self.nspawn.get_mut() {
                stop_process(child.id(), Duration::from_secs(5));
                let _ = child.wait();
            }
            panic!(
                "error: {} did not power off within {POWEROFF_TIMEOUT:?}; killed it:\n{console}",
                self.name
            );
        }
        self.leader = None;
    }

    /// Powers off and boots again, with everything the container wrote.
    pub fn reboot(&mut self) {
        self.poweroff();
        self.boot();
    }

    fn leader(&self) -> u32 {
        self.leader
            .unwrap_or_else(|| panic!("{} is not booted", self.name))
    }

    /// Runs a command inside (argv, no shell), as root.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_with_stdin(args, None)
    }

    fn exec_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let leader = self.leader().to_string();
        let mut command = Command::new("nsenter");
        command
            .args(["--target", &leader, "--all", "--"])
            .args(args)
            .env_clear()
            .envs(INSIDE_ENV.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nsenter: {e}"));
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command inside and returns its stdout; panics with its
    /// output and the state of the units in `units` when it fails.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.success(),
            "in {}: {args:?} failed ({:?}):\n{}{}",
            self.name,
            output.code,
            output.stdout,
            output.stderr
        );
        output.stdout
    }

    /// Runs a shell script inside (`sh -c`).
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["sh", "-c", script])
    }

    pub fn sh_ok(&self, script: &str) -> String {
        self.exec_ok(&["sh", "-c", script])
    }

    /// `systemctl VERB UNITS...` (start, stop, restart, ...), panicking
    /// with the status and journal of `units` and `also` when it fails.
    pub fn systemctl(&self, verb: &str, units: &[&str], also: &[&str]) {
        let mut args = vec!["systemctl", verb, "--"];
        args.extend(units);
        let output = self.exec(&args);
        if !output.success() {
            let all: Vec<&str> = units.iter().chain(also).copied().collect();
            panic!(
                "in {}: systemctl {verb} {units:?} failed:\n{}{}\n{}",
                self.name,
                output.stdout,
                output.stderr,
                self.diagnostics(&all)
            );
        }
    }

    /// One property of a unit (`systemctl show -P`).
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        self.exec_ok(&["systemctl", "show", "-P", property, "--", unit])
            .trim()
            .to_owned()
    }

    /// `ActiveState` of a unit: active, inactive, failed, activating...
    pub fn active_state(&self, unit: &str) -> String {
        self.unit_property(unit, "ActiveState")
    }

    /// Asserts that `unit` is in `state` now (`ActiveState`), showing the
    /// diagnostics of `unit` and of `also` when it is not.
    pub fn assert_state(&self, unit: &str, state: &str, also: &[&str]) {
        let now = self.active_state(unit);
        if now != state {
            let mut units = vec![unit];
            units.extend(also);
            panic!(
                "in {}: {unit} is {now}, not {state}\n{}",
                self.name,
                self.diagnostics(&units)
            );
        }
    }

    /// Waits until `unit` is in `state` (`ActiveState`), panicking with the
    /// unit's status and journal when it is not within `timeout`.
    pub fn wait_for_state(&self, unit: &str, state: &str, timeout: Duration) {
        self.wait_until(&format!("{unit} to be {state}"), timeout, |c| {
            let now = c.active_state(unit);
            if now == state {
                Ok(())
            } else {
                Err(format!("{unit} is {now}"))
            }
        });
        let _ = unit;
    }

    /// Waits until systemd has seen a file system mounted on `path` (its
    /// `.mount` unit is active). zfs-fuse mounts asynchronously: `zfs
    /// mount` and `zfs get mounted` may say yes before the kernel's mount
    /// table, and so systemd, has the mount; a unit with
    /// `RequiresMountsFor=` started in between fails on its mount unit.
    pub fn wait_for_mount(&self, path: &str, timeout: Duration) {
        let unit = self.exec_ok(&["systemd-escape", "--path", "--suffix=mount", path]);
        let unit = unit.trim();
        self.wait_for_state(unit, "active", timeout);
    }

    /// Waits until no job is queued or running (a start has settled).
    pub fn wait_for_jobs(&self, timeout: Duration) {
        self.wait_until("systemd's job queue to empty", timeout, |c| {
            let jobs = c.exec_ok(&["systemctl", "list-jobs", "--no-legend"]);
            if jobs.trim().is_empty() {
                Ok(())
            } else {
                Err(jobs)
            }
        });
    }

    /// Polls `check` every 100 ms until it gives `Ok` or `timeout` has
    /// passed; then panics with what it last saw and the diagnostics.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = match check(self) {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() >= deadline {
                let diagnostics = if self.leader.is_some() {
                    self.diagnostics(&[])
                } else {
                    self.console_tail()
                };
                panic!(
                    "timed out after {timeout:?} waiting for {what} in {}; last seen: {seen}\n{diagnostics}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What a failing test shows: the failed units, the job queue, and
    /// `systemctl status` and `journalctl -u` of each unit in `units` and
    /// of each failed unit.
    pub fn diagnostics(&self, units: &[&str]) -> String {
        let failed = self
            .exec(&["systemctl", "--failed", "--no-legend", "--plain"])
            .stdout;
        // And the units whose start or stop is under way (what a stuck
        // boot or switch waits for).
        let jobs = self
            .exec(&["systemctl", "list-jobs", "--no-legend", "--plain"])
            .stdout;
        let running = jobs.lines().filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.get(3) == Some(&"running")).then(|| fields[1])
        });
        let mut units: Vec<&str> = units.to_vec();
        for unit in failed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .chain(running)
        {
            if !units.contains(&unit) {
                units.push(unit);
            }
        }
        let mut text = String::new();
        let mut show = |title: &str, args: &[&str]| {
            let output = self.exec(args);
            text.push_str(&format!(
                "----- {title}\n{}{}",
                output.stdout, output.stderr
            ));
        };
        show(
            "systemctl --failed",
            &["systemctl", "--failed", "--no-legend"],
        );
        show(
            "systemctl list-jobs",
            &["systemctl", "list-jobs", "--no-legend"],
        );
        show(
            "systemd's last messages",
            &[
                "journalctl",
                "--no-pager",
                "-o",
                "short-monotonic",
                "-n",
                "50",
                "_PID=1",
            ],
        );
        for unit in &units {
            show(
                &format!("systemctl status {unit}"),
                &["systemctl", "status", "--no-pager", "--lines=0", "--", unit],
            );
            show(
                &format!("journalctl -u {unit}"),
                &[
                    "journalctl",
                    "--no-pager",
                    "-o",
                    "short-monotonic",
                    "-n",
                    "40",
                    "-u",
                    unit,
                ],
            );
        }
        text
    }

    /// The last lines nspawn and the container's console printed.
    pub fn console_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "----- console of {}\n{}",
            self.name,
            lines[start..].join("\n")
        )
    }
}

/// The pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        if after.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            children.push(child);
        }
    }
    children
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.is_running() {
            if self.leader.is_some() {
                let _ = self.exec(&["systemctl", "poweroff", "--no-block"]);
                let deadline = Instant::now() + POWEROFF_TIMEOUT;
                while self.is_running() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if let Some(child) = self.nspawn.get_mut() {
                stop_process(child.id(), Duration::from_secs(10));
                let _ = child.wait();
            }
        }
        if std::env::var_os("ZPERSIST_KEEP_CONTAINER").is_some() {
            eprintln!(
                "kept {} (ZPERSIST_KEEP_CONTAINER): the root is mounted at {}",
                self.dir, self.root
            );
            return;
        }
        remove_leftovers(&self.dir);
    }
}
