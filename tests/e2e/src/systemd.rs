//! Unit files from NixOS `systemd.services.<name>` definitions, checked with
//! systemd's own tools (`systemd-analyze verify` and `security --offline`).
//!
//! [`render_service`] writes a definition the way NixOS's systemd module
//! (nixos/lib/systemd-lib.nix, systemd-unit-options.nix) writes the unit:
//!
//! - `description`, `documentation`, `requires`, `wants`, `after`,
//!   `before`, `bindsTo`, `partOf`, `conflicts`, `requisite`, `upholds`,
//!   `onFailure`, `onSuccess` become `[Unit]` keys, each list joined by
//!   spaces into one line; `unitConfig` joins them there, and all `[Unit]`
//!   keys come sorted by name (NixOS renders one attribute set);
//! - `serviceConfig` becomes `[Service]`, sorted by name: a list value is
//!   one line per element, `true`/`false` for booleans;
//! - `environment` (with `PATH` from `path`: every `<p>/bin`, then every
//!   `<p>/sbin`) comes first in `[Service]`, one JSON-quoted
//!   `Environment="NAME=value"` per variable, then `X-RestartIfChanged=false`
//!   / `X-StopIfChanged=false` / `X-ReloadIfChanged=true`;
//! - `restartTriggers` / `reloadTriggers` become `X-Restart-Triggers=` /
//!   `X-Reload-Triggers=` (NixOS writes the values to a store file and names
//!   that; here the values themselves: systemd ignores `X-` keys either way);
//! - `wantedBy` becomes `[Install] WantedBy=` as NixOS writes it, and
//!   `requiredBy` `RequiredBy=` (NixOS only makes `.requires` symlinks; an
//!   `[Install]` key lets verify see the same dependency);
//! - `script` / `preStart` / `postStart` become a generated `#!/bin/sh`
//!   script (`set -e` first) named in `ExecStart=` / `ExecStartPre=` /
//!   `ExecStartPost=`;
//! - `startAt` becomes `<name>.timer` with `OnCalendar=` per entry, wanted
//!   by `timers.target`; `systemd.timers.<name>` definitions become
//!   `<name>.timer` through [`render_timer`] (`timerConfig` as `[Timer]`).
//!
//! NixOS also puts coreutils, findutils, grep, sed and systemd on every
//! service's PATH and sets `LOCALE_ARCHIVE`/`TZDIR`; those are left out, as
//! they come from NixOS rather than from the definition. A field this
//! renderer does not know fails loudly, so a new field used by the modules
//! cannot pass unseen.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

/// One file of a unit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The file name: `zpersist-datasets.service`, `sanoid.timer`, or the
    /// name of a generated script.
    pub name: String,
    pub text: String,
    /// Generated scripts are executable.
    pub executable: bool,
}

/// `[Unit]` keys NixOS makes from list options, joined by spaces.
const UNIT_LISTS: &[(&str, &str)] = &[
    ("requires", "Requires"),
    ("wants", "Wants"),
    ("upholds", "Upholds"),
    ("after", "After"),
    ("before", "Before"),
    ("bindsTo", "BindsTo"),
    ("partOf", "PartOf"),
    ("conflicts", "Conflicts"),
    ("requisite", "Requisite"),
    ("documentation", "Documentation"),
    ("onFailure", "OnFailure"),
    ("onSuccess", "OnSuccess"),
];

/// Fields of a definition that produce nothing in the unit file (NixOS reads
/// them for activation only) or that the stubs declare but nothing sets.
const NO_UNIT_TEXT: &[&str] = &["enable", "aliases", "upheldBy", "overrideStrategy"];

/// The packages NixOS appends to every service's `path` (`mkAfter`, in
/// nixos/modules/system/boot/systemd.nix, `stage2ServiceConfig`), by the
/// attribute names of nixpkgs.
pub const NIXOS_DEFAULT_PATH: &[&str] = &["coreutils", "findutils", "gnugrep", "gnused", "systemd"];

