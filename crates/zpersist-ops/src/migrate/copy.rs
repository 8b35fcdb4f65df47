//! The copy engine: rsync as a child process (an argv run by
//! zpersist-process, progress streamed line by line), and what a copy that
//! ran out of space says. Verification does not trust it: see
//! zpersist_host::manifest.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zpersist_core::human_bytes;
use zpersist_core::migration::MigrationTarget;
use zpersist_core::name::pool_of;
use zpersist_host::manifest::Tree;
use zpersist_process::{Command, Failure, ProcessError, Stream};
use zpersist_zfs::space::tightest_limit;
use zpersist_zfs::Zfs;

use crate::migrate::report::StepError;

/// rsync from the directory into the dataset (mounted at the temporary
/// path), progress on stderr every `every`; running out of space names the
/// limit that was hit (see [`out_of_space`]).
pub fn copy_into_dataset(
    zfs: &Zfs,
    target: &MigrationTarget,
    source: Option<&Tree>,
    by_checksum: bool,
    every: Duration,
) -> Result<(), StepError> {
    rsync(
        &target.path,
        &target.temporary(),
        by_checksum,
        every,
        &mut std::io::stderr(),
    )
    .map_err(|e| match &e.out_of_space {
        Some(says) => out_of_space(zfs, target, source, says),
        None => e.into(),
    })
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
    let takes = source.map_or(String::new(), |tree| {
        format!(
            "; the data takes {} in {}",
            human_bytes(tree.allocated()),
            target.path
        )
    });
    let (what, help) = match tightest_limit(zfs, dataset) {
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
        error: format!("{dataset} is out of space: {what}{takes}; rsync said: {rsync_says}"),
        help: Some(format!(
            "{help}, then run again (what was copied so far stays)"
        )),
    }
}

/// rsync's flags: archive (-a: owners, modes, times, symlinks, devices),
/// hardlinks (-H), ACLs (-A), xattrs (-X), sparse files (-S), numeric
/// owners (the ids are the data's, not names to map), one filesystem (-x),
/// and `--delete` so a rerun after a crash also removes rsync's half-written
/// temporary files from the destination (the new, empty dataset).
/// `--timeout` bounds a stall, not the copy: rsync gives up (exit 30) after
/// 15 minutes without a byte moving, and the rerun resumes.
pub const RSYNC_FLAGS: &[&str] = &[
    "-aHAXS",
    "--numeric-ids",
    "--one-file-system",
    "--delete",
    "--info=progress2",
    "--no-inc-recursive",
    "--timeout=900",
];

pub fn rsync_program() -> Result<PathBuf, String> {
    which::which("rsync").map_err(|_| "rsync is not installed (the copy engine)".to_string())
}

pub fn rsync_argv(source: &str, destination: &str, by_checksum: bool) -> Vec<String> {
    let mut argv: Vec<String> = RSYNC_FLAGS.iter().map(|f| f.to_string()).collect();
    if by_checksum {
        // A repair pass: compare contents, not size and mtime.
        argv.push("--checksum".into());
    }
    argv.push(format!("{source}/"));
    argv.push(format!("{destination}/"));
    argv
}

/// Why rsync failed.
#[derive(Debug)]
pub struct CopyError {
    /// The command, how it ended and the tail of its stderr; or why it
    /// could not start.
    pub error: Box<ProcessError>,
    /// rsync's message saying the destination is full or over its quota.
    pub out_of_space: Option<String>,
}

impl From<CopyError> for StepError {
    /// A plain failure keeps the general help ("fix the cause and run
    /// again"); rsync missing or killed says what to do itself.
    fn from(e: CopyError) -> StepError {
        let help = match e.error.failure {
            Failure::Exited { .. } => None,
            Failure::NotStarted(_) | Failure::TimedOut { .. } => Some(e.error.help.clone()),
        };
        StepError {
            error: e.error.to_string(),
            help,
        }
    }
}

/// rsync reports a write error as `strerror (errno)`: ENOSPC is 28, EDQUOT 122.
pub fn says_out_of_space(message: &str) -> bool {
    message.contains("No space left on device (28)")
        || message.contains("Disk quota exceeded (122)")
}

