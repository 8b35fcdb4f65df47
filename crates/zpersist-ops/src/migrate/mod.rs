//! Observe, decide (zpersist-core's migration module), then let
//! zpersist_host::steps run the migration's steps (crate::migrate::steps), recording
//! each completed stage in the journal; and `--cleanup`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use zpersist_core::human_bytes;
use zpersist_core::migration::{
    decide, in_use_problems, mount_problems, Decision, Journal, MigrationFacts, MigrationTarget,
    PathState, Refusal, Stage, Step, TreeSummary,
};
use zpersist_core::name::pool_of;
use zpersist_core::HostFacts;
use zpersist_host::failpoint::Failpoints;
use zpersist_host::fsync::sync_dir;
use zpersist_host::manifest::{self, differences, hash_trees, Tree};
use zpersist_host::path::{parent_of, path_state, resolved};
use zpersist_host::resource_lock::{self, DatasetLock};
use zpersist_host::steps::{now, JournalFile, Runner, Stopped};
use zpersist_host::{dirlock, inuse, Failure, TransientLock};
use zpersist_zfs::dataset::dataset_state;
use zpersist_zfs::{space, Zfs};

pub mod copy;
pub mod report;
pub mod steps;

use crate::migrate::report::{record, Outcome, Report, Stop};
use crate::migrate::steps::Migration;

pub struct Options {
    pub dry_run: bool,
    pub json: bool,
    pub progress_every: Duration,
}

const PROGRAM: &str = "migrate-to-dataset";

/// The testing hook (docs/migration.md): `ZPERSIST_MIGRATE_FAILPOINT=after:STEP`
/// aborts right after STEP's action, before the journal records it;
/// `journaled:STEP` right after the journal records it.
const FAILPOINTS: Failpoints = Failpoints::new("ZPERSIST_MIGRATE_FAILPOINT", PROGRAM);

fn journal_file(target: &MigrationTarget) -> JournalFile {
    JournalFile::new(target.journal(), "migration journal")
}

/// The run lock of the directory and the resource lock of the dataset
/// (zpersist_host::resource_lock: no other mover changes it meanwhile),
/// held together until dropped.
pub struct Locks {
    _directory: TransientLock,
    _dataset: DatasetLock,
}

/// The locks, unless this is a dry run: it changes nothing, so it neither
/// waits for nor blocks a real run.
fn lock_unless_dry_run(
    target: &MigrationTarget,
    options: &Options,
) -> Result<Option<Locks>, Failure> {
    if options.dry_run {
        return Ok(None);
    }
    let directory = dirlock::lock_directory("migrate", PROGRAM, &target.path, &mut io::stderr())?;
    let dataset = resource_lock::lock_datasets(
        PROGRAM,
        &[&target.dataset],
        resource_lock::wait_bound(),
        &mut io::stderr(),
    )?;
    Ok(Some(Locks {
        _directory: directory,
        _dataset: dataset,
    }))
}

fn observe(zfs: &Zfs, target: &MigrationTarget) -> Result<MigrationFacts, String> {
    Ok(MigrationFacts {
        dataset: dataset_state(zfs, &target.dataset).map_err(|e| e.to_string())?,
        path: path_state(&target.path),
        temporary: path_state(&target.temporary()),
        aside: path_state(&target.aside()),
    })
}

/// A migration, or with `cleanup` the removal of the original it kept
/// aside (migrate-to-dataset's and `zpersist migrate`'s run).
pub fn run(target: &MigrationTarget, options: &Options, cleanup: bool) -> Report {
    if cleanup {
        self::cleanup(target, options)
    } else {
        migrate(target, options)
    }
}

pub fn migrate(target: &MigrationTarget, options: &Options) -> Report {
    let report = Report::new(target, options.dry_run);
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
    let journal = match journal_file(target).read::<Journal>() {
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
        } => return already_migrated(report, target, mounted, aside_kept),
        Decision::Refuse { problem, help } => return report.refuse(problem, help),
        Decision::Run { stage, from } => (stage, from),
    };
    let mut report = announce(report, target, options, journal.is_some(), stage);
    let source = match preflight(&zfs, target, journal.as_ref(), from, &mut report) {
        Ok(source) => source,
        Err(stop) => return report.stop(stop),
    };
    let migration = Migration {
        zfs: &zfs,
        target,
        options,
        source,
    };
    if options.dry_run {
        report.outcome = Outcome::DryRun;
        for step in from.remaining() {
            record(&mut report, options, step.name(), migration.describe(*step));
        }
        return report;
    }
    run_steps(&migration, journal, from, report)
}

