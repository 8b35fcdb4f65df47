//! The contract `/etc/zpersist/pitr.json` the NixOS module writes and every
//! `pitr-*` binary reads: the cluster, the repository, retention, bounds.

use serde::{Deserialize, Serialize};

use super::retention::RetentionPolicy;
use crate::contract::{Contract, Diagnostic};
use crate::plan::normalize_path;

pub const PITR_VERSION: u64 = 1;

impl Contract for PitrContract {
    const KIND: &'static str = "contract";
    const VERSION: u64 = PITR_VERSION;
    const READER: &'static str = "zpersist";

    fn problems(&self) -> Vec<Diagnostic> {
        self.rule_problems()
            .into_iter()
            .map(Diagnostic::new)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PitrContract {
    pub version: u64,
    pub cluster: Cluster,
    pub repository: Repository,
    pub retention: Retention,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub heartbeat: Heartbeat,
    pub drill: Drill,
    /// Where the Prometheus textfiles go (`pitr-archive.prom`, `pitr-drill.prom`).
    pub metrics_dir: String,
    /// Archive health: nothing archived for longer than this is a failure.
    #[serde(default = "default_max_archive_age")]
    pub max_archive_age_seconds: i64,
}

/// The running cluster whose WAL is archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// The directory of `pg_basebackup`, `pg_ctl`, `psql`, ...
    pub pg_bin: String,
    pub data_dir: String,
    /// The Unix socket directory clients connect through.
    pub socket_dir: String,
    pub port: u16,
    /// The operating-system user the cluster runs as (and its superuser role).
    pub user: String,
    #[serde(default = "default_database")]
    pub database: String,
}

/// Where WAL and base backups go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Repository {
    /// A directory (its own dataset): `wal/` and `base/<id>/`. With
    /// `dataset` (the module always writes it), every command first checks
    /// that `dir` shows that dataset, mounted: an unmounted dataset's empty
    /// mountpoint is the root filesystem, never the repository.
    Local {
        dir: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dataset: Option<String>,
    },
    /// Object storage through barman-cloud.
    S3(S3Repository),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Repository {
    /// `s3://bucket/prefix`
    pub destination: String,
    /// barman-cloud's server name: the folder below the prefix.
    pub server_name: String,
    /// A non-AWS endpoint (`--endpoint-url`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// `NAME=value` lines: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...
    #[serde(default)]
    pub environment_file: Option<String>,
    /// The directory holding barman-cloud-*; `None`: PATH.
    #[serde(default)]
    pub barman_bin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub recovery_window_seconds: Option<i64>,
}

impl Retention {
    pub fn policy(&self) -> RetentionPolicy {
        match (self.count, self.recovery_window_seconds) {
            (_, Some(window)) => RetentionPolicy::RecoveryWindow(window),
            (Some(count), None) => RetentionPolicy::Count(count),
            (None, None) => RetentionPolicy::RecoveryWindow(14 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// psql calls, listings, one WAL file's archiving or fetching.
    pub command_seconds: u64,
    /// A whole base backup.
    pub base_backup_seconds: u64,
    /// A whole restore, replay included.
    pub restore_seconds: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command_seconds: 120,
            base_backup_seconds: 6 * 3600,
            restore_seconds: 6 * 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    /// A one-row table in `cluster.database`, updated on a short timer.
    pub table: String,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            table: "zpersist_pitr_heartbeat".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Drill {
    /// Where each drill restores (into `data/`, which it makes and removes;
    /// nothing else in it is touched). Never the repository, the data
    /// directory or a path in `protected_paths`, nor inside or above one.
    pub scratch_dir: String,
    /// Paths the scratch directory must neither hold nor lie inside: the
    /// module writes every declared dataset's mountpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_paths: Vec<String>,
    /// The throwaway cluster's port (on a private socket in the scratch
    /// directory, no TCP).
    pub port: u16,
}

fn default_database() -> String {
    "postgres".into()
}

fn default_max_archive_age() -> i64 {
    3600
}

/// `a` and `b` are one path, or one lies inside the other (whole
/// components; `//` and a trailing `/` do not count).
pub fn overlap(a: &str, b: &str) -> bool {
    let (a, b) = (normalize_path(a), normalize_path(b));
    let inside = |x: &str, y: &str| x == y || y == "/" || x.starts_with(&format!("{y}/"));
    inside(&a, &b) || inside(&b, &a)
}

impl PitrContract {
    /// Parses and validates the contract (the one contract loader,
    /// [`crate::contract::parse`]); every problem, located, as text.
    pub fn parse(text: &str) -> Result<PitrContract, Vec<String>> {
        crate::contract::parse::<PitrContract>(text)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    fn rule_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut absolute = |what: &str, path: &str| {
            if !path.starts_with('/') {
                problems.push(format!(
                    "{what} `{}` must be an absolute path",
                    crate::shown(path)
                ));
            }
        };
        absolute("cluster.pgBin", &self.cluster.pg_bin);
        absolute("cluster.dataDir", &self.cluster.data_dir);
        absolute("cluster.socketDir", &self.cluster.socket_dir);
        absolute("drill.scratchDir", &self.drill.scratch_dir);
        absolute("metricsDir", &self.metrics_dir);
        match &self.repository {
            Repository::Local { dir, dataset } => {
                absolute("repository.local.dir", dir);
                if let Some(problem) = dataset.as_deref().and_then(crate::name::name_problem) {
                    problems.push(format!("repository.local.dataset: {problem}"));
                }
            }
            Repository::S3(s3) => {
                if let Some(file) = &s3.environment_file {
                    absolute("repository.s3.environmentFile", file);
                }
                if let Some(bin) = &s3.barman_bin {
                    absolute("repository.s3.barmanBin", bin);
                }
                if !s3.destination.starts_with("s3://") || s3.destination.len() <= 5 {
                    problems.push(format!(
                        "repository.s3.destination `{}` must look like s3://bucket/prefix",
                        crate::shown(&s3.destination)
                    ));
                }
                if s3.server_name.is_empty() || s3.server_name.contains('/') {
                    problems.push(
                        "repository.s3.serverName must be a non-empty name without `/`".into(),
                    );
                }
            }
        }
        if let Repository::Local { dir, .. } = &self.repository {
            if overlap(dir, &self.cluster.data_dir) {
                problems.push(format!(
                    "repository.local.dir {dir} and the data directory {} overlap: the archive must survive the loss of the data directory",
                    self.cluster.data_dir
                ));
            }
        }
        let scratch = &self.drill.scratch_dir;
        let mut guarded: Vec<(&str, &str)> = vec![("the data directory", &self.cluster.data_dir)];
        if let Repository::Local { dir, .. } = &self.repository {
            guarded.push(("the repository", dir));
        }
        guarded.extend(
            self.drill
                .protected_paths
                .iter()
                .map(|p| ("a declared dataset's path", p.as_str())),
        );
        for (what, path) in guarded {
            if overlap(scratch, path) {
                problems.push(format!(
                    "drill.scratchDir {} and {what} {} overlap (one is, holds or lies inside the other): the drill restores a throwaway copy there, never where data lives",
                    crate::shown(scratch),
                    crate::shown(path)
                ));
            }
        }
        if self.retention.count == Some(0) {
            problems.push("retention.count must be at least 1".into());
        }
        if self
            .retention
            .recovery_window_seconds
            .is_some_and(|w| w <= 0)
        {
            problems.push("retention.recoveryWindowSeconds must be positive".into());
        }
        let t = &self.timeouts;
        for (what, value) in [
            ("commandSeconds", t.command_seconds),
            ("baseBackupSeconds", t.base_backup_seconds),
            ("restoreSeconds", t.restore_seconds),
        ] {
            if value == 0 || value > 7 * 86_400 {
                problems.push(format!("timeouts.{what} {value} must be from 1 to 604800"));
            }
        }
        if self.heartbeat.table.is_empty()
            || !self
                .heartbeat
                .table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(format!(
                "heartbeat.table `{}` must be a plain lower-case SQL name (letters, digits, `_`)",
                crate::shown(&self.heartbeat.table)
            ));
        }
        if self.drill.port == self.cluster.port {
            problems.push("drill.port must differ from the cluster's port".into());
        }
        if self.max_archive_age_seconds <= 0 {
            problems.push("maxArchiveAgeSeconds must be positive".into());
        }
        problems
    }

    /// The repository as messages name it.
    pub fn repository_label(&self) -> String {
        match &self.repository {
            Repository::Local { dir, .. } => dir.clone(),
            Repository::S3(s3) => format!("{} ({})", s3.destination, s3.server_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn example() -> &'static str {
        r#"{"version":1,
            "cluster":{"pgBin":"/usr/lib/postgresql/15/bin","dataDir":"/var/lib/postgresql/15","socketDir":"/run/postgresql","port":5432,"user":"postgres"},
            "repository":{"local":{"dir":"/var/lib/zpersist-pitr"}},
            "retention":{"recoveryWindowSeconds":1209600},
            "drill":{"scratchDir":"/var/lib/zpersist-pitr-drill","port":5499},
            "metricsDir":"/var/lib/zpersist"}"#
    }

    #[test]
    fn a_contract_reads_with_defaults() {
        let c = PitrContract::parse(example()).unwrap();
        assert_eq!(c.cluster.database, "postgres");
        assert_eq!(
            c.retention.policy(),
            RetentionPolicy::RecoveryWindow(1_209_600)
        );
        assert_eq!(c.heartbeat.table, "zpersist_pitr_heartbeat");
        assert_eq!(c.timeouts, Timeouts::default());
    }

    #[test]
    fn every_problem_is_named() {
        let text = r#"{"version":1,
            "cluster":{"pgBin":"bin","dataDir":"/srv/pg","socketDir":"/run/postgresql","port":5432,"user":"postgres"},
            "repository":{"local":{"dir":"/srv/pg/archive"}},
            "retention":{"count":0},
            "timeouts":{"commandSeconds":0,"baseBackupSeconds":1,"restoreSeconds":1},
            "heartbeat":{"table":"x; drop table y"},
            "drill":{"scratchDir":"/tmp/d","port":5432},
            "metricsDir":"/var/lib/zpersist"}"#;
        insta::assert_debug_snapshot!(PitrContract::parse(text).unwrap_err());
        let s3 = example().replace(
            r#"{"local":{"dir":"/var/lib/zpersist-pitr"}}"#,
            r#"{"s3":{"destination":"bucket","serverName":"a/b"}}"#,
        );
        insta::assert_debug_snapshot!(PitrContract::parse(&s3).unwrap_err());
        assert!(PitrContract::parse(r#"{"version":2}"#).unwrap_err()[0].contains("version 2"));
    }

    #[test]
    fn a_scratch_directory_where_data_lives_is_refused() {
        let with_scratch = |scratch: &str| {
            example()
                .replace(
                    r#""scratchDir":"/var/lib/zpersist-pitr-drill""#,
                    &format!(r#""scratchDir":"{scratch}","protectedPaths":["/srv/sonarr"]"#),
                )
                .replace(
                    r#"{"local":{"dir":"/var/lib/zpersist-pitr"}}"#,
                    r#"{"local":{"dir":"/var/lib/zpersist-pitr","dataset":"tank/pitr"}}"#,
                )
        };
        assert!(PitrContract::parse(&with_scratch("/var/lib/zpersist-pitr-drill")).is_ok());
        for (scratch, what) in [
            ("/var/lib/zpersist-pitr", "the repository"),
            ("/var/lib/zpersist-pitr/drill", "the repository"),
            ("/var/lib", "the repository"),
            ("/var/lib/postgresql", "the data directory"),
            ("/var/lib/postgresql/15/", "the data directory"),
            ("/", "the data directory"),
            ("/srv/sonarr/scratch", "a declared dataset's path"),
            ("/srv", "a declared dataset's path"),
        ] {
            let problems = PitrContract::parse(&with_scratch(scratch)).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("drill.scratchDir") && p.contains(what)),
                "{scratch}: {problems:?}"
            );
        }
        assert!(!overlap("/srv/sonarr2", "/srv/sonarr"));
        let bad = example().replace(
            r#""dir":"/var/lib/zpersist-pitr""#,
            r#""dir":"/var/lib/zpersist-pitr","dataset":"tank/bad@x""#,
        );
        assert!(PitrContract::parse(&bad).unwrap_err()[0].contains("repository.local.dataset"));
    }
}