/// Runs rsync (through zpersist-process), printing its progress to
/// `progress` at most every `every`.
pub fn rsync(
    source: &str,
    destination: &str,
    by_checksum: bool,
    every: Duration,
    progress: &mut dyn Write,
) -> Result<(), CopyError> {
    let command = Command::new("rsync").args(rsync_argv(source, destination, by_checksum));
    // Progress comes on stdout (progress2 rewrites its line with `\r`,
    // which ends a line here too), errors on stderr: read apart, an error
    // written in the middle of a progress line cannot pass for progress.
    let mut last_print = Instant::now();
    let mut last_progress = String::new();
    let mut out_of_space: Option<String> = None;
    let ran = command.stream(&mut |stream, line| {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        match stream {
            Stream::Stdout if is_progress(line) => {
                last_progress = line.to_string();
                if last_print.elapsed() >= every {
                    let _ = writeln!(progress, "copy: {last_progress}");
                    last_print = Instant::now();
                }
            }
            // The first line naming a full disk, wherever it is among
            // rsync's messages (the error keeps only their tail).
            _ if out_of_space.is_none() && says_out_of_space(line) => {
                out_of_space = Some(line.to_string());
            }
            _ => {}
        }
    });
    if !last_progress.is_empty() {
        let _ = writeln!(progress, "copy: {last_progress}");
    }
    ran.map_err(|error| CopyError {
        error: Box::new(error),
        out_of_space,
    })
}

fn is_progress(line: &str) -> bool {
    // "   1,234,567  45%   10.00MB/s    0:00:01 (xfr#3, to-chk=0/7)"
    line.contains("to-chk=")
        || line.contains("ir-chk=")
        || line
            .split_whitespace()
            .nth(1)
            .is_some_and(|field| field.ends_with('%'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real rsync: progress lines come from its stdout (`copy: `,
    /// never one of its errors), the copy is whole, and a failure names the
    /// command, its status and rsync's own message.
    #[test]
    fn rsync_copies_with_progress_and_a_failure_names_the_command_and_its_message() {
        if rsync_program().is_err() {
            panic!("rsync is not installed: the copy engine cannot be tested");
        }
        let base = std::env::temp_dir().join(format!("zpersist-copy-{}", std::process::id()));
        let (from, to) = (base.join("from"), base.join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join("sub/a b.bin"), vec![7u8; 300_000]).unwrap();
        let mut progress = Vec::new();
        let (source, destination) = (from.to_str().unwrap(), to.to_str().unwrap());
        rsync(source, destination, false, Duration::ZERO, &mut progress).unwrap();
        let progress = String::from_utf8(progress).unwrap();
        assert!(
            progress.lines().count() >= 1
                && progress
                    .lines()
                    .all(|l| l.strip_prefix("copy: ").is_some_and(is_progress)),
            "{progress}"
        );
        assert!(progress.contains("100%"), "{progress}");
        assert_eq!(
            std::fs::read(to.join("sub/a b.bin")).unwrap().len(),
            300_000
        );

        let missing = base.join("missing");
        let e = rsync(
            missing.to_str().unwrap(),
            destination,
            false,
            Duration::ZERO,
            &mut Vec::new(),
        )
        .unwrap_err();
        let shown = StepError::from(e);
        assert!(shown.error.starts_with("`rsync -aHAXS "), "{}", shown.error);
        assert!(shown.error.contains("(exit status: 23)"), "{}", shown.error);
        assert!(
            shown.error.contains("No such file or directory"),
            "{}",
            shown.error
        );
        assert!(shown.help.is_none(), "the step's general help applies");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_full_disk_or_a_quota_is_recognised_in_rsyncs_messages() {
        for line in [
            r#"rsync: [receiver] write failed on "/x/a.bin": Disk quota exceeded (122)"#,
            r#"rsync: [receiver] mkstemp "/x/.a.bin.Xyz" failed: No space left on device (28)"#,
        ] {
            assert!(says_out_of_space(line), "{line}");
        }
        assert!(!says_out_of_space(
            "rsync error: error in file IO (code 11) at receiver.c(657) [receiver=3.5.0]"
        ));
    }
}
