//! The restore drill as data: which service, from which sources (the
//! service's preseed plan, embedded), how a restored copy is checked, and
//! where the result goes. No I/O: `zpersist-drill` (`zpersist_ops::drill`)
//! restores each source's freshest point into a scratch dataset no service
//! sees, checks it, and reports with [`textfile`] what [`SourceResult`]s it
//! measured.
//!
//! The rules (docs/drill.md):
//! - the live dataset is never touched: every copy is made below the
//!   scratch dataset `<dataset>.zpersist-drill`, which carries
//!   [`PROP_DRILL`]`=<service>`; a dataset by that name without the mark is
//!   never touched (the drill fails naming it);
//! - PostgreSQL is drilled by pitr-drill (its restore needs the archive's
//!   WAL replayed by a server), never here.

use serde::{Deserialize, Serialize};

use crate::contract::{Contract, Diagnostic};
use crate::preseed::{PreseedPlan, SourceSpec};

pub const DRILL_VERSION: u64 = 1;

/// The mark every dataset the drill makes carries (its service's name).
pub const PROP_DRILL: &str = "com.zpersist:drill";
/// What the drill appends to the dataset's name for its scratch dataset.
pub const SCRATCH_SUFFIX: &str = ".zpersist-drill";
/// Where the scratch copies mount (`<root>/<service>/<n>`): below /run,
/// which no service's data directory is.
pub const SCRATCH_ROOT: &str = "/run/zpersist/drill";

/// The contract `zpersist-drill --plan FILE` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillPlan {
    pub version: u64,
    pub service: String,
    /// The service's profile (docs/profiles.md): `postgresql` is refused.
    pub profile: String,
    /// The service's preseed plan: its dataset and its sources, listed and
    /// restored with the code preseed uses.
    pub preseed: PreseedPlan,
    /// The profile's SQLite databases, relative to the dataset's root:
    /// each gets `PRAGMA integrity_check` on the copy.
    #[serde(default)]
    pub sqlite: Vec<String>,
    /// A declared check: argv run in the copy's root (its working
    /// directory), which must exit 0.
    #[serde(default)]
    pub check: Option<Vec<String>>,
    /// Bound of each check (the declared command, each integrity check).
    #[serde(default = "default_check_timeout")]
    pub check_timeout_seconds: u64,
    /// The result file (`<service>.json`) and the lock live here.
    pub state_dir: String,
    /// Prometheus textfile written (atomically) after each run.
    #[serde(default)]
    pub textfile: Option<String>,
    /// Where the scratch copies mount; [`SCRATCH_ROOT`] unless a test says.
    #[serde(default = "default_scratch_root")]
    pub scratch_root: String,
}

fn default_check_timeout() -> u64 {
    600
}

fn default_scratch_root() -> String {
    SCRATCH_ROOT.into()
}

impl Contract for DrillPlan {
    const KIND: &'static str = "drill plan";
    const VERSION: u64 = DRILL_VERSION;
    const READER: &'static str = "zpersist-drill";

    fn problems(&self) -> Vec<Diagnostic> {
        let mut problems: Vec<Diagnostic> = self
            .preseed
            .problems()
            .into_iter()
            .map(|d| {
                let field =
                    d.at.field
                        .as_ref()
                        .map_or("preseed".into(), |f| format!("preseed.{f}"));
                d.at_field(field)
            })
            .collect();
        let pitr_help = "PostgreSQL's restore drill is pitr-drill: zpersist.postgresql.pitr.drill (docs/postgresql-pitr.md)";
        if self.profile == "postgresql" {
            problems.push(
                Diagnostic::new(format!(
                    "service {}: the postgresql profile is drilled by pitr-drill, not here (a copy of a running cluster's files is no proof it starts)",
                    self.service
                ))
                .at_field("profile")
                .with_help(pitr_help),
            );
        }
        if self
            .preseed
            .sources
            .iter()
            .any(|s| matches!(s, SourceSpec::Pitr(_)))
        {
            problems.push(
                Diagnostic::new("a pitr source is drilled by pitr-drill, not here")
                    .at_field("preseed.sources")
                    .with_help(pitr_help),
            );
        }
        if self.service != self.preseed.service {
            problems.push(
                Diagnostic::new(format!(
                    "service `{}` is not the preseed plan's `{}`",
                    crate::shown(&self.service),
                    crate::shown(&self.preseed.service)
                ))
                .at_field("service"),
            );
        }
        for (i, db) in self.sqlite.iter().enumerate() {
            if db.starts_with('/') || db.split('/').any(|c| c == ".." || c.is_empty()) {
                problems.push(
                    Diagnostic::new(format!(
                        "`{}` must be a path relative to the dataset's root, without `..`",
                        crate::shown(db)
                    ))
                    .at_field(format!("sqlite[{i}]")),
                );
            }
        }
        if let Some(check) = &self.check {
            if check.first().is_none_or(String::is_empty) {
                problems.push(
                    Diagnostic::new(
                        "the check is empty: give a program and its arguments, or null",
                    )
                    .at_field("check"),
                );
            }
        }
        if self.check_timeout_seconds == 0 || self.check_timeout_seconds > 86_400 {
            problems.push(
                Diagnostic::new(format!(
                    "{} must be from 1 to 86400",
                    self.check_timeout_seconds
                ))
                .at_field("checkTimeoutSeconds"),
            );
        }
        for (field, path) in [
            ("stateDir", Some(&self.state_dir)),
            ("textfile", self.textfile.as_ref()),
            ("scratchRoot", Some(&self.scratch_root)),
        ] {
            if let Some(path) = path {
                if !path.starts_with('/') {
                    problems.push(
                        Diagnostic::new(format!(
                            "`{}` must be an absolute path",
                            crate::shown(path)
                        ))
                        .at_field(field),
                    );
                }
            }
        }
        problems
    }
}

