//! Real OpenZFS: a Debian trixie guest with its own kernel and OpenZFS 2.4
//! built by dkms, booted under qemu, for the tests of what zfs-fuse cannot
//! show (tests/e2e/tests/openzfs.rs).
//!
//! - **Image**: `tests/env/openzfs-guest.sh` builds it once and caches it in
//!   `/var/cache/zpersist-openzfs-guest/<hash of the recipe>` (first build
//!   on 2 cores shared with other builds: 27 minutes, measured 2026-12-07:
//!   debootstrap 4, the tools 2.5, dkms compiling OpenZFS 2.4.4 19.5, the
//!   rest the image; see tests/README.md).
//! - **Boot**: `qemu-system-x86_64 -machine q35 -accel tcg,thread=multi`
//!   (KVM only where the host's CPU shows vmx or svm: here /dev/kvm is
//!   kvm_pvm, which faults on a stock kernel), `-nic none` (no network at
//!   all), the image through a qcow2 overlay (the cached image is never
//!   written), [`DISKS`] blank sparse raw files as virtio disks for pools
//!   (`/dev/vdb`...), the checkout and cargo's target directory shared
//!   read-only by 9p (the image mounts them on `/mnt/repo`, `/mnt/target`: binaries built on the
//!   host run in the guest; a restored guest mounts them again with its page
//!   cache at /run/zpersist-{repo,target}, which makes an exec of a debug
//!   binary 0.1 s instead of 2 s), the guest agent and QMP on unix sockets.
//! - **Once per test binary**: the first binary on a machine cold-boots the
//!   guest (about 60 s under TCG until the agent answers and systemd says
//!   `running`), saves the booted state through QMP (`migrate file:`) into
//!   the cache beside the image (74 s in all, once per image), and every
//!   binary restores that state (2.4–4.3 s until the guest answers). [`Guest::shared`] gives the
//!   one guest of the process; tests in it run at once on their own pools.
//! - **Commands** go through the qemu guest agent's JSON protocol
//!   (`guest-exec`, polled with `guest-exec-status`), each wrapped in the
//!   guest's `timeout -k 5 SECS`, each agent call bounded by a socket
//!   timeout: nothing waits forever. A command round trip costs about 0.3 s;
//!   a zfs call under TCG about 0.5 s (25–50× zfs-fuse), so tests use few
//!   datasets and a few MiB of data.
//! - **Power off**: qemu runs under a shell that holds a pipe from this
//!   process; when the test process ends (passing, panicking or killed),
//!   the pipe closes and the shell kills qemu and removes the run directory
//!   (`/var/tmp/zpersist-guests/<pid>`).
//! - **Skip**: where qemu is not installed or cannot start the guest at all,
//!   [`Guest::shared`] prints one loud line saying why and returns `None`;
//!   the tests return early and everything else runs. A guest that starts
//!   but misbehaves fails the tests.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};

use crate::container::Output;
use crate::pool::{parse_argv_log, Recorded, DESTRUCTIVE};
use crate::repo_root;

/// Blank disks each guest gets for pools: `/dev/vdb` onwards.
pub const DISKS: usize = 8;
/// The size of each (sparse: only what pools write takes space).
const DISK_SIZE: u64 = 2 << 30;
/// Where running guests keep their overlay, disks and sockets.
const GUESTS: &str = "/var/tmp/zpersist-guests";
/// How long a cold boot may take until systemd answers (about 60 s here).
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a restore may take until the agent answers (about 3 s here).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);
/// One agent request and its answer (not the command: that is polled).
const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A command's default bound.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a restored guest has the checkout and cargo's target directory.
pub const GUEST_REPO: &str = "/run/zpersist-repo";
pub const GUEST_TARGET: &str = "/run/zpersist-target";

/// The guest's PATH and locale; nothing of the test's environment.
const GUEST_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LC_ALL=C.UTF-8",
    "LANG=C.UTF-8",
];

