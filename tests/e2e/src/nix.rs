//! Evaluating the NixOS modules with Nix 2.8 and nixpkgs lib, offline.
//!
//! Every evaluation goes through `tests/nix/eval.nix`, which imports the
//! modules from this checkout (plain paths: no flake source copy, so `target/`
//! is never copied and untracked files are seen) and takes nixpkgs' lib from
//! the `nixpkgs-lib` entry of `flake.lock` through `builtins.fetchTree`. With
//! the locked narHash, Nix finds that tree in the store without any network.
//!
//! `nix-instantiate` is run as an argv vector, never through a shell.

use std::io::ErrorKind;

use serde_json::Value;

pub use crate::repo_root;
use crate::zfs_watchdog;

/// How long one evaluation may take (a whole host, on a busy machine).
pub const NIX_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// What to evaluate: the arguments of `tests/nix/eval.nix`.
#[derive(Debug, Clone, Default)]
pub struct Eval {
    /// An example host under `examples/hosts`.
    pub host: Option<String>,
    /// An entry of `tests/nix/cases.nix`.
    pub case: Option<String>,
    /// A further module, as a Nix expression.
    pub extra_module: Option<String>,
    /// Let the evaluation write to the store (needed to read files the
    /// modules render, such as the plan file).
    pub read_write: bool,
}

impl Eval {
    pub fn host(host: &str) -> Self {
        Eval {
            host: Some(host.to_owned()),
            ..Eval::default()
        }
    }

    pub fn case(case: &str) -> Self {
        Eval {
            case: Some(case.to_owned()),
            ..Eval::default()
        }
    }

    pub fn module(expr: &str) -> Self {
        Eval {
            extra_module: Some(expr.to_owned()),
            ..Eval::default()
        }
    }

    pub fn with_module(mut self, expr: &str) -> Self {
        self.extra_module = Some(expr.to_owned());
        self
    }

    pub fn read_write(mut self) -> Self {
        self.read_write = true;
        self
    }

    /// The argv for `nix-instantiate` evaluating `attr` of `tests/nix/eval.nix`.
    pub fn argv(&self, attr: &str) -> Vec<String> {
        let eval_nix = repo_root().join("tests/nix/eval.nix");
        let mut argv: Vec<String> = [
            "--eval",
            "--strict",
            "--json",
            // Every attempt to reach a binary cache costs seconds of retries.
            "--option",
            "substituters",
            "",
            // builtins.fetchTree (the flake-locked lib) is a flakes builtin on 2.8.
            "--extra-experimental-features",
            "nix-command flakes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.read_write {
            argv.push("--read-write-mode".into());
        }
        argv.push(eval_nix.to_string());
        argv.extend(["-A".to_string(), attr.to_string()]);
        // Nix 2.8 calls the file's function only when an argument is given.
        argv.extend([
            "--arg".to_string(),
            "extraModule".to_string(),
            self.extra_module.clone().unwrap_or_else(|| "{ }".into()),
        ]);
        if let Some(host) = &self.host {
            argv.extend(["--argstr".into(), "host".into(), host.clone()]);
        }
        if let Some(case) = &self.case {
            argv.extend(["--argstr".into(), "case".into(), case.clone()]);
        }
        argv
    }