/// Renders `systemd.services.<name>` (as `nix-instantiate --json` prints
/// it) into `<name>.service`, plus `<name>.timer` for `startAt` and the
/// scripts of `script`/`preStart`, which are named as living in
/// `script_dir`. A disabled unit (`enable = false`) renders nothing.
/// NixOS's default path is left out (see [`render_service_with_path`]).
pub fn render_service(name: &str, def: &Value, script_dir: &Utf8Path) -> Vec<UnitFile> {
    render_service_with_path(name, def, script_dir, &[])
}

/// [`render_service`] with NixOS's default path: `default_path` (the
/// store paths of [`NIXOS_DEFAULT_PATH`]) comes after the definition's
/// `path`, so every service gets `PATH` as on NixOS, even one without a
/// `path` of its own. For units that run, not only get verified.
pub fn render_service_with_path(
    name: &str,
    def: &Value,
    script_dir: &Utf8Path,
    default_path: &[String],
) -> Vec<UnitFile> {
    let fields = def
        .as_object()
        .unwrap_or_else(|| panic!("systemd.services.{name} is not an attribute set: {def}"));
    if fields.get("enable") == Some(&Value::Bool(false)) {
        return Vec::new();
    }
    refuse_unknown_fields(
        fields,
        &format!("systemd.services.{name}"),
        "render_service",
        &[
            "serviceConfig",
            "environment",
            "path",
            "restartIfChanged",
            "stopIfChanged",
            "reloadIfChanged",
            "script",
            "preStart",
            "postStart",
            "postStop",
            "startAt",
        ],
    );

    let mut files = Vec::new();
    let unit_name = format!("{name}.service");

    // [Unit]: one attribute set in NixOS, so one sorted map here.
    let unit = unit_section(fields, &unit_name);

    // [Service]: environment, the X- switches, then serviceConfig.
    let mut environment: BTreeMap<String, String> = BTreeMap::new();
    if let Some(Value::Object(vars)) = fields.get("environment") {
        for (var, value) in vars {
            match value {
                Value::Null => {}
                other => {
                    environment.insert(var.clone(), option_value(other, &unit_name, var));
                }
            }
        }
    }
    let mut path = list_of_strings(fields.get("path"), &unit_name, "path");
    path.extend(default_path.iter().cloned());
    if !path.is_empty() {
        let bin = path.iter().map(|p| format!("{p}/bin"));
        let sbin = path.iter().map(|p| format!("{p}/sbin"));
        environment.insert("PATH".into(), bin.chain(sbin).collect::<Vec<_>>().join(":"));
    }
    let mut service_text = String::from("[Service]\n");
    for (var, value) in &environment {
        let quoted = serde_json::to_string(&format!("{var}={value}")).expect("a string");
        service_text.push_str(&format!("Environment={quoted}\n"));
    }
    if fields.get("reloadIfChanged") == Some(&Value::Bool(true)) {
        service_text.push_str("X-ReloadIfChanged=true\n");
    } else if fields.get("restartIfChanged") == Some(&Value::Bool(false)) {
        service_text.push_str("X-RestartIfChanged=false\n");
    }
    if fields.get("stopIfChanged") == Some(&Value::Bool(false)) {
        service_text.push_str("X-StopIfChanged=false\n");
    }
    let mut service: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(config) = fields.get("serviceConfig") {
        add_section_values(&mut service, config, &unit_name, "serviceConfig");
    }
    for (field, key, suffix) in [
        ("script", "ExecStart", "start"),
        ("preStart", "ExecStartPre", "pre-start"),
        ("postStart", "ExecStartPost", "post-start"),
        ("postStop", "ExecStopPost", "post-stop"),
    ] {
        if let Some(script) = fields.get(field).and_then(Value::as_str) {
            if script.is_empty() {
                continue;
            }
            let script_name = format!("unit-script-{}-{suffix}", name.replace('@', "_"));
            files.push(UnitFile {
                name: script_name.clone(),
                text: format!("#!/bin/sh\nset -e\n\n{script}\n"),
                executable: true,
            });
            service
                .entry(key.into())
                .or_default()
                .push(script_dir.join(&script_name).to_string());
        }
    }
    service_text.push_str(&section_lines(&service));

    let mut text = format!("[Unit]\n{}\n{service_text}", section_lines(&unit));
    text.push_str(&install_section(fields, &unit_name));
    files.insert(
        0,
        UnitFile {
            name: unit_name.clone(),
            text,
            executable: false,
        },
    );

    let start_at = match fields.get("startAt") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(other) => list_of_strings(Some(other), &unit_name, "startAt"),
    };
    if !start_at.is_empty() {
        let on_calendar: String = start_at
            .iter()
            .map(|when| format!("OnCalendar={when}\n"))
            .collect();
        files.insert(
            1,
            UnitFile {
                name: format!("{name}.timer"),
                text: format!(
                    "[Unit]\n\n[Timer]\n{on_calendar}\n[Install]\nWantedBy=timers.target\n"
                ),
                executable: false,
            },
        );
    }
    files
}

