//! Failpoints: crash points the tests set through an environment variable
//! (`VAR=WHEN:WHAT`, e.g. `ZPERSIST_MIGRATE_FAILPOINT=after:copy`), where
//! the process aborts as a `kill -9` would stop it. Never set in
//! production; unset, a check is one environment lookup.

/// The failpoints of one program.
#[derive(Debug, Clone, Copy)]
pub struct Failpoints {
    /// The environment variable naming the point to crash at.
    pub var: &'static str,
    /// The program's name, for the line it prints before aborting.
    pub program: &'static str,
}

impl Failpoints {
    pub const fn new(var: &'static str, program: &'static str) -> Failpoints {
        Failpoints { var, program }
    }

    /// Whether the variable names `WHEN:WHAT`.
    pub fn armed(&self, when: &str, what: &str) -> bool {
        std::env::var(self.var).is_ok_and(|point| point == format!("{when}:{what}"))
    }

    /// Aborts the process (`std::process::abort`) when the variable names
    /// `WHEN:WHAT`, saying `PROGRAM: failpoint WHEN:WHAT: aborting` first.
    pub fn check(&self, when: &str, what: &str) {
        if self.armed(when, what) {
            eprintln!("{}: failpoint {when}:{what}: aborting", self.program);
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failpoint_is_armed_by_its_exact_name_only() {
        let points = Failpoints::new("ZPERSIST_TEST_FAILPOINT_ARMED", "test");
        assert!(!points.armed("after", "copy"));
        // No other test reads or writes this variable.
        std::env::set_var(points.var, "after:copy");
        assert!(points.armed("after", "copy"));
        assert!(!points.armed("after", "cop"));
        assert!(!points.armed("journaled", "copy"));
        assert!(!points.armed("aft", "er:copy"));
        points.check("after", "verify");
        std::env::remove_var(points.var);
    }
}