    /// Evaluates `attr`; `Err` holds Nix's error output.
    pub fn try_attr(&self, attr: &str) -> Result<Value, String> {
        let argv = self.argv(attr);
        let output = match zfs_watchdog::try_run_bounded(
            duct::cmd("nix-instantiate", &argv)
                .stdin_null()
                .stdout_capture()
                .stderr_capture(),
            &format!("nix-instantiate evaluating {attr}"),
            NIX_LIMIT,
        ) {
            Ok(output) => output,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "nix-instantiate is not on PATH. These tests evaluate the NixOS modules with \
                 Nix 2.8: install it (apt-get install nix-bin) and run them again."
            ),
            Err(e) => panic!("cannot run nix-instantiate: {e}"),
        };
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(stderr);
        }
        serde_json::from_slice(&output.stdout).map_err(|e| {
            format!(
                "nix-instantiate printed something that is not JSON ({e}):\n{}\n{stderr}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Evaluates `attr`, panicking with Nix's message when evaluation fails.
    pub fn attr(&self, attr: &str) -> Value {
        self.try_attr(attr).unwrap_or_else(|stderr| {
            let hint = if stderr.contains("nixpkgs.lib") || stderr.contains("github.com") {
                "\nhint: nixpkgs' lib comes from the nixpkgs-lib entry of flake.lock; without \
                 network its tree must already be in the store (see tests/nix/README.md)."
            } else {
                ""
            };
            panic!(
                "nix-instantiate failed evaluating `{attr}` of tests/nix/eval.nix for {self:?}:\n\
                 {stderr}{hint}"
            )
        })
    }
}

/// The evaluated plan of an example host (`forge`, `luna`), exactly the data
/// the module renders into the plan file `ensure-datasets --plan` reads.
pub fn host_plan(host: &str) -> Value {
    Eval::host(host).attr("plan")
}

/// The `zpersist-datasets` unit an example host gets.
pub fn host_unit(host: &str) -> Value {
    Eval::host(host).attr("unit")
}

/// The text of the plan file of an example host, as the unit passes it to
/// `ensure-datasets --plan` (writes it to the local store).
pub fn host_plan_file_text(host: &str) -> String {
    match Eval::host(host).read_write().attr("planFileText") {
        Value::String(text) => text,
        other => panic!("planFileText is not a string: {other}"),
    }
}

/// `docs/options.md` as the modules' options render it now.
pub fn options_markdown() -> String {
    match Eval::default().attr("optionsMarkdown") {
        Value::String(text) => text,
        other => panic!("optionsMarkdown is not a string: {other}"),
    }
}

/// Runs a Nix expression through `nix-instantiate --eval --strict --json`
/// with the repository root as working directory (for `./` paths).
pub fn eval_expr(expr: &str) -> Value {
    let expression = duct::cmd(
        "nix-instantiate",
        [
            "--eval",
            "--strict",
            "--json",
            "--read-write-mode",
            "--option",
            "substituters",
            "",
            "--extra-experimental-features",
            "nix-command flakes",
            "--expr",
            expr,
        ],
    )
    .dir(repo_root())
    .stdin_null()
    .stdout_capture()
    .stderr_capture();
    let output = zfs_watchdog::try_run_bounded(expression, "nix-instantiate --eval", NIX_LIMIT);
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "nix-instantiate is not on PATH. These tests evaluate the NixOS modules with \
             Nix 2.8: install it (apt-get install nix-bin) and run them again."
        ),
        Err(e) => panic!("cannot run nix-instantiate: {e}"),
    };
    assert!(
        output.status.success(),
        "nix-instantiate failed on {expr}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("nix-instantiate printed JSON")
}

/// A JSON list of strings, as Nix evaluated it.
pub fn strings(v: Value) -> Vec<String> {
    serde_json::from_value(v).expect("a list of strings")
}

/// Evaluates a case of tests/nix/cases*.nix (a configuration breaking one
/// rule), checks it against its own expectation (`expect`: a failed
/// assertion containing it; `expectWarning`: a warning and no failure;
/// neither: a clean evaluation) and returns the messages, for the caller to
/// snapshot so their wording is reviewed. Used through [`nix_cases!`].
pub fn check_case(name: &str) -> Value {
    let eval = Eval::case(name);
    let spec = eval.attr("caseSpec");
    let failed = strings(eval.attr("failedAssertions"));
    let warnings = strings(eval.attr("warnings"));
    if let Some(expect) = spec["expect"].as_str() {
        assert!(
            failed.iter().any(|m| m.contains(expect)),
            "case {name}: no failed assertion contains {expect:?}; failed: {failed:#?}"
        );
    } else if let Some(expect) = spec["expectWarning"].as_str() {
        assert_eq!(failed, Vec::<String>::new(), "case {name}");
        assert!(
            warnings.iter().any(|m| m.contains(expect)),
            "case {name}: no warning contains {expect:?}; warnings: {warnings:#?}"
        );
    } else {
        assert_eq!(failed, Vec::<String>::new(), "case {name}");
        assert_eq!(warnings, Vec::<String>::new(), "case {name}");
    }
    serde_json::json!({ "failedAssertions": failed, "warnings": warnings })
}

/// The case names one tests/nix/cases*.nix file defines.
pub fn case_names_in(file: &str) -> Vec<String> {
    strings(Eval::default().attr("caseNamesByFile")[file].clone())
}

/// One test per case of a tests/nix/cases*.nix file, each snapshotting the
/// case's messages (`case-<name>`), plus a test that the file and the list
/// name the same cases.
#[macro_export]
macro_rules! nix_cases {
    ($file:literal, $every:ident; $($test:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $test() {
                let outcome = $crate::nix::check_case($case);
                insta::assert_json_snapshot!(format!("case-{}", $case), outcome);
            }
        )*

        #[test]
        fn $every() {
            let mut ours: Vec<&str> = vec![$($case),*];
            ours.sort();
            assert_eq!(
                $crate::nix::case_names_in($file),
                ours,
                "tests/nix/{} and this file's nix_cases! list differ",
                $file
            );
        }
    };
}
