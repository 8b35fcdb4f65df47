//! The restore drill of each service in `zpersist status`: where
//! `zpersist-drill` leaves its result (status.json's `services.<name>.drill`,
//! only for a service whose drill is enabled), the result as read, and the
//! verdict: the drill ran recently enough, every source restored and was
//! checked, and each source's recovery point is within the objective. No
//! I/O, no clock.

use serde::{Deserialize, Serialize};

use super::Problem;
use crate::drill::DrillResult;

/// Where a service's drill result lives and what it promises
/// (`status.json`'s `services.<name>.drill`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillObjectives {
    /// `zpersist-drill`'s result file (`<stateDir>/<service>.json`).
    pub result_file: String,
    /// The unit that runs the drill (`zpersist-<name>-drill.service`).
    pub unit: String,
    /// The last drill ran at most this long ago (the module: twice the
    /// drill's interval plus its randomized delay).
    #[serde(default)]
    pub max_age_seconds: Option<u64>,
    /// Each source's restored data was at most this old when the drill
    /// started (its RPO); `None`: shown, never judged.
    #[serde(default)]
    pub max_rpo_seconds: Option<u64>,
}

/// What the result file was found to hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum DrillFacts {
    /// The last run's result.
    Ran { result: DrillResult },
    /// No result file: no drill has run.
    Never,
    /// The file is there but cannot be read, or is not a drill result.
    Unreadable { error: String, help: String },
}

/// The last drill of one service, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillStatus {
    pub result_file: String,
    pub unit: String,
    #[serde(flatten)]
    pub facts: DrillFacts,
    /// Since the last run started.
    pub age_seconds: Option<i64>,
    /// The drill's own objectives met (ran, recent, succeeded, RPO).
    pub ok: bool,
}

impl DrillStatus {
    pub fn result(&self) -> Option<&DrillResult> {
        match &self.facts {
            DrillFacts::Ran { result } => Some(result),
            _ => None,
        }
    }
}

