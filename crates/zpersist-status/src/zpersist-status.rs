//! `zpersist status [SERVICE] [--json] [--config DIR]`: the thin main over
//! `zpersist_ops::status` (arguments → run → print → exit). Exit 0: every
//! objective met; 1: one is missed (or a zfs call failed); 2: bad
//! arguments or contracts (nothing read from ZFS).

use std::process::ExitCode;

use clap::Parser;
use zpersist_ops::status;
use zpersist_report::{JsonFlag, Reporter};

#[derive(Parser)]
#[command(
    name = "zpersist status",
    about = "Whether each service's persistence keeps its promises"
)]
struct Args {
    /// Only this service (a name in services.json).
    service: Option<String>,
    /// Where services.json, replication.json and status.json are.
    #[arg(long, default_value = status::DEFAULT_CONFIG)]
    config: String,
    // --json: the report as JSON on stdout instead of text.
    #[command(flatten)]
    output: JsonFlag,
    /// Also write the report as a Prometheus textfile here (atomically).
    #[arg(long, value_name = "PATH")]
    textfile: Option<String>,
    /// Kill a zfs or ssh call that takes longer than this many seconds
    /// (default: replication.json's timeoutSeconds, else 60).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist status", args.output.json);
    let options = status::Options {
        service: args.service,
        config: args.config.into(),
        timeout: args.timeout,
    };
    let report = match status::run(&options) {
        Ok(report) => report,
        Err(e) => return reporter.report(&e),
    };
    report.print(&mut reporter, args.textfile.as_deref())
}
