//! How far each replication target is behind, measured on the target:
//! the newest snapshot it holds against the newest local one.
//!
//! - [`config`]: /etc/zpersist/replication.json as the NixOS module renders it;
//! - [`snapshots`]: parsing `zfs get` output (pure);
//! - [`lag`]: the comparison and the Prometheus textfile (pure);
//! - [`zfs`]: running `zfs get` locally and over ssh (adapter, argv only).

pub mod config;
pub mod lag;
pub mod snapshots;
pub mod zfs;
