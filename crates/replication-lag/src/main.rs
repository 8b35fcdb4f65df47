//! replication-lag: for every dataset and target in the replication config,
//! the newest of this host's snapshots the target holds (matched by guid;
//! over ssh, or here for a local target) against the newest local one.
//! Prints one line per dataset, writes a Prometheus textfile atomically.
//! Exit 0: every check ran, every target holds a snapshot of this host's
//! and no lag is above the limit; 1: a check failed, a target holds none of
//! this host's snapshots of a dataset, or a lag is above `maxLagSeconds`;
//! 2: bad arguments or config (nothing ran).

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use zpersist_core::replication::SnapshotRef;
use zpersist_ops::replication::{self, config::Config, report, report::Measurement};
use zpersist_report::{Diagnostic, JsonFlag, Reporter};

#[derive(Parser)]
#[command(
    version,
    about = "How far each replication target is behind, measured on the target"
)]
struct Args {
    /// The replication config the NixOS module renders.
    #[arg(long, default_value = "/etc/zpersist/replication.json")]
    config: String,
    /// Where to write the Prometheus textfile (overrides the config; "-" writes none).
    #[arg(long)]
    textfile: Option<String>,
    /// Fail when a lag exceeds this many seconds (overrides the config).
    #[arg(long)]
    max_lag: Option<u64>,
    /// Kill a zfs or ssh call that takes longer than this many seconds
    /// (overrides the config's timeoutSeconds; default 60).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    // --json: the measurements as JSON instead of lines.
    #[command(flatten)]
    output: JsonFlag,
}

fn describe(m: &Measurement) -> String {
    let snap = |s: &Option<SnapshotRef>| match s {
        Some(s) => format!("{} (created {})", s.name, s.creation),
        None => "none".into(),
    };
    let head = format!("{} -> {} ({})", m.source, m.target, m.target_dataset);
    if let Some(e) = &m.error {
        return format!("{head}: check failed: {e}");
    }
    let lag = match (m.lag_seconds, &m.no_common_snapshot) {
        (Some(s), _) => format!("lag {s} s"),
        (None, Some(why)) => format!("no common snapshot: {why}"),
        (None, None) => "lag unknown".into(),
    };
    format!(
        "{head}: {lag}; newest local {}, newest on target {}",
        snap(&m.newest_local),
        snap(&m.newest_on_target)
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("replication-lag", args.output.json);
    let config = match zpersist_host::read_contract::<Config>(Path::new(&args.config)) {
        Ok(c) => c,
        Err(problems) => {
            return reporter.bad_input(
                &problems,
                "the file is rendered by the zpersist NixOS module (zpersist.replication); rebuild the system or pass --config FILE",
                "nothing was checked",
            )
        }
    };
    let options = replication::Options {
        timeout: args.timeout,
    };
    let measurements = replication::measure_all(&config, &options, |line| reporter.note(line));
    if reporter.json() {
        reporter.document(&measurements);
    } else {
        for m in &measurements {
            println!("{}", describe(m));
        }
    }

    let max_lag = args.max_lag.or(config.max_lag_seconds);
    let textfile = args.textfile.or(config.textfile.clone());
    if let Some(path) = textfile.filter(|p| p != "-") {
        if let Err(e) = zpersist_host::write_atomically(
            Path::new(&path),
            report::textfile(&config.host, &measurements).as_bytes(),
        ) {
            reporter.error(
                &Diagnostic::new(format!("cannot write the textfile: {e}"))
                    .in_file(&path)
                    .with_help("its directory must exist and be writable (zpersist.replication.lag.textfile)"),
            );
        }
    }
    for m in &measurements {
        let problem = m.error.as_ref().or(m.no_common_snapshot.as_ref());
        if let Some(problem) = problem {
            let mut diagnostic =
                Diagnostic::new(format!("{} -> {}: {problem}", m.source, m.target));
            diagnostic.help = m.help.clone();
            reporter.error(&diagnostic);
        } else if let (Some(max), Some(lag)) = (max_lag, m.lag_seconds) {
            if lag as u64 > max {
                reporter.fail(
                    format!(
                        "{} is {lag} s behind on {} (limit {max} s)",
                        m.source, m.target
                    ),
                    "see `systemctl status syncoid-*` and the journal of the syncoid units",
                );
            }
        }
    }
    reporter.exit_code()
}
