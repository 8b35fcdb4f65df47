//! How far each replication target is behind, measured on the target:
//! the newest snapshot it holds against the newest local one.
//!
//! - [`config`]: /etc/zpersist/replication.json as the NixOS module renders it;
//! - [`listing`]: the snapshots here and on a target (zpersist-zfs's typed
//!   listing at the target's `Location`: here, or over the pinned ssh);
//! - [`report`]: the measurements and the Prometheus textfile (pure).
//!
//! The comparison itself is zpersist-core's `replication::measure`.

pub mod config;
pub mod listing;
pub mod report;
