//! migrate-to-dataset against real ZFS (zfs-fuse on file-backed pools), on a
//! realistic fake service tree: a SQLite database, nested directories, names
//! with spaces and non-ASCII, relative/absolute/dangling symlinks, a hardlink
//! pair, a sparse file, a FIFO, files of a non-root owner with unusual modes
//! and a setgid directory. The "real path" (think /var/lib/sonarr) is a
//! directory outside the pool. Every run but the SIGKILLed one goes through
//! the recording `zfs` wrapper, which fails the test on destroy, rollback,
//! rename or receive. Trees are compared with GNU find and sha256sum, not
//! with the binary's own verification code.
//!
//! zfs-fuse has no lz4 and no xattrs: the datasets get recordsize=16K and
//! compression=on, and the xattr test checks the refusal zfs-fuse calls for
//! (on OpenZFS the same test checks that the xattr arrives).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;
use zpersist_e2e::pool::{exists, get, run_ok, run_recorded, Recorded, TestPool};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_migrate-to-dataset"))
}

const SERVICE_UID: u32 = 1234;
const SERVICE_GID: u32 = 1234;
const SHARED_GID: u32 = 1235;

fn chown(path: &Utf8Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("{path}: {e}"));
}

fn chmod(path: &Utf8Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A service's state directory as it looks after months of use.
/// `sparse_mib` sizes the sparse file (4 KiB of data in the middle).
fn service_tree(root: &Utf8Path, sparse_mib: u64) {
    let dirs = [
        "",
        "Séries TV",
        "Séries TV/Saison 1",
        "logs",
        "Backups",
        "cache",
        "shared",
    ];
    for dir in dirs {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let db = root.join("sonarr.db");
    run_ok(
        "sqlite3",
        &[
            db.as_str(),
            "create table series(id integer primary key, title text not null);\
             with recursive n(i) as (select 1 union all select i + 1 from n where i < 500)\
             insert into series(title) select 'Série n°' || i from n;",
        ],
    );
    std::fs::write(
        root.join("Séries TV/Saison 1/épisode 1.nfo"),
        "<episode>Pilote</episode>\n",
    )
    .unwrap();
    std::fs::write(
        root.join("Séries TV/poster large.jpg"),
        vec![0xa5u8; 70_000],
    )
    .unwrap();
    std::fs::write(root.join("logs/sonarr.txt"), "started\n".repeat(1000)).unwrap();
    std::fs::write(
        root.join("config.xml"),
        "<Config><Port>8989</Port></Config>\n",
    )
    .unwrap();
    std::fs::write(root.join("secret.key"), "0123456789abcdef\n").unwrap();
    std::fs::write(
        root.join("Backups/nightly.bak"),
        "backup bytes\n".repeat(100),
    )
    .unwrap();
    std::fs::hard_link(
        root.join("Backups/nightly.bak"),
        root.join("Backups/latest.bak"),
    )
    .unwrap();
    std::os::unix::fs::symlink("logs/sonarr.txt", root.join("current log")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("hostname-link")).unwrap();
    std::os::unix::fs::symlink("../nowhere/at all", root.join("cache/dangling")).unwrap();
    let sparse = std::fs::File::create(root.join("cache/sparse.bin")).unwrap();
    sparse.set_len(sparse_mib << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, &[0x5au8; 4096], (sparse_mib << 20) / 2).unwrap();
    run_ok("mkfifo", &[root.join("control.fifo").as_str()]);
    run_ok(
        "chown",
        &[
            "-hR",
            &format!("{SERVICE_UID}:{SERVICE_GID}"),
            root.as_str(),
        ],
    );
    chmod(root, 0o750);
    chmod(&root.join("secret.key"), 0o600);
    chown(&root.join("shared"), SERVICE_UID, SHARED_GID);
    chmod(&root.join("shared"), 0o2770);
    std::fs::write(root.join("shared/notes.txt"), "shared\n").unwrap();
    chown(&root.join("shared/notes.txt"), 0, SHARED_GID);
}

/// Everything a user relies on, by GNU find and sha256sum: path, type,
/// mode, owner, size (files), link target, link count, mtime (files), and
/// each file's content hash.
fn listing(root: &Utf8Path) -> String {
    let find = run_ok(
        "find",
        &[root.as_str(), "-printf", "%P\t%y\t%m\t%U\t%G\t%l\t%n\t\n"],
    );
    let mut lines: Vec<String> = Vec::new();
    let mut files = Vec::new();
    for line in find.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let rel = fields[0];
        let full = if rel.is_empty() {
            root.to_owned()
        } else {
            root.join(rel)
        };
        let mut line = line.to_string();
        if fields[1] == "f" {
            let meta = std::fs::metadata(&full).unwrap();
            line.push_str(&format!("{} {} ", meta.len(), meta.mtime()));
            files.push((lines.len(), full));
        }
        lines.push(line);
    }
    // One sha256sum per 500 files: spawning one per file is slow.
    for chunk in files.chunks(500) {
        let paths: Vec<&str> = chunk.iter().map(|(_, p)| p.as_str()).collect();
        let sums = run_ok("sha256sum", &paths);
        for ((at, _), sum) in chunk.iter().zip(sums.lines()) {
            lines[*at].push_str(sum.split_whitespace().next().unwrap());
        }
    }
    lines.sort();
    lines.join("\n")
}

/// The hardlink pair is still one inode.
fn hardlinked(root: &Utf8Path) -> bool {
    let a = std::fs::metadata(root.join("Backups/nightly.bak")).unwrap();
    let b = std::fs::metadata(root.join("Backups/latest.bak")).unwrap();
    a.ino() == b.ino()
}

fn sqlite_rows(db: &Utf8Path) -> String {
    run_ok(
        "sqlite3",
        &[
            db.as_str(),
            "pragma integrity_check; select count(*), max(title) from series;",
        ],
    )
}

struct Setup {
    pool: TestPool,
    dataset: String,
    path: Utf8PathBuf,
    expected: String,
}

impl Setup {
    fn new(tag: &str, sparse_mib: u64) -> Setup {
        let pool = TestPool::new(tag);
        let dataset = pool.ds("services/sonarr");
        let path = pool.scratch("var-lib/sonarr");
        service_tree(&path, sparse_mib);
        let expected = listing(&path);
        Setup {
            pool,
            dataset,
            path,
            expected,
        }
    }

    fn aside(&self) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.zpersist-old", self.path))
    }

    fn journal(&self) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.zpersist-migration.json", self.path))
    }

    fn explicit_args(&self) -> Vec<String> {
        vec![
            "--dataset".into(),
            self.dataset.clone(),
            "--path".into(),
            self.path.to_string(),
            "--unit".into(),
            "sonarr.service".into(),
            "-o".into(),
            "recordsize=16K".into(),
            "-o".into(),
            "compression=on".into(),
        ]
    }

    fn run(&self, extra: &[&str], env: &BTreeMap<&str, &str>) -> Recorded {
        let mut args: Vec<String> = self.explicit_args();
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_recorded(binary(), &args, env)
    }

    /// The dataset is mounted at the real path with the original data, and
    /// the original is kept aside, untouched.
    fn assert_migrated(&self) {
        assert_eq!(get(&self.dataset, "mountpoint"), self.path.as_str());
        assert_eq!(get(&self.dataset, "mounted"), "yes");
        assert_eq!(get(&self.dataset, "recordsize"), "16384");
        assert_eq!(get(&self.dataset, "compression"), "on");
        assert_eq!(
            listing(&self.path),
            self.expected,
            "the data in the dataset"
        );
        assert_eq!(
            listing(&self.aside()),
            self.expected,
            "the original kept aside"
        );
        assert!(hardlinked(&self.path));
        assert!(sqlite_rows(&self.path.join("sonarr.db")).starts_with("ok\n500|"));
        let mounted_on = run_ok(
            "findmnt",
            &["-n", "-o", "SOURCE", "--target", self.path.as_str()],
        );
        assert_eq!(
            mounted_on.trim(),
            self.dataset,
            "the path is the dataset's mount"
        );
    }
}

