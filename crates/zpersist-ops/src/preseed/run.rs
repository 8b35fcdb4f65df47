//! One run: lock, look, decide, and (when data is missing) walk the restore
//! steps zpersist_core::preseed gives, journaling each.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use serde::Serialize;
use zpersist_core::mounted::{path_view, PathView};
use zpersist_core::observed::HostFacts;
use zpersist_core::plan::parse_mode;
use zpersist_core::preseed::{
    decide, inspect_command, next_step, Decision, Journal, OwnerIds, PreseedPlan, RestorePoint,
    SourceSpec, Stage, Step, SwapFacts, PROP_ASIDE, PROP_AT, PROP_PRESEED, PROP_SIBLING,
    PROP_SOURCE,
};
use zpersist_core::property::is_create_only;
use zpersist_core::text::human_bytes;
use zpersist_core::time::rfc3339;
use zpersist_host::failpoint::Failpoints;
use zpersist_host::inuse::{mount_showing, processes_running, processes_using, stop_processes};
use zpersist_host::manifest::{holds_data, look_for_data};
use zpersist_host::path::resolved;
use zpersist_host::steps::JournalFile;
use zpersist_zfs::dataset::{mount_retrying, run_retrying, unmount_retrying};
use zpersist_zfs::pool::Zpool;
use zpersist_zfs::Zfs;

use super::sources;

/// Marks a filled sibling with the point it holds (its completeness).
const PROP_FILLED: &str = "com.zpersist:preseed-filled";
/// What a PITR restore replayed (`base backup X + last WAL replayed Y`).
const PROP_PROVENANCE: &str = "com.zpersist:preseed-provenance";

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub service: String,
    pub dataset: String,
    /// existing, fresh, restored, would-restore, would-be-fresh, refused
    /// (data there, a restore by hand without `--replace`), failed
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub sources: Vec<SourceReport>,
    pub skipped_empty: Vec<String>,
    pub warnings: Vec<String>,
    pub steps: Vec<String>,
    /// What the same restore is by hand (the runbook's commands).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_hand: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Report {
    /// What each source answered, one line each (the text a person reads
    /// after the steps).
    pub fn source_lines(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|source| match (&source.error, &source.newest) {
                (Some(error), _) => {
                    format!("source  {}: could not be asked: {error}", source.source)
                }
                (None, Some(newest)) => format!(
                    "source  {}: {} point(s), newest {newest}",
                    source.source, source.points
                ),
                (None, None) => format!("source  {}: no point that may hold data", source.source),
            })
            .collect()
    }

    /// Shows the report through the binary's reporter (preseed-restore,
    /// `zpersist restore`, `zpersist preseed`): the JSON document, or each
    /// source's answer and the warnings; then its error (exit 1), or the
    /// outcome line `WHO: SERVICE: OUTCOME` (exit 0).
    pub fn print(
        &self,
        reporter: &mut zpersist_report::Reporter,
        who: &str,
    ) -> std::process::ExitCode {
        if reporter.json() {
            reporter.document(self);
        } else {
            for line in self.source_lines() {
                println!("{line}");
            }
            for warning in &self.warnings {
                eprintln!("warning: {warning}");
            }
        }
        if let (Some(error), Some(help)) = (&self.error, &self.help) {
            reporter.fail(error, help);
            return reporter.exit_code();
        }
        if !reporter.json() {
            println!("{}", self.outcome_line(who));
        }
        std::process::ExitCode::SUCCESS
    }

    /// The last line: `WHO: SERVICE: OUTCOME[ from SOURCE]`.
    pub fn outcome_line(&self, who: &str) -> String {
        format!(
            "{who}: {}: {}{}",
            self.service,
            self.outcome,
            self.source
                .as_deref()
                .map(|s| format!(" from {s}"))
                .unwrap_or_default()
        )
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    pub source: String,
    pub points: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub lock_timeout: Duration,
    /// Lines of progress go here (`None` with --json).
    pub text: bool,
    /// Restore only from this declared source (its label: `local`,
    /// `replica:nas`, `restic:b2`, `pitr`); `None`: the freshest of all.
    pub from: Option<String>,
    /// Restore even though the dataset holds data (a restore by hand,
    /// `zpersist restore --replace`): that data is moved aside, as an
    /// empty dataset is, kept and never destroyed.
    pub replace: bool,
    /// A restore a person asked for (`zpersist restore`), not a unit's
    /// check before a start: data there is refused (outcome `refused`,
    /// the help naming `--replace`) and nothing is recorded on it; no
    /// point to restore is a failure, never `fresh`.
    pub by_hand: bool,
}

/// A step failed: what, and what to do (the host adapters' one shape).
pub(crate) use zpersist_host::Failure;

pub(crate) fn fail(error: impl Into<String>, help: impl Into<String>) -> Failure {
    Failure {
        error: error.into(),
        help: help.into(),
    }
}

use zpersist_host::clock::now;

/// `ZPERSIST_PRESEED_FAILPOINT=after:STEP` aborts right after STEP's effect,
/// before the journal records it; `journaled:STAGE` right after it does;
/// `during:fill` once the stream into the sibling has begun;
/// `during:ownership` once the ownership fix-up changed two entries (the
/// root first). Tests only.
const FAILPOINTS: Failpoints = Failpoints::new("ZPERSIST_PRESEED_FAILPOINT", "preseed-restore");

fn failpoint(when: &str, step: &str) {
    FAILPOINTS.check(when, step);
}

struct Run<'a> {
    plan: &'a PreseedPlan,
    zfs: Zfs,
    options: &'a Options,
    report: Report,
}

