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
            "unknown version 2",
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
