//! docs/grafana/zpersist.json queries only series zpersist writes: every
//! metric name in every panel's `expr` (and in the template variables'
//! queries) is one the real renderers put in a textfile — zpersist-status's
//! (`status::textfile`, `status::pools::textfile`, `status::pitr::textfile`),
//! the drill's (`drill::textfile`) and pitr's (`pitr::health::archive_metrics`,
//! `drill_metrics`) — rendered here from fixture facts that give every
//! series a row. A misspelt metric in a panel fails this test.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use zpersist_core::drill::{DrillResult, SourceResult};
use zpersist_core::pitr::health::{archive_metrics, drill_metrics, ArchiverStats, DrillFacts};
use zpersist_core::replication::SnapshotRef;
use zpersist_core::status::drill::{DrillFacts as ServiceDrill, DrillObjectives};
use zpersist_core::status::pitr::{evaluate_pitr, BaseBackupRef, PitrInputs, PitrObjectives};
use zpersist_core::status::pools::{evaluate_pool, PoolFacts, PoolObjectives, Scan};
use zpersist_core::status::{
    evaluate, BackupFacts, BackupRef, DatasetFacts, Inputs, Objectives, TargetFacts,
};

const NOW: i64 = 1_000_000;

fn drill_result() -> DrillResult {
    DrillResult {
        version: 1,
        service: "sonarr".into(),
        dataset: "tank/services/sonarr".into(),
        started: NOW - 60,
        success: true,
        sources: vec![SourceResult {
            source: "local".into(),
            success: true,
            point: Some("local:tank/services/sonarr@a".into()),
            point_time: Some(NOW - 600),
            rpo_seconds: Some(540),
            rto_seconds: 3.5,
            checks: vec![],
            error: None,
            help: None,
        }],
        cleaned: vec![],
        error: None,
        help: None,
    }
}

/// Every textfile zpersist writes, from facts that fill every series.
fn textfiles() -> String {
    let service = evaluate(Inputs {
        service: "sonarr",
        dataset: "tank/services/sonarr",
        declared_mountpoint: "/var/lib/sonarr",
        facts: Some(DatasetFacts {
            mounted: true,
            mountpoint: Some("/var/lib/sonarr".into()),
            used: Some(1),
            quota: Some(2),
            preseed: Some("replica".into()),
            preseed_source: Some("nas".into()),
            preseed_at: Some("2026-12-01T00:00:00Z".into()),
            path_state: None,
            key: None,
        }),
        snapshots: vec![SnapshotRef {
            name: "autosnap_a_hourly".into(),
            creation: NOW - 100,
        }],
        objectives: Objectives {
            max_snapshot_age_seconds: Some(7200),
            snapshot_periods: None,
            max_replication_lag_seconds: Some(86400),
            max_backup_age_seconds: Some(172800),
            restic_backup: None,
            drill: Some(DrillObjectives {
                result_file: "/var/lib/zpersist/drill/sonarr.json".into(),
                unit: "zpersist-sonarr-drill.service".into(),
                max_age_seconds: Some(1_213_200),
                max_rpo_seconds: Some(86400),
            }),
        },
        targets: BTreeMap::from([(
            "nas".to_string(),
            TargetFacts::Reached {
                newest_held: Some(SnapshotRef {
                    name: "autosnap_a_hourly".into(),
                    creation: NOW - 100,
                }),
                lag_seconds: Some(0),
                future_snapshot: None,
                why_none: None,
                help: None,
            },
        )]),
        backup: Some(BackupFacts::Reached {
            repository: "b2".into(),
            newest: Some(BackupRef {
                id: "abc".into(),
                time: NOW - 3600,
            }),
            in_future: None,
        }),
        drill: Some(ServiceDrill::Ran {
            result: drill_result(),
        }),
        now: NOW,
    });
    let mut text = zpersist_core::status::textfile(&[service]);
    let pool = evaluate_pool(
        "tank",
        Ok(PoolFacts {
            health: "ONLINE".into(),
            scan: Scan::Scrubbed {
                at: NOW - 86400,
                errors: 0,
            },
            data_errors: None,
        }),
        PoolObjectives {
            max_scrub_age_seconds: Some(5_378_400),
        },
        NOW,
    );
    zpersist_core::status::pools::textfile(&[pool], &mut text);
    let stats = ArchiverStats {
        archived_count: 10,
        last_archived_wal: Some("000000010000000000000003".into()),
        last_archived_time: Some(NOW - 30),
        failed_count: 1,
        last_failed_wal: Some("000000010000000000000002".into()),
        last_failed_time: Some(NOW - 3000),
    };
    let pitr = evaluate_pitr(PitrInputs {
        repository: "the repository /srv/pitr".into(),
        archiver: Ok(stats.clone()),
        base_backup: Ok(Some(BaseBackupRef {
            id: "b1".into(),
            end_time: NOW - 7200,
        })),
        drill: Ok(Some(zpersist_core::pitr::health::DrillRecord {
            at: NOW - 3600,
            success: true,
            rpo_seconds: Some(12.0),
        })),
        objectives: PitrObjectives {
            max_archive_age_seconds: Some(3600),
            max_base_backup_age_seconds: Some(172800),
            max_drill_age_seconds: Some(1_209_600),
            max_rpo_seconds: Some(3600),
        },
        now: NOW,
    });
    zpersist_core::status::pitr::textfile(&pitr, &mut text);
    text.push_str(&archive_metrics(&stats, &stats.health(NOW, 3600), NOW));
    text.push_str(&drill_metrics(
        &DrillFacts {
            at: NOW - 3600,
            backup_id: "b1".into(),
            heartbeat: Some((NOW - 3612) * 1_000_000),
            restore_seconds: 42.0,
        },
        true,
    ));
    text.push_str(&zpersist_core::drill::textfile(&drill_result(), NOW));
    text
}