impl Run<'_> {
    fn say(&mut self, line: String) {
        if self.options.text {
            println!("{line}");
        }
        self.report.steps.push(line);
    }

    fn journal_path(&self) -> PathBuf {
        Path::new(&self.plan.state_dir).join(format!("{}.json", self.plan.service))
    }

    fn private_mount(&self) -> String {
        format!("{}/{}.mnt", self.plan.state_dir, self.plan.service)
    }

    fn zfs(&self, args: &[&str]) -> Result<String, Failure> {
        self.zfs.run(args).map_err(|e| {
            fail(
                e.to_string(),
                "check the pool (`zpool status`) and run the service's start again: the restore resumes where it stopped",
            )
        })
    }

    /// `zfs get` of some properties of one dataset; `None` if it is missing.
    fn props(
        &self,
        dataset: &str,
        properties: &[&str],
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, Failure> {
        self.zfs.get(dataset, properties).map_err(|e| {
            fail(
                e.to_string(),
                "check that ZFS answers (`zpool status`) and start the service again",
            )
        })
    }

    fn exists(&self, dataset: &str) -> Result<bool, Failure> {
        Ok(self.props(dataset, &["type"])?.is_some())
    }

    /// zfs-fuse (and a busy OpenZFS) answer "dataset is busy" for a moment
    /// after an unmount: zpersist-zfs retries, bounded.
    fn zfs_busy_retry(&self, args: &[&str]) -> Result<(), Failure> {
        run_retrying(&self.zfs, args).map_err(|e| {
            fail(
                e.to_string(),
                "something holds the dataset open; stop it and start the service again: the restore resumes",
            )
        })
    }

    fn unmount(&self, dataset: &str) -> Result<(), Failure> {
        unmount_retrying(&self.zfs, dataset).map_err(|e| {
            fail(
                format!("cannot unmount {dataset}: {e}"),
                "something holds it open; stop it and start the service again: the restore resumes",
            )
        })
    }

    /// Mounts the sibling on its private path, and waits (bounded) for
    /// that path to show it: restored files never go to, and a check never
    /// reads, the directory beneath or a cover.
    fn mount_sibling(&self) -> Result<(), Failure> {
        let sibling = self.plan.sibling();
        mount_retrying(&self.zfs, &sibling).map_err(|e| {
            fail(
                format!("cannot mount {sibling}: {e}"),
                "see zfs's message; fix it and start the service again: the restore resumes",
            )
        })?;
        path_shows(
            &sibling,
            &self.private_mount(),
            "the restore did not read or write there; it resumes on the next start",
        )
    }

    /// Destroys the sibling, only if it carries preseed's mark with this
    /// service's name: anything else by that name is left as it is.
    fn clear_sibling(&mut self) -> Result<(), Failure> {
        let sibling = self.plan.sibling();
        let Some(props) = self.props(&sibling, &[PROP_SIBLING])? else {
            return Ok(());
        };
        if props.get(PROP_SIBLING) != Some(&self.plan.service) {
            return Err(self.not_ours(&sibling, props.get(PROP_SIBLING)));
        }
        self.unmount(&sibling)?;
        self.zfs_busy_retry(&["destroy", "-r", &sibling])?;
        Ok(())
    }

    /// A dataset in preseed's way that is not its own: what it is, and the
    /// command that shows whose it is.
    fn not_ours(&self, dataset: &str, mark: Option<&String>) -> Failure {
        let mark = match mark.map(String::as_str) {
            None | Some("-") => "no such mark".to_string(),
            Some(other) => format!("`{other}`"),
        };
        fail(
            format!(
                "{dataset} is in the restore's way and is not preseed's own for {}: it does not carry {PROP_SIBLING}={} (it has {mark}); nothing was done to it",
                self.plan.service, self.plan.service
            ),
            format!(
                "see whose it is: `{}`; rename it (or remove it, if it is not needed) yourself, then start the service again{}",
                inspect_command(dataset),
                self.partial_receive_help(dataset)
            ),
        )
    }

    /// A dataset holding only a cut-short resumable receive (OpenZFS's
    /// `receive_resume_token`; zfs-fuse has none): how to discard it.
    fn partial_receive_help(&self, dataset: &str) -> String {
        let token = self
            .zfs
            .get(dataset, &["receive_resume_token"])
            .ok()
            .flatten()
            .and_then(|p| p.get("receive_resume_token").cloned())
            .filter(|t| !t.is_empty() && t != "-");
        match token {
            Some(_) => format!(
                "; it holds a partial receive (receive_resume_token is set): if no `zfs receive` of yours still runs into it, discard it with `zfs receive -A {dataset}`"
            ),
            None => String::new(),
        }
    }

    fn facts(&mut self, journal: &Journal) -> Result<SwapFacts, Failure> {
        let sibling = self.plan.sibling();
        if journal.stage == Stage::Chosen {
            // A `zfs receive` into the sibling left running by a run that
            // was killed mid-stream: stopped before the sibling is looked at.
            stop_receives_into(&sibling);
        }
        let service = self.plan.service.clone();
        let marked = |props: &Option<std::collections::BTreeMap<String, String>>| {
            props
                .as_ref()
                .is_some_and(|p| p.get(PROP_SIBLING) == Some(&service))
        };
        let mut props = self.props(&sibling, &[PROP_FILLED, PROP_SIBLING])?;
        if journal.stage == Stage::Chosen && props.is_some() && !marked(&props) {
            self.adopt_received(journal)?;
            props = self.props(&sibling, &[PROP_FILLED, PROP_SIBLING])?;
        }
        let ours = marked(&props);
        let filled = props.as_ref().and_then(|p| p.get(PROP_FILLED).cloned());
        Ok(SwapFacts {
            dataset_exists: self.exists(&self.plan.dataset)?,
            sibling_exists: props.is_some(),
            sibling_ours: ours,
            sibling_complete: ours && filled.as_deref() == Some(journal.point.label.as_str()),
            aside_exists: match &journal.aside {
                Some(aside) => self.exists(aside)?,
                None => false,
            },
        })
    }

    /// The journal file, written and read as migrate's is
    /// (zpersist_host::steps::JournalFile: atomic, every error naming it).
    fn journal_file(&self) -> JournalFile {
        JournalFile::new(self.journal_path(), "preseed journal")
    }

    fn write_journal(&self, journal: &Journal) -> Result<(), Failure> {
        self.journal_file().write(journal).map_err(|f| {
            fail(
                f.error,
                format!(
                    "{} (the state directory {} is the unit's StateDirectory)",
                    f.help, self.plan.state_dir
                ),
            )
        })
    }

    fn read_journal(&self) -> Result<Option<Journal>, Failure> {
        self.journal_file().read().map_err(|e| {
            fail(
                e,
                "it records a restore in progress: look at it, finish or undo that restore by hand (docs/runbooks/restore-service.md), then remove it",
            )
        })
    }

    /// Fills the sibling from the journal's point.
    fn fill(&mut self, journal: &Journal) -> Result<(), Failure> {
        let sibling = self.plan.sibling();
        let point = &journal.point;
        let private = self.private_mount();
        // Encrypted: kept so, with its own key (preseed/encrypted.rs).
        let live = super::encrypted::live(&self.zfs, &self.plan.dataset)?;
        if let Some(live) = &live {
            live.key_ready(&self.plan.dataset)?;
        }
        match sources::send_command(self.plan, point, &self.zfs, live.is_some()) {
            Some(send) => {
                self.say(format!("fill    {sibling} from {}", point.label));
                let receive = self.zfs.receive(&sibling, &["-u"]);
                // The stream is copied through here, so that progress can
                // be shown in bytes (and a test can crash mid-stream); both
                // exit statuses are checked, the error names the side.
                let progress = self.options.text;
                let started = Instant::now();
                let mut last = Instant::now();
                let mut failpoint_pending = true;
                send.pipe(receive)
                    .pump(&mut |total| {
                        if failpoint_pending {
                            failpoint_pending = false;
                            failpoint("during", "fill");
                        }
                        if progress && last.elapsed() >= Duration::from_secs(5) {
                            last = Instant::now();
                            let secs = started.elapsed().as_secs_f64().max(0.001);
                            println!(
                                "        {} received ({}/s)",
                                human_bytes(total),
                                human_bytes((total as f64 / secs) as u64)
                            );
                        }
                    })
                    .map_err(|e| {
                        fail(
                            format!("receiving {} into {sibling}: {e}", point.label),
                            "the source or this pool failed mid-stream; fix it and start the service again: the restore starts this stream over",
                        )
                    })?;
                failpoint("after", "receive");
                self.mark_received()?;
                if let Some(live) = &live {
                    live.unlock(&self.zfs, &self.plan.dataset, &sibling, &point.label)?;
                }
            }
            None => {
                let is_pitr = matches!(self.plan.sources[point.source], SourceSpec::Pitr(_));
                self.say(format!(
                    "fill    {sibling} from {} ({})",
                    point.label,
                    if is_pitr {
                        "PITR: the base backup and every archived WAL segment"
                    } else {
                        "restic"
                    }
                ));
                let encrypted = live
                    .as_ref()
                    .map(|l| l.create_options(&self.plan.dataset))
                    .unwrap_or_default();
                let mut create: Vec<&str> = vec!["create"];
                create.extend(encrypted.iter().map(String::as_str));
                let (mountpoint, mark) = (
                    format!("mountpoint={private}"),
                    format!("{PROP_SIBLING}={}", self.plan.service),
                );
                create.extend([
                    "-o",
                    "canmount=noauto",
                    "-o",
                    &mountpoint,
                    "-o",
                    &mark,
                    &sibling,
                ]);
                self.zfs(&create)?;
                self.mount_sibling()?;
                if is_pitr {
                    let provenance = sources::pitr_into(self.plan, point, Path::new(&private)).map_err(|e| {
                        fail(e, "check the PITR repository (docs/postgresql-pitr.md), then start the service again")
                    })?;
                    self.say(format!("        recovered: {provenance}"));
                    self.zfs(&["set", &format!("{PROP_PROVENANCE}={provenance}"), &sibling])?;
                } else {
                    sources::restic_into(self.plan, point, Path::new(&private)).map_err(|e| {
                        fail(e, "check the repository, its password and credential files, then start the service again")
                    })?;
                }
                self.unmount(&sibling)?;
            }
        }
        self.zfs(&["set", &format!("{PROP_FILLED}={}", point.label), &sibling])?;
        Ok(())
    }

    /// What a received sibling gets right after the stream: preseed's mark,
    /// and a private mountpoint.
    fn mark_received(&self) -> Result<(), Failure> {
        let sibling = self.plan.sibling();
        self.zfs(&[
            "set",
            &format!("{PROP_SIBLING}={}", self.plan.service),
            &sibling,
        ])?;
        self.zfs(&["set", "canmount=noauto", &sibling])?;
        self.zfs(&[
            "set",
            &format!("mountpoint={}", self.private_mount()),
            &sibling,
        ])?;
        Ok(())
    }

    /// A run killed between the end of the stream and the mark leaves the
    /// sibling unmarked: it is this restore's only if it holds the
    /// journal's point itself (its snapshot, with the source snapshot's
    /// guid) and was made after the restore began. Then it is marked and
    /// used; anything else is left alone ([`Step::NotOurs`]).
    fn adopt_received(&mut self, journal: &Journal) -> Result<(), Failure> {
        let sibling = self.plan.sibling();
        let point = &journal.point;
        let Some((source_dataset, snapshot)) = point.reference.split_once('@') else {
            return Ok(());
        };
        let Some(source) = sources::point_zfs(self.plan, point, &self.zfs) else {
            return Ok(());
        };
        let Some(props) = self.props(&sibling, &[PROP_SIBLING, "creation"])? else {
            return Ok(());
        };
        let unmarked = props.get(PROP_SIBLING).is_none_or(|v| v == "-");
        let made_since = props
            .get("creation")
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c >= journal.started_at);
        if !unmarked || !made_since {
            return Ok(());
        }
        // `zfs get` of a snapshot is not parsed (zpersist_zfs::parse_get
        // drops snapshot rows): the listings, which carry guids.
        let guid = |zfs: &Zfs, dataset: &str| {
            zfs.snapshots(dataset)
                .ok()
                .flatten()
                .and_then(|all| all.into_iter().find(|s| s.name == snapshot))
                .map(|s| s.guid)
        };
        let received = guid(&self.zfs, &sibling);
        if received.is_none() || received != guid(&source, source_dataset) {
            return Ok(());
        }
        self.say(format!(
            "adopt   {sibling}: it holds {} (received before a run was killed)",
            point.label
        ));
        self.mark_received()?;
        if let Some(live) = super::encrypted::live(&self.zfs, &self.plan.dataset)? {
            live.unlock(&self.zfs, &self.plan.dataset, &sibling, &point.label)?;
        }
        self.zfs(&["set", &format!("{PROP_FILLED}={}", point.label), &sibling])?;
        Ok(())
    }

    /// Mounts the sibling privately: does it hold data?
    fn verify(&mut self) -> Result<bool, Failure> {
        let sibling = self.plan.sibling();
        let private = self.private_mount();
        self.mount_sibling()?;
        let holds = holds_data(Path::new(&private)).map_err(|e| {
            fail(
                format!("cannot read {private} (the restored data): {e}"),
                "check the sibling dataset by hand",
            )
        });
        self.unmount(&sibling)?;
        holds
    }

    fn move_aside(&mut self, journal: &mut Journal) -> Result<(), Failure> {
        let dataset = &self.plan.dataset;
        // The service has not started: nothing may have appeared, but
        // never move data aside on a guess. The same look as before the
        // restore, on the dataset itself; only a dataset this step already
        // began to move (marked, then unmounted) is not looked at again.
        let props = self
            .props(dataset, &["mounted", "mountpoint", PROP_ASIDE])?
            .unwrap_or_default();
        let half_moved = props.get(PROP_ASIDE) == Some(&self.plan.service)
            && props.get("mounted").map(String::as_str) != Some("yes");
        if !half_moved && !journal.replace {
            if let Some(what) = self.data_held(&props)? {
                return Err(fail(
                    format!("{what} now; nothing was swapped"),
                    format!("something wrote there while the restore ran; look at it, and remove the journal {} if that data is right", self.journal_path().display()),
                ));
            }
        }
        let mut at = now();
        let mut aside = self.plan.aside(at);
        while self.exists(&aside)? {
            at += 1;
            aside = self.plan.aside(at);
        }
        self.say(format!(
            "aside   {dataset} -> {aside} ({}; kept, never destroyed)",
            if journal.replace {
                "the data it held, replaced"
            } else {
                "empty"
            }
        ));
        // Unmounted by its mountpoint going away, so that the rename has
        // nothing to unmount or remount (zfs-fuse calls a renamed mounted
        // dataset busy, and OpenZFS would remount it where the service
        // reads). Marked first: the aside is known as preseed's own.
        self.zfs(&[
            "set",
            &format!("{PROP_ASIDE}={}", self.plan.service),
            dataset,
        ])?;
        self.zfs(&["set", "canmount=noauto", dataset])?;
        self.zfs_busy_retry(&["set", "mountpoint=none", dataset])?;
        self.unmount(dataset)?;
        self.zfs_busy_retry(&["rename", dataset, &aside])?;
        journal.aside = Some(aside);
        Ok(())
    }

    fn swap_in(&mut self) -> Result<(), Failure> {
        let sibling = self.plan.sibling();
        self.say(format!("swap    {sibling} -> {}", self.plan.dataset));
        self.zfs_busy_retry(&["rename", &sibling, &self.plan.dataset])
    }

    fn finish(&mut self, journal: &mut Journal) -> Result<(), Failure> {
        let dataset = self.plan.dataset.clone();
        for (property, value) in &self.plan.properties {
            if is_create_only(property) {
                continue;
            }
            if let Err(e) = self
                .zfs
                .run(&["set", &format!("{property}={value}"), &dataset])
            {
                self.report.warnings.push(format!("{dataset}: could not set {property}={value}: {e} (ensure-datasets reports it too)"));
            }
        }
        let provenance = self
            .props(&dataset, &[PROP_PROVENANCE])?
            .and_then(|p| p.get(PROP_PROVENANCE).cloned())
            .filter(|v| v != "-");
        for property in [PROP_FILLED, PROP_SIBLING, PROP_PROVENANCE, PROP_ASIDE] {
            self.zfs(&["inherit", property, &dataset])?;
        }
        self.zfs(&[
            "set",
            &format!("mountpoint={}", self.plan.mountpoint),
            &dataset,
        ])?;
        self.zfs(&["set", "canmount=on", &dataset])?;
        if self
            .props(&dataset, &["mounted"])?
            .and_then(|p| p.get("mounted").cloned())
            .as_deref()
            != Some("yes")
        {
            self.zfs_busy_retry(&["mount", &dataset])?;
        }
        if let Some(aside) = journal.aside.clone() {
            let mark = self
                .props(&aside, &[PROP_ASIDE])?
                .and_then(|p| p.get(PROP_ASIDE).cloned());
            if mark.as_ref() == Some(&self.plan.service) {
                self.zfs(&["set", "mountpoint=none", &aside])?;
            }
        }
        // Owner, group and mode go to the dataset's files, never to a cover
        // or to the directory beneath it.
        self.path_shows_dataset(
            "its owner, group and mode were not set; the restore resumes there",
        )?;
        self.ownership(journal)?;
        self.zfs(&["set", &format!("{PROP_PRESEED}=restored"), &dataset])?;
        let source = match provenance {
            Some(provenance) => format!("pitr:{provenance}"),
            None => journal.point.label.clone(),
        };
        self.zfs(&["set", &format!("{PROP_SOURCE}={source}"), &dataset])?;
        self.zfs(&["set", &format!("{PROP_AT}={}", rfc3339(now())), &dataset])?;
        Ok(())
    }

    /// The declared owner, group and mode on the root; files the restored
    /// data's owner had (a uid from another host) go to the declared owner.
    /// That owner is journaled before anything changes, so a run killed
    /// mid-way finishes the whole tree on the next start.
    fn ownership(&mut self, journal: &mut Journal) -> Result<(), Failure> {
        let root = Path::new(&self.plan.mountpoint);
        let host = zpersist_host::RealHost::new();
        let meta = fs::symlink_metadata(root).map_err(|e| {
            fail(
                format!("cannot read {}: {e}", root.display()),
                "check the mount",
            )
        })?;
        let uid = match &self.plan.owner {
            Some(owner) => Some(host.user_id(owner).ok_or_else(|| {
                fail(
                    format!("owner `{owner}` is not a user on this host"),
                    "create the user (users.users on NixOS), then start the service again",
                )
            })?),
            None => None,
        };
        let gid = match &self.plan.group {
            Some(group) => Some(host.group_id(group).ok_or_else(|| {
                fail(
                    format!("group `{group}` is not a group on this host"),
                    "create the group, then start the service again",
                )
            })?),
            None => None,
        };
        let from = match journal.owners_from {
            Some(from) => from,
            None => {
                let from = OwnerIds {
                    uid: meta.uid(),
                    gid: meta.gid(),
                };
                journal.owners_from = Some(from);
                self.write_journal(journal)?;
                from
            }
        };
        let remap_uid = uid
            .filter(|&new| new != from.uid)
            .map(|new| (from.uid, new));
        let remap_gid = gid
            .filter(|&new| new != from.gid)
            .map(|new| (from.gid, new));
        if remap_uid.is_some() || remap_gid.is_some() {
            let during = &mut |changed: usize| {
                if changed == 2 {
                    failpoint("during", "ownership");
                }
            };
            let changed = zpersist_host::remap_ownership(root, remap_uid, remap_gid, during)
                .map_err(|e| {
                    fail(
                        format!("correcting ownership under {}: {e}", root.display()),
                        "fix the ownership by hand (chown -R), then start the service again",
                    )
                })?;
            self.say(format!(
                "owners  {changed} entries from uid/gid {}/{} to {}/{} (the restored data came from a host where the ids differ)",
                from.uid,
                from.gid,
                uid.unwrap_or(from.uid),
                gid.unwrap_or(from.gid)
            ));
        }
        zpersist_host::set_ownership(
            root,
            uid,
            gid,
            self.plan.mode.as_deref().and_then(parse_mode),
        )
        .map_err(|e| {
            fail(
                format!("setting owner/group/mode of {}: {e}", root.display()),
                "fix it by hand, then start the service again",
            )
        })
    }

    /// Walks the restore steps from `journal` until done; a point that
    /// turns out empty makes way for the next candidate.
    fn walk(&mut self, mut journal: Journal, mut rest: Vec<RestorePoint>) -> Result<(), Failure> {
        loop {
            let facts = self.facts(&journal)?;
            let step = next_step(&journal, facts);
            match step {
                Step::Fill { clear_partial } => {
                    if clear_partial {
                        self.say(format!("clear   {} (an unfinished fill)", self.plan.sibling()));
                        self.clear_sibling()?;
                    }
                    self.fill(&journal)?;
                    failpoint("after", "fill");
                }
                Step::Verify => {
                    let holds = self.verify()?;
                    failpoint("after", "verify");
                    if !holds {
                        self.say(format!("skip    {}: it holds no data (a snapshot of an emptied dataset)", journal.point.label));
                        self.clear_sibling()?;
                        journal.skipped_empty.push(journal.point.label.clone());
                        self.report.skipped_empty.push(journal.point.label.clone());
                        let Some(next) = (!rest.is_empty()).then(|| rest.remove(0)) else {
                            let _ = fs::remove_file(self.journal_path());
                            return Err(fail(
                                "every restore point that might hold data turned out empty once received",
                                "the sources hold only snapshots of an emptied dataset; restore an older snapshot by hand (docs/runbooks/restore-service.md) or, if the service should start empty, set its preseed.enable = false",
                            ));
                        };
                        if let Err(failure) = self.names_fit(&next) {
                            let _ = fs::remove_file(self.journal_path());
                            return Err(failure);
                        }
                        journal.point = next;
                        journal.stage = Stage::Chosen;
                        self.write_journal(&journal)?;
                        continue;
                    }
                    self.say(format!("verify  {}: holds data", self.plan.sibling()));
                    journal.stage = Stage::Filled;
                }
                Step::MoveAside => {
                    self.move_aside(&mut journal)?;
                    failpoint("after", "move-aside");
                    journal.stage = Stage::Aside;
                }
                Step::SwapIn => {
                    self.swap_in()?;
                    failpoint("after", "swap-in");
                    journal.stage = Stage::SwappedIn;
                }
                Step::Finish => {
                    self.finish(&mut journal)?;
                    failpoint("after", "finish");
                    let _ = fs::remove_file(self.journal_path());
                    self.report.source = Some(journal.point.label.clone());
                    return Ok(());
                }
                Step::NotOurs { dataset } => {
                    let mark = self
                        .props(&dataset, &[PROP_SIBLING])?
                        .and_then(|p| p.get(PROP_SIBLING).cloned());
                    return Err(self.not_ours(&dataset, mark.as_ref()));
                }
                Step::Stuck { why } => {
                    return Err(fail(
                        format!("the restore recorded in {} cannot go on: {why}", self.journal_path().display()),
                        "look at the datasets (zfs list -r) and finish it by hand (docs/runbooks/restore-service.md), then remove the journal",
                    ))
                }
            }
            self.write_journal(&journal)?;
            failpoint("journaled", &format!("{:?}", journal.stage).to_lowercase());
        }
    }

    /// Whether the dataset holds data, decided on the dataset itself (its
    /// `mounted`, `mountpoint` in `props`): mounted where the service reads
    /// it, the path showing the dataset (not a filesystem mounted over it),
    /// any file, symlink or special file on it, or any child dataset.
    /// `Some(what)`: it holds data; `None`: empty. What cannot be told (a
    /// cover, a mount inside hiding part of it) is a failure, never empty.
    fn data_held(
        &self,
        props: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<String>, Failure> {
        let plan = self.plan;
        let mounted = props.get("mounted").map(String::as_str) == Some("yes");
        let mountpoint = props.get("mountpoint").cloned().unwrap_or_default();
        if !mounted {
            self.refuse_locked()?;
        }
        if !mounted
            || zpersist_core::plan::normalize_path(&mountpoint)
                != zpersist_core::plan::normalize_path(&plan.mountpoint)
        {
            return Err(fail(
                format!("{} is not mounted on {} (mounted: {}, mountpoint: {mountpoint}); nothing was moved", plan.dataset, plan.mountpoint, if mounted { "yes" } else { "no" }),
                "zpersist-<service>-mounted.service checks this first; see its journal and zpersist-datasets.service's",
            ));
        }
        self.path_shows_dataset(
            "whether the dataset holds data cannot be seen there, so nothing was moved",
        )?;
        let path = Path::new(&plan.mountpoint);
        let found = look_for_data(path).map_err(|e| {
            fail(
                format!("cannot read {}: {e}", plan.mountpoint),
                "check the directory's permissions",
            )
        })?;
        if found.data.is_some() {
            return Ok(Some(format!("{} holds data", plan.mountpoint)));
        }
        let children = self.descendants()?;
        if !children.is_empty() {
            return Ok(Some(format!(
                "{} holds only directories, but its child dataset(s) {} hold what is below: data",
                plan.dataset,
                children.join(", ")
            )));
        }
        if !found.mounts_inside.is_empty() {
            let mounts: Vec<String> = found
                .mounts_inside
                .iter()
                .map(|p| match mount_showing(p) {
                    Ok(m) => format!("{} on {}", m.describe(), p.display()),
                    Err(_) => p.display().to_string(),
                })
                .collect();
            return Err(fail(
                format!("{} shows no data on {}, but {} is mounted inside it, hiding what the dataset holds there; nothing was moved", plan.dataset, plan.mountpoint, mounts.join(", ")),
                format!("see what is mounted there (`findmnt -R {}`), unmount what does not belong to the dataset, then start the service again", plan.mountpoint),
            ));
        }
        Ok(None)
    }

    /// Data that is there is replaced only when nothing uses it: a process
    /// with a file, its working directory or its root in the mountpoint
    /// (the service still running) stops the restore before anything is
    /// touched; a dry run says so and goes on.
    fn not_in_use(&mut self) -> Result<(), Failure> {
        let users = processes_using(&[resolved(&self.plan.mountpoint)]);
        if users.is_empty() {
            return Ok(());
        }
        let who: Vec<String> = users
            .iter()
            .map(|u| format!("{} (pid {}): {}", u.command, u.pid, u.what))
            .collect();
        let error = format!(
            "{}: {} is in use by {}",
            self.plan.service,
            self.plan.mountpoint,
            who.join(", ")
        );
        if self.options.dry_run {
            self.report
                .warnings
                .push(format!("{error}: the restore would refuse to replace it"));
            return Ok(());
        }
        Err(fail(
            format!("{error}; nothing was replaced or touched"),
            format!(
                "stop the service's units first (`systemctl stop` each unit of {}, and whatever else the list names), then run the restore again",
                self.plan.service
            ),
        ))
    }

    /// An unmounted dataset whose key is not loaded is locked, never
    /// empty: the run stops before any source is asked, naming the key.
    fn refuse_locked(&self) -> Result<(), Failure> {
        let dataset = &self.plan.dataset;
        let keys = zpersist_zfs::encryption::key_facts(&self.zfs, std::slice::from_ref(dataset))
            .unwrap_or_default();
        let Some(state) = keys.get(dataset).map(|facts| facts.state(dataset)) else {
            return Ok(());
        };
        match zpersist_core::encryption::locked_problem(
            dataset,
            &state,
            "its files cannot be seen, so it is not empty: nothing was restored or moved",
        ) {
            Some((what, help)) => Err(fail(
                what,
                format!("{help}; then start {}'s units again", self.plan.service),
            )),
            None => Ok(()),
        }
    }

    /// The service's path shows its dataset: not a filesystem mounted
    /// over it, not the directory beneath it. `consequence` ends the error.
    fn path_shows_dataset(&self, consequence: &str) -> Result<(), Failure> {
        path_shows(&self.plan.dataset, &self.plan.mountpoint, consequence)
    }

    /// The dataset's descendants (filesystems and volumes, not itself).
    fn descendants(&self) -> Result<Vec<String>, Failure> {
        let dataset = &self.plan.dataset;
        let listing = self.zfs(&[
            "list",
            "-H",
            "-r",
            "-o",
            "name",
            "-t",
            "filesystem,volume",
            dataset,
        ])?;
        Ok(listing
            .lines()
            .filter(|name| !name.is_empty() && name != dataset)
            .map(str::to_owned)
            .collect())
    }

    /// The names a restore from `point` makes (the aside and its snapshots,
    /// the sibling and the point's snapshot in it) fit ZFS's limit: checked
    /// before anything is touched, so that no restore stops half-way.
    fn names_fit(&self, point: &RestorePoint) -> Result<(), Failure> {
        let plan = self.plan;
        let snapshots: Vec<String> = self
            .zfs
            .snapshots(&plan.dataset)
            .map_err(|e| {
                fail(
                    e.to_string(),
                    "check that ZFS answers (`zpool status`) and start the service again",
                )
            })?
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name)
            .collect();
        let received = sources::send_argv(plan, point).and_then(|_| {
            point
                .reference
                .split_once('@')
                .map(|(_, snapshot)| snapshot)
        });
        let too_long = plan.names_too_long(now(), &snapshots, received);
        if too_long.is_empty() {
            return Ok(());
        }
        Err(fail(
            format!(
                "restoring {} would make name(s) longer than ZFS's 255 bytes: {}; nothing was touched",
                point.label,
                too_long.join(", ")
            ),
            format!(
                "rename the long snapshot(s) (`zfs rename {}@LONG {}@SHORT`, on the source for a received one), or give the dataset a shorter name",
                plan.dataset, plan.dataset
            ),
        ))
    }

    fn main(&mut self) -> Result<(), Failure> {
        let plan = self.plan;
        // The lock first, every fact after it: a run that waited for
        // another finds what that one left (done: no journal, data there).
        // A dry run takes no lock and changes nothing.
        let only = match &self.options.from {
            Some(label) => Some(
                sources::source_index(plan, label).map_err(|(error, help)| fail(error, help))?,
            ),
            None => None,
        };
        let _lock = if self.options.dry_run {
            None
        } else {
            let path = Utf8PathBuf::from(format!("{}/{}.lock", plan.state_dir, plan.service));
            Some(
                zpersist_host::lock_within(path.clone(), &mut io::stderr(), self.options.lock_timeout).map_err(|e| {
                    fail(
                        format!("cannot take the lock {path}: {e}"),
                        "another preseed of this service runs (or is stuck); wait for it, or stop it",
                    )
                })?,
            )
        };
        // No other mover (migrate, ensure-datasets, a backup snapshot)
        // changes the dataset or its sibling while this run may.
        let _datasets = if self.options.dry_run {
            None
        } else {
            Some(zpersist_host::resource_lock::lock_datasets(
                "preseed-restore",
                &[&plan.dataset, &plan.sibling()],
                self.options.lock_timeout,
                &mut io::stderr(),
            )?)
        };
        if let Some(journal) = self.read_journal()? {
            if self.options.dry_run {
                self.report.outcome = "would-resume".into();
                self.say(format!(
                    "would resume the restore from {} at stage {:?}",
                    journal.point.label, journal.stage
                ));
                return Ok(());
            }
            self.say(format!(
                "resume  the restore from {} (stage {:?})",
                journal.point.label, journal.stage
            ));
            self.walk(journal, Vec::new())?;
            self.report.outcome = "restored".into();
            return Ok(());
        }

        let props = self
            .props(&plan.dataset, &["mounted", "mountpoint", PROP_PRESEED])?
            .ok_or_else(|| {
                fail(
                    format!("{} does not exist", plan.dataset),
                    "zpersist-datasets.service creates it: see `journalctl -u zpersist-datasets.service`",
                )
            })?;
        let held = self.data_held(&props)?;
        let holds = held.is_some();
        if let (Some(what), true, false) = (&held, self.options.by_hand, self.options.replace) {
            self.report.outcome = "refused".into();
            return Err(fail(
                format!("{}: {what}; nothing was restored or touched", plan.service),
                format!(
                    "a restore over data that is there must be asked for: `zpersist restore {}{} --replace` moves the data there now aside (renamed to {}, kept, never destroyed) and restores into its place; stop the service first, and add --dry-run to see the point it would restore",
                    plan.service,
                    self.options.from.as_deref().map(|f| format!(" --from {f}")).unwrap_or_default(),
                    plan.aside(now()),
                ),
            ));
        }
        // A restore over the data there (asked for by hand): restored as
        // into an empty dataset, the data moved aside instead of refused.
        let replacing = holds && self.options.replace;
        let restoring = !holds || replacing;
        if replacing {
            self.not_in_use()?;
        }
        let recorded = props
            .get(PROP_PRESEED)
            .filter(|v| v.as_str() != "-")
            .cloned();
        let health = if restoring {
            Some(pool_health(
                plan.pool(),
                Duration::from_secs(plan.timeout_seconds),
            )?)
        } else {
            None
        };
        let answers = if restoring {
            sources::ask(plan, &self.zfs, only)
        } else {
            Vec::new()
        };
        self.report.sources = source_reports(plan, &answers, only);
        match decide(
            holds && !replacing,
            health.as_deref(),
            &plan.sources,
            &answers,
            plan.allow_stale_on_source_error,
        ) {
            Decision::Existing => {
                self.report.outcome = "existing".into();
                if recorded.is_none() && !self.options.dry_run {
                    self.zfs(&["set", &format!("{PROP_PRESEED}=existing"), &plan.dataset])?;
                }
                self.say(format!(
                    "{}: {}; nothing to do",
                    plan.service,
                    held.unwrap_or_default()
                ));
                Ok(())
            }
            Decision::Fresh { .. } if self.options.by_hand || only.is_some() || replacing => {
                Err(fail(
                    format!(
                        "{}: {} holds no restore point that may hold data; nothing was touched",
                        plan.service,
                        match only {
                            Some(index) => plan.sources[index].label(),
                            None => "no source".to_string(),
                        }
                    ),
                    "list what the sources hold (`zpersist restore SERVICE --dry-run` shows each source's newest point), or restore another source with --from",
                ))
            }
            Decision::Fresh { warnings } => {
                self.report.warnings.extend(warnings);
                self.say(format!("{}: {} is empty and no source has ever held data: the service starts empty (fresh)", plan.service, plan.mountpoint));
                if self.options.dry_run {
                    self.report.outcome = "would-be-fresh".into();
                    return Ok(());
                }
                self.zfs(&["set", &format!("{PROP_PRESEED}=fresh"), &plan.dataset])?;
                self.zfs(&[
                    "set",
                    &format!("{PROP_AT}={}", rfc3339(now())),
                    &plan.dataset,
                ])?;
                self.report.outcome = "fresh".into();
                Ok(())
            }
            Decision::Fail { error, help } => Err(Failure {
                error: format!("{}: {error}", plan.service),
                help,
            }),
            Decision::Restore {
                mut candidates,
                warnings,
            } => {
                self.report.warnings.extend(warnings);
                let first = candidates.remove(0);
                self.say(format!(
                    "{}: {} {}; restoring from {} ({}), the freshest point that may hold data{}",
                    plan.service,
                    plan.mountpoint,
                    if replacing {
                        "holds data, which --replace moves aside"
                    } else {
                        "is empty"
                    },
                    first.label,
                    rfc3339(first.created),
                    if only.is_some() { " of that source" } else { "" }
                ));
                self.names_fit(&first)?;
                self.report.by_hand = by_hand(plan, &first);
                if self.options.dry_run {
                    self.report.outcome = "would-restore".into();
                    self.report.source = Some(first.label.clone());
                    for line in self.report.by_hand.clone() {
                        self.say(format!("  {line}"));
                    }
                    return Ok(());
                }
                let journal = Journal {
                    version: 1,
                    dataset: plan.dataset.clone(),
                    point: first,
                    stage: Stage::Chosen,
                    aside: None,
                    skipped_empty: Vec::new(),
                    started_at: now(),
                    owners_from: None,
                    replace: replacing,
                };
                self.write_journal(&journal)?;
                failpoint("journaled", "chosen");
                self.walk(journal, candidates)?;
                self.report.outcome = "restored".into();
                Ok(())
            }
        }
    }
}