impl DrillPlan {
    /// The scratch dataset every copy is made below.
    pub fn scratch(&self) -> String {
        format!("{}{SCRATCH_SUFFIX}", self.preseed.dataset)
    }

    /// The copy of source `index`, below the scratch dataset.
    pub fn copy(&self, index: usize) -> String {
        format!("{}/s{index}", self.scratch())
    }

    /// The source snapshot's own tree (a clone), to hash against the copy.
    pub fn origin(&self, index: usize) -> String {
        format!("{}/o{index}", self.scratch())
    }

    /// Where the scratch dataset's children mount (`<root>/<service>`).
    pub fn scratch_mountpoint(&self) -> String {
        format!(
            "{}/{}",
            self.scratch_root.trim_end_matches('/'),
            self.service
        )
    }

    pub fn result_file(&self) -> String {
        format!("{}/{}.json", self.state_dir, self.service)
    }
}

/// What one source's drill found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceResult {
    /// `local`, `replica:nas`, `restic:b2`.
    pub source: String,
    pub success: bool,
    /// The restored point (`local:tank/x@snap`), when one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// The restored point's data time (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_time: Option<i64>,
    /// RPO: the run's start minus the point's data time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<i64>,
    /// RTO: from the source's start to a checked copy (also when it failed).
    pub rto_seconds: f64,
    /// Each check that ran, as a line (`manifest: 12 entries match`).
    pub checks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// The result file (`<stateDir>/<service>.json`) and `--json`'s document;
/// `zpersist status` reads it as a contract (strictly, its version first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillResult {
    pub version: u64,
    pub service: String,
    pub dataset: String,
    /// When the run started (seconds since the epoch).
    pub started: i64,
    pub success: bool,
    pub sources: Vec<SourceResult>,
    /// What the run cleaned up first (a killed run's leftovers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Contract for DrillResult {
    const KIND: &'static str = "drill result";
    const VERSION: u64 = DRILL_VERSION;
    const READER: &'static str = "zpersist status";
}