/// The booted guest of this test process.
pub struct Guest {
    agent: Mutex<Agent>,
    run_dir: Utf8PathBuf,
    disks: Mutex<[bool; DISKS]>,
    /// Held until the process ends: its closing powers qemu off.
    _lifeline: Mutex<ChildStdin>,
    _keeper: Mutex<Child>,
    target_dir: Utf8PathBuf,
    /// `zfs version`'s first line, read at start.
    pub zfs_version: String,
    /// How long this process waited for the guest (restore, or boot + save).
    pub started_in: Duration,
}

/// Why there is no guest.
#[derive(Debug)]
enum Failure {
    /// qemu is missing or cannot start the guest at all: the OpenZFS tests
    /// are skipped, loudly.
    Unavailable(String),
    /// The guest started but misbehaved: the OpenZFS tests fail.
    Broken(String),
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure::Broken(why)
    }
}

impl From<&str> for Failure {
    fn from(why: &str) -> Failure {
        Failure::Broken(why.to_owned())
    }
}

/// The guest, or why there is none. Printed once, loudly.
static SHARED: OnceLock<Result<Guest, Failure>> = OnceLock::new();

impl Guest {
    /// The guest of this process, booted (or restored) on first use; `None`,
    /// after one loud line saying why, where qemu cannot start it at all.
    pub fn shared() -> Option<&'static Guest> {
        let result = SHARED.get_or_init(|| {
            let result = Guest::start();
            // Straight to stderr, past the test harness's capture: the
            // CI log shows the guest's version, or why there is none.
            let line = match &result {
                Ok(guest) => format!(
                    "OpenZFS guest up in {:.1} s: {} (accelerator {})",
                    guest.started_in.as_secs_f64(),
                    guest.zfs_version,
                    accel()
                ),
                Err(Failure::Unavailable(why)) => {
                    // One line, whatever qemu said.
                    let why: Vec<&str> = why.lines().filter(|l| !l.trim().is_empty()).collect();
                    format!(
                        "********** SKIPPING the OpenZFS tests: {} **********",
                        why.join(" | ")
                    )
                }
                Err(Failure::Broken(why)) => format!("OpenZFS guest unusable: {why}"),
            };
            let _ = writeln!(std::io::stderr(), "{line}");
            result
        });
        match result {
            Ok(guest) => Some(guest),
            Err(Failure::Unavailable(_)) => None,
            Err(Failure::Broken(why)) => panic!(
                "error: the OpenZFS guest started but cannot be used: {why}\n\
                 help: tests/README.md says how the guest is built and booted; \
                 rebuild it by removing /var/cache/zpersist-openzfs-guest"
            ),
        }
    }

    fn start() -> Result<Guest, Failure> {
        let qemu = which("qemu-system-x86_64").ok_or_else(|| {
            Failure::Unavailable(
                "qemu-system-x86_64 is not installed (tests/env/install.sh installs it)".into(),
            )
        })?;
        which("qemu-img").ok_or_else(|| {
            Failure::Unavailable(
                "qemu-img is not installed (tests/env/install.sh installs it)".into(),
            )
        })?;
        let started = Instant::now();
        let image = image_dir();
        let state = saved_state(&qemu, &image)?;
        let guest = Guest::launch(&qemu, &image, Some(&state))?;
        let guest = Guest {
            started_in: started.elapsed(),
            ..guest
        };
        Ok(guest)
    }

    /// Starts qemu: restoring `state` (its overlay and RAM), or a cold boot.
    fn launch(qemu: &Utf8Path, image: &Utf8Path, state: Option<&Saved>) -> Result<Guest, Failure> {
        clean_stale_run_dirs();
        static N: AtomicU64 = AtomicU64::new(0);
        let run_dir = Utf8PathBuf::from(format!(
            "{GUESTS}/{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir).map_err(|e| format!("cannot create {run_dir}: {e}"))?;
        let overlay = run_dir.join("overlay.qcow2");
        let (backing, backing_format) = match state {
            Some(saved) => (saved.overlay.clone(), "qcow2"),
            None => (image.join("image.raw"), "raw"),
        };
        let created = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", backing_format, "-b"])
            .arg(backing.as_str())
            .arg(overlay.as_str())
            .output()
            .map_err(|e| format!("cannot run qemu-img: {e}"))?;
        if !created.status.success() {
            return Err(Failure::Broken(format!(
                "qemu-img create {overlay} failed: {}",
                String::from_utf8_lossy(&created.stderr)
            )));
        }
        let target_dir = target_dir();
        let mut args: Vec<String> = vec![
            "-name".into(),
            "zpersist-guest".into(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-machine".into(),
            "q35".into(),
            "-accel".into(),
            accel(),
            "-cpu".into(),
            "max".into(),
            "-smp".into(),
            "2".into(),
            "-m".into(),
            "4G".into(),
            "-kernel".into(),
            image.join("vmlinuz").into_string(),
            "-initrd".into(),
            image.join("initrd.img").into_string(),
            "-append".into(),
            "root=/dev/vda rw console=ttyS0,115200 quiet systemd.show_status=false mitigations=off"
                .into(),
            "-drive".into(),
            format!("file={overlay},format=qcow2,if=virtio,cache=unsafe"),
        ];
        for i in 0..DISKS {
            let disk = run_dir.join(format!("disk{i}.raw"));
            let file = fs::File::create(&disk).map_err(|e| format!("cannot create {disk}: {e}"))?;
            file.set_len(DISK_SIZE)
                .map_err(|e| format!("cannot size {disk}: {e}"))?;
            args.extend([
                "-drive".into(),
                format!("file={disk},format=raw,if=virtio,cache=unsafe,discard=unmap"),
            ]);
        }
        let qga = run_dir.join("qga.sock");
        let qmp = run_dir.join("qmp.sock");
        args.extend([
            "-nic".into(),
            "none".into(),
            "-display".into(),
            "none".into(),
            "-chardev".into(),
            format!("file,id=con0,path={run_dir}/console.log"),
            "-serial".into(),
            "chardev:con0".into(),
            "-chardev".into(),
            format!("socket,id=qga0,path={qga},server=on,wait=off"),
            "-device".into(),
            "virtio-serial-pci".into(),
            "-device".into(),
            "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0".into(),
            "-virtfs".into(),
            format!(
                "local,path={},mount_tag=repo,security_model=none,readonly=on,id=repo0",
                repo_root()
            ),
            "-virtfs".into(),
            format!("local,path={target_dir},mount_tag=target,security_model=none,readonly=on,id=target0"),
            "-qmp".into(),
            format!("unix:{qmp},server=on,wait=off"),
        ]);
        if let Some(saved) = state {
            args.extend(["-incoming".into(), format!("file:{}", saved.state)]);
        }
        // The keeper: qemu in the background, killed (and its directory
        // removed) when this process's end closes the keeper's stdin.
        let keeper_script = r#"run=$1; shift
nice -n 10 "$@" </dev/null >"$run/qemu.log" 2>&1 &
q=$!
echo "$q" >"$run/qemu.pid"
read -r _ || true
kill "$q" 2>/dev/null
wait "$q" 2>/dev/null
rm -rf "$run""#;
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(keeper_script)
            .arg("sh")
            .arg(run_dir.as_str())
            .arg(qemu.as_str())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Failure::Unavailable(format!("cannot start qemu: {e}")))?;
        let lifeline = keeper.stdin.take().expect("piped stdin");
        let timeout = if state.is_some() {
            RESTORE_TIMEOUT
        } else {
            BOOT_TIMEOUT
        };
        let agent = match Agent::connect_within(&qga, timeout, &run_dir, &mut keeper) {
            Ok(agent) => agent,
            Err(why) => {
                drop(lifeline);
                let _ = keeper.wait();
                return Err(why);
            }
        };
        let guest = Guest {
            agent: Mutex::new(agent),
            run_dir,
            disks: Mutex::new([false; DISKS]),
            _lifeline: Mutex::new(lifeline),
            _keeper: Mutex::new(keeper),
            target_dir,
            zfs_version: String::new(),
            started_in: Duration::ZERO,
        };
        if state.is_some() {
            // The shares, with the guest's page cache (cache=loose): a
            // binary run from the fstab's cache=none mount is read over
            // 9p at every exec (1.7-2.5 s for a debug build under TCG; 0.1
            // s cached). Safe here: a restored guest lives as long as one
            // test process, during which the binaries do not change. Not
            // before a save: a mounted 9p share blocks migration.
            for (tag, at) in [("repo", GUEST_REPO), ("target", GUEST_TARGET)] {
                guest.run_ok(&["mkdir", "-p", at]);
                guest.run_ok(&[
                    "mount",
                    "-t",
                    "9p",
                    "-o",
                    "trans=virtio,version=9p2000.L,msize=1048576,cache=loose,ro",
                    tag,
                    at,
                ]);
            }
            // The saved clock is the save's: set the host's time.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time after 1970");
            guest.sh_ok(&format!(
                "date -u -s @{}.{:09} >/dev/null",
                now.as_secs(),
                now.subsec_nanos()
            ));
        }
        let state = guest.run_timeout(&["systemctl", "is-system-running", "--wait"], timeout);
        if !matches!(state.stdout.trim(), "running" | "degraded") {
            return Err(Failure::Broken(format!(
                "the guest's systemd is {:?} after boot: {}",
                state.stdout.trim(),
                guest.diagnostics()
            )));
        }
        let version = guest.run(&["zfs", "version"]);
        if !version.success() {
            return Err(Failure::Broken(format!(
                "`zfs version` fails in the guest: {version:?}"
            )));
        }
        Ok(Guest {
            zfs_version: version.stdout.lines().next().unwrap_or("").to_owned(),
            ..guest
        })
    }

    /// What the guest's console and qemu said, for failures.
    pub fn diagnostics(&self) -> String {
        run_dir_diagnostics(&self.run_dir)
    }

    /// Runs `argv` in the guest as root, bounded by [`COMMAND_TIMEOUT`].
    pub fn run(&self, argv: &[&str]) -> Output {
        self.run_timeout(argv, COMMAND_TIMEOUT)
    }

    /// Runs `argv` in the guest as root with `stdin`, bounded by `timeout`.
    pub fn run_full(&self, argv: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        let secs = timeout.as_secs().max(1).to_string();
        let mut arg: Vec<&str> = vec!["-k", "5", &secs];
        arg.extend_from_slice(argv);
        let mut request = json!({
            "path": "/usr/bin/timeout",
            "arg": arg,
            "env": GUEST_ENV,
            "capture-output": true,
        });
        if let Some(input) = stdin {
            request["input-data"] = Value::String(base64_encode(input));
        }
        let pid = self
            .call("guest-exec", request)
            .and_then(|r| r["pid"].as_i64().ok_or_else(|| format!("no pid in {r}")))
            .unwrap_or_else(|e| panic!("error: guest-exec {argv:?}: {e}\n{}", self.diagnostics()));
        let deadline = Instant::now() + timeout + Duration::from_secs(30);
        let mut delay = Duration::from_millis(2);
        loop {
            let status = self
                .call("guest-exec-status", json!({ "pid": pid }))
                .unwrap_or_else(|e| {
                    panic!(
                        "error: guest-exec-status {argv:?}: {e}\n{}",
                        self.diagnostics()
                    )
                });
            if status["exited"].as_bool() == Some(true) {
                let text = |key: &str| {
                    String::from_utf8_lossy(&base64_decode(status[key].as_str().unwrap_or("")))
                        .into_owned()
                };
                let code = status["exitcode"]
                    .as_i64()
                    .or_else(|| status["signal"].as_i64().map(|s| 128 + s))
                    .map(|c| c as i32);
                return Output {
                    code,
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                };
            }
            assert!(
                Instant::now() < deadline,
                "error: {argv:?} still running in the guest after {timeout:?} (its timeout did not end it)\n{}",
                self.diagnostics()
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    pub fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Output {
        self.run_full(argv, None, timeout)
    }

    /// Runs `program args` in the guest with `env` added and the recording
    /// `zfs` (tests/env/recording-zfs, from the shared checkout) first on
    /// PATH, in front of the guest's real OpenZFS: what it printed, its
    /// status and every zfs argv it ran (crate::pool::run_logged's twin).
    pub fn run_logged(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Recorded {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let log = format!(
            "/var/tmp/zpersist-argv-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let path = format!(
            "PATH={GUEST_REPO}/tests/env/recording-zfs:{}",
            &GUEST_ENV[0][5..]
        );
        let log_var = format!("ZFS_ARGV_LOG={log}");
        let mut argv = vec!["env", &path, &log_var, "REAL_ZFS=/usr/sbin/zfs"];
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        argv.extend(pairs.iter().map(String::as_str));
        argv.push(program);
        argv.extend_from_slice(args);
        let out = self.run(&argv);
        let calls = self.run(&["cat", &log]).stdout;
        self.run(&["rm", "-f", &log]);
        Recorded {
            code: out.code.unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
            zfs_calls: parse_argv_log(&calls),
        }
    }

    /// [`Guest::run_logged`], panicking if it ran a destructive zfs command
    /// (crate::pool::run_recorded's twin).
    pub fn run_recorded(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Recorded {
        let recorded = self.run_logged(program, args, env);
        for argv in &recorded.zfs_calls {
            assert!(
                !DESTRUCTIVE.contains(&argv[0].as_str()),
                "{program} ran a destructive zfs command: zfs {argv:?}\n{recorded:#?}"
            );
        }
        recorded
    }

    /// Runs `argv`, panicking with its output unless it exits 0; its stdout.
    pub fn run_ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.success(),
            "error: {argv:?} failed in the guest: {out:#?}"
        );
        out.stdout
    }

    /// `sh -c SCRIPT` in the guest (setup and checks only).
    pub fn sh(&self, script: &str) -> Output {
        self.run(&["sh", "-c", script])
    }

    pub fn sh_ok(&self, script: &str) -> String {
        self.run_ok(&["sh", "-c", script])
    }

    /// Writes `contents` to `path` in the guest (parents created).
    pub fn write(&self, path: &str, contents: &[u8]) {
        let out = self.run_full(
            &[
                "sh",
                "-c",
                "mkdir -p \"$(dirname \"$1\")\" && cat >\"$1\"",
                "sh",
                path,
            ],
            Some(contents),
            COMMAND_TIMEOUT,
        );
        assert!(
            out.success(),
            "error: cannot write {path} in the guest: {out:#?}"
        );
    }

    /// `zfs ARGS` in the guest, panicking on failure; its stdout.
    pub fn zfs(&self, args: &[&str]) -> String {
        let mut argv = vec!["zfs"];
        argv.extend_from_slice(args);
        self.run_ok(&argv)
    }

    /// A property's parsable value (`zfs get -H -p -o value`).
    pub fn get(&self, dataset: &str, property: &str) -> String {
        self.zfs(&["get", "-H", "-p", "-o", "value", property, dataset])
            .trim()
            .to_owned()
    }

    /// The snapshot names (after the `@`) of `dataset`, oldest first.
    pub fn snapshots(&self, dataset: &str) -> Vec<String> {
        self.zfs(&[
            "list",
            "-H",
            "-t",
            "snapshot",
            "-o",
            "name",
            "-s",
            "createtxg",
            dataset,
        ])
        .lines()
        .map(|l| l.split_once('@').unwrap().1.to_owned())
        .collect()
    }

    pub fn exists(&self, dataset: &str) -> bool {
        self.run(&["zfs", "list", "-H", "-o", "name", dataset])
            .success()
    }

    /// The guest's path of a zpersist binary built fresh on the host
    /// (crate::binaries::built), through the 9p share of the target directory.
    pub fn binary(&self, name: &str) -> String {
        let host = crate::binaries::built(name);
        let rel = host
            .strip_prefix(&self.target_dir)
            .unwrap_or_else(|_| panic!("{host} is not under {}", self.target_dir));
        format!("{GUEST_TARGET}/{rel}")
    }

    /// A blank disk of its own for a pool (`/dev/vdX`), released on drop.
    fn claim_disk(&self) -> usize {
        let mut disks = self.disks.lock().unwrap();
        let free = disks
            .iter()
            .position(|used| !used)
            .unwrap_or_else(|| panic!("all {DISKS} guest disks hold pools; raise DISKS"));
        disks[free] = true;
        free
    }

    fn call(&self, name: &str, args: Value) -> Result<Value, String> {
        self.agent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .call(name, Some(args))
    }
}

/// A pool on a blank guest disk, named `tag` (unique within the guest),
/// its datasets mounted under `/mnt/pools/<tag>`; destroyed on drop.
pub struct GuestPool {
    guest: &'static Guest,
    pub name: String,
    disk: usize,
}

impl GuestPool {
    pub fn new(guest: &'static Guest, tag: &str) -> GuestPool {
        let disk = guest.claim_disk();
        let device = format!("/dev/vd{}", (b'b' + disk as u8) as char);
        let name = tag.to_owned();
        let mnt = format!("/mnt/pools/{name}");
        // A disk another pool of this process had: blank it first.
        guest.run_ok(&["wipefs", "-a", "-q", &device]);
        guest.run_ok(&["zpool", "create", "-f", "-m", &mnt, &name, &device]);
        GuestPool { guest, name, disk }
    }

    pub fn mnt(&self) -> String {
        format!("/mnt/pools/{}", self.name)
    }

    pub fn ds(&self, rest: &str) -> String {
        format!("{}/{rest}", self.name)
    }

    /// A scratch path in the guest for this pool's test (plans, state).
    pub fn scratch(&self, name: &str) -> String {
        format!("/var/tmp/zpersist-{}/{name}", self.name)
    }

    /// `ensure-datasets --plan PLAN` on this pool (the plan written to its
    /// scratch directory, a lock of its own), recorded.
    pub fn ensure(&self, plan: &Value) -> Recorded {
        let path = self.write_plan("plan.json", plan);
        let lock = self.scratch("run.lock");
        self.guest.run_recorded(
            &self.guest.binary("ensure-datasets"),
            &["--plan", &path, "--lock-file", &lock],
            &[],
        )
    }

    /// Writes `plan` as JSON into this pool's scratch directory.
    pub fn write_plan(&self, name: &str, plan: &Value) -> String {
        let path = self.scratch(name);
        self.guest.write(
            &path,
            serde_json::to_string_pretty(plan).unwrap().as_bytes(),
        );
        path
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        let out = self.guest.run(&["zpool", "destroy", "-f", &self.name]);
        if !out.success() && !std::thread::panicking() {
            panic!(
                "error: zpool destroy {} failed in the guest: {out:#?}",
                self.name
            );
        }
        self.guest.sh(&format!(
            "rm -rf /var/tmp/zpersist-{} /mnt/pools/{}",
            self.name, self.name
        ));
        self.guest.disks.lock().unwrap()[self.disk] = false;
    }
}

/// A saved booted guest: its overlay and RAM/device state.
struct Saved {
    overlay: Utf8PathBuf,
    state: Utf8PathBuf,
}

/// The booted guest saved beside the image, made first when missing (one
/// process at a time: a lock in the image's directory).
fn saved_state(qemu: &Utf8Path, image: &Utf8Path) -> Result<Saved, Failure> {
    let accel = accel();
    let kind = accel.split(',').next().unwrap_or("tcg").to_owned();
    let saved = Saved {
        overlay: image.join(format!("booted-{kind}.qcow2")),
        state: image.join(format!("booted-{kind}.state")),
    };
    let lock_path = image.join(".boot.lock");
    let lock = fs::File::create(&lock_path).map_err(|e| format!("cannot open {lock_path}: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {lock_path}: {e}"))?;
    if saved.state.exists() && saved.overlay.exists() {
        return Ok(saved);
    }
    let _ = writeln!(std::io::stderr(), "booting the OpenZFS guest cold to save its booted state (once per image; about a minute under TCG)");
    let booted = Guest::launch(qemu, image, None)?;
    let qmp = booted.run_dir.join("qmp.sock");
    let partial = image.join(format!("booted-{kind}.state.partial"));
    let _ = fs::remove_file(&partial);
    qmp_save(&qmp, &partial)?;
    // qemu has quit: keep its overlay, then let the keeper clean up.
    let pid: u32 = fs::read_to_string(booted.run_dir.join("qemu.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .ok_or("qemu's pid file is missing")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) {
        if Instant::now() > deadline {
            return Err(Failure::Broken(
                "qemu did not quit after saving its state".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::rename(booted.run_dir.join("overlay.qcow2"), &saved.overlay)
        .map_err(|e| format!("cannot keep the booted overlay: {e}"))?;
    fs::rename(&partial, &saved.state).map_err(|e| format!("cannot keep the state: {e}"))?;
    drop(booted);
    Ok(saved)
}

/// Saves the running guest's state to `file` through QMP, then quits qemu.
fn qmp_save(socket: &Utf8Path, file: &Utf8Path) -> Result<(), String> {
    let stream =
        UnixStream::connect(socket).map_err(|e| format!("cannot connect to QMP {socket}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("QMP greeting: {e}"))?;
    let mut call = |name: &str, args: Value| -> Result<Value, String> {
        writeln!(writer, "{}", json!({ "execute": name, "arguments": args }))
            .map_err(|e| format!("QMP {name}: {e}"))?;
        loop {
            let mut line = String::new();
            if reader
                .read_line(&mut line)
                .map_err(|e| format!("QMP {name}: {e}"))?
                == 0
            {
                return Err(format!("QMP closed during {name}"));
            }
            let reply: Value =
                serde_json::from_str(&line).map_err(|e| format!("QMP {line}: {e}"))?;
            if let Some(error) = reply.get("error") {
                return Err(format!("QMP {name}: {error}"));
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
        }
    };
    call("qmp_capabilities", json!({}))?;
    call("migrate", json!({ "uri": format!("file:{file}") }))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = call("query-migrate", json!({}))?;
        match status["status"].as_str() {
            Some("completed") => break,
            Some("failed") | Some("cancelled") => {
                return Err(format!("saving the booted guest failed: {status}"))
            }
            _ if Instant::now() > deadline => {
                return Err("saving the booted guest took over 5 minutes".into())
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = call("quit", json!({}));
    Ok(())
}

/// A connection to the guest agent (it serves one client at a time).
struct Agent {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Agent {
    fn connect_within(
        socket: &Utf8Path,
        timeout: Duration,
        run_dir: &Utf8Path,
        keeper: &mut Child,
    ) -> Result<Agent, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = keeper.try_wait() {
                return Err(Failure::Unavailable(format!(
                    "qemu could not start the guest ({status}): {}",
                    run_dir_diagnostics(run_dir)
                )));
            }
            if let Some(pid) = fs::read_to_string(run_dir.join("qemu.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                if !alive(pid) {
                    return Err(Failure::Unavailable(format!(
                        "qemu could not start the guest: {}",
                        run_dir_diagnostics(run_dir)
                    )));
                }
            }
            if let Ok(stream) = UnixStream::connect(socket) {
                let attempt = (|| {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .map_err(|e| e.to_string())?;
                    let mut agent = Agent {
                        reader: BufReader::new(stream.try_clone().map_err(|e| e.to_string())?),
                        writer: stream,
                    };
                    agent.sync()?;
                    agent
                        .reader
                        .get_ref()
                        .set_read_timeout(Some(AGENT_CALL_TIMEOUT))
                        .map_err(|e| e.to_string())?;
                    Ok::<Agent, String>(agent)
                })();
                if let Ok(agent) = attempt {
                    return Ok(agent);
                }
            }
            if Instant::now() > deadline {
                return Err(Failure::Broken(format!(
                    "the guest agent did not answer within {timeout:?}: {}",
                    run_dir_diagnostics(run_dir)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `guest-sync`: discards whatever an earlier client left unread.
    fn sync(&mut self) -> Result<(), String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let token = (u64::from(std::process::id()) * 7919 + nanos) % 2_000_000_000 + 1;
        self.send(&json!({ "execute": "guest-sync", "arguments": { "id": token } }))?;
        loop {
            let reply = self.receive()?;
            if reply["return"].as_u64() == Some(token) {
                return Ok(());
            }
        }
    }

    fn send(&mut self, request: &Value) -> Result<(), String> {
        writeln!(self.writer, "{request}").map_err(|e| format!("writing to the agent: {e}"))
    }

    fn receive(&mut self) -> Result<Value, String> {
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("reading from the agent: {e}"))?;
            if n == 0 {
                return Err("the agent closed its socket".into());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim().trim_start_matches('\u{fffd}');
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text).map_err(|e| format!("agent said {text:?}: {e}"));
        }
    }

    fn call(&mut self, name: &str, args: Option<Value>) -> Result<Value, String> {
        let request = match args {
            Some(args) => json!({ "execute": name, "arguments": args }),
            None => json!({ "execute": name }),
        };
        self.send(&request)?;
        let reply = self.receive()?;
        if let Some(error) = reply.get("error") {
            return Err(format!("{name}: {error}"));
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
    }
}

/// The accelerator: KVM where the CPU shows hardware virtualisation (a
/// stock kernel runs there), TCG otherwise; `ZPERSIST_GUEST_ACCEL` decides
/// where set.
fn accel() -> String {
    if let Ok(accel) = std::env::var("ZPERSIST_GUEST_ACCEL") {
        return accel;
    }
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hardware = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hardware && Utf8Path::new("/dev/kvm").exists() {
        "kvm".into()
    } else {
        "tcg,thread=multi,tb-size=512".into()
    }
}

/// The cached image's directory, built first when missing.
pub fn image_dir() -> Utf8PathBuf {
    crate::cached_by(
        "tests/env/openzfs-guest.sh",
        "the OpenZFS guest image",
        "debootstrap, mke2fs and qemu",
    )
}

/// Cargo's target directory of the running test (`<target>/<profile>/deps/<test>`).
fn target_dir() -> Utf8PathBuf {
    let exe = Utf8PathBuf::try_from(std::env::current_exe().expect("the test's own path"))
        .expect("a UTF-8 target directory");
    exe.ancestors()
        .nth(3)
        .expect("the test runs from <target>/<profile>/deps")
        .to_owned()
}

fn which(program: &str) -> Option<Utf8PathBuf> {
    std::env::var("PATH").ok()?.split(':').find_map(|dir| {
        let path = Utf8Path::new(dir).join(program);
        path.is_file().then_some(path)
    })
}

/// Whether process `pid` still runs (a zombie, exited but not yet reaped
/// by the keeper, does not).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Run directories of test processes that no longer exist (killed before
/// their keeper could remove them).
fn clean_stale_run_dirs() {
    let Ok(entries) = fs::read_dir(GUESTS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('x').next() else {
            continue;
        };
        if !Utf8Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn run_dir_diagnostics(run_dir: &Utf8Path) -> String {
    let tail = |name: &str| {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(run_dir.join(name)) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    format!(
        "\n--- qemu ({run_dir}/qemu.log) ---\n{}\n--- console ({run_dir}/console.log) ---\n{}",
        tail("qemu.log"),
        tail("console.log")
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let Some(v) = B64.iter().position(|&b| b == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 255, 128, 7, 9]] {
            let encoded = base64_encode(data);
            assert_eq!(encoded.len() % 4, 0);
            assert_eq!(base64_decode(&encoded), data);
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    }
}
