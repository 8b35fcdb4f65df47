//! Pools in `zpersist status`: each pool's health and its last scrub, as
//! `zpool` reported them (zpersist-zfs's `pool` module reads them), judged
//! against the scrub objective. No I/O, no clock.

use serde::{Deserialize, Serialize};

use super::Problem;

/// What one pool promises (`status.json`'s `pools.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolObjectives {
    /// The last completed scrub is at most this old (the module defaults
    /// it from `services.zfs.autoScrub.interval`); `None`: the age is
    /// shown, never judged.
    #[serde(default)]
    pub max_scrub_age_seconds: Option<u64>,
}

/// The pool's last scan (`zpool status`'s `scan:` line, `scrub:` on
/// zfs-fuse): OpenZFS and zfs-fuse show only the latest one, so a
/// resilver hides the scrub before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum Scan {
    /// `none requested`: never scrubbed (nor resilvered).
    None,
    /// A completed scrub, when it ended and the errors it found.
    Scrubbed { at: i64, errors: u64 },
    /// A scrub running now (`since`: when it started, where zpool says).
    Scrubbing { since: Option<i64> },
    /// A scrub canceled, stopped or paused: it did not complete.
    ScrubStopped { at: Option<i64> },
    /// A completed resilver (the scrub before it is not shown any more).
    Resilvered { at: Option<i64>, errors: u64 },
    /// A resilver running now.
    Resilvering { since: Option<i64> },
    /// A line this zpersist cannot read: never taken for a fresh scrub.
    Unknown { line: String },
}

/// One pool as zpool reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolFacts {
    /// `zpool list -o health`: ONLINE, DEGRADED, FAULTED, UNAVAIL, ...
    pub health: String,
    pub scan: Scan,
    /// `zpool status`'s `errors:` line when it is not `No known data
    /// errors` (permanent errors in files: `zpool status -v` lists them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_errors: Option<String>,
}

/// One pool's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub pool: String,
    /// `None` when zpool could not say (the problem says why).
    pub facts: Option<PoolFacts>,
    /// When the last completed scrub ended, and its age.
    pub last_scrub: Option<i64>,
    pub scrub_age_seconds: Option<i64>,
    /// The errors the last completed scrub found.
    pub scrub_errors: Option<u64>,
    pub objectives: PoolObjectives,
    pub problems: Vec<Problem>,
}

