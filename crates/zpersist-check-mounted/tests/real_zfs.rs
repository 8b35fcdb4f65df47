//! zpersist-check-mounted against real ZFS (zfs-fuse on a file-backed
//! pool), through the recording `zfs` wrapper: a dataset mounted where it
//! should be, one not mounted, one mounted elsewhere, one missing; bad
//! arguments (no zfs run); a hung zfs (bounded).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use camino::Utf8Path;
use serde_json::Value;
use zpersist_e2e::pool::{get, run_recorded, zfs, Recorded, TestPool};
use zpersist_e2e::timed::Running;

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_zpersist-check-mounted"))
}

fn check(args: &[&str]) -> Recorded {
    run_recorded(binary(), args, &BTreeMap::new())
}

#[test]
fn mounted_not_mounted_mounted_elsewhere_and_missing() {
    let pool = TestPool::new("mounted");
    let at = |name: &str| pool.mnt().join(name).to_string();
    let (ok, unmounted, elsewhere, missing) = (
        pool.ds("ok"),
        pool.ds("unmounted"),
        pool.ds("elsewhere"),
        pool.ds("missing"),
    );
    zfs(&["create", "-o", &format!("mountpoint={}", at("ok")), &ok]);
    zfs(&[
        "create",
        "-o",
        "canmount=noauto",
        "-o",
        &format!("mountpoint={}", at("unmounted")),
        &unmounted,
    ]);
    zfs(&[
        "create",
        "-o",
        &format!("mountpoint={}", at("other")),
        &elsewhere,
    ]);
    assert_eq!(get(&ok, "mounted"), "yes");
    assert_eq!(get(&unmounted, "mounted"), "no");
    assert_eq!(get(&elsewhere, "mounted"), "yes");

    // Mounted where it should be: exit 0, one line on stdout, one zfs get.
    let run = check(&["sonarr", &ok, &at("ok")]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.stdout, format!("{ok} is mounted on {}\n", at("ok")));
    assert_eq!(run.stderr, "");
    assert_eq!(run.zfs_calls.len(), 1, "{run:#?}");
    assert_eq!(run.zfs_calls[0][0], "get");
    // A trailing or doubled '/' is the same path.
    let run = check(&["sonarr", &ok, &format!("{}//ok/", pool.mnt())]);
    assert_eq!(run.code, 0, "{run:#?}");

    // Not mounted.
    let run = check(&["sonarr", &unmounted, &at("unmounted")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: {unmounted} is not mounted on {} (mounted: no, mountpoint: {}); not starting sonarr, which would write to the directory beneath\n  \
             help: journalctl -u zpersist-datasets.service says why; fix it, run `systemctl restart zpersist-datasets.service` and start sonarr's units again\n",
            at("unmounted"),
            at("unmounted")
        )
    );

    // Mounted, but elsewhere.
    let run = check(&["sonarr", &elsewhere, &at("elsewhere")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.starts_with(&format!(
            "error: {elsewhere} is not mounted on {} (mounted: yes, mountpoint: {}); not starting sonarr",
            at("elsewhere"),
            at("other"),
        )),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "\n  help: journalctl -u zpersist-datasets.service says why; fix it, run `systemctl restart zpersist-datasets.service` and start sonarr's units again; if the data really moved to {}, declare that path",
            at("other")
        )),
        "{run:#?}"
    );

    // Missing.
    let run = check(&["sonarr", &missing, &at("missing")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: sonarr keeps its data on {missing}, which zfs cannot read: the dataset does not exist\n  \
             help: journalctl -u zpersist-datasets.service says why it is missing; once it is fixed, start sonarr's units again\n"
        ),
    );

    // All four at once: one zfs get of all, and one more of the key facts
    // (locked or not) of those that exist unmounted only; the mounted one
    // is reported on stdout, each of the others on stderr; --json says the
    // same as data.
    let all = [
        "plex",
        &ok,
        &at("ok"),
        &unmounted,
        &at("unmounted"),
        &elsewhere,
        &at("elsewhere"),
        &missing,
        &at("missing"),
    ];
    let run = check(&all);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.zfs_calls.len(), 2, "{run:#?}");
    assert!(
        run.zfs_calls[1]
            .contains(&"encryption,encryptionroot,keystatus,keyformat,keylocation".to_string())
            && run.zfs_calls[1].contains(&unmounted)
            && !run.zfs_calls[1].contains(&ok)
            && !run.zfs_calls[1].contains(&missing),
        "{run:#?}"
    );
    assert_eq!(run.stdout.lines().count(), 1, "{run:#?}");
    assert_eq!(run.stderr.matches("error: ").count(), 3, "{run:#?}");
    let mut json_args = vec!["--json"];
    json_args.extend(all);
    let run = check(&json_args);
    assert_eq!(run.code, 1, "{run:#?}");
    let report: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let states: Vec<&str> = report["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["mounted", "not-mounted", "elsewhere", "missing"]);
    assert_eq!(report["datasets"][2]["expected"], at("elsewhere"));
    assert_eq!(report["datasets"][2]["mountpoint"], at("other"));
    assert_eq!(report["datasets"][2]["mounted"], true);
}

