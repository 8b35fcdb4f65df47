//! `zpersist pitr restore` and `zpersist pitr drill` (the operator's
//! command, docs/cli.md) against a real PostgreSQL 15 cluster and a local
//! repository: the contract found as CONFIG_DIR/pitr.json, a restore to
//! latest holding every committed row, the drill's RPO, exit 0.

mod common;

use std::time::Duration;

use common::{rows, run, Cluster, Repo};

#[test]
fn zpersist_pitr_restores_and_drills_from_the_contract_in_the_config_dir() {
    let c = Cluster::new("front", Repo::Local, serde_json::json!({ "count": 2 }));
    assert_eq!(c.contract, c.dir.join("pitr.json"), "the module's name");
    c.sql("create table rows (n int primary key, at timestamptz)");
    c.commit_row(1);
    c.pitr_ok("pitr-base-backup", &[]);
    c.commit_row(2);
    c.pitr_ok("pitr-heartbeat", &[]);
    c.switch_and_wait_archived();

    // Built fresh and staged beside pitr-restore-wal, which a restore's
    // server runs as postgres.
    let zpersist = zpersist_e2e::binaries::fresh("zpersist");
    let config = c.dir.display().to_string();
    let into = c.dir.join("restored");
    let into_s = into.display().to_string();
    let restore = run(
        &[
            zpersist.as_str(),
            "--config-dir",
            &config,
            "pitr",
            "restore",
            "--to",
            "latest",
            "--into",
            &into_s,
            "--start",
        ],
        Duration::from_secs(180),
    );
    let said = String::from_utf8_lossy(&restore.stdout);
    assert!(
        restore.status.success(),
        "{restore:?}\n{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert!(
        said.contains(&format!("restored into {into_s}: ")),
        "{said}"
    );
    assert_eq!(c.rows_in(&into), rows(1..=2));

    let drill = run(
        &[
            zpersist.as_str(),
            "--config-dir",
            &config,
            "--json",
            "pitr",
            "drill",
        ],
        Duration::from_secs(180),
    );
    assert!(
        drill.status.success(),
        "{drill:?}\n{}",
        String::from_utf8_lossy(&drill.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&drill.stdout).unwrap();
    assert!(doc["rpoSeconds"].as_f64().is_some(), "{doc:#}");
}