/// Starts the journal of a new migration, then runs the steps from `from`.
fn run_steps(
    migration: &Migration,
    journal: Option<Journal>,
    from: Step,
    mut report: Report,
) -> Report {
    let (target, options) = (migration.target, migration.options);
    let file = journal_file(target);
    let runner = Runner {
        file: &file,
        failpoints: FAILPOINTS,
    };
    let mut journal = match journal {
        Some(journal) => journal,
        None => {
            let journal = Journal::new(target, now());
            if let Err(e) = runner.start(&journal) {
                return report.fail_with(e);
            }
            journal
        }
    };
    let ran = runner.run(
        &mut journal,
        from,
        |step, journal| migration.run(step, journal),
        |step, detail| record(&mut report, options, step.name(), detail),
    );
    match ran {
        Ok(()) => {
            report.outcome = Outcome::Migrated;
            report
        }
        // A failed verification sends the next run back to the copy.
        Err(Stopped::Step { step, error }) => report.fail(
            format!("{}: {}", step.name(), error.error),
            format!(
                "{}; it resumes at `{}`",
                error
                    .help
                    .unwrap_or_else(|| "fix the cause and run again".into()),
                journal.stage.next_step().map_or("done", Step::name)
            ),
        ),
        Err(Stopped::Journal(e)) => report.fail_with(e),
    }
}

