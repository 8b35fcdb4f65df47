//! The recovery settings a restore writes, and what the server's log says
//! about how recovery went.

use super::target::{postgres_time, Target};

/// Marks zpersist's lines in `postgresql.auto.conf`.
pub const BLOCK_START: &str = "# zpersist pitr-restore: recovery settings (begin)";
pub const BLOCK_END: &str = "# zpersist pitr-restore: recovery settings (end)";

/// A value quoted as postgresql.conf reads it.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The lines appended to `postgresql.auto.conf` (which wins over
/// postgresql.conf, and is where ALTER SYSTEM writes). `archive` false adds
/// `archive_mode = off`: a scratch restore must never push its new
/// timeline into the production archive.
pub fn recovery_block(target: &Target, restore_command: &str, archive: bool) -> String {
    let mut lines = vec![
        BLOCK_START.to_string(),
        format!("restore_command = {}", quote(restore_command)),
        "recovery_target_timeline = 'latest'".to_string(),
    ];
    match target {
        Target::Latest => {}
        Target::Time(micros) => {
            lines.push(format!(
                "recovery_target_time = {}",
                quote(&postgres_time(*micros))
            ));
            lines.push("recovery_target_inclusive = on".into());
            lines.push("recovery_target_action = 'promote'".into());
        }
        Target::Backup(_) => {
            lines.push("recovery_target = 'immediate'".into());
            lines.push("recovery_target_action = 'promote'".into());
        }
    }
    if !archive {
        lines.push("archive_mode = off".into());
    }
    lines.push(BLOCK_END.to_string());
    lines.join("\n") + "\n"
}

/// What the server log says about a recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryLog {
    /// Segments restored from the archive, in order.
    pub restored: Vec<String>,
    /// `recovery stopping before commit of transaction ..., time ...`
    pub stopped_at: Option<String>,
    /// `FATAL: recovery ended before configured recovery target was reached`
    pub target_not_reached: bool,
    /// The last FATAL or PANIC line.
    pub fatal: Option<String>,
    /// `last completed transaction was at log time ...`
    pub last_transaction: Option<String>,
}

impl RecoveryLog {
    pub fn parse(log: &str) -> RecoveryLog {
        let mut out = RecoveryLog::default();
        for line in log.lines() {
            if let Some(rest) = line.split("restored log file \"").nth(1) {
                if let Some(name) = rest.split('"').next() {
                    out.restored.push(name.to_string());
                }
            }
            if let Some(rest) = line.split("recovery stopping ").nth(1) {
                out.stopped_at = Some(rest.trim().to_string());
            }
            if line.contains("recovery ended before configured recovery target was reached") {
                out.target_not_reached = true;
            }
            if let Some(rest) = line
                .split("last completed transaction was at log time ")
                .nth(1)
            {
                out.last_transaction = Some(rest.trim().to_string());
            }
            if line.contains("FATAL:") || line.contains("PANIC:") {
                out.fatal = Some(line.trim().to_string());
            }
        }
        out
    }

    /// The newest segment (not history file) restored.
    pub fn last_segment(&self) -> Option<&str> {
        self.restored
            .iter()
            .rev()
            .find(|name| super::wal::classify(name) == Some(super::wal::WalKind::Segment))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_for_each_target() {
        insta::assert_snapshot!(recovery_block(
            &Target::Time(1_796_033_700_250_000),
            "/bin/pitr-restore-wal --contract '/etc/x.json' %f %p",
            false
        ));
        let latest = recovery_block(&Target::Latest, "x", true);
        assert!(!latest.contains("recovery_target_time ="));
        assert!(!latest.contains("archive_mode"));
        assert!(recovery_block(&Target::Backup("b".into()), "x", true).contains("'immediate'"));
        assert_eq!(quote("it's"), "'it''s'");
    }

    #[test]
    fn a_log_says_what_was_replayed_and_why_it_stopped() {
        let log = "2026-11-30 14:05:00 UTC [1] LOG:  starting point-in-time recovery to 2026-11-30 14:04:50+00\n\
            2026-11-30 14:05:00 UTC [1] LOG:  restored log file \"000000010000000000000008\" from archive\n\
            2026-11-30 14:05:00 UTC [1] LOG:  restored log file \"000000010000000000000009\" from archive\n\
            2026-11-30 14:05:00 UTC [1] LOG:  restored log file \"00000002.history\" from archive\n\
            2026-11-30 14:05:01 UTC [1] LOG:  recovery stopping before commit of transaction 745, time 2026-11-30 14:04:51.1+00\n\
            2026-11-30 14:05:01 UTC [1] LOG:  last completed transaction was at log time 2026-11-30 14:04:49.5+00\n";
        let parsed = RecoveryLog::parse(log);
        assert_eq!(parsed.last_segment(), Some("000000010000000000000009"));
        assert!(parsed.stopped_at.unwrap().contains("transaction 745"));
        assert_eq!(
            parsed.last_transaction.as_deref(),
            Some("2026-11-30 14:04:49.5+00")
        );
        assert!(!parsed.target_not_reached);
        let failed = RecoveryLog::parse(
            "x FATAL:  recovery ended before configured recovery target was reached\n",
        );
        assert!(failed.target_not_reached);
        assert!(failed.fatal.is_some());
    }
}