/// Renders `systemd.timers.<name>` into `<name>.timer`: the `[Unit]` lists
/// and `unitConfig` as for services, `timerConfig` as `[Timer]`,
/// `wantedBy`/`requiredBy` as `[Install]`. A field this renderer does not
/// know fails loudly.
pub fn render_timer(name: &str, def: &Value) -> Option<UnitFile> {
    let fields = def
        .as_object()
        .unwrap_or_else(|| panic!("systemd.timers.{name} is not an attribute set: {def}"));
    if fields.get("enable") == Some(&Value::Bool(false)) {
        return None;
    }
    let unit_name = format!("{name}.timer");
    refuse_unknown_fields(
        fields,
        &format!("systemd.timers.{name}"),
        "render_timer",
        &["timerConfig", "path"],
    );
    // The stubs give every unit kind `path`; on a timer it can only be empty.
    assert!(
        list_of_strings(fields.get("path"), &unit_name, "path").is_empty(),
        "systemd.timers.{name} sets a path, which a timer has no use for"
    );
    let unit = unit_section(fields, &unit_name);
    let mut timer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(config) = fields.get("timerConfig") {
        add_section_values(&mut timer, config, &unit_name, "timerConfig");
    }
    let mut text = format!(
        "[Unit]\n{}\n[Timer]\n{}",
        section_lines(&unit),
        section_lines(&timer)
    );
    text.push_str(&install_section(fields, &unit_name));
    Some(UnitFile {
        name: unit_name,
        text,
        executable: false,
    })
}

/// Fails loudly on a field of `what` this renderer does not know (the
/// `[Unit]` and `[Install]` fields, and `own`), so a new field used by the
/// modules cannot pass unseen.
fn refuse_unknown_fields(
    fields: &serde_json::Map<String, Value>,
    what: &str,
    renderer: &str,
    own: &[&str],
) {
    let known: BTreeSet<&str> = UNIT_LISTS
        .iter()
        .map(|(field, _)| *field)
        .chain(NO_UNIT_TEXT.iter().copied())
        .chain([
            "description",
            "unitConfig",
            "wantedBy",
            "requiredBy",
            "restartTriggers",
            "reloadTriggers",
        ])
        .chain(own.iter().copied())
        .collect();
    let unknown: Vec<&String> = fields
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} sets {unknown:?}, which tests/e2e/src/systemd.rs does not render; teach \
         {renderer} how NixOS writes it"
    );
}

