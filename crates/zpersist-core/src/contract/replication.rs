//! `/etc/zpersist/replication.json`, rendered by nix/modules/replication.nix
//! and read by replication-lag: the targets (remote over ssh, or a local
//! pool) and which dataset goes to which.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Contract, Diagnostic};

pub const REPLICATION_VERSION: u64 = 1;

/// How long one listing (local zfs, or ssh to a target) may take when
/// neither the config nor `--timeout` says.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 60;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationConfig {
    pub version: u32,
    pub host: String,
    pub targets: BTreeMap<String, Target>,
    pub datasets: Vec<Pair>,
    pub textfile: Option<String>,
    pub max_lag_seconds: Option<u64>,
    /// The wall-clock limit of each zfs and ssh call, in seconds
    /// ([`DEFAULT_TIMEOUT_SECONDS`] when absent).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// A target as replication.json describes it: remote (`host` and the ssh
/// fields all set) or local (`host: null`, none of them: a pool on this
/// host). The contract refuses anything in between.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub dataset: String,
    pub ssh_key: Option<String>,
    pub known_hosts: Option<String>,
    pub identifier: String,
}

impl Target {
    /// The ssh fields this target sets (for a local one) or lacks (for a
    /// remote one), by their JSON names.
    pub fn mismatched_ssh_fields(&self) -> Vec<&'static str> {
        let remote = self.host.is_some();
        [
            ("port", self.port.is_some()),
            ("user", self.user.is_some()),
            ("sshKey", self.ssh_key.is_some()),
            ("knownHosts", self.known_hosts.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set != remote)
        .map(|(name, _)| name)
        .collect()
    }
}

/// One dataset sent to one target.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pair {
    pub source: String,
    pub target: String,
    pub target_dataset: String,
}

impl Contract for ReplicationConfig {
    const KIND: &'static str = "replication config";
    const VERSION: u64 = REPLICATION_VERSION;
    const READER: &'static str = "replication-lag";

    fn problems(&self) -> Vec<Diagnostic> {
        let mut problems: Vec<Diagnostic> = super::zero_timeout(self.timeout_seconds, "listing")
            .into_iter()
            .collect();
        for (name, target) in &self.targets {
            let fields = target.mismatched_ssh_fields();
            if fields.is_empty() {
                continue;
            }
            problems.push(
                Diagnostic::new(if target.host.is_some() {
                    format!(
                        "target \"{name}\" has a host but lacks {}, which ssh needs",
                        fields.join(", ")
                    )
                } else {
                    format!(
                        "target \"{name}\" is local (host is null) but sets {}, which only a remote target has",
                        fields.join(", ")
                    )
                })
                .at_field(format!("targets.{name}")),
            );
        }
        for pair in &self.datasets {
            if !self.targets.contains_key(&pair.target) {
                problems.push(
                    Diagnostic::new(format!(
                        "dataset {} names the target \"{}\", which the config does not define",
                        pair.source, pair.target
                    ))
                    .at_field("datasets"),
                );
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: serde_json::Value) -> Result<ReplicationConfig, String> {
        super::super::parse::<ReplicationConfig>(
            &serde_json::json!({
                "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
                "targets": targets,
                "datasets": [ { "source": "tank/a", "target": "t", "targetDataset": "b/a" } ]
            })
            .to_string(),
        )
        .map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    #[test]
    fn a_target_half_local_half_remote_is_refused_naming_the_fields() {
        let err = config(serde_json::json!({
            "t": { "host": null, "dataset": "b", "sshKey": "/k", "identifier": "t" }
        }))
        .unwrap_err();
        assert!(
            err.contains("target \"t\" is local (host is null) but sets sshKey"),
            "{err}"
        );
        let err = config(serde_json::json!({
            "t": { "host": "nas-1", "port": 22, "dataset": "b", "knownHosts": "/kh", "identifier": "t" }
        }))
        .unwrap_err();
        assert!(
            err.contains("target \"t\" has a host but lacks user, sshKey, which ssh needs"),
            "{err}"
        );
        let err = config(serde_json::json!({
            "t": { "host": null, "dataset": "b", "identifier": "t", "hostKey": "x" }
        }))
        .unwrap_err();
        assert!(err.contains("unknown field `hostKey`"), "{err}");
    }

    #[test]
    fn a_dataset_naming_an_undefined_target_and_a_zero_timeout_are_refused() {
        let err = config(serde_json::json!({})).unwrap_err();
        assert!(
            err.contains("dataset tank/a names the target \"t\", which the config does not define"),
            "{err}"
        );
    }
}
