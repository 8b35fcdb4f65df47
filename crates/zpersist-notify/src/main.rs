//! zpersist-notify: run by `zpersist-notify@<unit>.service` (the OnFailure
//! hook) to report that <unit> failed. The deliveries run at once, each
//! killed at its limit (`timeoutSeconds`), so one that fails or hangs keeps
//! the event from no other. Exit 0: every delivery succeeded; 1: a delivery
//! failed or timed out (the others still ran); 2: bad arguments or context
//! file (nothing was delivered).

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use zpersist_notify::context::Context;
use zpersist_notify::{deliver, event, journal, time};
use zpersist_report::Reporter;

#[derive(Parser)]
#[command(
    version,
    about = "Report a failed unit to the configured command, ntfy, webhook and email"
)]
struct Args {
    /// The unit that failed (the template's instance, %i).
    #[arg(long)]
    failed_unit: String,
    /// The context file the NixOS module renders.
    #[arg(long, default_value = "/etc/zpersist/notify-context.json")]
    context: String,
    /// The journalctl to read the unit's journal with.
    #[arg(long, default_value = "journalctl")]
    journalctl: String,
    /// Print the event and the planned deliveries; deliver nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-notify", false);
    let context = match zpersist_host::read_contract::<Context>(Path::new(&args.context)) {
        Ok(context) => context,
        Err(problems) => {
            return reporter.bad_input(
                &problems,
                "it is rendered by the zpersist NixOS module (zpersist.notify); rebuild the system (a zpersist-notify of the same version reads it), or pass --context FILE",
                "nothing was delivered",
            )
        }
    };
    let tail = journal::tail(
        &args.journalctl,
        &args.failed_unit,
        context.journal_lines,
        context.timeout(),
    );
    let event = event::build(
        &context,
        &args.failed_unit,
        tail,
        &time::rfc3339(time::now()),
    );

    if !context.delivers() {
        reporter.fail(
            format!(
                "no delivery is configured; the failure of {} is only in the journal",
                args.failed_unit
            ),
            "set zpersist.notify.command, .ntfy.url, .webhook.url or .email.to",
        );
        println!("{}", event.json());
        return reporter.exit_code();
    }
    let (planned, plan_errors, _token_header) = deliver::plan_all(&context, &event);
    if args.dry_run {
        println!("{}", event.json());
        for p in &planned {
            println!("{}: {:?}", p.name, p.argv);
        }
        return ExitCode::SUCCESS;
    }
    for e in &plan_errors {
        reporter.error(e);
    }
    deliver::run_all(&planned, |p, result| match result {
        Ok(()) => reporter.note(format!(
            "notified {} of the failure of {} ({})",
            p.name, event.unit, p.destination
        )),
        Err(e) => reporter.error(&e),
    });
    reporter.exit_code()
}
