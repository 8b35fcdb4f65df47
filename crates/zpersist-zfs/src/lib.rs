//! Runs `zfs` as argv vectors (never through a shell) and parses its output
//! into zpersist-core's observed state. Works with OpenZFS 2.x and zfs-fuse:
//! only the forms both understand are used, or the difference is handled here.
//! [`dataset`]: a dataset's mount state, mounting and moving it with
//! retries while busy; [`space`]: the quotas and free space that limit it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use zpersist_host::{run_with_timeout, seconds, Bounded};

use zpersist_core::observed::{ObservedPool, Source};
use zpersist_core::replication::Snapshot;

mod snapshots;
pub use snapshots::{all_snapshots_argv, parse_all_snapshots, parse_snapshots, snapshots_argv};

pub mod dataset;
pub mod space;

/// A `zfs` invocation that failed, with what zfs said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{}` failed: {message}", display_argv(.argv))]
pub struct ZfsError {
    pub argv: Vec<String>,
    /// zfs's own message (its stderr), or why it could not be started.
    pub message: String,
}

/// How a run killed at the limit of [`Zfs::with_timeout`] begins its message.
const TIMED_OUT: &str = "did not finish within ";

impl ZfsError {
    /// Whether zfs was killed at the limit of [`Zfs::with_timeout`].
    pub fn timed_out(&self) -> bool {
        self.message.starts_with(TIMED_OUT)
    }
}

fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '\'', '"']) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `zfs` command found on PATH.
#[derive(Debug, Clone)]
pub struct Zfs {
    program: PathBuf,
    /// A wall-clock limit on each run, if any (see [`Zfs::with_timeout`]).
    timeout: Option<Duration>,
}

impl Zfs {
    /// Finds `zfs` on PATH.
    pub fn from_path() -> Result<Zfs, ZfsError> {
        which::which("zfs").map(|program| Zfs { program, timeout: None }).map_err(|e| ZfsError {
            argv: vec!["zfs".into()],
            message: format!("cannot find `zfs` on PATH ({e}); install ZFS (or start zfs-fuse) and try again"),
        })
    }

    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// This zfs with every run killed after `limit` (an error saying so),
    /// for callers that must end even when zfs hangs (a suspended pool).
    pub fn with_timeout(self, limit: Duration) -> Zfs {
        Zfs {
            timeout: Some(limit),
            ..self
        }
    }

    /// Runs `zfs ARGS` to its end: `Err` only when it cannot be started or
    /// was killed at the timeout.
    fn execute<S: AsRef<str>>(&self, args: &[S]) -> Result<Finished, ZfsError> {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let mut argv = vec!["zfs".to_string()];
        argv.extend(args.iter().cloned());
        let zfs = duct::cmd(&self.program, &args)
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        let output = match self.timeout {
            None => zfs.run(),
            Some(limit) => match run_with_timeout(&zfs, limit) {
                Ok(Bounded::Finished(output)) => Ok(output),
                Ok(Bounded::TimedOut) => {
                    return Err(ZfsError {
                        argv,
                        message: format!("{TIMED_OUT}{}; it was killed", seconds(limit)),
                    })
                }
                Err(e) => Err(e),
            },
        }
        .map_err(|e| ZfsError {
            argv: argv.clone(),
            message: format!("could not run {}: {e}", self.program.display()),
        })?;
        let stderr = without_usage(&String::from_utf8_lossy(&output.stderr));
        Ok(Finished {
            message: if stderr.is_empty() {
                format!("exit status {}", output.status)
            } else {
                stderr
            },
            succeeded: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            argv,
        })
    }

    /// Runs `zfs ARGS`, returning its stdout, or its stderr as the error.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<String, ZfsError> {
        let finished = self.execute(args)?;
        if finished.succeeded {
            Ok(finished.stdout)
        } else {
            Err(ZfsError {
                argv: finished.argv,
                message: finished.message,
            })
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
        let finished = self.execute(&args)?;
        let mut missing = Vec::new();
        if !finished.succeeded {
            for line in finished.message.lines().filter(|l| !l.trim().is_empty()) {
                match missing_dataset(line).filter(|name| datasets.iter().any(|d| d == name)) {
                    Some(name) => missing.push(name.to_string()),
                    None => {
                        return Err(ZfsError {
                            argv: finished.argv,
                            message: finished.message,
                        })
                    }
                }
            }
        }
        Ok((parse_get(&finished.stdout), missing))
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
            Err(e) if is_usage_error(&e.message) => self.run(&untyped)?,
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
            Err(e) if says_dataset_missing(&e.message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The snapshots of `dataset` (not of its children), oldest first, or
    /// `None` if the dataset does not exist.
    pub fn snapshots(&self, dataset: &str) -> Result<Option<Vec<Snapshot>>, ZfsError> {
        let argv = snapshots_argv(dataset);
        match self.run(&argv[1..]) {
            Ok(output) => parse_snapshots(dataset, &output)
                .map(Some)
                .map_err(|message| ZfsError { argv, message }),
            Err(e) if says_dataset_missing(&e.message) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How a `zfs` run that was started ended.
struct Finished {
    argv: Vec<String>,
    succeeded: bool,
    stdout: String,
    /// Its stderr, or its exit status when it said nothing.
    message: String,
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

    #[test]
    fn errors_name_the_command() {
        let e = ZfsError {
            argv: vec!["zfs".into(), "set".into(), "a b=c".into(), "tank/x".into()],
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "`zfs set 'a b=c' tank/x` failed: boom");
    }
}
