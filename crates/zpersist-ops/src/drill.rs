//! The restore drill (docs/drill.md): for each source of a service's
//! preseed plan, its freshest point restored into a scratch dataset no
//! service sees (`<dataset>.zpersist-drill/s<n>`, mounted below
//! /run/zpersist/drill/<service>), checked (holds data; matches the source
//! snapshot's tree for a local snapshot; the profile's SQLite databases
//! pass `PRAGMA integrity_check`; the declared check exits 0), measured
//! (RPO, RTO), and destroyed. The live dataset is never touched: every
//! mutating zfs call names the scratch dataset or below it.
//!
//! Everything the drill makes lies below the scratch dataset, which carries
//! `com.zpersist:drill=<service>` from its `zfs create`; a run cleans a
//! killed run's scratch first, and a dataset by that name without the mark
//! is never touched (the run fails naming it).

use std::path::Path;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use zpersist_core::drill::{DrillPlan, DrillResult, SourceResult, DRILL_VERSION, PROP_DRILL};
use zpersist_core::preseed::{inspect_command, RestorePoint, SourceAnswer, SourceSpec};
use zpersist_host::failpoint::Failpoints;
use zpersist_host::manifest::{differences, hash_trees, holds_data, list_differences};
use zpersist_process::Command;
use zpersist_zfs::dataset::{destroy_retrying, mount_retrying, unmount_retrying};
use zpersist_zfs::Zfs;

use crate::preseed::run::{fail, path_shows, stop_receives_into, Failure};
use crate::preseed::sources;

pub struct Options {
    /// Drill only the source with this label (`local`, `replica:nas`);
    /// the caller checks that the plan has it.
    pub only: Option<String>,
    pub lock_timeout: Duration,
    /// Progress lines on stdout (not with --json).
    pub text: bool,
}

/// `ZPERSIST_DRILL_FAILPOINT=during:check` aborts (as kill -9 would) once
/// a copy is restored and mounted, before it is checked. Tests only.
const FAILPOINTS: Failpoints = Failpoints::new("ZPERSIST_DRILL_FAILPOINT", "zpersist-drill");

use zpersist_host::clock::now;

struct Drill<'a> {
    plan: &'a DrillPlan,
    zfs: Zfs,
    options: &'a Options,
}

/// One run: lock, clean a killed run's leftovers, drill each source, clean
/// up, write the result file and the textfile. A failed drill is
/// `success: false` (exit 1).
/// What went wrong in a drill, as `(error, help)` pairs a binary reports:
/// each failed source (a source the run stopped before repeats the run's
/// error: said once), then the run's own.
pub fn failures(result: &DrillResult) -> Vec<(String, String)> {
    let mut failures: Vec<(String, String)> = result
        .sources
        .iter()
        .filter(|s| !s.success && s.help.is_some())
        .map(|source| {
            (
                format!(
                    "{}: {}: {}",
                    result.service,
                    source.source,
                    source.error.as_deref().unwrap_or("failed")
                ),
                source.help.clone().unwrap_or_default(),
            )
        })
        .collect();
    if let (Some(error), Some(help)) = (&result.error, &result.help) {
        failures.push((error.clone(), help.clone()));
    }
    failures
}