/// What each source answered, for the report.
fn source_reports(
    plan: &PreseedPlan,
    answers: &[zpersist_core::preseed::SourceAnswer],
    only: Option<usize>,
) -> Vec<SourceReport> {
    answers
        .iter()
        .zip(&plan.sources)
        .enumerate()
        .filter(|(index, _)| only.is_none_or(|only| only == *index))
        .map(|(_, pair)| pair)
        .map(|(answer, source)| match answer {
            zpersist_core::preseed::SourceAnswer::Points { points } => SourceReport {
                source: source.label(),
                points: points.len(),
                newest: points
                    .iter()
                    .max_by_key(|p| p.created)
                    .map(|p| format!("{} ({})", p.label, rfc3339(p.created))),
                error: None,
            },
            zpersist_core::preseed::SourceAnswer::Failed { error } => SourceReport {
                source: source.label(),
                points: 0,
                newest: None,
                error: Some(error.clone()),
            },
        })
        .collect()
}

/// Where the by-hand restore looks at the sibling (the runbook's
/// `RESTORE_MNT`).
const RESTORE_MNT: &str = "/mnt/zpersist-restore";

/// The same restore as commands a person runs: the steps of
/// docs/runbooks/restore-service.md, filled in (one property per `zfs set`,
/// hidden files moved too), which tests/e2e/tests/runbooks.rs runs.
fn by_hand(plan: &PreseedPlan, point: &RestorePoint) -> Vec<String> {
    let q = zpersist_process::shell_quote;
    let sibling_name = plan.sibling();
    let (dataset, sibling) = (q(&plan.dataset), q(&sibling_name));
    let mut lines = vec![format!(
        "systemctl stop {} units (they are not running before their preseed)",
        plan.service
    )];
    match sources::send_argv(plan, point) {
        Some(send) => lines.push(format!(
            "{} | zfs receive -u {sibling}",
            zpersist_process::display_argv(&send)
        )),
        None => {
            if let SourceSpec::Restic(r) = &plan.sources[point.source] {
                let staging = format!("{RESTORE_MNT}/.staging");
                if let Some(env) = &r.environment_file {
                    lines.push(format!("set -a; . {}; set +a", q(env)));
                }
                lines.push(format!(
                    "zfs create -o canmount=noauto -o mountpoint={RESTORE_MNT} {sibling}"
                ));
                lines.push(format!("zfs mount {sibling}"));
                lines.push(format!(
                    "restic -r {} --password-file {} restore {} --target {staging} --include {}",
                    q(&r.repository),
                    q(&r.password_file),
                    q(&point.reference),
                    q(&r.path)
                ));
                lines.push(format!(
                    "find {} -mindepth 1 -maxdepth 1 -exec mv -t {RESTORE_MNT} {{}} +",
                    q(&format!("{staging}{}", r.path))
                ));
                lines.push(format!("rm -r {staging}"));
                lines.push(format!("zfs unmount {sibling}"));
            }
        }
    }
    lines.push(format!("zfs set canmount=noauto {dataset}"));
    lines.push(format!("zfs set mountpoint=none {dataset}"));
    lines.push(format!(
        "zfs rename {dataset} {}",
        q(&plan.aside(0)).replace("-0", "-$(date +%s)")
    ));
    lines.push(format!("zfs rename {sibling} {dataset}"));
    lines.push(format!(
        "zfs set mountpoint={} {dataset}",
        q(&plan.mountpoint)
    ));
    lines.push(format!("zfs set canmount=on {dataset}"));
    lines.push(format!(
        "[ \"$(zfs get -H -o value mounted {dataset})\" = yes ] || zfs mount {dataset}"
    ));
    lines.push(
        "ensure-datasets --plan PLAN  # zpersist-datasets.service's plan: the declared properties, owner, group and mode"
            .to_string(),
    );
    lines.push(format!("zfs set {PROP_PRESEED}=restored {dataset}"));
    lines.push(format!(
        "zfs set {} {dataset}",
        q(&format!("{PROP_SOURCE}={}", point.label))
    ));
    lines
}

