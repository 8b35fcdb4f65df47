//! `zpersist`'s command line: every subcommand's help (exit 0), bad
//! arguments (exit 2), a configuration directory without its contracts
//! (exit 2, the file named, not one zfs call; with --json one document),
//! the hidden unit-only commands, the completions and the man page.

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde_json::Value;
use zpersist_e2e::pool::{run_recorded, Recorded};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_zpersist"))
}

fn run(args: &[&str]) -> Recorded {
    run_recorded(binary(), args, &BTreeMap::new())
}

/// Every subcommand a person runs, as its words.
const SUBCOMMANDS: &[&[&str]] = &[
    &["status"],
    &["restore"],
    &["drill"],
    &["migrate"],
    &["pitr"],
    &["pitr", "restore"],
    &["pitr", "drill"],
    &["config"],
    &["config", "check"],
    &["datasets"],
    &["datasets", "apply"],
    &["completions"],
];

#[test]
fn every_subcommand_has_help_that_exits_0() {
    let main = run(&["--help"]);
    assert_eq!(main.code, 0, "{main:#?}");
    for words in SUBCOMMANDS.iter().filter(|w| w.len() == 1) {
        assert!(
            main.stdout.contains(&format!("\n  {} ", words[0])),
            "{} is not in the main help:\n{}",
            words[0],
            main.stdout
        );
    }
    for option in ["--config-dir <DIR>", "--json", "Exit codes: 0"] {
        assert!(main.stdout.contains(option), "{option}:\n{}", main.stdout);
    }
    // What only the units run is not offered to people.
    for hidden in ["\n  man ", "\n  preseed "] {
        assert!(!main.stdout.contains(hidden), "{hidden}:\n{}", main.stdout);
    }
    for words in SUBCOMMANDS {
        let mut args = words.to_vec();
        args.push("--help");
        let help = run(&args);
        assert_eq!(help.code, 0, "{args:?}: {help:#?}");
        assert!(
            help.stdout
                .contains(&format!("Usage: zpersist {}", words.join(" "))),
            "{args:?}:\n{}",
            help.stdout
        );
        assert!(help.zfs_calls.is_empty(), "{args:?}");
    }
    let hidden = run(&["preseed", "--help"]);
    assert_eq!(hidden.code, 0, "{hidden:#?}");
    assert!(hidden.stdout.contains("--plan"), "{}", hidden.stdout);
}

#[test]
fn bad_arguments_exit_2_and_touch_nothing() {
    for args in [
        &[][..],
        &["bogus"],
        &["status", "--bogus"],
        &["status", "--timeout", "0"],
        &["restore"],
        &["restore", "sonarr", "--lock-timeout", "soon"],
        &["drill", "--lock-timeout", "-1"],
        &["migrate"],
        &["migrate", "sonarr", "--bogus"],
        &["pitr"],
        &["pitr", "restore"],
        &["pitr", "restore", "--into", "/tmp/x", "--to", "yesterday"],
        &["pitr", "bogus"],
        &["config"],
        &["config", "bogus"],
        &["datasets"],
        &["datasets", "apply", "--bogus"],
        &["completions"],
        &["completions", "tcsh"],
        &["--config-dir"],
    ] {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:#?}");
        // A group without its subcommand: the usage, on stderr; anything
        // else: the error, and where help is.
        assert!(
            out.stderr.contains("Usage: zpersist") || out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.zfs_calls.is_empty(), "{args:?}: {:?}", out.zfs_calls);
    }
}

#[test]
fn a_configuration_directory_without_contracts_is_bad_input_naming_the_file() {
    let dir = tempfile_dir("zpersist-cli-empty");
    let dir = dir.as_str();
    for (args, named) in [
        (&["status"][..], "services.json"),
        (&["status", "sonarr"], "services.json"),
        (&["restore", "sonarr"], "preseed/sonarr.json"),
        (&["restore", "sonarr", "--dry-run"], "preseed/sonarr.json"),
        (&["drill"], "drill"),
        (&["drill", "sonarr"], "drill/sonarr.json"),
        (&["migrate", "sonarr"], "services.json"),
        (&["migrate", "sonarr", "--cleanup"], "services.json"),
        (
            &["pitr", "restore", "--into", "/tmp/zpersist-cli-into"],
            "pitr.json",
        ),
        (&["pitr", "drill"], "pitr.json"),
        (&["datasets", "apply"], "datasets.json"),
        (&["datasets", "apply", "--dry-run"], "datasets.json"),
        (&["config", "check"], dir),
        // What the units run (hidden): the plan given, named when missing.
        (
            &["preseed", "--plan", "/nonexistent/preseed.json"],
            "/nonexistent/preseed.json",
        ),
        (
            &["drill", "--plan", "/nonexistent/drill.json"],
            "/nonexistent/drill.json",
        ),
    ] {
        for json in [false, true] {
            let mut all = vec!["--config-dir", dir];
            if json {
                all.push("--json");
            }
            all.extend_from_slice(args);
            let out = run(&all);
            assert_eq!(out.code, 2, "{all:?}: {out:#?}");
            assert!(
                out.stderr.contains("error:") && out.stderr.contains(named),
                "{all:?}: {}",
                out.stderr
            );
            assert!(out.zfs_calls.is_empty(), "{all:?}: {:?}", out.zfs_calls);
            if json {
                let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
                    panic!("{all:?}: not one JSON document ({e}): {}", out.stdout)
                });
                assert!(doc["errors"].is_array(), "{all:?}: {doc:#}");
            }
        }
    }
    assert!(!Utf8Path::new("/tmp/zpersist-cli-into").exists());
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {out:#?}");
        for word in ["restore", "drill", "config-dir", "replace", "datasets"] {
            assert!(out.stdout.contains(word), "{shell}: {word}");
        }
    }
    let man = run(&["man"]);
    assert_eq!(man.code, 0, "{man:#?}");
    assert!(man.stdout.contains(".TH zpersist 1"), "{}", man.stdout);
    for word in ["restore", "config\\-dir", "Exit codes"] {
        assert!(man.stdout.contains(word), "{word}:\n{}", man.stdout);
    }
}

fn tempfile_dir(name: &str) -> camino::Utf8PathBuf {
    let dir = camino::Utf8PathBuf::from(format!("/tmp/{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
