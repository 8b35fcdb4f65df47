//! The replication config the NixOS module renders (replication.nix): the
//! contract is zpersist-core's (`contract::replication`); here, where a
//! target is.

use std::time::Duration;

pub use zpersist_core::contract::replication::{
    Pair, ReplicationConfig as Config, Target, DEFAULT_TIMEOUT_SECONDS,
};
use zpersist_process::{Location, SshTarget};

/// Where a replication target is.
pub trait TargetLocation {
    /// Where this target is, each ssh call to it bounded by `timeout`;
    /// `None` when the ssh fields are incomplete for a remote target or set
    /// on a local one (the contract refuses such a config, naming the
    /// fields).
    fn location(&self, timeout: Duration) -> Option<Location>;
}

impl TargetLocation for Target {
    fn location(&self, timeout: Duration) -> Option<Location> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: serde_json::Value) -> Config {
        zpersist_core::contract::parse::<Config>(
            &serde_json::json!({
                "version": 1, "host": "forge", "textfile": null, "maxLagSeconds": null,
                "targets": targets,
                "datasets": [ { "source": "tank/a", "target": "t", "targetDataset": "b/a" } ]
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn a_null_host_is_a_local_target_and_a_host_with_ssh_fields_a_remote_one() {
        let local = config(serde_json::json!({
            "t": { "host": null, "dataset": "usbpool/backup", "identifier": "t" }
        }));
        let limit = Duration::from_secs(5);
        assert_eq!(local.targets["t"].location(limit), Some(Location::Local));
        let remote = config(serde_json::json!({
            "t": { "host": "nas-1", "port": 22, "user": "recv", "dataset": "b",
                   "sshKey": "/k", "knownHosts": "/kh", "identifier": "t" }
        }));
        let Some(Location::Ssh(ssh)) = remote.targets["t"].location(limit) else {
            panic!("not remote: {remote:?}");
        };
        assert_eq!(ssh.to_string(), "recv@nas-1:22");
        assert_eq!(ssh.timeout, limit);
    }
}
