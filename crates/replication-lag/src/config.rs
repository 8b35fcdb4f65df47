//! The replication config the NixOS module renders (replication.nix).

use std::collections::BTreeMap;

use serde::Deserialize;
use zpersist_ssh::SshTarget;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub host: String,
    pub targets: BTreeMap<String, Target>,
    pub datasets: Vec<Pair>,
    pub textfile: Option<String>,
    pub max_lag_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dataset: String,
    pub ssh_key: String,
    pub known_hosts: String,
    pub identifier: String,
}

impl Target {
    /// How ssh reaches this target.
    pub fn ssh(&self) -> SshTarget {
        SshTarget {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            identity_file: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
        }
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
