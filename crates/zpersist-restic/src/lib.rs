//! restic as argv vectors: the snapshots of one path (and host) in a
//! repository, and restoring one of them so that the backed-up path's
//! *contents* land at a directory's root (restic itself restores under
//! `TARGET/<absolute path>`, one level too deep for a dataset's root).
//! Every call is bounded; any non-zero exit (3 included: "some files could
//! not be read") is a failure.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use zpersist_core::preseed::ResticSource;
use zpersist_process::{Command, Failure};

/// A restic call that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("restic {what} on {repository} failed: {message}")]
pub struct ResticError {
    pub what: String,
    pub repository: String,
    pub message: String,
}

/// One snapshot of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub short_id: String,
    /// Seconds since the epoch.
    pub time: i64,
    pub hostname: String,
    pub paths: Vec<String>,
}

#[derive(Deserialize)]
struct RawSnapshot {
    id: String,
    short_id: String,
    time: String,
    hostname: String,
    #[serde(default)]
    paths: Vec<String>,
}

/// A repository as a preseed source names it.
pub struct Repository<'a> {
    pub source: &'a ResticSource,
    /// Bound for listing calls; a restore is bounded by `restore_timeout`.
    pub timeout: Duration,
    pub restore_timeout: Duration,
}

impl Repository<'_> {
    fn error(&self, what: &str, message: impl Into<String>) -> ResticError {
        ResticError {
            what: what.into(),
            repository: self.source.repository.clone(),
            message: message.into(),
        }
    }

    /// The repository's credentials: the environment file's `NAME=value`
    /// lines (comments and blank lines skipped, `export ` and quotes
    /// allowed, as systemd's EnvironmentFile= reads them).
    fn environment(&self) -> Result<BTreeMap<String, String>, ResticError> {
        let Some(file) = &self.source.environment_file else {
            return Ok(BTreeMap::new());
        };
        let text = fs::read_to_string(file).map_err(|e| {
            self.error(
                "environment",
                format!("cannot read the environment file {file}: {e}"),
            )
        })?;
        Ok(parse_environment(&text))
    }

    fn run(&self, what: &str, args: &[String], limit: Duration) -> Result<Vec<u8>, ResticError> {
        let mut argv = vec![
            "-r".to_string(),
            self.source.repository.clone(),
            "--password-file".into(),
            self.source.password_file.clone(),
            // Listing and restoring write nothing into the repository: a
            // stale lock left by a killed backup must not block them.
            "--no-lock".into(),
        ];
        argv.extend(args.iter().cloned());
        let mut restic = Command::new("restic").args(&argv).timeout(limit);
        for (name, value) in self.environment()? {
            restic = restic.env(name, value);
        }
        let e = match restic.run() {
            Ok(out) => return Ok(out.stdout),
            Err(e) => e,
        };
        Err(match &e.failure {
            Failure::Exited { status, stderr } => {
                let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                self.error(
                    what,
                    format!(
                        "exit status {}: {}",
                        status.code().unwrap_or(-1),
                        tail.join(" / ")
                    ),
                )
            }
            Failure::TimedOut { .. } => self.error(
                what,
                format!("did not finish within {} s; it was killed", limit.as_secs()),
            ),
            Failure::NotStarted(reason) if reason.contains("not on PATH") => {
                self.error(what, "restic is not on PATH; install restic")
            }
            Failure::NotStarted(reason) => self.error(what, reason.clone()),
        })
    }

    /// The snapshots holding the source's path (made by its host, when one
    /// is set), oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, ResticError> {
        self.list(Some(&self.source.path))
    }

    /// The snapshots made by the source's host (every host when it sets
    /// none), whatever their paths, oldest first: one call answers for
    /// every path a host backs up to the repository.
    pub fn host_snapshots(&self) -> Result<Vec<Snapshot>, ResticError> {
        self.list(None)
    }

    fn list(&self, path: Option<&str>) -> Result<Vec<Snapshot>, ResticError> {
        let mut args = vec!["snapshots".to_string(), "--json".into()];
        if let Some(path) = path {
            args.push("--path".into());
            args.push(path.to_string());
        }
        if let Some(host) = &self.source.host {
            args.push("--host".into());
            args.push(host.clone());
        }
        let out = self.run("snapshots", &args, self.timeout)?;
        let raw: Vec<RawSnapshot> = serde_json::from_slice(&out).map_err(|e| {
            self.error(
                "snapshots",
                format!("printed something that is not its JSON list: {e}"),
            )
        })?;
        let mut snapshots = Vec::with_capacity(raw.len());
        for s in raw {
            let time = zpersist_core::time::parse_rfc3339(&s.time)
                .map_err(|e| self.error("snapshots", e))?;
            snapshots.push(Snapshot {
                id: s.id,
                short_id: s.short_id,
                time,
                hostname: s.hostname,
                paths: s.paths,
            });
        }
        snapshots.sort_by_key(|s| s.time);
        Ok(snapshots)
    }

    /// Restores snapshot `id` so that the contents of the source's path are
    /// at `root`: restic restores under `root/<staging>/<path>`, then each
    /// entry is renamed up to `root` (same file system: no copy). A rerun
    /// after a crash restores again into a fresh staging directory; the
    /// caller starts from an empty `root`.
    pub fn restore_into(&self, id: &str, root: &Path) -> Result<(), ResticError> {
        let staging = root.join(".zpersist-restic-staging");
        let _ = fs::remove_dir_all(&staging);
        let args = vec![
            "restore".to_string(),
            id.to_string(),
            "--target".into(),
            staging.to_string_lossy().into_owned(),
            "--include".into(),
            self.source.path.clone(),
        ];
        self.run("restore", &args, self.restore_timeout)?;
        let restored = staging.join(self.source.path.trim_start_matches('/'));
        if !restored.is_dir() {
            return Err(self.error(
                "restore",
                format!("snapshot {id} holds no directory {}", self.source.path),
            ));
        }
        let lift = || -> io::Result<()> {
            for entry in fs::read_dir(&restored)? {
                let entry = entry?;
                fs::rename(entry.path(), root.join(entry.file_name()))?;
            }
            // The restored path's own owner and mode belong to the root.
            let meta = fs::symlink_metadata(&restored)?;
            fs::set_permissions(root, meta.permissions())?;
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(root, Some(meta.uid()), Some(meta.gid()))?;
            fs::remove_dir_all(&staging)
        };
        lift().map_err(|e| {
            self.error(
                "restore",
                format!(
                    "moving the restored {} up to {}: {e}",
                    self.source.path,
                    root.display()
                ),
            )
        })
    }
}

/// Environment files are the host adapter's (systemd's reading of them).
pub use zpersist_host::environment::parse_environment;

/// A restic call that failed: its line, itself as the cause.
impl From<ResticError> for zpersist_core::error::Error {
    fn from(e: ResticError) -> zpersist_core::error::Error {
        zpersist_core::error::Error::failed(e.to_string())
            .with_help("run the restic command by hand with the repository's environment file to see more; `restic check` tells whether the repository is sound")
            .caused_by(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_files_read_like_systemd() {
        let env = parse_environment(
            "# credentials\nAWS_ACCESS_KEY_ID=abc\nexport B2_ACCOUNT_KEY=\"k e y\"\n\n; old\nX='1'\n",
        );
        assert_eq!(env["AWS_ACCESS_KEY_ID"], "abc");
        assert_eq!(env["B2_ACCOUNT_KEY"], "k e y");
        assert_eq!(env["X"], "1");
        assert_eq!(env.len(), 3);
    }
}
