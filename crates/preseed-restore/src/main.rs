//! `preseed-restore --plan FILE`: before a service starts, make sure its
//! dataset holds data: data present is never touched (`existing`); empty,
//! it is restored from the freshest good source through a verified sibling
//! swapped in under a journal (`restored`), or, when no source has ever
//! held data, left empty (`fresh`). Exit codes: 0 the dataset holds data
//! (or is rightly fresh), 1 data is missing and could not be restored (the
//! service must not start), 2 bad plan or arguments, nothing touched.

use std::process::ExitCode;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::Parser;
use zpersist_core::preseed::PreseedPlan;
use zpersist_ops::config::{read_plan, PRESEED_PLAN_HELP};
use zpersist_ops::preseed as restore;
use zpersist_report::{JsonFlag, Reporter};

/// Restore a service's empty dataset before it starts (docs/preseed.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The service's preseed plan (JSON, version 1), as the NixOS module writes it.
    #[arg(long)]
    plan: Utf8PathBuf,
    /// Say what would be done (and the same restore by hand), change nothing.
    #[arg(long)]
    dry_run: bool,
    // --json: the report as JSON instead of text.
    #[command(flatten)]
    output: JsonFlag,
    /// How long to wait for another run of this service's preseed.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    lock_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.output.json;
    let mut reporter = Reporter::new("preseed-restore", json);
    let plan = match read_plan::<PreseedPlan>(args.plan.as_std_path()) {
        Ok(plan) => plan,
        Err(problems) => {
            return reporter.bad_input(&problems, PRESEED_PLAN_HELP, "nothing was touched")
        }
    };
    let options = restore::Options {
        dry_run: args.dry_run,
        lock_timeout: Duration::from_secs(args.lock_timeout),
        text: !json,
        ..restore::Options::default()
    };
    restore::run(&plan, &options).print(&mut reporter, "preseed-restore")
}
