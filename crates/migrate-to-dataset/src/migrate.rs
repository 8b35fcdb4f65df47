//! Observe, decide (zpersist-core's migration module), act one step at a
//! time, recording each completed stage in the journal.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use zpersist_core::migration::{
    decide, DatasetState, Decision, Journal, MigrationFacts, MigrationTarget, PathState, Stage,
    Step, TreeSummary,
};
use zpersist_core::name::{parent_of as parent_of_dataset, pool_of};
use zpersist_core::HostFacts;
use zpersist_zfs::Zfs;

use crate::manifest::{self, Progress, Tree};
use crate::{copy, inuse};

pub struct Options {
    pub dry_run: bool,
    pub json: bool,
    pub progress_every: Duration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Migrated,
    AlreadyMigrated,
    DryRun,
    CleanedUp,
    NothingToCleanUp,
    Refused,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct ProblemReport {
    pub error: String,
    pub help: String,
}

/// A failure, and what to do about it when the general help ("fix the
/// cause and run again") would not say.
#[derive(Debug)]
struct StepError {
    error: String,
    help: Option<String>,
}

impl From<String> for StepError {
    fn from(error: String) -> StepError {
        StepError { error, help: None }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub outcome: Outcome,
    pub dataset: String,
    pub path: String,
    pub aside: String,
    pub dry_run: bool,
    /// The last stage that was already complete when this run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<Stage>,
    pub steps: Vec<StepReport>,
    pub notes: Vec<String>,
    pub problems: Vec<ProblemReport>,
}

impl Report {
    fn new(target: &MigrationTarget, dry_run: bool) -> Report {
        Report {
            outcome: Outcome::Failed,
            dataset: target.dataset.clone(),
            path: target.path.clone(),
            aside: target.aside(),
            dry_run,
            resumed_after: None,
            steps: Vec::new(),
            notes: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn succeeded(&self) -> bool {
        !matches!(self.outcome, Outcome::Refused | Outcome::Failed)
    }

    fn refuse(mut self, error: impl Into<String>, help: impl Into<String>) -> Report {
        self.outcome = Outcome::Refused;
        self.problems.push(ProblemReport {
            error: error.into(),
            help: help.into(),
        });
        self
    }

    fn fail(mut self, error: impl Into<String>, help: impl Into<String>) -> Report {
        self.outcome = Outcome::Failed;
        self.problems.push(ProblemReport {
            error: error.into(),
            help: help.into(),
        });
        self
    }

    fn fail_with(self, e: StepError) -> Report {
        let help = e
            .help
            .unwrap_or_else(|| "fix the cause and run again".into());
        self.fail(e.error, help)
    }

    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(self).expect("the report serialises")
            );
        } else {
            for note in &self.notes {
                println!("note: {note}");
            }
        }
        for problem in &self.problems {
            eprintln!("error: {}", problem.error);
            eprintln!("  help: {}", problem.help);
        }
        if json {
            return;
        }
        let (path, dataset, aside) = (&self.path, &self.dataset, &self.aside);
        match self.outcome {
            Outcome::Migrated => println!(
                "done: {path} is now dataset {dataset}. The original directory is kept at {aside}; \
                 remove it with --cleanup once the service runs well."
            ),
            Outcome::AlreadyMigrated => {
                println!("already migrated: {path} is dataset {dataset}; nothing to do")
            }
            Outcome::DryRun => println!("dry run: nothing was changed"),
            Outcome::CleanedUp => println!("cleaned up: {aside} removed"),
            Outcome::NothingToCleanUp => println!("nothing to clean up for {path}"),
            Outcome::Refused => {
                eprintln!("migrate-to-dataset: refused; nothing was changed by this run")
            }
            Outcome::Failed => eprintln!(
                "migrate-to-dataset: failed; the original data is untouched (at {path} or {aside}). \
                 Fix the problem and run again: it resumes where it stopped."
            ),
        }
    }
}

/// Prints a step's line as it completes (text mode) and records it.
fn record(report: &mut Report, options: &Options, step: &str, detail: String) {
    if !options.json {
        println!("  {step}: {detail}");
        let _ = io::stdout().flush();
    }
    report.steps.push(StepReport {
        step: step.into(),
        detail,
    });
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The testing hook (docs/migration.md): `ZPERSIST_MIGRATE_FAILPOINT=after:STEP`
/// aborts right after STEP's action, before the journal records it;
/// `journaled:STEP` right after the journal records it.
fn failpoint(when: &str, step: &str) {
    if let Ok(point) = std::env::var("ZPERSIST_MIGRATE_FAILPOINT") {
        if point == format!("{when}:{step}") {
            eprintln!("migrate-to-dataset: failpoint {point}: aborting");
            std::process::abort();
        }
    }
}

fn path_state(path: &str) -> PathState {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => PathState::Missing,
        Ok(meta) if meta.is_dir() => match fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_none() {
                    PathState::EmptyDir
                } else {
                    PathState::NonEmptyDir
                }
            }
            Err(_) => PathState::Other,
        },
        _ => PathState::Other,
    }
}

