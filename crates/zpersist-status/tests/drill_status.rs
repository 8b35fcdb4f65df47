//! The last restore drill of a service in zpersist-status, on real
//! components: the real drill (zpersist-ops' `drill::run`, what
//! zpersist-drill runs) restores a zfs-fuse dataset holding a real SQLite
//! database from its local snapshot and writes its result; zpersist-status
//! reads that result and is green; a drill of a corrupt database makes it
//! red naming the drill's unit; a result older than the objective is red;
//! a service without a drill shows none and is not red for it.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::pool::{run_recorded, zfs, Recorded, TestPool};

const STATUS: &str = env!("CARGO_BIN_EXE_zpersist-status");

struct Fixture {
    pool: TestPool,
    ds: String,
    mountpoint: Utf8PathBuf,
    state: Utf8PathBuf,
    config: Utf8PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let pool = TestPool::new("stdrill");
        let ds = pool.ds("services/sonarr");
        let mountpoint = pool.mnt().join("var/lib/sonarr");
        zfs(&[
            "create",
            "-p",
            "-o",
            &format!("mountpoint={mountpoint}"),
            &ds,
        ]);
        duct::cmd(
            "sqlite3",
            [
                mountpoint.join("sonarr.db").as_str(),
                "CREATE TABLE series(id INTEGER PRIMARY KEY, title TEXT, blob BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
                 INSERT INTO series SELECT i, 'series ' || i, randomblob(200) FROM n;
                 CREATE INDEX by_title ON series(title);",
            ],
        )
        .run()
        .expect("sqlite3 makes the database");
        zfs(&[
            "snapshot",
            &format!("{ds}@autosnap_2026-11-01_00:00:00_hourly"),
        ]);
        let other = pool.ds("services/radarr");
        zfs(&[
            "create",
            "-o",
            &format!("mountpoint={}", pool.mnt().join("var/lib/radarr")),
            &other,
        ]);
        let state = pool.scratch("drill-state");
        let config = pool.scratch("config");
        std::fs::create_dir_all(&config).unwrap();
        Fixture {
            pool,
            ds,
            mountpoint,
            state,
            config,
        }
    }

    /// The real drill, as zpersist-drill runs it; its result file is
    /// `<state>/sonarr.json`.
    fn drill(&self) -> zpersist_core::drill::DrillResult {
        let plan = json!({
            "version": 1, "service": "sonarr", "profile": "sonarr",
            "preseed": {
                "version": 1, "service": "sonarr", "dataset": self.ds,
                "mountpoint": self.mountpoint, "sources": [{ "local": {} }],
                "stateDir": self.pool.scratch("preseed-state"), "timeoutSeconds": 20,
            },
            "sqlite": ["sonarr.db"],
            "checkTimeoutSeconds": 60,
            "stateDir": self.state,
            "textfile": self.pool.scratch("drill-sonarr.prom"),
            "scratchRoot": self.pool.scratch("run-drill"),
        });
        let plan =
            zpersist_core::contract::parse::<zpersist_core::drill::DrillPlan>(&plan.to_string())
                .expect("the drill plan parses");
        zpersist_ops::drill::run(
            &plan,
            &zpersist_ops::drill::Options {
                only: None,
                lock_timeout: Duration::from_secs(30),
                text: false,
            },
        )
    }

    /// services.json (sonarr drilled, radarr not) and status.json with
    /// sonarr's drill objectives.
    fn configure(&self, drill: Value) {
        let services = json!({ "version": 1, "pool": self.pool.name, "services": {
            "sonarr": { "dataset": self.ds, "mountpoint": self.mountpoint },
            "radarr": { "dataset": self.pool.ds("services/radarr"),
                        "mountpoint": self.pool.mnt().join("var/lib/radarr") },
        }});
        let status = json!({ "version": 1, "services": {
            "sonarr": { "drill": drill },
            "radarr": {},
        }});
        for (file, value) in [("services.json", services), ("status.json", status)] {
            std::fs::write(self.config.join(file), value.to_string()).unwrap();
        }
    }

    fn objectives(&self, max_age: u64) -> Value {
        json!({
            "resultFile": self.state.join("sonarr.json"),
            "unit": "zpersist-sonarr-drill.service",
            "maxAgeSeconds": max_age,
            "maxRpoSeconds": 100_000_000u64,
        })
    }

    fn status(&self, extra: &[&str]) -> Recorded {
        let mut args = vec!["--config", self.config.as_str()];
        args.extend(extra);
        run_recorded(Utf8Path::new(STATUS), &args, &BTreeMap::new())
    }

    fn json(&self) -> (i32, Value) {
        let run = self.status(&["--json"]);
        let doc: Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:#?}"));
        (run.code, doc)
    }
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("{name} in {doc:#}"))
}

