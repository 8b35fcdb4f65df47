//! The library of operations: each flow a binary (and, later, a `zpersist`
//! subcommand) runs, over the adapters and the core. A binary is a thin
//! main over one of these: arguments → contract → operation → report.
//!
//! - [`backup_snapshot`]: the snapshot and read-only clone a restic
//!   backup reads, and their release (`zpersist-backup-snapshot`).
//! - [`check_mounted`]: whether a service's datasets are mounted where it
//!   keeps its data (`zpersist-check-mounted`).
//! - [`datasets`]: make a pool's datasets match a declared plan,
//!   idempotently and never destructively (`ensure-datasets`).
//! - [`preseed`]: restore a service's empty dataset from the freshest good
//!   source before it starts (`preseed-restore`).
//! - [`drill`]: restore each declared source's freshest point into a
//!   scratch place no service sees, check it, measure RPO and RTO
//!   (`zpersist-drill`).
//! - [`migrate`]: move a service's existing directory into its own
//!   dataset: copy, verify, swap, resumable (`migrate-to-dataset`).
//! - [`pitr`]: PostgreSQL point-in-time recovery's flows (archive and
//!   fetch WAL, base backups, restore, drill, heartbeat): the `pitr-*`
//!   binaries and preseed's PITR source.
//! - [`replication`]: how far each replication target is behind (the
//!   config, the listings here and on a target, the measurements and their
//!   textfile): `replication-lag` and `zpersist-status`.
//! - [`status`]: whether each service's persistence keeps its promises
//!   (`zpersist-status`, `zpersist status`).
//! - [`config`]: where each contract is in the configuration directory,
//!   read by the one loader; `check` reads them all (`zpersist config check`).
//! - [`load_key`]: load an encryption root's key before its services
//!   (`zpersist-load-key`).

pub mod backup_snapshot;
pub mod check_mounted;
pub mod config;
pub mod datasets;
pub mod drill;
pub mod load_key;
pub mod migrate;
pub mod pitr;
pub mod preseed;
pub mod replication;
pub mod status;