fn dataset_state(zfs: &Zfs, dataset: &str) -> Result<Option<DatasetState>, String> {
    let props = zfs
        .get(dataset, &["mountpoint", "mounted"])
        .map_err(|e| e.to_string())?;
    Ok(props.map(|props| DatasetState {
        mountpoint: props.get("mountpoint").cloned().unwrap_or_default(),
        mounted: props.get("mounted").is_some_and(|m| m == "yes"),
    }))
}

fn observe(zfs: &Zfs, target: &MigrationTarget) -> Result<MigrationFacts, String> {
    Ok(MigrationFacts {
        dataset: dataset_state(zfs, &target.dataset)?,
        path: path_state(&target.path),
        temporary: path_state(&target.temporary()),
        aside: path_state(&target.aside()),
    })
}

fn read_journal(target: &MigrationTarget) -> Result<Option<Journal>, String> {
    let path = target.journal();
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("the migration journal {path} is unreadable: {e}")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the migration journal {path}: {e}")),
    }
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

fn parent_of(path: &str) -> &Path {
    Path::new(path).parent().unwrap_or(Path::new("/"))
}

/// Written atomically: a crash leaves the old journal or the new one,
/// never half of one.
fn write_journal(target: &MigrationTarget, journal: &Journal) -> Result<(), StepError> {
    let path = target.journal();
    let mut text = serde_json::to_string_pretty(journal).expect("the journal serialises");
    text.push('\n');
    zpersist_host::write_atomically(Path::new(&path), text.as_bytes()).map_err(|e| {
        let dir = parent_of(&path).display();
        StepError {
            error: format!("cannot write the migration journal {path}: {e}"),
            help: Some(if is_out_of_space(&e) {
                format!("the filesystem holding {dir} is full or over its quota: free space there, then run again")
            } else {
                format!("check that {dir} is writable and its filesystem mounted read-write, then run again")
            }),
        }
    })
}

/// ENOSPC or EDQUOT.
fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122))
}

/// One limit on the space a dataset can use.
struct SpaceLimit {
    /// `the quota of tank/services is 2.0 MiB, 2.0 MiB of it used`
    description: String,
    /// What can still be written under it.
    headroom: u64,
    help: String,
}

/// The limits on what `dataset` can hold: its quota and refquota, its
/// ancestors' quotas, the pool's free space (a `zfs get` per dataset up to
/// the pool; only asked after a write failed for lack of space).
fn space_limits(zfs: &Zfs, dataset: &str) -> Vec<SpaceLimit> {
    let mut limits = Vec::new();
    let mut name = Some(dataset);
    while let Some(ds) = name {
        name = parent_of_dataset(ds);
        let Ok(Some(props)) = zfs.get(
            ds,
            &["quota", "refquota", "used", "referenced", "available"],
        ) else {
            continue;
        };
        let value = |p: &str| {
            props
                .get(p)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut quotas = vec![("quota", value("quota"), value("used"))];
        if ds == dataset {
            quotas.push(("refquota", value("refquota"), value("referenced")));
        }
        for (property, size, used) in quotas.into_iter().filter(|(_, size, _)| *size > 0) {
            limits.push(SpaceLimit {
                description: format!(
                    "the {property} of {ds} is {}, {} of it used",
                    human(size),
                    human(used)
                ),
                headroom: size.saturating_sub(used),
                help: format!(
                    "raise the {property} of {ds} (`zfs set {property}=SIZE {ds}`, with room for the data) or free space within it"
                ),
            });
        }
        if name.is_none() {
            limits.push(SpaceLimit {
                description: format!("pool {ds} has {} available", human(value("available"))),
                headroom: value("available"),
                help: format!("free space in pool {ds} (or grow it)"),
            });
        }
    }
    limits
}

/// A copy into the dataset stopped for lack of space: which limit it hit,
/// what the data takes, and how to go on.
fn out_of_space(
    zfs: &Zfs,
    target: &MigrationTarget,
    source: Option<&Tree>,
    rsync_says: &str,
) -> StepError {
    let dataset = &target.dataset;
    let limit = space_limits(zfs, dataset)
        .into_iter()
        .min_by_key(|limit| limit.headroom);
    let takes = source.map_or(String::new(), |tree| {
        format!(
            "; the data takes {} in {}",
            human(tree.allocated()),
            target.path
        )
    });
    let (what, help) = match limit {
        Some(limit) => (limit.description, limit.help),
        None => (
            "its quota and free space could not be read".to_string(),
            format!(
                "raise the quota of {dataset} or of its parents, or free space in pool {}",
                pool_of(dataset)
            ),
        ),
    };
    StepError {
        error: format!("{dataset} is out of space: {what}{takes}\n    {rsync_says}"),
        help: Some(format!(
            "{help}, then run again (what was copied so far stays)"
        )),
    }
}

/// rsync from the directory into the dataset.
fn copy_into_dataset(
    zfs: &Zfs,
    target: &MigrationTarget,
    source: Option<&Tree>,
    by_checksum: bool,
    options: &Options,
) -> Result<(), StepError> {
    copy::rsync(
        &target.path,
        &target.temporary(),
        by_checksum,
        options.progress_every,
        &mut io::stderr(),
    )
    .map_err(|e| match &e.out_of_space {
        Some(says) => out_of_space(zfs, target, source, says),
        None => e.message.into(),
    })
}

fn human(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift {
            return format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes} B")
}

/// Refusals that hold for any step: a unit or a process using the data.
fn in_use_problems(target: &MigrationTarget, report: &mut Report) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut systemd_unreachable = None;
    for unit in &target.units {
        match inuse::unit_state(unit) {
            inuse::UnitState::Running(state) => problems.push((
                format!("{unit} is {state}"),
                format!("stop it first (`systemctl stop {unit}`), then run again"),
            )),
            inuse::UnitState::Stopped(_) => {}
            inuse::UnitState::Unknown(why) => systemd_unreachable = Some(why),
        }
    }
    if let Some(why) = systemd_unreachable {
        report.notes.push(format!(
            "systemd did not answer ({why}); relying on the process scan alone"
        ));
    }
    let dirs: Vec<String> = [target.path.clone(), target.temporary(), target.aside()]
        .iter()
        .map(|p| inuse::resolved(p))
        .collect();
    let users = inuse::processes_using(&dirs);
    if !users.is_empty() {
        let list: Vec<String> = users
            .iter()
            .take(10)
            .map(|u| format!("pid {} ({}): {}", u.pid, u.command, u.what))
            .collect();
        problems.push((
            format!(
                "{} process(es) use {}:\n    {}",
                users.len(),
                target.path,
                list.join("\n    ")
            ),
            "stop the service (and anything else using the directory), then run again".into(),
        ));
    }
    problems
}

