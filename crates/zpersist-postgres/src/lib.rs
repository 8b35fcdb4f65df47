//! The PostgreSQL adapter of point-in-time recovery: the one place that
//! runs `pg_basebackup`, `pg_verifybackup`, `pg_ctl`, `psql` and
//! `barman-cloud-*` (argv vectors, each call bounded, run as the cluster's
//! user when zpersist runs as root), and that touches the local
//! repository's files. Decisions come from `zpersist_core::pitr`.

pub mod barman;
pub mod cluster;
pub mod files;
pub mod local;
pub mod run;

pub use run::PgError;