/// The series names the textfiles have a sample of.
fn written() -> BTreeSet<String> {
    textfiles()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Followed by a list of labels: `by (instance)`, `on(service)`.
const MODIFIERS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    // Aggregation operators, which may be followed by `by (...)` first.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression (or a Grafana `label_values`
/// query) reads: identifiers outside label matchers, strings and
/// `$variables` that are not functions (followed by `(`), keywords, or
/// the label lists of `by`/`on`/... .
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut braces = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '{' {
            braces += 1;
        } else if c == '}' {
            braces -= 1;
        } else if c == '[' {
            // A range or subquery: `[5m]`, `[1h:5m]`.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                i += 1;
            }
            continue;
        } else if c == ')' {
            skip_list = false;
        } else if (c.is_ascii_alphabetic() || c == '_' || c == ':') && braces == 0 {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let call = chars.get(j) == Some(&'(');
            let lower = word.to_ascii_lowercase();
            if MODIFIERS.contains(&lower.as_str()) {
                skip_list = call;
            } else if !skip_list
                && !call
                && !KEYWORDS.contains(&lower.as_str())
                && (start == 0 || !chars[start - 1].is_ascii_digit())
            {
                names.push(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Every query of the dashboard: each panel's targets (rows' nested
/// panels too) and each template variable's query.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title}: a target without expr"));
                out.push((format!("panel {title}"), expr.to_string()));
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap();
            // `label_values(EXPR, label)`: the series are EXPR's.
            let q = match q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
            {
                Some((expr, _label)) => expr,
                None => q,
            };
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

fn unknown_metrics(dashboard: &Value) -> Vec<String> {
    let written = written();
    let mut unknown = Vec::new();
    for (place, expr) in queries(dashboard) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place}: no metric in `{expr}`");
        for name in names {
            if !written.contains(&name) {
                unknown.push(format!("{place}: {name}"));
            }
        }
    }
    unknown
}

fn dashboard() -> Value {
    serde_json::from_str(include_str!("../../../docs/grafana/zpersist.json"))
        .expect("docs/grafana/zpersist.json is JSON")
}

#[test]
fn every_metric_the_dashboard_queries_is_one_zpersist_writes() {
    let d = dashboard();
    let unknown = unknown_metrics(&d);
    assert!(
        unknown.is_empty(),
        "the dashboard queries series no zpersist textfile has:\n{}\nwritten: {:#?}",
        unknown.join("\n"),
        written()
    );
    // A Grafana dashboard over a Prometheus datasource variable, with the
    // panels the owner reads.
    assert_eq!(d["templating"]["list"][0]["type"], "datasource");
    assert_eq!(d["templating"]["list"][0]["query"], "prometheus");
    let all: BTreeSet<String> = queries(&d)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .collect();
    for needed in [
        "zpersist_status_snapshot_age_seconds",
        "zpersist_status_replication_lag_seconds",
        "zpersist_status_backup_age_seconds",
        "zpersist_status_drill_rpo_seconds",
        "zpersist_status_drill_rto_seconds",
        "zpersist_status_drill_success",
        "zpersist_status_pitr_last_archived_age_seconds",
        "zpersist_status_pitr_base_backup_age_seconds",
        "zpersist_status_pitr_rpo_seconds",
        "zpersist_status_pool_healthy",
        "zpersist_status_pool_scrub_age_seconds",
    ] {
        assert!(all.contains(needed), "no panel shows {needed}");
    }
}

/// The check catches a misspelt metric (and reads nested rows).
#[test]
fn a_misspelt_metric_in_a_panel_fails_the_check() {
    let mut d = dashboard();
    let expr = &mut d["panels"][1]["targets"][0]["expr"];
    let misspelt = expr
        .as_str()
        .unwrap()
        .replace("zpersist_status_ok", "zpersist_status_okk");
    *expr = Value::String(misspelt);
    assert_eq!(
        unknown_metrics(&d),
        ["panel Objectives met: zpersist_status_okk"]
    );

    let mut d = dashboard();
    d["panels"][0]["panels"] = serde_json::json!([{ "title": "nested", "targets": [
        { "expr": "max by (service) (rate(zpersist_drill_sucess{service=~\"$service\"}[5m])) > bool 0" }
    ]}]);
    assert_eq!(unknown_metrics(&d), ["panel nested: zpersist_drill_sucess"]);

    assert_eq!(
        metric_names("min by (instance, service) (a{x=\"y\"} or (b + on(instance) group_left c)) * 2 + time() - d offset 5m"),
        ["a", "b", "c", "d"]
    );
}

/// The example alert rules read only series zpersist writes, besides
/// node_exporter's own `node_textfile_mtime_seconds` (when a textfile was
/// last written).
#[test]
fn every_metric_the_alert_rules_use_is_one_zpersist_writes() {
    let written = written();
    let mut checked = 0;
    for (file, rules) in [
        (
            "zpersist-status.rules.yml",
            include_str!("../../../docs/alerts/zpersist-status.rules.yml"),
        ),
        (
            "zpersist-drill.rules.yml",
            include_str!("../../../docs/alerts/zpersist-drill.rules.yml"),
        ),
    ] {
        for expr in rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")) {
            for name in metric_names(expr) {
                checked += 1;
                assert!(
                    written.contains(&name) || name == "node_textfile_mtime_seconds",
                    "{file}: `{expr}` reads {name}, which no zpersist textfile has"
                );
            }
        }
    }
    assert!(checked > 20, "{checked}");
}