/// The verdict on one service's last drill, its problems appended to
/// `problems`.
pub fn evaluate_drill(
    service: &str,
    objectives: &DrillObjectives,
    facts: DrillFacts,
    now: i64,
    problems: &mut Vec<Problem>,
) -> DrillStatus {
    let unit = objectives.unit.as_str();
    let file = objectives.result_file.as_str();
    let again = format!("`journalctl -u {unit}` says why; `systemctl start {unit}` drills again");
    let before = problems.len();
    let mut age_seconds = None;
    match &facts {
        DrillFacts::Never => {
            if let Some(max) = objectives.max_age_seconds {
                problems.push(Problem {
                    error: format!(
                        "no restore drill of {service} has run (no {file}; objective: one at most {max} s old): nothing shows its data restores"
                    ),
                    help: format!("`systemctl start {unit}` runs one now; `systemctl list-timers {unit}` says when the timer runs it"),
                });
            }
        }
        DrillFacts::Unreadable { error, help } => problems.push(Problem {
            error: format!("the last restore drill of {service}: {error}"),
            help: help.clone(),
        }),
        DrillFacts::Ran { result } => {
            let at = crate::time::rfc3339(result.started);
            let age = (now - result.started).max(0);
            age_seconds = Some(age);
            let failed: Vec<_> = result.sources.iter().filter(|s| !s.success).collect();
            for s in &failed {
                problems.push(Problem {
                    error: format!(
                        "the restore drill of {service} from {} (started {at}) failed: {}",
                        s.source,
                        s.error.as_deref().unwrap_or("a check did not pass")
                    ),
                    help: match &s.help {
                        Some(h) => format!("{h}; {again}"),
                        None => again.clone(),
                    },
                });
            }
            if !result.success && failed.is_empty() {
                problems.push(Problem {
                    error: format!(
                        "the restore drill of {service} (started {at}) failed: {}",
                        result.error.as_deref().unwrap_or("no source was drilled")
                    ),
                    help: match &result.help {
                        Some(h) => format!("{h}; {again}"),
                        None => again.clone(),
                    },
                });
            }
            if let Some(max) = objectives.max_age_seconds {
                if age as u64 > max {
                    problems.push(Problem {
                        error: format!(
                            "the last restore drill of {service} started {at} and is {age} s old (objective: at most {max} s)"
                        ),
                        help: format!("`systemctl list-timers {unit}`: the timer's runs do not happen; {again}"),
                    });
                }
            }
            if let Some(max) = objectives.max_rpo_seconds {
                for s in &result.sources {
                    if let Some(rpo) = s.rpo_seconds.filter(|rpo| *rpo as u64 > max) {
                        problems.push(Problem {
                            error: format!(
                                "the restore drill of {service} from {} restored data {rpo} s old (RPO objective: at most {max} s){}",
                                s.source,
                                s.point.as_ref().map(|p| format!(": {p}")).unwrap_or_default()
                            ),
                            help: format!("that source's newest point is too old: see why it is not refreshed (`zpersist-status {service}` shows its snapshots, targets and backups); {again}"),
                        });
                    }
                }
            }
        }
    }
    DrillStatus {
        result_file: file.into(),
        unit: unit.into(),
        ok: problems.len() == before && !matches!(facts, DrillFacts::Never),
        facts,
        age_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::SourceResult;

    fn objectives(max_age: Option<u64>, max_rpo: Option<u64>) -> DrillObjectives {
        DrillObjectives {
            result_file: "/var/lib/zpersist/drill/sonarr.json".into(),
            unit: "zpersist-sonarr-drill.service".into(),
            max_age_seconds: max_age,
            max_rpo_seconds: max_rpo,
        }
    }

    fn ran(success: bool, rpo: i64) -> DrillFacts {
        DrillFacts::Ran {
            result: DrillResult {
                version: 1,
                service: "sonarr".into(),
                dataset: "tank/services/sonarr".into(),
                started: 1000,
                success,
                sources: vec![SourceResult {
                    source: "replica:nas".into(),
                    success,
                    point: Some("replica:nas:backup/sonarr@a".into()),
                    point_time: Some(1000 - rpo),
                    rpo_seconds: Some(rpo),
                    rto_seconds: 2.5,
                    checks: vec![],
                    error: (!success).then(|| "sonarr.db: integrity_check failed".into()),
                    help: None,
                }],
                cleaned: vec![],
                error: None,
                help: None,
            },
        }
    }

    fn judge(o: DrillObjectives, facts: DrillFacts, now: i64) -> (DrillStatus, Vec<Problem>) {
        let mut problems = Vec::new();
        let s = evaluate_drill("sonarr", &o, facts, now, &mut problems);
        (s, problems)
    }

    #[test]
    fn each_missed_drill_objective_is_a_problem_naming_the_unit() {
        let (s, p) = judge(objectives(Some(100), Some(60)), ran(true, 30), 1050);
        assert!(s.ok && p.is_empty(), "{p:?}");
        assert_eq!(s.age_seconds, Some(50));

        let (s, p) = judge(objectives(Some(100), Some(60)), ran(false, 30), 1050);
        assert!(!s.ok);
        assert!(p[0].error.starts_with("the restore drill of sonarr from replica:nas (started 1970-01-01T00:16:40Z) failed: sonarr.db: integrity_check failed"), "{p:?}");
        assert!(p[0]
            .help
            .contains("`systemctl start zpersist-sonarr-drill.service`"));

        let (_, p) = judge(objectives(Some(100), Some(60)), ran(true, 30), 1200);
        assert!(
            p[0].error
                .contains("is 200 s old (objective: at most 100 s)"),
            "{p:?}"
        );

        let (_, p) = judge(objectives(None, Some(60)), ran(true, 90), 1050);
        assert!(
            p[0].error
                .contains("from replica:nas restored data 90 s old (RPO objective: at most 60 s)"),
            "{p:?}"
        );
        let (_, p) = judge(objectives(None, None), ran(true, 90), 1050);
        assert!(p.is_empty(), "no RPO objective, no judgement");

        let (s, p) = judge(objectives(Some(100), None), DrillFacts::Never, 1050);
        assert!(!s.ok);
        assert!(
            p[0].error.starts_with("no restore drill of sonarr has run"),
            "{p:?}"
        );
        let (_, p) = judge(objectives(None, None), DrillFacts::Never, 1050);
        assert!(
            p.is_empty(),
            "no age objective: none ran is shown, not judged"
        );
    }
}