/// The Prometheus text exposition of one drill run (node_exporter's
/// textfile collector reads it).
pub fn textfile(result: &DrillResult, finished: i64) -> String {
    let label = crate::text::prometheus_label;
    let labels = |s: &SourceResult| {
        format!(
            "service=\"{}\",source=\"{}\"",
            label(&result.service),
            label(&s.source)
        )
    };
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, rows: Vec<(String, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in rows {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    metric(
        "zpersist_drill_success",
        "1 when the source's freshest point restored into a scratch copy that passed every check.",
        result
            .sources
            .iter()
            .map(|s| (labels(s), u8::from(s.success).to_string()))
            .collect(),
    );
    metric(
        "zpersist_drill_rpo_seconds",
        "Age of the restored data when the drill started (the recovery point).",
        result
            .sources
            .iter()
            .filter_map(|s| s.rpo_seconds.map(|rpo| (labels(s), rpo.to_string())))
            .collect(),
    );
    metric(
        "zpersist_drill_rto_seconds",
        "Seconds from the source's start to a checked copy (the recovery time).",
        result
            .sources
            .iter()
            .map(|s| (labels(s), format!("{:.3}", s.rto_seconds)))
            .collect(),
    );
    metric(
        "zpersist_drill_last_run_timestamp_seconds",
        "When the drill last ran for this source (seconds since the epoch).",
        result
            .sources
            .iter()
            .map(|s| (labels(s), finished.to_string()))
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(extra: serde_json::Value) -> serde_json::Value {
        let mut plan = serde_json::json!({
            "version": 1, "service": "sonarr", "profile": "sonarr",
            "preseed": {
                "version": 1, "service": "sonarr", "dataset": "tank/services/sonarr",
                "mountpoint": "/var/lib/sonarr", "sources": [{"local": {}}],
                "stateDir": "/var/lib/zpersist/preseed"
            },
            "sqlite": ["sonarr.db"],
            "stateDir": "/var/lib/zpersist/drill"
        });
        for (k, v) in extra.as_object().unwrap() {
            plan[k] = v.clone();
        }
        plan
    }

    fn parse(v: serde_json::Value) -> Result<DrillPlan, Vec<String>> {
        crate::contract::parse::<DrillPlan>(&v.to_string())
            .map_err(|p| p.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_plan_parses_and_names_its_scratch() {
        let plan = parse(plan(serde_json::json!({}))).unwrap();
        assert_eq!(plan.scratch(), "tank/services/sonarr.zpersist-drill");
        assert_eq!(plan.copy(0), "tank/services/sonarr.zpersist-drill/s0");
        assert_eq!(plan.scratch_mountpoint(), "/run/zpersist/drill/sonarr");
    }

    #[test]
    fn postgresql_and_pitr_are_refused_pointing_to_pitr_drill() {
        let problems = parse(plan(serde_json::json!({"profile": "postgresql"}))).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("pitr-drill")),
            "{problems:?}"
        );
        let mut p = plan(serde_json::json!({}));
        p["preseed"]["sources"] =
            serde_json::json!([{"pitr": {"contract": "/etc/zpersist/pitr.json", "dataDir": "16"}}]);
        let problems = parse(p).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("pitr-drill")),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_fields_bad_paths_and_empty_checks_are_refused() {
        assert!(parse(plan(serde_json::json!({"bogus": 1}))).is_err());
        let problems = parse(plan(serde_json::json!({
            "sqlite": ["../x.db"], "check": [], "stateDir": "rel"
        })))
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let mut p = plan(serde_json::json!({}));
        p["preseed"]["sources"] = serde_json::json!([]);
        let problems = parse(p).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("preseed: no sources")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_textfile_has_every_series_per_source() {
        let result = DrillResult {
            version: 1,
            service: "sonarr".into(),
            dataset: "tank/services/sonarr".into(),
            started: 100,
            success: false,
            sources: vec![SourceResult {
                source: "local".into(),
                success: false,
                point: Some("local:tank/services/sonarr@a".into()),
                point_time: Some(40),
                rpo_seconds: Some(60),
                rto_seconds: 1.5,
                checks: vec![],
                error: Some("x".into()),
                help: None,
            }],
            cleaned: vec![],
            error: None,
            help: None,
        };
        let text = textfile(&result, 102);
        let odd = DrillResult {
            service: "a\"b\\c\nd".into(),
            ..result.clone()
        };
        assert!(
            textfile(&odd, 1).contains("{service=\"a\\\"b\\\\c\\nd\",source=\"local\"}"),
            "{}",
            textfile(&odd, 1)
        );
        for line in [
            "zpersist_drill_success{service=\"sonarr\",source=\"local\"} 0",
            "zpersist_drill_rpo_seconds{service=\"sonarr\",source=\"local\"} 60",
            "zpersist_drill_rto_seconds{service=\"sonarr\",source=\"local\"} 1.500",
            "zpersist_drill_last_run_timestamp_seconds{service=\"sonarr\",source=\"local\"} 102",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    /// Every series the example alert rules use is one the textfile has.
    #[test]
    fn the_alert_rules_use_only_series_the_textfile_writes() {
        let rules = include_str!("../../../docs/alerts/zpersist-drill.rules.yml");
        let result = DrillResult {
            version: 1,
            service: "s".into(),
            dataset: "tank/s".into(),
            started: 0,
            success: true,
            sources: vec![SourceResult {
                source: "local".into(),
                success: true,
                point: None,
                point_time: None,
                rpo_seconds: Some(1),
                rto_seconds: 1.0,
                checks: vec![],
                error: None,
                help: None,
            }],
            cleaned: vec![],
            error: None,
            help: None,
        };
        let text = textfile(&result, 1);
        let mut used = 0;
        for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("zpersist_drill_") {
                used += 1;
                assert!(
                    text.contains(&format!("# TYPE {word} gauge")),
                    "{word} is not written"
                );
            }
        }
        assert!(used >= 4, "{used}");
    }
}
