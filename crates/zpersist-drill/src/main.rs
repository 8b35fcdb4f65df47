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
use zpersist_ops::config::{read_plan, DRILL_PLAN_HELP};
use zpersist_ops::drill;
use zpersist_ops::preseed::sources;
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
    let plan = match read_plan::<DrillPlan>(args.plan.as_std_path()) {
        Ok(plan) => plan,
        Err(problems) => {
            return reporter.bad_input(&problems, DRILL_PLAN_HELP, "nothing was touched")
        }
    };
    if let Some(only) = &args.source {
        if let Err((error, help)) = sources::source_index(&plan.preseed, only) {
            reporter.abort(&Diagnostic::new(error).with_help(help));
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
    for (error, help) in drill::failures(&result) {
        reporter.fail(error, help);
    }
    if !result.success {
        return ExitCode::FAILURE;
    }
    if !json {
        println!("{}", drill::success_line(&result, "zpersist-drill"));
    }
    ExitCode::SUCCESS
}
