//! The replication the NixOS module generates, run with real tools: the
//! syncoid commands (argv as nixpkgs renders them, tests/nix/syncoid-argv.nix)
//! and zpersist's ExecStartPre lines, run as systemd would, with the real
//! syncoid on zfs-fuse; and replication-lag on the generated config. Used
//! by crates/replication-lag/tests. Differences forced by the test machine:
//! - zfs-fuse has no resumable receive: every syncoid run gets `--no-resume`;
//! - zfs-fuse has no `zfs get -t`: tests/env/sanoid-zfs/zfs is first on PATH
//!   for syncoid and replication-lag (and, over ssh, in the test sshd's
//!   sessions);
//! - the /etc/zpersist files are written to the pool's scratch area, and
//!   every argument naming one is pointed there;
//! - nixpkgs' delegation ExecStartPre (`zfs allow`) is not run: zfs-fuse has
//!   no `zfs allow`, and the tests run as root (tests/e2e/tests/
//!   replication_units.rs runs and checks them as data).

use std::collections::BTreeMap;

use camino::Utf8PathBuf;
use serde_json::Value;

use crate::nix::eval_expr;
use crate::pool::{zfs, TestPool};

/// PATH with the `zfs` wrapper syncoid and sanoid need on zfs-fuse first
/// (staged: a unit with PrivateTmp= runs it, and the clone may be in /tmp).
pub fn path_with_wrapper() -> String {
    format!(
        "{}:{}",
        crate::reachable::env_dir("sanoid-zfs"),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs the real syncoid with `args` as this machine needs it
/// (`--no-resume` first: zfs-fuse cannot resume a receive; the `zfs get -t`
/// wrapper first on PATH): whether it succeeded, and its combined output.
pub fn syncoid<S: AsRef<str>>(args: &[S]) -> (bool, String) {
    let mut all = vec!["--no-resume".to_string()];
    all.extend(args.iter().map(|a| a.as_ref().to_owned()));
    let out = crate::zfs_watchdog::run_watching_zfs(
        duct::cmd("syncoid", &all)
            .env("PATH", path_with_wrapper())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture(),
        &format!("syncoid {}", all.join(" ")),
        crate::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(crate::zfs_watchdog::Hung::fail);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Splits a command line as lib.escapeShellArgs writes it (words, some in
/// single quotes with '\'' for a quote).
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            ' ' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The names of `dataset`'s snapshots (the part after '@').
pub fn snapshots(dataset: &str) -> Vec<String> {
    zfs(&[
        "get", "-H", "-p", "-o", "name", "-d", "1", "creation", dataset,
    ])
    .lines()
    .filter_map(|l| l.split_once('@').map(|(_, s)| s.to_owned()))
    .collect()
}

/// replication-lag's measurement (`--json`) of `source` on `target`.
pub fn measurement<'a>(all: &'a [Value], source: &str, target: &str) -> &'a Value {
    all.iter()
        .find(|m| m["source"] == source && m["target"] == target)
        .unwrap_or_else(|| panic!("no measurement for {source} -> {target}: {all:?}"))
}

/// A host's replication as the module generates it, with its /etc files in
/// a pool's scratch area.
pub struct Replication {
    /// `argv` (per syncoid command), `units` (per syncoid unit: `after`,
    /// `pre`), `etc`, `failed` (assertions).
    pub eval: Value,
    /// /etc/zpersist/... paths the module names -> scratch files.
    pub etc_files: BTreeMap<String, Utf8PathBuf>,
    /// Where replication-lag writes its textfile.
    pub textfile: Utf8PathBuf,
}

impl Replication {
    /// Evaluates `module` (which must pass every assertion) and writes its
    /// /etc files to `scratch`'s scratch area.
    pub fn generate(module: &str, scratch: &TestPool) -> Replication {
        let eval = eval_expr(&format!(
            r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; extraModule = {module}; }};
in {{
  argv = import ./tests/nix/syncoid-argv.nix {{ inherit lib; syncoid = e.config.services.syncoid; }};
  units = lib.mapAttrs (_: s: {{ after = s.after; pre = s.serviceConfig.ExecStartPre or [ ]; }})
    (lib.filterAttrs (n: _: lib.hasPrefix "syncoid-" n) e.config.systemd.services);
  etc = lib.mapAttrs (_: v: v.text) (lib.filterAttrs (_: v: v ? text) e.config.environment.etc);
  failed = e.failedAssertions;
}}"#
        ));
        assert_eq!(
            eval["failed"],
            Value::Array(vec![]),
            "the test host must evaluate cleanly"
        );
        let textfile = scratch.scratch("lag.prom");
        let etc_files = eval["etc"]
            .as_object()
            .unwrap()
            .keys()
            .map(|name| {
                (
                    format!("/etc/{name}"),
                    scratch.scratch(&name.replace('/', "_")),
                )
            })
            .collect();
        let replication = Replication {
            eval,
            etc_files,
            textfile,
        };
        for (name, text) in replication.eval["etc"].as_object().unwrap() {
            let mut text = text.as_str().unwrap().to_owned();
            if name == "zpersist/replication.json" {
                // The textfile goes to the scratch area; the known_hosts
                // paths are localised with the rest.
                let mut config: Value = serde_json::from_str(&text).unwrap();
                config["textfile"] = replication.textfile.as_str().into();
                text = replication.localise(&config.to_string());
            }
            std::fs::write(&replication.etc_files[&format!("/etc/{name}")], text).unwrap();
        }
        replication
    }

    /// `arg` with every /etc/zpersist path pointed at its scratch file.
    pub fn localise(&self, arg: &str) -> String {
        let mut arg = arg.to_owned();
        for (etc, scratch) in &self.etc_files {
            arg = arg.replace(etc, scratch.as_str());
        }
        arg
    }

    /// The ExecStartPre lines zpersist gives a syncoid unit.
    pub fn pre(&self, command: &str) -> Vec<String> {
        self.eval["units"][format!("syncoid-{command}")]["pre"]
            .as_array()
            .unwrap_or_else(|| panic!("no unit syncoid-{command}: {}", self.eval["units"]))
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect()
    }

    /// Runs a syncoid unit as systemd would: its ExecStartPre lines ("-":
    /// failure ignored; "+": as root, which the test is anyway), then
    /// ExecStart. Returns whether syncoid succeeded and its combined output.
    pub fn run_unit(&self, command: &str) -> (bool, String) {
        for line in self.pre(command) {
            // nixpkgs' delegation scripts (`zfs allow` to the syncoid user):
            // zfs-fuse has none, and the tests run as root. They are run,
            // logged and checked in tests/e2e/tests/replication_units.rs.
            if line.contains("-zfs-allow-") {
                continue;
            }
            let line = line
                .strip_prefix('-')
                .expect("zpersist's ExecStartPre lines ignore failure");
            let line = line.strip_prefix('+').unwrap_or(line);
            let mut argv = shell_words(line);
            // The stub store paths stand for this machine's programs.
            argv[0] = if argv[0].ends_with("/bin/ssh") {
                "ssh".into()
            } else if argv[0].ends_with("/bin/zfs") {
                "zfs".into()
            } else {
                panic!("unexpected ExecStartPre program: {argv:?}")
            };
            let argv: Vec<String> = argv.iter().map(|a| self.localise(a)).collect();
            let _ = crate::zfs_watchdog::run_watching_zfs(
                duct::cmd(&argv[0], &argv[1..])
                    .stdin_null()
                    .stdout_null()
                    .stderr_null(),
                &argv.join(" "),
                crate::zfs_watchdog::zfs_limit(),
            )
            .unwrap_or_else(crate::zfs_watchdog::Hung::fail);
        }
        let argv: Vec<String> = self.eval["argv"][command]
            .as_array()
            .unwrap_or_else(|| panic!("no syncoid command {command}: {}", self.eval["argv"]))
            .iter()
            .map(|a| self.localise(a.as_str().unwrap()))
            .collect();
        syncoid(&argv[1..])
    }

    /// [`Self::run_unit`], which must succeed; syncoid's output.
    pub fn run_ok(&self, command: &str) -> String {
        let (ok, out) = self.run_unit(command);
        assert!(ok, "syncoid-{command} failed:\n{out}");
        out
    }

    /// Runs replication-lag (`program`) on the generated config: its exit
    /// code, its measurements (`--json`) and the textfile it wrote.
    pub fn lag(&self, program: &str) -> (i32, Vec<Value>, String) {
        let out = run_lag(
            program,
            &[
                "--config",
                self.etc_files["/etc/zpersist/replication.json"].as_str(),
                "--json",
            ],
        );
        let measurements: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "replication-lag printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let textfile = std::fs::read_to_string(&self.textfile).unwrap();
        (
            out.status.code().unwrap_or(-1),
            measurements.as_array().unwrap().clone(),
            textfile,
        )
    }
}

/// Runs replication-lag (`program`) on `config`, a replication.json written
/// to `scratch`'s scratch area: its exit code and stderr.
pub fn lag_with_config(program: &str, config: &Value, scratch: &TestPool) -> (i32, String) {
    let (code, _, stderr) = lag_json_with_config(program, config, scratch, &[]);
    (code, stderr)
}

/// [`lag_with_config`] with `--json` and further `args`: its exit code,
/// its measurements and its stderr.
pub fn lag_json_with_config(
    program: &str,
    config: &Value,
    scratch: &TestPool,
    args: &[&str],
) -> (i32, Vec<Value>, String) {
    let path = scratch.scratch("replication.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut all = vec!["--config", path.as_str(), "--json"];
    all.extend(args);
    let out = run_lag(program, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let measurements: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("replication-lag printed no JSON ({e}): {stderr}"));
    (
        out.status.code().unwrap_or(-1),
        measurements.as_array().unwrap().clone(),
        stderr,
    )
}

fn run_lag(program: &str, args: &[&str]) -> std::process::Output {
    crate::zfs_watchdog::run_watching_zfs(
        duct::cmd(program, args)
            .env("PATH", path_with_wrapper())
            .stdin_null()
            .stdout_capture()
            .stderr_capture(),
        &format!("{program} {}", args.join(" ")),
        crate::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(crate::zfs_watchdog::Hung::fail)
}