#[test]
fn the_last_drill_of_each_service_is_shown_and_judged() {
    let f = Fixture::new();
    let textfile = f.pool.scratch("status.prom");

    // Drill enabled, none has run yet: red, saying how to run one.
    f.configure(f.objectives(3600));
    let (code, doc) = f.json();
    assert_eq!(code, 1, "{doc:#}");
    let sonarr = service(&doc, "sonarr");
    assert_eq!(sonarr["drill"]["state"], "never", "{sonarr:#}");
    assert!(
        sonarr["problems"][0]["help"]
            .as_str()
            .unwrap()
            .contains("systemctl start zpersist-sonarr-drill.service"),
        "{sonarr:#}"
    );

    // The real drill passes: green, its RPO and RTO per source shown.
    let result = f.drill();
    assert!(result.success, "{result:#?}");
    let (code, doc) = f.json();
    assert_eq!(code, 0, "{doc:#}");
    let sonarr = service(&doc, "sonarr");
    assert_eq!(sonarr["drill"]["state"], "ran");
    assert_eq!(sonarr["drill"]["ok"], true);
    assert_eq!(sonarr["drill"]["result"]["sources"][0]["source"], "local");
    assert!(sonarr["drill"]["result"]["sources"][0]["rpoSeconds"].is_i64());
    // A service without a drill shows none and is not red for it.
    let radarr = service(&doc, "radarr");
    assert!(radarr["drill"].is_null(), "{radarr:#}");
    assert_eq!(radarr["problems"], json!([]), "{radarr:#}");
    let run = f.status(&["--textfile", textfile.as_str()]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains("  last drill: succeeded at "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("    local: ok, RPO "), "{}", run.stdout);
    let text = std::fs::read_to_string(&textfile).unwrap();
    let labels = format!("service=\"sonarr\",dataset=\"{}\"", f.ds);
    for row in [
        format!("zpersist_status_drill_ok{{{labels}}} 1"),
        format!("zpersist_status_drill_success{{{labels},source=\"local\"}} 1"),
        format!("zpersist_status_drill_age_objective_seconds{{{labels}}} 3600"),
    ] {
        assert!(text.contains(&row), "{row} in\n{text}");
    }
    for series in [
        "zpersist_status_drill_rpo_seconds{",
        "zpersist_status_drill_rto_seconds{",
        "zpersist_status_drill_age_seconds{",
    ] {
        assert!(
            text.contains(&format!("{series}{labels},"))
                || text.contains(&format!("{series}{labels}}}")),
            "{series} in\n{text}"
        );
    }
    assert!(
        !text.contains("service=\"radarr\",dataset=\"")
            || !text.contains("zpersist_status_drill_ok{service=\"radarr\""),
        "{text}"
    );

    // Older than the objective: red, naming the timer.
    std::thread::sleep(Duration::from_secs(2));
    f.configure(f.objectives(1));
    let run = f.status(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout
            .contains("the last restore drill of sonarr started "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(objective: at most 1 s)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("systemctl list-timers zpersist-sonarr-drill.service"),
        "{}",
        run.stdout
    );

    // A corrupt database in the freshest snapshot: the drill fails, red.
    let db = f.mountpoint.join("sonarr.db");
    let len = std::fs::metadata(&db).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
    file.write_all(&[0xA5; 8192]).unwrap();
    file.sync_all().unwrap();
    drop(file);
    zfs(&[
        "snapshot",
        &format!("{}@autosnap_2026-11-02_00:00:00_hourly", f.ds),
    ]);
    let result = f.drill();
    assert!(!result.success, "{result:#?}");
    f.configure(f.objectives(3600));
    let (code, doc) = f.json();
    assert_eq!(code, 1, "{doc:#}");
    let sonarr = service(&doc, "sonarr");
    assert_eq!(sonarr["drill"]["ok"], false);
    let problem = &sonarr["problems"][0];
    assert!(
        problem["error"]
            .as_str()
            .unwrap()
            .starts_with("the restore drill of sonarr from local (started "),
        "{sonarr:#}"
    );
    assert!(
        problem["help"]
            .as_str()
            .unwrap()
            .contains("`journalctl -u zpersist-sonarr-drill.service`"),
        "{sonarr:#}"
    );
    let run = f.status(&["--textfile", textfile.as_str()]);
    assert_eq!(run.code, 1);
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        text.contains(&format!(
            "zpersist_status_drill_success{{{labels},source=\"local\"}} 0"
        )),
        "{text}"
    );

    // A result that is not a drill result (an unknown field): red, never
    // read as a pass.
    let path = f.state.join("sonarr.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["success"] = json!(true);
    doc["sources"][0]["success"] = json!(true);
    doc["bogus"] = json!(1);
    std::fs::write(&path, doc.to_string()).unwrap();
    let (code, doc) = f.json();
    assert_eq!(code, 1, "{doc:#}");
    let sonarr = service(&doc, "sonarr");
    assert_eq!(sonarr["drill"]["state"], "unreadable", "{sonarr:#}");
    assert!(
        sonarr["problems"][0]["error"]
            .as_str()
            .unwrap()
            .contains("bogus"),
        "{sonarr:#}"
    );
}