/// Refusals for filesystems mounted at the directory or inside it. The help
/// never says to unmount: that would hide the mount's files, or destroy
/// them (tmpfs). The data has to be copied off the mount first, or the
/// mount kept (and moved by its configuration, when its files are on a disk).
fn mount_problems(target: &MigrationTarget) -> Vec<(String, String)> {
    let path = &target.path;
    let resolved = inuse::resolved(path);
    let (at, inside): (Vec<_>, Vec<_>) = inuse::mounts_within(&resolved)
        .into_iter()
        .partition(|mount| mount.mountpoint == resolved);
    let in_memory = |mounts: &[inuse::Mount]| {
        mounts.iter().find(|m| m.is_volatile()).map(|m| {
            format!(
                "a {} keeps its files in memory only, and an unmount or a reboot loses them: ",
                m.fstype
            )
        })
    };
    let mut problems = Vec::new();
    // A directory mounted over more than once shows the top mount.
    if let Some(mount) = at.last() {
        let (fstype, source) = (&mount.fstype, &mount.source);
        let what = mount.describe();
        let name = Path::new(path)
            .file_name()
            .map_or("data".into(), |n| n.to_string_lossy());
        problems.push((
            format!(
                "{path} is itself a mount of {what}: a migration renames the directory aside and mounts the dataset in its place, which a mount point does not allow, and the files are that filesystem's"
            ),
            format!(
                "{}copy the data off that mount first, with the service stopped (e.g. `cp -a {path}/. /var/tmp/{name}-copy/`); once the copy is complete, stop mounting {fstype} at {path} (fstab, a .mount unit, the service's own settings), put the copy at {path} as a plain directory and run again{}; or keep the data on that mount and do not migrate {path}",
                in_memory(&at).unwrap_or_else(|| format!("its files live on {source}, not in the directory: ")),
                if mount.is_volatile() {
                    String::new()
                } else {
                    format!(" (or mount it elsewhere instead: its files stay on {source})")
                }
            ),
        ));
    }
    if !inside.is_empty() {
        let list: Vec<String> = inside
            .iter()
            .map(|m| {
                format!(
                    "{} is a mount of {} inside {path}",
                    m.mountpoint,
                    m.describe()
                )
            })
            .collect();
        let volatile = in_memory(&inside);
        problems.push((
            format!(
                "{}: a migration copies {path}'s own filesystem only, so the files on {} would not come along",
                list.join("; "),
                if inside.len() == 1 { "it" } else { "them" }
            ),
            format!(
                "{}copy the files of each mount that belong in the dataset off it into a plain directory inside {path} first (with the service stopped), and stop mounting it there; a mount whose files should stay on their own filesystem can be mounted outside {path} during the migration and at its place again afterwards{}; then run again",
                volatile.clone().unwrap_or_default(),
                if volatile.is_some() {
                    " (not a tmpfs: mounted again, it starts empty)"
                } else {
                    ""
                }
            ),
        ));
    }
    problems
}

