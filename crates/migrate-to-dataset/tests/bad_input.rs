//! Bad input is refused with exit code 2 before any zfs command runs: no
//! pool is needed, and the recording wrapper proves zfs was never called.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use zpersist_e2e::pool::{run_recorded, Recorded};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_migrate-to-dataset"))
}

fn scratch(name: &str) -> Utf8PathBuf {
    let dir = Utf8PathBuf::from(format!(
        "/tmp/zpersist-tests/migrate-bad-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> Recorded {
    run_recorded(binary(), args, &BTreeMap::new())
}

fn with_services(name: &str, text: &str, service: &str) -> Recorded {
    let path = scratch(name);
    std::fs::write(&path, text).unwrap();
    run(&[service, "--services", path.as_str()])
}

fn assert_refused(recorded: &Recorded, needle: &str) {
    assert_eq!(recorded.code, 2, "{recorded:#?}");
    assert!(
        recorded.zfs_calls.is_empty(),
        "zfs ran: {:?}",
        recorded.zfs_calls
    );
    assert!(
        recorded.stderr.contains(needle),
        "expected {needle:?} in:\n{}",
        recorded.stderr
    );
    assert!(recorded.stderr.contains("help:"), "{}", recorded.stderr);
}

const GOOD: &str = r#"{"version":1,"pool":"tank","services":{"sonarr":{"dataset":"tank/services/sonarr","mountpoint":"/var/lib/sonarr","units":["sonarr.service"],"user":"sonarr","group":"sonarr","mode":"0750","properties":{"recordsize":"16K","compression":"lz4"}}}}"#;

#[test]
fn a_bad_services_file_is_refused_before_zfs_runs() {
    let cases = [
        (
            "version.json",
            GOOD.replace("\"version\":1", "\"version\":2"),
            "version 2 is not supported",
        ),
        (
            "field.json",
            GOOD.replace("\"mode\"", "\"colour\":\"red\",\"mode\""),
            "unknown field `colour`",
        ),
        (
            "top.json",
            GOOD.replace("\"pool\"", "\"extra\":1,\"pool\""),
            "unknown field `extra`",
        ),
        ("property.json", GOOD.replace("16K", "24K"), "recordsize"),
        (
            "readonly.json",
            GOOD.replace("\"compression\"", "\"used\""),
            "read-only",
        ),
        (
            "path.json",
            GOOD.replace("/var/lib/sonarr", "var/lib/sonarr"),
            "absolute",
        ),
        (
            "pool.json",
            GOOD.replace("tank/services", "other/services"),
            "not in the pool",
        ),
        ("json.json", "{not json".to_string(), "not valid JSON"),
    ];
    for (name, text, needle) in cases {
        let recorded = with_services(name, &text, "sonarr");
        assert_refused(&recorded, needle);
    }
    let missing = run(&["sonarr", "--services", scratch("absent.json").as_str()]);
    assert_refused(&missing, "cannot read it");
}

#[test]
fn an_unknown_service_is_refused_and_the_known_ones_are_listed() {
    let recorded = with_services("good.json", GOOD, "radarr");
    assert_refused(&recorded, "no service named `radarr`");
    assert!(recorded.stderr.contains("sonarr"), "{}", recorded.stderr);
}

#[test]
fn bad_explicit_arguments_are_refused_before_zfs_runs() {
    for (args, needle) in [
        (
            vec!["--dataset", "tank", "--path", "/var/lib/x"],
            "root dataset",
        ),
        (
            vec!["--dataset", "tank/a@b", "--path", "/var/lib/x"],
            "snapshot",
        ),
        (
            vec!["--dataset", "tank/x", "--path", "/var/lib/x/"],
            "must not end with",
        ),
        (
            vec![
                "--dataset",
                "tank/x",
                "--path",
                "/var/lib/x",
                "-o",
                "recordsize",
            ],
            "PROPERTY=VALUE",
        ),
        (
            vec![
                "--dataset",
                "tank/x",
                "--path",
                "/var/lib/x",
                "-o",
                "mountpoint=/y",
            ],
            "own field",
        ),
        (vec![], "no service given"),
    ] {
        let recorded = run(&args);
        assert_refused(&recorded, needle);
    }
}

/// With --json, bad input is also the one document on stdout:
/// `{"errors": [...]}`, each with its message (zpersist-report's shape).
#[test]
fn with_json_bad_input_is_also_the_errors_document() {
    let recorded = run(&["--json", "--dataset", "tank", "--path", "/var/lib/x"]);
    assert_refused(&recorded, "root dataset");
    let document: serde_json::Value = serde_json::from_str(&recorded.stdout).unwrap();
    let errors = document["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{document}");
    assert!(
        errors[0]["what"].as_str().unwrap().contains("root dataset"),
        "{document}"
    );
}

/// Every value that is not a number of seconds in the accepted range (NaN,
/// infinities, overflow, negative, zero, too small, too large, not a
/// number) is exit 2 with one line naming the option and the range, before
/// zfs runs or anything is written next to the directory.
#[test]
fn a_bad_progress_interval_is_refused_before_anything_is_touched() {
    // A parent of its own: the other tests write into the shared scratch.
    let parent = scratch("progress");
    let dir = parent.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.db"), "data").unwrap();
    let siblings = || {
        let mut names: Vec<String> = std::fs::read_dir(&parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = siblings();
    let mut cases: Vec<Vec<String>> = [
        "NaN", "nan", "-NaN", "inf", "-inf", "infinity", "1e300", "1e20", "-1", "-0.5", "0", "0.0",
        "-0", "1e-300", "0.001", "86401", "two", "", "2s",
    ]
    .iter()
    .map(|value| vec![format!("--progress-every={value}")])
    .collect();
    // Separate words too: a negative number must not be taken for a flag.
    cases.push(vec!["--progress-every".into(), "-1".into()]);
    cases.push(vec!["--progress-every".into(), "inf".into()]);
    for case in cases {
        // A pool that does not exist: should a value slip through, the run
        // still cannot touch a real pool.
        let mut args = vec!["--dataset", "zpersist-absent/x", "--path", dir.as_str()];
        args.extend(case.iter().map(String::as_str));
        let recorded = run(&args);
        assert_refused(&recorded, "--progress-every");
        let error_lines: Vec<&str> = recorded
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(error_lines.len(), 1, "{case:?}: {}", recorded.stderr);
        assert!(
            error_lines[0].contains("--progress-every")
                && error_lines[0].contains("from 0.01 to 86400"),
            "{case:?}: the error names neither the option nor the range: {}",
            recorded.stderr
        );
        assert!(recorded.stdout.is_empty(), "{case:?}: {}", recorded.stdout);
    }
    assert_eq!(siblings(), before, "something was written next to the data");
    assert_eq!(
        std::fs::read_to_string(dir.join("state.db")).unwrap(),
        "data"
    );
}
