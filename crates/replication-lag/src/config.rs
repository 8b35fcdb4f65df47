//! The replication config the NixOS module renders (replication.nix).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use zpersist_process::{Location, SshTarget};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
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

/// How long one listing (local zfs, or ssh to a target) may take when
/// neither the config nor `--timeout` says.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 60;

/// A target as replication.json describes it: remote (`host` and the ssh
/// fields all set) or local (`host: null`, none of them: a pool on this
/// host). [`Config::parse`] refuses anything in between.
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
    /// Where this target is, each ssh call to it bounded by `timeout`;
    /// `None` when the ssh fields are incomplete for a remote target or set
    /// on a local one (`Config::parse` refuses such a config, naming the
    /// fields).
    pub fn location(&self, timeout: Duration) -> Option<Location> {
        match (
            &self.host,
            self.port,
            &self.user,
            &self.ssh_key,
            &self.known_hosts,
        ) {
            (None, None, None, None, None) => Some(Location::Local),
            (Some(host), Some(port), Some(user), Some(ssh_key), Some(known_hosts)) => {
                Some(Location::Ssh(SshTarget {
                    host: host.clone(),
                    port,
                    user: user.clone(),
                    identity_file: ssh_key.clone(),
                    known_hosts: known_hosts.clone(),
                    timeout,
                }))
            }
            _ => None,
        }
    }

    /// The ssh fields this target sets (for a local one) or lacks (for a
    /// remote one), by their JSON names.
    fn mismatched_ssh_fields(&self) -> Vec<&'static str> {
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

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if config.version != 1 {
            return Err(format!(
                "version {} is not supported (this replication-lag reads version 1)",
                config.version
            ));
        }
        if config.timeout_seconds == Some(0) {
            return Err("timeoutSeconds is 0; give the seconds each listing may take".into());
        }
        for (name, target) in &config.targets {
            let fields = target.mismatched_ssh_fields();
            if fields.is_empty() {
                continue;
            }
            return Err(if target.host.is_some() {
                format!(
                    "target \"{name}\" has a host but lacks {}, which ssh needs",
                    fields.join(", ")
                )
            } else {
                format!(
                    "target \"{name}\" is local (host is null) but sets {}, which only a remote target has",
                    fields.join(", ")
                )
            });
        }
        for pair in &config.datasets {
            if !config.targets.contains_key(&pair.target) {
                return Err(format!(
                    "dataset {} names the target \"{}\", which the config does not define",
                    pair.source, pair.target
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: serde_json::Value) -> Result<Config, String> {
        Config::parse(
            &serde_json::json!({
                "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
                "targets": targets,
                "datasets": [ { "source": "tank/a", "target": "t", "targetDataset": "b/a" } ]
            })
            .to_string(),
        )
    }

    #[test]
    fn a_null_host_is_a_local_target_and_a_host_with_ssh_fields_a_remote_one() {
        let local = config(serde_json::json!({
            "t": { "host": null, "dataset": "usbpool/backup", "identifier": "t" }
        }))
        .unwrap();
        let limit = Duration::from_secs(5);
        assert_eq!(local.targets["t"].location(limit), Some(Location::Local));
        let remote = config(serde_json::json!({
            "t": { "host": "nas-1", "port": 22, "user": "recv", "dataset": "b",
                   "sshKey": "/k", "knownHosts": "/kh", "identifier": "t" }
        }))
        .unwrap();
        let Some(Location::Ssh(ssh)) = remote.targets["t"].location(limit) else {
            panic!("not remote: {remote:?}");
        };
        assert_eq!(ssh.to_string(), "recv@nas-1:22");
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
}
