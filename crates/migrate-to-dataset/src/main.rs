//! `migrate-to-dataset SERVICE`: move a service's existing directory into
//! its own ZFS dataset, safely and resumably (docs/migration.md). Exit codes:
//! 0 migrated (or already migrated, or a dry run that found nothing wrong),
//! 1 refused or failed (the original data is untouched or kept aside),
//! 2 bad input or arguments (and then no zfs command ran). Errors and the
//! `--json` document go through zpersist-report, as in every binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zpersist_core::migration::{MigrationTarget, ServicesFile};
use zpersist_ops::migrate;
use zpersist_report::{Diagnostic, JsonFlag, Reporter};

/// Move a service's existing directory into its own ZFS dataset: copy,
/// verify, swap; resumable after a crash at any step (docs/migration.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The service to migrate, as named in the services file.
    #[arg(conflicts_with_all = ["dataset", "path"])]
    service: Option<String>,
    /// The services file the NixOS module renders.
    #[arg(long, default_value = "/etc/zpersist/services.json")]
    services: PathBuf,
    /// Without a services file: the dataset to create (with --path).
    #[arg(long, requires = "path")]
    dataset: Option<String>,
    /// Without a services file: the directory to move into it (with --dataset).
    #[arg(long, requires = "dataset")]
    path: Option<String>,
    /// Without a services file: a systemd unit that must be stopped (repeatable).
    #[arg(long = "unit", value_name = "UNIT", requires = "dataset")]
    units: Vec<String>,
    /// Without a services file: a property for `zfs create` (repeatable).
    #[arg(short = 'o', value_name = "PROPERTY=VALUE", requires = "dataset")]
    properties: Vec<String>,
    /// Check everything and print the steps a run would take; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// After a finished migration: re-verify and remove the original kept aside.
    #[arg(long)]
    cleanup: bool,
    // --json: the report as JSON on stdout instead of text.
    #[command(flatten)]
    output: JsonFlag,
    /// Seconds between progress lines on stderr while copying and verifying
    /// (from 0.01 to 86400).
    // Parsed by `progress_interval`, so that every bad value gets the same
    // error and exit code 2; a negative number is taken as a value, not a flag.
    #[arg(
        long,
        default_value = "2",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    progress_every: String,
}

/// The accepted range of `--progress-every`, in seconds: below 10 ms is
/// below the progress printer's tick, a day is as good as never.
const PROGRESS_EVERY_MIN: f64 = 0.01;
const PROGRESS_EVERY_MAX: f64 = 86_400.0;

/// `--progress-every`'s value as a duration, or why it is not one. NaN, the
/// infinities and anything beyond the range are refused here rather than
/// reaching `Duration::from_secs_f64`, which panics on them.
fn progress_interval(text: &str) -> Result<Duration, String> {
    let range = format!("a number of seconds from {PROGRESS_EVERY_MIN} to {PROGRESS_EVERY_MAX}");
    match text.trim().parse::<f64>() {
        Ok(seconds) if (PROGRESS_EVERY_MIN..=PROGRESS_EVERY_MAX).contains(&seconds) => {
            Ok(Duration::from_secs_f64(seconds))
        }
        _ => Err(format!("--progress-every {text:?}: expected {range}")),
    }
}

/// Bad input: every problem, `help` once, and exit code 2 (nothing was
/// changed; no zfs command ran).
fn bad_input(reporter: &mut Reporter, problems: &[Diagnostic], help: &str) -> ExitCode {
    reporter.bad_input(problems, help, "nothing was changed")
}

/// The migration the arguments ask for, or exit code 2 with the reasons.
fn target_of(args: &Args, reporter: &mut Reporter) -> Result<MigrationTarget, ExitCode> {
    if let (Some(dataset), Some(path)) = (&args.dataset, &args.path) {
        let mut properties = BTreeMap::new();
        let mut problems = Vec::new();
        for pair in &args.properties {
            match pair.split_once('=') {
                Some((property, value)) => {
                    properties.insert(property.to_string(), value.to_string());
                }
                None => problems.push(format!("-o {pair}: expected PROPERTY=VALUE")),
            }
        }
        let target = MigrationTarget {
            dataset: dataset.clone(),
            path: path.clone(),
            units: args.units.clone(),
            user: None,
            group: None,
            mode: None,
            properties,
        };
        problems.extend(target.problems());
        if !problems.is_empty() {
            let problems: Vec<Diagnostic> = problems.into_iter().map(Diagnostic::new).collect();
            return Err(bad_input(
                reporter,
                &problems,
                "give a valid dataset name, an absolute normalised --path and settable properties",
            ));
        }
        return Ok(target);
    }
    let Some(service) = &args.service else {
        return Err(bad_input(
            reporter,
            &[Diagnostic::new("no service given")],
            "name a service from the services file (`migrate-to-dataset sonarr`), or give --dataset and --path",
        ));
    };
    let file = args.services.display().to_string();
    let text = match std::fs::read_to_string(&args.services) {
        Ok(text) => text,
        Err(e) => {
            return Err(bad_input(
                reporter,
                &[Diagnostic::new(format!("cannot read it: {e}")).in_file(&file)],
                "the NixOS module writes it (zpersist.services); without the module use --dataset and --path",
            ))
        }
    };
    let services = zpersist_core::contract::parse::<ServicesFile>(&text).map_err(|problems| {
        let problems: Vec<Diagnostic> = problems.into_iter().map(|p| p.in_file(&file)).collect();
        bad_input(
            reporter,
            &problems,
            "fix the file (docs/migration.md describes it); it is generated by the NixOS module",
        )
    })?;
    match services.services.get(service) {
        Some(entry) => Ok(entry.target()),
        None => {
            let known: Vec<&str> = services.services.keys().map(String::as_str).collect();
            Err(bad_input(
                reporter,
                &[Diagnostic::new(format!("no service named `{service}`")).in_file(&file)],
                &format!(
                    "the services declared there are: {}",
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ))
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.output.json;
    let mut reporter = Reporter::new("migrate-to-dataset", json);
    let progress_every = match progress_interval(&args.progress_every) {
        Ok(every) => every,
        Err(problem) => {
            return bad_input(
                &mut reporter,
                &[Diagnostic::new(problem)],
                "give the interval between progress lines in seconds, e.g. `--progress-every 2` or `--progress-every 0.5`",
            )
        }
    };
    let target = match target_of(&args, &mut reporter) {
        Ok(target) => target,
        Err(code) => return code,
    };
    let options = migrate::Options {
        dry_run: args.dry_run,
        json,
        progress_every,
    };
    migrate::run(&target, &options, args.cleanup).print(&mut reporter);
    reporter.exit_code()
}
