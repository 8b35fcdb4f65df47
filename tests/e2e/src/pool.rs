//! File-backed zfs-fuse pools with unique names, one per test, and the
//! recording `zfs` wrapper that proves which commands a binary ran.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::repo_root;

/// Runs a command (argv, no shell), panicking with its stderr on failure.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let output = duct::cmd(program, args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `zfs ARGS` with the real zfs, for setting up and checking.
pub fn zfs(args: &[&str]) -> String {
    run_ok("zfs", args)
}

/// A property's parsable value (`zfs get -H -p -o value`).
pub fn get(dataset: &str, property: &str) -> String {
    zfs(&["get", "-H", "-p", "-o", "value", property, dataset])
        .trim()
        .to_string()
}

pub fn exists(dataset: &str) -> bool {
    duct::cmd("zfs", ["list", "-H", "-o", "name", dataset])
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()
        .is_ok_and(|o| o.status.success())
}

fn require_zfs_fuse() {
    let answers = duct::cmd("zpool", ["list"])
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run();
    assert!(
        answers.is_ok_and(|o| o.status.success()),
        "ZFS does not answer (`zpool list` failed). Start it with tests/env/start-zfs.sh, \
         or run the whole suite with scripts/test"
    );
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// zfs-fuse can wedge (every later request hangs in the kernel's FUSE queue)
/// when mounts on different pools run concurrently, which parallel tests
/// do. Tests holding a pool therefore take turns, across threads and test
/// processes alike (flock on one file); OpenZFS has no such limit, and the
/// concurrency test still runs its binaries at once.
fn take_turn() -> std::fs::File {
    let path = "/tmp/zpersist-tests/pool-turn.lock";
    std::fs::create_dir_all("/tmp/zpersist-tests").unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    file.lock().unwrap_or_else(|e| panic!("lock {path}: {e}"));
    file
}

/// A pool on a sparse file, destroyed (with its files) when dropped.
pub struct TestPool {
    pub name: String,
    /// Holds the image, the pool's mountpoint root and scratch files.
    pub dir: Utf8PathBuf,
    /// Held while the pool exists; released when dropped, after the pool.
    /// `None` for a companion, which lives within its first pool's turn.
    _turn: Option<std::fs::File>,
}

impl TestPool {
    /// A new pool named `zt<pid>x<n><tag>`: names are global to the zfs-fuse
    /// daemon, so every test gets its own.
    pub fn new(tag: &str) -> TestPool {
        let turn = take_turn();
        TestPool::create(tag, Some(turn))
    }

    /// A second pool for the same test (a replication target, say), made
    /// within this pool's turn. Drop it before this one: declare it after
    /// this pool as a local, or before it as a struct field.
    pub fn companion(&self, tag: &str) -> TestPool {
        TestPool::create(tag, None)
    }

    fn create(tag: &str, turn: Option<std::fs::File>) -> TestPool {
        require_zfs_fuse();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("zt{}x{n}{tag}", std::process::id());
        let dir = Utf8PathBuf::from(format!("/tmp/zpersist-tests/{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("pool.img");
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(256 << 20).unwrap();
        let mnt = dir.join("mnt");
        run_ok(
            "zpool",
            &["create", "-m", mnt.as_str(), &name, image.as_str()],
        );
        TestPool {
            name,
            dir,
            _turn: turn,
        }
    }

    /// Where the pool's root dataset is mounted.
    pub fn mnt(&self) -> Utf8PathBuf {
        self.dir.join("mnt")
    }

    /// `pool/rest`
    pub fn ds(&self, rest: &str) -> String {
        format!("{}/{rest}", self.name)
    }

    /// A scratch path for this test, outside the pool.
    pub fn scratch(&self, name: &str) -> Utf8PathBuf {
        self.dir.join(name)
    }

    /// The repository's example plan, moved onto this pool: `tank` becomes
    /// this pool and `/srv/tank` its mount root.
    pub fn example_plan(&self) -> serde_json::Value {
        let text =
            std::fs::read_to_string(repo_root().join("examples/plans/datasets.json")).unwrap();
        let mut plan: serde_json::Value = serde_json::from_str(&text).unwrap();
        self.adopt_plan(&mut plan, "tank", "/srv/tank");
        plan
    }

    /// Renames a plan's pool and moves its mountpoints below this pool's root.
    pub fn adopt_plan(&self, plan: &mut serde_json::Value, pool: &str, mount_root: &str) {
        plan["pool"] = self.name.clone().into();
        for dataset in plan["datasets"].as_array_mut().unwrap() {
            let name = dataset["name"].as_str().unwrap();
            let renamed = format!("{}{}", self.name, name.strip_prefix(pool).unwrap());
            dataset["name"] = renamed.into();
            if let Some(mp) = dataset.get("mountpoint").and_then(|m| m.as_str()) {
                if mp.starts_with('/') {
                    let rest = mp.strip_prefix(mount_root).unwrap_or(mp);
                    dataset["mountpoint"] = format!("{}{rest}", self.mnt()).into();
                }
            }
        }
    }

    /// The same move for a services file (/etc/zpersist/services.json):
    /// the pool renamed, each dataset with it, each mountpoint below this
    /// pool's root.
    pub fn adopt_services(&self, services: &mut serde_json::Value, pool: &str, mount_root: &str) {
        services["pool"] = self.name.clone().into();
        for service in services["services"].as_object_mut().unwrap().values_mut() {
            let dataset = service["dataset"].as_str().unwrap();
            service["dataset"] =
                format!("{}{}", self.name, dataset.strip_prefix(pool).unwrap()).into();
            let mountpoint = service["mountpoint"].as_str().unwrap();
            let rest = mountpoint.strip_prefix(mount_root).unwrap_or(mountpoint);
            service["mountpoint"] = format!("{}{rest}", self.mnt()).into();
        }
    }

    /// Writes a plan into the scratch area and returns its path.
    pub fn write_plan(&self, name: &str, plan: &serde_json::Value) -> Utf8PathBuf {
        let path = self.scratch(name);
        std::fs::write(&path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
        path
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        // zfs-fuse unmounts asynchronously: "busy" passes after a moment.
        for attempt in 0..20 {
            let destroyed = duct::cmd("zpool", ["destroy", "-f", &self.name])
                .stdout_null()
                .stderr_null()
                .unchecked()
                .run()
                .is_ok_and(|o| o.status.success());
            if destroyed || attempt == 19 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one run of a binary under the recording wrapper did.
#[derive(Debug)]
pub struct Recorded {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Every zfs argv the binary ran, in order, without the leading `zfs`.
    pub zfs_calls: Vec<Vec<String>>,
}

/// zfs subcommands that can lose data: a zpersist binary that only keeps
/// datasets in shape must never run them.
pub const DESTRUCTIVE: &[&str] = &[
    "destroy", "rollback", "rename", "receive", "recv", "promote",
];

impl Recorded {
    /// The zfs calls that change something (anything but get/list).
    pub fn mutating_calls(&self) -> Vec<&Vec<String>> {
        self.zfs_calls
            .iter()
            .filter(|argv| !matches!(argv.first().map(String::as_str), Some("get" | "list")))
            .collect()
    }

    pub fn calls_named(&self, subcommand: &str) -> Vec<&Vec<String>> {
        self.zfs_calls
            .iter()
            .filter(|argv| argv[0] == subcommand)
            .collect()
    }
}

/// The zfs argvs tests/env/recording-zfs logged (one call per line,
/// arguments separated by US), without the leading `zfs`.
pub fn parse_argv_log(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            line.split('\x1f')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Runs `program args` with the recording `zfs` first on PATH and returns
/// what it did. Panics if it ran a destructive zfs command.
pub fn run_recorded(program: &Utf8Path, args: &[&str], env: &BTreeMap<&str, &str>) -> Recorded {
    let recorded = run_logged(program, args, env);
    for argv in &recorded.zfs_calls {
        assert!(
            !DESTRUCTIVE.contains(&argv[0].as_str()),
            "{program} ran a destructive zfs command: zfs {argv:?}\n{recorded:#?}"
        );
    }
    recorded
}

/// [`run_recorded`] for binaries allowed some of [`DESTRUCTIVE`] (preseed
/// renames and receives): the caller checks what they touched.
pub fn run_logged(program: &Utf8Path, args: &[&str], env: &BTreeMap<&str, &str>) -> Recorded {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let log = Utf8PathBuf::from(format!(
        "/tmp/zpersist-tests/argv-{}-{n}.log",
        std::process::id()
    ));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&log);
    let wrapper_dir = repo_root().join("tests/env/recording-zfs");
    let path = format!(
        "{wrapper_dir}:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let real_zfs = which_zfs();
    let mut command = duct::cmd(program.as_str(), args)
        .env("PATH", path)
        .env("ZFS_ARGV_LOG", log.as_str())
        .env("REAL_ZFS", real_zfs)
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    for (key, value) in env {
        command = command.env(key, value);
    }
    let output = command
        .run()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let zfs_calls = parse_argv_log(&std::fs::read_to_string(&log).unwrap_or_default());
    let _ = std::fs::remove_file(&log);
    Recorded {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        zfs_calls,
    }
}

/// The real zfs, found once on PATH (never the wrapper).
fn which_zfs() -> String {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Utf8PathBuf::from(dir).join("zfs");
        if candidate.is_file() && !candidate.as_str().contains("recording-zfs") {
            return candidate.into_string();
        }
    }
    "/usr/sbin/zfs".into()
}
