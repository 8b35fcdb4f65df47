//! archive_command and restore_command.

use std::path::Path;

use zpersist_core::pitr::PitrContract;
use zpersist_postgres::local::{Archived, Fetched};
use zpersist_postgres::PgError;

use crate::pitr::{backend, Backend};

/// Archives the segment PostgreSQL names (`%p` relative to the data
/// directory, `%f` its name).
pub fn archive(contract: &PitrContract, path: &Path, name: &str) -> Result<Archived, PgError> {
    match backend(contract) {
        Backend::Local(repo) => repo.archive(path, name),
        Backend::S3(barman) => {
            if zpersist_core::pitr::wal::classify(name).is_none() {
                return Err(PgError::new(
                    "archiving WAL",
                    name,
                    "not a WAL file name PostgreSQL archives",
                    "archive_command must pass %p and %f",
                ));
            }
            barman.wal_archive(path).map(|()| Archived::Stored)
        }
    }
}

/// Fetches `name` into `dest` for recovery.
pub fn fetch(contract: &PitrContract, name: &str, dest: &Path) -> Result<Fetched, PgError> {
    match backend(contract) {
        Backend::Local(repo) => repo.fetch(name, dest),
        Backend::S3(barman) => barman.wal_restore(name, dest),
    }
}