fn no_env() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::new()
}

/// `migrate-to-dataset --dataset DATASET --path PATH EXTRA...`, recorded.
fn migrate(dataset: &str, path: &Utf8Path, extra: &[&str], env: &BTreeMap<&str, &str>) -> Recorded {
    let mut args = vec!["--dataset", dataset, "--path", path.as_str()];
    args.extend_from_slice(extra);
    run_recorded(binary(), &args, env)
}

#[test]
fn a_service_tree_moves_into_its_dataset_and_the_original_is_kept_until_cleanup() {
    let setup = Setup::new("mig", 64);
    let services = json!({
        "version": 1,
        "pool": setup.pool.name,
        "services": {
            "sonarr": {
                "dataset": setup.dataset,
                "mountpoint": setup.path,
                "units": ["sonarr.service"],
                "user": null, "group": null, "mode": "0750",
                "properties": { "recordsize": "16K", "compression": "on" }
            }
        }
    });
    let file = setup.pool.write_plan("services.json", &services);
    let run = run_recorded(
        binary(),
        &[
            "sonarr",
            "--services",
            file.as_str(),
            "--progress-every",
            "0.1",
        ],
        &no_env(),
    );
    assert_eq!(run.code, 0, "{run:#?}");
    setup.assert_migrated();
    for step in [
        "create:",
        "copy:",
        "verify:",
        "move-aside:",
        "mount:",
        "verify-mounted:",
    ] {
        assert!(
            run.stdout.contains(step),
            "no `{step}` in the report:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("done:"), "{}", run.stdout);
    assert!(
        run.stderr.contains("verify: "),
        "no progress lines:\n{}",
        run.stderr
    );
    // The mutations are exactly one create (at the temporary mountpoint,
    // with the declared properties) and one mountpoint change.
    zpersist_e2e::assertions::migration_created_once_and_moved_the_mountpoint(
        &run,
        &setup.dataset,
        setup.path.as_str(),
        &["-o compression=on", "-o recordsize=16K"],
    );
    // The sparse file stays sparse on the dataset.
    let sparse = std::fs::metadata(setup.path.join("cache/sparse.bin")).unwrap();
    assert_eq!(sparse.len(), 64 << 20);
    assert!(
        sparse.blocks() * 512 < 4 << 20,
        "allocated {} bytes",
        sparse.blocks() * 512
    );
    // Owners and modes came along (also in `listing`, said plainly here).
    let root = std::fs::metadata(&setup.path).unwrap();
    assert_eq!(
        (root.uid(), root.gid(), root.mode() & 0o7777),
        (SERVICE_UID, SERVICE_GID, 0o750)
    );
    let shared = std::fs::metadata(setup.path.join("shared")).unwrap();
    assert_eq!((shared.gid(), shared.mode() & 0o7777), (SHARED_GID, 0o2770));
    assert!(!Utf8Path::new(&format!("{}.zpersist-new", setup.path)).exists());

    // Running it again is a no-op.
    let again = run_recorded(
        binary(),
        &["sonarr", "--services", file.as_str()],
        &no_env(),
    );
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(
        again.stdout.contains("already migrated"),
        "{}",
        again.stdout
    );
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);

    // The service runs and writes; cleanup re-verifies the kept original
    // against what was verified, then removes it.
    run_ok(
        "sqlite3",
        &[
            setup.path.join("sonarr.db").as_str(),
            "insert into series(title) values ('new');",
        ],
    );
    let dry = run_recorded(
        binary(),
        &[
            "sonarr",
            "--services",
            file.as_str(),
            "--cleanup",
            "--dry-run",
        ],
        &no_env(),
    );
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(setup.aside().exists());
    let cleanup = run_recorded(
        binary(),
        &["sonarr", "--services", file.as_str(), "--cleanup"],
        &no_env(),
    );
    assert_eq!(cleanup.code, 0, "{cleanup:#?}");
    assert!(
        cleanup.stdout.contains("changed in the dataset"),
        "{}",
        cleanup.stdout
    );
    assert!(!setup.aside().exists());
    assert!(!setup.journal().exists());
    assert!(cleanup.mutating_calls().is_empty());
    assert!(sqlite_rows(&setup.path.join("sonarr.db")).starts_with("ok\n501|"));
    let after = run_recorded(
        binary(),
        &["sonarr", "--services", file.as_str()],
        &no_env(),
    );
    assert_eq!(after.code, 0, "{after:#?}");
    assert!(
        after.stdout.contains("already migrated"),
        "{}",
        after.stdout
    );
}

#[test]
fn a_dry_run_only_reads() {
    let setup = Setup::new("migdry", 1);
    let run = setup.run(&["--dry-run"], &no_env());
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert!(
        run.stdout.contains("would run `zfs create -p"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("would rename"), "{}", run.stdout);
    // With --json: the report is the one document on stdout.
    let json = setup.run(&["--dry-run", "--json"], &no_env());
    assert_eq!(json.code, 0, "{json:#?}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["outcome"], "dry-run", "{report}");
    assert_eq!(report["dataset"], setup.dataset.as_str(), "{report}");
    assert_eq!(report["problems"], json!([]), "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "create",
            "copy",
            "verify",
            "move-aside",
            "mount",
            "verify-mounted"
        ],
        "{report}"
    );
    assert!(json.mutating_calls().is_empty(), "{:?}", json.zfs_calls);
    assert!(!exists(&setup.dataset));
    assert!(!setup.journal().exists());
    assert!(!setup.aside().exists());
    assert_eq!(listing(&setup.path), setup.expected);
}

#[test]
fn a_process_using_the_directory_stops_the_migration_before_anything_changes() {
    let setup = Setup::new("migbusy", 1);
    let mut in_cwd = std::process::Command::new("sleep")
        .arg("60")
        .current_dir(setup.path.join("Séries TV"))
        .spawn()
        .unwrap();
    let run = setup.run(&[], &no_env());
    in_cwd.kill().unwrap();
    in_cwd.wait().unwrap();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("pid {} (sleep): cwd", in_cwd.id())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);

    // A process holding the database open (here as its stdin) counts too.
    let db = std::fs::File::open(setup.path.join("sonarr.db")).unwrap();
    let mut holder = std::process::Command::new("sleep")
        .arg("60")
        .stdin(db)
        .spawn()
        .unwrap();
    let run2 = setup.run(&[], &no_env());
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(run2.code, 1, "{run2:#?}");
    assert!(run2.stderr.contains("fd 0"), "{}", run2.stderr);

    for run in [&run, &run2] {
        assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    }
    assert!(!exists(&setup.dataset));
    assert!(!setup.journal().exists());
    assert_eq!(listing(&setup.path), setup.expected);
}

/// Abort at every step boundary, before and after the journal records the
/// step, then run again without the failpoint: the rerun must complete with
/// verified, identical data, and the original must never be lost.
#[test]
fn a_crash_at_any_step_boundary_resumes_to_a_verified_migration() {
    let pool = TestPool::new("migcrash");
    let steps = [
        "create",
        "copy",
        "verify",
        "move-aside",
        "mount",
        "verify-mounted",
    ];
    let mut points = vec!["journaled:started".to_string()];
    for step in steps {
        points.push(format!("after:{step}"));
        points.push(format!("journaled:{step}"));
    }
    for (i, point) in points.iter().enumerate() {
        let dataset = pool.ds(&format!("services/s{i}"));
        let path = pool.scratch(&format!("var-lib/s{i}"));
        service_tree(&path, 1);
        let expected = listing(&path);
        let args = [
            "--dataset",
            &dataset,
            "--path",
            path.as_str(),
            "-o",
            "recordsize=16K",
        ];
        let crashed = run_recorded(
            binary(),
            &args,
            &[("ZPERSIST_MIGRATE_FAILPOINT", point.as_str())].into(),
        );
        assert_ne!(crashed.code, 0, "{point}: {crashed:#?}");
        assert!(
            crashed.stderr.contains(&format!("failpoint {point}")),
            "{point}: {crashed:#?}"
        );
        // Whatever the crash left, the original data is whole somewhere.
        let aside = Utf8PathBuf::from(format!("{path}.zpersist-old"));
        let original = if aside.exists() { &aside } else { &path };
        assert_eq!(
            listing(original),
            expected,
            "{point}: original after the crash"
        );

        let rerun = run_recorded(binary(), &args, &no_env());
        assert_eq!(rerun.code, 0, "{point}: {rerun:#?}");
        let resumed =
            rerun.stdout.contains("resuming") || rerun.stdout.contains("already migrated");
        assert!(resumed, "{point}: {}", rerun.stdout);
        assert_eq!(get(&dataset, "mountpoint"), path.as_str(), "{point}");
        assert_eq!(get(&dataset, "mounted"), "yes", "{point}");
        assert_eq!(listing(&path), expected, "{point}: data in the dataset");
        assert_eq!(listing(&aside), expected, "{point}: original kept aside");
        assert!(hardlinked(&path), "{point}");
        assert_eq!(
            rerun.calls_named("create").len(),
            usize::from(point == "journaled:started"),
            "{point}: {:?}",
            rerun.zfs_calls
        );
    }
}

/// The binary on `args`, to start in the background; output discarded.
fn background(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// Runs the binary with `args` in a process group of its own, waits until
/// `started` says it is in the middle of `what`, then SIGKILLs the whole
/// group (the binary and its rsync, as systemd or the OOM killer would).
fn kill_in_the_middle(
    args: &[&str],
    what: &str,
    mut started: impl FnMut() -> bool,
    poll: Duration,
) {
    let mut child = background(args).process_group(0).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started() {
        assert!(Instant::now() < deadline, "{what} never started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} finished ({status}) before it could be killed");
        }
        std::thread::sleep(poll);
    }
    run_ok("kill", &["-KILL", "--", &format!("-{}", child.id())]);
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

/// A real SIGKILL of the migration (and its rsync: the whole process group,
/// as systemd or the OOM killer would) in the middle of copying a bigger
/// tree, then a rerun.
#[test]
fn a_sigkill_in_the_middle_of_the_copy_is_recovered_by_a_rerun() {
    let pool = TestPool::new("migkill");
    let dataset = pool.ds("services/big");
    let path = pool.scratch("var-lib/big");
    service_tree(&path, 1);
    // 3000 files of 4 KiB of varied bytes: zfs-fuse's cost per file makes
    // the copy last long enough to kill it in the middle.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for d in 0..30 {
        let dir = path.join(format!("media/dir {d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let bytes: Vec<u8> = (0..512)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect();
            std::fs::write(dir.join(format!("file {f}.bin")), bytes).unwrap();
        }
    }
    let expected = listing(&path);
    let temporary = Utf8PathBuf::from(format!("{path}.zpersist-new"));
    let copied = || {
        std::fs::read_dir(temporary.join("media"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    kill_in_the_middle(
        &["--dataset", &dataset, "--path", path.as_str()],
        "the copy",
        || copied() >= 3,
        Duration::from_millis(20),
    );
    // Let the killed rsync processes vanish from /proc.
    std::thread::sleep(Duration::from_millis(200));
    assert!(copied() < 30, "killed too late: the copy had finished");
    assert_eq!(listing(&path), expected, "the original is untouched");
    let journal = std::fs::read_to_string(format!("{path}.zpersist-migration.json")).unwrap();
    assert!(journal.contains("\"stage\": \"created\""), "{journal}");

    let rerun = run_recorded(
        binary(),
        &["--dataset", &dataset, "--path", path.as_str()],
        &no_env(),
    );
    assert_eq!(rerun.code, 0, "{rerun:#?}");
    assert!(rerun.stdout.contains("resuming"), "{}", rerun.stdout);
    assert_eq!(get(&dataset, "mountpoint"), path.as_str());
    assert_eq!(listing(&path), expected);
    assert_eq!(
        listing(&Utf8PathBuf::from(format!("{path}.zpersist-old"))),
        expected
    );
    assert!(rerun.calls_named("create").is_empty());
}

#[test]
fn extended_attributes_arrive_or_the_migration_refuses_before_copying() {
    let setup = Setup::new("migxattr", 1);
    let file = setup.path.join("config.xml");
    run_ok(
        "setfattr",
        &["-n", "user.sonarr.origin", "-v", "import", file.as_str()],
    );
    let expected = listing(&setup.path);
    let run = setup.run(&[], &no_env());
    let dataset_has_xattrs = run.code == 0;
    if dataset_has_xattrs {
        // OpenZFS: the attribute is in the dataset.
        let value = run_ok(
            "getfattr",
            &["--only-values", "-n", "user.sonarr.origin", file.as_str()],
        );
        assert_eq!(value, "import");
        setup.assert_migrated();
    } else {
        // zfs-fuse has no xattrs: refuse rather than lose them.
        assert_eq!(run.code, 1, "{run:#?}");
        assert!(run.stderr.contains("extended attributes"), "{}", run.stderr);
        assert!(
            run.stderr.contains("does not support them"),
            "{}",
            run.stderr
        );
        assert_eq!(listing(&setup.path), expected, "the original is untouched");
        assert!(!setup.aside().exists());
        let temporary = Utf8PathBuf::from(format!("{}.zpersist-new", setup.path));
        assert!(
            std::fs::read_dir(&temporary).unwrap().next().is_none(),
            "nothing was copied"
        );
    }
}

/// The last progress line of each hashing phase: (done files, total files,
/// done bytes, total bytes), as printed ("verify: 10/12 files, 1.0 KiB of
/// 2.0 KiB hashed").
fn last_progress(stderr: &str, phase: &str) -> Option<(u64, u64, String, String)> {
    stderr.lines().rev().find_map(|line| {
        let rest = line.strip_prefix(&format!("{phase}: "))?;
        let (counts, bytes) = rest.split_once(" files, ")?;
        let (done, total) = counts.split_once('/')?;
        let (bytes_done, bytes_total) = bytes.strip_suffix(" hashed")?.split_once(" of ")?;
        Some((
            done.parse().ok()?,
            total.parse().ok()?,
            bytes_done.to_string(),
            bytes_total.to_string(),
        ))
    })
}

/// Hardlinks are hashed once per inode, yet each name is a file: the
/// counter and the total must count the same files, so the last progress
/// line of every phase reports done == total.
#[test]
fn verification_progress_reaches_its_total_with_hardlinks() {
    let setup = Setup::new("mighl", 1);
    // Besides the tree's pair: a group of three names and a second pair.
    let three = setup.path.join("logs/rotated.txt");
    std::fs::write(&three, "rotated\n".repeat(300)).unwrap();
    for name in ["logs/rotated.1", "Backups/rotated.keep"] {
        std::fs::hard_link(&three, setup.path.join(name)).unwrap();
    }
    std::fs::hard_link(
        setup.path.join("config.xml"),
        setup.path.join("config.xml.orig"),
    )
    .unwrap();
    let files: u64 = run_ok("find", &[setup.path.as_str(), "-type", "f"])
        .lines()
        .count() as u64;
    let run = setup.run(&["--progress-every", "0.05"], &no_env());
    assert_eq!(run.code, 0, "{run:#?}");
    let cleanup = setup.run(&["--cleanup", "--progress-every", "0.05"], &no_env());
    assert_eq!(cleanup.code, 0, "{cleanup:#?}");
    // verify and cleanup hash two trees, verify-mounted the dataset alone.
    for (stderr, phase, trees) in [
        (&run.stderr, "verify", 2),
        (&run.stderr, "verify-mounted", 1),
        (&cleanup.stderr, "cleanup", 2),
    ] {
        let (done, total, bytes_done, bytes_total) = last_progress(stderr, phase)
            .unwrap_or_else(|| panic!("no `{phase}:` progress line in:\n{stderr}"));
        assert_eq!(
            (done, bytes_done.as_str()),
            (total, bytes_total.as_str()),
            "the last `{phase}:` line did not reach its total:\n{stderr}"
        );
        assert_eq!(
            total,
            trees * files,
            "`{phase}:` counts other files than find's {files} per tree:\n{stderr}"
        );
    }
}

/// A tmpfs mounted for the test, unmounted when dropped (before the pool's
/// scratch directory is removed: declare it after the `Setup`).
struct Tmpfs(Utf8PathBuf);

impl Tmpfs {
    fn mount(source: &str, at: &Utf8Path) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        run_ok(
            "mount",
            &["-t", "tmpfs", "-o", "size=8m", source, at.as_str()],
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = duct::cmd("umount", [self.0.as_str()])
            .stderr_null()
            .unchecked()
            .run();
    }
}

/// The help for a mount must fit what the mount is: a tmpfs keeps its files
/// in memory, so telling the user to unmount it would destroy them.
fn assert_no_unmount_advice(stderr: &str) {
    for advice in ["unmount them", "unmount it", "`umount"] {
        assert!(
            !stderr.contains(advice),
            "advises an unmount ({advice:?}) that would lose the mount's files:\n{stderr}"
        );
    }
}

/// A directory that is itself a mount point (a tmpfs at the service's data
/// directory), or that has a filesystem mounted inside it, is refused
/// before anything changes, saying which mount of which type from which
/// source it is, and that its data must be copied off it (or the mount
/// moved), never that it should be unmounted.
#[test]
fn a_mount_at_or_inside_the_directory_is_refused_with_help_that_keeps_its_data() {
    let setup = Setup::new("migmnt", 1);

    // The data directory itself is a tmpfs holding the service's state.
    let dataset = setup.pool.ds("services/hass");
    let path = setup.pool.scratch("var-lib/hass");
    let at = Tmpfs::mount("hass-state", &path);
    std::fs::write(path.join("home-assistant_v2.db"), "state").unwrap();
    let run = migrate(&dataset, &path, &[], &no_env());
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "{path} is itself a mount of tmpfs from hass-state"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("copy"), "{}", run.stderr);
    assert!(run.stderr.contains("in memory"), "{}", run.stderr);
    assert_no_unmount_advice(&run.stderr);
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert!(!exists(&dataset));
    assert!(!Utf8PathBuf::from(format!("{path}.zpersist-migration.json")).exists());
    assert_eq!(
        std::fs::read_to_string(path.join("home-assistant_v2.db")).unwrap(),
        "state"
    );
    drop(at);

    // A tmpfs mounted inside the directory.
    let cache = setup.path.join("cache");
    let _inside = Tmpfs::mount("sonarr-cache", &cache);
    std::fs::write(cache.join("thumbnails.bin"), "thumbs").unwrap();
    let run = setup.run(&[], &no_env());
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "{cache} is a mount of tmpfs from sonarr-cache inside {}",
            setup.path
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("copy"), "{}", run.stderr);
    assert_no_unmount_advice(&run.stderr);
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert!(!exists(&setup.dataset));
    assert!(!setup.journal().exists());
    assert_eq!(
        std::fs::read_to_string(cache.join("thumbnails.bin")).unwrap(),
        "thumbs"
    );
}

/// `bytes` bytes from /dev/urandom: compression cannot shrink them.
fn incompressible(path: &Utf8Path, bytes: u64) {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(bytes)
        .read_to_end(&mut data)
        .unwrap();
    std::fs::write(path, data).unwrap();
}

/// A dataset that runs out of space while the data is copied into it (for
/// real: a quota on zfs-fuse, on the dataset itself and on its parent)
/// fails naming the cause (which dataset, which limit, how much the data
/// takes) and the remedy; rsync's own line is not taken for progress.
/// Once the limit is raised, a rerun resumes at the copy and completes.
#[test]
fn running_out_of_space_names_the_dataset_the_limit_and_the_remedy_and_a_rerun_resumes() {
    let pool = TestPool::new("migquota");
    // The dataset's own quota, then a quota on a parent the dataset is created under.
    let limited_parent = pool.ds("limited");
    zpersist_e2e::pool::zfs(&["create", "-o", "quota=3M", &limited_parent]);
    for (name, dataset, quota_on, extra) in [
        (
            "own",
            pool.ds("services/media"),
            pool.ds("services/media"),
            vec!["-o", "quota=2M"],
        ),
        (
            "parent",
            pool.ds("limited/media"),
            limited_parent.clone(),
            vec![],
        ),
    ] {
        let path = pool.scratch(&format!("var-lib/{name}"));
        std::fs::create_dir_all(path.join("library")).unwrap();
        for i in 0..4 {
            incompressible(&path.join(format!("library/part {i}.bin")), 2 << 20);
        }
        std::fs::write(path.join("index.txt"), "4 parts\n").unwrap();
        let expected = listing(&path);
        let options = [&["-o", "compression=on"][..], &extra].concat();
        let run = migrate(&dataset, &path, &options, &no_env());
        assert_eq!(run.code, 1, "{name}: {run:#?}");
        let error = run
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("{name}: no error line:\n{}", run.stderr));
        for needle in [
            format!("{dataset} is out of space"),
            format!("quota of {quota_on}"),
            "8.0 MiB".to_string(),
        ] {
            assert!(
                error.contains(&needle),
                "{name}: {needle:?} not in {error:?}\n{}",
                run.stderr
            );
        }
        let help = run
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("help:"))
            .unwrap();
        for needle in [
            "zfs set quota=".to_string(),
            quota_on.clone(),
            "resumes".into(),
        ] {
            assert!(help.contains(&needle), "{name}: {needle:?} not in {help:?}");
        }
        // rsync's "Disk quota exceeded" is an error, not a progress line.
        for line in run.stderr.lines().filter(|l| l.starts_with("copy: ")) {
            assert!(
                !line.contains("rsync:"),
                "{name}: an error shown as progress: {line}"
            );
        }
        assert_eq!(
            listing(&path),
            expected,
            "{name}: the original is untouched"
        );

        // The remedy the help gives, then a rerun.
        zpersist_e2e::pool::zfs(&["set", "quota=none", &quota_on]);
        let rerun = migrate(&dataset, &path, &options, &no_env());
        assert_eq!(rerun.code, 0, "{name}: {rerun:#?}");
        assert!(
            rerun.stdout.contains("resuming"),
            "{name}: {}",
            rerun.stdout
        );
        assert_eq!(get(&dataset, "mountpoint"), path.as_str(), "{name}");
        assert_eq!(listing(&path), expected, "{name}: data in the dataset");
    }
}

/// A few small files: enough for a quick real migration.
fn small_tree(root: &Utf8Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("state.db"), "state\n".repeat(100)).unwrap();
    std::fs::write(root.join("sub/config.xml"), "<Config/>\n").unwrap();
}