impl PoolStatus {
    pub fn in_shape(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn healthy(&self) -> bool {
        self.facts.as_ref().is_some_and(|f| f.health == "ONLINE")
    }
}

/// The verdict on one pool: `facts` is zpool's answer, or why there is
/// none (error, help).
pub fn evaluate_pool(
    pool: &str,
    facts: Result<PoolFacts, (String, String)>,
    objectives: PoolObjectives,
    now: i64,
) -> PoolStatus {
    let mut problems = Vec::new();
    let facts = match facts {
        Ok(f) => Some(f),
        Err((error, help)) => {
            problems.push(Problem {
                error: format!("the pool {pool} cannot be read: {error}"),
                help,
            });
            None
        }
    };
    let (last_scrub, scrub_errors) = match facts.as_ref().map(|f| &f.scan) {
        Some(Scan::Scrubbed { at, errors }) => (Some(*at), Some(*errors)),
        _ => (None, None),
    };
    let scrub_age_seconds = last_scrub.map(|at| (now - at).max(0));
    if let Some(f) = &facts {
        if f.health != "ONLINE" {
            problems.push(Problem {
                error: format!("the pool {pool} is {}", f.health),
                help: format!("`zpool status -v {pool}` names the device and what to do (`zpool online`, `zpool replace {pool} OLD NEW`, `zpool clear {pool}` once fixed)"),
            });
        }
        if let Some(errors) = &f.data_errors {
            problems.push(Problem {
                error: format!("the pool {pool} reports data errors: {errors}"),
                help: format!("`zpool status -v {pool}` lists the damaged files: restore them (a snapshot, a replica, a backup), then `zpool clear {pool}` and `zpool scrub {pool}`"),
            });
        }
        if let Some(errors) = scrub_errors.filter(|e| *e > 0) {
            problems.push(Problem {
                error: format!(
                    "the last scrub of {pool} ({}) found {errors} error{}",
                    crate::time::rfc3339(last_scrub.unwrap_or(0)),
                    if errors == 1 { "" } else { "s" }
                ),
                help: format!("`zpool status -v {pool}` says which devices and files; replace a failing disk, restore damaged files, then `zpool clear {pool}` and `zpool scrub {pool}`"),
            });
        }
        if let Scan::Resilvered { errors, at } = &f.scan {
            if *errors > 0 {
                problems.push(Problem {
                    error: format!(
                        "the last resilver of {pool}{} found {errors} error{}",
                        at.map(|a| format!(" ({})", crate::time::rfc3339(a)))
                            .unwrap_or_default(),
                        if *errors == 1 { "" } else { "s" }
                    ),
                    help: format!("`zpool status -v {pool}`, then `zpool clear {pool}` and `zpool scrub {pool}`"),
                });
            }
        }
        if let Some(max) = objectives.max_scrub_age_seconds {
            let scrub_now = format!("`zpool scrub {pool}` scrubs it now; `systemctl list-timers zfs-scrub` says when services.zfs.autoScrub runs next");
            let missing = |what: &str| Problem {
                error: format!(
                    "the pool {pool} {what} (objective: a completed scrub at most {max} s old)"
                ),
                help: scrub_now.clone(),
            };
            match &f.scan {
                Scan::Scrubbed { .. } => {
                    let age = scrub_age_seconds.unwrap_or(0);
                    if age as u64 > max {
                        problems.push(Problem {
                            error: format!(
                                "the last scrub of {pool} ended {} and is {age} s old (objective: at most {max} s)",
                                crate::time::rfc3339(last_scrub.unwrap_or(0))
                            ),
                            help: scrub_now.clone(),
                        });
                    }
                }
                // A scrub that runs is judged by when it started: one
                // running longer than the objective is stuck.
                Scan::Scrubbing { since } => {
                    if let Some(age) = since.map(|s| now - s).filter(|age| *age as u64 > max) {
                        problems.push(Problem {
                            error: format!("the scrub of {pool} has been running for {age} s (objective: a completed scrub at most {max} s old)"),
                            help: format!("`zpool status {pool}` shows its progress; a scrub that makes none points at a failing disk"),
                        });
                    }
                }
                Scan::None => problems.push(missing("has never been scrubbed")),
                Scan::ScrubStopped { .. } => {
                    problems.push(missing("has no completed scrub: the last one was canceled or stopped"))
                }
                Scan::Resilvered { .. } | Scan::Resilvering { .. } => problems.push(missing(
                    "shows no completed scrub since its last resilver",
                )),
                Scan::Unknown { line } => problems.push(missing(&format!(
                    "has a scan line zpersist cannot read (`{line}`), so no completed scrub is known"
                ))),
            }
        }
    }
    PoolStatus {
        pool: pool.into(),
        facts,
        last_scrub,
        scrub_age_seconds,
        scrub_errors,
        objectives,
        problems,
    }
}

/// The pools' part of the Prometheus textfile (`zpersist_status_pool_*`).
pub fn textfile(pools: &[PoolStatus], out: &mut String) {
    let label = super::label;
    let rows = |f: &dyn Fn(&PoolStatus) -> Option<i64>| {
        pools
            .iter()
            .filter_map(|p| f(p).map(|v| (format!("pool=\"{}\"", label(&p.pool)), v)))
            .collect::<Vec<_>>()
    };
    super::metric(
        out,
        "zpersist_status_pool_ok",
        "1 when the pool is ONLINE, shows no errors and its scrub objective is met.",
        rows(&|p| Some(i64::from(p.in_shape()))),
    );
    super::metric(
        out,
        "zpersist_status_pool_healthy",
        "1 when zpool says the pool is ONLINE (0: DEGRADED, FAULTED, UNAVAIL, or it could not be read).",
        rows(&|p| Some(i64::from(p.healthy()))),
    );
    super::metric(
        out,
        "zpersist_status_pool_health_info",
        "1, with the pool's health as zpool prints it as a label.",
        pools
            .iter()
            .filter_map(|p| {
                p.facts.as_ref().map(|f| {
                    (
                        format!(
                            "pool=\"{}\",health=\"{}\"",
                            label(&p.pool),
                            label(&f.health)
                        ),
                        1,
                    )
                })
            })
            .collect(),
    );
    super::metric(
        out,
        "zpersist_status_pool_scrub_age_seconds",
        "Age of the pool's last completed scrub (absent when none is known).",
        rows(&|p| p.scrub_age_seconds),
    );
    super::metric(
        out,
        "zpersist_status_pool_scrub_errors",
        "Errors the pool's last completed scrub found.",
        rows(&|p| p.scrub_errors.map(|e| e as i64)),
    );
    super::metric(
        out,
        "zpersist_status_pool_scrub_age_objective_seconds",
        "The most the pool's last completed scrub may be old (status.json).",
        rows(&|p| p.objectives.max_scrub_age_seconds.map(|m| m as i64)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(health: &str, scan: Scan) -> Result<PoolFacts, (String, String)> {
        Ok(PoolFacts {
            health: health.into(),
            scan,
            data_errors: None,
        })
    }

    const DAY: i64 = 86_400;

    #[test]
    fn health_scrub_age_and_errors_are_judged() {
        let month = PoolObjectives {
            max_scrub_age_seconds: Some(35 * DAY as u64),
        };
        let now = 100 * DAY;
        let fresh = Scan::Scrubbed {
            at: now - DAY,
            errors: 0,
        };
        let ok = evaluate_pool("tank", facts("ONLINE", fresh.clone()), month.clone(), now);
        assert!(ok.in_shape(), "{ok:?}");
        assert_eq!(ok.scrub_age_seconds, Some(DAY));

        let degraded = evaluate_pool("tank", facts("DEGRADED", fresh), month.clone(), now);
        assert_eq!(degraded.problems.len(), 1, "{degraded:?}");
        assert_eq!(degraded.problems[0].error, "the pool tank is DEGRADED");
        assert!(degraded.problems[0].help.contains("zpool status -v tank"));

        let never = evaluate_pool("tank", facts("ONLINE", Scan::None), month.clone(), now);
        assert!(never.problems[0].error.contains("has never been scrubbed"));
        assert!(never.problems[0].help.contains("`zpool scrub tank`"));
        let unjudged = evaluate_pool("tank", facts("ONLINE", Scan::None), Default::default(), now);
        assert!(unjudged.in_shape(), "no objective, no judgement");

        let old = Scan::Scrubbed {
            at: now - 40 * DAY,
            errors: 0,
        };
        let stale = evaluate_pool("tank", facts("ONLINE", old), month.clone(), now);
        assert!(
            stale.problems[0]
                .error
                .contains("is 3456000 s old (objective: at most 3024000 s)"),
            "{stale:?}"
        );

        let bad = Scan::Scrubbed {
            at: now - DAY,
            errors: 3,
        };
        let errors = evaluate_pool("tank", facts("ONLINE", bad), month.clone(), now);
        assert!(
            errors.problems[0].error.contains("found 3 errors"),
            "{errors:?}"
        );
        assert_eq!(errors.scrub_errors, Some(3));

        for scan in [
            Scan::ScrubStopped { at: None },
            Scan::Resilvered {
                at: Some(now),
                errors: 0,
            },
            Scan::Unknown { line: "x".into() },
        ] {
            let s = evaluate_pool("tank", facts("ONLINE", scan), month.clone(), now);
            assert_eq!(s.problems.len(), 1, "{s:?}");
            assert_eq!(s.scrub_age_seconds, None);
        }
        let running = evaluate_pool(
            "tank",
            facts(
                "ONLINE",
                Scan::Scrubbing {
                    since: Some(now - 60),
                },
            ),
            month.clone(),
            now,
        );
        assert!(running.in_shape(), "{running:?}");

        let unread = evaluate_pool(
            "tank",
            Err(("zpool timed out".into(), "h".into())),
            month,
            now,
        );
        assert!(unread.problems[0]
            .error
            .contains("cannot be read: zpool timed out"));
        assert!(!unread.healthy());
        let mut text = String::new();
        textfile(&[ok, degraded, unread], &mut text);
        for row in [
            "zpersist_status_pool_healthy{pool=\"tank\"} 1",
            "zpersist_status_pool_healthy{pool=\"tank\"} 0",
            "zpersist_status_pool_health_info{pool=\"tank\",health=\"DEGRADED\"} 1",
            "zpersist_status_pool_scrub_age_seconds{pool=\"tank\"} 86400",
            "zpersist_status_pool_scrub_errors{pool=\"tank\"} 0",
            "zpersist_status_pool_scrub_age_objective_seconds{pool=\"tank\"} 3024000",
        ] {
            assert!(text.contains(row), "{row}\n{text}");
        }
    }
}