/// Walks and hashes trees side by side, printing progress.
fn hash_trees(roots: &[&str], options: &Options, what: &str) -> Result<Vec<Tree>, String> {
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let progress = &progress;
        let done = &done;
        let print = move || {
            eprintln!(
                "{what}: {}/{} files, {} of {} hashed",
                progress.files_done.load(Ordering::Relaxed),
                progress.files_total.load(Ordering::Relaxed),
                human(progress.bytes_done.load(Ordering::Relaxed)),
                human(progress.bytes_total.load(Ordering::Relaxed)),
            )
        };
        let printer = scope.spawn(move || {
            let mut last = Instant::now();
            let tick = Duration::from_millis(50)
                .min(options.progress_every.max(Duration::from_millis(10)));
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                if last.elapsed() >= options.progress_every && !done.load(Ordering::Relaxed) {
                    print();
                    last = Instant::now();
                }
            }
            // The last line gives the totals, however quick the run was.
            print();
        });
        let workers: Vec<_> = roots
            .iter()
            .map(|root| {
                scope.spawn(move || -> Result<Tree, String> {
                    let mut tree = manifest::walk(Path::new(root))
                        .map_err(|e| format!("reading {root}: {e}"))?;
                    progress.add_totals(tree.files(), tree.bytes());
                    tree.hash_contents(Path::new(root), progress)
                        .map_err(|e| format!("reading {root}: {e}"))?;
                    Ok(tree)
                })
            })
            .collect();
        let trees: Result<Vec<Tree>, String> = workers
            .into_iter()
            .map(|w| w.join().expect("a hashing thread panicked"))
            .collect();
        done.store(true, Ordering::Relaxed);
        let _ = printer.join();
        trees
    })
}

fn list_differences(differences: &[String]) -> String {
    let mut shown: Vec<String> = differences.iter().take(20).cloned().collect();
    if differences.len() > 20 {
        shown.push(format!("... and {} more", differences.len() - 20));
    }
    shown.join("\n    ")
}

/// `zfs create`, or the parts of it a crash left undone.
fn create(zfs: &Zfs, target: &MigrationTarget) -> Result<String, String> {
    let temporary = target.temporary();
    if dataset_state(zfs, &target.dataset)?.is_none() {
        let mut properties = target.properties.clone();
        properties.insert("mountpoint".into(), temporary.clone());
        properties.insert("canmount".into(), "on".into());
        zfs.create(&target.dataset, &properties)
            .map_err(|e| e.to_string())?;
    }
    ensure_mounted(zfs, &target.dataset)?;
    let declared: Vec<String> = target
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Ok(format!(
        "created {} mounted at {temporary}{}",
        target.dataset,
        if declared.is_empty() {
            String::new()
        } else {
            format!(" ({})", declared.join(", "))
        }
    ))
}

/// Mounts the dataset if it is not. zfs-fuse unmounts asynchronously, so a
/// remount right after a mountpoint change can be "busy" for a moment:
/// retried with a short backoff.
fn ensure_mounted(zfs: &Zfs, dataset: &str) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        match dataset_state(zfs, dataset)? {
            Some(ds) if ds.mounted => return Ok(()),
            Some(_) => match zfs.mount(dataset) {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e.message()) && attempt < 15 => {}
                Err(e) => return Err(e.to_string()),
            },
            None => return Err(format!("dataset {dataset} does not exist")),
        }
        attempt += 1;
        std::thread::sleep(Duration::from_millis(100 * attempt));
    }
}

fn is_busy(message: &str) -> bool {
    message.contains("busy")
}

/// Refuses before copying when the source has xattrs the dataset cannot keep.
fn check_xattr_support(source: &Tree, temporary: &str, dataset: &str) -> Result<(), String> {
    let with = source.with_xattrs();
    if with.is_empty() {
        return Ok(());
    }
    let probe = "user.zpersist-probe";
    match xattr::set(temporary, probe, b"1") {
        Ok(()) => {
            let _ = xattr::remove(temporary, probe);
            Ok(())
        }
        Err(e) if manifest::is_unsupported(&e) => Err(format!(
            "{} entries in the source have extended attributes (e.g. {}), but {dataset} does not support them ({e}); copying would lose them",
            with.len(),
            String::from_utf8_lossy(&with[0].path)
        )),
        Err(e) => Err(format!("cannot test xattr support on {temporary}: {e}")),
    }
}

