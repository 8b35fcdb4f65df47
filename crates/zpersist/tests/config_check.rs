//! `zpersist config check` on what the NixOS modules generate for the
//! example host forge (evaluated by Nix, /etc/zpersist written out as the
//! host would hold it), and on broken copies of it: exit 0 and what was
//! understood, or exit 2 with the file and the field named.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use zpersist_e2e::machine::Machine;
use zpersist_e2e::nix::Eval;
use zpersist_e2e::pool::{run_recorded, Recorded};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_zpersist"))
}

/// forge, evaluated once per test binary.
fn forge() -> &'static Machine {
    static FORGE: OnceLock<Machine> = OnceLock::new();
    FORGE.get_or_init(|| {
        serde_json::from_value(Eval::host("forge").read_write().attr("machine"))
            .expect("tests/nix/eval.nix's machine has the fields Machine reads")
    })
}

/// forge's /etc/zpersist, written into a fresh directory.
fn forge_etc(name: &str) -> Utf8PathBuf {
    let dir = Utf8PathBuf::from(format!(
        "/tmp/zpersist-tests/config-check-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    forge().write_etc_under("zpersist/", dir.as_std_path());
    dir
}

fn check(dir: &Utf8Path, json: bool) -> Recorded {
    let mut args = vec!["--config-dir", dir.as_str()];
    if json {
        args.push("--json");
    }
    args.extend(["config", "check"]);
    run_recorded(binary(), &args, &BTreeMap::new())
}

fn edit(path: &Utf8Path, change: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut value);
    // The store's files are read-only; the copy is ours.
    let _ = std::fs::remove_file(path);
    std::fs::write(path, serde_json::to_vec(&value).unwrap()).unwrap();
}

#[test]
fn forges_generated_contracts_are_understood() {
    let machine = forge();
    // The front is on the host's PATH, and finds the plans the units name.
    assert!(
        machine
            .system_packages
            .iter()
            .any(|p| p.contains("zpersist")),
        "{:?}",
        machine.system_packages
    );
    for name in ["zpersist/preseed/sonarr.json", "zpersist/datasets.json"] {
        assert!(
            machine.etc.contains_key(name),
            "{name}: {:?}",
            machine.etc.keys()
        );
    }
    let dir = forge_etc("ok");
    let run = check(&dir, false);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.zfs_calls.is_empty(), "{:?}", run.zfs_calls);
    for line in [
        format!("ok     {dir}/services.json (services file)"),
        "service sonarr: tank/services/sonarr on /var/lib/sonarr".to_string(),
        format!("ok     {dir}/datasets.json (datasets plan)"),
        "dataset tank/media".to_string(),
        format!("ok     {dir}/replication.json (replication config)"),
        "target nas: ".to_string(),
        format!("ok     {dir}/preseed/sonarr.json (preseed plan)"),
        "restored from replica:nas, replica:usb, local, restic:b2".to_string(),
        format!("ok     {dir}/status.json (status objectives)"),
        format!("ok     {dir}/notify-context.json (notification context)"),
        "file(s) understood".to_string(),
    ] {
        assert!(run.stdout.contains(&line), "{line}:\n{}", run.stdout);
    }
    let json = check(&dir, true);
    assert_eq!(json.code, 0, "{json:#?}");
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let files = doc["files"].as_array().unwrap();
    assert!(files.len() >= 6, "{doc:#}");
    assert!(
        files.iter().all(|f| f["problems"] == Value::Array(vec![])),
        "{doc:#}"
    );
}

#[test]
fn a_broken_contract_exits_2_naming_the_file_and_the_field() {
    let dir = forge_etc("broken");
    let services = dir.join("services.json");
    edit(&services, |v| {
        v["services"]["sonarr"]
            .as_object_mut()
            .unwrap()
            .remove("dataset");
    });
    let preseed = dir.join("preseed/sonarr.json");
    edit(&preseed, |v| v["timeoutSeconds"] = "soon".into());
    let replication = dir.join("replication.json");
    edit(&replication, |v| v["version"] = 9.into());
    let status = dir.join("status.json");
    let _ = std::fs::remove_file(&status);
    std::fs::write(&status, "{ not json").unwrap();

    let run = check(&dir, false);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.zfs_calls.is_empty(), "{:?}", run.zfs_calls);
    for said in [
        format!("error: {services}: services.sonarr: missing field `dataset`"),
        format!("error: {preseed}: timeoutSeconds: invalid type: string \"soon\", expected u64"),
        format!("error: {replication}: replication config version 9 is not supported"),
        format!("error: {status}: not valid JSON"),
    ] {
        assert!(run.stderr.contains(&said), "{said}:\n{}", run.stderr);
    }
    // What is not broken is still understood.
    assert!(
        run.stdout
            .contains(&format!("ok     {dir}/datasets.json (datasets plan)")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("broken {dir}/services.json (services file)")),
        "{}",
        run.stdout
    );
    let json = check(&dir, true);
    assert_eq!(json.code, 2, "{json:#?}");
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let broken: Vec<&Value> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["problems"] != Value::Array(vec![]))
        .collect();
    assert_eq!(broken.len(), 4, "{doc:#}");
    let sonarr = broken
        .iter()
        .find(|f| f["file"] == services.as_str())
        .unwrap();
    assert_eq!(
        sonarr["problems"][0]["where"],
        serde_json::json!({ "file": services.as_str(), "field": "services.sonarr" })
    );

    // A plan filed under another service's name is not that service's.
    let dir = forge_etc("misfiled");
    std::fs::rename(
        dir.join("preseed/sonarr.json"),
        dir.join("preseed/radarr.json"),
    )
    .unwrap();
    let run = check(&dir, false);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("preseed/radarr.json: service: the plan is sonarr's, not radarr's"),
        "{}",
        run.stderr
    );
}
