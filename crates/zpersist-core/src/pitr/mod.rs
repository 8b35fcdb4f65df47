//! PostgreSQL point-in-time recovery as data: the contract the NixOS module
//! writes, restore targets, the choice of base backup, WAL names, retention,
//! the archive command's outcomes and the health figures. No I/O and no
//! clock: `zpersist-postgres` runs the programs, the `zpersist-pitr`
//! binaries gather facts, ask here, and act.

pub mod archive;
pub mod contract;
pub mod health;
pub mod label;
pub mod recovery;
pub mod retention;
pub mod target;
pub mod timeline;
pub mod wal;

pub use archive::{archive_decision, ArchiveAction};
pub use contract::{PitrContract, Repository, PITR_VERSION};
pub use retention::{retention, RetentionPlan, RetentionPolicy};
pub use target::{candidate_backups, choose_base_backup, BaseBackup, Target};

/// What a restore records about where its data came from:
/// `base backup 20261130T100000 + last WAL replayed 000000010000000000000005`.
pub fn provenance(backup_id: &str, last_wal: Option<&str>) -> String {
    match last_wal {
        Some(wal) => format!("base backup {backup_id} + last WAL replayed {wal}"),
        None => format!("base backup {backup_id} + no archived WAL replayed beyond it"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn provenance_names_the_backup_and_the_last_segment() {
        assert_eq!(
            super::provenance("20261130T100000", Some("000000010000000000000005")),
            "base backup 20261130T100000 + last WAL replayed 000000010000000000000005"
        );
    }
}
