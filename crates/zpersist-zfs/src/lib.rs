//! The typed ZFS API: `zfs` as argv vectors (never through a shell) at a
//! [`Location`] (this host, or another over the pinned ssh), run through
//! zpersist-process, and its output parsed into zpersist-core's observed
//! state. Works with OpenZFS 2.x and zfs-fuse: only the forms both
//! understand are used, or the difference is handled here.
//! [`dataset`]: a dataset's mount state, mounting and moving it with
//! retries while busy; [`space`]: the quotas and free space that limit it;
//! [`pool`]: `zpool`, a pool's health and its last scrub.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use zpersist_core::observed::{ObservedPool, Source};
use zpersist_core::replication::Snapshot;
use zpersist_process::{Command, Failure, Location, Output, Pipeline, ProcessError};

mod holds;
mod snapshots;
pub use snapshots::{all_snapshots_argv, parse_all_snapshots, parse_snapshots, snapshots_argv};

pub mod dataset;
pub mod encryption;
pub mod pool;
pub mod space;

/// A `zfs` invocation that failed: zpersist-process's one error, whose
/// stderr is zfs's own message (without the usage text zfs adds to some).
pub type ZfsError = ProcessError;

/// `zfs` at one location.
#[derive(Debug, Clone)]
pub struct Zfs {
    /// The `zfs` found on PATH here; `None` over ssh (the remote PATH's).
    program: Option<PathBuf>,
    location: Location,
    /// A wall-clock limit on each run, if any (see [`Zfs::with_timeout`]).
    timeout: Option<Duration>,
}

impl Zfs {
    /// Finds `zfs` on this host's PATH.
    pub fn from_path() -> Result<Zfs, ZfsError> {
        Zfs::at(Location::Local)
    }

    /// `zfs` at `location`: here, the one on PATH (an error when there is
    /// none); over ssh, the remote user's, each call bounded by the
    /// target's timeout unless [`Zfs::with_timeout`] says otherwise.
    pub fn at(location: Location) -> Result<Zfs, ZfsError> {
        let program = match &location {
            Location::Local => Some(which::which("zfs").map_err(|e| ProcessError {
                argv: vec!["zfs".into()],
                place: None,
                failure: Failure::NotStarted(format!(
                    "cannot find `zfs` on PATH ({e}); install ZFS (or start zfs-fuse) and try again"
                )),
                help: "install ZFS (or start zfs-fuse) and make sure `zfs` is on PATH".into(),
                pipeline: None,
            })?),
            Location::Ssh(_) => None,
        };
        Ok(Zfs {
            program,
            location,
            timeout: None,
        })
    }

    /// The `zfs` this host runs (`None` over ssh).
    pub fn program(&self) -> Option<&std::path::Path> {
        self.program.as_deref()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// This zfs with every run killed after `limit` (an error saying so),
    /// for callers that must end even when zfs hangs (a suspended pool).
    pub fn with_timeout(self, limit: Duration) -> Zfs {
        Zfs {
            timeout: Some(limit),
            ..self
        }
    }

    /// The command `zfs ARGS` at this location (not run yet): for
    /// pipelines, and for what the typed calls below do not cover.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut command = Command::new("zfs")
            .args(args.iter().map(AsRef::as_ref))
            .at(self.location.clone());
        if let Some(program) = &self.program {
            command = command.program_path(program);
        }
        if let Some(limit) = self.timeout {
            command = command.timeout(limit);
        }
        command
    }

    /// Runs `zfs ARGS` to its end: `Err` only when it cannot be started or
    /// was killed at the timeout.
    fn execute<S: AsRef<str>>(&self, args: &[S]) -> Result<(Command, Output), ZfsError> {
        let command = self.command(args);
        let output = command.output()?;
        Ok((command, output))
    }