pub fn run(plan: &PreseedPlan, options: &Options) -> Report {
    let mut run = Run {
        plan,
        zfs: match Zfs::from_path() {
            Ok(zfs) => zfs.with_timeout(Duration::from_secs(plan.timeout_seconds)),
            Err(e) => {
                return Report {
                    service: plan.service.clone(),
                    dataset: plan.dataset.clone(),
                    outcome: "failed".into(),
                    error: Some(e.to_string()),
                    help: Some("install ZFS (the zfs command) and try again".into()),
                    ..Report::default()
                }
            }
        },
        options,
        report: Report {
            service: plan.service.clone(),
            dataset: plan.dataset.clone(),
            ..Report::default()
        },
    };
    if let Err(failure) = run.main() {
        if run.report.outcome != "refused" {
            run.report.outcome = "failed".into();
        }
        run.report.error = Some(failure.error);
        run.report.help = Some(failure.help);
    }
    run.report
}

/// The pool's health (zpersist-zfs's `Zpool::health`, bounded by the
/// plan's timeout).
fn pool_health(pool: &str, timeout: Duration) -> Result<String, Failure> {
    let zpool = Zpool::from_path()
        .map_err(|e| fail(e.to_string(), "install ZFS"))?
        .with_timeout(timeout);
    match zpool.health(pool) {
        Ok(Some(health)) => Ok(health),
        Ok(None) => Err(fail(
            format!("pool {pool} is not imported"),
            format!("import the pool ({pool}) and start the service again"),
        )),
        Err(e) => Err(fail(
            e.to_string(),
            format!("import the pool ({pool}) and start the service again"),
        )),
    }
}