fn copy_step(
    zfs: &Zfs,
    target: &MigrationTarget,
    source: Option<&Tree>,
    options: &Options,
) -> Result<String, StepError> {
    ensure_mounted(zfs, &target.dataset)?;
    let temporary = target.temporary();
    if let Some(source) = source {
        check_xattr_support(source, &temporary, &target.dataset)?;
    }
    let started = Instant::now();
    copy_into_dataset(zfs, target, source, false, options)?;
    // The copy must be on disk before the original is moved aside.
    let _ = duct::cmd("sync", ["-f", temporary.as_str()])
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run();
    Ok(match source {
        Some(source) => format!(
            "{} files, {} copied with rsync in {:.1} s",
            source.files(),
            human(source.bytes()),
            started.elapsed().as_secs_f64()
        ),
        None => format!(
            "copied with rsync in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    })
}

fn verify_step(
    zfs: &Zfs,
    target: &MigrationTarget,
    journal: &mut Journal,
    options: &Options,
) -> Result<String, StepError> {
    let temporary = target.temporary();
    let mut trees = hash_trees(&[&target.path, &temporary], options, "verify")?;
    let mut differences = manifest::differences(&trees[0], &trees[1]);
    let mut repaired = false;
    if !differences.is_empty() {
        eprintln!(
            "verify: {} difference(s) after the copy; copying again comparing contents:\n    {}",
            differences.len(),
            list_differences(&differences)
        );
        copy_into_dataset(zfs, target, Some(&trees[0]), true, options)?;
        trees = hash_trees(&[&target.path, &temporary], options, "verify")?;
        differences = manifest::differences(&trees[0], &trees[1]);
        repaired = true;
    }
    if !differences.is_empty() {
        // The next run copies again.
        journal.stage = Stage::Created;
        return Err(format!(
            "the copy in {} differs from {}:\n    {}",
            temporary,
            target.path,
            list_differences(&differences)
        )
        .into());
    }
    let summary = trees[0].summary();
    let detail = format!(
        "{} entries identical ({} files, {}; names, types, owners, modes, mtimes, SHA-256 contents, symlink targets, hardlinks, xattrs){}; allocated {} in the source, {} in the dataset",
        summary.entries,
        summary.files,
        human(summary.bytes),
        if repaired { " after a repair pass" } else { "" },
        human(trees[0].allocated()),
        human(trees[1].allocated()),
    );
    journal.verified = Some(summary);
    Ok(detail)
}

fn move_aside(target: &MigrationTarget) -> Result<String, String> {
    let (path, aside) = (&target.path, target.aside());
    if path_state(&aside).is_dir() && !path_state(path).is_dir() {
        return Ok(format!("{path} was already moved to {aside}"));
    }
    fs::rename(path, &aside).map_err(|e| format!("cannot rename {path} to {aside}: {e}"))?;
    fsync_dir(parent_of(path))
        .map_err(|e| format!("cannot sync {}: {e}", parent_of(path).display()))?;
    Ok(format!("{path} moved to {aside} (kept until --cleanup)"))
}

fn mount_step(zfs: &Zfs, target: &MigrationTarget) -> Result<String, String> {
    let ds = dataset_state(zfs, &target.dataset)?
        .ok_or_else(|| format!("dataset {} does not exist", target.dataset))?;
    if ds.mountpoint != target.path {
        if let Err(e) = zfs.set(&target.dataset, "mountpoint", &target.path) {
            // "property may be set but unable to remount": the mount below finishes it.
            let now = dataset_state(zfs, &target.dataset)?;
            if !(is_busy(&e.message()) && now.is_some_and(|ds| ds.mountpoint == target.path)) {
                return Err(e.to_string());
            }
        }
    }
    ensure_mounted(zfs, &target.dataset)?;
    // The temporary mountpoint directory is left empty; remove only if so.
    let _ = fs::remove_dir(target.temporary());
    Ok(format!("{} mounted at {}", target.dataset, target.path))
}

fn verify_mounted(
    target: &MigrationTarget,
    verified: &TreeSummary,
    options: &Options,
) -> Result<String, String> {
    let trees = hash_trees(&[&target.path], options, "verify-mounted")?;
    let summary = trees[0].summary();
    if summary.digest == verified.digest {
        return Ok(format!(
            "{} entries in the mounted dataset identical to the verified copy",
            summary.entries
        ));
    }
    let aside = target.aside();
    let original = hash_trees(&[&aside], options, "verify-mounted")?;
    let differences = manifest::differences(&original[0], &trees[0]);
    Err(format!(
        "the data mounted at {} differs from what was verified (the original is at {aside}):\n    {}",
        target.path,
        list_differences(&differences)
    ))
}

fn owner_notes(target: &MigrationTarget, report: &mut Report) {
    let host = zpersist_host::RealHost::new();
    let Some(dir) = host.directory(&target.path) else {
        return;
    };
    let uid = target.user.as_deref().and_then(|u| host.user_id(u));
    let gid = target.group.as_deref().and_then(|g| host.group_id(g));
    let mode = target
        .mode
        .as_deref()
        .and_then(zpersist_core::migration::parse_mode);
    if uid.is_some_and(|u| u != dir.uid)
        || gid.is_some_and(|g| g != dir.gid)
        || mode.is_some_and(|m| m != dir.mode)
    {
        report.notes.push(format!(
            "{} is {}:{} mode {:04o}, not the declared owner/group/mode; the copy keeps what is there and zpersist-datasets applies the declaration on its next run",
            target.path, dir.uid, dir.gid, dir.mode
        ));
    }
}

/// Where run locks live: in /run, so a refused run leaves nothing next to
/// the data, and a reboot clears what a killed run left.
const LOCK_DIR: &str = "/run/zpersist";

/// The run lock of the directory: `migrate-NAME-SHA256.lock`, NAME the end
/// of the path for people to read, SHA256 that of the whole path with the
/// symlinks in its parent resolved. One lock per directory however it is
/// spelt, a different one for every other directory (the old `/a-b` and
/// `/a/b` shared one), and a name of at most 126 bytes for any path.
fn lock_path(target: &MigrationTarget) -> String {
    let canonical = inuse::resolved(&target.path);
    let readable: String = canonical
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    let readable = &readable[readable.len().saturating_sub(48)..];
    let digest = manifest::hex(&Sha256::digest(canonical.as_bytes()));
    format!("{LOCK_DIR}/migrate-{readable}-{digest}.lock")
}

/// What to do when the run lock cannot be taken, by the cause.
fn lock_help(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        // The error itself names the holder (pid, command line, since when).
        return "another migrate-to-dataset of this directory still holds it: let it finish, or stop it if it is stuck".into();
    }
    match e.raw_os_error() {
        Some(1 | 13) => format!("run as root: the run lock is a file in {LOCK_DIR}"),
        Some(30) => format!("{LOCK_DIR} is on a read-only filesystem; migrate-to-dataset needs it writable (it is a tmpfs on a normal boot)"),
        Some(17 | 20) => format!("{LOCK_DIR} must be a directory: move away what is there"),
        Some(28 | 122) => format!("the filesystem holding {LOCK_DIR} is full: free space there"),
        _ => format!("make {LOCK_DIR} a writable directory"),
    }
}

/// The run lock, unless this is a dry run: it changes nothing, so it
/// neither waits for nor blocks a real run. The lock file is removed when
/// the run ends (see `zpersist_host::lock_removed_when_done` for why that
/// is safe).
fn lock_unless_dry_run(
    target: &MigrationTarget,
    options: &Options,
) -> Result<Option<zpersist_host::TransientLock>, StepError> {
    if options.dry_run {
        return Ok(None);
    }
    let path = lock_path(target);
    zpersist_host::lock_removed_when_done(path.clone().into(), &mut io::stderr())
        .map(Some)
        .map_err(|e| StepError {
            error: format!("cannot take the run lock {path} for {}: {e}", target.path),
            help: Some(format!("{}, then run again", lock_help(&e))),
        })
}

pub fn migrate(target: &MigrationTarget, options: &Options) -> Report {
    let mut report = Report::new(target, options.dry_run);
    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs,
        Err(e) => return report.fail(e.message(), "install ZFS and run again"),
    };
    if copy::rsync_program().is_err() {
        return report.fail(
            "rsync is not installed; migrate-to-dataset copies with it",
            "install rsync (Debian: `apt-get install rsync`; NixOS: zpersist.services puts pkgs.rsync in environment.systemPackages, or run it with `nix-shell -p rsync`), then run again",
        );
    }
    let _lock = match lock_unless_dry_run(target, options) {
        Ok(lock) => lock,
        Err(e) => return report.fail_with(e),
    };
    let journal = match read_journal(target) {
        Ok(journal) => journal,
        Err(e) => return report.refuse(
            e,
            "the original data is untouched or kept aside; inspect the journal, fix or remove it",
        ),
    };
    let facts = match observe(&zfs, target) {
        Ok(facts) => facts,
        Err(e) => return report.fail(e, "check that ZFS answers (`zfs list`), then run again"),
    };
    let (stage, from) = match decide(target, journal.as_ref(), &facts) {
        Decision::AlreadyMigrated {
            mounted,
            aside_kept,
        } => {
            report.outcome = Outcome::AlreadyMigrated;
            if !mounted {
                report.notes.push(format!(
                    "{} is not mounted; mount it with `zfs mount {}`",
                    target.dataset, target.dataset
                ));
            }
            if aside_kept {
                report.notes.push(format!(
                    "the original directory is still kept at {}; remove it with --cleanup",
                    target.aside()
                ));
            }
            if path_state(&target.deleting()) != PathState::Missing {
                report.notes.push(format!(
                    "{} is what an interrupted --cleanup left of the original; run --cleanup again to finish removing it",
                    target.deleting()
                ));
            }
            return report;
        }
        Decision::Refuse { problem, help } => return report.refuse(problem, help),
        Decision::Run { stage, from } => (stage, from),
    };
    if journal.is_some() {
        report.resumed_after = Some(stage);
        if !options.json {
            println!(
                "resuming the migration of {} into {} after stage {:?}",
                target.path, target.dataset, stage
            );
        }
    } else if !options.json {
        println!("migrating {} into {}", target.path, target.dataset);
    }
    for (error, help) in in_use_problems(target, &mut report) {
        report = report.refuse(error, help);
    }
    if !report.problems.is_empty() {
        return report;
    }
    // The source is only read while it is still at its path.
    let mut source = None;
    if from == Step::Create || from == Step::Copy {
        for (error, help) in mount_problems(target) {
            report = report.refuse(error, help);
        }
        if !report.problems.is_empty() {
            return report;
        }
        match manifest::walk(Path::new(&target.path)) {
            Ok(tree) => source = Some(tree),
            Err(e) => {
                return report.fail(
                    format!("reading {}: {e}", target.path),
                    "make the whole tree readable (as root), then run again",
                )
            }
        }
    }
    if let (Some(tree), None) = (&source, &journal) {
        owner_notes(target, &mut report);
        let pool = pool_of(&target.dataset);
        match zfs.get(pool, &["available"]) {
            Ok(Some(props)) => {
                let available: u64 = props
                    .get("available")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(u64::MAX);
                if tree.allocated() > available {
                    return report.refuse(
                        format!(
                            "{} needs {} but pool {pool} has {} available",
                            target.path,
                            human(tree.allocated()),
                            human(available)
                        ),
                        "free space in the pool (or grow it), then run again",
                    );
                }
            }
            Ok(None) => {
                return report.refuse(
                    format!("pool {pool} does not exist"),
                    "import the pool or fix the dataset name",
                )
            }
            Err(e) => return report.fail(e.to_string(), "check that ZFS answers, then run again"),
        }
    }
    if options.dry_run {
        report.outcome = Outcome::DryRun;
        for step in from.remaining() {
            let detail = match step {
                Step::Create => {
                    let mut props: BTreeMap<String, String> = target.properties.clone();
                    props.insert("mountpoint".into(), target.temporary());
                    props.insert("canmount".into(), "on".into());
                    let opts: Vec<String> =
                        props.iter().map(|(k, v)| format!("-o {k}={v}")).collect();
                    format!(
                        "would run `zfs create -p {} {}`",
                        opts.join(" "),
                        target.dataset
                    )
                }
                Step::Copy => format!(
                    "would copy {}{} with `rsync {}`",
                    source.as_ref().map_or(String::new(), |t| format!(
                        "{} entries ({} files, {}) ",
                        t.entries.len(),
                        t.files(),
                        human(t.bytes())
                    )),
                    target.path,
                    copy::rsync_argv(&target.path, &target.temporary(), false).join(" ")
                ),
                Step::Verify => {
                    "would compare both trees entry by entry, contents by SHA-256".into()
                }
                Step::MoveAside => format!("would rename {} to {}", target.path, target.aside()),
                Step::Mount => format!(
                    "would run `zfs set mountpoint={} {}`",
                    target.path, target.dataset
                ),
                Step::VerifyMounted => format!("would verify the data mounted at {}", target.path),
            };
            record(&mut report, options, step.name(), detail);
        }
        return report;
    }
    let mut journal = match journal {
        Some(journal) => journal,
        None => {
            let journal = Journal::new(target, now());
            if let Err(e) = write_journal(target, &journal) {
                return report.fail_with(e);
            }
            failpoint("journaled", "started");
            journal
        }
    };
    for step in from.remaining() {
        let result = match step {
            Step::Create => create(&zfs, target).map_err(StepError::from),
            Step::Copy => copy_step(&zfs, target, source.as_ref(), options),
            Step::Verify => verify_step(&zfs, target, &mut journal, options),
            Step::MoveAside => move_aside(target).map_err(StepError::from),
            Step::Mount => mount_step(&zfs, target).map_err(StepError::from),
            Step::VerifyMounted => match journal.verified.clone() {
                Some(verified) => {
                    verify_mounted(target, &verified, options).map_err(StepError::from)
                }
                None => Err(StepError::from(
                    "the journal has no verified tree to compare with".to_string(),
                )),
            },
        };
        let detail = match result {
            Ok(detail) => detail,
            Err(e) => {
                // A failed verification sends the next run back to the copy.
                let _ = write_journal(target, &journal);
                return report.fail(
                    format!("{}: {}", step.name(), e.error),
                    format!(
                        "{}; it resumes at `{}`",
                        e.help
                            .unwrap_or_else(|| "fix the cause and run again".into()),
                        journal.stage.next_step().map_or("done", Step::name)
                    ),
                );
            }
        };
        failpoint("after", step.name());
        journal.reach(step.completes(), now());
        if let Err(e) = write_journal(target, &journal) {
            return report.fail_with(e);
        }
        failpoint("journaled", step.name());
        record(&mut report, options, step.name(), detail);
    }
    report.outcome = Outcome::Migrated;
    report
}

pub fn cleanup(target: &MigrationTarget, options: &Options) -> Report {
    let mut report = Report::new(target, options.dry_run);
    let aside = target.aside();
    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs,
        Err(e) => return report.fail(e.message(), "install ZFS and run again"),
    };
    let _lock = match lock_unless_dry_run(target, options) {
        Ok(lock) => lock,
        Err(e) => return report.fail_with(e),
    };
    let journal = match read_journal(target) {
        Ok(journal) => journal,
        Err(e) => return report.refuse(e, "inspect the journal; nothing was removed"),
    };
    let Some(mut journal) = journal else {
        let Some(kept) = [aside.clone(), target.deleting()]
            .into_iter()
            .find(|kept| path_state(kept) != PathState::Missing)
        else {
            report.outcome = Outcome::NothingToCleanUp;
            return report;
        };
        return report.refuse(
            format!("{kept} exists but there is no migration journal proving it was copied and verified"),
            format!("check it against {} yourself and remove it by hand", target.path),
        );
    };
    if journal.stage != Stage::Done || journal.dataset != target.dataset {
        return report.refuse(
            format!(
                "the migration of {} into {} is not finished (stage {:?})",
                journal.path, journal.dataset, journal.stage
            ),
            "run the migration without --cleanup first",
        );
    }
    let Some(verified) = journal.verified.clone() else {
        return report.refuse(
            format!("the journal {} has no record of a verified copy", target.journal()),
            format!("compare {aside} with {} yourself and remove it by hand if it can go; nothing was removed", target.path),
        );
    };
    match dataset_state(&zfs, &target.dataset) {
        Ok(Some(ds)) if ds.mountpoint == target.path && ds.mounted => {}
        Ok(_) => {
            return report.refuse(
                format!("{} is not mounted at {}", target.dataset, target.path),
                format!("the original at {aside} may be the only copy; mount the dataset and check it first"),
            )
        }
        Err(e) => return report.fail(e, "check that ZFS answers, then run again"),
    }
    // The service may run now; only processes inside the copies to remove matter.
    let deleting = target.deleting();
    let users = inuse::processes_using(&[inuse::resolved(&aside), inuse::resolved(&deleting)]);
    if let Some(user) = users.first() {
        return report.refuse(
            format!(
                "pid {} ({}) uses {aside}: {}",
                user.pid, user.command, user.what
            ),
            "stop it, then run --cleanup again",
        );
    }
    // Removing works on DIR.zpersist-deleting, never on DIR.zpersist-old:
    // the original kept aside is whole or gone, and what an interrupted
    // cleanup leaves under the other name was verified before it got there.
    let interrupted = path_state(&deleting) != PathState::Missing;
    if interrupted && journal.cleanup_started.is_none() {
        return report.refuse(
            format!(
                "{deleting} exists, but the journal {} records no cleanup that put it there",
                target.journal()
            ),
            "check what it holds and remove it yourself if it can go, then run --cleanup again; nothing was removed",
        );
    }
    let aside_kept = path_state(&aside).is_dir();
    if !aside_kept && !interrupted && journal.cleanup_started.is_none() {
        report.outcome = Outcome::NothingToCleanUp;
        return report;
    }
    if aside_kept {
        let trees = match hash_trees(&[&aside, &target.path], options, "cleanup") {
            Ok(trees) => trees,
            Err(e) => return report.fail(e, "nothing was removed; fix the cause and run again"),
        };
        if trees[0].summary().digest != verified.digest {
            return report.refuse(
                format!("{aside} changed since it was verified identical to the dataset; it may hold data the dataset lacks"),
                format!("compare it with {} yourself; nothing was removed", target.path),
            );
        }
        let differences = manifest::differences(&trees[0], &trees[1]);
        record(
            &mut report,
            options,
            "re-verify",
            if differences.is_empty() {
                format!(
                    "{aside} is identical to the dataset mounted at {}",
                    target.path
                )
            } else {
                format!(
                    "{aside} is exactly what was verified into {} at migration; since then {} entries changed in the dataset (the service's own writes)",
                    target.dataset,
                    differences.len()
                )
            },
        );
    }
    let leftover = format!("{deleting}, left by an interrupted cleanup");
    if options.dry_run {
        if interrupted {
            record(
                &mut report,
                options,
                "remove",
                format!("would finish removing {leftover}"),
            );
        }
        if aside_kept {
            record(
                &mut report,
                options,
                "remove",
                format!("would remove {aside}"),
            );
        }
        report.outcome = Outcome::DryRun;
        return report;
    }
    if interrupted {
        if let Err(e) = fs::remove_dir_all(&deleting) {
            return report.fail(
                format!("removing {deleting}: {e}"),
                "fix the cause and run --cleanup again; it finishes the removal",
            );
        }
        record(
            &mut report,
            options,
            "remove",
            format!("finished removing {leftover}"),
        );
    }
    if aside_kept {
        if journal.cleanup_started.is_none() {
            journal.cleanup_started = Some(now());
            if let Err(e) = write_journal(target, &journal) {
                return report.fail_with(e);
            }
        }
        failpoint("journaled", "cleanup-started");
        if let Err(e) = fs::rename(&aside, &deleting) {
            return report.fail(
                format!("cannot rename {aside} to {deleting}: {e}"),
                "nothing was removed; fix the cause and run --cleanup again",
            );
        }
        let _ = fsync_dir(parent_of(&aside));
        if let Err(e) = fs::remove_dir_all(&deleting) {
            return report.fail(
                format!(
                    "removing {deleting} (the original, verified, moved there to be removed): {e}"
                ),
                "fix the cause and run --cleanup again; it finishes the removal",
            );
        }
        record(&mut report, options, "remove", format!("{aside} removed"));
    }
    let _ = fsync_dir(parent_of(&aside));
    let _ = fs::remove_file(target.journal());
    let _ = fsync_dir(parent_of(&aside));
    report.outcome = Outcome::CleanedUp;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> MigrationTarget {
        MigrationTarget {
            dataset: "tank/services/x".into(),
            path: path.into(),
            units: Vec::new(),
            user: None,
            group: None,
            mode: None,
            properties: BTreeMap::new(),
        }
    }

    #[test]
    fn lock_names_are_distinct_bounded_and_readable() {
        let dashed = lock_path(&target("/srv/a-b"));
        let nested = lock_path(&target("/srv/a/b"));
        assert_ne!(dashed, nested);
        assert!(
            dashed.starts_with("/run/zpersist/migrate-srv-a-b-"),
            "{dashed}"
        );
        let long = format!("/srv/{}/{}/Séries TV", "l".repeat(250), "m".repeat(250));
        let name = lock_path(&target(&long));
        let file_name = name.strip_prefix("/run/zpersist/").unwrap();
        assert!(file_name.len() <= 126, "{file_name}");
        assert!(file_name.contains("-S_ries_TV-"), "{file_name}");
    }

    #[test]
    fn a_lock_that_cannot_be_taken_gets_help_for_its_cause() {
        let denied = io::Error::from_raw_os_error(13);
        assert!(lock_help(&denied).contains("run as root"));
        let read_only = io::Error::from_raw_os_error(30);
        assert!(lock_help(&read_only).contains("read-only"));
        let stuck = io::Error::new(io::ErrorKind::TimedOut, "still held after 120 s by pid 7");
        assert!(lock_help(&stuck).contains("still holds it"));
    }
}