/// `[Unit]` of a definition: `unitConfig`, the list options, `description`.
fn unit_section(
    fields: &serde_json::Map<String, Value>,
    unit_name: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut unit: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(config) = fields.get("unitConfig") {
        add_section_values(&mut unit, config, unit_name, "unitConfig");
    }
    for (field, key) in UNIT_LISTS {
        let values = list_of_strings(fields.get(*field), unit_name, field);
        if !values.is_empty() {
            unit.insert((*key).to_owned(), vec![values.join(" ")]);
        }
    }
    if let Some(description) = fields.get("description").and_then(Value::as_str) {
        if !description.is_empty() {
            unit.insert("Description".into(), vec![description.to_owned()]);
        }
    }
    for (field, key) in [
        ("restartTriggers", "X-Restart-Triggers"),
        ("reloadTriggers", "X-Reload-Triggers"),
    ] {
        let values = list_of_strings(fields.get(field), unit_name, field);
        if !values.is_empty() {
            unit.insert(key.into(), vec![values.join(" ")]);
        }
    }
    unit
}

/// `[Install]` of a definition (`wantedBy`, `requiredBy`), or nothing.
fn install_section(fields: &serde_json::Map<String, Value>, unit_name: &str) -> String {
    let wanted_by = list_of_strings(fields.get("wantedBy"), unit_name, "wantedBy");
    let required_by = list_of_strings(fields.get("requiredBy"), unit_name, "requiredBy");
    let mut text = String::new();
    if !wanted_by.is_empty() || !required_by.is_empty() {
        text.push_str("\n[Install]\n");
        if !wanted_by.is_empty() {
            text.push_str(&format!("WantedBy={}\n", wanted_by.join(" ")));
        }
        if !required_by.is_empty() {
            text.push_str(&format!("RequiredBy={}\n", required_by.join(" ")));
        }
    }
    text
}

/// The strings of a list field (absent: none).
fn list_of_strings(value: Option<&Value>, unit: &str, field: &str) -> Vec<String> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| option_value(item, unit, field))
            .collect(),
        Some(other) => panic!("{unit}: {field} is not a list: {other}"),
    }
}

/// One value as NixOS's `toOption` writes it.
fn option_value(value: &Value, unit: &str, key: &str) -> String {
    match value {
        Value::Bool(true) => "true".into(),
        Value::Bool(false) => "false".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // Nix's toString of a list: the elements joined by spaces.
        Value::Array(items) => items
            .iter()
            .map(|item| option_value(item, unit, key))
            .collect::<Vec<_>>()
            .join(" "),
        other => panic!("{unit}: {key} = {other} has no unit-file form"),
    }
}

/// `attrsToSection`: a list is one line per element.
fn add_section_values(
    section: &mut BTreeMap<String, Vec<String>>,
    config: &Value,
    unit: &str,
    what: &str,
) {
    let Value::Object(keys) = config else {
        panic!("{unit}: {what} is not an attribute set: {config}");
    };
    for (key, value) in keys {
        let values = match value {
            Value::Array(items) => items.iter().map(|v| option_value(v, unit, key)).collect(),
            other => vec![option_value(other, unit, key)],
        };
        section.insert(key.clone(), values);
    }
}

fn section_lines(section: &BTreeMap<String, Vec<String>>) -> String {
    section
        .iter()
        .flat_map(|(key, values)| values.iter().map(move |v| format!("{key}={v}\n")))
        .collect()
}

// ---------------------------------------------------------------- units on disk

/// The executables a unit's `Exec*=` lines run (prefixes such as `-`, `+`,
/// `@`, `!`, `:` stripped), in order.
pub fn exec_programs(unit_text: &str) -> Vec<String> {
    unit_text
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            if !key.starts_with("Exec") {
                return None;
            }
            let command = value.trim_start_matches(['-', '+', '@', '!', ':']);
            let program = command.split_whitespace().next()?;
            Some(program.trim_matches(['\'', '"']).to_owned())
        })
        .collect()
}