    /// Runs `zfs ARGS`, returning its stdout, or an error whose stderr is
    /// zfs's message.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<String, ZfsError> {
        let (command, output) = self.execute(args)?;
        if output.status.success() {
            Ok(output.stdout_text())
        } else {
            Err(failed(&command, &output))
        }
    }

    /// Reads `properties` of exactly `datasets` in one `zfs get`, without
    /// `-r`: no other dataset and no snapshot is visited (on zfs-fuse this
    /// is two to three times faster than the recursive form over a pool of
    /// 200 datasets). Datasets that do not exist come back in the second
    /// list; any other complaint of zfs is an error.
    pub fn observe_named(
        &self,
        datasets: &[String],
        properties: &[String],
    ) -> Result<(ObservedPool, Vec<String>), ZfsError> {
        let list = properties.join(",");
        let mut args = vec!["get", "-H", "-p", "-o", "name,property,value,source", &list];
        args.extend(datasets.iter().map(String::as_str));
        let (command, output) = self.execute(&args)?;
        let mut missing = Vec::new();
        if !output.status.success() {
            let stderr = output.stderr_text();
            for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
                match missing_dataset(line).filter(|name| datasets.iter().any(|d| d == name)) {
                    Some(name) => missing.push(name.to_string()),
                    None => return Err(failed(&command, &output)),
                }
            }
        }
        Ok((parse_get(&output.stdout_text()), missing))
    }
    /// Reads `properties` of every filesystem and volume under `root` in one
    /// `zfs get`. OpenZFS (the kernel module, with `/dev/zfs`) takes
    /// `-t filesystem,volume`, so snapshots are not listed at all; zfs-fuse
    /// (no `/dev/zfs`) has no `-t`, so the call is made without it and
    /// snapshot rows are dropped while parsing. A usage error from a typed
    /// call also falls back, so a wrong guess costs one spawn, not a failure.
    pub fn observe(&self, root: &str, properties: &[String]) -> Result<ObservedPool, ZfsError> {
        let list = properties.join(",");
        let untyped = [
            "get",
            "-H",
            "-p",
            "-o",
            "name,property,value,source",
            "-r",
            &list,
            root,
        ];
        if !std::path::Path::new("/dev/zfs").exists() {
            return self.run(&untyped).map(|output| parse_get(&output));
        }
        let typed = [
            "get",
            "-H",
            "-p",
            "-o",
            "name,property,value,source",
            "-t",
            "filesystem,volume",
            "-r",
            &list,
            root,
        ];
        let output = match self.run(&typed) {
            Ok(output) => output,
            Err(e) if is_usage_error(e.stderr()) => self.run(&untyped)?,
            Err(e) => return Err(e),
        };
        Ok(parse_get(&output))
    }

    /// `zfs create -p -o k=v ... dataset`: the dataset and every property at once.
    pub fn create(
        &self,
        dataset: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<(), ZfsError> {
        let mut args = vec!["create".to_string(), "-p".to_string()];
        for (property, value) in properties {
            args.push("-o".into());
            args.push(format!("{property}={value}"));
        }
        args.push(dataset.to_string());
        self.run(&args).map(drop)
    }

    pub fn set(&self, dataset: &str, property: &str, value: &str) -> Result<(), ZfsError> {
        self.run(&["set", &format!("{property}={value}"), dataset])
            .map(drop)
    }

    pub fn mount(&self, dataset: &str) -> Result<(), ZfsError> {
        self.run(&["mount", dataset]).map(drop)
    }

    /// The parsable values of `properties` of one dataset, or `None` if the
    /// dataset does not exist. Properties zfs does not print are left out.
    pub fn get(
        &self,
        dataset: &str,
        properties: &[&str],
    ) -> Result<Option<BTreeMap<String, String>>, ZfsError> {
        let list = properties.join(",");
        match self.run(&[
            "get",
            "-H",
            "-p",
            "-o",
            "name,property,value,source",
            &list,
            dataset,
        ]) {
            Ok(output) => Ok(Some(
                parse_get(&output)
                    .datasets
                    .remove(dataset)
                    .map(|props| {
                        props
                            .into_iter()
                            .map(|(name, observed)| (name, observed.value))
                            .collect()
                    })
                    .unwrap_or_default(),
            )),
            Err(e) if says_dataset_missing(e.stderr()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The snapshots of `dataset` (not of its children), oldest first, or
    /// `None` if the dataset does not exist (here or on the remote host).
    pub fn snapshots(&self, dataset: &str) -> Result<Option<Vec<Snapshot>>, ZfsError> {
        let (command, output) = self.execute(&snapshots::listing_args(dataset))?;
        if !output.status.success() {
            let e = failed(&command, &output);
            return if says_dataset_missing(e.stderr()) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        parse_snapshots(dataset, &output.stdout_text())
            .map(Some)
            .map_err(|message| {
                command
                    .failed(output.status, message.as_bytes())
                    .with_help(format!(
                        "zfs on {} printed what zpersist does not understand; run `{}` there",
                        self.location,
                        command.display()
                    ))
            })
    }

    /// Whether `dataset` exists (here or on the remote host).
    pub fn exists(&self, dataset: &str) -> Result<bool, ZfsError> {
        match self.run(&["list", "-H", "-o", "name", dataset]) {
            Ok(_) => Ok(true),
            Err(e) if says_dataset_missing(e.stderr()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `zfs send OPTIONS SNAPSHOT` at this location, not run yet: its
    /// stdout is the stream.
    pub fn send(&self, snapshot: &str, options: &[&str]) -> Command {
        let mut args = vec!["send"];
        args.extend(options);
        args.push(snapshot);
        self.command(&args)
    }

    /// `zfs receive OPTIONS DATASET` at this location, not run yet: it
    /// reads the stream on stdin.
    pub fn receive(&self, dataset: &str, options: &[&str]) -> Command {
        let mut args = vec!["receive"];
        args.extend(options);
        args.push(dataset);
        self.command(&args)
    }

    /// `zfs send SNAPSHOT` here (or on the host this zfs is at) piped into
    /// `zfs receive DATASET` at `destination`: the stream goes through a
    /// kernel pipe (over ssh: ssh's stdout) and is never held in memory;
    /// both exit statuses are checked and an error names the side that
    /// failed. Run it with [`Pipeline::run`] or, for progress (`-v`),
    /// [`Pipeline::stream`]; give it a limit with [`Pipeline::timeout`]
    /// (the per-call limit of an ssh target does not apply to a transfer).
    pub fn send_to(
        &self,
        snapshot: &str,
        send_options: &[&str],
        destination: &Zfs,
        dataset: &str,
        receive_options: &[&str],
    ) -> Pipeline {
        self.send(snapshot, send_options)
            .pipe(destination.receive(dataset, receive_options))
    }
}

/// The error of `command` having failed with `output`: zfs's message
/// without its usage text.
fn failed(command: &Command, output: &Output) -> ZfsError {
    // Cut before the error keeps its tail: the usage text is longer than
    // the tail and comes after the line that matters.
    command.failed(
        output.status,
        without_usage(&output.stderr_text()).as_bytes(),
    )
}

/// The dataset named by zfs's "cannot open 'NAME': dataset does not exist"
/// (OpenZFS and zfs-fuse word it alike).
fn missing_dataset(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("cannot open '")?
        .strip_suffix("': dataset does not exist")
}

/// zfs's answer (its stderr) when the dataset it was asked about does not
/// exist, here or on another host.
pub fn says_dataset_missing(stderr: &str) -> bool {
    stderr.contains("does not exist")
}

/// zfs's message without the usage text it prints after some errors (about
/// 70 lines that bury the one that matters).
fn without_usage(stderr: &str) -> String {
    let end = stderr
        .find("\nusage:")
        .or_else(|| stderr.starts_with("usage:").then_some(0))
        .filter(|&end| end > 0)
        .unwrap_or(stderr.len());
    stderr[..end].trim().to_string()
}

/// The property zfs names in "invalid property 'NAME'" (OpenZFS and
/// zfs-fuse word it alike), when it does not know one it was asked about.
pub fn unknown_property(stderr: &str) -> Option<&str> {
    let rest = &stderr[stderr.find("invalid property '")? + "invalid property '".len()..];
    rest.split_once('\'').map(|(name, _)| name)
}

/// zfs's answer to an option it does not have: print usage.
fn is_usage_error(stderr: &str) -> bool {
    stderr.contains("invalid option") || stderr.starts_with("usage:") || stderr.contains("\nusage:")
}

/// Parses `zfs get -H -p -o name,property,value,source` output. Snapshot and
/// bookmark rows are dropped; a value containing tabs is kept whole.
pub fn parse_get(output: &str) -> ObservedPool {
    let mut pool = ObservedPool::default();
    for line in output.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 4 {
            continue;
        }
        let (name, property, source) = (fields[0], fields[1], fields[fields.len() - 1]);
        if name.contains(['@', '#']) {
            continue;
        }
        let value = fields[2..fields.len() - 1].join("\t");
        pool.insert(name, property, &value, Source::parse(source));
    }
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_output_and_drops_snapshots() {
        let output = "tank\tmountpoint\t/tank\tdefault\n\
                      tank/a\trecordsize\t16384\tlocal\n\
                      tank/a\tcompression\ton\tinherited from tank\n\
                      tank/a\tcom.example:note\ta\tb\tlocal\n\
                      tank/a\tcom.example:unset\t-\t-\n\
                      tank/a@autosnap_x\tmountpoint\t-\t-\n";
        let pool = parse_get(output);
        assert_eq!(pool.datasets.len(), 2);
        assert_eq!(pool.value("tank/a", "recordsize"), Some("16384"));
        assert_eq!(
            pool.source("tank/a", "compression"),
            Some(&Source::InheritedFrom("tank".into()))
        );
        assert_eq!(pool.value("tank/a", "com.example:note"), Some("a\tb"));
        assert_eq!(pool.value("tank/a", "com.example:unset"), None);
    }

    #[test]
    fn missing_datasets_are_recognised_by_name() {
        assert_eq!(
            missing_dataset("cannot open 'tank/a b': dataset does not exist"),
            Some("tank/a b")
        );
        assert_eq!(
            missing_dataset("cannot open 'tank/a': permission denied"),
            None
        );
    }

    #[test]
    fn usage_text_is_cut_and_unknown_properties_named() {
        let stderr = "bad property list: invalid property 'relatime'\nusage:\n\tget [-rHp] ...\n";
        assert_eq!(
            without_usage(stderr),
            "bad property list: invalid property 'relatime'"
        );
        assert_eq!(without_usage("usage: zfs get"), "usage: zfs get");
        assert_eq!(unknown_property(stderr), Some("relatime"));
        assert_eq!(
            unknown_property("cannot create 'tank/x': invalid property 'dnodesize'"),
            Some("dnodesize")
        );
        assert_eq!(unknown_property("permission denied"), None);
    }
}