/// The lock files in /run/zpersist whose name holds `token`.
fn lock_files(token: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/zpersist") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(token))
        .collect();
    names.sort();
    names
}

/// A migration stopped with SIGSTOP; continued (or killed, if the test
/// fails first) when dropped.
struct StoppedRun(Option<std::process::Child>);

impl StoppedRun {
    fn resume(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        run_ok("kill", &["-CONT", &child.id().to_string()]);
        child.wait().unwrap()
    }
}

impl Drop for StoppedRun {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = run_ok("kill", &["-CONT", &child.id().to_string()]);
            let _ = child.wait();
        }
    }
}

/// Run locks: one per directory, whatever its spelling; any valid path can
/// have one (a long one used to fail with "File name too long"); two
/// directories never share one (`a-b` and `a/b` used to); and a run
/// removes its lock file when it ends, so they do not pile up.
#[test]
fn run_locks_are_per_directory_bounded_in_length_and_removed_when_done() {
    let pool = TestPool::new("miglock");
    let token = format!("lk{}", std::process::id());
    let base = pool.scratch("var-lib");
    let nested = base.join(format!("{token}/q"));
    let dashed = base.join(format!("{token}-q"));
    // Each component is valid (< 256 bytes); the whole path is not a valid name.
    let long = base
        .join("l".repeat(200))
        .join("m".repeat(200))
        .join(format!("{token}-long"));
    for path in [&nested, &dashed, &long] {
        small_tree(path);
    }
    assert_eq!(lock_files(&token), Vec::<String>::new());

    // A migration of `…/lkPID/q`, stopped while it holds its lock (it holds
    // it from before it writes its journal until it exits).
    let nested_ds = pool.ds("services/nested");
    let child = background(&["--dataset", &nested_ds, "--path", nested.as_str()])
        .spawn()
        .unwrap();
    let journal = Utf8PathBuf::from(format!("{nested}.zpersist-migration.json"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal.exists() {
        assert!(
            Instant::now() < deadline,
            "the first migration never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    run_ok("kill", &["-STOP", &child.id().to_string()]);
    let first = StoppedRun(Some(child));
    assert_eq!(
        lock_files(&token).len(),
        1,
        "the held lock is not in /run/zpersist: {:?}",
        lock_files(&token)
    );

    // `…/lkPID-q` is another directory: its migration must not wait.
    let stderr_file = pool.scratch("second.stderr");
    let dashed_ds = pool.ds("services/dashed");
    let mut second = background(&["--dataset", &dashed_ds, "--path", dashed.as_str()])
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            second.wait().unwrap();
            panic!(
                "the migration of {dashed} waited for the lock of {nested}:\n{}",
                std::fs::read_to_string(&stderr_file).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&stderr_file).unwrap()
    );
    assert!(first.resume().success());

    // A long path has a lock like any other.
    let run = migrate(&pool.ds("services/long"), &long, &[], &no_env());
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(get(&pool.ds("services/long"), "mountpoint"), long.as_str());

    // Refused and cleanup runs take the lock too; none is left behind.
    let refused = migrate(&pool.ds("services/other"), &long, &[], &no_env());
    assert_eq!(refused.code, 1, "{refused:#?}");
    let cleanup = migrate(&nested_ds, &nested, &["--cleanup"], &no_env());
    assert_eq!(cleanup.code, 0, "{cleanup:#?}");
    assert_eq!(
        lock_files(&token),
        Vec::<String>::new(),
        "lock files were left behind"
    );
}

/// `dirs` directories of 100 small files each under `root/media`.
fn many_files(root: &Utf8Path, dirs: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("media/dir {d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("file {f}.nfo")), format!("{d}/{f}\n")).unwrap();
        }
    }
}

/// `--cleanup` killed with SIGKILL while it removes the original kept
/// aside: a rerun finishes the removal (it used to refuse forever, the
/// partial copy no longer matching what was verified). A kept original
/// that changed before the removal began is still refused, also when a
/// cleanup crashed right after recording that it started.
#[test]
fn a_cleanup_killed_while_removing_the_original_finishes_on_a_rerun() {
    let pool = TestPool::new("migclean");
    // On the pool's own filesystem: zfs-fuse removes files slowly enough
    // (about 10 ms a directory here) to kill the cleanup in the middle.
    let dataset = pool.ds("services/big");
    let path = pool.mnt().join("var-lib/big");
    small_tree(&path);
    many_files(&path, 60);
    let expected = listing(&path);
    let migrated = migrate(&dataset, &path, &[], &no_env());
    assert_eq!(migrated.code, 0, "{migrated:#?}");

    // The media directories left of the original, under whatever name the
    // cleanup gives it while removing it. Counted from the directory's link
    // count (2 + its subdirectories), a stat: no file descriptor is held
    // inside the tree, which cleanup's in-use check would rightly see as a
    // process using it and refuse.
    let parent = path.parent().unwrap().to_owned();
    let remaining = || -> usize {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(&parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("big.zpersist-"))
            .filter_map(|e| std::fs::metadata(e.path().join("media")).ok())
            .map(|m| (m.nlink() as usize).saturating_sub(2))
            .sum()
    };
    assert_eq!(remaining(), 60);
    kill_in_the_middle(
        &["--dataset", &dataset, "--path", path.as_str(), "--cleanup"],
        "the removal",
        || remaining() < 60,
        Duration::from_millis(1),
    );
    let left = remaining();
    assert!(
        left > 0 && left < 60,
        "not killed in the middle of the removal: {left} of 60 left"
    );

    let rerun = migrate(&dataset, &path, &["--cleanup"], &no_env());
    assert_eq!(rerun.code, 0, "{rerun:#?}");
    assert!(rerun.stdout.contains("cleaned up"), "{}", rerun.stdout);
    assert_eq!(remaining(), 0);
    let leftovers: Vec<String> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("big.zpersist-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert_eq!(listing(&path), expected, "the dataset's data");
    let again = migrate(&dataset, &path, &[], &no_env());
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(
        again.stdout.contains("already migrated"),
        "{}",
        again.stdout
    );

    // A crash right after the cleanup recorded its start, then the kept
    // original changes: the rerun refuses and removes nothing.
    let dataset2 = pool.ds("services/small");
    let path2 = pool.scratch("var-lib/small");
    small_tree(&path2);
    assert_eq!(migrate(&dataset2, &path2, &[], &no_env()).code, 0);
    let crashed = migrate(
        &dataset2,
        &path2,
        &["--cleanup"],
        &[("ZPERSIST_MIGRATE_FAILPOINT", "journaled:cleanup-started")].into(),
    );
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    assert!(
        crashed
            .stderr
            .contains("failpoint journaled:cleanup-started"),
        "{crashed:#?}"
    );
    let aside2 = Utf8PathBuf::from(format!("{path2}.zpersist-old"));
    std::fs::write(aside2.join("state.db"), "written after the migration\n").unwrap();
    let changed = listing(&aside2);
    let refused = migrate(&dataset2, &path2, &["--cleanup"], &no_env());
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stderr.contains("changed since it was verified"),
        "{}",
        refused.stderr
    );
    assert_eq!(listing(&aside2), changed, "nothing was removed");
}