/// `path` shows `dataset`: not a filesystem mounted over it, not the
/// directory beneath it. zfs-fuse mounts asynchronously (`zfs get mounted`
/// says yes a moment before the mount table has it), so the directory
/// beneath is looked at again for up to 5 s; a cover fails at once.
/// `consequence` ends the error.
pub(crate) fn path_shows(dataset: &str, path: &str, consequence: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let showing = mount_showing(Path::new(path)).map_err(|e| {
            fail(
                format!("cannot tell which filesystem {path} shows: {e}"),
                "check the path and /proc/self/mountinfo, then start the service again",
            )
        })?;
        // The mount table has resolved paths: compare with the path resolved.
        let resolved = fs::canonicalize(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_string());
        let view = path_view(dataset, &resolved, &showing);
        let Some(problem) = view.problem(dataset, path) else {
            return Ok(());
        };
        if matches!(view, PathView::Beneath { .. }) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return Err(fail(
            format!("{dataset} is mounted (zfs says so), but {problem}; {consequence}"),
            view.help(path),
        ));
    }
}

/// A `zfs receive` into the sibling left running by a run that was killed
/// mid-stream would collide with a new one: it is stopped first.
pub(crate) fn stop_receives_into(sibling: &str) {
    let receives = processes_running(|args| {
        args.iter().any(|a| *a == b"receive" || *a == b"recv") && args.contains(&sibling.as_bytes())
    });
    stop_processes(&receives, Duration::from_secs(30));
}