fn already_migrated(
    mut report: Report,
    target: &MigrationTarget,
    mounted: bool,
    aside_kept: bool,
) -> Report {
    report.outcome = Outcome::AlreadyMigrated;
    let dataset = &target.dataset;
    if !mounted {
        report.notes.push(format!(
            "{dataset} is not mounted; mount it with `zfs mount {dataset}`"
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
    report
}

fn announce(
    mut report: Report,
    target: &MigrationTarget,
    options: &Options,
    resuming: bool,
    stage: Stage,
) -> Report {
    if resuming {
        report.resumed_after = Some(stage);
    }
    if !options.json {
        match resuming {
            true => println!(
                "resuming the migration of {} into {} after stage {stage:?}",
                target.path, target.dataset
            ),
            false => println!("migrating {} into {}", target.path, target.dataset),
        }
    }
    report
}

/// Refusals that hold for any step: a unit or a process using the data.
fn in_use(target: &MigrationTarget, report: &mut Report) -> Vec<Refusal> {
    let units: Vec<_> = target
        .units
        .iter()
        .map(|unit| (unit.clone(), inuse::unit_state(unit)))
        .collect();
    let dirs = [target.path.clone(), target.temporary(), target.aside()].map(|p| resolved(&p));
    let users = inuse::processes_using(&dirs);
    let (problems, notes) = in_use_problems(target, &units, &users);
    report.notes.extend(notes);
    problems
}

/// Everything that stands in the way of running from `from`: the data in
/// use, mounts in the directory, an unreadable tree, too little space (on
/// a first run). The source tree, walked, while it is still at its path.
fn preflight(
    zfs: &Zfs,
    target: &MigrationTarget,
    journal: Option<&Journal>,
    from: Step,
    report: &mut Report,
) -> Result<Option<Tree>, Stop> {
    let refusals = in_use(target, report);
    if !refusals.is_empty() {
        return Err(Stop::Refused(refusals));
    }
    if from != Step::Create && from != Step::Copy {
        return Ok(None);
    }
    let resolved = resolved(&target.path);
    let refusals = mount_problems(&target.path, &resolved, &inuse::mounts_within(&resolved));
    if !refusals.is_empty() {
        return Err(Stop::Refused(refusals));
    }
    let tree = manifest::walk(Path::new(&target.path)).map_err(|e| {
        Stop::failed(
            format!("reading {}: {e}", target.path),
            "make the whole tree readable (as root), then run again",
        )
    })?;
    if journal.is_none() {
        owner_notes(target, report);
        let pool = pool_of(&target.dataset);
        match space::available(zfs, pool) {
            Ok(Some(available)) if tree.allocated() > available => {
                return Err(Stop::refused(
                    format!(
                        "{} needs {} but pool {pool} has {} available",
                        target.path,
                        human_bytes(tree.allocated()),
                        human_bytes(available)
                    ),
                    "free space in the pool (or grow it), then run again",
                ))
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Stop::refused(
                    format!("pool {pool} does not exist"),
                    "import the pool or fix the dataset name",
                ))
            }
            Err(e) => {
                return Err(Stop::failed(
                    e.to_string(),
                    "check that ZFS answers, then run again",
                ))
            }
        }
    }
    Ok(Some(tree))
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

/// What a cleanup found to do.
struct Cleanable {
    journal: Journal,
    verified: TreeSummary,
    /// `DIR.zpersist-deleting` is there: an interrupted cleanup's.
    interrupted: bool,
    /// `DIR.zpersist-old` is there.
    aside_kept: bool,
}

pub fn cleanup(target: &MigrationTarget, options: &Options) -> Report {
    let mut report = Report::new(target, options.dry_run);
    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs,
        Err(e) => return report.fail(e.message(), "install ZFS and run again"),
    };
    let _lock = match lock_unless_dry_run(target, options) {
        Ok(lock) => lock,
        Err(e) => return report.fail_with(e),
    };
    let found = match cleanable(&zfs, target) {
        Ok(Some(found)) => found,
        Ok(None) => {
            report.outcome = Outcome::NothingToCleanUp;
            return report;
        }
        Err(stop) => return report.stop(stop),
    };
    if found.aside_kept {
        if let Err(stop) = reverify(target, &found.verified, options, &mut report) {
            return report.stop(stop);
        }
    }
    let (aside, deleting) = (target.aside(), target.deleting());
    let leftover = format!("{deleting}, left by an interrupted cleanup");
    if options.dry_run {
        if found.interrupted {
            let detail = format!("would finish removing {leftover}");
            record(&mut report, options, "remove", detail);
        }
        if found.aside_kept {
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
    if found.interrupted {
        if let Err(e) = fs::remove_dir_all(&deleting) {
            return report.fail(
                format!("removing {deleting}: {e}"),
                "fix the cause and run --cleanup again; it finishes the removal",
            );
        }
        let detail = format!("finished removing {leftover}");
        record(&mut report, options, "remove", detail);
    }
    if found.aside_kept {
        if let Err(stop) = remove_aside(target, found.journal) {
            return report.stop(stop);
        }
        record(&mut report, options, "remove", format!("{aside} removed"));
    }
    let _ = sync_dir(parent_of(&aside));
    let _ = fs::remove_file(target.journal());
    let _ = sync_dir(parent_of(&aside));
    report.outcome = Outcome::CleanedUp;
    report
}

/// Whether there is anything to clean up (`None`: nothing), and that it
/// may be: a finished migration whose dataset is mounted at the path, a
/// verified original, no process inside what is to be removed.
fn cleanable(zfs: &Zfs, target: &MigrationTarget) -> Result<Option<Cleanable>, Stop> {
    let aside = target.aside();
    let journal = journal_file(target)
        .read::<Journal>()
        .map_err(|e| Stop::refused(e, "inspect the journal; nothing was removed"))?;
    let Some(journal) = journal else {
        let Some(kept) = [aside.clone(), target.deleting()]
            .into_iter()
            .find(|kept| path_state(kept) != PathState::Missing)
        else {
            return Ok(None);
        };
        return Err(Stop::refused(
            format!("{kept} exists but there is no migration journal proving it was copied and verified"),
            format!("check it against {} yourself and remove it by hand", target.path),
        ));
    };
    if journal.stage != Stage::Done || journal.dataset != target.dataset {
        return Err(Stop::refused(
            format!(
                "the migration of {} into {} is not finished (stage {:?})",
                journal.path, journal.dataset, journal.stage
            ),
            "run the migration without --cleanup first",
        ));
    }
    let Some(verified) = journal.verified.clone() else {
        return Err(Stop::refused(
            format!("the journal {} has no record of a verified copy", target.journal()),
            format!("compare {aside} with {} yourself and remove it by hand if it can go; nothing was removed", target.path),
        ));
    };
    match dataset_state(zfs, &target.dataset) {
        Ok(Some(ds)) if ds.mountpoint == target.path && ds.mounted => {}
        Ok(_) => {
            return Err(Stop::refused(
                format!("{} is not mounted at {}", target.dataset, target.path),
                format!("the original at {aside} may be the only copy; mount the dataset and check it first"),
            ))
        }
        Err(e) => return Err(Stop::failed(e.to_string(), "check that ZFS answers, then run again")),
    }
    // The service may run now; only processes inside the copies to remove matter.
    let deleting = target.deleting();
    let users = inuse::processes_using(&[resolved(&aside), resolved(&deleting)]);
    if let Some(user) = users.first() {
        return Err(Stop::refused(
            format!(
                "pid {} ({}) uses {aside}: {}",
                user.pid, user.command, user.what
            ),
            "stop it, then run --cleanup again",
        ));
    }
    // Removing works on DIR.zpersist-deleting, never on DIR.zpersist-old:
    // the original kept aside is whole or gone, and what an interrupted
    // cleanup leaves under the other name was verified before it got there.
    let interrupted = path_state(&deleting) != PathState::Missing;
    if interrupted && journal.cleanup_started.is_none() {
        return Err(Stop::refused(
            format!(
                "{deleting} exists, but the journal {} records no cleanup that put it there",
                target.journal()
            ),
            "check what it holds and remove it yourself if it can go, then run --cleanup again; nothing was removed",
        ));
    }
    let aside_kept = path_state(&aside).is_dir();
    if !aside_kept && !interrupted && journal.cleanup_started.is_none() {
        return Ok(None);
    }
    Ok(Some(Cleanable {
        journal,
        verified,
        interrupted,
        aside_kept,
    }))
}

/// The kept original must be exactly what was verified into the dataset;
/// how far the dataset moved on since goes into the report.
fn reverify(
    target: &MigrationTarget,
    verified: &TreeSummary,
    options: &Options,
    report: &mut Report,
) -> Result<(), Stop> {
    let aside = target.aside();
    let trees = hash_trees(&[&aside, &target.path], options.progress_every, "cleanup")
        .map_err(|e| Stop::failed(e, "nothing was removed; fix the cause and run again"))?;
    if trees[0].summary().digest != verified.digest {
        return Err(Stop::refused(
            format!("{aside} changed since it was verified identical to the dataset; it may hold data the dataset lacks"),
            format!("compare it with {} yourself; nothing was removed", target.path),
        ));
    }
    let differences = differences(&trees[0], &trees[1]);
    let detail = if differences.is_empty() {
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
    };
    record(report, options, "re-verify", detail);
    Ok(())
}

/// Journals the start of the cleanup, then renames the verified original
/// to `DIR.zpersist-deleting` and removes it.
fn remove_aside(target: &MigrationTarget, mut journal: Journal) -> Result<(), Stop> {
    let (aside, deleting) = (target.aside(), target.deleting());
    if journal.cleanup_started.is_none() {
        journal.cleanup_started = Some(now());
        journal_file(target)
            .write(&journal)
            .map_err(|e| Stop::failed(e.error, e.help))?;
    }
    FAILPOINTS.check("journaled", "cleanup-started");
    fs::rename(&aside, &deleting).map_err(|e| {
        Stop::failed(
            format!("cannot rename {aside} to {deleting}: {e}"),
            "nothing was removed; fix the cause and run --cleanup again",
        )
    })?;
    let _ = sync_dir(parent_of(&aside));
    fs::remove_dir_all(&deleting).map_err(|e| {
        Stop::failed(
            format!("removing {deleting} (the original, verified, moved there to be removed): {e}"),
            "fix the cause and run --cleanup again; it finishes the removal",
        )
    })
}
