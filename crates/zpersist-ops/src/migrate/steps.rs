//! The migration's own steps: what each one does (`run`, handed to
//! zpersist_host::steps, which journals them) and what it would do
//! (`describe`, for --dry-run). Everything else they use is the host's and
//! ZFS's adapters.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use zpersist_core::human_bytes;
use zpersist_core::migration::{Journal, MigrationTarget, Stage, Step, TreeSummary};
use zpersist_host::fsync::{sync_dir, sync_filesystem};
use zpersist_host::manifest::{self, differences, hash_trees, list_differences, Tree};
use zpersist_host::path::{parent_of, path_state};
use zpersist_zfs::dataset::{dataset_state, mount_retrying, move_mountpoint};
use zpersist_zfs::Zfs;

use crate::migrate::copy::{self, copy_into_dataset};
use crate::migrate::report::StepError;
use crate::migrate::Options;

/// One migration's steps, with what they share.
pub struct Migration<'a> {
    pub zfs: &'a Zfs,
    pub target: &'a MigrationTarget,
    pub options: &'a Options,
    /// The tree at the directory, walked (not hashed) before the copy.
    pub source: Option<Tree>,
}

impl Migration<'_> {
    /// Runs `step`; its line for the report. Verification records what it
    /// verified in the journal (or sends the next run back to the copy).
    pub fn run(&self, step: Step, journal: &mut Journal) -> Result<String, StepError> {
        match step {
            Step::Create => self.create().map_err(StepError::from),
            Step::Copy => self.copy(),
            Step::Verify => self.verify(journal),
            Step::MoveAside => self.move_aside().map_err(StepError::from),
            Step::Mount => self.mount().map_err(StepError::from),
            Step::VerifyMounted => match journal.verified.clone() {
                Some(verified) => self.verify_mounted(&verified).map_err(StepError::from),
                None => Err(StepError::from(
                    "the journal has no verified tree to compare with".to_string(),
                )),
            },
        }
    }

    /// What `step` would do, for --dry-run.
    pub fn describe(&self, step: Step) -> String {
        let target = self.target;
        match step {
            Step::Create => {
                let opts: Vec<String> = self
                    .create_properties()
                    .iter()
                    .map(|(k, v)| format!("-o {k}={v}"))
                    .collect();
                format!(
                    "would run `zfs create -p {} {}`",
                    opts.join(" "),
                    target.dataset
                )
            }
            Step::Copy => format!(
                "would copy {}{} with `rsync {}`",
                self.source.as_ref().map_or(String::new(), |t| format!(
                    "{} entries ({} files, {}) ",
                    t.entries.len(),
                    t.files(),
                    human_bytes(t.bytes())
                )),
                target.path,
                copy::rsync_argv(&target.path, &target.temporary(), false).join(" ")
            ),
            Step::Verify => "would compare both trees entry by entry, contents by SHA-256".into(),
            Step::MoveAside => format!("would rename {} to {}", target.path, target.aside()),
            Step::Mount => format!(
                "would run `zfs set mountpoint={} {}`",
                target.path, target.dataset
            ),
            Step::VerifyMounted => format!("would verify the data mounted at {}", target.path),
        }
    }

    /// The declared properties, and the temporary mountpoint.
    fn create_properties(&self) -> BTreeMap<String, String> {
        let mut properties = self.target.properties.clone();
        properties.insert("mountpoint".into(), self.target.temporary());
        properties.insert("canmount".into(), "on".into());
        properties
    }

    /// `zfs create`, or the parts of it a crash left undone.
    fn create(&self) -> Result<String, String> {
        let (zfs, target) = (self.zfs, self.target);
        if dataset_state(zfs, &target.dataset)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            zfs.create(&target.dataset, &self.create_properties())
                .map_err(|e| e.to_string())?;
        }
        mount_retrying(zfs, &target.dataset).map_err(|e| e.to_string())?;
        let declared: Vec<String> = target
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        Ok(format!(
            "created {} mounted at {}{}",
            target.dataset,
            target.temporary(),
            if declared.is_empty() {
                String::new()
            } else {
                format!(" ({})", declared.join(", "))
            }
        ))
    }

    fn copy(&self) -> Result<String, StepError> {
        let (zfs, target) = (self.zfs, self.target);
        mount_retrying(zfs, &target.dataset).map_err(|e| e.to_string())?;
        let temporary = target.temporary();
        if let Some(source) = &self.source {
            check_xattr_support(source, &temporary, &target.dataset)?;
        }
        let started = Instant::now();
        let every = self.options.progress_every;
        copy_into_dataset(zfs, target, self.source.as_ref(), false, every)?;
        // The copy must be on disk before the original is moved aside: a
        // failed sync stops here, the next run copies again.
        sync_filesystem(Path::new(&temporary)).map_err(|e| StepError {
            error: format!(
                "cannot flush the copy in {temporary} (dataset {}) to disk: {e}",
                target.dataset
            ),
            help: Some(
                "nothing was moved aside; check the pool (zpool status) and run again: the copy resumes".into(),
            ),
        })?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(match &self.source {
            Some(source) => format!(
                "{} files, {} copied with rsync in {seconds:.1} s",
                source.files(),
                human_bytes(source.bytes()),
            ),
            None => format!("copied with rsync in {seconds:.1} s"),
        })
    }

    fn verify(&self, journal: &mut Journal) -> Result<String, StepError> {
        let target = self.target;
        let (temporary, every) = (target.temporary(), self.options.progress_every);
        let roots = [target.path.as_str(), temporary.as_str()];
        let mut trees = hash_trees(&roots, every, "verify")?;
        let mut differences = differences(&trees[0], &trees[1]);
        let mut repaired = false;
        if !differences.is_empty() {
            eprintln!(
                "verify: {} difference(s) after the copy; copying again comparing contents: {}",
                differences.len(),
                list_differences(&differences)
            );
            copy_into_dataset(self.zfs, target, Some(&trees[0]), true, every)?;
            trees = hash_trees(&roots, every, "verify")?;
            differences = manifest::differences(&trees[0], &trees[1]);
            repaired = true;
        }
        if !differences.is_empty() {
            // The next run copies again.
            journal.stage = Stage::Created;
            return Err(format!(
                "the copy in {} differs from {}: {}",
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
            human_bytes(summary.bytes),
            if repaired { " after a repair pass" } else { "" },
            human_bytes(trees[0].allocated()),
            human_bytes(trees[1].allocated()),
        );
        journal.verified = Some(summary);
        Ok(detail)
    }

    fn move_aside(&self) -> Result<String, String> {
        let (path, aside) = (&self.target.path, self.target.aside());
        if path_state(&aside).is_dir() && !path_state(path).is_dir() {
            return Ok(format!("{path} was already moved to {aside}"));
        }
        fs::rename(path, &aside).map_err(|e| format!("cannot rename {path} to {aside}: {e}"))?;
        sync_dir(parent_of(path))
            .map_err(|e| format!("cannot sync {}: {e}", parent_of(path).display()))?;
        Ok(format!("{path} moved to {aside} (kept until --cleanup)"))
    }

    fn mount(&self) -> Result<String, String> {
        let target = self.target;
        move_mountpoint(self.zfs, &target.dataset, &target.path).map_err(|e| e.to_string())?;
        // The temporary mountpoint directory is left empty; remove only if so.
        let _ = fs::remove_dir(target.temporary());
        Ok(format!("{} mounted at {}", target.dataset, target.path))
    }

    fn verify_mounted(&self, verified: &TreeSummary) -> Result<String, String> {
        let (target, every) = (self.target, self.options.progress_every);
        let trees = hash_trees(&[&target.path], every, "verify-mounted")?;
        let summary = trees[0].summary();
        if summary.digest == verified.digest {
            return Ok(format!(
                "{} entries in the mounted dataset identical to the verified copy",
                summary.entries
            ));
        }
        let aside = target.aside();
        let original = hash_trees(&[&aside], every, "verify-mounted")?;
        Err(format!(
            "the data mounted at {} differs from what was verified (the original is at {aside}): {}",
            target.path,
            list_differences(&differences(&original[0], &trees[0]))
        ))
    }
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
