//! The configuration directory (`/etc/zpersist`, `zpersist --config-dir`):
//! which contract lives where, each read by the one loader
//! (`zpersist_host::read_contract`), and [`check`], which reads every one
//! found and says what it understood (`zpersist config check`).
//!
//! | file | contract |
//! | --- | --- |
//! | `services.json` | `zpersist_core::contract::services::ServicesFile` |
//! | `datasets.json` | the datasets plan, `zpersist_core::plan::Plan` |
//! | `replication.json` | `zpersist_core::contract::replication::ReplicationConfig` |
//! | `notify-context.json` | `zpersist_core::contract::notify::NotifyContext` |
//! | `status.json` | `zpersist_core::status::StatusFile` |
//! | `pitr.json` | `zpersist_core::pitr::contract::PitrContract` |
//! | `preseed/<service>.json` | `zpersist_core::preseed::PreseedPlan` |
//! | `drill/<service>.json` | `zpersist_core::drill::DrillPlan` |
//!
//! The units name the same files in the store; these are links to them.

use std::path::{Path, PathBuf};

use serde::Serialize;
use zpersist_core::contract::notify::NotifyContext;
use zpersist_core::contract::replication::ReplicationConfig;
use zpersist_core::contract::services::ServicesFile;
use zpersist_core::contract::{Contract, Diagnostic};
use zpersist_core::drill::DrillPlan;
use zpersist_core::pitr::contract::{PitrContract, Repository};
use zpersist_core::plan::Plan;
use zpersist_core::preseed::PreseedPlan;
use zpersist_core::status::StatusFile;

/// Where the NixOS module puts the contracts.
pub const DEFAULT_DIR: &str = crate::status::DEFAULT_CONFIG;

/// What to do about a contract that is missing or wrong: it is not edited
/// by hand.
pub const REBUILD_HELP: &str = "the files in the configuration directory are written by zpersist's NixOS module: fix the option the diagnostic names and rebuild the system (`nixos-rebuild switch`), or give another directory with --config-dir";

/// The preseed plan help, as preseed-restore and `zpersist restore` give it.
pub const PRESEED_PLAN_HELP: &str = "the plan is written by zpersist's NixOS module (docs/preseed.md; zpersist-<service>-preseed.service names it, /etc/zpersist/preseed/<service>.json links to it)";

/// The drill plan help, as zpersist-drill and `zpersist drill` give it.
pub const DRILL_PLAN_HELP: &str = "the plan is written by zpersist's NixOS module (docs/drill.md; zpersist-<service>-drill.service names it, /etc/zpersist/drill/<service>.json links to it)";

/// The configuration directory.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    pub dir: PathBuf,
}