/// Every unit a unit file names in a dependency or ordering key, with
/// `%n`/`%N`/`%i` resolved for `unit_name`.
pub fn referenced_units(unit_name: &str, unit_text: &str) -> BTreeSet<String> {
    const KEYS: &[&str] = &[
        "Requires",
        "Wants",
        "Upholds",
        "After",
        "Before",
        "BindsTo",
        "PartOf",
        "Conflicts",
        "Requisite",
        "OnFailure",
        "OnSuccess",
        "WantedBy",
        "RequiredBy",
    ];
    let instance = unit_name
        .split_once('@')
        .map(|(_, rest)| rest.rsplit_once('.').map_or(rest, |(i, _)| i))
        .unwrap_or("");
    let prefix = unit_name.rsplit_once('.').map_or(unit_name, |(p, _)| p);
    unit_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| KEYS.contains(key))
        .flat_map(|(_, value)| value.split_whitespace())
        .map(|name| {
            name.replace("%n", unit_name)
                .replace("%N", prefix)
                .replace("%i", instance)
        })
        .collect()
}

/// Whether `name` is a unit file in `dirs`; an instance `a@b.service` also
/// counts when its template `a@.service` is there.
pub fn unit_exists(name: &str, dirs: &[&Utf8Path]) -> bool {
    let template = name.split_once('@').and_then(|(head, rest)| {
        rest.rsplit_once('.')
            .map(|(_, ext)| format!("{head}@.{ext}"))
    });
    dirs.iter().any(|dir| {
        dir.join(name).exists()
            || template
                .as_ref()
                .is_some_and(|template| dir.join(template).exists())
    })
}

/// Where systemd looks for system units by default (Debian keeps them in
/// /lib/systemd/system).
pub const SYSTEM_UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

// ---------------------------------------------------------------- systemd-analyze

/// What `systemd-analyze` printed, stdout and stderr together.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub success: bool,
    pub output: String,
}

fn systemd_analyze(args: &[&str], unit_dir: &Utf8Path) -> Analysis {
    // A trailing ':' appends systemd's default search path, so units of
    // this machine (multi-user.target, network-online.target, ...) are found
    // after the ones in unit_dir.
    let output = crate::zfs_watchdog::try_run_bounded(
        duct::cmd("systemd-analyze", args)
            .env("SYSTEMD_UNIT_PATH", format!("{unit_dir}:"))
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0")
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture(),
        &format!("systemd-analyze {}", args.join(" ")),
        crate::zfs_watchdog::OTHER_LIMIT,
    );
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "error: systemd-analyze is not on PATH; these tests check the generated units with \
             systemd's own tools\nhelp: apt-get install systemd (it need not run as PID 1)"
        ),
        Err(e) => panic!("error: cannot run systemd-analyze {args:?}: {e}"),
    };
    Analysis {
        success: output.status.success(),
        output: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// `systemd-analyze verify` on `files`, resolving the units they name in
/// `unit_dir` first, then on this machine. `--man=no`: the manual pages
/// named in `Documentation=` are NixOS's, not this machine's.
pub fn verify(unit_dir: &Utf8Path, files: &[Utf8PathBuf]) -> Analysis {
    let mut args = vec!["verify", "--man=no"];
    args.extend(files.iter().map(|f| f.as_str()));
    systemd_analyze(&args, unit_dir)
}

/// `systemd-analyze security --offline=true` on one unit file: the overall
/// exposure score (0.0 safest .. 10.0) and the full table.
pub fn exposure(unit_dir: &Utf8Path, file: &Utf8Path) -> (f64, Analysis) {
    let analysis = systemd_analyze(
        &["security", "--no-pager", "--offline=true", file.as_str()],
        unit_dir,
    );
    let score = analysis
        .output
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once("Overall exposure level for ")?;
            let (_, rest) = rest.split_once(": ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "error: systemd-analyze security printed no overall exposure level for {file}:\n{}",
                analysis.output
            )
        });
    (score, analysis)
}
