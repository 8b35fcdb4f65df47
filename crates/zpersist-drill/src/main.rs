//! `zpersist-drill --plan FILE [--source LABEL] [--json]`: restore each of
//! a service's sources' freshest point into a scratch dataset no service
//! sees, check it, measure RPO and RTO, clean up (docs/drill.md). Exit
//! codes: 0 every drilled source restored and passed its checks, 1 a
//! drill failed (the unit's OnFailure notifies), 2 bad plan or arguments,
//! nothing touched.

use std::process::ExitCode;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::Parser;
use zpersist_core::contract::Diagnostic;
use zpersist_core::drill::DrillPlan;
use zpersist_ops::drill;
use zpersist_report::{JsonFlag, Reporter};

/// Prove that a service's data restores, from every source (docs/drill.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The service's drill plan (JSON, version 1), as the NixOS module writes it.
    #[arg(long)]
    plan: Utf8PathBuf,
    /// Drill only this source (`local`, `replica:nas`, `restic:b2`).
    #[arg(long, value_name = "LABEL")]
    source: Option<String>,
    // --json: the result as JSON instead of text.
    #[command(flatten)]
    output: JsonFlag,
    /// How long to wait for another drill of this service.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    lock_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.output.json;
    let mut reporter = Reporter::new("zpersist-drill", json);
    let plan = match zpersist_host::read_contract::<DrillPlan>(args.plan.as_std_path()) {
        Ok(plan) => plan,
        Err(problems) => {
            return reporter.bad_input(
                &problems,
                "the plan is written by zpersist's NixOS module (docs/drill.md; zpersist-<service>-drill.service names it)",
                "nothing was touched",
            )
        }
    };
    if let Some(only) = &args.source {
        if !plan.preseed.sources.iter().any(|s| &s.label() == only) {
            let labels: Vec<String> = plan.preseed.sources.iter().map(|s| s.label()).collect();
            reporter.abort(
                &Diagnostic::new(format!(
                    "{}: no source is labelled `{only}`; nothing was touched",
                    plan.service
                ))
                .with_help(format!("give one of {}", labels.join(", "))),
            );
            return ExitCode::from(2);
        }
    }
    let options = drill::Options {
        only: args.source,
        lock_timeout: Duration::from_secs(args.lock_timeout),
        text: !json,
    };
    let result = drill::run(&plan, &options);
    if json {
        reporter.document(&result);
    }
    // A source the run stopped before repeats the run's error: said once.
    for source in result
        .sources
        .iter()
        .filter(|s| !s.success && s.help.is_some())
    {
        reporter.fail(
            format!(
                "{}: {}: {}",
                result.service,
                source.source,
                source.error.as_deref().unwrap_or("failed")
            ),
            source.help.clone().unwrap_or_default(),
        );
    }
    if let (Some(error), Some(help)) = (&result.error, &result.help) {
        reporter.fail(error.clone(), help.clone());
    }
    if !result.success {
        return ExitCode::FAILURE;
    }
    if !json {
        println!(
            "zpersist-drill: {}: every source restored and checked ({})",
            result.service,
            result
                .sources
                .iter()
                .map(|s| format!("{}: RPO {}s", s.source, s.rpo_seconds.unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    ExitCode::SUCCESS
}