impl ConfigDir {
    pub fn new(dir: impl Into<PathBuf>) -> ConfigDir {
        ConfigDir { dir: dir.into() }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn preseed_plan_path(&self, service: &str) -> PathBuf {
        self.dir.join("preseed").join(format!("{service}.json"))
    }

    pub fn drill_plan_path(&self, service: &str) -> PathBuf {
        self.dir.join("drill").join(format!("{service}.json"))
    }

    /// The services with a plan in `preseed/` or `drill/`, sorted.
    pub fn planned_services(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = json_files(&self.dir.join(kind))
            .into_iter()
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// A service's restore plan: its preseed plan, else the one its drill
    /// plan embeds (a drilled service without preseed restores from the
    /// same sources). Every problem names the file; no plan at all says
    /// which services have one.
    pub fn restore_plan(&self, service: &str) -> Result<PreseedPlan, Vec<Diagnostic>> {
        let preseed = self.preseed_plan_path(service);
        if preseed.exists() {
            return read_named::<PreseedPlan>(&preseed, service);
        }
        let drill = self.drill_plan_path(service);
        if drill.exists() {
            return read_named::<DrillPlan>(&drill, service).map(|plan| plan.preseed);
        }
        let mut known = self.planned_services("preseed");
        known.extend(self.planned_services("drill"));
        known.sort();
        known.dedup();
        Err(vec![no_plan(service, &preseed, "preseed.sources", &known)])
    }

    /// A service's entry in services.json (what `zpersist migrate` moves).
    pub fn service(
        &self,
        service: &str,
    ) -> Result<zpersist_core::contract::services::ServiceEntry, Vec<Diagnostic>> {
        let path = self.file("services.json");
        let file = read_plan::<ServicesFile>(&path)?;
        file.services.get(service).cloned().ok_or_else(|| {
            let known: Vec<&str> = file.services.keys().map(String::as_str).collect();
            vec![Diagnostic::new(format!("no service named `{service}`"))
                .in_file(path.display().to_string())
                .with_help(format!(
                    "the services declared there are: {}",
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                ))]
        })
    }

    /// The datasets plan (`datasets.json`, the one zpersist-datasets.service
    /// applies), or the file given.
    pub fn datasets_plan(&self, file: Option<&Path>) -> Result<Plan, Vec<Diagnostic>> {
        read_plan::<Plan>(&file.map_or_else(|| self.file("datasets.json"), Path::to_path_buf))
    }

    /// A service's drill plan.
    pub fn drill_plan(&self, service: &str) -> Result<DrillPlan, Vec<Diagnostic>> {
        let path = self.drill_plan_path(service);
        if !path.exists() {
            return Err(vec![no_plan(
                service,
                &path,
                "drill.enable",
                &self.planned_services("drill"),
            )]);
        }
        read_named::<DrillPlan>(&path, service)
    }
}

/// A plan read, and checked to be the service's it is filed under.
fn read_named<C: Contract + Named>(path: &Path, service: &str) -> Result<C, Vec<Diagnostic>> {
    let plan = zpersist_host::read_contract::<C>(path)?;
    if plan.service() != service {
        return Err(vec![Diagnostic::new(format!(
            "the plan is {}'s, not {service}'s",
            plan.service()
        ))
        .in_file(path.display().to_string())
        .at_field("service")
        .with_help(REBUILD_HELP)]);
    }
    Ok(plan)
}

trait Named {
    fn service(&self) -> &str;
}

impl Named for PreseedPlan {
    fn service(&self) -> &str {
        &self.service
    }
}

impl Named for DrillPlan {
    fn service(&self) -> &str {
        &self.service
    }
}

fn no_plan(service: &str, path: &Path, option: &str, known: &[String]) -> Diagnostic {
    Diagnostic::new(format!(
        "{service}: no plan ({} does not exist)",
        path.display()
    ))
    .with_help(format!(
        "{}; a service has one when zpersist.services.{service}.{option} is set and the system is rebuilt",
        if known.is_empty() {
            "no service has one here".to_string()
        } else {
            format!("services with one: {}", known.join(", "))
        }
    ))
}

/// Reads a plan given by its path (what the units pass with `--plan`).
pub fn read_plan<C: Contract>(path: &Path) -> Result<C, Vec<Diagnostic>> {
    zpersist_host::read_contract::<C>(path)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One file `check` read.
#[derive(Debug, Serialize)]
pub struct FileCheck {
    pub file: String,
    /// What it is (`services file`, `preseed plan`, ...).
    pub kind: String,
    /// What was understood, one line each (empty when it is broken).
    pub understood: Vec<String>,
    /// What is wrong, each naming the file and, where known, the field.
    pub problems: Vec<Diagnostic>,
}

/// Every contract in the directory, read and summarised.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub dir: String,
    pub files: Vec<FileCheck>,
    /// `*.json` files here that zpersist does not read.
    pub unknown: Vec<String>,
}

impl CheckReport {
    pub fn problems(&self) -> impl Iterator<Item = &Diagnostic> {
        self.files.iter().flat_map(|f| f.problems.iter())
    }
}

/// Reads every contract found in `dir` (each file the module writes, each
/// plan in `preseed/` and `drill/`), as the binaries read them: nothing is
/// asked of ZFS or of the sources.
pub fn check(dir: &Path) -> CheckReport {
    let mut files = Vec::new();
    let mut known: Vec<PathBuf> = Vec::new();
    let mut one =
        |name: &str, kind: &str, summary: fn(&Path) -> Result<Vec<String>, Vec<Diagnostic>>| {
            let path = dir.join(name);
            known.push(path.clone());
            if path.exists() {
                files.push(checked(&path, kind, summary));
            }
        };
    one("services.json", "services file", |p| {
        read_plan::<ServicesFile>(p).map(|c| services(&c))
    });
    one("datasets.json", "datasets plan", |p| {
        read_plan::<Plan>(p).map(|c| datasets(&c))
    });
    one("replication.json", "replication config", |p| {
        read_plan::<ReplicationConfig>(p).map(|c| replication(&c))
    });
    one("notify-context.json", "notification context", |p| {
        read_plan::<NotifyContext>(p).map(|c| notify(&c))
    });
    one("status.json", "status objectives", |p| {
        read_plan::<StatusFile>(p).map(|c| status(&c))
    });
    one("pitr.json", "PITR contract", |p| {
        read_plan::<PitrContract>(p).map(|c| pitr(&c))
    });
    for path in json_files(&dir.join("preseed")) {
        files.push(checked(&path, "preseed plan", |p| {
            read_named::<PreseedPlan>(p, stem(p)).map(|c| preseed(&c))
        }));
    }
    for path in json_files(&dir.join("drill")) {
        files.push(checked(&path, "drill plan", |p| {
            read_named::<DrillPlan>(p, stem(p)).map(|c| drill(&c))
        }));
    }
    let unknown = json_files(dir)
        .into_iter()
        .filter(|p| !known.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    CheckReport {
        dir: dir.display().to_string(),
        files,
        unknown,
    }
}

fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}

fn checked(
    path: &Path,
    kind: &str,
    summary: impl Fn(&Path) -> Result<Vec<String>, Vec<Diagnostic>>,
) -> FileCheck {
    let (understood, problems) = match summary(path) {
        Ok(lines) => (lines, Vec::new()),
        Err(problems) => (Vec::new(), problems),
    };
    FileCheck {
        file: path.display().to_string(),
        kind: kind.into(),
        understood,
        problems,
    }
}

fn services(c: &ServicesFile) -> Vec<String> {
    let mut lines = vec![format!("pool {}, {} service(s)", c.pool, c.services.len())];
    lines.extend(c.services.iter().map(|(name, s)| {
        format!(
            "service {name}: {} on {}{}",
            s.dataset,
            s.mountpoint,
            if s.units.is_empty() {
                String::new()
            } else {
                format!(" (units {})", s.units.join(", "))
            }
        )
    }));
    lines
}

fn datasets(c: &Plan) -> Vec<String> {
    let mut lines = vec![format!("pool {}, {} dataset(s)", c.pool, c.datasets.len())];
    lines.extend(c.datasets.iter().map(|d| {
        format!(
            "dataset {}{}",
            d.name,
            d.mountpoint
                .as_deref()
                .map(|m| format!(" on {m}"))
                .unwrap_or_default()
        )
    }));
    lines
}

fn replication(c: &ReplicationConfig) -> Vec<String> {
    let mut lines = vec![format!(
        "host {}, {} target(s), {} replicated dataset(s)",
        c.host,
        c.targets.len(),
        c.datasets.len()
    )];
    lines.extend(c.targets.iter().map(|(name, t)| {
        format!(
            "target {name}: {}{}",
            match &t.host {
                Some(host) => format!(
                    "{}@{host}:{} ",
                    t.user.as_deref().unwrap_or("root"),
                    t.port.unwrap_or(22)
                ),
                None => "this host, ".to_string(),
            },
            t.dataset
        )
    }));
    lines.extend(c.datasets.iter().map(|p| {
        format!(
            "replicate {} -> {} {}",
            p.source, p.target, p.target_dataset
        )
    }));
    lines
}

fn notify(c: &NotifyContext) -> Vec<String> {
    let d = &c.delivery;
    let mut ways = Vec::new();
    if d.command.is_some() {
        ways.push("a command");
    }
    if d.ntfy.is_some() {
        ways.push("ntfy");
    }
    if d.webhook.is_some() {
        ways.push("a webhook");
    }
    if d.email.is_some() {
        ways.push("email");
    }
    vec![format!(
        "host {}, {} unit(s) notify through {}",
        c.host,
        c.units.len(),
        if ways.is_empty() {
            "nothing".to_string()
        } else {
            ways.join(", ")
        }
    )]
}

fn status(c: &StatusFile) -> Vec<String> {
    let mut lines: Vec<String> = c
        .services
        .iter()
        .map(|(name, o)| {
            format!(
                "objectives of {name}: newest snapshot at most {}",
                o.max_snapshot_age_seconds
                    .map(|s| format!("{s}s old"))
                    .unwrap_or_else(|| "(not judged)".into())
            )
        })
        .collect();
    lines.extend(c.pools.iter().map(|(name, p)| {
        format!(
            "pool {name}: last scrub at most {}",
            p.max_scrub_age_seconds
                .map(|s| format!("{s}s old"))
                .unwrap_or_else(|| "(not judged)".into())
        )
    }));
    if c.postgresql.is_some() {
        lines.push("postgresql: PITR objectives".into());
    }
    lines
}

fn pitr(c: &PitrContract) -> Vec<String> {
    vec![
        format!(
            "cluster {} (port {}, user {})",
            c.cluster.data_dir, c.cluster.port, c.cluster.user
        ),
        match &c.repository {
            Repository::Local { dir, dataset } => format!(
                "repository {dir}{}",
                dataset
                    .as_deref()
                    .map(|d| format!(" (dataset {d})"))
                    .unwrap_or_default()
            ),
            Repository::S3(s3) => format!("repository {} (S3)", s3.destination),
        },
        format!("drill into {}", c.drill.scratch_dir),
    ]
}

fn sources(plan: &PreseedPlan) -> String {
    plan.sources
        .iter()
        .map(|s| s.label())
        .collect::<Vec<_>>()
        .join(", ")
}

fn preseed(c: &PreseedPlan) -> Vec<String> {
    vec![format!(
        "service {}: {} on {}, restored from {}",
        c.service,
        c.dataset,
        c.mountpoint,
        sources(c)
    )]
}

fn drill(c: &DrillPlan) -> Vec<String> {
    let mut checks = Vec::new();
    if !c.sqlite.is_empty() {
        checks.push(format!("{} SQLite database(s)", c.sqlite.len()));
    }
    if c.check.is_some() {
        checks.push("a check command".into());
    }
    vec![format!(
        "service {}: drills {}{}",
        c.service,
        sources(&c.preseed),
        if checks.is_empty() {
            String::new()
        } else {
            format!(", checks {}", checks.join(" and "))
        }
    )]
}
