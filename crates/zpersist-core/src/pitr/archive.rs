//! The archive command's contract (PostgreSQL, "Continuous Archiving"):
//! never overwrite an archived file; an identical copy already there is
//! success; anything else that fails is a non-zero exit, which PostgreSQL
//! retries.

use super::wal::classify;

/// What to do with one file PostgreSQL asks to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveAction {
    /// Nothing under that name yet: copy it in.
    Store,
    /// The same bytes are archived already (a retry after a crash between
    /// the rename and PostgreSQL hearing of it): success, nothing written.
    AlreadyArchived,
    /// Refused, nothing written.
    Refuse { error: String, help: String },
}

/// What is under the final name already, as the repository saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    Identical,
    Different,
}

/// Decides from the name PostgreSQL gave (`%f`) and what the archive holds.
pub fn archive_decision(name: &str, existing: Existing) -> ArchiveAction {
    if classify(name).is_none() {
        return ArchiveAction::Refuse {
            error: format!(
                "`{}` is not a WAL file name PostgreSQL archives",
                crate::shown(name)
            ),
            help: "archive_command must pass %f (the file's name) and %p (its path); check postgresql.conf's archive_command".into(),
        };
    }
    match existing {
        Existing::Nothing => ArchiveAction::Store,
        Existing::Identical => ArchiveAction::AlreadyArchived,
        Existing::Different => ArchiveAction::Refuse {
            error: format!("the archive already holds a different {name}; it is never overwritten"),
            help: "two clusters archive into one repository, or this cluster was restored without a new timeline; give each cluster its own repository (and keep the archived file: a restore may need it)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_as_a_table() {
        let seg = "000000010000000000000005";
        assert_eq!(
            archive_decision(seg, Existing::Nothing),
            ArchiveAction::Store
        );
        assert_eq!(
            archive_decision(seg, Existing::Identical),
            ArchiveAction::AlreadyArchived
        );
        let ArchiveAction::Refuse { error, .. } = archive_decision(seg, Existing::Different) else {
            panic!()
        };
        assert!(error.contains("never overwritten"), "{error}");
        assert!(matches!(
            archive_decision("../../etc/shadow", Existing::Nothing),
            ArchiveAction::Refuse { .. }
        ));
    }
}