#[test]
fn bad_arguments_run_no_zfs() {
    for args in [
        vec!["sonarr", "tank/a"],
        vec!["sonarr", "tank/a", "/srv/a", "tank/b"],
        vec!["sonarr", "tank/a@snap", "/srv/a"],
        vec!["sonarr", "tank/a", "srv/a"],
        vec!["sonarr", "tank/a", "/srv/../a"],
        vec!["sonarr", "tank/a", "none"],
    ] {
        let run = check(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(run.zfs_calls.is_empty(), "{args:?}: {run:#?}");
        assert!(run.stderr.contains("error"), "{args:?}: {run:#?}");
    }
}

/// A zfs that never answers (a suspended pool) fails the check at
/// --timeout, keeping the service down, instead of holding its start.
#[test]
fn a_hung_zfs_fails_the_check_at_the_timeout() {
    let dir = std::env::temp_dir().join(format!("zpersist-hung-zfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("zfs");
    std::fs::write(&fake, "#!/bin/sh\nexec /bin/sleep 600\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = Running::start(
        duct::cmd(
            binary().as_str(),
            ["--timeout", "1", "sonarr", "tank/a", "/srv/a"],
        )
        .env("PATH", &dir),
        "zpersist-check-mounted with a hung zfs",
    )
    .finish();
    let stderr = run.assert_exit(1, Duration::from_millis(900)..Duration::from_secs(10));
    assert!(stderr.contains("did not finish within 1 s"), "{stderr}");
    assert!(stderr.contains("help: not starting sonarr"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 18: another filesystem mounted over the dataset's path. zfs
/// still says "mounted" on that mountpoint; the service would start on
/// the cover. The check looks at what the path shows (its device in
/// /proc/self/mountinfo) and refuses, naming the cover.
#[test]
fn a_dataset_covered_by_another_mount_is_not_mounted_for_the_service() {
    let pool = TestPool::new("covered");
    let ds = pool.ds("app");
    let at = pool.mnt().join("app").to_string();
    zfs(&["create", "-o", &format!("mountpoint={at}"), &ds]);
    std::fs::write(format!("{at}/data.db"), "the dataset's").unwrap();
    assert_eq!(check(&["app", &ds, &at]).code, 0);

    let cover = zpersist_e2e::cover::Tmpfs::over(&at, "zpersist-cover");
    assert_eq!(get(&ds, "mounted"), "yes", "zfs still says mounted");
    let run = check(&["app", &ds, &at]);
    let json = check(&["--json", "app", &ds, &at]);
    drop(cover);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: {ds} is mounted (zfs says so), but {at} does not show {ds}: tmpfs from zpersist-cover is mounted over it, hiding the dataset; not starting app, which would write there and not to the dataset\n  \
             help: see what is mounted there (`findmnt {at}`, `grep {at} /proc/self/mountinfo`), unmount what covers the dataset (`umount {at}`), then start the service again\n"
        )
    );
    assert_eq!(json.code, 1, "{json:#?}");
    let report: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(report["datasets"][0]["state"], "not-shown");
    assert_eq!(report["datasets"][0]["view"]["shows"], "covered");
    assert_eq!(
        report["datasets"][0]["view"]["by"],
        "tmpfs from zpersist-cover"
    );
    // The cover gone, the dataset is seen again.
    assert_eq!(check(&["app", &ds, &at]).code, 0);
}