/// The last line of a successful drill: `WHO: SERVICE: every source ...`.
pub fn success_line(result: &DrillResult, who: &str) -> String {
    format!(
        "{who}: {}: every source restored and checked ({})",
        result.service,
        result
            .sources
            .iter()
            .map(|s| format!("{}: RPO {}s", s.source, s.rpo_seconds.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn run(plan: &DrillPlan, options: &Options) -> DrillResult {
    let started = now();
    let mut result = DrillResult {
        version: DRILL_VERSION,
        service: plan.service.clone(),
        dataset: plan.preseed.dataset.clone(),
        started,
        success: false,
        sources: Vec::new(),
        cleaned: Vec::new(),
        error: None,
        help: None,
    };
    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs.with_timeout(Duration::from_secs(plan.preseed.timeout_seconds)),
        Err(e) => {
            result.error = Some(e.to_string());
            result.help = Some("install ZFS (the zfs command) and try again".into());
            return result;
        }
    };
    let drill = Drill { plan, zfs, options };
    if let Err(failure) = drill.main(&mut result) {
        // Every source the run did not reach failed too: the result file
        // and the textfile say so per source (an alert on
        // zpersist_drill_success fires), not by a missing series.
        for source in &plan.preseed.sources {
            let label = source.label();
            let wanted = options.only.as_ref().is_none_or(|only| *only == label);
            if wanted && !result.sources.iter().any(|s| s.source == label) {
                result.sources.push(not_reached(label, &failure.error));
            }
        }
        result.error = Some(failure.error);
        result.help = Some(failure.help);
    }
    result.success = result.error.is_none()
        && !result.sources.is_empty()
        && result.sources.iter().all(|s| s.success);
    if let Err(failure) = write_outputs(plan, &result) {
        if result.error.is_none() {
            result.error = Some(failure.error);
            result.help = Some(failure.help);
        }
        result.success = false;
    }
    result
}

/// A source the run stopped before.
fn not_reached(source: String, error: &str) -> SourceResult {
    SourceResult {
        source,
        success: false,
        point: None,
        point_time: None,
        rpo_seconds: None,
        rto_seconds: 0.0,
        checks: Vec::new(),
        error: Some(format!("the drill stopped before this source: {error}")),
        help: None,
    }
}

/// Writes `contents` to `path` atomically, its directory made first.
fn publish(path: &str, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    zpersist_host::write_atomically(Path::new(path), contents)
}

fn write_outputs(plan: &DrillPlan, result: &DrillResult) -> Result<(), Failure> {
    let path = plan.result_file();
    let text = serde_json::to_vec_pretty(result).expect("a drill result serialises");
    publish(&path, &text).map_err(|e| {
        fail(
            format!("cannot write the result {path}: {e}"),
            format!(
                "make {} writable (it is the unit's StateDirectory)",
                plan.state_dir
            ),
        )
    })?;
    if let Some(textfile) = &plan.textfile {
        let text = zpersist_core::drill::textfile(result, now());
        publish(textfile, text.as_bytes()).map_err(|e| {
            fail(
                format!("cannot write the textfile {textfile}: {e}"),
                "make its directory writable for the drill's unit",
            )
        })?;
    }
    Ok(())
}

impl Drill<'_> {
    fn say(&self, line: String) {
        if self.options.text {
            println!("{line}");
        }
    }

    fn zfs(&self, args: &[&str]) -> Result<String, Failure> {
        self.zfs.run(args).map_err(|e| {
            fail(
                e.to_string(),
                "check the pool (`zpool status`) and run the drill again: it cleans up what this run made first",
            )
        })
    }

    fn main(&self, result: &mut DrillResult) -> Result<(), Failure> {
        let plan = self.plan;
        let lock = Utf8PathBuf::from(format!("{}/{}.lock", plan.state_dir, plan.service));
        let _lock = zpersist_host::lock_within(
            lock.clone(),
            &mut std::io::stderr(),
            self.options.lock_timeout,
        )
        .map_err(|e| {
            fail(
                format!("cannot take the lock {lock}: {e}"),
                "another drill of this service runs (or is stuck); wait for it, or stop it",
            )
        })?;
        // The scratch dataset and all below it are the drill's alone.
        let _scratch = zpersist_host::resource_lock::lock_datasets(
            "zpersist-drill",
            &[&plan.scratch()],
            self.options.lock_timeout,
            &mut std::io::stderr(),
        )?;
        result.cleaned = self.clean()?;
        for name in &result.cleaned {
            self.say(format!("cleaned {name} (left by a run that was stopped)"));
        }
        let scratch = plan.scratch();
        self.zfs(&[
            "create",
            "-o",
            "canmount=noauto",
            "-o",
            &format!("mountpoint={}", plan.scratch_mountpoint()),
            "-o",
            &format!("{PROP_DRILL}={}", plan.service),
            &scratch,
        ])?;
        let only = self
            .options
            .only
            .as_deref()
            .and_then(|label| sources::source_index(&plan.preseed, label).ok());
        let answers = sources::ask(&plan.preseed, &self.zfs, only);
        for (index, (source, answer)) in plan.preseed.sources.iter().zip(&answers).enumerate() {
            let label = source.label();
            if self
                .options
                .only
                .as_ref()
                .is_some_and(|only| *only != label)
            {
                continue;
            }
            let started = Instant::now();
            let mut source_result = SourceResult {
                error: None,
                ..not_reached(label.clone(), "")
            };
            let outcome = self.drill_source(index, answer, &mut source_result, result.started);
            source_result.rto_seconds = started.elapsed().as_secs_f64();
            // The copy goes whatever the checks said: the next source
            // needs the room.
            let removed = self
                .destroy_below(&plan.copy(index))
                .and(self.destroy_below(&plan.origin(index)));
            match outcome.and(removed) {
                Ok(()) => {
                    source_result.success = true;
                    self.say(format!(
                        "drill   {label}: ok, RPO {}s, RTO {:.1}s",
                        source_result.rpo_seconds.unwrap_or_default(),
                        source_result.rto_seconds
                    ));
                }
                Err(failure) => {
                    self.say(format!("drill   {label}: FAILED: {}", failure.error));
                    source_result.error = Some(failure.error);
                    source_result.help = Some(failure.help);
                }
            }
            result.sources.push(source_result);
        }
        self.destroy_below(&scratch)?;
        Ok(())
    }

    /// A scratch dataset left by a killed run: destroyed (with everything
    /// below it) when it carries this service's mark, which it has from
    /// its `zfs create`; anything else by that name is never touched.
    fn clean(&self) -> Result<Vec<String>, Failure> {
        let scratch = self.plan.scratch();
        let props = self.zfs.get(&scratch, &[PROP_DRILL]).map_err(|e| {
            fail(
                e.to_string(),
                "check that ZFS answers (`zpool status`) and run the drill again",
            )
        })?;
        let Some(props) = props else {
            return Ok(Vec::new());
        };
        if props.get(PROP_DRILL) != Some(&self.plan.service) {
            let mark = match props.get(PROP_DRILL).map(String::as_str) {
                None | Some("-") => "no such mark".to_string(),
                Some(other) => format!("`{other}`"),
            };
            return Err(fail(
                format!(
                    "{scratch} is in the drill's way and is not the drill's own for {}: it does not carry {PROP_DRILL}={} (it has {mark}); nothing was done to it",
                    self.plan.service, self.plan.service
                ),
                format!(
                    "see whose it is: `{}`; rename it (or remove it, if it is not needed) yourself, then run the drill again",
                    inspect_command(&scratch)
                ),
            ));
        }
        for index in 0..self.plan.preseed.sources.len() {
            stop_receives_into(&self.plan.copy(index));
        }
        let names = self.below(&scratch)?;
        self.destroy_below(&scratch)?;
        Ok(names)
    }

    /// `name` and everything below it (snapshots included), as zfs lists them.
    fn below(&self, name: &str) -> Result<Vec<String>, Failure> {
        match self
            .zfs
            .run(&["list", "-H", "-r", "-t", "all", "-o", "name", name])
        {
            Ok(out) => Ok(out.lines().map(str::to_string).collect()),
            Err(e) if zpersist_zfs::says_dataset_missing(e.stderr()) => Ok(Vec::new()),
            Err(e) => Err(fail(
                e.to_string(),
                "check that ZFS answers (`zpool status`) and run the drill again",
            )),
        }
    }

    /// Destroys `name` and everything below it: snapshots first, then the
    /// deepest filesystems (each unmounted, retried while busy). Only ever
    /// called on the scratch dataset or below it.
    fn destroy_below(&self, name: &str) -> Result<(), Failure> {
        debug_assert!(name.starts_with(&self.plan.scratch()));
        let mut names = self.below(name)?;
        names.sort_by_key(|n| (!n.contains('@'), std::cmp::Reverse(n.matches('/').count())));
        for name in names {
            destroy_retrying(&self.zfs, &name).map_err(|e| {
                fail(
                    format!("cannot destroy the drill's {name}: {e}"),
                    "something holds it open (a shell in /run/zpersist/drill?); stop it and run the drill again: it cleans up first",
                )
            })?;
        }
        Ok(())
    }

    fn drill_source(
        &self,
        index: usize,
        answer: &SourceAnswer,
        result: &mut SourceResult,
        started: i64,
    ) -> Result<(), Failure> {
        let plan = self.plan;
        let preseed = &plan.preseed;
        let label = &result.source.clone();
        let points = match answer {
            SourceAnswer::Failed { error } => return Err(fail(
                format!("{label}: could not be asked: {error}"),
                "fix the source (the error says how); a restore from it would fail the same way",
            )),
            SourceAnswer::Points { points } => points,
        };
        // The freshest; on a tie, the first listed.
        let Some(point) = points.iter().rev().max_by_key(|p| p.created).cloned() else {
            return Err(fail(
                format!("{label}: holds no restore point"),
                "this source could not restore the service: see its replication or backup unit",
            ));
        };
        result.point = Some(point.label.clone());
        result.point_time = Some(point.created);
        result.rpo_seconds = Some(started - point.created);
        self.say(format!("restore {} into {}", point.label, plan.copy(index)));
        let copy = plan.copy(index);
        let mountpoint = format!("{}/s{index}", plan.scratch_mountpoint());
        self.fill(&point, &copy, &mountpoint)?;
        FAILPOINTS.check("during", "check");
        let root = Path::new(&mountpoint);
        let holds = holds_data(root).map_err(|e| {
            fail(
                format!("cannot read the restored copy {mountpoint}: {e}"),
                "check the copy's pool; run the drill again",
            )
        })?;
        if !holds {
            return Err(fail(
                format!("{}: the restored copy holds no data", point.label),
                "this point would restore an empty service: check what the source backs up (its path, its dataset)",
            ));
        }
        result.checks.push("holds data".into());
        if matches!(preseed.sources[index], SourceSpec::Local(_)) {
            result
                .checks
                .push(self.matches_snapshot(index, &point, &mountpoint)?);
        }
        for db in &plan.sqlite {
            result.checks.push(self.integrity_check(&mountpoint, db)?);
        }
        if let Some(check) = &plan.check {
            result.checks.push(self.declared_check(check, &mountpoint)?);
        }
        Ok(())
    }

    /// Restores the point into `copy`, mounted on `mountpoint` (a path that
    /// shows it, checked): a snapshot point is received, a restic point
    /// restored into a new dataset.
    fn fill(&self, point: &RestorePoint, copy: &str, mountpoint: &str) -> Result<(), Failure> {
        let preseed = &self.plan.preseed;
        // An encrypted dataset's points are sent raw and the copy unlocked
        // with the live root's key, as preseed does (docs/encryption.md).
        let live = crate::preseed::encrypted::live(&self.zfs, &preseed.dataset)?;
        match sources::send_command(preseed, point, &self.zfs, live.is_some()) {
            Some(send) => {
                if let Some(live) = &live {
                    live.key_ready(&preseed.dataset)?;
                }
                send.pipe(self.zfs.receive(copy, &["-u"]))
                    .pump(&mut |_| {})
                    .map_err(|e| {
                        fail(
                            format!("receiving {} into {copy}: {e}", point.label),
                            "the source or this pool failed mid-stream: a restore from it would fail the same way",
                        )
                    })?;
                if let Some(live) = &live {
                    live.unlock(&self.zfs, &preseed.dataset, copy, &point.label)?;
                }
                self.zfs(&["set", "canmount=noauto", copy])?;
                self.mount(copy, mountpoint)?;
            }
            None => {
                self.zfs(&["create", "-o", "canmount=noauto", copy])?;
                self.mount(copy, mountpoint)?;
                sources::restic_into(preseed, point, Path::new(mountpoint)).map_err(|e| {
                    fail(
                        e,
                        "check the repository, its password and credential files: a restore from it would fail the same way",
                    )
                })?;
            }
        }
        Ok(())
    }

    fn mount(&self, dataset: &str, mountpoint: &str) -> Result<(), Failure> {
        mount_retrying(&self.zfs, dataset).map_err(|e| {
            fail(
                format!("cannot mount {dataset}: {e}"),
                "see zfs's message; fix it and run the drill again",
            )
        })?;
        path_shows(dataset, mountpoint, "the drill did not read there")
    }

    /// The local snapshot's own tree (a clone of it, below the scratch
    /// dataset) hashed against the received copy: what a restore gives is
    /// what the snapshot holds.
    fn matches_snapshot(
        &self,
        index: usize,
        point: &RestorePoint,
        copy_mnt: &str,
    ) -> Result<String, Failure> {
        let origin = self.plan.origin(index);
        let origin_mnt = format!("{}/o{index}", self.plan.scratch_mountpoint());
        self.zfs(&["clone", "-o", "canmount=noauto", &point.reference, &origin])?;
        self.mount(&origin, &origin_mnt)?;
        let trees = hash_trees(&[&origin_mnt, copy_mnt], Duration::from_secs(10), "drill")
            .map_err(|e| {
                fail(
                    format!("cannot hash the trees: {e}"),
                    "check the pool; run the drill again",
                )
            })?;
        let found = differences(&trees[0], &trees[1]);
        let _ = unmount_retrying(&self.zfs, &origin);
        if !found.is_empty() {
            return Err(fail(
                format!(
                    "{}: the restored copy differs from the snapshot: {}",
                    point.label,
                    list_differences(&found)
                ),
                "a restore from this snapshot does not give back what it holds: check the pool (`zpool status -v`) and the zfs send/receive path",
            ));
        }
        Ok(format!(
            "manifest: {} entries match {}",
            trees[1].entries.len(),
            point.reference
        ))
    }

    /// `PRAGMA integrity_check` on one of the profile's databases in the
    /// copy, bounded; anything but `ok` fails.
    fn integrity_check(&self, copy_mnt: &str, db: &str) -> Result<String, Failure> {
        let path = Path::new(copy_mnt).join(db);
        if !path.is_file() {
            return Err(fail(
                format!("{db}: the profile's database is not in the restored copy ({})", path.display()),
                "the source does not hold the application's database: check what it backs up, or the service's profile",
            ));
        }
        let out = Command::from_argv(&[
            "sqlite3".as_ref(),
            "-readonly".as_ref(),
            path.as_os_str(),
            "PRAGMA integrity_check;".as_ref(),
        ])
        .timeout(Duration::from_secs(self.plan.check_timeout_seconds))
        .output()
        .map_err(|e| {
            fail(
                format!("{db}: {}", e.message()),
                "install sqlite3 (the unit's path has it) and run the drill again",
            )
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || stdout != "ok" {
            let said = if stdout.is_empty() {
                String::from_utf8_lossy(&out.stderr).trim().to_string()
            } else {
                stdout
            };
            return Err(fail(
                format!(
                    "{db}: PRAGMA integrity_check fails on the restored copy: {}",
                    zpersist_core::shown(&said.lines().take(5).collect::<Vec<_>>().join("; "))
                ),
                "the source holds a damaged database: restoring from it would start the service on it; check the live database too (`sqlite3 FILE 'PRAGMA integrity_check;'`) and the backup's consistency (stop or snapshot the service while it is backed up)",
            ));
        }
        Ok(format!("sqlite: {db}: integrity_check ok"))
    }

    /// The declared check, run in the copy's root, bounded.
    fn declared_check(&self, check: &[String], copy_mnt: &str) -> Result<String, Failure> {
        let shown = zpersist_process::display_argv(check);
        let out = Command::from_argv(check)
            .current_dir(copy_mnt)
            .env("ZPERSIST_DRILL_COPY", copy_mnt)
            .timeout(Duration::from_secs(self.plan.check_timeout_seconds))
            .output()
            .map_err(|e| {
                fail(
                    format!("the check `{shown}`: {}", e.message()),
                    "fix zpersist.services.<name>.drill.check",
                )
            })?;
        if !out.status.success() {
            return Err(fail(
                format!(
                    "the check `{shown}` failed on the restored copy ({}): {}",
                    out.status,
                    zpersist_core::shown(out.stderr_text().trim())
                ),
                "the restored data does not pass the service's own check: see what it says, then the source",
            ));
        }
        Ok(format!("check: `{shown}` exited 0"))
    }
}
